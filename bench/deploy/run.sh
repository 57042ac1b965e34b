#!/usr/bin/env bash
# Deployment benchmark (bench/deploy/README.md): upload -> first 200 OK from the new release for
# the examples static, node, hello and python, beside the same start command run directly on
# the host; rollback -> first 200 OK from the old release; failed requests (wrk) while an app
# is redeployed under load. Prints a table and writes every sample to bench/results/deploy.json.
# Nothing is asserted: the goals are printed for reading, and the exit status only says whether
# the run worked (2: it ran, but some deploys or rollbacks failed; they are in the JSON).
#
# Usage: bench/deploy/run.sh [path/to/kiln]       (default: $BUILD/kiln; `make bench` runs it)
# Needs root (apps run in runc containers), runc, wrk, curl, tar, node, npm, python3.
# Environment (defaults in brackets):
#   BUILD [build]              where kiln is, when no path is given
#   ITERATIONS [10]            measured deploys per example (after one unmeasured first deploy)
#   ROLLBACKS [10]             measured rollbacks per app in ROLLBACK_APPS
#   REDEPLOYS [10]             redeploys of LOAD_APP while wrk runs ("0" skips the load test)
#   APPS [static,node,hello,python]   examples to deploy (folders of examples/)
#   BARE_APPS [node]           also deployed with start = their scripts.start, without npm
#   ROLLBACK_APPS [static,node]
#   LOAD_APP [node]
#   CONNECTIONS [16]  WRK_THREADS [2]   wrk -c and -t during the redeploys
#   POLL_MS [5]                how often GET /v1/deployments/{id} is polled
#   SETTLE_MS [1000]           pause after each measured deploy or rollback
#   RESULTS [bench/results/deploy.json]
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/bench/deploy"

BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD="$ROOT/$BUILD"
ITERATIONS=${ITERATIONS:-10}
ROLLBACKS=${ROLLBACKS:-10}
REDEPLOYS=${REDEPLOYS:-10}
APPS=${APPS:-static,node,hello,python}
BARE_APPS=${BARE_APPS-node}
ROLLBACK_APPS=${ROLLBACK_APPS:-static,node}
LOAD_APP=${LOAD_APP:-node}
CONNECTIONS=${CONNECTIONS:-16}
WRK_THREADS=${WRK_THREADS:-2}
POLL_MS=${POLL_MS:-5}
SETTLE_MS=${SETTLE_MS:-1000}
RESULTS=${RESULTS:-$ROOT/bench/results/deploy.json}

die() {
  echo "bench/deploy: $*" >&2
  exit 1
}
note() { echo "bench/deploy: $*" >&2; }

# --- inputs -----------------------------------------------------------------------------------

