#!/usr/bin/env python3
"""MCP benchmark, driven by bench/mcp/run.sh (which starts and stops the server).

The round trip of one MCP `tools/call` of a read tool (apps_get), over Streamable HTTP (POST
/mcp) and over stdio (through `kiln mcp`), beside the same operation over REST (GET
/v1/apps/{app}), in the same run, against the same server with the same key. Calls are
sequential: one in flight at a time, on one kept-alive connection per target (a minimal
HTTP/1.1 client on a socket, or http.client with --client http.client), so each time is one request's latency, not a throughput figure. Rounds take turns between the
targets, in an order that rotates each round; the table quotes the medians across rounds of
each round's p50 and p99, and the ratio to REST's.

Also, per call: the kiln server's CPU time (utime + stime from /proc/PID/stat, before and
after each target's round), the `kiln mcp` bridge's (stdio only) and this client's.

Prints a markdown table on stdout, progress on stderr, and writes JSON. Standard library only.
Nothing is asserted: the goal is printed for reading; the exit status says whether it ran.
"""

import argparse
import http.client
import json
import os
import re
import select
import socket
import subprocess
import sys
import time

# Goal from the issue; printed, never asserted.
GOAL_RATIO = 1.2  # MCP <= 1.2x REST, at p50 and at p99

APP = "bench"
PROTOCOL = "2025-11-25"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def note(msg):
    print("bench/mcp: " + msg, file=sys.stderr, flush=True)


def die(msg):
    note(msg)
    sys.exit(1)


