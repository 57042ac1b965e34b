#!/usr/bin/env python3
"""Deployment benchmark, driven by bench/deploy/run.sh (which starts and stops the server).

Measures against a running `kiln server`:
  1. upload -> first 200 OK from the new release, per example (static, node, hello, python),
     beside the same start command run directly on the host (the floor);
  2. rollback -> first 200 OK from the rolled-back release;
  3. failed requests (wrk) while an app is redeployed under steady load.
Prints a markdown table on stdout, progress on stderr, and writes every sample to JSON.
Standard library only. See bench/deploy/README.md for the method.
"""

import argparse
import http.client
import json
import os
import platform
import re
import secrets
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time

# Anchors quoted by the issue (reported by those projects, not measured here).
ANCHOR_PAAS_LOW_S = 13.0  # Coolify / CapRover: ~13-45 s per deploy
ANCHOR_PAAS_HIGH_S = 45.0
ANCHOR_DOKKU_WAIT_S = 10.0  # Dokku waits 10 s (CHECKS_WAIT) before switching

# Goals from the issue; printed, never asserted.
GOAL_DEPLOY_MS = {"static": 1000.0, "node": 1000.0}
GOAL_ROLLBACK_MS = 200.0

PHRASE = "Hello from Kiln!"  # every example's page says it; the marker is appended to it
TERMINAL = ("live", "failed", "cancelled", "superseded")


def note(msg):
    print("bench/deploy: " + msg, file=sys.stderr, flush=True)


def die(msg):
    note(msg)
    sys.exit(1)


def now():
    return time.perf_counter()


def ms(a, b):
    return round((b - a) * 1000.0, 3)


