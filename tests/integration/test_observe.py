#!/usr/bin/env python3
"""`troupe run --metrics / --http` through the real binary: promtool accepts
the scrape, a real Prometheus server (started here on loopback) scrapes the
running graph and its query API returns the node's record count, /events
delivers growing snapshots and an `end` event equal to the --report file,
/api/snapshot follows the contract, bad addresses exit 64, a port in use
exits 1 with nothing run.

Usage: python3 test_observe.py TROUPE_BIN SOURCE_DIR

One line per case, `N passed, M failed`, exit 1 if any failed. Skips (with
a message) the Prometheus parts only when promtool or prometheus is missing.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (  # noqa: E402
    EXIT_OK, EXIT_FAILED, EXIT_USAGE, SLOW, Env, Fail, Skip, expect, case,
    run_cases)
from http_server import Server  # noqa: E402

# About 8 s of records at 1000/s through a map: long enough for Prometheus's
# first scrapes, short enough for the suite.
GRAPH = """version: 1
name: observed
nodes:
  gen: {{ type: generate, count: {count}, rate: 1000/s, template: "r{{i}}" }}
  hash: {{ type: map, fn: sha256, inputs: [gen] }}
  out: {{ type: file, path: "{out}", inputs: [hash] }}
"""

SNAPSHOT_TOTALS = {"source_records", "sink_records", "dead_lettered",
                   "restarts", "redelivered", "lost", "in_flight"}
SNAPSHOT_NODE = {"name", "type", "kind", "in", "out", "created", "filtered",
                 "dead_lettered", "errors", "retried", "lost", "redelivered",
                 "restarts", "in_flight", "rate", "latency_p50_ns",
                 "latency_p99_ns", "failures", "events"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.headers.get("Content-Type", ""), r.read().decode()


def wait_for_stderr(proc, err_path, text, seconds):
    """Waits until troupe (`proc`, stderr going to `err_path`) has said
    `text`; fails when it exits or `seconds` pass first."""
    deadline = time.time() + seconds * SLOW
    while text not in err_path.read_text():
        expect(time.time() < deadline and proc.poll() is None,
               f"troupe did not say {text!r}: {err_path.read_text()}")
        time.sleep(0.02)


def check_snapshot(doc, where):
    for key in ("graph", "status", "wall_seconds", "totals", "nodes",
                "dead_letters"):
        expect(key in doc, f"{where}: no '{key}' in the snapshot")
    expect(doc["status"] in ("running", "completed", "failed", "interrupted",
                             "timed_out"), f"{where}: status {doc['status']}")
    expect(set(doc["totals"]) == SNAPSHOT_TOTALS,
           f"{where}: totals keys {sorted(doc['totals'])}")
    for n in doc["nodes"]:
        expect(set(n) == SNAPSHOT_NODE, f"{where}: node keys {sorted(n)}")
        expect(n["kind"] in ("source", "stage", "sink"), f"{where}: kind")


class Run:
    """troupe run in the background; the addresses it printed."""

    def __init__(self, binary, tmp, args, count):
        self.tmp = tmp
        self.out = tmp / "out.jsonl"
        self.report = tmp / "report.json"
        cfg = tmp / "graph.yaml"
        cfg.write_text(GRAPH.format(count=count, out=self.out))
        self.stderr = open(tmp / "stderr.txt", "w+")
        self.proc = subprocess.Popen(
            [binary, "run", str(cfg), "--no-progress", "--report",
             str(self.report)] + args,
            stdout=subprocess.DEVNULL, stderr=self.stderr)
        self.metrics = self.live = None
        deadline = time.time() + 10 * SLOW
        while time.time() < deadline and (not self.metrics or
                                          ("--http" in args and not self.live)):
            text = (tmp / "stderr.txt").read_text()
            m = re.search(r"troupe: metrics at (http://\S+/metrics)", text)
            lv = re.search(r"troupe: live view at (http://\S+/)$", text, re.M)
            self.metrics = m.group(1) if m else None
            self.live = lv.group(1) if lv else None
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        expect(self.metrics, "no `metrics at` line: " + self.err())

    def err(self):
        return (self.tmp / "stderr.txt").read_text()

    def wait(self, timeout):
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise Fail("troupe did not end in time")


class Events(threading.Thread):
    """Reads /events into a list of (event, json)."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url, self.events, self.error = url, [], None

    def run(self):
        try:
            with urllib.request.urlopen(self.url, timeout=30) as r:
                event, data = None, []
                for raw in r:
                    line = raw.decode().rstrip("\n")
                    if line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        data.append(line[6:])
                    elif line == "" and event:
                        self.events.append((event, json.loads("".join(data))))
                        event, data = None, []
        except Exception as e:  # noqa: BLE001 - reported by the case
            self.error = e


