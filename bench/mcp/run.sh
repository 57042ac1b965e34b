#!/usr/bin/env bash
# MCP benchmark (bench/mcp/README.md): the round trip of an MCP tools/call of a read tool
# (apps_get) over Streamable HTTP (POST /mcp) and over stdio (`kiln mcp`), beside the same
# operation over REST (GET /v1/apps/{app}), in the same run, on one server with one key.
# Sequential calls, one kept-alive connection per target; rounds take turns between the
# targets. Prints a table and writes every round's numbers to bench/results/mcp.json. Nothing
# is asserted: the goal (MCP <= 1.2x REST at p50 and p99) is printed for reading; the exit
# status says only whether the run worked (2: it ran, but some calls had a wrong answer).
#
# Usage: bench/mcp/run.sh [path/to/kiln]       (default: $BUILD/kiln; `make bench` runs it)
# Needs python3 and curl. Runs as any user (no app is deployed, nothing runs in a container).
# Environment (defaults in brackets):
#   BUILD [build]              where kiln is, when no path is given
#   CALLS [2000]               timed calls per target per round
#   WARMUP [200]               unmeasured calls per target before each of its rounds
#   RUNS [3]                   rounds; the table quotes medians across rounds
#   TARGETS [rest,mcp_http,mcp_stdio,mcp_stdio_nospin,stdio_floor,rest_new_conn]
#                              what is measured (rest always is)
#   CLIENT [raw]               HTTP client: raw (a minimal one on a socket) or http.client
#   RESULTS [bench/results/mcp.json]
#   KILN_COMMIT [this tree's HEAD]   recorded as the binary's commit, when it was built elsewhere
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/bench/mcp"

BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD="$ROOT/$BUILD"
CALLS=${CALLS:-2000}
WARMUP=${WARMUP:-200}
RUNS=${RUNS:-3}
TARGETS=${TARGETS:-rest,mcp_http,mcp_stdio,mcp_stdio_nospin,stdio_floor,rest_new_conn}
CLIENT=${CLIENT:-raw}
RESULTS=${RESULTS:-$ROOT/bench/results/mcp.json}

die() {
  echo "bench/mcp: $*" >&2
  exit 1
}
note() { echo "bench/mcp: $*" >&2; }

# --- inputs -----------------------------------------------------------------------------------

KILN=${1:-$BUILD/kiln}
[[ $KILN == /* ]] || KILN="$PWD/$KILN"
[[ -x $KILN ]] || die "no kiln binary at $KILN (build it: make build, or pass its path)"
for n in CALLS RUNS; do
  [[ ${!n} =~ ^[1-9][0-9]*$ ]] || die "$n must be a positive integer, not '${!n}'"
done
[[ $WARMUP =~ ^[0-9]+$ ]] || die "WARMUP must be a non-negative integer, not '$WARMUP'"
[[ $CLIENT == raw || $CLIENT == http.client ]] || die "CLIENT must be raw or http.client"
for tool in python3 curl; do
  command -v "$tool" >/dev/null || die "$tool is not installed (make deps)"
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
  if [[ -n $tmp && -d $tmp/kiln ]]; then
    "$KILN" cleanup --data-dir "$tmp/kiln" >/dev/null 2>&1 || note "kiln cleanup failed (exit $?)"
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

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-mcp.XXXXXX")

# --- is the machine idle? ---------------------------------------------------------------------

CLK_TCK=$(getconf CLK_TCK)
busy_ticks() {
  local user nice system irq softirq
  read -r _ user nice system _ _ irq softirq _ </proc/stat
  echo $((user + nice + system + irq + softirq))
}
busy_cores() {
  local b0
  b0=$(busy_ticks)
  sleep 1
  awk -v a="$b0" -v b="$(busy_ticks)" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", (b - a) / hz }'
}
busy_before=$(busy_cores)
if awk -v b="$busy_before" 'BEGIN { exit !(b > 0.25) }'; then
  note "warning: the machine is not idle ($busy_before cores busy over 1 s before the start);" \
    "the numbers will be skewed (the ratios less so: the targets take turns)"
fi

# --- start kiln -------------------------------------------------------------------------------

dir="$tmp/kiln"
cfg="$tmp/kiln.toml"
mkdir -m 700 "$dir"
cat >"$cfg" <<'EOF'
# bench/mcp: thousands of calls a second on one key must never see 429 (REST and /mcp share
# the per-key rate limiter).
[limits]
rate_per_second = 1000000
rate_burst = 1000000

# No warm sandbox pool: nothing here runs in an instance, and it would only take CPU.
[sandboxes]
pool_size = 0

# No HTTPS listener: it would need a fixed free port, and this benchmark speaks plain HTTP.
[gateway]
tls_port = 0

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

commit=${KILN_COMMIT:-$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)}
dirty=false
if [[ -z ${KILN_COMMIT:-} && -n $(git -C "$ROOT" status --porcelain --untracked-files=no \
  2>/dev/null) ]]; then
  dirty=true
fi
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
                "busy_cores_before_start": float(os.environ["BUSY"])},
    "kiln": {"binary": os.environ["KILN"], "git_commit": os.environ["COMMIT"],
             "git_dirty": os.environ["DIRTY"] == "true",
             "version": out([os.environ["KILN"], "--version"])},
    "tools": {"python": platform.python_version()},
}))
EOF
)

# --- run --------------------------------------------------------------------------------------

mkdir -p "$(dirname "$RESULTS")"
rc=0
python3 "$HERE/mcp_bench.py" --kiln "$KILN" --url "$url" --key "$key" \
  --server-pid "$kiln_pid" --tmp "$tmp" --calls "$CALLS" --warmup "$WARMUP" --runs "$RUNS" \
  --targets "$TARGETS" --client "$CLIENT" --results "$RESULTS" --meta "$meta" &
bench_pid=$!
wait "$bench_pid" || rc=$?
bench_pid=""
if ((rc == 0 || rc == 2)); then
  # Again after the run: another build or test that started meanwhile shows here.
  busy_after=$(busy_cores)
  read -r load1 _ </proc/loadavg
  echo "machine: $busy_before cores busy before the start, $busy_after after the run" \
    "(load average $load1 at the end; $(nproc) cores shared by client, server and bridge)"
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
for log in "$tmp/kiln.log" "$tmp/kiln-mcp.log"; do
  if [[ -f $log ]] && grep -qi '"level":"error"' "$log"; then
    note "$(basename "$log") has errors:"
    grep -i '"level":"error"' "$log" | tail -20 >&2
  fi
done
exit "$rc"
