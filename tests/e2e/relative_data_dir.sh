#!/usr/bin/env bash
# End-to-end: a server started with a relative --data-dir, as `make run` starts one
# (./.kiln), runs sandboxes and apps: runc runs in each instance's bundle, so every path the
# server hands it must be absolute.
# Usage: bash tests/e2e/relative_data_dir.sh /path/to/kiln
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init relative_data_dir "$@"

cd "$tmp"
printf '[sandboxes]\npool_size = 0\n[gateway]\ntls_port = 0\n' >"$tmp/kiln.toml"
e2e_start_server ./data --config ./kiln.toml
export KILN_URL="$url"
export KILN_API_KEY="$(head -n 1 "$tmp/data/admin.key")"
export HOME="$tmp"

run "$kiln" sandbox create
check "a sandbox starts" grep -Eq '^sbx_[a-z0-9]+$' <<<"$out"
id="$out"
run "$kiln" sandbox exec "$id" -- 'echo in $(pwd)'
check "a command runs in it" test "$out" = "in /root"

mkdir -p "$tmp/site"
printf '<h1>relative</h1>\n' >"$tmp/site/index.html"
run "$kiln" deploy "$tmp/site" --app rel
check "an app deploys and goes live" test "$rc" -eq 0
port="${KILN_URL##*:}"
run curl -s -H "Host: rel.localhost" "http://127.0.0.1:$port/"
check "the app answers through the gateway" test "$out" = "<h1>relative</h1>"

run "$kiln" sandbox kill "$id"
# The clean-up of lib.sh runs `kiln cleanup --data-dir $tmp/data`; a relative path works too.
kill -TERM "$server_pid" && wait "$server_pid" || true
server_pid=""
run "$kiln" cleanup --data-dir ./data
check "kiln cleanup takes the relative path and removes the app's instance" \
  grep -q "Removed 1 instance" <<<"$out"
e2e_finish
