# Shared by the e2e scripts: sourced, never run (CMakeLists.txt leaves it out). Sets up `$kiln` and `$tmp`, the pass/fail
# counters and their helpers, and a clean-up that stops the server, removes every instance it
# left (instances outlive their server by design) and deletes `$tmp`.
#   e2e_init NAME "$@"      # in the script, before anything else
kiln=""
tmp=""
server_pid=""
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
