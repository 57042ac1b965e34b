#!/usr/bin/env bash
# End-to-end: drive the `kiln` CLI against a real `kiln server` as a user would.
# Usage: bash tests/e2e/cli.sh /path/to/kiln
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init cli "$@"

json_get() {  # json_get EXPR: evaluates a Python expression over `d`, the JSON on stdin
  python3 -c "import json, sys; d = json.load(sys.stdin); print($1)"
}

# --- start the server on a free port -----------------------------------------------------
mkdir -p "$tmp/home" "$tmp/empty-home"
cd "$tmp"  # no stray ./kiln.toml is picked up
e2e_start_server "$tmp/data"
admin_key="$(head -n 1 "$tmp/data/admin.key")"
pass "server starts and writes kiln.addr ($url)"
check "admin.key has mode 600" test "$(stat -c %a "$tmp/data/admin.key")" = 600
check "the first start prints the admin key once (stdout)" test "$(grep -c "$admin_key" "$tmp/server.out")" -eq 1
detail="$(cat "$tmp/server.log")"
check "the server logs JSON lines to stderr" python3 -c '
import json, sys
lines = [l for l in open(sys.argv[1]) if l.strip()]
assert lines, "no log lines"
for l in lines:
    d = json.loads(l)
    assert {"ts", "level", "msg"} <= d.keys(), l
' "$tmp/server.log"
check "the admin key is not in the log" test "$(grep -c "$admin_key" "$tmp/server.log")" -eq 0

export HOME="$tmp/home"
unset KILN_URL KILN_API_KEY XDG_CONFIG_HOME
profile="$HOME/.config/kiln/config.toml"

# --- login / whoami ------------------------------------------------------------------------
run "$kiln" login --url "$url" --api-key "$admin_key"
check "login succeeds" test "$rc" -eq 0
check "login names the workspace" grep -q 'workspace "default"' <<<"$out"
check "profile is written" test -f "$profile"
detail="mode $(stat -c %a "$profile" 2>/dev/null || echo missing)"
check "profile has mode 600" test "$(stat -c %a "$profile")" = 600
detail="mode $(stat -c %a "$(dirname "$profile")" 2>/dev/null)"
check "profile directory has mode 700" test "$(stat -c %a "$(dirname "$profile")")" = 700

run "$kiln" login --url "$url" --api-key kiln_sk_wrong
check "login with a bad key fails with exit 1" test "$rc" -eq 1
check "a failed login keeps the saved profile" grep -q "$admin_key" "$profile"

run "$kiln" whoami
check "whoami succeeds" test "$rc" -eq 0
check "whoami prints the workspace default" grep -Eq '^workspace +default ' <<<"$out"
check "whoami prints the url" grep -qF "$url" <<<"$out"

# --- keys ----------------------------------------------------------------------------------
run "$kiln" --json keys create ci --scopes read,write
check "keys create succeeds" test "$rc" -eq 0
key_id="$(json_get 'd["id"]' <<<"$out" 2>/dev/null || true)"
secret="$(json_get 'd["secret"]' <<<"$out" 2>/dev/null || true)"
check "keys create --json answers an id" grep -q '^key_' <<<"$key_id"
check "keys create --json answers the secret" grep -Eq '^kiln_sk_[A-Za-z0-9_-]{43}$' <<<"$secret"

run "$kiln" keys list
check "keys list succeeds" test "$rc" -eq 0
check "keys list shows ci" grep -Eq "^$key_id +ci " <<<"$out"
check "keys list never shows a secret" test "$(grep -c "$secret" <<<"$out")" -eq 0

run env KILN_API_KEY="$secret" "$kiln" --json whoami
check "KILN_API_KEY overrides the profile" test "$rc" -eq 0
scopes="$(json_get '",".join(d["key"]["scopes"])' <<<"$out" 2>/dev/null || true)"
detail="scopes: $scopes"
check "the new key has scopes read,write" test "$scopes" = "read,write"
check "whoami --json names the key" test "$(json_get 'd["key"]["id"]' <<<"$out" 2>/dev/null)" = "$key_id"

run env KILN_API_KEY="$secret" "$kiln" keys create sneaky
check "a non-admin key cannot mint (exit 1)" test "$rc" -eq 1
check "... and says MISSING_SCOPE" grep -q MISSING_SCOPE <<<"$err"

run "$kiln" keys revoke "$key_id"
check "keys revoke succeeds" test "$rc" -eq 0
check "keys revoke reports it" grep -q "Revoked key \"ci\"" <<<"$out"

run env KILN_API_KEY="$secret" "$kiln" whoami
check "a revoked key fails" test "$rc" -ne 0
check "a revoked key exits 1" test "$rc" -eq 1
check "a revoked key reports KEY_REVOKED on stderr" grep -q KEY_REVOKED <<<"$err"
check "nothing on stdout for an error" test -z "$out"

run "$kiln" --json keys list
status="$(json_get '[k["status"] for k in d["data"] if k["id"] == "'"$key_id"'"][0]' <<<"$out" 2>/dev/null || true)"
detail="status: $status"
check "the list shows ci revoked" test "$status" = revoked