@case
def scrape_prometheus_events(t):
    """One run serves everything: promtool, a real Prometheus, /events,
    /api/snapshot; the `end` event equals the report."""
    promtool = shutil.which("promtool")
    prometheus = shutil.which("prometheus")
    run = Run(t.bin, t.tmp, ["--metrics", "127.0.0.1:0", "--http", ":0"],
              count=8000)
    events = Events(run.live + "events")
    events.start()
    prom = None
    try:
        status, ctype, body = get(run.metrics)
        expect(status == 200 and ctype.startswith("text/plain"),
               f"/metrics: {status} {ctype}")
        expect('troupe_records_out_total{graph="observed",node="gen"' in body,
               "no gen series in /metrics")
        status, ctype, page = get(run.live)
        expect(status == 200 and "text/html" in ctype, f"/: {status} {ctype}")
        status, ctype, svg = get(run.live + "graph.svg")
        expect(status == 200 and "image/svg+xml" in ctype and "<svg" in svg,
               f"/graph.svg: {status} {ctype}")
        status, ctype, snap = get(run.live + "api/snapshot")
        expect(status == 200 and ctype.startswith("application/json"),
               f"/api/snapshot: {status} {ctype}")
        check_snapshot(json.loads(snap), "/api/snapshot")
        # The live-view server also serves /metrics.
        expect("troupe_run_up" in get(run.live + "metrics")[2],
               "no /metrics on the live-view server")
        if promtool:
            p = subprocess.run([promtool, "check", "metrics"], input=body,
                               capture_output=True, text=True, timeout=20)
            expect(p.returncode == 0, "promtool: " + p.stdout + p.stderr)
        if prometheus:
            port = free_port()
            target = urllib.parse.urlparse(run.metrics).netloc
            (t.tmp / "prom.yml").write_text(
                "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
                "scrape_configs:\n"
                f"  - job_name: troupe\n    static_configs:\n"
                f"      - targets: ['{target}']\n")
            prom = subprocess.Popen(
                [prometheus, "--config.file", str(t.tmp / "prom.yml"),
                 "--storage.tsdb.path", str(t.tmp / "tsdb"),
                 "--web.listen-address", f"127.0.0.1:{port}",
                 "--log.level", "warn"],
                stdout=subprocess.DEVNULL, stderr=open(t.tmp / "prom.log", "w"))
            query = urllib.parse.quote(
                'troupe_records_out_total{graph="observed",node="gen"}')
            deadline = time.time() + 20 * SLOW
            value = None
            while time.time() < deadline and run.proc.poll() is None:
                try:
                    _, _, ans = get(f"http://127.0.0.1:{port}/api/v1/query"
                                    f"?query={query}", timeout=2)
                    res = json.loads(ans)["data"]["result"]
                    if res and float(res[0]["value"][1]) > 0:
                        value = float(res[0]["value"][1])
                        break
                except (OSError, ValueError, KeyError):
                    pass
                time.sleep(0.5)
            expect(value, "Prometheus never returned gen's record count: "
                   + (t.tmp / "prom.log").read_text()[-500:])
        rc = run.wait(60 * SLOW)
        expect(rc == EXIT_OK, f"exit {rc}: {run.err()}")
        events.join(10)
        expect(not events.error, f"/events: {events.error}")
        kinds = [e for e, _ in events.events]
        expect(kinds and kinds[-1] == "end", f"/events: last is not end: "
               f"{kinds[-3:]}")
        snaps = [d for e, d in events.events if e == "snapshot"]
        expect(len(snaps) >= 3, f"only {len(snaps)} snapshot events")
        sinks = [d["totals"]["sink_records"] for d in snaps]
        expect(sinks == sorted(sinks) and sinks[-1] > sinks[0],
               f"counts do not grow: {sinks[:3]}..{sinks[-3:]}")
        for d in snaps[:2] + [events.events[-1][1]]:
            check_snapshot(d, "/events")
        end = events.events[-1][1]
        report = json.loads(run.report.read_text())
        expect(end["status"] == report["status"] == "completed",
               f"status {end['status']} / {report['status']}")
        for key in ("source_records", "sink_records", "dead_lettered",
                    "restarts", "lost"):
            want = report["totals"][key]
            expect(end["totals"][key] == want,
                   f"end {key} {end['totals'][key]} != report {want}")
        by_name = report["nodes"]
        for n in end["nodes"]:
            for key in ("in", "out", "created", "filtered", "dead_lettered"):
                expect(n[key] == by_name[n["name"]][key],
                       f"end {n['name']}.{key} != report")
    finally:
        if prom:
            prom.terminate()
            prom.wait(10)
        if run.proc.poll() is None:
            run.proc.kill()
    missing = [t for t, p in (("promtool", promtool),
                              ("prometheus", prometheus)) if not p]
    if missing:
        raise Skip("checked without " + " and ".join(missing)
                   + " (Debian package prometheus)")


