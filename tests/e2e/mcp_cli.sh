#!/usr/bin/env bash
# End-to-end: `kiln mcp` (the stdio bridge to /mcp) and `kiln mcp config`, driven as an MCP
# client drives them, against a real `kiln server`. When kiln-mcp-fixtures sits beside kiln
# (test builds), a second server with the conformance fixture tools checks the event-stream
# paths too: a question to the client (sampling) answered while the call waits, progress
# notifications, and a stream the server closes early that the bridge resumes.
# Usage: bash tests/e2e/mcp_cli.sh /path/to/kiln
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
e2e_init mcp_cli "$@"
fixtures="$(dirname "$kiln")/kiln-mcp-fixtures"
fixture_pid=""
stop_fixture_server() {
  if [[ -n "$fixture_pid" ]]; then
    kill -TERM "$fixture_pid" 2>/dev/null || true
    wait "$fixture_pid" 2>/dev/null || true
    "$kiln" cleanup --data-dir "$tmp/fixture-data" >/dev/null 2>&1 || true
  fi
  e2e_cleanup
}
trap stop_fixture_server EXIT

# start_server BINARY DATA_DIR LISTEN LOG: starts a server, waits for its address file; sets
# $started_pid.
start_server() {
  rm -f "$2/kiln.addr"
  "$1" server --listen "$3" --data-dir "$2" >>"$4.out" 2>>"$4" &
  started_pid=$!
  for _ in $(seq 1 200); do
    [[ -s "$2/kiln.addr" ]] && return 0
    kill -0 "$started_pid" 2>/dev/null || return 1
    sleep 0.05
  done
  return 1
}

mkdir -p "$tmp/home" "$tmp/empty-home"
cd "$tmp"  # no stray ./kiln.toml is picked up
if ! start_server "$kiln" "$tmp/data" 127.0.0.1:0 "$tmp/server.log"; then
  fail "server starts and writes kiln.addr" "$(tail -n 20 "$tmp/server.log")"
  e2e_finish
  exit 1
fi
server_pid=$started_pid
url="$(head -n 1 "$tmp/data/kiln.addr")"
admin_key="$(head -n 1 "$tmp/data/admin.key")"
pass "server starts ($url)"

export HOME="$tmp/home"
unset KILN_URL KILN_API_KEY XDG_CONFIG_HOME
run "$kiln" login --url "$url" --api-key "$admin_key"
check "login succeeds" test "$rc" -eq 0

# --- kiln mcp config ---------------------------------------------------------------------------
run "$kiln" mcp config --client claude
check "config --client claude succeeds" test "$rc" -eq 0
check "... prints mcpServers JSON that starts this binary with its key and URL" python3 -c '
import json, sys
d = json.loads(sys.argv[1])
s = d["mcpServers"]["kiln"]
assert s["command"] == sys.argv[2], s
assert s["args"] == ["mcp"], s
assert s["env"] == {"KILN_URL": sys.argv[3], "KILN_API_KEY": sys.argv[4]}, s
' "$out" "$kiln" "$url" "$admin_key"
check "... and says on stderr where it goes" grep -q "claude_desktop_config.json" <<<"$err"

run "$kiln" mcp config --client cursor
check "config --client cursor succeeds" test "$rc" -eq 0
check "... prints mcpServers JSON for ~/.cursor/mcp.json" python3 -c '
import json, sys
s = json.loads(sys.argv[1])["mcpServers"]["kiln"]
assert s["command"] == sys.argv[2] and s["args"] == ["mcp"], s
assert s["env"]["KILN_API_KEY"] == sys.argv[3], s
' "$out" "$kiln" "$admin_key"
check "... and names ~/.cursor/mcp.json on stderr" grep -qF "~/.cursor/mcp.json" <<<"$err"

