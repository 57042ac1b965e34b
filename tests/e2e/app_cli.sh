#!/usr/bin/env bash
# End-to-end: apps driven through the `kiln` CLI against a real server, real runc and the
# gateway, as a developer would from a terminal: deploy a folder, open its URL, set a secret,
# redeploy, break a deploy, roll back, delete.
# Usage: bash tests/e2e/app_cli.sh /path/to/kiln
set -euo pipefail

source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
examples="$(realpath "$(dirname "${BASH_SOURCE[0]}")/../../examples")"
e2e_init app_cli "$@"

cd "$tmp"
printf '[sandboxes]\npool_size = 0\n' >"$tmp/kiln.toml"
e2e_start_server "$tmp/data" --config "$tmp/kiln.toml"
export KILN_URL="$url"
export KILN_API_KEY="$(head -n 1 "$tmp/data/admin.key")"
export HOME="$tmp"
port="${KILN_URL##*:}"
rc=0 out="" err=""
app_url="http://hello.localhost:$port/"

# check, showing the last `run`'s exit code and output on failure unless detail says more.
checkr() {
  [[ -n "$detail" ]] || detail="exit $rc; stdout: $out; stderr: $err"
  check "$@"
}
# page: the body the gateway answers for app hello (through the Host header, as a browser
# sends it for hello.localhost).
page() { curl -s --max-time 10 -H 'Host: hello.localhost' "http://127.0.0.1:$port/"; }
# page_is TEXT: the page's body is TEXT (a line); says what it was otherwise.
page_is() {
  local body
  body="$(page)" || true
  detail="got: $body"
  [[ "$body" == "$1" ]]
}

# --- first deploy: examples/hello --------------------------------------------------------
run "$kiln" deploy "$examples/hello" --app hello
checkr "deploy examples/hello exits 0" test "$rc" -eq 0
checkr "... creates the app" grep -q '^Created app hello$' <<<"$out"
for step in source detect release start switch; do
  checkr "... prints step $step as it ends" grep -Eq "^==> $step \\([0-9.]+ s\\) ok$" <<<"$out"
done
checkr "... prints the build plan (node, npm start)" grep -q 'start: npm start' <<<"$out"
checkr "... prints the URL as its last line" \
  grep -Eq "^==> hello is live at ${app_url//./\\.} \\(release rel_[a-z0-9]+\\)$" \
  <<<"$(tail -n 1 <<<"$out")"
first_release="$(sed -nE 's/.*\(release (rel_[a-z0-9]+)\)$/\1/p' <<<"$out")"

checkr "the app answers through the gateway" page_is "Hello from Kiln!"
body="$(curl -s --max-time 10 "$app_url" || true)"
detail="got: $body"
checkr "... and at http://hello.localhost:PORT/ (curl resolves *.localhost)" \
  test "$body" = "Hello from Kiln!"
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Host: nosuchapp.localhost' \
  "http://127.0.0.1:$port/" || true)"
detail="got HTTP $code"
checkr "an unknown app's host answers 404" test "$code" = 404

run "$kiln" apps list
checkr "apps list shows hello running at its URL" \
  grep -Eq "^hello +running +${app_url//./\\.} +$first_release " <<<"$out"
run "$kiln" apps info hello
checkr "apps info shows the URL" grep -Eq "^url +${app_url//./\\.}$" <<<"$out"
checkr "... the status" grep -Eq '^status +running$' <<<"$out"
checkr "... and the live release" grep -Eq "^release +$first_release \\(node\\)" <<<"$out"