KILN=${1:-$BUILD/kiln}
[[ $KILN == /* ]] || KILN="$PWD/$KILN"
[[ -x $KILN ]] || die "no kiln binary at $KILN (build it: make build, or pass its path)"
for n in ITERATIONS ROLLBACKS REDEPLOYS CONNECTIONS WRK_THREADS; do
  [[ ${!n} =~ ^[0-9]+$ ]] || die "$n must be a non-negative integer, not '${!n}'"
done
((ITERATIONS > 0)) || die "ITERATIONS must be at least 1"
[[ $(id -u) == 0 ]] || die "needs root: apps run in runc containers (sudo $0)"
for tool in runc wrk curl tar node npm python3; do
  command -v "$tool" >/dev/null || die "$tool is not installed (make deps)"
done
IFS=, read -ra app_list <<<"$APPS,$ROLLBACK_APPS,$LOAD_APP"
for a in "${app_list[@]}"; do
  [[ -z $a || -d $ROOT/examples/$a ]] || die "no example '$a' in $ROOT/examples"
done

# --- processes and clean-up -------------------------------------------------------------------

tmp=""
kiln_pid=""
bench_pid=""

# Sends SIG to PID, waits up to 15 s for it to go, then SIGKILLs it. Only our own children.
# shellcheck disable=SC2317  # stop and cleanup run from the EXIT trap
stop() {
  local pid=$1 sig=$2
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 150); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    note "pid $pid did not stop within 15 s of SIG$sig; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

# shellcheck disable=SC2317
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop "$bench_pid" TERM
  stop "$kiln_pid" TERM
  # App instances outlive their server by design; none may stay behind the benchmark.
  if [[ -n $tmp && -d $tmp/kiln ]]; then
    "$KILN" cleanup --data-dir "$tmp/kiln" >&2 || note "kiln cleanup failed (exit $?)"
  fi
  if [[ -n $tmp && -d $tmp ]]; then
    if grep -q " $tmp/" /proc/self/mountinfo; then
      note "mounts are left under $tmp; not removing it"
    else
      rm -rf "$tmp"
    fi
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-deploy.XXXXXX")
mkdir "$tmp/work"

# --- is the machine idle? ---------------------------------------------------------------------

CLK_TCK=$(getconf CLK_TCK)
busy_ticks() {
  local user nice system irq softirq
  read -r _ user nice system _ _ irq softirq _ </proc/stat
  echo $((user + nice + system + irq + softirq))
}
b0=$(busy_ticks)
sleep 1
busy_before=$(awk -v a="$b0" -v b="$(busy_ticks)" -v hz="$CLK_TCK" \
  'BEGIN { printf "%.2f", (b - a) / hz }')
if awk -v b="$busy_before" 'BEGIN { exit !(b > 0.25) }'; then
  note "warning: the machine is not idle ($busy_before cores busy over 1 s before the start);" \
    "the numbers will be skewed"
fi

# --- start kiln -------------------------------------------------------------------------------

dir="$tmp/kiln"
cfg="$tmp/kiln.toml"
mkdir -m 700 "$dir"
cat >"$cfg" <<'EOF'
# bench/deploy: polling every few ms must never see 429.
[limits]
rate_per_second = 1000000
rate_burst = 1000000

# No warm sandbox pool: deployments do not use it, and it would only take CPU at start.
[sandboxes]
pool_size = 0

[log]
level = "warn"
EOF
"$KILN" server --listen 127.0.0.1:0 --data-dir "$dir" --config "$cfg" >"$tmp/kiln.log" 2>&1 &
kiln_pid=$!
for _ in $(seq 300); do
  kill -0 "$kiln_pid" 2>/dev/null || {
    cat "$tmp/kiln.log" >&2
    die "kiln exited during start-up (log above)"
  }
  [[ -s $dir/kiln.addr && -s $dir/admin.key ]] && break
  sleep 0.1
done
[[ -s $dir/kiln.addr && -s $dir/admin.key ]] || {
  cat "$tmp/kiln.log" >&2
  die "kiln wrote no $dir/kiln.addr within 30 s"
}
read -r url <"$dir/kiln.addr"
read -r key <"$dir/admin.key"
code=$(curl -s -o /dev/null -w '%{http_code}' "$url/healthz" || true)
[[ $code == 200 ]] || die "GET $url/healthz answered $code"
note "kiln $KILN on $url (pid $kiln_pid), data in $dir"

# --- metadata for the JSON --------------------------------------------------------------------

commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
dirty=false
[[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]] && dirty=true
meta=$(
  KILN="$KILN" COMMIT="$commit" DIRTY="$dirty" BUSY="$busy_before" python3 - <<'EOF'
import json, os, platform, subprocess, time

def out(cmd):
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (r.stdout or r.stderr).strip().splitlines()[0]
    except Exception:
        return ""

cpu = ""
with open("/proc/cpuinfo") as f:
    for line in f:
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
mem = 0
with open("/proc/meminfo") as f:
    for line in f:
        if line.startswith("MemTotal:"):
            mem = int(line.split()[1])
print(json.dumps({
    "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    "machine": {"nproc": os.cpu_count(), "kernel": platform.release(), "arch": platform.machine(),
                "cpu": cpu, "mem_total_kib": mem,
                "busy_cores_before_start": float(os.environ["BUSY"]),
                "cgroup2": os.path.exists("/sys/fs/cgroup/cgroup.controllers")},
    "kiln": {"binary": os.environ["KILN"], "git_commit": os.environ["COMMIT"],
             "git_dirty": os.environ["DIRTY"] == "true",
             "version": out([os.environ["KILN"], "--version"])},
    "tools": {"runc": out(["runc", "--version"]), "node": out(["node", "--version"]),
              "npm": out(["npm", "--version"]), "wrk": out(["wrk", "-v"])},
}))
EOF
)

# --- run --------------------------------------------------------------------------------------

mkdir -p "$(dirname "$RESULTS")"
rc=0
python3 "$HERE/deploy_bench.py" --url "$url" --key "$key" --work "$tmp/work" \
  --examples "$ROOT/examples" --apps "$APPS" --bare-apps "$BARE_APPS" --iterations "$ITERATIONS" \
  --rollbacks "$ROLLBACKS" --rollback-apps "$ROLLBACK_APPS" --redeploys "$REDEPLOYS" \
  --load-app "$LOAD_APP" --wrk-threads "$WRK_THREADS" --wrk-connections "$CONNECTIONS" \
  --poll-ms "$POLL_MS" --settle-ms "$SETTLE_MS" --results "$RESULTS" --meta "$meta" &
bench_pid=$!
wait "$bench_pid" || rc=$?
bench_pid=""
if ((rc == 0 || rc == 2)); then
  # Again after the run (the apps idle): another build or test that started meanwhile shows here.
  b0=$(busy_ticks)
  sleep 1
  busy_after=$(awk -v a="$b0" -v b="$(busy_ticks)" -v hz="$CLK_TCK" \
    'BEGIN { printf "%.2f", (b - a) / hz }')
  read -r load1 _ </proc/loadavg
  echo "machine: $busy_before cores busy before the start, $busy_after after the run" \
    "(load average $load1 at the end)"
  if awk -v b="$busy_after" 'BEGIN { exit !(b > 0.25) }'; then
    note "warning: the machine was busy after the run; something else ran beside it"
  fi
  python3 - "$RESULTS" "$busy_after" "$load1" <<'PYEOF'
import json, sys
path, busy, load = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
with open(path) as f:
    doc = json.load(f)
doc.setdefault("machine", {}).update(busy_cores_after_run=busy, loadavg_1m_at_end=load)
with open(path + ".tmp", "w") as f:
    json.dump(doc, f, indent=2)
    f.write("\n")
PYEOF
  mv "$RESULTS.tmp" "$RESULTS"
  echo "results: ${RESULTS#"$ROOT"/}"
fi
if grep -qi '"level":"error"\|crit' "$tmp/kiln.log" 2>/dev/null; then
  note "kiln logged errors during the run:"
  grep -i '"level":"error"\|crit' "$tmp/kiln.log" | tail -20 >&2
fi
exit "$rc"
