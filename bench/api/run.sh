#!/usr/bin/env bash
# API benchmark (DESIGN.md §9, bench/README.md): wrk against Kiln's GET /healthz and the
# authenticated GET /v1/keys, beside nginx answering a static 200 on /healthz in the same run.
# Prints a table and writes every run's numbers to bench/results/api.json. Nothing is asserted:
# the goals are printed for reading, and the exit status only says whether the run worked.
#
# Usage: bench/api/run.sh [path/to/kiln]          (default: build/kiln; `make bench` runs it)
# Environment (defaults in brackets):
#   DURATION [10s]      wrk -d of each measured run
#   RUNS [3]            measured runs per target; the table quotes medians
#   CONNECTIONS [64]    wrk -c
#   WRK_THREADS [2]     wrk -t
#   WARMUP [2s]         one unmeasured wrk run per target first ("0" skips it)
#   RESULTS [bench/results/api.json]
#   NGINX [nginx on PATH, else /usr/sbin/nginx]
set -euo pipefail
export LC_ALL=C  # wrk's and awk's numbers use a decimal point

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE="$ROOT/bench/api"

DURATION=${DURATION:-10s}
RUNS=${RUNS:-3}
CONNECTIONS=${CONNECTIONS:-64}
WRK_THREADS=${WRK_THREADS:-2}
WARMUP=${WARMUP:-2s}
RESULTS=${RESULTS:-$ROOT/bench/results/api.json}

# Goals from the issue; printed beside the numbers, never asserted.
GOAL_HEALTHZ_RATIO=0.8
GOAL_KEYS_RPS=20000
GOAL_IDLE_RSS_MIB=30

die() {
  echo "bench/api: $*" >&2
  exit 1
}
note() { echo "bench/api: $*" >&2; }

# --- inputs -----------------------------------------------------------------------------------