@case
def bad_addresses(t):
    cfg = t.tmp / "graph.yaml"
    cfg.write_text(GRAPH.format(count=10, out=t.tmp / "out.jsonl"))
    for flag in ("--metrics", "--http"):
        for bad in ("", "localhost:", "h:port", "127.0.0.1:70000", "1:2:x",
                    "a b:80", "::1", "[::1]"):
            p = subprocess.run([t.bin, "run", str(cfg), flag, bad],
                               capture_output=True, text=True, timeout=20)
            expect(p.returncode == EXIT_USAGE,
                   f"{flag} '{bad}': exit {p.returncode}: {p.stderr}")
            expect(flag in p.stderr and len(p.stderr.strip().splitlines())
                   == 1, f"{flag} '{bad}': message {p.stderr!r}")
    expect(not (t.tmp / "out.jsonl").exists(), "the graph ran")


@case
def port_in_use(t):
    cfg = t.tmp / "graph.yaml"
    out = t.tmp / "out.jsonl"
    cfg.write_text(GRAPH.format(count=10, out=out))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        for flag in ("--metrics", "--http"):
            p = subprocess.run([t.bin, "run", str(cfg), flag, f":{port}"],
                               capture_output=True, text=True, timeout=20)
            expect(p.returncode == EXIT_FAILED,
                   f"{flag}: exit {p.returncode}: {p.stderr}")
            expect(f"127.0.0.1:{port}" in p.stderr, "message: " + p.stderr)
            expect(not out.exists(), "the graph ran although it could not "
                   "listen")


@case
def port_taken_by_another_troupe(t):
    """A port another troupe serves on is in use: the second run exits 1
    rather than share it (with SO_REUSEPORT both bound, and the requests
    went to either)."""
    first = Run(t.bin, t.tmp, ["--metrics", "127.0.0.1:0"], count=200000)
    port = int(first.metrics.rsplit(":", 1)[1].split("/")[0])
    cfg = t.tmp / "second.yaml"
    cfg.write_text(GRAPH.format(count=10, out=t.tmp / "second.jsonl"))
    try:
        for args in (["--metrics", f"127.0.0.1:{port}"],
                     ["--http", f"127.0.0.1:{port}"]):
            p = subprocess.run([t.bin, "run", str(cfg)] + args,
                               capture_output=True, text=True, timeout=20)
            expect(p.returncode == EXIT_FAILED,
                   f"{args}: exit {p.returncode}: {p.stderr}")
            expect("cannot listen" in p.stderr, "message: " + p.stderr)
            expect(not (t.tmp / "second.jsonl").exists(),
                   "the graph ran although it could not listen")
    finally:
        first.proc.terminate()
        first.proc.wait(timeout=30 * SLOW)