# --- workspaces ----------------------------------------------------------------------------
run "$kiln" workspaces create acme
check "workspaces create succeeds" test "$rc" -eq 0
check "workspaces create prints the new secret" grep -Eq 'kiln_sk_[A-Za-z0-9_-]{43}' <<<"$out"
acme_secret="$(grep -Eo 'kiln_sk_[A-Za-z0-9_-]{43}' <<<"$out" | head -n 1 || true)"

run "$kiln" --json workspaces list
count="$(json_get 'len(d["data"])' <<<"$out" 2>/dev/null || true)"
detail="count: $count; $out"
check "workspaces list has 2" test "$count" = 2

run env KILN_API_KEY="$acme_secret" "$kiln" whoami
check "acme's key logs into acme" grep -Eq '^workspace +acme ' <<<"$out"
run env KILN_API_KEY="$acme_secret" "$kiln" --json workspaces list
check "acme sees only itself" test "$(json_get 'len(d["data"])' <<<"$out" 2>/dev/null)" = 1

run "$kiln" workspaces create acme
check "a duplicate workspace fails with exit 1" test "$rc" -eq 1
check "... and says WORKSPACE_EXISTS" grep -q WORKSPACE_EXISTS <<<"$err"

run "$kiln" keys list --json
check "--json also works after the subcommand" test "$(json_get 'len(d["data"])' <<<"$out" 2>/dev/null)" -ge 2
run env KILN_API_KEY="$secret" "$kiln" whoami --json
check "an error in --json mode exits 1" test "$rc" -eq 1
check "... with the error envelope on stderr" test "$(json_get 'd["error"]["code"]' <<<"$err" 2>/dev/null)" = KEY_REVOKED
check "... and nothing on stdout" test -z "$out"

# --- output ----------------------------------------------------------------------------------
esc=$'\033'
run "$kiln" keys list
check "piped output has no escape codes" test "$(grep -c "$esc" <<<"$out")" -eq 0
if command -v script >/dev/null; then
  # On a terminal, headers are bold unless NO_COLOR is set.
  tty_color="$(script -qec "'$kiln' keys list" /dev/null 2>&1 || true)"
  check "a terminal gets color" grep -q "$esc" <<<"$tty_color"
  tty_plain="$(NO_COLOR=1 script -qec "'$kiln' keys list" /dev/null 2>&1 || true)"
  detail="$tty_plain"
  check "NO_COLOR=1 output has no escape codes" test "$(grep -c "$esc" <<<"$tty_plain")" -eq 0
  check "NO_COLOR=1 output still lists the keys" grep -q admin <<<"$tty_plain"
else
  run env NO_COLOR=1 "$kiln" keys list
  check "NO_COLOR=1 output has no escape codes" test "$(grep -c "$esc" <<<"$out$err")" -eq 0
fi

# --- usage errors ---------------------------------------------------------------------------
run "$kiln" frobnicate
check "a bad subcommand exits 2" test "$rc" -eq 2
run "$kiln" keys
check "a missing subcommand exits 2" test "$rc" -eq 2
run "$kiln" keys create
check "a missing argument exits 2" test "$rc" -eq 2
run "$kiln" --help
check "--help exits 0" test "$rc" -eq 0

run env HOME="$tmp/empty-home" "$kiln" whoami
check "no credentials exits 3" test "$rc" -eq 3
check "no credentials gives a hint" grep -q '^hint: ' <<<"$err"

# --- server configuration errors ------------------------------------------------------------
printf '[server]\nbogus_key = 1\n' >"$tmp/bad.toml"
run "$kiln" server --listen 127.0.0.1:0 --data-dir "$tmp/other" --config "$tmp/bad.toml"
check "an unknown config key exits 2" test "$rc" -eq 2
check "... naming the key" grep -q 'server.bogus_key' <<<"$err"
check "... with a hint" grep -q '^hint: ' <<<"$err"
run "$kiln" server --listen 127.0.0.1:0 --data-dir "$tmp/other" --config "$tmp/missing.toml"
check "a missing config file exits 2" test "$rc" -eq 2

run "$kiln" server --listen 127.0.0.1:0 --data-dir "$tmp/data"
check "a second server on the same data dir exits 1" test "$rc" -eq 1
check "... saying DATA_DIR_IN_USE" grep -q DATA_DIR_IN_USE <<<"$err"
run "$kiln" whoami
check "... and the first one keeps serving" test "$rc" -eq 0

# --- a stopped server -------------------------------------------------------------------------
kill -TERM "$server_pid"
server_rc=0
wait "$server_pid" || server_rc=$?
server_pid=""
detail="exit $server_rc"
check "the server exits 0 on SIGTERM" test "$server_rc" -eq 0
check "kiln.addr is removed on exit" test ! -e "$tmp/data/kiln.addr"
check "the log records the stop" grep -q '"kiln server stopped"' "$tmp/server.log"

run "$kiln" whoami
check "a stopped server exits 3" test "$rc" -eq 3
check "a stopped server gives a hint" grep -q '^hint: ' <<<"$err"
check "a stopped server names the URL" grep -qF "${url#http://}" <<<"$err"

e2e_finish
