#!/usr/bin/env bash
# Gateway benchmark (issue 5, bench/gateway/README.md): wrk at 64 keep-alive connections to one
# upstream app (nginx inside the app's instance answering /small and /64k) three ways in the
# same run: direct (wrk inside the app's network namespace), through an nginx reverse proxy
# inside that namespace (upstream keep-alive), and through Kiln's gateway (wrk on the host,
# Host: {app}.localhost). Then wake-on-request: the first response byte of a request to a
# frozen app (gateway.sleep_mode = "freeze"), to a stopped one (a second server with
# sleep_mode = "stop"), and to an awake one (the floor). Prints the tables and writes every
# sample to bench/results/gateway.json. Nothing is asserted: goals are printed for reading;
# the exit status says only whether the run worked.
#
# Usage: bench/gateway/run.sh [path/to/kiln]       (default: $BUILD/kiln; `make bench` runs it)
# Needs root (apps run in runc containers), runc, nsenter, nginx (nginx-light), wrk, curl,
# python3; node and npm for the node app of the wake measurement.
# Environment (defaults in brackets):
#   BUILD [build]            where kiln is, when no path is given
#   DURATION [10s]           wrk -d of each measured run
#   RUNS [3]                 measured runs per path and size; the table quotes medians
#   CONNECTIONS [64]         wrk -c
#   WRK_THREADS [2]          wrk -t
#   WARMUP [2s]              one unmeasured wrk run per path and size first ("0" skips it)
#   PROXY_WORKERS [nproc]    nginx proxy worker_processes = Kiln's I/O threads ([server] threads)
#   WAKES [20]               samples per wake measurement
#   WAKE_APPS [upstream,hello]   apps for the wake measurement: the upstream and/or examples/hello
#   SKIP_THROUGHPUT / SKIP_WAKE [0]   1 skips that part
#   RESULTS [bench/results/gateway.json]
#   NGINX [nginx on PATH, else /usr/sbin/nginx]
#   KILN_COMMIT [this tree's HEAD]   recorded as the binary's commit, when it was built elsewhere
set -euo pipefail
export LC_ALL=C

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/bench/gateway"