def percentile(values, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    v = sorted(values)
    if not v:
        return None
    pos = (len(v) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return round(v[lo] + (v[hi] - v[lo]) * (pos - lo), 3)


def summary(values):
    if not values:
        return {"n": 0, "min": None, "p50": None, "p90": None, "max": None}
    return {
        "n": len(values),
        "min": round(min(values), 3),
        "p50": percentile(values, 0.5),
        "p90": percentile(values, 0.9),
        "max": round(max(values), 3),
    }


# ---- HTTP ------------------------------------------------------------------------------------


class Api:
    """Kiln's REST API. `call` keeps one connection alive (polling); `fresh` opens a new one per
    request, as the CLI does."""

    def __init__(self, host, port, key):
        self.host, self.port, self.key = host, port, key
        self.conn = None

    def _headers(self, extra=None):
        h = {"Authorization": "Bearer " + self.key}
        if extra:
            h.update(extra)
        return h

    def call(self, method, path, body=None, headers=None):
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=120)
            try:
                self.conn.request(method, path, body=body, headers=self._headers(headers))
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                return r.status, data
            except (http.client.HTTPException, OSError):
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def fresh(self, method, path, body=None, headers=None):
        c = http.client.HTTPConnection(self.host, self.port, timeout=120)
        try:
            c.request(method, path, body=body, headers=self._headers(headers))
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def json(self, method, path, obj=None):
        body = None if obj is None else json.dumps(obj).encode()
        status, data = self.call(method, path, body, {"Content-Type": "application/json"})
        try:
            return status, json.loads(data) if data else {}
        except ValueError:
            return status, {"raw": data.decode("utf-8", "replace")}


def get_page(host, port, hostname, path="/", timeout=5.0):
    """One GET through the gateway on a new connection: (status, body); (0, b"") on an error."""
    c = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        c.request("GET", path, headers={"Host": hostname, "Connection": "close"})
        r = c.getresponse()
        return r.status, r.read()
    except (http.client.HTTPException, OSError):
        return 0, b""
    finally:
        c.close()


def text(data):
    """The start of a response body, for an error message."""
    return data[:500].decode("utf-8", "replace")


def multipart(archive, config=None):
    """The upload body: a `source` file part, and a `config` JSON part when config is given."""
    boundary = "kiln-bench-" + secrets.token_hex(8)
    body = (
        ("--%s\r\nContent-Disposition: form-data; name=\"source\"; filename=\"app.tar.gz\"\r\n"
         "Content-Type: application/gzip\r\n\r\n" % boundary).encode()
        + archive
        + b"\r\n"
    )
    if config:
        body += ("--%s\r\nContent-Disposition: form-data; name=\"config\"\r\n"
                 "Content-Type: application/json\r\n\r\n%s\r\n"
                 % (boundary, json.dumps(config))).encode()
    body += ("--%s--\r\n" % boundary).encode()
    return body, "multipart/form-data; boundary=" + boundary


# ---- sources ---------------------------------------------------------------------------------


def marked_archive(example_dir, work, marker):
    """A .tar.gz of a copy of example_dir whose pages say PHRASE + marker; made before any clock
    starts. Answers the bytes."""
    copy = os.path.join(work, "src-" + marker)
    shutil.copytree(example_dir, copy)
    replaced = 0
    for root, _, files in os.walk(copy):
        for f in files:
            p = os.path.join(root, f)
            if not f.endswith((".html", ".js", ".py")):
                continue
            with open(p, encoding="utf-8") as fh:
                text = fh.read()
            if PHRASE in text:
                replaced += text.count(PHRASE)
                with open(p, "w", encoding="utf-8") as fh:
                    fh.write(text.replace(PHRASE, PHRASE + " [" + marker + "]"))
    if replaced == 0:
        die("%s has no page saying %r to mark" % (example_dir, PHRASE))
    out = subprocess.run(["tar", "czf", "-", "-C", copy, "."], check=True, capture_output=True)
    shutil.rmtree(copy)
    return out.stdout


# ---- one deploy, one rollback ----------------------------------------------------------------


class Bench:
    def __init__(self, args):
        self.args = args
        m = re.match(r"^http://([^:/]+):(\d+)$", args.url.strip())
        if not m:
            die("cannot read host:port from %r" % args.url)
        self.host, self.port = m.group(1), int(m.group(2))
        self.api = Api(self.host, self.port, args.key)
        self.work = args.work
        self.poll_s = args.poll_ms / 1000.0

    def hostname(self, app):
        return "%s.localhost" % app

    def create_app(self, name):
        status, r = self.api.json("POST", "/v1/apps", {"name": name})
        if status != 201:
            die("POST /v1/apps %s answered %s: %s" % (name, status, r))

    def wait_page(self, app, marker, deadline_s):
        """GETs the app until a 200 whose body holds marker. Answers (t_200, stale, errors):
        stale = 200s from another release, errors = other statuses or connection errors."""
        stale = errors = 0
        needle = ("[" + marker + "]").encode()
        deadline = now() + deadline_s
        while True:
            status, body = get_page(self.host, self.port, self.hostname(app))
            t = now()
            if status == 200 and needle in body:
                return t, stale, errors
            if status == 200:
                stale += 1
            else:
                errors += 1
            if t > deadline:
                return None, stale, errors
            time.sleep(0.002)

    def deploy(self, app, example, marker, settle=True, config=None):
        """Uploads a marked copy of the example (with `config` overrides, if given); answers a
        sample dict (ok False on a failure)."""
        archive = marked_archive(os.path.join(self.args.examples, example), self.work, marker)
        body, ctype = multipart(archive, config)
        s = {"example": example, "app": app, "marker": marker, "archive_bytes": len(archive)}
        t0 = now()
        status, data = self.api.fresh("POST", "/v1/apps/%s/deployments" % app, body,
                                      {"Content-Type": ctype})
        t_accepted = now()
        s["accepted_ms"] = ms(t0, t_accepted)
        if status != 202:
            s.update(ok=False, error="upload answered %d: %s" % (status, text(data)))
            return s
        dep_id = json.loads(data)["data"]["id"]
        s["deployment"] = dep_id
        deadline = t0 + self.args.deploy_timeout
        dep = {}
        polls = 0
        while True:
            st, r = self.api.json("GET", "/v1/deployments/" + dep_id)
            polls += 1
            dep = r.get("data", {}) if st == 200 else {}
            if dep.get("status") in TERMINAL or now() > deadline:
                break
            time.sleep(self.poll_s)
        t_live = now()
        s["status_polls"] = polls
        s["steps"] = {x["name"]: x.get("durationMs") for x in dep.get("steps", [])
                      if x.get("status") == "ok"}
        if dep.get("status") != "live":
            s.update(ok=False, error="deployment %s ended %s: %s" % (
                dep_id, dep.get("status", "?"), json.dumps(dep.get("error"))))
            return s
        s["live_seen_ms"] = ms(t0, t_live)
        t_200, stale, errors = self.wait_page(app, marker, 10.0)
        s["stale_after_live"], s["errors_after_live"] = stale, errors
        if t_200 is None:
            s.update(ok=False, error="deployment %s is live but the gateway did not serve [%s] "
                     "within 10 s (%d stale pages, %d errors)" % (dep_id, marker, stale, errors))
            return s
        s["ms"] = ms(t0, t_200)
        s["ok"] = True
        if settle:
            time.sleep(self.args.settle_ms / 1000.0)
        return s

    def rollback(self, app, expect_marker):
        s = {"app": app, "expect": expect_marker}
        t0 = now()
        status, data = self.api.fresh("POST", "/v1/apps/%s/rollback" % app, b"{}",
                                      {"Content-Type": "application/json"})
        t_answer = now()
        s["answered_ms"] = ms(t0, t_answer)
        if status not in (200, 201, 202):
            s.update(ok=False, error="rollback answered %d: %s" % (status, text(data)))
            return s
        dep = json.loads(data).get("data", {})
        s["deployment"] = dep.get("id")
        s["steps"] = {x["name"]: x.get("durationMs") for x in dep.get("steps", [])
                      if x.get("status") == "ok"}
        if dep.get("status") not in ("live", "deploying"):
            s.update(ok=False, error="rollback %s is %s" % (dep.get("id"), dep.get("status")))
            return s
        t_200, stale, errors = self.wait_page(app, expect_marker, 10.0)
        s["stale_after_answer"], s["errors_after_answer"] = stale, errors
        if t_200 is None:
            s.update(ok=False, error="rollback did not serve [%s] within 10 s" % expect_marker)
            return s
        s["ms"] = ms(t0, t_200)
        s["ok"] = True
        time.sleep(self.args.settle_ms / 1000.0)
        return s

    def start_command(self, dep_id):
        """The start command Kiln detected, from the deployment's log ("start: CMD  (from ...)")."""
        status, r = self.api.json("GET", "/v1/deployments/%s/logs" % dep_id)
        for line in r.get("data", {}).get("lines", []):
            m = re.match(r"^start: (.*?)(  \(from .*\))?$", line.get("line", ""))
            if m and line.get("step") == "detect":
                return m.group(1)
        return None


# ---- the floor: the same start command, directly on the host ---------------------------------


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def host_start(example_dir, command, work, timeout_s=30.0):
    """Runs `sh -c "exec COMMAND"` in a copy of the example with PORT set (as Kiln does inside
    the instance) and times spawn -> first 200 on GET /. Answers ms, or None on a failure."""
    copy = os.path.join(work, "host-" + secrets.token_hex(4))
    shutil.copytree(example_dir, copy)
    data = os.path.join(copy, ".data")
    os.mkdir(data)
    port = free_port()
    env = dict(os.environ, PORT=str(port), DATA_DIR=data, HOME=os.environ.get("HOME", "/root"))
    log = open(os.path.join(work, "host-start.log"), "ab")
    t0 = now()
    p = subprocess.Popen(["/bin/sh", "-c", "exec " + command], cwd=copy, env=env, stdout=log,
                         stderr=subprocess.STDOUT, start_new_session=True)
    result = None
    try:
        while now() - t0 < timeout_s:
            if p.poll() is not None:
                break
            status, _ = get_page("127.0.0.1", port, "127.0.0.1:%d" % port, timeout=2.0)
            if status == 200:
                result = ms(t0, now())
                break
            time.sleep(0.002)
    finally:
        try:
            os.killpg(p.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
        log.close()
        shutil.rmtree(copy, ignore_errors=True)
    return result


def bare_command(example_dir, command):
    """For `npm start`: the package's scripts.start itself (node without npm in front), else
    None."""
    if command != "npm start":
        return None
    try:
        with open(os.path.join(example_dir, "package.json"), encoding="utf-8") as fh:
            return json.load(fh).get("scripts", {}).get("start")
    except (OSError, ValueError):
        return None


# ---- wrk under redeploys ---------------------------------------------------------------------


def parse_wrk(text):
    out = {"requests": None, "non_2xx_3xx": 0, "socket_errors": {"connect": 0, "read": 0,
           "write": 0, "timeout": 0}, "rps": None, "latency_p50_ms": None,
           "latency_p99_ms": None, "latency_max_ms": None}

    def to_ms(v):
        for suffix, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0), ("m", 60000.0)):
            if v.endswith(suffix):
                return round(float(v[: -len(suffix)]) * f, 3)
        return None

    for line in text.splitlines():
        parts = line.split()
        m = re.search(r"^\s*(\d+) requests in", line)
        if m:
            out["requests"] = int(m.group(1))
        m = re.search(r"Non-2xx or 3xx responses:\s*(\d+)", line)
        if m:
            out["non_2xx_3xx"] = int(m.group(1))
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", line)
        if m:
            out["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                            map(int, m.groups())))
        m = re.search(r"^Requests/sec:\s*([\d.]+)", line)
        if m:
            out["rps"] = float(m.group(1))
        if len(parts) == 2 and parts[0] == "50%":
            out["latency_p50_ms"] = to_ms(parts[1])
        if len(parts) == 2 and parts[0] == "99%":
            out["latency_p99_ms"] = to_ms(parts[1])
        if parts[:1] == ["Latency"] and len(parts) >= 4:
            out["latency_max_ms"] = to_ms(parts[3])
    return out


def md_table(headers, rows, right=()):
    """A markdown table with padded columns; columns in `right` are right-aligned."""
    right = set(right)
    w = [max(len(str(r[i])) for r in [headers] + rows) for i in range(len(headers))]

    def line(cells):
        return "| " + " | ".join(str(c).rjust(w[i]) if i in right else str(c).ljust(w[i])
                                 for i, c in enumerate(cells)) + " |"

    sep = "|" + "|".join(("-" * (w[i] + 1) + ":") if i in right else "-" * (w[i] + 2)
                         for i in range(len(headers))) + "|"
    return [line(headers), sep] + [line(r) for r in rows]


# ---- main ------------------------------------------------------------------------------------


def steps_str(s):
    return " ".join("%s=%s" % kv for kv in s["steps"].items())


def ratio(a, b, digits=3):
    return round(a / b, digits) if a is not None and b else None


def measure_deploys(b, a, examples, bare_examples, run_id, failures):
    """Step 1: upload -> 200 per example, beside the host start of its start command."""
    first, start_cmd = {}, {}
    for ex in examples:
        b.create_app("bench-" + ex)
        s = b.deploy("bench-" + ex, ex, "first-" + run_id)
        if not s["ok"]:
            die("first deploy of %s failed: %s" % (ex, s["error"]))
        first[ex] = s
        start_cmd[ex] = b.start_command(s["deployment"])
        if not start_cmd[ex]:
            die("cannot read the start command of %s from its deployment log" % ex)
        note("%s: first deploy (creates the /data volume) %.0f ms; start command: %s"
             % (ex, s["ms"], start_cmd[ex]))
        host_start(os.path.join(a.examples, ex), start_cmd[ex], a.work)  # warm the page cache
    bare_cmd = {ex: bare_command(os.path.join(a.examples, ex), start_cmd[ex]) for ex in examples}
    for ex in bare_examples:
        if ex not in examples or not bare_cmd[ex]:
            die("--bare-apps: %s is not in --apps or is not started with `npm start`" % ex)
        b.create_app("bench-%s-bare" % ex)
        s = b.deploy("bench-%s-bare" % ex, ex, "first-bare-" + run_id,
                     config={"start": bare_cmd[ex]})
        if not s["ok"]:
            die("first deploy of %s with start %r failed: %s" % (ex, bare_cmd[ex], s["error"]))
        first[ex + "-bare"] = s

    deploys = {ex: [] for ex in examples}
    floors = {ex: [] for ex in examples}
    bares = {ex: [] for ex in examples}
    bare_deploys = {ex: [] for ex in bare_examples}
    for i in range(1, a.iterations + 1):
        # Examples take turns, each beside its host start, so drift falls on all alike.
        for ex in examples:
            src = os.path.join(a.examples, ex)
            s = b.deploy("bench-" + ex, ex, "r%d-%s" % (i, run_id))
            deploys[ex].append(s)
            f = host_start(src, start_cmd[ex], a.work)
            floors[ex].append(f)
            if s["ok"]:
                note("deploy %s #%d: %.0f ms to the new page (live seen %.0f ms, upload answered "
                     "%.0f ms; steps %s); host start %s ms" % (
                         ex, i, s["ms"], s["live_seen_ms"], s["accepted_ms"], steps_str(s),
                         "-" if f is None else "%.0f" % f))
            else:
                failures.append(s)
                note("deploy %s #%d FAILED: %s" % (ex, i, s["error"]))
            if f is None:
                note("host start of %s (%s) #%d did not answer 200" % (ex, start_cmd[ex], i))
            if bare_cmd[ex]:
                bares[ex].append(host_start(src, bare_cmd[ex], a.work))
            if ex in bare_examples:
                s = b.deploy("bench-%s-bare" % ex, ex, "r%d-bare-%s" % (i, run_id),
                             config={"start": bare_cmd[ex]})
                bare_deploys[ex].append(s)
                if s["ok"]:
                    note("deploy %s with start `%s` #%d: %.0f ms to the new page (steps %s); "
                         "host start %s ms" % (ex, bare_cmd[ex], i, s["ms"], steps_str(s),
                                               bares[ex][-1]))
                else:
                    failures.append(s)
                    note("deploy %s with start `%s` #%d FAILED: %s"
                         % (ex, bare_cmd[ex], i, s["error"]))

    rows, out, out_bare = [], {}, {}
    for ex in examples:
        ok = [s["ms"] for s in deploys[ex] if s["ok"]]
        st, fs = summary(ok), summary([x for x in floors[ex] if x is not None])
        goal = GOAL_DEPLOY_MS.get(ex)
        met = None if goal is None or st["p50"] is None else st["p50"] <= goal
        out[ex] = {
            "start_command": start_cmd[ex],
            "ms": st,
            "samples": deploys[ex],
            "live_seen_ms": summary([s["live_seen_ms"] for s in deploys[ex] if s["ok"]]),
            "upload_answered_ms": summary([s["accepted_ms"] for s in deploys[ex]
                                           if "accepted_ms" in s]),
            "start_step_ms": summary([s["steps"]["start"] for s in deploys[ex]
                                      if s["ok"] and s["steps"].get("start") is not None]),
            "host_start_ms": fs,
            "host_start_samples": floors[ex],
            "host_start_bare_command": bare_cmd[ex],
            "host_start_bare_ms": summary([x for x in bares[ex] if x is not None]),
            "host_start_bare_samples": bares[ex],
            "ratio_p50_vs_host_start": ratio(st["p50"], fs["p50"]),
            "ratio_p50_vs_13s": ratio(st["p50"], ANCHOR_PAAS_LOW_S * 1000.0, 4),
            "failures": len(deploys[ex]) - len(ok),
            "first_deploy_ms": first[ex]["ms"],
            "goal_p50_ms_max": goal,
            "met": met,
        }
        rows.append(("deploy %s: upload -> 200 (new release)" % ex, st, fs,
                     "p50 <= %d ms" % goal if goal else "", met, len(deploys[ex]) - len(ok)))
    for ex in bare_examples:
        ok = [s["ms"] for s in bare_deploys[ex] if s["ok"]]
        st, fs = summary(ok), out[ex]["host_start_bare_ms"]
        out_bare[ex] = {
            "start_command": bare_cmd[ex],
            "ms": st,
            "samples": bare_deploys[ex],
            "start_step_ms": summary([s["steps"]["start"] for s in bare_deploys[ex]
                                      if s["ok"] and s["steps"].get("start") is not None]),
            "host_start_ms": fs,
            "ratio_p50_vs_host_start": ratio(st["p50"], fs["p50"]),
            "ratio_p50_vs_13s": ratio(st["p50"], ANCHOR_PAAS_LOW_S * 1000.0, 4),
            "failures": len(bare_deploys[ex]) - len(ok),
            "first_deploy_ms": first[ex + "-bare"]["ms"],
        }
        rows.append(("deploy %s, start `%s`: upload -> 200" % (ex, bare_cmd[ex]), st, fs, "",
                     None, len(bare_deploys[ex]) - len(ok)))
    return out, out_bare, rows


def measure_rollbacks(b, a, rb_examples, floors, run_id, failures):
    """Step 2: rollback -> 200, alternating between two releases whose pages differ."""
    out, rows = {}, []
    for ex in rb_examples:
        app = "bench-rb-" + ex
        b.create_app(app)
        markers = ["A-" + run_id, "B-" + run_id]
        for m in markers:
            s = b.deploy(app, ex, m)
            if not s["ok"]:
                die("deploy of %s for the rollbacks failed: %s" % (ex, s["error"]))
        samples = []
        # B is live; each rollback goes back to the release live before the current one.
        for i in range(1, a.rollbacks + 1):
            expect = markers[(i - 1) % 2]
            s = b.rollback(app, expect)
            samples.append(s)
            if s["ok"]:
                note("rollback %s #%d -> [%s]: %.0f ms to the old page (answered %.0f ms; "
                     "steps %s)" % (ex, i, expect, s["ms"], s["answered_ms"], steps_str(s)))
            else:
                failures.append(s)
                note("rollback %s #%d FAILED: %s" % (ex, i, s["error"]))
        ok = [s["ms"] for s in samples if s["ok"]]
        st = summary(ok)
        fs = floors.get(ex) or summary([])
        met = None if st["p50"] is None else st["p50"] <= GOAL_ROLLBACK_MS
        out[ex] = {
            "ms": st,
            "samples": samples,
            "answered_ms": summary([s["answered_ms"] for s in samples if s["ok"]]),
            "host_start_ms": fs,
            "ratio_p50_vs_host_start": ratio(st["p50"], fs["p50"]),
            "ratio_p50_vs_13s": ratio(st["p50"], ANCHOR_PAAS_LOW_S * 1000.0, 4),
            "failures": len(samples) - len(ok),
            "goal_p50_ms_max": GOAL_ROLLBACK_MS,
            "met": met,
        }
        rows.append(("rollback %s -> 200 (old release)" % ex, st, fs,
                     "p50 <= %d ms" % GOAL_ROLLBACK_MS, met, len(samples) - len(ok)))
    return out, rows


def measure_load(b, a, run_id, failures):
    """Step 3: wrk against the app while it is redeployed a.redeploys times."""
    ex = a.load_app
    app = "bench-load-" + ex
    b.create_app(app)
    s = b.deploy(app, ex, "load0-" + run_id)
    if not s["ok"]:
        die("deploy of %s for the load test failed: %s" % (ex, s["error"]))
    target = "http://%s:%d/" % (b.host, b.port)
    cmd = ["wrk", "-t%d" % a.wrk_threads, "-c%d" % a.wrk_connections, "-d600s", "--latency",
           "-H", "Host: " + b.hostname(app), target]
    wrk_out = os.path.join(a.work, "wrk.txt")
    with open(wrk_out, "wb") as fh:
        w = subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)
    t0 = now()
    redeploys = []
    try:
        time.sleep(1.0)
        for i in range(1, a.redeploys + 1):
            r = b.deploy(app, ex, "load%d-%s" % (i, run_id))
            redeploys.append(r)
            if r["ok"]:
                note("redeploy under load #%d: %.0f ms to the new page" % (i, r["ms"]))
            else:
                failures.append(r)
                note("redeploy under load #%d FAILED: %s" % (i, r["error"]))
            if w.poll() is not None:
                break
        time.sleep(1.0)
    finally:
        if w.poll() is None:
            w.send_signal(signal.SIGINT)  # wrk prints its summary on SIGINT
        try:
            w.wait(timeout=15)
        except subprocess.TimeoutExpired:
            w.kill()
            w.wait()
    t1 = now()
    with open(wrk_out, encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    parsed = parse_wrk(text)
    if parsed["requests"] is None:
        note("wrk output:\n" + text)
        die("could not read wrk's request count")
    return {
        "app": ex,
        "command": shlex.join(cmd),
        "seconds": round(t1 - t0, 3),
        "redeploys": redeploys,
        "redeploys_ok": sum(1 for r in redeploys if r["ok"]),
        "redeploy_ms": summary([r["ms"] for r in redeploys if r["ok"]]),
        "wrk": parsed,
        "wrk_output": text,
        "failed_requests": parsed["non_2xx_3xx"] + sum(parsed["socket_errors"].values()),
    }


def fmt(v, f="%.0f"):
    return "-" if v is None else f % v


def met_str(m):
    return "" if m is None else ("met" if m else "NOT met")


def render(a, rows, deploy, load, failures):
    """The report printed on stdout: markdown tables and a few lines."""
    out = ["", "Kiln deploy benchmark: %d deploys per example, %d rollbacks, %d redeploys under "
           "load; %d cores shared by the client, the server and the apps" % (
               a.iterations, a.rollbacks, a.redeploys, os.cpu_count() or 0), ""]
    table = []
    for label, st, fs, goal, met, fails in rows:
        over = st["p50"] - fs["p50"] if st["p50"] is not None and fs.get("p50") else None
        table.append([label + (" (%d failed)" % fails if fails else ""), str(st["n"]),
                      fmt(st["min"]), fmt(st["p50"]), fmt(st["p90"]), fmt(fs.get("p50")),
                      fmt(over), fmt(ratio(st["p50"], fs.get("p50")), "%.2fx"),
                      fmt(ratio(st["p50"], ANCHOR_PAAS_LOW_S * 1000.0, 4), "%.3fx"),
                      goal, met_str(met)])
    table.append(["Coolify / CapRover deploy (reported anchor)", "-", "-", "13000-45000", "-",
                  "-", "-", "-", "1.000x", "", ""])
    table.append(["Dokku wait before switching (reported anchor)", "-", "-", "10000", "-", "-",
                  "-", "-", "%.3fx" % (ANCHOR_DOKKU_WAIT_S / ANCHOR_PAAS_LOW_S), "", ""])
    out += md_table(["measurement", "n", "min ms", "p50 ms", "p90 ms", "host start p50 ms",
                     "p50 - host ms", "p50 / host", "p50 / 13 s", "goal", "met"], table,
                    right=range(1, 9))
    out.append("")
    bare_lines = ["host start of %s without npm (`%s`): p50 %s ms, vs %s ms with `%s`" % (
        ex, d["host_start_bare_command"], fmt(d["host_start_bare_ms"]["p50"]),
        fmt(d["host_start_ms"]["p50"]), d["start_command"])
        for ex, d in deploy.items() if d["host_start_bare_ms"]["p50"] is not None]
    if bare_lines:
        out += bare_lines + [""]
    if load:
        wr, se = load["wrk"], load["wrk"]["socket_errors"]
        out.append("Redeploys under load: `%s`, %d of %d redeploys went live, p50 %s ms from "
                   "upload to the new page under load" % (
                       load["command"], load["redeploys_ok"], a.redeploys,
                       fmt(load["redeploy_ms"]["p50"])))
        out.append("")
        out += md_table(
            ["app", "seconds", "requests", "req/s", "p99 ms", "non-2xx/3xx",
             "socket errors (connect/read/write/timeout)", "failed", "goal", "met"],
            [[load["app"], "%.1f" % load["seconds"], str(wr["requests"]), fmt(wr["rps"]),
              fmt(wr["latency_p99_ms"], "%.1f"), str(wr["non_2xx_3xx"]),
              "%d/%d/%d/%d" % (se["connect"], se["read"], se["write"], se["timeout"]),
              str(load["failed_requests"]), "0", met_str(load["failed_requests"] == 0)]],
            right=range(1, 8))
        out.append("")
    out.append("upload -> 200: first byte of the multipart POST to the first GET through the "
               "gateway answering 200 with this upload's marker. rollback -> 200: POST "
               ".../rollback to the first 200 with the old release's marker. host start: the "
               "same start command run directly on the host, spawn -> first 200 on GET /. "
               "/ 13 s: p50 over the low end of the 13-45 s reported for Coolify and CapRover.")
    if failures:
        out.append("failures: %d (see the JSON)" % len(failures))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--work", required=True, help="scratch directory")
    ap.add_argument("--examples", required=True)
    ap.add_argument("--apps", default="static,node,hello,python")
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--bare-apps", default="node",
                    help="examples started with `npm start` to deploy also with start set to "
                         "their scripts.start (no npm)")
    ap.add_argument("--rollbacks", type=int, default=10)
    ap.add_argument("--rollback-apps", default="static,node")
    ap.add_argument("--redeploys", type=int, default=10)
    ap.add_argument("--load-app", default="node")
    ap.add_argument("--wrk-threads", type=int, default=2)
    ap.add_argument("--wrk-connections", type=int, default=16)
    ap.add_argument("--poll-ms", type=float, default=5.0)
    ap.add_argument("--settle-ms", type=float, default=1000.0)
    ap.add_argument("--deploy-timeout", type=float, default=120.0)
    ap.add_argument("--results", required=True)
    ap.add_argument("--meta", default="{}", help="JSON merged into the results (machine, kiln)")
    a = ap.parse_args()
    # run.sh stops us with SIGTERM: unwind, so that wrk and host-started apps are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    b = Bench(a)
    examples = [x for x in a.apps.split(",") if x]
    bare_examples = [x for x in a.bare_apps.split(",") if x]
    rb_examples = [x for x in a.rollback_apps.split(",") if x]
    failures = []
    run_id = secrets.token_hex(3)

    deploy, deploy_bare, rows = measure_deploys(b, a, examples, bare_examples, run_id, failures)
    floors = {ex: d["host_start_ms"] for ex, d in deploy.items()}
    rollback, rb_rows = measure_rollbacks(b, a, rb_examples, floors, run_id, failures)
    load = measure_load(b, a, run_id, failures) if a.redeploys > 0 else {}

    report = render(a, rows + rb_rows, deploy, load, failures)
    print(report, flush=True)
    doc = {
        "benchmark": "deploy",
        "asserted": False,
        **json.loads(a.meta),
        "config": {
            "iterations": a.iterations, "rollbacks": a.rollbacks, "redeploys": a.redeploys,
            "apps": examples, "bare_apps": bare_examples, "rollback_apps": rb_examples,
            "load_app": a.load_app, "wrk_threads": a.wrk_threads,
            "wrk_connections": a.wrk_connections, "status_poll_ms": a.poll_ms,
            "settle_ms": a.settle_ms, "python": platform.python_version(),
        },
        "anchors": {
            "coolify_caprover_deploy_s": [ANCHOR_PAAS_LOW_S, ANCHOR_PAAS_HIGH_S],
            "dokku_wait_before_switch_s": ANCHOR_DOKKU_WAIT_S,
            "note": "reported by those projects (quoted in the issue), not measured here",
        },
        "deploy": deploy,
        "deploy_without_npm": deploy_bare,
        "rollback": rollback,
        "redeploy_under_load": load,
        "failures": len(failures),
        "table": report,
    }
    tmp = a.results + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(doc, fh, indent=2)
        fh.write("\n")
    os.replace(tmp, a.results)
    return 0 if not failures else 2


if __name__ == "__main__":
    sys.exit(main())