def percentile(values, q):
    """Linear interpolation between closest ranks (numpy's default)."""
    v = sorted(values)
    if not v:
        return None
    pos = (len(v) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (pos - lo)


def median(values):
    values = [v for v in values if v is not None]
    return percentile(values, 0.5) if values else None


def r3(v):
    return None if v is None else round(v, 3)


def proc_cpu_ticks(pid):
    """utime + stime of one process, in clock ticks; None once it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces: split after its closing parenthesis.
    fields = stat[stat.rindex(")") + 2:].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def machine_busy_ticks():
    with open("/proc/stat") as f:
        cpu = f.readline().split()
    user, nice, system, _idle, _iowait, irq, softirq = (int(x) for x in cpu[1:8])
    return user + nice + system + irq + softirq


# ---- HTTP clients ----------------------------------------------------------------------------
#
# Two, chosen with --client; both keep one connection open and send one request at a time.
# "raw" (the default) writes the request's bytes on a socket and reads the answer by its
# Content-Length: a few µs of Python per call, so the times are mostly the server's and the
# kernel's. "http.client" is the standard library's client: some 150 µs of Python per call
# more (header parsing through the email package), added alike to REST and MCP, which pulls
# every ratio towards 1.


class RawConnection:
    """HTTP/1.1 on one socket (TCP_NODELAY), Content-Length bodies only (all Kiln sends here)."""

    CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)", re.I)

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.hostline = ("Host: %s:%d\r\n" % (host, port)).encode()
        self.sock = None
        self.buf = bytearray()
        self.connect()

    def connect(self):
        self.close()
        self.sock = socket.create_connection((self.host, self.port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()

    def exchange(self, method, path, headers, body=None):
        """Answers (status, head bytes, body bytes)."""
        req = [b"%s %s HTTP/1.1\r\n" % (method.encode(), path.encode()), self.hostline, headers]
        if body is not None:
            req.append(b"Content-Length: %d\r\n\r\n" % len(body))
            req.append(body)
        else:
            req.append(b"\r\n")
        self.sock.sendall(b"".join(req))
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            self.recv()
        head = bytes(self.buf[:end])
        del self.buf[:end + 4]
        m = self.CONTENT_LENGTH.search(head)
        if m is None:
            raise ConnectionError("an answer without Content-Length: %r" % head[:300])
        n = int(m.group(1))
        while len(self.buf) < n:
            self.recv()
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return int(head[9:12]), head, out

    def recv(self):
        chunk = self.sock.recv(1 << 16)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buf += chunk

    @staticmethod
    def header(head, name):
        m = re.search(rb"\r\n" + re.escape(name.encode()) + rb":[ \t]*([^\r]*)", head, re.I)
        return m.group(1).decode() if m else None

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class StdlibConnection:
    """http.client.HTTPConnection, with the same interface as RawConnection."""

    def __init__(self, host, port):
        self.host, self.port = host, port
        self.conn = None
        self.connect()

    def connect(self):
        self.close()
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def exchange(self, method, path, headers, body=None):
        self.conn.request(method, path, body=body, headers=headers)
        r = self.conn.getresponse()
        return r.status, r, r.read()

    @staticmethod
    def header(head, name):
        return head.getheader(name)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


CLIENTS = {"raw": RawConnection, "http.client": StdlibConnection}


def header_block(client, headers):
    """Request headers in the form the client takes: CRLF-ended bytes for raw, else a dict."""
    if client is RawConnection:
        return b"".join(b"%s: %s\r\n" % (k.encode(), v.encode()) for k, v in headers.items())
    return dict(headers)


# ---- the targets -----------------------------------------------------------------------------
#
# Each target's call() sends one request and reads its whole answer, and answers the answer's
# bytes: only that is timed. check() looks at them afterwards, outside the timed part, with a
# few substring tests, so that the client's own work is about the same small amount for every
# target (no JSON parsing per call; the first call of each target is parsed in full).


class Rest:
    """GET /v1/apps/{app} on one kept-alive connection (the reference)."""

    name = "rest"
    label = "REST GET /v1/apps/%s (reference)" % APP
    transport = "HTTP/1.1, one kept-alive connection"

    def __init__(self, client, host, port, key):
        self.client = client
        self.headers = header_block(client, {"Authorization": "Bearer " + key})
        self.conn = client(host, port)

    def connect(self):
        self.conn.connect()

    def call(self, _i):
        status, _head, body = self.conn.exchange("GET", "/v1/apps/" + APP, self.headers)
        return status, body

    def check(self, status, body, _i, full=False):
        if full:
            try:
                return status == 200 and json.loads(body)["data"]["name"] == APP
            except (ValueError, KeyError, TypeError):
                return False
        return status == 200 and b'"name":"%s"' % APP.encode() in body

    def request_bytes(self):
        return 0

    def close(self):
        self.conn.close()


class RestNewConnection(Rest):
    """The same request on a new connection per call: what `kiln mcp` does for each message."""

    name = "rest_new_conn"
    label = "REST GET /v1/apps/%s, new connection per call" % APP
    transport = "HTTP/1.1, a new TCP connection per call"

    def call(self, _i):
        self.conn.connect()
        try:
            status, _head, body = self.conn.exchange("GET", "/v1/apps/" + APP, self.headers)
        finally:
            self.conn.close()
        return status, body


def tools_call_body(i):
    return (b'{"jsonrpc":"2.0","id":%d,"method":"tools/call","params":{"name":"apps_get",'
            b'"arguments":{"app":"%s"}}}' % (i, APP.encode()))


def mcp_answer_ok(body, i, full=False):
    """Is `body` the answer to request i: a result (not a JSON-RPC error), not a failed tool
    call (isError), with the app in structuredContent? Per call a few substring tests, so that
    the client does about as little for an MCP answer as for a REST one; `full` parses it."""
    if not full:
        return (body.startswith(b'{"jsonrpc":"2.0","id":%d,"result":{' % i)
                and b'"isError":true' not in body
                and b'"structuredContent":{"id":' in body
                and b'"name":"%s"' % APP.encode() in body)
    try:
        msg = json.loads(body)
    except ValueError:
        return False
    res = msg.get("result") if isinstance(msg, dict) else None
    return (msg.get("id") == i and isinstance(res, dict) and not res.get("isError")
            and isinstance(res.get("structuredContent"), dict)
            and res["structuredContent"].get("name") == APP)


class McpHttp:
    """tools/call apps_get as POST /mcp (Streamable HTTP, JSON answers) on one connection."""

    name = "mcp_http"
    label = "MCP tools/call apps_get, HTTP (POST /mcp)"
    transport = "HTTP/1.1, one kept-alive connection"

    def __init__(self, client, host, port, key):
        self.client, self.key = client, key
        self.conn = client(host, port)
        self.initialize()

    def connect(self):
        self.conn.connect()
        self.initialize()  # a new session: the old one may be gone with its connection

    def initialize(self):
        base = {"Authorization": "Bearer " + self.key, "Content-Type": "application/json",
                "Accept": "application/json, text/event-stream"}
        init = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                           "params": {"protocolVersion": PROTOCOL, "capabilities": {},
                                      "clientInfo": {"name": "bench", "version": "1"}}})
        status, head, body = self.conn.exchange("POST", "/mcp", header_block(self.client, base),
                                                init.encode())
        sid = self.conn.header(head, "Mcp-Session-Id")
        if status != 200 or not sid:
            die("MCP initialize over HTTP answered %d (session %r): %s" % (status, sid, body[:500]))
        self.headers = header_block(
            self.client, dict(base, **{"Mcp-Session-Id": sid, "MCP-Protocol-Version": PROTOCOL}))
        status, _head, body = self.conn.exchange(
            "POST", "/mcp", self.headers, b'{"jsonrpc":"2.0","method":"notifications/initialized"}')
        if status != 202:
            die("notifications/initialized answered %d, not 202: %s" % (status, body[:500]))

    def call(self, i):
        status, _head, body = self.conn.exchange("POST", "/mcp", self.headers, tools_call_body(i))
        return status, body

    def check(self, status, body, i, full=False):
        return status == 200 and mcp_answer_ok(body, i, full)

    def request_bytes(self):
        return len(tools_call_body(1))

    def close(self):
        self.conn.close()


class McpStdio:
    """tools/call apps_get written as one line to `kiln mcp`'s stdin; its answer read back from
    its stdout. Timed from the write to the end of the answer's line."""

    name = "mcp_stdio"
    label = "MCP tools/call apps_get, stdio (kiln mcp)"
    transport = "pipes to `kiln mcp`, which forwards to POST /mcp"
    args = []

    def __init__(self, kiln, url, key, home, log_path):
        env = {k: v for k, v in os.environ.items() if not k.startswith("KILN_")}
        # Its own (empty) config folders, so that no profile of the user's is read.
        env.update(KILN_URL=url, KILN_API_KEY=key, HOME=home,
                   XDG_CONFIG_HOME=os.path.join(home, ".config"))
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen([kiln, "mcp"] + self.args, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, env=env,
                                     bufsize=0)
        self.out = self.proc.stdout.fileno()
        self.inp = self.proc.stdin.fileno()
        self.buf = bytearray()
        self.skipped = 0  # lines that were not the answer awaited (notifications)
        init = json.dumps({"jsonrpc": "2.0", "id": 0, "method": "initialize",
                           "params": {"protocolVersion": PROTOCOL, "capabilities": {},
                                      "clientInfo": {"name": "bench", "version": "1"}}})
        self.write(init.encode() + b"\n")
        line = self.answer(0)
        msg = json.loads(line)
        if "result" not in msg:
            die("MCP initialize through kiln mcp failed: %s" % line[:500])
        self.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')

    @property
    def pid(self):
        return self.proc.pid

    def write(self, data):
        view = memoryview(data)
        while view:
            n = os.write(self.inp, view)
            view = view[n:]

    def line(self):
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                out = bytes(self.buf[:nl])
                del self.buf[:nl + 1]
                return out
            ready, _, _ = select.select([self.out], [], [], 30)
            if not ready:
                die("kiln mcp answered nothing within 30 s (its log: %s)" % self.log.name)
            chunk = os.read(self.out, 1 << 16)
            if not chunk:
                die("kiln mcp closed its stdout (exit %s; its log: %s)"
                    % (self.proc.poll(), self.log.name))
            self.buf += chunk

    def answer(self, i):
        # The answer starts {"jsonrpc":"2.0","id":N,...} (the server's key order); anything
        # else is a notification or a stray line: skipped, and counted.
        prefix = b'{"jsonrpc":"2.0","id":%d,' % i
        while True:
            line = self.line()
            if line.startswith(prefix):
                return line
            try:
                msg = json.loads(line)
            except ValueError:
                msg = None
            if isinstance(msg, dict) and msg.get("id") == i:
                return line
            self.skipped += 1

    def call(self, i):
        self.write(tools_call_body(i) + b"\n")
        return 200, self.answer(i)

    def check(self, _status, body, i, full=False):
        return mcp_answer_ok(body, i, full)

    def request_bytes(self):
        return len(tools_call_body(1)) + 1

    def close(self):
        try:
            self.proc.stdin.close()  # EOF: the bridge ends its session and exits
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


class McpStdioNoSpin(McpStdio):
    """The same with `kiln mcp --spin-us 0`: the bridge sleeps at once while it waits for the
    server and for the next line, as a plain blocking bridge would (less CPU, more latency)."""

    name = "mcp_stdio_nospin"
    label = "MCP tools/call apps_get, stdio (kiln mcp --spin-us 0)"
    args = ["--spin-us", "0"]


class StdioFloor:
    """The same request line written to `cat` and read back: what any stdio bridge costs at
    least on this machine (two pipe hops and a process woken each way), with no server."""

    name = "stdio_floor"
    label = "stdio floor: the line through `cat` and back"
    transport = "pipes to cat (no server)"

    def __init__(self):
        self.proc = subprocess.Popen(["cat"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     bufsize=0)
        self.out = self.proc.stdout.fileno()
        self.inp = self.proc.stdin.fileno()
        self.buf = bytearray()

    def call(self, i):
        line = tools_call_body(i) + b"\n"
        view = memoryview(line)
        while view:
            view = view[os.write(self.inp, view):]
        while b"\n" not in self.buf:
            self.buf += os.read(self.out, 1 << 16)
        nl = self.buf.find(b"\n")
        out = bytes(self.buf[:nl])
        del self.buf[:nl + 1]
        return 200, out

    def check(self, _status, body, i, full=False):
        return body == tools_call_body(i)

    def request_bytes(self):
        return len(tools_call_body(1)) + 1

    def close(self):
        self.proc.stdin.close()
        self.proc.wait()


# ---- measuring -------------------------------------------------------------------------------


class Counter:
    """Ids for JSON-RPC requests, unique across targets and rounds."""

    def __init__(self):
        self.n = 0

    def next(self):
        self.n += 1
        return self.n


def warm_up(target, ids, calls):
    for _ in range(calls):
        i = ids.next()
        try:
            status, body = target.call(i)
        except (http.client.HTTPException, OSError):  # ConnectionError is an OSError
            # The server may have closed an idle connection while the other targets ran.
            target.connect()
            status, body = target.call(i)
        if not target.check(status, body, i):
            die("%s: unexpected answer during warm-up (status %d): %s"
                % (target.label, status, body[:500]))


def measure(target, ids, calls, server_pid):
    """One round of one target: `calls` sequential calls, each timed alone."""
    lat = [0.0] * calls
    failures = 0
    first_failure = None
    bridge_pid = getattr(target, "pid", None)
    srv0 = proc_cpu_ticks(server_pid)
    br0 = proc_cpu_ticks(bridge_pid) if bridge_pid else None
    mb0 = machine_busy_ticks()
    c0 = time.process_time()
    w0 = time.perf_counter()
    for k in range(calls):
        i = ids.next()
        t0 = time.perf_counter()
        status, body = target.call(i)
        lat[k] = time.perf_counter() - t0
        if not target.check(status, body, i):
            failures += 1
            if first_failure is None:
                first_failure = "status %d: %s" % (status, body[:300].decode(errors="replace"))
    wall = time.perf_counter() - w0
    client_cpu = time.process_time() - c0
    mb1 = machine_busy_ticks()
    srv1 = proc_cpu_ticks(server_pid)
    br1 = proc_cpu_ticks(bridge_pid) if bridge_pid else None
    us = sorted(x * 1e6 for x in lat)

    def per_call_us(a, b):
        return None if a is None or b is None else r3((b - a) / CLK_TCK * 1e6 / calls)

    return {
        "calls": calls,
        "failures": failures,
        "first_failure": first_failure,
        "p50_us": r3(percentile(us, 0.50)),
        "p90_us": r3(percentile(us, 0.90)),
        "p99_us": r3(percentile(us, 0.99)),
        "p999_us": r3(percentile(us, 0.999)),
        "min_us": r3(us[0]),
        "max_us": r3(us[-1]),
        "mean_us": r3(sum(us) / calls),
        "wall_s": r3(wall),
        "calls_per_s": r3(calls / wall),
        "server_cpu_us_per_call": per_call_us(srv0, srv1),
        "bridge_cpu_us_per_call": per_call_us(br0, br1),
        "client_cpu_us_per_call": r3(client_cpu * 1e6 / calls),
        "machine_busy_cores": r3((mb1 - mb0) / CLK_TCK / wall),
    }


# ---- output ----------------------------------------------------------------------------------


def fmt(v, spec="%.1f"):
    return "-" if v is None else spec % v


def table(order, targets, results, args):
    out = []
    out.append("")
    out.append("Kiln MCP benchmark: %d sequential calls per target per round (after %d warm-up), "
               "median of %d rounds; µs; HTTP client: %s"
               % (args.calls, args.warmup, args.runs, args.client))
    out.append("")
    w = max(len(targets[t].label) for t in order)
    head = ("| %-*s | %8s | %8s | %10s | %10s | %11s | %11s | %9s |"
            % (w, "target", "p50 µs", "p99 µs", "p50 vs REST", "p99 vs REST", "server CPU",
               "bridge CPU", "client CPU"))
    out.append(head)
    out.append("|" + "|".join("-" * (len(c)) for c in head.split("|")[1:-1]) + "|")
    for name in order:
        m = results[name]["median"]
        rr = results[name]["ratio_vs_rest"]
        out.append("| %-*s | %8s | %8s | %10s | %10s | %11s | %11s | %9s |" % (
            w, targets[name].label, fmt(m["p50_us"]), fmt(m["p99_us"]),
            fmt(rr["p50"], "%.2fx"), fmt(rr["p99"], "%.2fx"),
            fmt(m["server_cpu_us_per_call"]), fmt(m["bridge_cpu_us_per_call"]),
            fmt(m["client_cpu_us_per_call"])))
    out.append("")
    out.append("CPU columns: CPU time per call in µs (server: the kiln server process; bridge: the "
               "kiln mcp process; client: this Python client), median of the rounds.")
    out.append("Per round (p50 / p99 µs, and the machine's busy cores during the round):")
    for name in order:
        runs = results[name]["runs"]
        out.append("  %-*s %s" % (w, targets[name].label, "  ".join(
            "%s / %s (%.2f)" % (fmt(r["p50_us"]), fmt(r["p99_us"]), r["machine_busy_cores"])
            for r in runs)))
    out.append("")
    out.append("goal (informational, not asserted): MCP <= %.1fx REST at p50 and p99" % GOAL_RATIO)
    for name in ("mcp_http", "mcp_stdio", "mcp_stdio_nospin"):
        if name not in results:
            continue
        rr = results[name]["ratio_vs_rest"]
        met = rr["p50"] is not None and rr["p99"] is not None and \
            rr["p50"] <= GOAL_RATIO and rr["p99"] <= GOAL_RATIO
        out.append("  %-*s p50 %sx, p99 %sx: %s" % (
            w, targets[name].label, fmt(rr["p50"], "%.2f"), fmt(rr["p99"], "%.2f"),
            "met" if met else "NOT met"))
    if "mcp_stdio" in results and "stdio_floor" in results:
        # A bridge over stdio costs at least the floor on top of the HTTP call it makes; what
        # is left is the bridge's own.
        rest_p50 = results["rest"]["median"]["p50_us"]
        stdio_p50 = results["mcp_stdio"]["median"]["p50_us"]
        floor_p50 = results["stdio_floor"]["median"]["p50_us"]
        if stdio_p50 >= rest_p50:
            out.append("  stdio: kiln mcp adds %s µs at p50 over REST, of which %s µs is the pipe "
                       "hop itself (a line through `cat` and back); the rest is the bridge's" % (
                           fmt(stdio_p50 - rest_p50), fmt(floor_p50)))
        else:
            out.append("  stdio: kiln mcp is %s µs under REST at p50 although the pipe hop alone "
                       "costs %s µs: its spinning (--spin-us) keeps a core awake, which spares "
                       "the server and the client wake-ups (see the bridge CPU column)" % (
                           fmt(rest_p50 - stdio_p50), fmt(floor_p50)))
    return "\n".join(out)


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--kiln", required=True)
    ap.add_argument("--url", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--server-pid", type=int, required=True)
    ap.add_argument("--tmp", required=True)
    ap.add_argument("--calls", type=int, default=2000)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--targets",
                    default="rest,mcp_http,mcp_stdio,mcp_stdio_nospin,stdio_floor,rest_new_conn")
    ap.add_argument("--client", default="raw", choices=sorted(CLIENTS))
    ap.add_argument("--results", required=True)
    ap.add_argument("--meta", default="{}")
    args = ap.parse_args()

    m = re.match(r"^http://([^:/]+):(\d+)$", args.url.strip())
    if not m:
        die("cannot read host:port from %r" % args.url)
    host, port = m.group(1), int(m.group(2))
    order = [t for t in args.targets.split(",") if t]
    known = ("rest", "mcp_http", "mcp_stdio", "mcp_stdio_nospin", "stdio_floor", "rest_new_conn")
    for t in order:
        if t not in known:
            die("unknown target %r (known: %s)" % (t, ", ".join(known)))
    if "rest" not in order:
        order.insert(0, "rest")  # the reference is always measured

    # The app the read tool reads. It only needs to exist: apps_get and GET /v1/apps/{app}
    # answer an app that was never deployed, from the store, without the runtime.
    conn = http.client.HTTPConnection(host, port, timeout=30)
    conn.request("POST", "/v1/apps", body=json.dumps({"name": APP}),
                 headers={"Authorization": "Bearer " + args.key,
                          "Content-Type": "application/json"})
    r = conn.getresponse()
    body = r.read()
    if r.status not in (200, 201, 409):
        die("POST /v1/apps answered %d: %s" % (r.status, body[:500]))
    conn.close()

    client = CLIENTS[args.client]
    targets = {}
    for t in order:
        if t == "rest":
            targets[t] = Rest(client, host, port, args.key)
        elif t == "rest_new_conn":
            targets[t] = RestNewConnection(client, host, port, args.key)
        elif t == "mcp_http":
            targets[t] = McpHttp(client, host, port, args.key)
        elif t == "stdio_floor":
            targets[t] = StdioFloor()
        elif t in ("mcp_stdio", "mcp_stdio_nospin"):
            home = os.path.join(args.tmp, "home")
            os.makedirs(home, exist_ok=True)
            kind = McpStdio if t == "mcp_stdio" else McpStdioNoSpin
            targets[t] = kind(args.kiln, args.url, args.key, home,
                              os.path.join(args.tmp, "kiln-mcp.log"))
    ids = Counter()

    # One call each, outside the rounds, for the sizes of what goes over the wire.
    sizes = {}
    for t in order:
        i = ids.next()
        status, body = targets[t].call(i)
        if not targets[t].check(status, body, i, full=True):
            die("%s: unexpected answer (status %d): %s" % (targets[t].label, status, body[:500]))
        sizes[t] = {"request_body_bytes": targets[t].request_bytes(),
                    "response_body_bytes": len(body)}

    runs = {t: [] for t in order}
    n = len(order)
    for rnd in range(args.runs):
        # Targets take turns, and the order rotates each round, so drift on the machine (other
        # people's builds) and "who ran first" fall on every target alike.
        for k in range(n):
            t = order[(k + rnd) % n]
            warm_up(targets[t], ids, args.warmup)
            res = measure(targets[t], ids, args.calls, args.server_pid)
            runs[t].append(res)
            note("round %d/%d %s: p50 %s µs, p99 %s µs, server CPU %s µs/call, machine %.2f "
                 "cores busy%s" % (rnd + 1, args.runs, targets[t].label, fmt(res["p50_us"]),
                                   fmt(res["p99_us"]), fmt(res["server_cpu_us_per_call"]),
                                   res["machine_busy_cores"],
                                   ("; %d FAILED: %s" % (res["failures"], res["first_failure"]))
                                   if res["failures"] else ""))

    skipped = sum(targets[t].skipped for t in ("mcp_stdio", "mcp_stdio_nospin") if t in targets)
    for t in order:
        targets[t].close()

    keys = ("p50_us", "p90_us", "p99_us", "p999_us", "mean_us", "calls_per_s",
            "server_cpu_us_per_call", "bridge_cpu_us_per_call", "client_cpu_us_per_call",
            "machine_busy_cores")
    results = {}
    for t in order:
        med = {k: r3(median([r[k] for r in runs[t]])) for k in keys}
        results[t] = {"label": targets[t].label, "transport": targets[t].transport,
                      **sizes[t], "runs": runs[t], "median": med,
                      "failures": sum(r["failures"] for r in runs[t])}
    ref = results["rest"]
    for t in order:
        # Ratio of the medians, and per round against REST's run of the same round.
        results[t]["ratio_vs_rest"] = {
            q: r3(results[t]["median"][q + "_us"] / ref["median"][q + "_us"])
            for q in ("p50", "p99")}
        results[t]["ratio_vs_rest_per_round"] = {
            q: [r3(a[q + "_us"] / b[q + "_us"]) for a, b in zip(runs[t], ref["runs"])]
            for q in ("p50", "p99")}
        sc, rc = results[t]["median"]["server_cpu_us_per_call"], \
            ref["median"]["server_cpu_us_per_call"]
        results[t]["server_cpu_ratio_vs_rest"] = r3(sc / rc) if sc and rc else None

    print(table(order, targets, results, args))
    failures = sum(results[t]["failures"] for t in order)
    if failures:
        print("warning: %d calls had an unexpected answer (see %s)" % (failures, args.results))
    if skipped:
        print("note: kiln mcp wrote %d lines that were not the awaited answer (skipped)" % skipped)

    doc = {"benchmark": "mcp", "asserted": False}
    doc.update(json.loads(args.meta))
    doc["config"] = {
        "calls_per_round": args.calls, "warmup_per_round": args.warmup, "rounds": args.runs,
        "targets": order, "app": APP, "mcp_protocol_version": PROTOCOL,
        "operation": "apps.get: GET /v1/apps/%s over REST; tools/call apps_get "
                     "{\"app\": \"%s\"} over MCP" % (APP, APP),
        "http_client": args.client,
        "client": "python3: %s (HTTP), os.write + os.read on pipes (stdio); one call in flight "
                  "at a time" % ("a minimal HTTP/1.1 client on a socket" if args.client == "raw"
                                 else "http.client.HTTPConnection"),
        "note": "targets take turns within each round, in an order that rotates per round; "
                "client, server and bridge share the machine's cores",
    }
    doc["targets"] = results
    doc["stdio_skipped_lines"] = skipped
    doc["goal"] = {"mcp_over_rest_max": GOAL_RATIO,
                   **{t: {"p50": results[t]["ratio_vs_rest"]["p50"],
                          "p99": results[t]["ratio_vs_rest"]["p99"]}
                      for t in ("mcp_http", "mcp_stdio", "mcp_stdio_nospin") if t in results}}
    os.makedirs(os.path.dirname(os.path.abspath(args.results)), exist_ok=True)
    with open(args.results + ".tmp", "w") as f:
        json.dump(doc, f, indent=2)
        f.write("\n")
    os.replace(args.results + ".tmp", args.results)
    return 2 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
