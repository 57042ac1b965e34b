#!/usr/bin/env python3
"""Gateway benchmark, driven by bench/gateway/run.sh (which starts and stops the servers).

1. Throughput and latency (wrk, keep-alive) to one upstream app, three ways in one run:
   direct (wrk inside the app's network namespace), through nginx as a reverse proxy inside
   that namespace, and through Kiln's gateway (wrk on the host, Host: {app}.localhost); for a
   13-byte and a 64 KiB response.
2. Wake-on-request: time from sending a request to the first response byte, for an app frozen
   by POST /v1/apps/{app}/sleep (sleep_mode "freeze"), one put to sleep on a server with
   sleep_mode "stop", and the same app awake (the floor).
Prints markdown tables on stdout, progress on stderr, and writes every sample to JSON.
Standard library only. See bench/gateway/README.md for the method.
"""

import argparse
import http.client
import json
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import time

# Goals from the issue; printed, never asserted.
GOAL_RPS_RATIO = 1.0  # Kiln's req/s >= 1.0x nginx's
GOAL_WAKE_P50_MS = 10.0  # first byte after sleep, frozen app
# Anchors quoted by the issue (reported elsewhere, not measured here).
ANCHOR_FLY_RESUME_MS = "a few hundred"  # Fly Machines resume from suspend
ANCHOR_COLD_START_MS = 2000.0  # a typical cold start

PROXY_PORT = 18080  # the nginx proxy's port inside the app's namespace (only the app is there)
SIZES = {"small": ("/small", 13), "64k": ("/64k", 65536)}
PATHS = ("direct", "nginx", "kiln")


def note(msg):
    print("bench/gateway: " + msg, file=sys.stderr, flush=True)


def die(msg):
    note(msg)
    sys.exit(1)


def now():
    return time.perf_counter()