run "$kiln" mcp config --client codex --url "http://127.0.0.1:9/"
check "config --client codex succeeds" test "$rc" -eq 0
check "... prints [mcp_servers.kiln] TOML with the binary, the key and the --url" python3 -c '
import sys, tomllib
s = tomllib.loads(sys.argv[1])["mcp_servers"]["kiln"]
assert s["command"] == sys.argv[2] and s["args"] == ["mcp"], s
assert s["env"] == {"KILN_URL": "http://127.0.0.1:9", "KILN_API_KEY": sys.argv[3]}, s
' "$out" "$kiln" "$admin_key"
check "... and names ~/.codex/config.toml on stderr" grep -qF "~/.codex/config.toml" <<<"$err"

run "$kiln" mcp config --client vscode
check "an unknown client is a usage error (exit 2)" test "$rc" -eq 2
check "... that lists the three clients" grep -q "claude.*cursor.*codex" <<<"$err"
check "... with nothing on stdout" test -z "$out"
run env HOME="$tmp/empty-home" "$kiln" mcp config --client claude
check "config without a key fails like other commands do (exit 3, NOT_LOGGED_IN)" test "$rc" -eq 3
check "... and says to run kiln login" grep -q "kiln login" <<<"$err"

# --- kiln mcp: one scripted session ------------------------------------------------------------
init='{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{"sampling":{}},"clientInfo":{"name":"e2e","version":"1"}}}'
initialized='{"jsonrpc":"2.0","method":"notifications/initialized"}'
printf '%s\n' "$init" "$initialized" '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' \
  '{"jsonrpc":"2.0","id":"p","method":"ping"}' 'this is not json' \
  '{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"apps_list","arguments":{}}}' \
  >"$tmp/session.in"
rc=0
timeout 60 "$kiln" mcp <"$tmp/session.in" >"$tmp/session.out" 2>"$tmp/session.err" || rc=$?
detail="exit $rc; stderr: $(cat "$tmp/session.err")"
check "kiln mcp exits 0 at the end of stdin" test "$rc" -eq 0
detail="$(cat "$tmp/session.out")"
check "stdout holds only JSON-RPC messages, one a line, every request answered once" python3 -c '
import json, sys
lines = open(sys.argv[1]).read().split("\n")
assert lines[-1] == "", "the last line has no newline"
msgs = [json.loads(l) for l in lines[:-1]]
assert all(m.get("jsonrpc") == "2.0" for m in msgs), msgs
ids = sorted(json.dumps(m.get("id")) for m in msgs)
assert ids == sorted(["1", "2", "\"p\"", "3", "null"]), ids
' "$tmp/session.out"
check "initialize answers the protocol version and serverInfo" python3 -c '
import json, sys
m = {json.dumps(x.get("id")): x for x in map(json.loads, open(sys.argv[1]))}
r = m["1"]["result"]
assert r["protocolVersion"] == "2025-11-25" and r["serverInfo"]["name"] == "kiln", r
' "$tmp/session.out"
check "tools/list answers tools, apps_list among them" python3 -c '
import json, sys
m = {json.dumps(x.get("id")): x for x in map(json.loads, open(sys.argv[1]))}
names = [t["name"] for t in m["2"]["result"]["tools"]]
assert "apps_list" in names, names
' "$tmp/session.out"
check "ping answers an empty result" python3 -c '
import json, sys
m = {json.dumps(x.get("id")): x for x in map(json.loads, open(sys.argv[1]))}
assert m["\"p\""]["result"] == {}, m
' "$tmp/session.out"
check "the bad line gets a parse error (-32700, id null)" python3 -c '
import json, sys
m = {json.dumps(x.get("id")): x for x in map(json.loads, open(sys.argv[1]))}
assert m["null"]["error"]["code"] == -32700, m["null"]
' "$tmp/session.out"
check "tools/call apps_list answers structured content" python3 -c '
import json, sys
m = {json.dumps(x.get("id")): x for x in map(json.loads, open(sys.argv[1]))}
r = m["3"]["result"]
assert r.get("isError") is not True and r["structuredContent"]["items"] == [], r
' "$tmp/session.out"
check "the session is ended (DELETE) without complaint" test "$(grep -c "could not end" "$tmp/session.err")" -eq 0