BUILD=${BUILD:-build}
[[ $BUILD == /* ]] || BUILD="$ROOT/$BUILD"
DURATION=${DURATION:-10s}
RUNS=${RUNS:-3}
CONNECTIONS=${CONNECTIONS:-64}
WRK_THREADS=${WRK_THREADS:-2}
WARMUP=${WARMUP:-2s}
PROXY_WORKERS=${PROXY_WORKERS:-$(nproc)}
WAKES=${WAKES:-20}
WAKE_APPS=${WAKE_APPS-upstream,hello}
SKIP_THROUGHPUT=${SKIP_THROUGHPUT:-0}
SKIP_WAKE=${SKIP_WAKE:-0}
RESULTS=${RESULTS:-$ROOT/bench/results/gateway.json}

die() {
  echo "bench/gateway: $*" >&2
  exit 1
}
note() { echo "bench/gateway: $*" >&2; }

# --- inputs -----------------------------------------------------------------------------------

KILN=${1:-$BUILD/kiln}
[[ $KILN == /* ]] || KILN="$PWD/$KILN"
[[ -x $KILN ]] || die "no kiln binary at $KILN (build it: make build, or pass its path)"
for n in RUNS CONNECTIONS WRK_THREADS PROXY_WORKERS WAKES; do
  [[ ${!n} =~ ^[1-9][0-9]*$ ]] || die "$n must be a positive integer, not '${!n}'"
done
[[ $(id -u) == 0 ]] || die "needs root: apps run in runc containers, and nsenter (sudo $0)"
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[[ -x $NGINX ]] || die "nginx is not installed (make deps, or apt-get install nginx-light)"
for tool in runc nsenter wrk curl python3; do
  command -v "$tool" >/dev/null || die "$tool is not installed (make deps)"
done
if [[ $SKIP_WAKE != 1 && ,$WAKE_APPS, == *,hello,* ]]; then
  for tool in node npm; do
    command -v "$tool" >/dev/null || die "$tool is not installed (the hello app needs it;" \
      "WAKE_APPS=upstream skips it)"
  done
fi

# --- processes and clean-up -------------------------------------------------------------------

tmp=""
kiln_pids=()
bench_pid=""

# Sends SIG to PID, waits up to 15 s for it to go, then SIGKILLs it. Only our own processes.
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
  # The nginx reverse proxy the benchmark started in the app's namespace (it writes its pid;
  # normally the benchmark has stopped it already). Its master is not our child: poll it.
  if [[ -n $tmp && -s $tmp/proxy/nginx.pid ]]; then
    local npid
    read -r npid <"$tmp/proxy/nginx.pid" || true
    if [[ -n $npid ]] && grep -q "nginx" "/proc/$npid/cmdline" 2>/dev/null; then
      kill -QUIT "$npid" 2>/dev/null || true
      for _ in $(seq 50); do
        kill -0 "$npid" 2>/dev/null || break
        sleep 0.1
      done
      kill -KILL "$npid" 2>/dev/null || true
    fi
  fi
  local pid
  for pid in "${kiln_pids[@]}"; do
    stop "$pid" TERM
  done
  # App instances outlive their server by design; none may stay behind the benchmark.
  local d
  for d in freeze stop; do
    if [[ -n $tmp && -d $tmp/$d ]]; then
      "$KILN" cleanup --data-dir "$tmp/$d" >&2 || note "kiln cleanup of $d failed (exit $?)"
    fi
  done
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

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-gateway.XXXXXX")
mkdir "$tmp/work" "$tmp/proxy"

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
    "the numbers will be skewed"
fi

# --- start the servers ------------------------------------------------------------------------

# start_server NAME SLEEP_MODE: a kiln server on a free port with its own data directory
# TMP/NAME; sets server_url, server_key and server_pid.
start_server() {
  local name=$1 mode=$2
  local dir="$tmp/$name" cfg="$tmp/$name.toml"
  mkdir -m 700 "$dir"
  cat >"$cfg" <<EOF
# bench/gateway, server "$name".
# One I/O thread per core (like nginx's worker_processes auto); the proxy nginx gets as many.
[server]
threads = 0

# The wake measurement calls the API ~100 times a second at most; never a 429.
[limits]
rate_per_second = 1000000
rate_burst = 1000000

# No warm sandbox pool: apps do not use it, and it would only take CPU.
[sandboxes]
pool_size = 0

[gateway]
sleep_mode = "$mode"
# No HTTPS listener: nothing here is measured over TLS, and two servers cannot both take 8443.
tls_port = 0

[log]
level = "warn"
EOF
  # Its own session, as the nginx proxy gets (gateway_bench.py) and as a service would have:
  # with the kernel's autogroup scheduling (on in Debian) a session is a scheduling group, and
  # a proxy that shared wrk's group would share wrk's share of the CPU.
  setsid "$KILN" server --listen 127.0.0.1:0 --data-dir "$dir" --config "$cfg" \
    >"$tmp/$name.log" 2>&1 &
  local pid=$!
  kiln_pids+=("$pid")
  for _ in $(seq 300); do
    kill -0 "$pid" 2>/dev/null || {
      cat "$tmp/$name.log" >&2
      die "kiln ($name) exited during start-up (log above)"
    }
    [[ -s $dir/kiln.addr && -s $dir/admin.key ]] && break
    sleep 0.1
  done
  [[ -s $dir/kiln.addr && -s $dir/admin.key ]] || {
    cat "$tmp/$name.log" >&2
    die "kiln ($name) wrote no $dir/kiln.addr within 30 s"
  }
  local url key
  read -r url <"$dir/kiln.addr"
  read -r key <"$dir/admin.key"
  local code
  code=$(curl -s -o /dev/null -w '%{http_code}' "$url/healthz" || true)
  [[ $code == 200 ]] || die "GET $url/healthz ($name) answered $code"
  server_url=$url server_key=$key server_pid=$pid
  note "kiln ($name: sleep_mode = $mode) on $url (pid $pid), data in $dir"
}
start_server freeze freeze
url_freeze=$server_url key_freeze=$server_key pid_freeze=$server_pid
url_stop="" key_stop=""
if [[ $SKIP_WAKE != 1 ]]; then
  start_server stop stop
  url_stop=$server_url key_stop=$server_key
fi

# --- metadata for the JSON --------------------------------------------------------------------

# KILN_COMMIT names the commit the binary was built from when it is not this tree's.
commit=${KILN_COMMIT:-$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)}
dirty=false
if [[ -z ${KILN_COMMIT:-} && -n $(git -C "$ROOT" status --porcelain --untracked-files=no \
  2>/dev/null) ]]; then
  dirty=true
fi
meta=$(
  KILN="$KILN" COMMIT="$commit" DIRTY="$dirty" BUSY="$busy_before" NGINX="$NGINX" python3 - <<'EOF'
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
    "tools": {"runc": out(["runc", "--version"]), "wrk": out(["wrk", "-v"]),
              "nginx": out([os.environ["NGINX"], "-v"]), "node": out(["node", "--version"])},
}))
EOF
)

# --- run --------------------------------------------------------------------------------------

mkdir -p "$(dirname "$RESULTS")"
rc=0
python3 "$HERE/gateway_bench.py" --kiln "$KILN" --nginx "$NGINX" --tmp "$tmp" \
  --freeze-url "$url_freeze" --freeze-key "$key_freeze" --freeze-pid "$pid_freeze" \
  --freeze-data "$tmp/freeze" --stop-url "$url_stop" --stop-key "$key_stop" \
  --stop-data "$tmp/stop" --upstream "$HERE/upstream" --proxy-conf "$HERE/proxy.conf.in" \
  --examples "$ROOT/examples" --duration "$DURATION" --runs "$RUNS" \
  --connections "$CONNECTIONS" --wrk-threads "$WRK_THREADS" --warmup "$WARMUP" \
  --proxy-workers "$PROXY_WORKERS" --wakes "$WAKES" --wake-apps "$WAKE_APPS" \
  --skip-throughput "$SKIP_THROUGHPUT" --skip-wake "$SKIP_WAKE" \
  --results "$RESULTS" --meta "$meta" &
bench_pid=$!
wait "$bench_pid" || rc=$?
bench_pid=""
if ((rc == 0 || rc == 2)); then
  # Again after the run (the apps idle): another build or test that started meanwhile shows here.
  busy_after=$(busy_cores)
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
for name in freeze stop; do
  if [[ -f $tmp/$name.log ]] && grep -qi '"level":"error"' "$tmp/$name.log"; then
    note "kiln ($name) logged errors during the run:"
    grep -i '"level":"error"' "$tmp/$name.log" | tail -20 >&2
  fi
done
exit "$rc"