@case
def same_address(t):
    """--metrics and --http on one address: one server serves both, read
    only; each flag is given once."""
    port = free_port()
    run = Run(t.bin, t.tmp, ["--metrics", f":{port}", "--http", f":{port}"],
              count=1500)
    expect(run.live == f"http://127.0.0.1:{port}/", run.err())
    expect("troupe_records_in_total" in get(run.metrics)[2], "no metrics")
    # Read only: methods that would change something get 405, not 404.
    for method in ("POST", "PUT", "DELETE"):
        for path in ("/metrics", "/", "/events"):
            req = urllib.request.Request(run.live.rstrip("/") + path,
                                         data=b"" if method != "DELETE"
                                         else None, method=method)
            try:
                urllib.request.urlopen(req, timeout=5)
                raise Fail(f"{method} {path} was answered 2xx")
            except urllib.error.HTTPError as e:
                expect(e.code == 405 and e.headers.get("Allow") == "GET, HEAD",
                       f"{method} {path}: {e.code} {e.headers.get('Allow')}")
    rc = run.wait(30 * SLOW)
    expect(rc == EXIT_OK, f"exit {rc}: {run.err()}")
    # One address per flag: a second --metrics would silently win.
    for flag in ("--metrics", "--http"):
        p = subprocess.run([t.bin, "run", str(t.tmp / "graph.yaml"), flag,
                            ":0", flag, ":0"], capture_output=True, text=True,
                           timeout=20)
        expect(p.returncode == EXIT_USAGE and "given twice" in p.stderr,
               f"{flag} twice: exit {p.returncode}: {p.stderr}")


SERVICES_GRAPH = """\
version: 1
name: svc
resources:
  memo: {{ type: cache, capacity: 100 }}
  pace: {{ type: rate_limiter, rate: 400/s, burst: 10 }}
  tally: {{ type: counter }}
nodes:
  src:   {{ type: generate, count: 1200, template: "x{{i}}", cycle: 40 }}
  h:     {{ type: map, fn: sha256, cache: memo, rate_limit: pace,
           counter: tally, inputs: [src] }}
  out:   {{ type: "null", inputs: [h] }}
  ok:    {{ type: generate, count: 3, start: 200 }}
  gone:  {{ type: generate, count: 2, start: 404 }}
  bad:   {{ type: generate, count: 1, start: 500 }}
  fetch: {{ type: http_fetch, url: "{base}/status/{{body}}", max_attempts: 1,
           block_private: false, inputs: [ok, gone, bad] }}
  seen:  {{ type: "null", inputs: [fetch] }}
  failed: {{ type: "null", inputs: [fetch.errors] }}
"""


def series(text, name, **labels):
    """The value of the series `name` whose labels include `labels`."""
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


@case
def service_and_http_figures(t):
    """A cache, a rate limiter, a counter and an http_fetch against the real
    test server: /metrics carries the services' own figures
    (troupe_service_*, troupe_service_up) and the fetch's outcomes by status
    class."""
    server = Server(t.src, t.tmp)
    try:
        cfg = t.tmp / "svc.yaml"
        cfg.write_text(SERVICES_GRAPH.format(base=server.base))
        port = free_port()
        proc = subprocess.Popen(
            [t.bin, "run", str(cfg), "--no-progress", "--metrics",
             f"127.0.0.1:{port}", "--report", str(t.tmp / "r.json")],
            stdout=subprocess.DEVNULL, stderr=open(t.tmp / "err.txt", "w"))
        url = f"http://127.0.0.1:{port}/metrics"
        scrapes = []
        deadline = time.time() + 30 * SLOW
        while proc.poll() is None and time.time() < deadline:
            try:
                scrapes.append(get(url)[2])
            except OSError:
                pass  # not listening yet, or gone at the end
            time.sleep(0.1)
        rc = proc.wait(timeout=30 * SLOW)
        err = (t.tmp / "err.txt").read_text()
        expect(rc == EXIT_OK, f"exit {rc}: {err}")
        expect(len(scrapes) >= 5, f"{len(scrapes)} scrapes: {err}")
        last = scrapes[-1]
        check = subprocess.run(["promtool", "check", "metrics"], input=last,
                               capture_output=True, text=True)
        expect(check.returncode == 0, f"promtool: {check.stdout}{check.stderr}")
        for res, typ in (("memo", "cache"), ("pace", "rate_limiter"),
                         ("tally", "counter")):
            expect(series(last, "troupe_service_up", resource=res, type=typ)
                   == 1, f"{res} not up: {last[-600:]}")
        # Counters only grow, scrape after scrape.
        hits = [series(t, "troupe_service_cache_hits_total", resource="memo")
                for t in scrapes]
        hits = [h for h in hits if h is not None]
        expect(hits and hits == sorted(hits), f"cache hits: {hits}")
        misses = series(last, "troupe_service_cache_misses_total",
                        resource="memo")
        expect(misses is not None and 1 <= misses <= 40, f"misses {misses}")
        expect(hits[-1] > 40, f"hits {hits[-1]} (40 bodies, 1200 records)")
        granted = series(last, "troupe_service_limiter_granted_total",
                         resource="pace")
        expect(granted is not None and granted > 100, f"granted {granted}")
        # The counter's total grows with what `h` passed on (its slot's
        # adds are messages: the last scrape may miss the newest ones).
        totals = [series(t, "troupe_service_counted", resource="tally")
                  for t in scrapes]
        totals = [v for v in totals if v is not None]
        expect(totals and totals == sorted(totals) and 0 < totals[-1] <= 1200,
               f"counter totals: {totals}")
        # Every fetch ended long before the last scrape: exact figures.
        for event, n in (("http_2xx", 3), ("http_4xx", 2), ("http_5xx", 1)):
            v = series(last, "troupe_node_events_total", node="fetch",
                       event=event)
            expect(v == n, f"{event}: {v}, expected {n}")
        report = json.loads((t.tmp / "r.json").read_text())
        expect(report["nodes"]["fetch"]["dead_lettered"] == 3,
               f"fetch report: {report['nodes']['fetch']}")
    finally:
        server.stop()


