#!/usr/bin/env bash
# End-to-end: sandboxes driven through the `kiln` CLI against a real server and real runc,
# as an agent's operator would from a terminal.
# Usage: bash tests/e2e/sandbox_cli.sh /path/to/kiln
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init sandbox_cli "$@"

cd "$tmp"
printf '[sandboxes]\npool_size = 1\n' >"$tmp/kiln.toml"
e2e_start_server "$tmp/data" --config "$tmp/kiln.toml"
export KILN_URL="$url"
export KILN_API_KEY="$(head -n 1 "$tmp/data/admin.key")"
export HOME="$tmp"

run "$kiln" sandbox create --env GREETING=hi --meta owner=e2e
check "sandbox create prints an id" grep -Eq '^sbx_[a-z0-9]+$' <<<"$out"
id="$out"

run "$kiln" sandbox list
check "sandbox list shows it running" grep -Eq "^$id +base +running " <<<"$out"
run "$kiln" sandbox list --meta owner=nobody
check "a metadata filter that matches nothing lists nothing" grep -q '(none)' <<<"$out"

run "$kiln" sandbox exec "$id" -- 'echo $GREETING from $(hostname); echo oops >&2; exit 5'
check "exec streams stdout" test "$out" = "hi from $id"
check "exec streams stderr" test "$err" = "oops"
check "exec exits with the command's code" test "$rc" -eq 5
run "$kiln" sandbox exec "$id" -- python3 -c 'import sys; print(sys.argv[1:])' a 'b c'
check "several words run as argv, without a shell" test "$out" = "['a', 'b c']"
run bash -c "printf 'line1\nline2\n' | '$kiln' sandbox exec $id -- 'wc -l'"
check "stdin is passed to the command" test "$out" = "2"

printf 'payload\0with nul\n' >"$tmp/local.bin"
run "$kiln" sandbox files put "$id" /root/dir/file.bin "$tmp/local.bin"
check "files put succeeds" test "$rc" -eq 0
"$kiln" sandbox files cat "$id" /root/dir/file.bin >"$tmp/back.bin"
check "files cat gives the same bytes back" cmp -s "$tmp/local.bin" "$tmp/back.bin"
run "$kiln" sandbox files ls "$id" /root --depth 2
check "files ls lists what was put" grep -q '/root/dir/file.bin' <<<"$out"

run "$kiln" sandbox pause "$id"
check "pause says paused" grep -q paused <<<"$out"
run "$kiln" sandbox exec "$id" -- true
check "exec on a paused sandbox fails with exit 1" test "$rc" -eq 1
check "... saying SANDBOX_PAUSED" grep -q SANDBOX_PAUSED <<<"$err"
run "$kiln" sandbox resume "$id"
run "$kiln" sandbox exec "$id" -- 'echo back'
check "resume makes it usable again" test "$out" = "back"

run "$kiln" --json sandbox get "$id"
check "get --json has live usage" python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["usage"]["processes"] >= 1' "$out"
run "$kiln" sandbox timeout "$id" 900
check "timeout sets a new expiry" grep -q 'expires at' <<<"$out"

run "$kiln" sandbox kill "$id"
check "kill says killed" grep -q killed <<<"$out"
check "kill leaves no mount behind" test "$(grep -c "$id" /proc/self/mountinfo)" -eq 0
run "$kiln" sandbox exec "$id" -- true
check "exec after kill says SANDBOX_NOT_RUNNING" grep -q SANDBOX_NOT_RUNNING <<<"$err"

run "$kiln" templates create tools --step 'mkdir -p /opt/tools && echo v1 > /opt/tools/version'
check "templates create follows the build to the end" grep -q 'template "tpl_' <<<"$out"
check "... and succeeds" test "$rc" -eq 0
run "$kiln" sandbox create --template tools
tid="$out"
run "$kiln" sandbox exec "$tid" -- 'cat /opt/tools/version'
check "a sandbox from the custom template has its files" test "$out" = "v1"
run "$kiln" templates delete tools
check "a template in use cannot be deleted" grep -q TEMPLATE_IN_USE <<<"$err"
"$kiln" sandbox kill "$tid" >/dev/null
run "$kiln" templates delete tools
check "... and can once unused" test "$rc" -eq 0
run "$kiln" templates create broken --step 'echo about to fail; exit 3'
check "a failing step fails the build (exit 1)" test "$rc" -eq 1
check "... and the log shows the step's output" grep -q 'about to fail' <<<"$out"

e2e_finish