# The same session with a bridge that sleeps at once (--spin-us 0) answers the same.
rc=0
timeout 60 "$kiln" mcp --spin-us 0 <"$tmp/session.in" >"$tmp/nospin.out" 2>"$tmp/nospin.err" || rc=$?
detail="exit $rc; stderr: $(cat "$tmp/nospin.err")"
check "kiln mcp --spin-us 0 answers the same session" python3 -c '
import json, sys
ids = lambda f: sorted(json.dumps(m.get("id")) for m in map(json.loads, open(f)))
assert ids(sys.argv[1]) == ids(sys.argv[2]), (ids(sys.argv[1]), ids(sys.argv[2]))
' "$tmp/session.out" "$tmp/nospin.out"
run "$kiln" mcp --spin-us -5
check "a negative --spin-us is a usage error (exit 2)" test "$rc" -eq 2

# --- errors reach the MCP client as JSON-RPC errors ---------------------------------------------
# answers_errors FILE CODE WORDS: requests 1 and 2 are answered with JSON-RPC error CODE whose
# message holds WORDS, and nothing else is on stdout.
answers_errors() {
  python3 -c '
import json, sys
msgs = [json.loads(l) for l in open(sys.argv[1])]
assert sorted(m["id"] for m in msgs) == [1, 2], msgs
for m in msgs:
    assert m["error"]["code"] == int(sys.argv[2]), m
    assert sys.argv[3] in m["error"]["message"], m
' "$@"
}
printf '%s\n' "$init" "$initialized" '{"jsonrpc":"2.0","id":2,"method":"tools/list"}' >"$tmp/errors.in"
for case in "wrong key|env KILN_API_KEY=kiln_sk_wrong|-32001|kiln login" \
  "no key|env HOME=$tmp/empty-home|-32001|KILN_API_KEY" \
  "no server|env KILN_URL=http://127.0.0.1:1|-32603|kiln server"; do
  IFS='|' read -r name prefix code words <<<"$case"
  rc=0
  # shellcheck disable=SC2086
  timeout 60 $prefix "$kiln" mcp <"$tmp/errors.in" >"$tmp/errors.out" 2>"$tmp/errors.err" || rc=$?
  detail="exit $rc; stdout: $(cat "$tmp/errors.out"); stderr: $(cat "$tmp/errors.err")"
  check "$name: kiln mcp keeps running and exits 0" test "$rc" -eq 0
  check "$name: each request gets a JSON-RPC error $code that says \"$words\"" \
    answers_errors "$tmp/errors.out" "$code" "$words"
done
timeout 60 env HOME="$tmp/empty-home" "$kiln" mcp <"$tmp/errors.in" >/dev/null 2>"$tmp/errors.err" || true
check "no key: stderr says to run kiln login" grep -q "kiln login" "$tmp/errors.err"

# --- an interactive client: answers while calls wait, a server restart ---------------------------
cat >"$tmp/client.py" <<'EOF'
# A small MCP client over `kiln mcp`: client.py SCENARIO BINARY [ARGS...].
import json, os, select, subprocess, sys, time