@case
def trickling_client_does_not_hold_the_exit(t):
    """A client sending its request a byte at a time holds a server thread:
    once the run is over, troupe leaves within a bound, exit 0."""
    cfg = t.tmp / "g.yaml"
    cfg.write_text("version: 1\nname: g\nnodes:\n"
                   "  src: { type: generate, count: 3000, rate: 3000/s }\n"
                   "  out: { type: \"null\", inputs: [src] }\n")
    port = free_port()
    start = time.time()
    proc = subprocess.Popen([t.bin, "run", str(cfg), "--no-progress",
                             "--metrics", f"127.0.0.1:{port}"],
                            stdout=subprocess.DEVNULL,
                            stderr=open(t.tmp / "err.txt", "w"))
    stop = threading.Event()

    def trickle():
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                sock = socket.create_connection(("127.0.0.1", port))
                break
            except OSError:
                time.sleep(0.02)
        else:
            return
        for c in b"GET /metrics HTTP/1.1\r\n" + b"X: y\r\n" * 200:
            if stop.is_set():
                break
            try:
                sock.send(bytes([c]))
            except OSError:
                break
            time.sleep(0.3)
        sock.close()

    threading.Thread(target=trickle, daemon=True).start()
    try:
        rc = proc.wait(timeout=15 * SLOW)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise Fail("troupe still running 15 s after a 1 s run")
    finally:
        stop.set()
    took = time.time() - start
    err = (t.tmp / "err.txt").read_text()
    expect(rc == EXIT_OK, f"exit {rc}: {err}")
    expect("did not let go" in err, f"no word about the client: {err}")
    expect(took < 10 * SLOW, f"took {took:.1f}s")


@case
def linger_serves_the_final_figures(t):
    """--linger: after the run, /metrics still answers with the final
    figures (troupe_run_up 0, the report's totals); a signal ends the
    linger at once and the exit stays the run's (0)."""
    cfg = t.tmp / "g.yaml"
    cfg.write_text("version: 1\nname: g\nnodes:\n"
                   "  src: { type: generate, count: 2000, rate: 4000/s }\n"
                   "  out: { type: \"null\", inputs: [src] }\n")
    port = free_port()
    err_path = t.tmp / "err.txt"
    proc = subprocess.Popen([t.bin, "run", str(cfg), "--no-progress",
                             "--metrics", f"127.0.0.1:{port}", "--linger",
                             "30s", "--report", str(t.tmp / "r.json")],
                            stdout=subprocess.DEVNULL,
                            stderr=open(err_path, "w"))
    wait_for_stderr(proc, err_path, "serving the final figures", 20)
    text = get(f"http://127.0.0.1:{port}/metrics")[2]
    expect(series(text, "troupe_run_up") == 0, "run_up is not 0")
    expect(series(text, "troupe_run_status", status="completed") == 1,
           "status is not completed")
    report = json.loads((t.tmp / "r.json").read_text())
    expect(series(text, "troupe_run_source_records_total")
           == report["totals"]["source_records"] == 2000, "totals differ")
    start = time.time()
    proc.send_signal(signal.SIGINT)
    rc = proc.wait(timeout=10 * SLOW)
    expect(rc == EXIT_OK, f"exit {rc} after a signal in the linger")
    expect(time.time() - start < 3 * SLOW, "the signal did not end it")


