#!/usr/bin/env bash
# The official MCP conformance suite (@modelcontextprotocol/conformance, pinned in
# tests/mcp/package.json) against `kiln-mcp-fixtures server` (kiln plus the suite's fixture
# tools), through tests/mcp/auth_proxy.mjs, which adds the bearer key the suite does not send.
# Each scenario runs on its own; the script prints a table and fails when any scenario does.
# The suite needs Node >= 22: it runs with the node binary the npm project pins.
# Usage: bash tests/mcp/conformance.sh /path/to/kiln-mcp-fixtures NODE_PROJECT_DIR RESULTS_DIR
#   NODE_PROJECT_DIR: tests/mcp/package.json after `npm ci` (the CTest fixture mcp.npm_install)
#   RESULTS_DIR: each scenario's output and the suite's result files go there (replaced)
# Scenarios: all of them by default, or the names in $KILN_CONFORMANCE_SCENARIOS.
set -euo pipefail

fixtures="$(realpath "${1:?usage: conformance.sh KILN_MCP_FIXTURES NODE_PROJECT_DIR RESULTS_DIR}")"
node_dir="$(realpath "${2:?usage: conformance.sh KILN_MCP_FIXTURES NODE_PROJECT_DIR RESULTS_DIR}")"
results="${3:?usage: conformance.sh KILN_MCP_FIXTURES NODE_PROJECT_DIR RESULTS_DIR}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

scenarios=(
  server-initialize ping tools-list logging-set-level
  tools-call-simple-text tools-call-image tools-call-audio tools-call-embedded-resource
  tools-call-mixed-content tools-call-with-logging tools-call-error tools-call-with-progress
  tools-call-sampling tools-call-elicitation elicitation-sep1034-defaults
  elicitation-sep1330-enums json-schema-2020-12 server-sse-polling server-sse-multiple-streams
  dns-rebinding-protection
)
if [[ -n "${KILN_CONFORMANCE_SCENARIOS:-}" ]]; then
  read -r -a scenarios <<<"$KILN_CONFORMANCE_SCENARIOS"
fi

node="$node_dir/bin/node"
suite="$node_dir/node_modules/@modelcontextprotocol/conformance/dist/index.js"
if [[ ! -x "$node" || ! -f "$suite" ]]; then
  echo "conformance: $node_dir has no pinned node or conformance suite:" \
    "run the CTest fixture first (ctest -R mcp.npm_install)" >&2
  exit 2
fi

tmp="$(mktemp -d /tmp/kiln-e2e-conformance-XXXXXX)"
server_pid=""
proxy_pid=""
cleanup() {
  for pid in "$proxy_pid" "$server_pid"; do
    if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  "$fixtures" cleanup --data-dir "$tmp/data" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# wait_for_file FILE PID: until FILE has content, or PID has exited (then fails).
wait_for_file() {
  for _ in $(seq 1 200); do
    [[ -s "$1" ]] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

rm -rf "$results"
mkdir -p "$results"
results="$(realpath "$results")"
cd "$tmp"  # no stray ./kiln.toml is picked up
printf '[gateway]\ntls_port = 0\n' >"$tmp/kiln.toml"  # 8443 is shared by every server here
"$fixtures" server --listen 127.0.0.1:0 --data-dir "$tmp/data" --config "$tmp/kiln.toml" \
  >"$results/server.log" 2>&1 &
server_pid=$!
if ! wait_for_file "$tmp/data/kiln.addr" "$server_pid"; then
  echo "conformance: kiln-mcp-fixtures server did not start:" >&2
  tail -n 30 "$results/server.log" >&2
  exit 1
fi
server_url="$(head -n 1 "$tmp/data/kiln.addr")"

"$node" "$here/auth_proxy.mjs" --target "$server_url" --key-file "$tmp/data/admin.key" \
  --addr-file "$tmp/proxy.addr" >"$results/proxy.log" 2>&1 &
proxy_pid=$!
if ! wait_for_file "$tmp/proxy.addr" "$proxy_pid"; then
  echo "conformance: auth_proxy.mjs did not start:" >&2
  cat "$results/proxy.log" >&2
  exit 1
fi
proxy_url="$(head -n 1 "$tmp/proxy.addr")"
echo "kiln-mcp-fixtures at $server_url, auth proxy at $proxy_url"

declare -A outcome
declare -A checks
failed=0
for s in "${scenarios[@]}"; do
  rc=0
  timeout 120 "$node" "$suite" server --url "$proxy_url/mcp" --scenario "$s" \
    --output-dir "$results/$s" >"$results/$s.log" 2>&1 || rc=$?
  # The suite prints "Passed: N/M, F failed, W warnings" (the last such line is the total).
  checks[$s]="$(grep -aoE 'Passed: [0-9]+/[0-9]+.*' "$results/$s.log" | tail -n 1 || true)"
  if ((rc == 0)); then
    outcome[$s]="pass"
  else
    outcome[$s]="FAIL (exit $rc)"
    failed=$((failed + 1))
    echo "---- $s (exit $rc): $results/$s.log ----"
    tail -n 40 "$results/$s.log"
  fi
done

echo
printf '%-32s %-14s %s\n' scenario result checks
for s in "${scenarios[@]}"; do
  printf '%-32s %-14s %s\n' "$s" "${outcome[$s]}" "${checks[$s]:-}"
done
echo "$((${#scenarios[@]} - failed)) of ${#scenarios[@]} scenarios passed; logs in $results"
((failed == 0))
