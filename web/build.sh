#!/usr/bin/env bash
# Builds the dashboard (web/) into OUTDIR: index.html and hashed files under OUTDIR/assets/,
# served by `kiln server` (src/web). Installs the npm packages pinned in web/package-lock.json
# with `npm ci` in OUTDIR/../web-node, outside the source tree (skipped when that lock file is
# already installed there), type-checks the TypeScript with tsc, then runs `vite build`.
# Leaves nothing (node_modules, dist, caches) in web/.
# Usage: bash web/build.sh OUTDIR    (CMakeLists.txt: <build>/web)
set -euo pipefail

src="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
out="${1:?usage: build.sh OUTDIR}"
mkdir -p "$out"
out="$(cd "$out" && pwd)"
node_dir="$(dirname "$out")/web-node"

if ! command -v npm >/dev/null || ! command -v node >/dev/null; then
  echo "web/build.sh: npm not found: run scripts/install-deps (installs Debian's nodejs and" \
    "npm), then make again" >&2
  exit 1
fi
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if ((node_major < 18)); then
  echo "web/build.sh: node $(node --version) is too old: Vite 5 needs Node 18 or newer" >&2
  exit 1
fi

stamp="$(cat "$src/package.json" "$src/package-lock.json" | sha256sum | cut -d' ' -f1)"
if [[ -f "$node_dir/node_modules/.kiln-lock.sha256" &&
      "$(cat "$node_dir/node_modules/.kiln-lock.sha256")" == "$stamp" ]]; then
  echo "web-node: $node_dir is up to date with web/package-lock.json"
else
  mkdir -p "$node_dir"
  cp "$src/package.json" "$src/package-lock.json" "$node_dir/"
  # No install scripts: esbuild finds its platform package without its postinstall step.
  (cd "$node_dir" && npm ci --no-audit --no-fund --ignore-scripts)
  echo "$stamp" >"$node_dir/node_modules/.kiln-lock.sha256"
fi

# No vite.config: its import of `vite` would be resolved from web/, which has no node_modules.
# Everything it would say is here: root web/, files under /assets/ with hashed names.
"$node_dir/node_modules/.bin/tsc" -p "$src/tsconfig.json"
"$node_dir/node_modules/.bin/vite" build "$src" --base / --assetsDir assets \
  --outDir "$out" --emptyOutDir --logLevel warn
test -f "$out/index.html"
echo "web: built the dashboard into $out"