@case
def linger_needs_a_server_and_a_run_not_stopped(t):
    """--linger without --metrics or --http is a usage error (it would be
    ignored); a run a signal stopped leaves at once instead of lingering."""
    cfg = t.tmp / "g.yaml"
    cfg.write_text("version: 1\nname: g\nnodes:\n"
                   "  src: { type: generate, count: 100000, rate: 1000/s }\n"
                   "  out: { type: \"null\", inputs: [src] }\n")
    p = subprocess.run([t.bin, "run", str(cfg), "--linger", "5s"],
                       capture_output=True, text=True, timeout=30)
    expect(p.returncode == EXIT_USAGE and "--metrics or --http" in p.stderr,
           f"exit {p.returncode}: {p.stderr}")
    err_path = t.tmp / "err.txt"
    proc = subprocess.Popen([t.bin, "run", str(cfg), "--no-progress",
                             "--metrics", "127.0.0.1:0", "--linger", "30s"],
                            stdout=subprocess.DEVNULL,
                            stderr=open(err_path, "w"))
    wait_for_stderr(proc, err_path, "metrics at", 20)
    time.sleep(0.5)
    start = time.time()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=15 * SLOW)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise Fail("still running 15 s after SIGTERM (lingering?)")
    err = err_path.read_text()
    expect(rc == 130, f"exit {rc}: {err}")
    expect("serving the final figures" not in err, f"it lingered: {err}")
    expect(time.time() - start < 5 * SLOW, "slow to leave")


@case
def idle_connections_do_not_starve_a_scrape(t):
    """Forty idle connections on each server and the live view's eight
    /events streams: /metrics and /api/snapshot still answer within the
    idle connections' 1 s wait (threads are started as requests come, up to
    the cap), and the run ends with exit 0."""
    cfg = t.tmp / "g.yaml"
    cfg.write_text("version: 1\nname: g\nnodes:\n"
                   "  src: { type: generate, count: 24000, rate: 4000/s }\n"
                   "  out: { type: \"null\", inputs: [src] }\n")
    mport, hport = free_port(), free_port()
    err_path = t.tmp / "err.txt"
    proc = subprocess.Popen([t.bin, "run", str(cfg), "--no-progress",
                             "--metrics", f"127.0.0.1:{mport}", "--http",
                             f"127.0.0.1:{hport}"],
                            stdout=subprocess.DEVNULL,
                            stderr=open(err_path, "w"))
    idle, streams = [], []
    try:
        wait_for_stderr(proc, err_path, "live view at", 10)
        for _ in range(8):
            ev = Events(f"http://127.0.0.1:{hport}/events")
            ev.start()
            streams.append(ev)
        for port in (mport, hport):
            for _ in range(40):
                idle.append(socket.create_connection(("127.0.0.1", port)))
        time.sleep(0.2)  # let the server take them all in
        for url in (f"http://127.0.0.1:{mport}/metrics",
                    f"http://127.0.0.1:{hport}/api/snapshot"):
            start = time.time()
            try:
                status = get(url, timeout=10 * SLOW)[0]
            except OSError as e:
                raise Fail(f"{url}: {e!r}; troupe said: {err_path.read_text()}")
            took = time.time() - start
            expect(status == 200, f"{url}: status {status}")
            expect(took < 2.5 * SLOW, f"{url} took {took:.2f}s behind idle "
                   "connections")
    finally:
        for sock in idle:
            sock.close()
    rc = proc.wait(timeout=30 * SLOW)
    expect(rc == EXIT_OK, f"exit {rc}: {err_path.read_text()}")
    for ev in streams:
        ev.join(timeout=10 * SLOW)
        expect(ev.events and ev.events[-1][0] == "end",
               f"an /events stream did not get `end`: {ev.error}")


if __name__ == "__main__":
    run_cases(sys.argv, Env, __doc__)