scenario, argv = sys.argv[1], sys.argv[2:]
p = subprocess.Popen(argv + ["mcp"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                     stderr=open(os.environ["BRIDGE_LOG"], "w"))
buf = b""

def send(m):
    p.stdin.write((json.dumps(m) + "\n").encode())
    p.stdin.flush()

def read(timeout=20):
    global buf
    end = time.time() + timeout
    while b"\n" not in buf:
        left = end - time.time()
        assert left > 0, "no message from kiln mcp within %ss" % timeout
        if select.select([p.stdout], [], [], left)[0]:
            piece = os.read(p.stdout.fileno(), 65536)
            assert piece, "kiln mcp closed stdout"
            buf += piece
    line, buf = buf.split(b"\n", 1)
    return json.loads(line)

def call(id, method, params=None):
    send({"jsonrpc": "2.0", "id": id, "method": method, "params": params or {}})

call(1, "initialize", {"protocolVersion": "2025-11-25", "capabilities": {"sampling": {}},
                       "clientInfo": {"name": "e2e", "version": "1"}})
assert read()["id"] == 1
send({"jsonrpc": "2.0", "method": "notifications/initialized"})

if scenario == "restart":
    call(2, "tools/list")
    assert read()["result"]["tools"]
    print("ready", flush=True)
    sys.stdin.readline()  # the script restarts the server meanwhile
    call(3, "tools/list")
    m = read()
    assert m["id"] == 3 and m["result"]["tools"], m
elif scenario == "sampling":
    call(2, "tools/call", {"name": "test_sampling", "arguments": {"prompt": "hi"}})
    ask = read()
    assert ask["method"] == "sampling/createMessage", ask
    call("p", "ping")  # the call waits for our answer: a ping must not wait behind it
    m = read()
    assert m == {"jsonrpc": "2.0", "id": "p", "result": {}}, m
    send({"jsonrpc": "2.0", "id": ask["id"], "result": {
        "role": "assistant", "model": "e2e", "content": {"type": "text", "text": "pong"}}})
    m = read()
    assert m["id"] == 2 and "LLM response: pong" in json.dumps(m["result"]), m
elif scenario == "progress":
    call(2, "tools/call", {"name": "test_tool_with_progress", "arguments": {},
                           "_meta": {"progressToken": "tok"}})
    seen = []
    while True:
        m = read()
        if m.get("id") == 2:
            break
        assert m["method"] == "notifications/progress", m
        seen.append(m["params"]["progress"])
    assert seen == [0, 50, 100], seen
elif scenario == "reconnect":
    call(2, "tools/call", {"name": "test_reconnection", "arguments": {}})
    m = read()
    assert m["id"] == 2 and "Reconnection test completed" in json.dumps(m["result"]), m
p.stdin.close()
assert p.wait(timeout=20) == 0, "exit %s" % p.returncode
print("done", flush=True)
EOF
export BRIDGE_LOG="$tmp/bridge.log"

port="${url##*:}"
coproc CLIENT { python3 "$tmp/client.py" restart "$kiln" 2>&1; }
client_pid=$CLIENT_PID
# Copies of the pipes: bash forgets ${CLIENT[@]} as soon as the client exits.
exec {client_out_fd}<&"${CLIENT[0]}" {client_in_fd}>&"${CLIENT[1]}"
read -r -t 30 line <&"$client_out_fd" || line="(nothing)"
detail="$line; $(cat "$BRIDGE_LOG")"
check "restart: the bridge serves before the restart" test "$line" = ready
kill -TERM "$server_pid" && wait "$server_pid" || true
if start_server "$kiln" "$tmp/data" "127.0.0.1:$port" "$tmp/server.log"; then
  server_pid=$started_pid
  pass "the server restarts on the same port"
else
  fail "the server restarts on the same port" "$(tail -n 20 "$tmp/server.log")"
fi
echo go >&"$client_in_fd"
exec {client_in_fd}>&-
client_out="$(timeout 60 cat <&"$client_out_fd" || true)"
exec {client_out_fd}<&-
wait "$client_pid" 2>/dev/null || true
detail="$client_out; $(cat "$BRIDGE_LOG")"
check "restart: the next request is answered in a new session, the client sees no error" \
  test "$client_out" = done
check "restart: the bridge logs the new session on stderr" grep -q "started a new one" "$BRIDGE_LOG"

if [[ -x "$fixtures" ]]; then
  if start_server "$fixtures" "$tmp/fixture-data" 127.0.0.1:0 "$tmp/fixture.log"; then
    fixture_pid=$started_pid
    fixture_url="$(head -n 1 "$tmp/fixture-data/kiln.addr")"
    fixture_key="$(head -n 1 "$tmp/fixture-data/admin.key")"
    for scenario in sampling progress reconnect; do
      client_out="$(KILN_URL="$fixture_url" KILN_API_KEY="$fixture_key" timeout 60 \
        python3 "$tmp/client.py" "$scenario" "$kiln" 2>&1 || true)"
      detail="$client_out; $(cat "$BRIDGE_LOG")"
      check "event stream ($scenario): the client gets every message and the answer" \
        test "$client_out" = done
    done
  else
    fail "the fixture server starts" "$(tail -n 20 "$tmp/fixture.log")"
  fi
else
  echo "skip - event-stream scenarios ($fixtures not built)"
fi

e2e_finish
