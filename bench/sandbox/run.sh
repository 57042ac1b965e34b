#!/usr/bin/env bash
# Sandbox benchmark (DESIGN.md §9, bench/README.md "bench/sandbox"): builds kiln_sandbox_bench,
# kiln and kiln-init into build/ and runs the benchmark from the repository root. It prints a
# table and writes every sample to bench/results/sandbox.json. Nothing is asserted.
#
# Usage: bench/sandbox/run.sh [--iterations N] [--density N] [--results PATH]
#   (`make bench` runs it with the defaults: 200 iterations, 200 idle sandboxes)
# Environment: BUILD [build], the configured CMake build directory; JOBS [2].
# Needs root (real sandboxes), runc and bwrap (make deps).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${BUILD:-build}
JOBS=${JOBS:-2}
cd "$ROOT"

die() {
  echo "bench/sandbox: $*" >&2
  exit 1
}

[[ $(id -u) == 0 ]] || die "sandboxes need root: run it as root"
[[ -f $BUILD/CMakeCache.txt ]] || die "$BUILD is not configured (make configure)"
command -v runc >/dev/null || die "runc is not installed (make deps)"
command -v bwrap >/dev/null || die "bwrap is not installed (make deps, or apt-get install bubblewrap)"

# A build directory configured before this target existed learns about it here (only then, so
# that a test run sharing the directory is not disturbed by a needless re-configure).
[[ -d $BUILD/CMakeFiles/kiln_sandbox_bench.dir ]] || cmake -S "$ROOT" -B "$BUILD" >&2
cmake --build "$BUILD" --target kiln_sandbox_bench kiln kiln-init -j"$JOBS" >&2
exec "$BUILD/kiln_sandbox_bench" --kiln "$BUILD/kiln" "$@"
