# Shared by the e2e scripts: sourced, never run (CMakeLists.txt leaves it out). Sets up `$kiln` and `$tmp`, the pass/fail
# counters and their helpers, and a clean-up that stops the server, removes every instance it
# left (instances outlive their server by design) and deletes `$tmp`.
#   e2e_init NAME "$@"      # in the script, before anything else
#   e2e_start_server DIR [ARGS...]   # a server on a free port: $url, $server_pid
kiln=""
tmp=""
server_pid=""
url=""
passed=0
failed=0
detail=""

e2e_init() {
  local name="$1"
  kiln="$(realpath "${2:?usage: $name.sh /path/to/kiln}")"
  tmp="$(mktemp -d "/tmp/kiln-e2e-$name-XXXXXX")"
  trap e2e_cleanup EXIT
}

e2e_cleanup() {
  if [[ -n "$server_pid" ]] && kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  "$kiln" cleanup --data-dir "$tmp/data" >/dev/null 2>&1 || true
  if ((failed > 0)) && [[ -f "$tmp/server.log" ]]; then
    echo "---- server.log (tail) ----" >&2
    tail -n 30 "$tmp/server.log" >&2 || true
  fi
  rm -rf "$tmp"
}

# e2e_start_server DATA_DIR [SERVER ARGS...]: starts `$kiln server --listen 127.0.0.1:0
# --data-dir DATA_DIR ARGS...` in the background (stdout to $tmp/server.out, stderr to
# $tmp/server.log), sets $server_pid, waits for its address file and sets $url. When the
# server does not come up, counts a failure with its log, prints the summary and exits 1.
e2e_start_server() {
  local data="$1"
  shift
  rm -f "$data/kiln.addr"
  "$kiln" server --listen 127.0.0.1:0 --data-dir "$data" "$@" \
    >>"$tmp/server.out" 2>>"$tmp/server.log" &
  server_pid=$!
  for _ in $(seq 1 400); do
    [[ -s "$data/kiln.addr" ]] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  if [[ ! -s "$data/kiln.addr" ]]; then
    fail "server starts and writes kiln.addr" "$(tail -n 20 "$tmp/server.log")"
    e2e_finish
    exit 1
  fi
  url="$(head -n 1 "$data/kiln.addr")"
}

pass() {
  passed=$((passed + 1))
  echo "ok - $1"
}
fail() {
  failed=$((failed + 1))
  echo "FAIL - $1" >&2
  if [[ -n "${2:-}" ]]; then printf '%s\n' "$2" | sed 's/^/    /' >&2; fi
}
# check NAME CONDITION...: runs the condition (a command), counts the result.
check() {
  local name="$1"
  shift
  if "$@"; then pass "$name"; else fail "$name" "${detail:-}"; fi
  detail=""
}
# run CMD...: runs a command, capturing stdout in $out, stderr in $err and the exit code in $rc.
run() {
  rc=0
  out="$("$@" 2>"$tmp/stderr")" || rc=$?
  err="$(cat "$tmp/stderr")"
  detail="exit $rc; stdout: $out; stderr: $err"
}
# The summary line, and the script's exit status.
e2e_finish() {
  echo "$passed passed, $failed failed"
  ((failed == 0))
}