# --- env and secrets -----------------------------------------------------------------------
run "$kiln" env set hello SECRET_X=topsecret123 --secret
checkr "env set --secret succeeds" test "$rc" -eq 0
run "$kiln" env set hello GREETING=plain-hello
run "$kiln" env list hello
checkr "env list names the secret" grep -Eq '^SECRET_X +\(secret\) +run$' <<<"$out"
checkr "... and shows a plain value" grep -Eq '^GREETING +plain-hello +run$' <<<"$out"
checkr "... but never the secret's value" bash -c '! grep -q topsecret123 <<<"$1"' _ "$out"
run "$kiln" --json env list hello
checkr "env list --json has the secret's value as null" python3 -c '
import json, sys
v = {e["key"]: e for e in json.loads(sys.argv[1])["vars"]}
assert v["SECRET_X"]["value"] is None and v["SECRET_X"]["secret"] is True, v
' "$out"
run "$kiln" env unset hello GREETING
run "$kiln" env list hello
checkr "env unset removes a variable" bash -c '! grep -q GREETING <<<"$1"' _ "$out"

# --- second deploy: a copy with ignored files, followed live ----------------------------------
src="$tmp/hello2"
cp -r "$examples/hello" "$src"
sed -i 's/Hello from Kiln!/Hello again, v2!/' "$src/server.js"
printf '*.log\nbuild-cache/\n' >"$src/.gitignore"
printf 'notes.md\n' >"$src/.kilnignore"
mkdir -p "$src/build-cache" "$src/sub"
echo debug >"$src/debug.log"
echo cached >"$src/build-cache/blob"
echo private >"$src/notes.md"
echo kept >"$src/kept.txt"
printf 'local.txt\n' >"$src/sub/.gitignore"
echo local >"$src/sub/local.txt"
echo shipped >"$src/sub/shipped.txt"

# A build that takes a while: its first line must be on the terminal while it still runs.
"$kiln" deploy "$src" --app hello --build 'echo build-begins; sleep 3; echo build-ends' \
  >"$tmp/deploy2.out" 2>&1 &
deploy_pid=$!
live=no
for _ in $(seq 1 200); do
  if grep -q '^    build-begins$' "$tmp/deploy2.out"; then
    if kill -0 "$deploy_pid" 2>/dev/null && ! grep -q '^    build-ends$' "$tmp/deploy2.out"; then
      live=yes
    fi
    break
  fi
  kill -0 "$deploy_pid" 2>/dev/null || break
  sleep 0.05
done
rc=0
wait "$deploy_pid" || rc=$?
out="$(cat "$tmp/deploy2.out")"
err=""
checkr "deploy prints the build's output while the build runs" test "$live" = yes
checkr "... exits 0" test "$rc" -eq 0
checkr "... shows the build step" grep -Eq '^==> build \([0-9.]+ s\) ok$' <<<"$out"
checkr "... and ends with the URL" grep -q "^==> hello is live at $app_url " <<<"$out"
checkr "the new release serves" page_is "Hello again, v2!"

run "$kiln" exec hello -- find /app -type f
checkr "exec lists the release in /app" grep -qx /app/server.js <<<"$out"
for f in kept.txt sub/shipped.txt .gitignore .kilnignore package.json; do
  checkr "... $f is deployed" grep -qx "/app/$f" <<<"$out"
done
for f in debug.log build-cache/blob notes.md sub/local.txt; do
  checkr "... $f (ignored) is not" bash -c '! grep -qx "$1" <<<"$2"' _ "/app/$f" "$out"
done
run "$kiln" exec hello -- cat /app/kept.txt
checkr "exec cat reads a deployed file" test "$out" = kept
run "$kiln" exec hello -- cat /app/notes.md
checkr "exec cat of a .kilnignore'd file fails" test "$rc" -ne 0
run "$kiln" exec hello -- sh -c 'exit 3'
checkr "exec exits with the command's code (3)" test "$rc" -eq 3
run "$kiln" exec hello -- sh -c 'printf %s "$SECRET_X"'
checkr "the secret set before the deploy is in the app's environment" test "$out" = topsecret123

# --- runtime logs ------------------------------------------------------------------------
run "$kiln" logs hello
checkr "logs shows the app's stdout" \
  grep -Eq '^[0-9]{4}-[0-9]{2}-[0-9]{2}T[^ ]+ stdout hello listening on port 3000$' <<<"$out"