def percentile(values, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    v = sorted(values)
    if not v:
        return None
    pos = (len(v) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return round(v[lo] + (v[hi] - v[lo]) * (pos - lo), 3)


def median(values):
    return percentile(values, 0.5)


def summary(values):
    if not values:
        return {"n": 0, "min": None, "p50": None, "p90": None, "max": None}
    return {"n": len(values), "min": round(min(values), 3), "p50": percentile(values, 0.5),
            "p90": percentile(values, 0.9), "max": round(max(values), 3)}


def fmt(v, spec="%.2f"):
    return "-" if v is None else spec % v


# ---- the servers' API ------------------------------------------------------------------------


class Server:
    """One kiln server: its API (a kept-alive connection), data directory and CLI."""

    def __init__(self, name, url, key, data_dir, kiln, tmp):
        m = re.match(r"^http://([^:/]+):(\d+)$", url.strip())
        if not m:
            die("cannot read host:port from %r" % url)
        self.name, self.url, self.key, self.data = name, url, key, data_dir
        self.host, self.port = m.group(1), int(m.group(2))
        self.kiln, self.tmp = kiln, tmp
        self.conn = None

    def call(self, method, path, obj=None):
        body = None if obj is None else json.dumps(obj).encode()
        headers = {"Authorization": "Bearer " + self.key, "Content-Type": "application/json"}
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            try:
                self.conn.request(method, path, body=body, headers=headers)
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                try:
                    return r.status, json.loads(data) if data else {}
                except ValueError:
                    return r.status, {"raw": data.decode("utf-8", "replace")}
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def app(self, name):
        status, r = self.call("GET", "/v1/apps/" + name)
        if status != 200:
            die("GET /v1/apps/%s on %s answered %s: %s" % (name, self.name, status, r))
        return r["data"]

    def create_app(self, name, **fields):
        status, r = self.call("POST", "/v1/apps", dict(name=name, **fields))
        if status != 201:
            die("POST /v1/apps %s on %s answered %s: %s" % (name, self.name, status, r))

    def deploy(self, name, source):
        """`kiln deploy SOURCE --app NAME`, as a developer would."""
        env = dict(os.environ, KILN_URL=self.url, KILN_API_KEY=self.key, HOME=self.tmp)
        t0 = now()
        p = subprocess.run([self.kiln, "deploy", source, "--app", name], env=env,
                           capture_output=True, text=True, timeout=600)
        if p.returncode != 0:
            die("kiln deploy %s --app %s (%s) failed (exit %d):\n%s%s" % (
                source, name, self.name, p.returncode, p.stdout[-3000:], p.stderr[-3000:]))
        note("deployed %s on %s in %.1f s" % (name, self.name, now() - t0))

    def instance_dir(self, app):
        ins = self.app(app).get("instance")
        if not ins:
            die("app %s on %s has no instance" % (app, self.name))
        return os.path.join(self.data, "instances", ins)


def instance_state(instance_dir):
    """'frozen', 'running' or 'stopped' (no instance or no init process), read from the
    instance's cgroup freezer (v1) or cgroup.events (v2); '?' when it cannot tell."""
    try:
        with open(os.path.join(instance_dir, "instance.json")) as f:
            pid = json.load(f)["initPid"]
        with open("/proc/%d/cgroup" % pid) as f:
            lines = f.read().splitlines()
    except (OSError, ValueError, KeyError):
        return "stopped"
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "freezer":
            try:
                with open("/sys/fs/cgroup/freezer%s/freezer.state" % path) as f:
                    return "frozen" if f.read().strip() in ("FROZEN", "FREEZING") else "running"
            except OSError:
                return "?"
    for line in lines:
        if line.startswith("0::"):
            try:
                with open("/sys/fs/cgroup%s/cgroup.events" % line[3:]) as f:
                    return "frozen" if "frozen 1" in f.read() else "running"
            except OSError:
                return "?"
    return "?"


# ---- requests --------------------------------------------------------------------------------


def fetch(host, port, path, host_header, timeout=30.0):
    """One GET on a new connection (Connection: close). The connect is not timed; the clock
    starts as the request is sent. Answers (status, first_byte_ms, total_ms, body_bytes); status
    0 on an error."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        req = ("GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: kiln-bench\r\nAccept: */*\r\n"
               "Connection: close\r\n\r\n" % (path, host_header)).encode()
        t0 = now()
        s.sendall(req)
        first = s.recv(65536)
        t1 = now()
        chunks = [first]
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
        t2 = now()
    except OSError:
        return 0, None, None, 0
    finally:
        s.close()
    data = b"".join(chunks)
    m = re.match(rb"^HTTP/1\.[01] (\d{3})", data)
    head_end = data.find(b"\r\n\r\n")
    body = len(data) - head_end - 4 if head_end >= 0 else 0
    return (int(m.group(1)) if m else 0), (t1 - t0) * 1000.0, (t2 - t0) * 1000.0, body


def curl_in(netns, url, host_header=None):
    """(status, body bytes) of one GET with curl, inside `netns` when given."""
    cmd = ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}",
           "--max-time", "10"]
    if host_header:
        cmd += ["-H", "Host: " + host_header]
    cmd.append(url)
    if netns:
        cmd = ["nsenter", "--net=" + netns, "--"] + cmd
    p = subprocess.run(cmd, capture_output=True, text=True)
    try:
        code, size = p.stdout.split()
        return int(code), int(size)
    except ValueError:
        return 0, 0


# ---- CPU accounting --------------------------------------------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid):
    """utime + stime of a process in seconds (0 when it is gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, ValueError, IndexError):
        return 0.0


def children(pid):
    try:
        with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def machine_ticks():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq = v[:7]
    steal = v[7] if len(v) > 7 else 0
    return {"busy": user + nice + system + irq + softirq, "idle": idle + iowait, "steal": steal}


def wrk_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


# ---- wrk -------------------------------------------------------------------------------------


def to_ms(v):
    for suffix, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60000.0)):
        if v.endswith(suffix):
            try:
                return round(float(v[: -len(suffix)]) * f, 4)
            except ValueError:
                return None
    return None


def parse_wrk(text):
    out = {"requests": None, "rps": None, "p50_ms": None, "p75_ms": None, "p90_ms": None,
           "p99_ms": None, "max_ms": None, "non_2xx_3xx": 0,
           "socket_errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0},
           "transfer_per_sec": None}
    for line in text.splitlines():
        parts = line.split()
        m = re.search(r"^\s*(\d+) requests in", line)
        if m:
            out["requests"] = int(m.group(1))
        elif line.startswith("Requests/sec:"):
            out["rps"] = float(parts[1])
        elif line.startswith("Transfer/sec:"):
            out["transfer_per_sec"] = parts[1]
        elif "Non-2xx or 3xx responses:" in line:
            out["non_2xx_3xx"] = int(parts[-1])
        elif line.strip().startswith("Socket errors:"):
            for k, v in re.findall(r"(connect|read|write|timeout) (\d+)", line):
                out["socket_errors"][k] = int(v)
        elif len(parts) == 2 and parts[0] in ("50%", "75%", "90%", "99%"):
            out["p%s_ms" % parts[0][:-1]] = to_ms(parts[1])
        elif len(parts) >= 4 and parts[0] == "Latency" and not parts[1].endswith("%"):
            out["max_ms"] = to_ms(parts[3])
    return out