KILN=${1:-$ROOT/build/kiln}
[[ $KILN == /* ]] || KILN="$PWD/$KILN"
[[ -x $KILN ]] || die "no kiln binary at $KILN (build it: make build, or pass its path)"
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, not '$RUNS'"
[[ $CONNECTIONS =~ ^[1-9][0-9]*$ ]] || die "CONNECTIONS must be a positive integer"
[[ $WRK_THREADS =~ ^[1-9][0-9]*$ ]] || die "WRK_THREADS must be a positive integer"

command -v wrk >/dev/null || die "wrk is not installed (make deps, or apt-get install wrk)"
command -v curl >/dev/null || die "curl is not installed (make deps)"
NGINX=${NGINX:-$(command -v nginx || echo /usr/sbin/nginx)}
[[ -x $NGINX ]] || die "nginx is not installed (make deps, or apt-get install nginx-light)"

# --- processes and clean-up -------------------------------------------------------------------

tmp=""
kiln_pid=""
nginx_pid=""
nginx_pids=()  # master and workers, for CPU accounting and a last-resort kill
wrk_pid=""

# Sends SIG to PID, waits up to 5 s for it to go, then SIGKILLs it. Only our own children.
stop() {
  local pid=$1 sig=$2
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null || return 0
  kill "-$sig" "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    note "pid $pid did not stop within 5 s of SIG$sig; killing it"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  stop "$wrk_pid" TERM
  stop "$kiln_pid" TERM
  # Instances outlive their server by design; none may stay behind the benchmark.
  [[ -n $tmp && -d $tmp/kiln/instances ]] && "$KILN" cleanup --data-dir "$tmp/kiln" >/dev/null 2>&1
  stop "$nginx_pid" TERM  # fast shutdown: the master stops its workers
  local p
  for p in "${nginx_pids[@]}"; do
    if kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null || true; fi
  done
  [[ -n $tmp && -d $tmp ]] && rm -rf "$tmp"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kiln-bench-api.XXXXXX")

# --- measuring helpers (no forks inside a measured window) ------------------------------------

CLK_TCK=$(getconf CLK_TCK)

# Prints utime+stime (clock ticks) summed over the given PIDs; a PID that is gone counts 0.
cpu_ticks() {
  local total=0 pid line rest
  local -a f
  for pid in "$@"; do
    [[ -r /proc/$pid/stat ]] || continue
    read -r line <"/proc/$pid/stat" || continue
    rest=${line##*) }  # fields after "pid (comm) "; utime and stime are the 12th and 13th
    read -ra f <<<"$rest"
    total=$((total + f[11] + f[12]))
  done
  echo "$total"
}

# Whole-machine CPU from /proc/stat's "cpu" line, in ticks: sets MT_BUSY MT_IDLE MT_STEAL.
machine_ticks() {
  local user nice system idle iowait irq softirq steal rest
  read -r _ user nice system idle iowait irq softirq steal rest </proc/stat
  MT_BUSY=$((user + nice + system + irq + softirq))
  MT_IDLE=$((idle + iowait))
  MT_STEAL=$((steal))
}

# VmRSS (or another /proc/PID/status field), in KiB.
proc_kib() {
  local pid=$1 field=${2:-VmRSS} k v rest
  while read -r k v rest; do
    [[ $k == "$field:" ]] && {
      echo "$v"
      return
    }
  done <"/proc/$pid/status"
  echo 0
}

# User+sys seconds of this shell's reaped children, from the `times` builtin written to FILE
# (a builtin redirected to a file runs in this shell; $(times) would be a fresh subshell).
children_cpu_s() {
  awk 'NR == 2 {
         s = 0
         for (i = 1; i <= 2; i++) { split($i, a, /[ms]/); s += a[1] * 60 + a[2] }
         printf "%.3f", s
       }' "$1"
}

# wrk's output -> "rps p50_ms p99_ms requests non_2xx socket_errors"
parse_wrk() {
  awk '
    function ms(v) {
      if (v ~ /us$/) return substr(v, 1, length(v) - 2) / 1000
      if (v ~ /ms$/) return substr(v, 1, length(v) - 2) + 0
      if (v ~ /s$/)  return substr(v, 1, length(v) - 1) * 1000
      if (v ~ /m$/)  return substr(v, 1, length(v) - 1) * 60000
      if (v ~ /h$/)  return substr(v, 1, length(v) - 1) * 3600000
      return -1
    }
    BEGIN { rps = -1; p50 = -1; p99 = -1; req = 0; non2xx = 0; errs = 0 }
    /^Requests\/sec:/ { rps = $2 }
    $1 == "50%" { p50 = ms($2) }
    $1 == "99%" { p99 = ms($2) }
    / requests in / { req = $1 }
    /Non-2xx or 3xx responses:/ { non2xx = $NF }
    /Socket errors:/ { gsub(/,/, ""); errs = $4 + $6 + $8 + $10 }
    END { printf "%s %.3f %.3f %s %s %s\n", rps, p50, p99, req, non2xx, errs }
  ' "$1"
}

median() {
  printf '%s\n' "$@" | sort -g | awk '{ a[NR] = $1 }
    END { if (NR % 2) printf "%.3f", a[(NR + 1) / 2]; else printf "%.3f", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}

div() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.3f", a / b; else printf "0" }'; }

json_str() {
  local s=$1
  s=${s//\\/\\\\}
  s=${s//\"/\\\"}
  s=${s//$'\n'/\\n}
  s=${s//$'\r'/}
  s=${s//$'\t'/ }
  printf '"%s"' "$s"
}

# --- targets ----------------------------------------------------------------------------------

TARGETS=(nginx_healthz kiln_healthz kiln_keys)
declare -A LABEL=(
  [nginx_healthz]="nginx GET /healthz (static 200, reference)"
  [kiln_healthz]="kiln GET /healthz"
  [kiln_keys]="kiln GET /v1/keys (authenticated)"
)
declare -A SERVER=([nginx_healthz]=nginx [kiln_healthz]=kiln [kiln_keys]=kiln)
declare -A PATH_OF=([nginx_healthz]=/healthz [kiln_healthz]=/healthz [kiln_keys]=/v1/keys)
declare -A URL AUTH

# --- start nginx ------------------------------------------------------------------------------

start_nginx() {
  local dir="$tmp/nginx" port try code
  mkdir -p "$dir"
  for try in $(seq 20); do
    port=$((20000 + RANDOM % 40000))
    sed -e "s|@DIR@|$dir|g" -e "s|@PORT@|$port|g" "$HERE/nginx.conf.in" >"$dir/nginx.conf"
    : >"$dir/error.log"
    "$NGINX" -p "$dir" -c "$dir/nginx.conf" -e "$dir/error.log" >"$dir/stdout.log" 2>&1 &
    nginx_pid=$!
    for _ in $(seq 100); do
      kill -0 "$nginx_pid" 2>/dev/null || break
      code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/healthz" || true)
      if [[ $code == 200 ]]; then
        URL[nginx_healthz]="http://127.0.0.1:$port/healthz"
        mapfile -t nginx_pids < <(echo "$nginx_pid"; pgrep -P "$nginx_pid" || true)
        return 0
      fi
      sleep 0.1
    done
    stop "$nginx_pid" TERM
    nginx_pid=""
    grep -q "Address already in use" "$dir/error.log" "$dir/stdout.log" 2>/dev/null && continue
    cat "$dir/error.log" "$dir/stdout.log" >&2
    die "nginx did not start (try $try, port $port)"
  done
  die "nginx found no free port in 20 tries"
}

# --- start kiln -------------------------------------------------------------------------------

start_kiln() {
  local dir="$tmp/kiln" cfg="$tmp/kiln.toml" base key
  mkdir -m 700 "$dir"
  cat >"$cfg" <<'EOF'
# bench/api: the rate limiter must not answer 429 to a benchmark.
[server]
threads = 0                 # one per core, like nginx's worker_processes auto

[limits]
rate_per_second = 1000000
rate_burst = 1000000

# No warm pool: this benchmark runs no sandbox, and pooled instances would outlive the server.
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
  [[ -s $dir/kiln.addr ]] || {
    cat "$tmp/kiln.log" >&2
    die "kiln wrote no $dir/kiln.addr within 30 s"
  }
  read -r base <"$dir/kiln.addr"
  read -r key <"$dir/admin.key"
  [[ -n $key ]] || die "empty $dir/admin.key"
  URL[kiln_healthz]="$base/healthz"
  URL[kiln_keys]="$base/v1/keys"
  AUTH[kiln_keys]="Authorization: Bearer $key"
}

# curl ... -> "status header_bytes body_bytes"
probe() {
  local t=$1
  local -a h=()
  [[ -n ${AUTH[$t]:-} ]] && h=(-H "${AUTH[$t]}")
  curl -s -o /dev/null -w '%{http_code} %{size_header} %{size_download}\n' "${h[@]}" "${URL[$t]}" ||
    echo "000 0 0"
}

# --- one wrk run ------------------------------------------------------------------------------

# wrk_run TARGET DURATION OUTFILE -> sets W_WALL W_WRK_CPU W_SRV_CPU and, for the whole
# machine, W_BUSY W_IDLE W_STEAL (all in seconds)
wrk_run() {
  local t=$1 d=$2 out=$3 rc=0 srv0 srv1 t0 t1 b0 i0 s0
  local -a h=() pids
  [[ -n ${AUTH[$t]:-} ]] && h=(-H "${AUTH[$t]}")
  if [[ ${SERVER[$t]} == nginx ]]; then pids=("${nginx_pids[@]}"); else pids=("$kiln_pid"); fi
  srv0=$(cpu_ticks "${pids[@]}")
  machine_ticks
  b0=$MT_BUSY i0=$MT_IDLE s0=$MT_STEAL
  times >"$tmp/times0"
  t0=$EPOCHREALTIME
  wrk -t"$WRK_THREADS" -c"$CONNECTIONS" -d"$d" --latency "${h[@]}" "${URL[$t]}" >"$out" 2>&1 &
  wrk_pid=$!
  wait "$wrk_pid" || rc=$?
  wrk_pid=""
  t1=$EPOCHREALTIME
  times >"$tmp/times1"
  machine_ticks
  srv1=$(cpu_ticks "${pids[@]}")
  ((rc == 0)) || {
    cat "$out" >&2
    die "wrk failed (exit $rc) on ${URL[$t]}"
  }
  W_WALL=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.3f", b - a }')
  W_WRK_CPU=$(awk -v a="$(children_cpu_s "$tmp/times0")" -v b="$(children_cpu_s "$tmp/times1")" \
    'BEGIN { printf "%.3f", b - a }')
  W_SRV_CPU=$(awk -v a="$srv0" -v b="$srv1" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / hz }')
  W_BUSY=$(awk -v a="$b0" -v b="$MT_BUSY" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / hz }')
  W_IDLE=$(awk -v a="$i0" -v b="$MT_IDLE" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / hz }')
  W_STEAL=$(awk -v a="$s0" -v b="$MT_STEAL" -v hz="$CLK_TCK" 'BEGIN { printf "%.3f", (b - a) / hz }')
}

# --- run --------------------------------------------------------------------------------------

note "kiln: $KILN"
# Is the machine idle? Anything else running skews every number (bench/README.md, caveats).
machine_ticks
b0=$MT_BUSY
sleep 1
machine_ticks
busy_before=$(awk -v a="$b0" -v b="$MT_BUSY" -v hz="$CLK_TCK" 'BEGIN { printf "%.2f", (b - a) / hz }')
others_wrk=$(pgrep -x wrk | tr '\n' ' ' || true)
if awk -v b="$busy_before" 'BEGIN { exit !(b > 0.25) }' || [[ -n $others_wrk ]]; then
  note "warning: the machine is not idle ($busy_before cores busy over 1 s before the start${others_wrk:+; wrk already running: $others_wrk}); the numbers will be skewed"
fi
start_nginx
start_kiln
note "nginx on ${URL[nginx_healthz]%/healthz} (pids ${nginx_pids[*]}), kiln on ${URL[kiln_healthz]%/healthz} (pid $kiln_pid)"

sleep 0.5
rss_start=$(proc_kib "$kiln_pid")

# Light warm-up: each route answered once per connection pattern, then let it settle.
declare -A HDR_BYTES BODY_BYTES
for t in "${TARGETS[@]}"; do
  for _ in $(seq 20); do probe "$t" >/dev/null; done
  read -r code hb bb < <(probe "$t")
  [[ $code == 200 ]] || die "${LABEL[$t]}: ${URL[$t]} answered $code, not 200"
  HDR_BYTES[$t]=$hb
  BODY_BYTES[$t]=$bb
done
# The list must really be authenticated: without the key it is a 401.
code=$(curl -s -o /dev/null -w '%{http_code}' "${URL[kiln_keys]}" || true)
[[ $code == 401 ]] || die "GET /v1/keys without a key answered $code, not 401"
sleep 1
rss_idle_before=$(proc_kib "$kiln_pid")
nginx_rss_idle=0
for p in "${nginx_pids[@]}"; do nginx_rss_idle=$((nginx_rss_idle + $(proc_kib "$p"))); done

if [[ $WARMUP != 0 && $WARMUP != 0s ]]; then
  for t in "${TARGETS[@]}"; do
    note "warm-up $WARMUP: ${LABEL[$t]}"
    wrk_run "$t" "$WARMUP" "$tmp/warmup-$t.txt"
  done
  sleep 1
fi

declare -A RPS P50 P99 REQS NON2XX ERRS WRKCPU SRVCPU WALL BUSY OTHER IDLE STEAL
n=${#TARGETS[@]}
for ((r = 1; r <= RUNS; r++)); do
  # Targets take turns, and the order rotates each run, so that drift (thermal, noisy
  # neighbours) and "who ran first" fall on every target alike.
  for ((i = 0; i < n; i++)); do
    t=${TARGETS[$(((i + r - 1) % n))]}
    out="$tmp/run$r-$t.txt"
    wrk_run "$t" "$DURATION" "$out"
    read -r rps p50 p99 reqs non2xx errs < <(parse_wrk "$out")
    [[ $rps != -1 ]] || {
      cat "$out" >&2
      die "could not read Requests/sec from wrk's output"
    }
    RPS[$t]+="$rps "
    P50[$t]+="$p50 "
    P99[$t]+="$p99 "
    REQS[$t]+="$reqs "
    NON2XX[$t]+="$non2xx "
    ERRS[$t]+="$errs "
    WRKCPU[$t]+="$(div "$W_WRK_CPU" "$W_WALL") "
    SRVCPU[$t]+="$(div "$W_SRV_CPU" "$W_WALL") "
    WALL[$t]+="$W_WALL "
    BUSY[$t]+="$(div "$W_BUSY" "$W_WALL") "
    OTHER[$t]+="$(awk -v b="$W_BUSY" -v s="$W_SRV_CPU" -v w="$W_WRK_CPU" -v t="$W_WALL" \
      'BEGIN { o = (b - s - w) / t; printf "%.3f", o < 0 ? 0 : o }') "
    IDLE[$t]+="$(div "$W_IDLE" "$W_WALL") "
    STEAL[$t]+="$(div "$W_STEAL" "$W_WALL") "
    note "run $r/$RUNS ${LABEL[$t]}: $rps req/s, p50 $p50 ms, p99 $p99 ms" \
      "(server $(div "$W_SRV_CPU" "$W_WALL") cores, wrk $(div "$W_WRK_CPU" "$W_WALL") cores)"
    ((non2xx == 0 && errs == 0)) ||
      note "  warning: $non2xx non-2xx responses and $errs socket errors in this run"
    sleep 1
  done
done

sleep 2
rss_idle_after=$(proc_kib "$kiln_pid")
rss_peak=$(proc_kib "$kiln_pid" VmHWM)

# --- summary ----------------------------------------------------------------------------------

declare -A M_RPS M_P50 M_P99 M_WRKCPU M_SRVCPU M_BUSY M_OTHER M_IDLE M_STEAL RATIO
for t in "${TARGETS[@]}"; do
  # shellcheck disable=SC2086  # the lists are space-separated numbers
  {
    M_RPS[$t]=$(median ${RPS[$t]})
    M_P50[$t]=$(median ${P50[$t]})
    M_P99[$t]=$(median ${P99[$t]})
    M_WRKCPU[$t]=$(median ${WRKCPU[$t]})
    M_SRVCPU[$t]=$(median ${SRVCPU[$t]})
    M_BUSY[$t]=$(median ${BUSY[$t]})
    M_OTHER[$t]=$(median ${OTHER[$t]})
    M_IDLE[$t]=$(median ${IDLE[$t]})
    M_STEAL[$t]=$(median ${STEAL[$t]})
  }
done
for t in "${TARGETS[@]}"; do RATIO[$t]=$(div "${M_RPS[$t]}" "${M_RPS[nginx_healthz]}"); done

# Per-run ratios (kiln run r / nginx run r): the runs take turns, so each pair ran close together.
per_run_ratios() {
  local -a a b
  read -ra a <<<"${RPS[$1]}"
  read -ra b <<<"${RPS[nginx_healthz]}"
  local i out=()
  for i in "${!a[@]}"; do out+=("$(div "${a[$i]}" "${b[$i]}")"); done
  echo "${out[*]}"
}

mib() { awk -v k="$1" 'BEGIN { printf "%.1f", k / 1024 }'; }
met() { awk -v a="$1" -v op="$2" -v b="$3" 'BEGIN {
  ok = (op == ">=") ? (a >= b) : (a <= b); printf "%s", (ok ? "met" : "NOT met") }'; }

echo
echo "Kiln API benchmark: wrk -t$WRK_THREADS -c$CONNECTIONS -d$DURATION, median of $RUNS runs," \
  "$(nproc) cores shared by wrk and the server"
echo
printf '| %-42s | %14s | %8s | %8s | %14s | %13s |\n' \
  "target" "req/s (median)" "p50 ms" "p99 ms" "ratio vs nginx" "cpu srv / wrk"
printf '|%s|%s|%s|%s|%s|%s|\n' "$(printf -- '-%.0s' $(seq 44))" "$(printf -- '-%.0s' $(seq 16))" \
  "$(printf -- '-%.0s' $(seq 10))" "$(printf -- '-%.0s' $(seq 10))" \
  "$(printf -- '-%.0s' $(seq 16))" "$(printf -- '-%.0s' $(seq 15))"
for t in "${TARGETS[@]}"; do
  printf '| %-42s | %14.0f | %8.2f | %8.2f | %13.2fx | %5.2f / %5.2f |\n' "${LABEL[$t]}" \
    "${M_RPS[$t]}" "${M_P50[$t]}" "${M_P99[$t]}" "${RATIO[$t]}" "${M_SRVCPU[$t]}" "${M_WRKCPU[$t]}"
done
echo
echo "kiln RSS: $(mib "$rss_start") MiB after start, $(mib "$rss_idle_before") MiB idle after warm-up" \
  "(before load), $(mib "$rss_idle_after") MiB idle after the runs, peak $(mib "$rss_peak") MiB"
echo "nginx RSS (master + $((${#nginx_pids[@]} - 1)) workers, summed): $(mib "$nginx_rss_idle") MiB idle"
echo "cpu srv / wrk: cores busy during a run (CPU seconds / wall seconds), median"
echo
echo "CPU split during the runs, in cores of $(nproc) (median; other = busy - server - wrk: kernel"
echo "network work not charged to a process, other processes; steal = taken by the hypervisor):"
printf '| %-42s | %6s | %6s | %6s | %6s | %6s |\n' "target" "server" "wrk" "other" "idle" "steal"
for t in "${TARGETS[@]}"; do
  printf '| %-42s | %6.2f | %6.2f | %6.2f | %6.2f | %6.2f |\n' "${LABEL[$t]}" "${M_SRVCPU[$t]}" \
    "${M_WRKCPU[$t]}" "${M_OTHER[$t]}" "${M_IDLE[$t]}" "${M_STEAL[$t]}"
done
echo "machine before the start: $busy_before cores busy"
echo "goals (informational, not asserted):"
echo "  kiln /healthz at ${RATIO[kiln_healthz]}x nginx; goal >= ${GOAL_HEALTHZ_RATIO}x:" \
  "$(met "${RATIO[kiln_healthz]}" ">=" "$GOAL_HEALTHZ_RATIO")"
echo "  kiln /v1/keys at $(printf '%.0f' "${M_RPS[kiln_keys]}") req/s; goal >= $GOAL_KEYS_RPS:" \
  "$(met "${M_RPS[kiln_keys]}" ">=" "$GOAL_KEYS_RPS")"
echo "  kiln idle RSS $(mib "$rss_idle_before") MiB; goal <= $GOAL_IDLE_RSS_MIB MiB:" \
  "$(met "$(mib "$rss_idle_before")" "<=" "$GOAL_IDLE_RSS_MIB")"
bad=0
for t in "${TARGETS[@]}"; do
  for v in ${NON2XX[$t]} ${ERRS[$t]}; do ((v == 0)) || bad=1; done
done
((bad == 0)) || echo "warning: some runs had non-2xx responses or socket errors (see $RESULTS)"

# --- JSON -------------------------------------------------------------------------------------

commit=$(git -C "$ROOT" rev-parse HEAD 2>/dev/null || echo unknown)
dirty=false
[[ -n $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]] && dirty=true
kiln_version=$(timeout 5 "$KILN" --version 2>/dev/null | head -1 || true)
cpu_model=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || true)
mem_kib=$(awk '/^MemTotal:/ { print $2 }' /proc/meminfo 2>/dev/null || echo 0)
wrk_version=$(wrk -v 2>&1 | awk 'NR == 1 { print $2 }' || true)
nginx_version=$("$NGINX" -v 2>&1 | sed 's|.*nginx/||' || true)
kiln_threads=$(awk '/^Threads:/ { print $2 }' "/proc/$kiln_pid/status" 2>/dev/null || echo 0)

arr() { # space-separated numbers -> JSON array
  local -a a
  read -ra a <<<"$1"
  local IFS=,
  echo "[${a[*]}]"
}

mkdir -p "$(dirname "$RESULTS")"
{
  echo "{"
  echo "  \"benchmark\": \"api\","
  echo "  \"asserted\": false,"
  echo "  \"date\": $(json_str "$(date -u +%Y-%m-%dT%H:%M:%SZ)"),"
  echo "  \"machine\": {"
  echo "    \"nproc\": $(nproc),"
  echo "    \"kernel\": $(json_str "$(uname -r)"),"
  echo "    \"arch\": $(json_str "$(uname -m)"),"
  echo "    \"cpu\": $(json_str "$cpu_model"),"
  echo "    \"mem_total_kib\": $mem_kib,"
  echo "    \"busy_cores_before_start\": $busy_before"
  echo "  },"
  echo "  \"kiln\": {"
  echo "    \"binary\": $(json_str "$KILN"),"
  echo "    \"git_commit\": $(json_str "$commit"),"
  echo "    \"git_dirty\": $dirty,"
  echo "    \"version\": $(json_str "$kiln_version"),"
  echo "    \"os_threads_at_end\": $kiln_threads"
  echo "  },"
  echo "  \"reference\": {\"name\": \"nginx\", \"version\": $(json_str "$nginx_version"), \"processes\": ${#nginx_pids[@]}},"
  echo "  \"config\": {"
  echo "    \"tool\": $(json_str "wrk $wrk_version"),"
  echo "    \"duration\": $(json_str "$DURATION"),"
  echo "    \"runs\": $RUNS,"
  echo "    \"connections\": $CONNECTIONS,"
  echo "    \"wrk_threads\": $WRK_THREADS,"
  echo "    \"warmup\": $(json_str "$WARMUP"),"
  echo "    \"kiln_config\": {\"server.threads\": 0, \"limits.rate_per_second\": 1000000, \"limits.rate_burst\": 1000000, \"log.level\": \"warn\"},"
  echo "    \"note\": \"wrk, kiln and nginx share the same cores; targets take turns within each run, in an order that rotates per run\""
  echo "  },"
  echo "  \"targets\": {"
  i=0
  for t in "${TARGETS[@]}"; do
    i=$((i + 1))
    echo "    \"$t\": {"
    echo "      \"label\": $(json_str "${LABEL[$t]}"),"
    echo "      \"server\": \"${SERVER[$t]}\","
    echo "      \"method\": \"GET\","
    echo "      \"path\": \"${PATH_OF[$t]}\","
    echo "      \"authenticated\": $([[ -n ${AUTH[$t]:-} ]] && echo true || echo false),"
    echo "      \"response_header_bytes\": ${HDR_BYTES[$t]},"
    echo "      \"response_body_bytes\": ${BODY_BYTES[$t]},"
    echo "      \"runs\": {"
    echo "        \"rps\": $(arr "${RPS[$t]}"),"
    echo "        \"p50_ms\": $(arr "${P50[$t]}"),"
    echo "        \"p99_ms\": $(arr "${P99[$t]}"),"
    echo "        \"requests\": $(arr "${REQS[$t]}"),"
    echo "        \"non_2xx\": $(arr "${NON2XX[$t]}"),"
    echo "        \"socket_errors\": $(arr "${ERRS[$t]}"),"
    echo "        \"wall_s\": $(arr "${WALL[$t]}"),"
    echo "        \"server_cpu_cores\": $(arr "${SRVCPU[$t]}"),"
    echo "        \"wrk_cpu_cores\": $(arr "${WRKCPU[$t]}"),"
    echo "        \"machine_busy_cores\": $(arr "${BUSY[$t]}"),"
    echo "        \"other_busy_cores\": $(arr "${OTHER[$t]}"),"
    echo "        \"idle_cores\": $(arr "${IDLE[$t]}"),"
    echo "        \"steal_cores\": $(arr "${STEAL[$t]}"),"
    echo "        \"ratio_vs_nginx\": $(arr "$(per_run_ratios "$t")")"
    echo "      },"
    echo "      \"median\": {\"rps\": ${M_RPS[$t]}, \"p50_ms\": ${M_P50[$t]}, \"p99_ms\": ${M_P99[$t]}, \"server_cpu_cores\": ${M_SRVCPU[$t]}, \"wrk_cpu_cores\": ${M_WRKCPU[$t]}, \"machine_busy_cores\": ${M_BUSY[$t]}, \"other_busy_cores\": ${M_OTHER[$t]}, \"idle_cores\": ${M_IDLE[$t]}, \"steal_cores\": ${M_STEAL[$t]}},"
    echo "      \"ratio_vs_nginx\": ${RATIO[$t]}"
    if ((i < n)); then echo "    },"; else echo "    }"; fi
  done
  echo "  },"
  echo "  \"rss_kib\": {"
  echo "    \"kiln_after_start\": $rss_start,"
  echo "    \"kiln_idle_before_load\": $rss_idle_before,"
  echo "    \"kiln_idle_after_load\": $rss_idle_after,"
  echo "    \"kiln_peak\": $rss_peak,"
  echo "    \"nginx_idle_sum\": $nginx_rss_idle"
  echo "  },"
  echo "  \"goals\": {"
  echo "    \"kiln_healthz_ratio_min\": $GOAL_HEALTHZ_RATIO,"
  echo "    \"kiln_healthz_ratio\": ${RATIO[kiln_healthz]},"
  echo "    \"kiln_keys_rps_min\": $GOAL_KEYS_RPS,"
  echo "    \"kiln_keys_rps\": ${M_RPS[kiln_keys]},"
  echo "    \"kiln_idle_rss_mib_max\": $GOAL_IDLE_RSS_MIB,"
  echo "    \"kiln_idle_rss_mib\": $(mib "$rss_idle_before")"
  echo "  }"
  echo "}"
} >"$RESULTS.tmp"
mv "$RESULTS.tmp" "$RESULTS"
echo
echo "results: ${RESULTS#"$ROOT"/}"