# --- a deploy that fails leaves the old release serving --------------------------------------
run "$kiln" deploy "$src" --app hello --start 'exit 1'
checkr "a deploy whose app exits fails (exit 1)" test "$rc" -eq 1
checkr "... prints the failing step" grep -q '^==> start ([0-9.]* s) failed$' <<<"$out"
checkr "... skips the switch" grep -q '^==> switch skipped$' <<<"$out"
failure="$err"
checkr "... and names the step on stderr" grep -q 'failed at step start: ' <<<"$failure"
detail="$failure"
checkr "... and the error code" grep -q '(APP_CRASHED)' <<<"$failure"
checkr "... does not print a URL as live" bash -c '! grep -q "is live at" <<<"$1"' _ "$out"
checkr "the previous release still serves" page_is "Hello again, v2!"

run "$kiln" deploy "$src" --app hello --start 'echo going-down >&2; exit 7'
checkr "a start command that exits 7 fails the deploy" test "$rc" -eq 1
checkr "... with the app's output and its code" \
  bash -c 'grep -q going-down <<<"$1" && grep -q "exit code 7" <<<"$1"' _ "$err"
checkr "... and the previous release still serves" page_is "Hello again, v2!"

# --- rollback and deployments ------------------------------------------------------------------
run "$kiln" rollback hello
checkr "rollback succeeds" test "$rc" -eq 0
checkr "... back to the first release" grep -q "release $first_release is live at $app_url" <<<"$out"
checkr "the first page is back" page_is "Hello from Kiln!"

run "$kiln" deployments list hello
detail="$out"
checkr "deployments list shows the rollback live" grep -Eq '^dep_[a-z0-9]+ +rollback +live ' <<<"$out"
checkr "... the failed deploys" test "$(grep -Ec '^dep_[a-z0-9]+ +deploy +failed ' <<<"$out")" -eq 2
checkr "... and the first deploy" grep -Eq "^dep_[a-z0-9]+ +deploy +[a-z]+ +upload .* $first_release " <<<"$out"
failed_dep="$(grep -E '^dep_[a-z0-9]+ +deploy +failed ' <<<"$out" | tail -n 1 | cut -d' ' -f1)"
run "$kiln" deployments get "$failed_dep"
checkr "deployments get shows the failed step" grep -Eq '^start +failed ' <<<"$out"
detail="$out"
checkr "... and its error" bash -c 'grep -q "^error at start: " <<<"$1" && grep -q "(APP_CRASHED)" <<<"$1"' _ "$out"
run "$kiln" logs --deployment "$failed_dep"
checkr "logs --deployment shows its steps" grep -q '^==> start$' <<<"$out"

# --- delete ------------------------------------------------------------------------------------
run "$kiln" apps delete hello </dev/null
checkr "apps delete without --yes and no terminal refuses (exit 2)" test "$rc" -eq 2
checkr "... and the app still serves" page_is "Hello from Kiln!"
run "$kiln" apps delete hello --yes
checkr "apps delete --yes succeeds" test "$rc" -eq 0
run "$kiln" apps list
checkr "apps list no longer shows it" bash -c '! grep -q "^hello " <<<"$1"' _ "$out"
run "$kiln" apps info hello
checkr "apps info says APP_NOT_FOUND" grep -q APP_NOT_FOUND <<<"$err"
code="$(curl -s -o /dev/null -w '%{http_code}' --max-time 10 -H 'Host: hello.localhost' \
  "http://127.0.0.1:$port/" || true)"
detail="got HTTP $code"
checkr "its URL answers 404" test "$code" = 404
detail="$(ls "$tmp/data/instances" 2>&1)"
checkr "no instance is left" test -z "$(ls -A "$tmp/data/instances" 2>/dev/null)"

e2e_finish