# ---- the benchmark ---------------------------------------------------------------------------


class Bench:
    def __init__(self, args):
        self.args = args
        nproc = os.cpu_count()
        self.nproc = nproc
        self.freeze = Server("freeze", args.freeze_url, args.freeze_key, args.freeze_data,
                             args.kiln, args.tmp)
        self.stop = (Server("stop", args.stop_url, args.stop_key, args.stop_data, args.kiln,
                            args.tmp) if args.stop_url else None)
        self.proxy = None  # the nginx reverse proxy (Popen)
        self.doc = json.loads(args.meta)
        self.doc["config"] = {
            "duration": args.duration, "runs": args.runs, "connections": args.connections,
            "wrk_threads": args.wrk_threads, "warmup": args.warmup,
            "proxy_workers": args.proxy_workers, "kiln_io_threads": "0 (one per core: %d)" % nproc,
            "wakes": args.wakes, "wake_apps": args.wake_apps,
            "upstream": "nginx in the app's instance, worker_processes 1, access_log off",
        }

    # -- set-up --

    def upstream_app(self):
        s = self.freeze
        # As many CPUs as the machine has, so that the app's CFS quota is not what limits the
        # direct path (the default is 1).
        s.create_app("up", cpus=self.nproc, memoryMb=256)
        s.deploy("up", self.args.upstream)
        info = s.app("up")
        self.app_port = info.get("port", 3000)
        self.instance_dir = s.instance_dir("up")
        self.netns = os.path.join(self.instance_dir, "netns")
        with open(os.path.join(self.instance_dir, "instance.json")) as f:
            self.upstream_init_pid = json.load(f)["initPid"]
        note("upstream app 'up': instance %s, port %d, netns %s" % (
            os.path.basename(self.instance_dir), self.app_port, self.netns))

    def start_proxy(self):
        d = os.path.join(self.args.tmp, "proxy")
        with open(self.args.proxy_conf) as f:
            conf = f.read()
        for k, v in (("@WORKERS@", str(self.args.proxy_workers)), ("@DIR@", d),
                     ("@PORT@", str(self.app_port)), ("@LISTEN@", str(PROXY_PORT))):
            conf = conf.replace(k, v)
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write(conf)
        log = open(os.path.join(d, "stderr.log"), "ab")
        # nsenter execs nginx: the Popen's pid is nginx's master.
        self.proxy = subprocess.Popen(
            ["nsenter", "--net=" + self.netns, "--", self.args.nginx, "-e",
             os.path.join(d, "error.log"), "-p", d, "-c", path],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = now() + 10
        while now() < deadline:
            if self.proxy.poll() is not None:
                die("the nginx proxy exited (%s); see %s" % (self.proxy.returncode, d))
            if curl_in(self.netns, "http://127.0.0.1:%d/small" % PROXY_PORT)[0] == 200:
                break
            time.sleep(0.05)
        else:
            die("the nginx proxy did not answer within 10 s")
        note("nginx proxy in the app's namespace on 127.0.0.1:%d (pid %d, %d workers)" % (
            PROXY_PORT, self.proxy.pid, self.args.proxy_workers))

    def stop_proxy(self):
        if self.proxy and self.proxy.poll() is None:
            self.proxy.send_signal(signal.SIGQUIT)
            try:
                self.proxy.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proxy.kill()
                self.proxy.wait()
        self.proxy = None

    def target(self, path, size):
        """(netns or None, url, Host header or None) of one path and size."""
        p = SIZES[size][0]
        if path == "direct":
            return self.netns, "http://127.0.0.1:%d%s" % (self.app_port, p), None
        if path == "nginx":
            return self.netns, "http://127.0.0.1:%d%s" % (PROXY_PORT, p), None
        return None, "http://%s:%d%s" % (self.freeze.host, self.freeze.port, p), "up.localhost"

    def check_targets(self):
        bad = []
        for size, (_, want) in SIZES.items():
            for path in PATHS:
                netns, url, host = self.target(path, size)
                for _ in range(20):  # also a light warm-up
                    code, got = curl_in(netns, url, host)
                    if code != 200 or got != want:
                        bad.append("%s %s: %s, %d bytes (want 200, %d)" % (
                            path, size, code, got, want))
                        break
        if bad:
            die("targets do not answer as expected: " + "; ".join(bad))

    # -- throughput --

    def proxy_pids(self, path):
        if path == "kiln":
            return [self.args.freeze_pid]
        if path == "nginx" and self.proxy:
            return [self.proxy.pid] + children(self.proxy.pid)
        return []

    def upstream_cpu(self):
        """CPU seconds of the upstream app's cgroup (the API's stats.cpuSeconds)."""
        try:
            return float(self.freeze.app("up").get("stats", {}).get("cpuSeconds") or 0.0)
        except (TypeError, ValueError):
            return 0.0

    def wrk(self, path, size, duration):
        netns, url, host = self.target(path, size)
        cmd = ["wrk", "-t%d" % self.args.wrk_threads, "-c%d" % self.args.connections,
               "-d%s" % duration, "--latency"]
        if host:
            cmd += ["-H", "Host: " + host]
        cmd.append(url)
        if netns:
            cmd = ["nsenter", "--net=" + netns, "--"] + cmd
        pids = self.proxy_pids(path)
        cpu0 = sum(proc_cpu(p) for p in pids)
        up0 = self.upstream_cpu()
        w0 = wrk_cpu()
        m0 = machine_ticks()
        t0 = now()
        p = subprocess.run(cmd, capture_output=True, text=True)
        wall = now() - t0
        m1 = machine_ticks()
        w1 = wrk_cpu()
        up1 = self.upstream_cpu()
        cpu1 = sum(proc_cpu(q) for q in pids)
        if p.returncode != 0:
            die("%s failed (exit %d): %s" % (" ".join(cmd), p.returncode, p.stderr))
        r = parse_wrk(p.stdout)
        r["wall_s"] = round(wall, 3)
        r["cpu_cores"] = {
            "proxy": round((cpu1 - cpu0) / wall, 3),
            "upstream": round((up1 - up0) / wall, 3),
            "wrk": round((w1 - w0) / wall, 3),
            "machine_busy": round((m1["busy"] - m0["busy"]) / CLK_TCK / wall, 3),
            "machine_idle": round((m1["idle"] - m0["idle"]) / CLK_TCK / wall, 3),
            "steal": round((m1["steal"] - m0["steal"]) / CLK_TCK / wall, 3),
        }
        if r["requests"]:
            r["proxy_cpu_us_per_request"] = round((cpu1 - cpu0) / r["requests"] * 1e6, 2)
            r["upstream_cpu_us_per_request"] = round((up1 - up0) / r["requests"] * 1e6, 2)
        r["failed"] = r["non_2xx_3xx"] + sum(r["socket_errors"].values())
        r["output"] = p.stdout
        return r

    def throughput(self):
        a = self.args
        results = {size: {path: [] for path in PATHS} for size in SIZES}
        if a.warmup not in ("0", "0s"):
            for size in SIZES:
                for path in PATHS:
                    note("warm-up %s %s (%s)" % (path, size, a.warmup))
                    self.wrk(path, size, a.warmup)
        for run in range(a.runs):
            # The paths take turns, and the order rotates from run to run, so that slow drift
            # on the machine falls on each path alike.
            order = PATHS[run % 3:] + PATHS[:run % 3]
            for size in SIZES:
                for path in order:
                    r = self.wrk(path, size, a.duration)
                    results[size][path].append(r)
                    note("run %d/%d %-6s %-5s %9.0f req/s  p50 %7.3f ms  p99 %7.3f ms  "
                         "proxy %.2f / upstream %.2f / wrk %.2f cores  failed %d" % (
                             run + 1, a.runs, path, size, r["rps"] or 0, r["p50_ms"] or 0,
                             r["p99_ms"] or 0, r["cpu_cores"]["proxy"],
                             r["cpu_cores"]["upstream"], r["cpu_cores"]["wrk"], r["failed"]))
        out = {}
        for size in SIZES:
            out[size] = {}
            for path in PATHS:
                runs = results[size][path]
                out[size][path] = {
                    "url_path": SIZES[size][0], "body_bytes": SIZES[size][1],
                    "rps": median([r["rps"] for r in runs]),
                    "p50_ms": median([r["p50_ms"] for r in runs]),
                    "p99_ms": median([r["p99_ms"] for r in runs]),
                    "proxy_cpu_us_per_request": median(
                        [r.get("proxy_cpu_us_per_request", 0.0) for r in runs]),
                    "upstream_cpu_us_per_request": median(
                        [r.get("upstream_cpu_us_per_request", 0.0) for r in runs]),
                    "failed": sum(r["failed"] for r in runs),
                    "runs": runs,
                }
            k, n = out[size]["kiln"], out[size]["nginx"]
            out[size]["kiln_vs_nginx"] = {
                "rps_ratio": round(k["rps"] / n["rps"], 3) if n["rps"] else None,
                "p99_ratio": round(k["p99_ms"] / n["p99_ms"], 3) if n["p99_ms"] else None,
                "rps_ratio_per_run": [
                    round(a_["rps"] / b_["rps"], 3) if b_["rps"] else None
                    for a_, b_ in zip(k["runs"], n["runs"])],
                "rps_goal_met": bool(n["rps"] and k["rps"] / n["rps"] >= GOAL_RPS_RATIO),
                "p99_goal_met": bool(n["p99_ms"] and k["p99_ms"] <= n["p99_ms"]),
            }
            out[size]["nginx_vs_direct_rps"] = (
                round(n["rps"] / out[size]["direct"]["rps"], 3)
                if out[size]["direct"]["rps"] else None)
            out[size]["kiln_vs_direct_rps"] = (
                round(k["rps"] / out[size]["direct"]["rps"], 3)
                if out[size]["direct"]["rps"] else None)
        return out

    # -- wake --

    def wake_apps(self):
        """Deploys the wake apps on both servers: name -> (source, path)."""
        apps = {}
        for a in [x for x in self.args.wake_apps.split(",") if x]:
            if a == "upstream":
                apps["wake-upstream"] = (self.args.upstream, "/small")
            elif a == "hello":
                apps["wake-hello"] = (os.path.join(self.args.examples, "hello"), "/")
            else:
                die("unknown wake app %r (upstream, hello)" % a)
        for server in (self.freeze, self.stop):
            for name, (source, path) in apps.items():
                server.create_app(name)
                server.deploy(name, source)
                code, _, _, _ = fetch(server.host, server.port, path, name + ".localhost")
                if code != 200:
                    die("%s on %s answers %s before any sleep" % (name, server.name, code))
        return apps

    def sleep_app(self, server, app):
        status, r = server.call("POST", "/v1/apps/%s/sleep" % app, {})
        state = r.get("data", {}).get("status")
        if status != 200 or state != "sleeping":
            die("POST /v1/apps/%s/sleep on %s answered %s: %s" % (app, server.name, status, r))

    def one_wake(self, server, app, path, mode):
        """mode 'awake': a request to the running app; otherwise put it to sleep first."""
        s = {"server": server.name, "mode": mode}
        ins = server.app(app).get("instance") or ""
        if mode != "awake":
            self.sleep_app(server, app)
            time.sleep(self.args.wake_gap_ms / 1000.0)
        # The instance that served before the sleep: frozen, or gone when the app was stopped.
        s["state_before"] = (instance_state(os.path.join(server.data, "instances", ins))
                             if ins else "stopped")
        code, first, total, body = fetch(server.host, server.port, path, app + ".localhost")
        s.update(status=code, first_byte_ms=round(first, 3) if first is not None else None,
                 total_ms=round(total, 3) if total is not None else None, body_bytes=body)
        status, r = server.call("GET", "/v1/apps/" + app)
        s["app_status_after"] = r.get("data", {}).get("status")
        s["instance_changed"] = r.get("data", {}).get("instance") != ins
        time.sleep(self.args.wake_gap_ms / 1000.0)
        return s

    def wake(self):
        apps = self.wake_apps()
        samples = {app: {"awake": [], "freeze": [], "stop": []} for app in apps}
        kinds = [("awake", self.freeze), ("freeze", self.freeze), ("stop", self.stop)]
        for i in range(self.args.wakes):
            for app, (_, path) in apps.items():
                order = kinds[i % 3:] + kinds[:i % 3]
                for mode, server in order:
                    s = self.one_wake(server, app, path, mode)
                    samples[app][mode].append(s)
                    if s["status"] != 200:
                        note("wake %s %s: status %s" % (app, mode, s["status"]))
            note("wake round %d/%d: %s" % (i + 1, self.args.wakes, "; ".join(
                "%s %s %.1f ms" % (app, mode, samples[app][mode][-1]["first_byte_ms"] or -1)
                for app in apps for mode, _ in kinds)))
        out = {}
        for app, by_mode in samples.items():
            out[app] = {}
            for mode, ss in by_mode.items():
                ok = [x["first_byte_ms"] for x in ss if x["status"] == 200]
                states = sorted({x["state_before"] for x in ss})
                out[app][mode] = {
                    "first_byte_ms": summary(ok),
                    "total_ms": summary([x["total_ms"] for x in ss if x["status"] == 200]),
                    "failed": sum(1 for x in ss if x["status"] != 200),
                    "state_before": states,
                    "samples": ss,
                }
        return out

    # -- output --

    def print_throughput(self, t):
        a = self.args
        print()
        print("Gateway throughput: wrk -t%d -c%d -d%s --latency, keep-alive; medians of %d "
              "runs (paths interleaved)" % (a.wrk_threads, a.connections, a.duration, a.runs))
        print()
        print("| path                                    | response    | req/s (median) | p50 ms "
              "|  p99 ms | req/s vs nginx | p99 vs nginx | proxy CPU us/req | failed |")
        print("|-----------------------------------------|-------------|---------------:|-------:"
              "|--------:|---------------:|-------------:|-----------------:|-------:|")
        label = {"direct": "direct (wrk in the app's netns)",
                 "nginx": "nginx proxy in the netns (reference)",
                 "kiln": "kiln gateway (Host: up.localhost)"}
        for size in SIZES:
            n = t[size]["nginx"]
            for path in PATHS:
                r = t[size][path]
                rr = "%.3fx" % (r["rps"] / n["rps"]) if n["rps"] else "-"
                pr = "%.3fx" % (r["p99_ms"] / n["p99_ms"]) if n["p99_ms"] else "-"
                cpu = "-" if path == "direct" else "%.1f" % r["proxy_cpu_us_per_request"]
                print("| %-39s | %-11s | %14.0f | %6.3f | %7.3f | %14s | %12s | %16s | %6d |" % (
                    label[path], "%s %s" % (SIZES[size][0], "13 B" if size == "small" else
                                            "64 KiB"), r["rps"] or 0, r["p50_ms"] or 0,
                    r["p99_ms"] or 0, rr, pr, cpu, r["failed"]))
        print()
        for size in SIZES:
            kv = t[size]["kiln_vs_nginx"]
            print("goal %s: kiln req/s >= 1.0x nginx: %.3fx %s; kiln p99 <= nginx: %.3f vs %.3f "
                  "ms %s" % (SIZES[size][0], kv["rps_ratio"] or 0,
                             "met" if kv["rps_goal_met"] else "NOT met",
                             t[size]["kiln"]["p99_ms"] or 0, t[size]["nginx"]["p99_ms"] or 0,
                             "met" if kv["p99_goal_met"] else "NOT met"))
        print()
        print("CPU (cores, medians over the runs): proxy / upstream / wrk / machine busy / idle")
        for size in SIZES:
            for path in PATHS:
                runs = t[size][path]["runs"]
                c = {k: median([r["cpu_cores"][k] for r in runs]) for k in runs[0]["cpu_cores"]}
                print("  %-6s %-6s %5.2f / %5.2f / %5.2f / %5.2f / %5.2f" % (
                    path, SIZES[size][0], c["proxy"], c["upstream"], c["wrk"],
                    c["machine_busy"], c["machine_idle"]))

    def print_wake(self, w):
        print()
        print("Wake-on-request: request sent -> first response byte, through the gateway, on a "
              "new connection (connect not timed); %d samples each, interleaved" % self.args.wakes)
        print()
        print("| measurement                                     |  n | min ms | p50 ms | "
              "p90 ms | max ms | state before  | goal          | met |")
        print("|-------------------------------------------------|---:|-------:|-------:|"
              "-------:|-------:|---------------|---------------|-----|")
        label = {"awake": "awake (floor)", "freeze": "asleep, sleep_mode=freeze",
                 "stop": "asleep, sleep_mode=stop (cold)"}
        for app, by_mode in w.items():
            for mode in ("awake", "freeze", "stop"):
                r = by_mode[mode]
                f = r["first_byte_ms"]
                goal = met = ""
                if mode == "freeze":
                    goal = "p50 <= %g ms" % GOAL_WAKE_P50_MS
                    met = "-" if f["p50"] is None else (
                        "yes" if f["p50"] <= GOAL_WAKE_P50_MS else "NO")
                print("| %-47s | %2d | %6s | %6s | %6s | %6s | %-13s | %-13s | %-3s |" % (
                    "%s: %s" % (app, label[mode]), f["n"], fmt(f["min"]), fmt(f["p50"]),
                    fmt(f["p90"]), fmt(f["max"]), ",".join(r["state_before"]), goal, met))
        print("| Fly Machines resume (reported anchor)           |  - |      - | %6s |      - "
              "|      - |               |               |     |" % "~300")
        print("| typical cold start (reported anchor)            |  - |      - | %6s |      - "
              "|      - |               |               |     |" % "~2000")
        for app, by_mode in w.items():
            if by_mode["stop"]["state_before"] != ["stopped"]:
                print("note: %s on the sleep_mode=stop server was %s after sleep, not stopped: "
                      "this build does not stop apps in stop mode, so that row measures the same "
                      "as freeze" % (app, ",".join(by_mode["stop"]["state_before"])))
            failed = sum(by_mode[m]["failed"] for m in by_mode)
            if failed:
                print("note: %d of %s's wake requests did not answer 200 (see the JSON)" % (
                    failed, app))

    def run(self):
        a = self.args
        status = 0
        try:
            if not a.skip_throughput:
                self.upstream_app()
                self.start_proxy()
                self.check_targets()
                t = self.throughput()
                self.doc["throughput"] = t
                self.stop_proxy()
            if not a.skip_wake:
                if not self.stop:
                    die("the wake measurement needs the stop server (--stop-url)")
                self.doc["wake"] = self.wake()
        finally:
            self.stop_proxy()
        self.doc["goals"] = {"rps_ratio_vs_nginx": GOAL_RPS_RATIO, "p99": "<= nginx",
                             "wake_freeze_p50_ms": GOAL_WAKE_P50_MS}
        self.doc["anchors"] = {"fly_resume_ms": ANCHOR_FLY_RESUME_MS,
                               "cold_start_ms": ANCHOR_COLD_START_MS}
        if "throughput" in self.doc:
            self.print_throughput(self.doc["throughput"])
            if any(self.doc["throughput"][s][p]["failed"] for s in SIZES for p in PATHS):
                status = 2
        if "wake" in self.doc:
            self.print_wake(self.doc["wake"])
        with open(a.results + ".tmp", "w") as f:
            json.dump(self.doc, f, indent=2)
            f.write("\n")
        os.replace(a.results + ".tmp", a.results)
        return status


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--kiln", required=True)
    p.add_argument("--nginx", required=True)
    p.add_argument("--tmp", required=True)
    p.add_argument("--freeze-url", required=True)
    p.add_argument("--freeze-key", required=True)
    p.add_argument("--freeze-pid", type=int, required=True)
    p.add_argument("--freeze-data", required=True)
    p.add_argument("--stop-url", default="")
    p.add_argument("--stop-key", default="")
    p.add_argument("--stop-data", default="")
    p.add_argument("--upstream", required=True)
    p.add_argument("--proxy-conf", required=True)
    p.add_argument("--examples", required=True)
    p.add_argument("--duration", default="10s")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--connections", type=int, default=64)
    p.add_argument("--wrk-threads", type=int, default=2)
    p.add_argument("--warmup", default="2s")
    p.add_argument("--proxy-workers", type=int, default=os.cpu_count())
    p.add_argument("--wakes", type=int, default=20)
    p.add_argument("--wake-apps", default="upstream,hello")
    p.add_argument("--wake-gap-ms", type=int, default=200)
    p.add_argument("--skip-throughput", type=int, default=0)
    p.add_argument("--skip-wake", type=int, default=0)
    p.add_argument("--results", required=True)
    p.add_argument("--meta", required=True)
    args = p.parse_args()

    def on_term(signum, frame):
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, on_term)
    sys.exit(Bench(args).run())


if __name__ == "__main__":
    main()
