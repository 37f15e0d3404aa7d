#!/usr/bin/env python3
"""HTTP through the real troupe binary on real YAML against the real test
server (tests/http/server.py, aiohttp): http_fetch's statuses, retries,
deadlines, transport guards, TLS, POST, concurrency, rate, cache, races,
the circuit breaker, adaptive concurrency, paginate, SIGTERM with and
without a checkpoint, and config/scraper.yaml as shipped.

Usage: python3 test_http.py TROUPE_BIN SOURCE_DIR

Same harness as test_cli.py: one fresh temporary directory per case, a
timeout on every run, one line per case, exit 1 if any case failed. One
plain server and one TLS server (a self-signed certificate made with the
openssl CLI) serve the whole run; each case starts with /_reset. The server
runs under Debian's python3 (python3-aiohttp), not necessarily the one
running this script. Times are checked with tolerances, never exact.
"""
import base64
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (  # noqa: E402
    EXIT_OK, EXIT_INTERRUPTED, Fail, Skip, expect, case, tail, load_report,
    check_balanced, SLOW)
from harness import Env as BaseEnv  # noqa: E402
from http_server import Server  # noqa: E402

TIMEOUT = 60

# Cases that fail because of a bug in the stage (not in the test): they stay
# here, skipped so that ctest stays green, until the lead fixes them. Each
# entry: case name -> what goes wrong.
KNOWN_BUGS = {}


def skip_known_bugs():
    """A case listed in KNOWN_BUGS is reported as skipped, not run."""
    for i, fn in enumerate(harness.CASES):
        if fn.__name__ in KNOWN_BUGS:
            def skipped(t, why=KNOWN_BUGS[fn.__name__]):
                raise Skip("known bug: " + why)
            skipped.__name__ = fn.__name__
            harness.CASES[i] = skipped


# -- the servers --------------------------------------------------------------

SERVER = TLS = None
CERT = None


def make_cert(d):
    key, cert = d / "key.pem", d / "cert.pem"
    p = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
         "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
        capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"test_http: openssl req failed: {tail(p.stderr)}")
    return cert, key


# -- per case -----------------------------------------------------------------

SANITIZER = re.compile(r"AddressSanitizer|LeakSanitizer|ThreadSanitizer"
                       r"|UndefinedBehaviorSanitizer|runtime error:")


def no_sanitizer_report(stderr):
    m = SANITIZER.search(stderr or "")
    expect(not m, f"sanitizer report: {stderr[m.start():m.start() + 300]!r}"
           if m else "")


def jsonl(path):
    if not path.exists():
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def yaml_value(v):
    # JSON is YAML (flow style): strings quoted, lists as [..].
    return json.dumps(v)


class Env(BaseEnv):
    def __init__(self, *a):
        super().__init__(*a)
        self.s, self.tls = SERVER, TLS
        for srv in (self.s, self.tls):
            # The previous case's transfers that troupe left open (a /hang
            # at exit) end on the server a little later: reset after, or
            # their end would count in this case's in_progress.
            srv.wait_stats(lambda s: s["in_progress"] == 0, limit=5)
            srv.reset()

    def troupe(self, *args, timeout=TIMEOUT):
        env = dict(os.environ, OUT_DIR=str(self.tmp / "out"))
        return subprocess.run([self.bin, *map(str, args)], cwd=self.tmp,
                              env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True,
                              timeout=timeout * SLOW)

    def run(self, yaml, want=EXIT_OK, timeout=TIMEOUT, name="g.yaml"):
        """Runs the graph; returns (report, seconds, stderr)."""
        self.write(name, yaml)
        rep = self.tmp / "r.json"
        if rep.exists():
            rep.unlink()
        start = time.monotonic()
        p = self.troupe("run", name, "--no-progress", "--report", "r.json",
                        timeout=timeout)
        took = time.monotonic() - start
        no_sanitizer_report(p.stderr)
        expect(p.returncode == want,
               f"exit {p.returncode}, want {want}: {tail(p.stderr)}")
        report = load_report(rep)
        check_balanced(report)
        return report, took, p.stderr

    def graph(self, fetch, urls=None, resources=None, runtime=None,
              append=False, checkpoint=None):
        """A file of URLs (one record each) -> http_fetch `fetch` -> out.jsonl,
        fetch.errors -> err.jsonl."""
        if urls is not None:
            self.write("urls.txt", "".join(u + "\n" for u in urls))
        params = {"block_private": False, **fetch}
        lines = ["version: 1", "name: h"]
        if runtime:
            lines.append("runtime: " + yaml_value(runtime))
        if resources:
            lines.append("resources:")
            for name, spec in resources.items():
                lines.append(f"  {name}: {yaml_value(spec)}")
        src = {"type": "file", "path": "urls.txt"}
        if checkpoint:
            src["checkpoint"] = checkpoint
        lines += ["nodes:", f"  src: {yaml_value(src)}", "  fetch:",
                  "    type: http_fetch", "    inputs: [src]"]
        lines += [f"    {k}: {yaml_value(v)}" for k, v in params.items()]
        app = ", append: true" if append else ""
        lines += [f"  out: {{ type: file, path: out.jsonl, "
                  f"inputs: [fetch]{app} }}",
                  f"  err: {{ type: file, path: err.jsonl, "
                  f"inputs: [fetch.errors]{app} }}"]
        return "\n".join(lines) + "\n"

    def fetch(self, urls, want=EXIT_OK, **kw):
        """Runs graph(); checks every record is accounted for; returns
        (out records, error records, report, seconds, stderr)."""
        fetch_keys = {k: kw.pop(k) for k in list(kw)
                      if k not in ("resources", "runtime")}
        rep, took, err = self.run(self.graph(fetch_keys, urls, **kw), want)
        out = jsonl(self.tmp / "out.jsonl")
        errs = jsonl(self.tmp / "err.jsonl")
        accounted(rep, "fetch", len(urls), out, errs)
        return out, errs, rep, took, err


def accounted(rep, node, n_in, out, errs):
    got = rep["nodes"][node]
    expect(got["in"] == n_in, f"{node} took in {got['in']}, want {n_in}")
    expect(len(out) + len(errs) == n_in,
           f"{len(out)} out + {len(errs)} errors != {n_in} inputs")
    expect(got["out"] == len(out) and got["dead_lettered"] == len(errs),
           f"{node}: report out {got['out']} / dead_lettered "
           f"{got['dead_lettered']} vs files {len(out)} / {len(errs)}")


def attr(r, name):
    return r.get("attrs", {}).get(name)


def one(records, what):
    expect(len(records) == 1, f"{len(records)} {what}, want 1")
    return records[0]


def body_json(r):
    try:
        return json.loads(r["body"])
    except ValueError:
        raise Fail(f"body is not JSON: {r['body'][:200]!r}")


def requests_to(stats, path):
    return stats["requests"].get(path, 0)


def max_in_window(times, window):
    """The most arrivals within any closed interval of `window` seconds."""
    times = sorted(times)
    best, j = 0, 0
    for i, t in enumerate(times):
        while times[j] < t - window:
            j += 1
        best = max(best, i - j + 1)
    return best


def check_paced(times, rate, burst, slack=1):
    """No window holds more than burst + rate * window arrivals (+ slack for
    scheduling jitter at the window's edges)."""
    for w in (0.05, 0.25, 0.5, 1.0, 2.0):
        n = max_in_window(times, w)
        bound = burst + rate * w + slack
        expect(n <= bound, f"{n} arrivals within {w} s: more than "
                           f"burst {burst} + {rate}/s x {w} s (+{slack})")


# -- cases: statuses and outputs ----------------------------------------------

@case
def ok_body_in_every_output_mode_and_attrs_carry_on(t):
    """One record through json, body and status outputs; the kept response
    header is an attribute; a second fetch keeps the first's attributes."""
    b = t.s.base
    t.write("urls.txt", f"{b}/ok?size=5\n{b}/ok?size=7\n")
    t.run("""\
version: 1
name: modes
nodes:
  src: { type: file, path: urls.txt }
  js:  { type: http_fetch, inputs: [src], block_private: false,
          response_headers: [content-type, content-length] }
  bd:  { type: http_fetch, inputs: [src], block_private: false,
          output: body }
  st:  { type: http_fetch, inputs: [src], block_private: false,
          output: status }
  again: { type: http_fetch, inputs: [js], block_private: false,
            url: "{attr.http_url}", output: body }
  o_js: { type: file, path: js.jsonl, inputs: [js] }
  o_bd: { type: file, path: bd.jsonl, inputs: [bd] }
  o_st: { type: file, path: st.jsonl, inputs: [st] }
  o_again: { type: file, path: again.jsonl, inputs: [again] }
  errs: { type: file, path: err.jsonl,
           inputs: [js.errors, bd.errors, st.errors, again.errors] }
""")
    expect(jsonl(t.tmp / "err.jsonl") == [], "errors")
    js = sorted(jsonl(t.tmp / "js.jsonl"), key=lambda r: r["seq"])
    expect(len(js) == 2, f"{len(js)} json records")
    j = body_json(js[0])
    expect(j["status"] == 200 and j["body"] == "xxxxx",
           f"json output: {j}")
    expect(j["url"] == f"{b}/ok?size=5", f"url {j['url']}")
    expect(j["attempts"] == 1 and j["elapsed_ms"] >= 0, f"{j}")
    expect(j["headers"].get("content-length") == "5", f"headers {j}")
    expect(attr(js[0], "http_content-type") == j["headers"]["content-type"]
           and attr(js[0], "http_content-type"), f"attrs {js[0]['attrs']}")
    expect(attr(js[0], "http_status") == "200", f"attrs {js[0]['attrs']}")
    bd = {r["seq"]: r["body"] for r in jsonl(t.tmp / "bd.jsonl")}
    expect(bd == {0: "xxxxx", 1: "xxxxxxx"}, f"body output {bd}")
    st = {r["seq"]: r["body"] for r in jsonl(t.tmp / "st.jsonl")}
    expect(st == {0: "200", 1: "200"}, f"status output {st}")
    again = sorted(jsonl(t.tmp / "again.jsonl"), key=lambda r: r["seq"])
    expect([r["body"] for r in again] == ["xxxxx", "xxxxxxx"],
           f"second fetch by {{attr.http_url}}: {again}")
    # The first fetch's header attribute carried on through the second.
    expect(attr(again[1], "http_content-length") == "7",
           f"input attributes lost: {again[1]['attrs']}")
    expect(requests_to(t.s.stats(), "/ok") == 8, "requests made")


@case
def binary_body_travels_as_base64_in_json(t):
    """A body that is not UTF-8 keeps every byte: json output carries it as
    body_base64 (a JSON string would turn half of it into U+FFFD)."""
    b = t.s.base
    t.write("urls.txt", f"{b}/binary\n{b}/ok?size=3\n")
    t.run("""\
version: 1
name: binary
nodes:
  src: { type: file, path: urls.txt }
  get: { type: http_fetch, inputs: [src], block_private: false }
  out: { type: file, path: out.jsonl, inputs: [get] }
""")
    got = {r["seq"]: body_json(r) for r in jsonl(t.tmp / "out.jsonl")}
    expect(set(got) == {0, 1}, f"records {sorted(got)}")
    expect("body" not in got[0] and "body_base64" in got[0], f"{got[0]}")
    raw = base64.b64decode(got[0]["body_base64"])
    expect(raw == bytes(range(256)) * 2, f"{len(raw)} bytes, not the body")
    expect(got[1].get("body") == "xxx" and "body_base64" not in got[1],
           f"{got[1]}")


@case
def status_404_goes_to_errors_unless_accepted(t):
    url = [f"{t.s.base}/status/404"]
    out, errs, *_ = t.fetch(url)
    e = one(errs, "errors")
    expect(attr(e, "http_status") == "404"
           and attr(e, "http_error") == "status",
           f"attrs {e['attrs']}")
    expect(attr(e, "http_attempts") == "1", "a 404 is not retried")
    expect("404" in attr(e, "error"), f"error {attr(e, 'error')}")
    expect(e["body"] == url[0], "the error record keeps the input body")
    out, errs, *_ = t.fetch(url, accept=["2xx", "404"], output="status")
    expect(one(out, "outputs")["body"] == "404", f"{out}")


@case
def flaky_500_retried_and_attempts_match_the_server(t):
    b = t.s.base
    out, errs, *_ = t.fetch([f"{b}/flaky/a?fails=2&status=500"],
                            backoff="10ms", output="body")
    r = one(out, "outputs")
    expect(json.loads(r["body"]) == {"attempt": 3}, f"body {r['body']}")
    expect(attr(r, "http_attempts") == "3", f"attrs {r['attrs']}")
    expect(requests_to(t.s.stats(), "/flaky/a") == 3, "server count")
    out, errs, *_ = t.fetch([f"{b}/flaky/b?fails=2&status=500"],
                            backoff="10ms", max_attempts=1)
    e = one(errs, "errors")
    expect(attr(e, "http_attempts") == "1" and attr(e, "http_status") == "500",
           f"attrs {e['attrs']}")
    expect(requests_to(t.s.stats(), "/flaky/b") == 1, "server count")


@case
def retry_after_is_waited_for_up_to_its_cap(t):
    b = t.s.base
    out, errs, rep, took, _ = t.fetch([f"{b}/limited/a?fails=1&after=1"],
                                      backoff="10ms")
    r = one(out, "outputs")
    expect(attr(r, "http_attempts") == "2", f"attrs {r['attrs']}")
    arr = [a for a, p in t.s.stats()["arrivals"] if p == "/limited/a"]
    expect(len(arr) == 2, f"{len(arr)} requests")
    expect(arr[1] - arr[0] >= 0.95, f"retried {arr[1] - arr[0]:.3f} s after a "
                                     f"429 with Retry-After: 1")
    expect(float(attr(r, "http_elapsed_ms")) >= 950, f"{r['attrs']}")
    out, errs, rep, took, _ = t.fetch([f"{b}/limited/b?fails=1&after=1"],
                                      backoff="10ms", retry_after_cap="500ms")
    e = one(errs, "errors")
    expect(attr(e, "http_status") == "429" and attr(e, "http_attempts") == "1",
           f"attrs {e['attrs']}")
    expect(float(attr(e, "http_elapsed_ms")) < 500,
           f"waited before giving up: {e['attrs']}")
    expect(requests_to(t.s.stats(), "/limited/b") == 1, "server count")


@case
def hang_times_out_per_attempt(t):
    out, errs, rep, took, _ = t.fetch([f"{t.s.base}/hang"], timeout="500ms",
                                      max_attempts=2, backoff="10ms")
    e = one(errs, "errors")
    expect(attr(e, "http_error") == "timeout", f"attrs {e['attrs']}")
    expect(attr(e, "http_attempts") == "2", f"attrs {e['attrs']}")
    ms = float(attr(e, "http_elapsed_ms"))
    expect(950 <= ms <= 3000 * SLOW, f"2 attempts of 500ms took {ms} ms")
    expect(0.95 <= took <= 5 * SLOW, f"run took {took:.2f} s")
    s = t.s.wait_stats(lambda s: s["in_progress"] == 0)
    expect(requests_to(s, "/hang") == 2, "server count")
    expect(s["cancelled_by_path"].get("/hang") == 2,
           "the server saw the timed-out transfers closed")


@case
def trickle_aborted_as_low_speed(t):
    out, errs, rep, took, _ = t.fetch(
        [f"{t.s.base}/trickle?bytes=100"], low_speed_limit=50,
        low_speed_time="1s", max_attempts=1)
    e = one(errs, "errors")
    expect(attr(e, "http_error") == "low_speed", f"attrs {e['attrs']}")
    expect(took <= 6 * SLOW, f"took {took:.2f} s")


@case
def transport_failures_are_named(t):
    """reset (retried by default), a redirect loop, a redirect to ftp, a
    body over max_body (with and without Content-Length), a chunked body."""
    b = t.s.base
    urls = [f"{b}/reset", f"{b}/loop?n=0", f"{b}/to-ftp",
            f"{b}/big?size=100000", f"{b}/big?size=100000&chunked=1",
            f"{b}/chunked?chunks=50"]
    # breaker_failures 0: these failures on one host would open its circuit.
    out, errs, *_ = t.fetch(urls, max_redirects=3, max_body="1KiB",
                            backoff="10ms", output="body", breaker_failures=0)
    by = {e["body"]: e for e in errs}
    want = {urls[0]: "reset", urls[1]: "too_many_redirects",
            urls[2]: "forbidden_scheme", urls[3]: "too_large",
            urls[4]: "too_large"}
    for u, why in want.items():
        expect(u in by, f"{u} not in errors")
        expect(attr(by[u], "http_error") == why,
               f"{u}: http_error {attr(by[u], 'http_error')}, want {why}: "
               f"{attr(by[u], 'error')}")
    expect(attr(by[urls[0]], "http_attempts") == "3", "reset is retried")
    r = one(out, "outputs")
    expect(r["body"] == "".join(f"chunk {i}\n" for i in range(50)),
           f"chunked body {r['body'][:80]!r}")
    s = t.s.stats()
    expect(requests_to(s, "/reset") == 3, "reset attempts")
    expect(requests_to(s, "/loop") == 4, f"{requests_to(s, '/loop')} hops of "
                                         f"a loop with max_redirects 3")
    expect(attr(by[urls[2]], "http_attempts") == "1", "forbidden is final")


@case
def max_body_is_inclusive_and_retry_on_is_honoured(t):
    """max_body 1KiB: 1024 bytes pass, 1025 fail (with and without
    Content-Length); retry_on decides what is retried: low_speed is not by
    default, a timeout is not when left out, a 404 is when listed."""
    b = t.s.base
    urls = [f"{b}/big?size=1024", f"{b}/big?size=1024&chunked=1",
            f"{b}/big?size=1025", f"{b}/big?size=1025&chunked=1"]
    out, errs, *_ = t.fetch(urls, max_body="1KiB", output="body",
                            breaker_failures=0)
    expect(sorted(len(r["body"]) for r in out) == [1024, 1024], f"{out}")
    expect(sorted(e["body"] for e in errs) == sorted(urls[2:])
           and all(attr(e, "http_error") == "too_large" for e in errs),
           f"{[e['attrs'] for e in errs]}")
    cases = [([f"{b}/trickle?bytes=100"],
              {"low_speed_limit": 50, "low_speed_time": "1s"}, "low_speed", 1),
             ([f"{b}/hang"], {"timeout": "300ms", "retry_on": ["5xx"]},
              "timeout", 1),
             ([f"{b}/status/404"], {"retry_on": ["404"]}, "status", 3)]
    for urls, kw, why, attempts in cases:
        out, errs, *_ = t.fetch(urls, backoff="10ms", **kw)
        e = one(errs, "errors")
        expect(attr(e, "http_error") == why
               and attr(e, "http_attempts") == str(attempts),
               f"{urls[0]} with {kw}: {e['attrs']}")


@case
def bad_urls_and_tls_mismatch_are_named(t):
    out, errs, *_ = t.fetch(["not a url", "http://",
                             t.s.base.replace("http:", "https:") + "/ok"],
                            backoff="10ms", breaker_failures=0)
    by = {e["body"]: e for e in errs}
    expect(len(by) == 3, f"{out}")
    for u in ("not a url", "http://"):
        expect(attr(by[u], "http_error") == "bad_request"
               and attr(by[u], "http_attempts") == "1", f"{by[u]['attrs']}")
    tls = by[t.s.base.replace("http:", "https:") + "/ok"]
    expect(attr(tls, "http_error") == "tls", f"https to a plain port: "
                                             f"{tls['attrs']}")


@case
def template_values_are_percent_encoded(t):
    out, errs, *_ = t.fetch(["a b&c=d/é"], url=f"{t.s.base}/echo?q={{body}}",
                            output="body")
    import urllib.parse
    q = body_json(one(out, "outputs"))["query"]
    got = urllib.parse.parse_qs(q if isinstance(q, str)
                                else urllib.parse.urlencode(q))
    expect(got == {"q": ["a b&c=d/é"]}, f"query {q!r}: the value was not "
                                        f"kept as one parameter")


@case
def private_address_refused_before_any_request(t):
    b, port = t.s.base, t.s.port
    # Loopback however spelt: the resolved address is what is checked.
    urls = [f"{b}/ok", f"http://localhost:{port}/ok",
            f"{b}/redirect?to=http://127.0.0.1:{port}/ok",
            f"http://0.0.0.0:{port}/ok",
            f"http://[::ffff:127.0.0.1]:{port}/ok",
            f"http://2130706433:{port}/ok", f"http://127.1:{port}/ok",
            f"http://0x7f000001:{port}/ok", f"http://[::1]:{port}/ok"]
    g = t.graph({"max_redirects": 3}, urls).replace(
        "block_private: false", "block_private: true")
    rep, *_ = t.run(g)
    errs = jsonl(t.tmp / "err.jsonl")
    accounted(rep, "fetch", len(urls), jsonl(t.tmp / "out.jsonl"), errs)
    for e in errs:
        expect(attr(e, "http_error") == "forbidden_address",
               f"{e['body']}: {e['attrs']}")
    expect(t.s.stats()["total"] == 0, "a request reached the server")
    # The default is the same guard.
    g = t.graph({}, urls[:1]).replace("    block_private: false\n", "")
    expect("block_private" not in g, "default")
    rep, *_ = t.run(g)
    e = one(jsonl(t.tmp / "err.jsonl"), "errors")
    expect(attr(e, "http_error") == "forbidden_address", f"{e['attrs']}")
    expect(t.s.stats()["total"] == 0, "a request reached the server")


@case
def redirects_followed_only_when_enabled(t):
    """max_redirects 0 (the default): a 3xx is the response; 1: followed."""
    b = t.s.base
    out, errs, *_ = t.fetch([f"{b}/redirect?to={b}/ok"], max_redirects=1,
                            output="body")
    expect(one(out, "outputs")["body"] == "ok\n", "redirect followed")
    out, errs, *_ = t.fetch([f"{b}/redirect?to={b}/ok"])
    e = one(errs, "errors")
    expect(attr(e, "http_status") == "302", "not accepted by default")
    out, errs, *_ = t.fetch([f"{b}/redirect?to={b}/ok"], accept=["2xx", "302"])
    r = one(out, "outputs")
    expect(body_json(r)["status"] == 302, "max_redirects 0: the 3xx is the "
                                          "response")
    expect(requests_to(t.s.stats(), "/ok") == 1, "followed once in all")


# -- TLS ----------------------------------------------------------------------

@case
def tls_self_signed_rejected_then_accepted(t):
    url = [f"{t.tls.base}/ok"]
    out, errs, rep, took, stderr = t.fetch(url, max_attempts=1)
    e = one(errs, "errors")
    expect(attr(e, "http_error") == "tls", f"attrs {e['attrs']}")
    expect("verification is off" not in stderr, "logged while on")
    out, errs, *_ = t.fetch(url, ca_file=str(CERT), output="body")
    expect(one(out, "outputs")["body"] == "ok\n", f"with ca_file: {errs}")
    out, errs, rep, took, stderr = t.fetch(url, verify_tls=False,
                                           output="body")
    expect(one(out, "outputs")["body"] == "ok\n", f"verify_tls false: {errs}")
    expect(re.search(r"TLS verification is off", stderr),
           f"turning verification off is not logged: {tail(stderr)}")
    # localhost is in the certificate too.
    out, errs, *_ = t.fetch([f"https://localhost:{t.tls.port}/ok"],
                            ca_file=str(CERT), output="body")
    expect(len(out) == 1, f"by name: {errs}")


# -- methods ------------------------------------------------------------------

@case
def post_with_templated_body_and_header(t):
    b = t.s.base
    t.write("urls.txt", "alpha\nbeta\n")
    out, errs, *_ = t.fetch(["alpha", "beta"], url=f"{b}/echo", method="POST",
                            body='{{"name": "{body}", "seq": {seq}}}',
                            headers=["X-Name: {body}",
                                     "Content-Type: application/json"],
                            output="body")
    got = sorted((json.loads(r["body"]) for r in out), key=lambda j: j["body"])
    expect(len(got) == 2, f"{len(got)} echoes")
    for j, (name, seq) in zip(got, [("alpha", 0), ("beta", 1)]):
        expect(j["method"] == "POST", f"method {j['method']}")
        expect(json.loads(j["body"]) == {"name": name, "seq": seq},
               f"body {j['body']!r}")
        h = {k.lower(): v for k, v in j["headers"].items()}
        expect(h.get("x-name") == name, f"headers {h}")


@case
def headers_templated_from_key_and_attributes(t):
    b = t.s.base
    rep, *_ = t.run(f"""\
version: 1
name: hdrs
nodes:
  src: {{ type: generate, count: 2, key: "k{{i}}", template: "v{{i}}" }}
  f1: {{ type: http_fetch, inputs: [src], block_private: false,
        url: "{b}/ok?size=3", response_headers: [content-length] }}
  f2: {{ type: http_fetch, inputs: [f1], block_private: false,
        url: "{b}/echo", output: body,
        headers: ["X-Len: {{attr.http_content-length}}", "X-Key: {{key}}"] }}
  out: {{ type: file, path: out.jsonl, inputs: [f2] }}
  err: {{ type: file, path: err.jsonl, inputs: [f1.errors, f2.errors] }}
""")
    out = sorted(jsonl(t.tmp / "out.jsonl"), key=lambda r: r["seq"])
    expect(len(out) == 2 and jsonl(t.tmp / "err.jsonl") == [], f"{out}")
    for i, r in enumerate(out):
        h = {k.lower(): v for k, v in body_json(r)["headers"].items()}
        expect(h.get("x-len") == "3" and h.get("x-key") == f"k{i}",
               f"headers {h}")


@case
def post_is_not_retried_unless_retry_unsafe(t):
    b = t.s.base
    out, errs, *_ = t.fetch(["x"], url=f"{b}/flaky/p?fails=5", method="POST",
                            body="{body}", backoff="10ms")
    e = one(errs, "errors")
    expect(attr(e, "http_attempts") == "1", f"POST retried: {e['attrs']}")
    expect(requests_to(t.s.stats(), "/flaky/p") == 1, "server count")
    out, errs, *_ = t.fetch(["x"], url=f"{b}/flaky/q?fails=2", method="POST",
                            body="{body}", backoff="10ms", retry_unsafe=True)
    expect(attr(one(out, "outputs"), "http_attempts") == "3", "retry_unsafe")
    expect(requests_to(t.s.stats(), "/flaky/q") == 3, "server count")


# -- limits -------------------------------------------------------------------

@case
def max_in_flight_bounds_what_the_server_sees(t):
    urls = [f"{t.s.base}/delay?ms=200&i={i}" for i in range(50)]
    out, errs, rep, took, _ = t.fetch(urls, max_in_flight=5)
    expect(len(out) == 50, f"{len(errs)} errors: {errs[:1]}")
    s = t.s.stats()
    expect(4 <= s["max_in_progress"] <= 5,
           f"server saw {s['max_in_progress']} at once with max_in_flight 5")
    expect(1.9 <= took <= 6 * SLOW, f"50 x 200 ms by 5 took {took:.2f} s")
    expect(s["connections"] <= 5, f"{s['connections']} connections for 5 at "
                                  f"once: not reused")


@case
def max_per_host_caps_connections_below_max_in_flight(t):
    urls = [f"{t.s.base}/delay?ms=100&i={i}" for i in range(12)]
    out, errs, rep, took, _ = t.fetch(urls, max_in_flight=10, max_per_host=2)
    expect(len(out) == 12, f"{len(errs)} errors: {errs[:1]}")
    s = t.s.stats()
    expect(s["max_in_progress"] == 2,
           f"server saw {s['max_in_progress']} at once with max_per_host 2")
    expect(s["connections"] <= 2, f"{s['connections']} connections: not "
                                  f"reused")
    expect(0.55 <= took <= 4 * SLOW, f"12 x 100 ms by 2 took {took:.2f} s")


@case
def connect_refused_is_retried_then_named(t):
    import socket
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out, errs, rep, took, _ = t.fetch([f"http://127.0.0.1:{port}/x"],
                                      backoff="10ms")
    e = one(errs, "errors")
    expect(attr(e, "http_error") == "connect", f"attrs {e['attrs']}")
    expect(attr(e, "http_attempts") == "3", f"attrs {e['attrs']}")
    expect("http_status" not in e["attrs"], "a status without a response")


@case
def circuit_breaker_probes_once_after_cooldown(t):
    """Records every 100 ms to a URL failing 3 times: 2 failures open the
    circuit, records fail fast for the 500 ms cool-down, one probe (the
    third failure) reopens it, the next probe succeeds and closes it."""
    url = f"{t.s.base}/flaky/cb?fails=3&status=500"
    rep, took, _ = t.run(f"""version: 1
name: probe
nodes:
  src: {{ type: generate, count: 25, template: "{url}", rate: 10/s }}
  fetch: {{ type: http_fetch, inputs: [src], block_private: false,
           max_attempts: 1, breaker_failures: 2, breaker_cooldown: 500ms }}
  out: {{ type: file, path: out.jsonl, inputs: [fetch] }}
  err: {{ type: file, path: err.jsonl, inputs: [fetch.errors] }}
""")
    out, errs = jsonl(t.tmp / "out.jsonl"), jsonl(t.tmp / "err.jsonl")
    accounted(rep, "fetch", 25, out, errs)
    arr = [a for a, p in t.s.stats()["arrivals"]]
    gaps = [b - a for a, b in zip(arr, arr[1:])]
    expect(len(arr) >= 4, f"{len(arr)} requests")
    # Once open (after the 2nd failure), the next request is the probe,
    # no sooner than the cool-down; the failed probe reopens it.
    expect(gaps[1] >= 0.45 and gaps[2] >= 0.45,
           f"gaps between requests {[round(g, 2) for g in gaps]}: a request "
           f"went through an open circuit")
    fast = [e for e in errs if "circuit open" in (attr(e, "error") or "")]
    expect(len(errs) == 3 + len(fast), f"{len(errs)} errors, {len(fast)} "
                                        f"fast")
    expect(len(fast) >= 4, f"only {len(fast)} failed fast")
    expect(len(out) == len(arr) - 3 and len(out) >= 5,
           f"{len(out)} out of {len(arr)} requests: not closed after the "
           f"probe succeeded")


@case
def rate_limit_paces_arrivals_retries_included(t):
    b = t.s.base
    urls = [f"{b}/ok?i={i}" for i in range(20)]
    urls += [f"{b}/flaky/r{i}?fails=1" for i in range(5)]
    out, errs, rep, took, _ = t.fetch(
        urls, rate_limit="gate", backoff="10ms", max_in_flight=8,
        breaker_failures=0,  # 5 first attempts failing in a row
        resources={"gate": {"type": "rate_limiter", "rate": "10/s",
                            "burst": 1}})
    expect(len(out) == 25, f"{len(errs)} errors: {errs[:1]}")
    times = [a for a, _ in t.s.stats()["arrivals"]]
    expect(len(times) == 30, f"{len(times)} arrivals: retries missing")
    check_paced(times, 10, 1)
    rate = (len(times) - 1) / (max(times) - min(times))
    expect(abs(rate - 10) <= 0.5, f"overall {rate:.2f}/s, want 10/s")


@case
def cache_single_flight_one_request_per_url(t):
    urls = [f"{t.s.base}/delay?ms=200&u={i % 4}" for i in range(40)]
    out, errs, *_ = t.fetch(urls, cache="pages", max_in_flight=40,
                            output="body",
                            resources={"pages": {"type": "cache",
                                                 "capacity": 100}})
    expect(len(out) == 40 and all(r["body"] == "ok\n" for r in out),
           f"{len(out)} outputs, {errs[:1]}")
    s = t.s.stats()
    expect(s["total"] == 4, f"the server saw {s['total']} requests for 4 URLs")
    made = [r for r in out if attr(r, "http_attempts") != "0"]
    expect(len(made) == 4, f"{len(made)} records say they made a request "
                           f"(hits say attempts 0)")


@case
def race_first_mirror_wins_the_other_is_cancelled(t):
    b = t.s.base
    out, errs, rep, took, _ = t.fetch(
        [str(i) for i in range(5)], max_in_flight=5, output="body",
        mirrors=[f"{b}/mirror/a?delay_ms=50&r={{body}}",
                 f"{b}/mirror/b?delay_ms=2000&r={{body}}"])
    expect(len(out) == 5, f"{errs[:1]}")
    for r in out:
        expect(json.loads(r["body"]) == {"mirror": "a"}, f"{r['body']}")
    expect(took < 1.5 * SLOW, f"took {took:.2f} s: the slow mirror was "
                              f"waited for")
    s = t.s.wait_stats(lambda s: s["cancelled_by_path"].get("/mirror/b") == 5)
    expect(requests_to(s, "/mirror/b") == 5, f"{s['requests']}")
    expect(s["cancelled_by_path"].get("/mirror/b") == 5,
           f"cancelled {s['cancelled_by_path']}: the losers not aborted")
    expect(not s["cancelled_by_path"].get("/mirror/a"), "a winner cancelled")


@case
def race_first_success_wins_not_first_answer(t):
    b = t.s.base
    out, errs, *_ = t.fetch(["1"], output="body", mirrors=[
        f"{b}/status/500?r={{body}}", f"{b}/mirror/b?delay_ms=100&r={{body}}"])
    expect(json.loads(one(out, "outputs")["body"]) == {"mirror": "b"},
           f"a failing mirror won: {out}")
    out, errs, *_ = t.fetch(["1"], max_attempts=1, breaker_failures=0,
                            mirrors=[f"{b}/status/500?r={{body}}",
                                     f"{b}/status/503?r={{body}}"])
    e = one(errs, "errors")
    why = attr(e, "error")
    expect("every mirror failed" in why and "500" in why and "503" in why,
           f"error {why}")


@case
def rate_by_key_paces_each_key(t):
    url = f"{t.s.base}/flaky/{{key}}?fails=0"
    rep, took, _ = t.run(f"""version: 1
name: keyed
resources:
  gate: {{ type: rate_limiter, rate: 5/s, burst: 1 }}
nodes:
  src: {{ type: generate, count: 20, key: "k{{i}}", cycle: 2, template: "x" }}
  fetch: {{ type: http_fetch, inputs: [src], block_private: false,
           url: "{url}", rate_limit: gate, rate_by: key }}
  out: {{ type: file, path: out.jsonl, inputs: [fetch] }}
  err: {{ type: file, path: err.jsonl, inputs: [fetch.errors] }}
""")
    accounted(rep, "fetch", 20, jsonl(t.tmp / "out.jsonl"),
              jsonl(t.tmp / "err.jsonl"))
    arr = t.s.stats()["arrivals"]
    for k in ("k0", "k1"):
        times = [a for a, p in arr if p == f"/flaky/{k}"]
        expect(len(times) == 10, f"{k}: {len(times)} requests")
        check_paced(times, 5, 1)
    # Two keys, two buckets: twice one key's rate overall.
    expect(took < 3.2 * SLOW, f"took {took:.2f} s: keys share a bucket")


@case
def circuit_breaker_fails_fast_after_n_failures(t):
    urls = [f"{t.s.base}/status/500?i={i}" for i in range(10)]
    out, errs, rep, took, _ = t.fetch(urls, breaker_failures=3,
                                      breaker_cooldown="60s", max_attempts=1,
                                      max_in_flight=1)
    expect(len(errs) == 10, f"{len(out)} outputs")
    expect(requests_to(t.s.stats(), "/status/500") == 3,
           f"{t.s.stats()['requests']}: the breaker did not open after 3")
    fast = [e for e in errs if "circuit open" in (attr(e, "error") or "")]
    expect(len(fast) == 7, f"{len(fast)} failed fast: "
                           f"{[attr(e, 'error') for e in errs]}")
    expect(took < 5 * SLOW, f"took {took:.2f} s")
    # The circuit is per host: localhost (another host name) still works.
    t.s.reset()
    urls = [f"{t.s.base}/status/500?i={i}" for i in range(3)]
    urls += [f"http://localhost:{t.s.port}/ok", f"{t.s.base}/ok"]
    out, errs, *_ = t.fetch(urls, breaker_failures=3, breaker_cooldown="60s",
                            max_attempts=1, max_in_flight=1)
    expect([attr(r, "http_url") for r in out] == [urls[3]],
           f"outputs {[attr(r, 'http_url') for r in out]}")
    expect("circuit open" in attr(errs[-1], "error"), f"{errs[-1]['attrs']}")
    expect(t.s.stats()["total"] == 4, "a request through an open circuit")


@case
def adaptive_concurrency_grows(t):
    urls = [f"{t.s.base}/delay?ms=20&i={i}" for i in range(200)]
    out, errs, rep, took, _ = t.fetch(urls, max_in_flight="adaptive")
    expect(len(out) == 200, f"{len(errs)} errors: {errs[:1]}")
    s = t.s.stats()
    expect(s["max_in_progress"] > 1, "adaptive never went above 1")
    expect(s["max_in_progress"] <= 64, "above adaptive_max")


# -- paginate -----------------------------------------------------------------

def paginate(t, params, want=EXIT_OK, resources=None):
    p = {"block_private": False, **params}
    body = "\n".join(f"    {k}: {yaml_value(v)}" for k, v in p.items())
    res = "".join(f"\n  {k}: {yaml_value(v)}"
                  for k, v in (resources or {}).items())
    rep, took, err = t.run(f"""\
version: 1
name: pages{"" if not res else chr(10) + "resources:" + res}
nodes:
  pg:
    type: paginate
{body}
  out: {{ type: file, path: out.jsonl, inputs: [pg] }}
  err: {{ type: file, path: err.jsonl, inputs: [pg.errors] }}
""", want=want)
    return jsonl(t.tmp / "out.jsonl"), jsonl(t.tmp / "err.jsonl"), rep


@case
def paginate_json_and_lines(t):
    b = t.s.base
    out, errs, rep = paginate(t, {"url": f"{b}/items?page={{page}}&per=3"
                                         f"&pages=4",
                                  "items": "json"})
    expect(errs == [], f"errors {errs}")
    expect(len(out) == 12, f"{len(out)} items")
    got = sorted((r["key"], json.loads(r["body"])["id"]) for r in out)
    expect(got == [(str(k // 3), k) for k in range(12)], f"{got}")
    expect(rep["nodes"]["pg"]["created"] == 12, "created")
    expect(requests_to(t.s.stats(), "/items") == 5, "4 pages + the empty one")
    t.s.reset()
    out, errs, rep = paginate(t, {"url": f"{b}/lines?page={{page}}&per=2"
                                         f"&pages=3"})
    expect([r["body"] for r in out] == [f"item {k}" for k in range(6)],
           f"{[r['body'] for r in out]}")
    expect(requests_to(t.s.stats(), "/lines") == 4, "3 pages + the empty one")
    t.s.reset()
    out, errs, rep = paginate(t, {"url": f"{b}/items?page={{page}}&per=1"
                                         f"&pages=8",
                                  "items": "json", "first_page": 2,
                                  "rate_limit": "gate"}, resources={
                                      "gate": {"type": "rate_limiter",
                                               "rate": "5/s", "burst": 1}})
    expect([r["key"] for r in out] == [str(p) for p in range(2, 8)],
           f"first_page 2: keys {[r['key'] for r in out]}")
    check_paced([a for a, _ in t.s.stats()["arrivals"]], 5, 1)


@case
def paginate_stops_on_status_and_max_pages(t):
    b = t.s.base
    out, errs, rep = paginate(t, {"url": f"{b}/status/404?p={{page}}",
                                  "stop_on": ["404"]})
    expect(out == [] and errs == [], f"{out} {errs}")
    expect(requests_to(t.s.stats(), "/status/404") == 1, "one page asked")
    t.s.reset()
    out, errs, rep = paginate(t, {"url": f"{b}/items?page={{page}}&per=2"
                                         f"&pages=100",
                                  "items": "json", "max_pages": 3})
    expect(len(out) == 6 and errs == [], f"{len(out)} items, {errs}")
    expect(requests_to(t.s.stats(), "/items") == 3, "max_pages 3")


@case
def paginate_failing_page_goes_to_errors(t):
    b = t.s.base
    out, errs, rep = paginate(t, {"url": f"{b}/status/500?p={{page}}",
                                  "max_attempts": 2, "backoff": "10ms"})
    e = one(errs, "errors")
    expect(out == [], f"{out}")
    expect(attr(e, "http_status") == "500" and attr(e, "http_attempts") == "2",
           f"{e['attrs']}")
    expect(e["key"] == "0", f"key {e['key']}")
    expect(requests_to(t.s.stats(), "/status/500") == 2, "attempts")
    expect(rep["nodes"]["pg"]["dead_lettered"] == 1, "report")


# -- regressions of the issue 9 review (review-findings/http-NN) ----------------

def refused_port():
    import socket
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@case
def open_circuit_with_thousands_waiting_does_not_recurse(t):
    """http-01: a circuit that opens while thousands of records wait failed
    each of them synchronously, one stack frame set per record: SIGSEGV,
    no report. Now every record is in errors and the run exits 0."""
    port, n = refused_port(), 5000
    out, errs, rep, took, _ = t.fetch(
        [f"http://127.0.0.1:{port}/x?i={i}" for i in range(n)],
        max_attempts=1, breaker_failures=1, output="status")
    expect(out == [] and len(errs) == n, f"{len(out)} out, {len(errs)} errors")
    fast = [e for e in errs if "circuit open" in (attr(e, "error") or "")]
    expect(len(fast) >= n - 100, f"only {len(fast)} failed fast")


@case
def breaker_ignores_failures_that_are_not_the_hosts(t):
    """http-02: a body over our max_body and a URL curl refuses (never
    sent) say nothing about the host: they must not open its circuit."""
    b = t.s.base
    urls = [f"{b}/big?size=100000&n={i}" for i in range(3)]
    urls += [f"{b}/ok?with space{i}" for i in range(3)]
    urls += [f"{b}/ok?i={i}" for i in range(10)]
    out, errs, *_ = t.fetch(urls, max_in_flight=1, max_body="10KiB",
                            breaker_failures=2, breaker_cooldown="60s",
                            output="status")
    expect(len(out) == 10, f"{len(out)} out: {[attr(e, 'error') for e in errs]}")
    kinds = sorted(attr(e, "http_error") for e in errs)
    expect(kinds == ["bad_request"] * 3 + ["too_large"] * 3, f"{kinds}")
    expect(requests_to(t.s.stats(), "/ok") == 10, f"{t.s.stats()['requests']}")


@case
def missing_template_attribute_sends_nothing(t):
    """http-04: {attr.X} of a record without X rendered "" and fetched the
    wrong URL; now the record goes to errors and nothing is sent."""
    b = t.s.base
    out, errs, *_ = t.fetch(["a", "b"], url=f"{b}/echo?id={{attr.user_id}}",
                            max_attempts=1)
    expect(out == [] and len(errs) == 2, f"{len(out)} out")
    for e in errs:
        expect("user_id" in (attr(e, "error") or ""), f"{e['attrs']}")
    out, errs, *_ = t.fetch(["a"], url=f"{b}/echo?k={{body}}", max_attempts=1,
                            headers=["X-Id: {attr.missing}"])
    e = one(errs, "errors")
    expect("missing" in (attr(e, "error") or ""), f"{e['attrs']}")
    expect(t.s.stats()["total"] == 0, f"sent: {t.s.stats()['requests']}")


@case
def paginate_max_pages_warns_and_a_failed_page_ends_the_walk_loudly(t):
    """http-07: stopping at max_pages with pages left is said on stderr; a
    page that failed says the walk ended there."""
    b = t.s.base
    rep, took, err = t.run(f"""\
version: 1
name: pages
nodes:
  pg: {{ type: paginate, block_private: false, items: json, max_pages: 3,
         url: "{b}/items?page={{page}}&per=2&pages=100" }}
  out: {{ type: file, path: out.jsonl, inputs: [pg] }}
""")
    expect(len(jsonl(t.tmp / "out.jsonl")) == 6, "3 pages of 2 items")
    expect("stopped at max_pages (3)" in err, f"no warning: {tail(err)}")
    out, errs, rep = paginate(t, {"url": f"{b}/status/500?p={{page}}",
                                  "max_attempts": 1})
    e = one(errs, "errors")
    expect("the walk ends here" in (attr(e, "error") or ""), f"{e['attrs']}")


@case
def circuit_open_and_retry_after_cap_name_the_cause(t):
    """http-09: a record failing fast on an open circuit names its own last
    failure; a Retry-After over the cap says why it was not waited for."""
    port = refused_port()
    urls = [f"http://127.0.0.1:{port}/x?i={i}" for i in range(3)]
    urls.append(f"{t.s.base}/limited/k?fails=5&after=99999")
    out, errs, *_ = t.fetch(urls, backoff="10ms", breaker_failures=2,
                            output="status")
    why = [attr(e, "error") or "" for e in errs]
    expect(any("circuit open" in w and "last attempt: connect" in w
               for w in why), f"errors {why}")
    limited = [w for w in why if "429" in w]
    expect(len(limited) == 1 and "Retry-After" in limited[0]
           and "retry_after_cap" in limited[0], f"errors {why}")


@case
def won_race_does_not_wait_for_the_losers_retry_after(t):
    """http-11: the losing mirror's Retry-After timer (25 s) kept the node,
    and the run, alive after the race was won."""
    b = t.s.base
    out, errs, rep, took, _ = t.fetch(
        ["x1"], output="status",
        mirrors=[f"{b}/limited/{{body}}?fails=1&after=25",
                 f"{b}/delay?ms=200&k={{body}}"])
    one(out, "outputs")
    expect(took < 5 * SLOW, f"took {took:.2f} s: waited for the loser")


@case
def redelivered_post_is_not_sent_again(t):
    """http-13: a restart redelivers what the incarnation held, POSTs
    already answered included: none is sent twice unless retry_unsafe."""
    b, n = t.s.base, 200
    t.write("in.txt", "".join(f"order-{i}\n" for i in range(n)))
    rep, took, _ = t.run(f"""\
version: 1
name: posts
runtime: {{ batch_size: 8, window: 64 }}
groups:
  fragile:
    nodes: [fetch, chaos]
    supervision: {{ strategy: one_for_all, intensity: 200, period: 10s,
                   backoff: {{ min: 1ms, max: 20ms, jitter: 0.2 }} }}
nodes:
  src: {{ type: file, path: in.txt }}
  fetch: {{ type: http_fetch, inputs: [src], block_private: false,
           method: POST, url: "{b}/flaky/{{body}}?fails=0", body: "{{body}}",
           output: status }}
  chaos: {{ type: chaos, seed: 3, kill: 0.2, inputs: [fetch] }}
  once: {{ type: dedupe, by: seq, inputs: [chaos] }}
  out: {{ type: file, path: out.jsonl, inputs: [once] }}
  err: {{ type: file, path: err.jsonl, inputs: [fetch.errors, chaos.errors] }}
""")
    expect(rep["nodes"]["fetch"]["restarts"] > 0, "chaos never killed")
    sent = {p: c for p, c in t.s.stats()["requests"].items()
            if p.startswith("/flaky/")}
    twice = {p: c for p, c in sent.items() if c > 1}
    expect(not twice, f"{len(twice)} orders POSTed more than once: "
                      f"{list(twice.items())[:3]}")
    out, errs = jsonl(t.tmp / "out.jsonl"), jsonl(t.tmp / "err.jsonl")
    seen = {r["seq"] for r in out} | {r["seq"] for r in errs}
    expect(len(seen) == n, f"{n - len(seen)} orders neither out nor errors")
    expect(all("not sent again" in (attr(e, "error") or "") for e in errs),
           f"{[attr(e, 'error') for e in errs[:2]]}")


@case
def paginate_headers_are_templates(t):
    """http-14: paginate's headers were sent raw ("{page}", "{{x}}")."""
    out, errs, rep = paginate(t, {"url": f"{t.s.base}/echo?page={{page}}",
                                  "items": "lines", "max_pages": 2,
                                  "headers": ["X-Page: p{page}",
                                              "X-Brace: {{x}}"]})
    got = sorted((body_json(r)["headers"].get("x-page"),
                  body_json(r)["headers"].get("x-brace")) for r in out)
    expect(got == [("p0", "{x}"), ("p1", "{x}")], f"headers {got}")


# -- shutdown -----------------------------------------------------------------

def start(t, yaml, name="g.yaml"):
    t.write(name, yaml)
    return subprocess.Popen([t.bin, "run", name, "--no-progress", "--report",
                             "r.json"], cwd=t.tmp, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def term_when(t, p, in_progress, limit=10):
    """SIGTERM once the server has `in_progress` requests open; returns
    (returncode, stderr, seconds from the signal to the exit)."""
    s = t.s.wait_stats(lambda s: s["in_progress"] >= in_progress
                       or p.poll() is not None, limit=5)
    if p.poll() is not None:
        raise Fail(f"exited early ({p.returncode}): "
                   f"{tail(p.communicate()[1])}")
    expect(s["in_progress"] >= in_progress,
           f"only {s['in_progress']} requests open")
    sent = time.monotonic()
    p.send_signal(signal.SIGTERM)
    try:
        _, err = p.communicate(timeout=limit * SLOW)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise Fail(f"still running {limit} s after SIGTERM")
    no_sanitizer_report(err)
    return p.returncode, err, time.monotonic() - sent


@case
def sigterm_drains_what_can_finish(t):
    urls = [f"{t.s.base}/delay?ms=300&i={i}" for i in range(20)]
    p = start(t, t.graph({"max_in_flight": 20}, urls,
                         runtime={"shutdown_timeout": "5s"}))
    rc, err, after = term_when(t, p, 20)
    expect(rc == EXIT_INTERRUPTED, f"exit {rc}: {tail(err)}")
    rep = load_report(t.tmp / "r.json")
    check_balanced(rep)
    out, errs = jsonl(t.tmp / "out.jsonl"), jsonl(t.tmp / "err.jsonl")
    accounted(rep, "fetch", 20, out, errs)
    expect(len(out) == 20, f"{len(out)} out, {len(errs)} errors: the drain "
                           f"cancelled transfers that could finish")
    expect(after < 2 * SLOW, f"exit {after:.2f} s after SIGTERM")


@case
def sigterm_lets_retries_in_backoff_finish(t):
    """Records between attempts (backoff 1s) when SIGTERM comes: the drain
    waits for their retries, which succeed."""
    urls = [f"{t.s.base}/flaky/t{i}?fails=2&status=503" for i in range(3)]
    p = start(t, t.graph({"backoff": "1s", "max_backoff": "1s",
                          "breaker_failures": 0}, urls,
                         runtime={"shutdown_timeout": "8s"}))
    t.s.wait_stats(lambda s: s["total"] >= 3 or p.poll() is not None)
    time.sleep(0.05)
    rc, err, after = term_when(t, p, 0)
    expect(rc == EXIT_INTERRUPTED, f"exit {rc}: {tail(err)}")
    rep = load_report(t.tmp / "r.json")
    check_balanced(rep)
    out, errs = jsonl(t.tmp / "out.jsonl"), jsonl(t.tmp / "err.jsonl")
    accounted(rep, "fetch", 3, out, errs)
    expect(len(out) == 3, f"{len(errs)} errors: {errs[:1]}")
    expect(all(attr(r, "http_attempts") == "3" for r in out), f"{out}")
    expect(t.s.stats()["total"] == 9, "attempts seen by the server")
    expect(after < 4 * SLOW, f"exit {after:.2f} s after SIGTERM")


@case
def sigterm_reports_stuck_transfers_in_flight(t):
    urls = [f"{t.s.base}/hang?i={i}" for i in range(5)]
    p = start(t, t.graph({"max_in_flight": 5}, urls,
                         runtime={"shutdown_timeout": "1s"}))
    rc, err, after = term_when(t, p, 5)
    expect(rc == EXIT_INTERRUPTED, f"exit {rc}: {tail(err)}")
    expect(0.9 <= after <= 4 * SLOW, f"exit {after:.2f} s after SIGTERM "
                                     f"with shutdown_timeout 1s")
    rep = load_report(t.tmp / "r.json")
    check_balanced(rep, drained=False)
    f = rep["nodes"]["fetch"]
    expect(f["in_flight"] == 5, f"fetch: {f['in_flight']} in flight, "
                                f"{f['out']} out, {f['lost']} lost")
    expect(rep["status"] == "timed_out" and "fetch" in rep["unfinished"],
           f"status {rep['status']}, unfinished {rep['unfinished']}")
    expect(rep["totals"]["in_flight"] == 5 and rep["totals"]["lost"] == 0,
           f"totals {rep['totals']}")
    expect("5 in flight" in err, f"the summary does not say: {tail(err)}")


@case
def checkpointed_rerun_fetches_the_unfinished_again(t):
    """300 URLs, one of which (line 280) hangs: SIGTERM, then a rerun (where
    it times out) continues from the checkpoint: what the first run
    acknowledged is not fetched again, the unfinished line is, and over
    both runs every line is in the output or the errors."""
    b, n, hang = t.s.base, 300, 280
    urls = [f"{b}/flaky/l{i}?fails=0" if i != hang else f"{b}/hang?i={i}"
            for i in range(n)]
    g = t.graph({"max_in_flight": 32}, urls,
                runtime={"shutdown_timeout": "1s"}, append=True,
                checkpoint="ck/urls.ck")
    p = start(t, g)
    # Every quick one done and the hang open.
    s = t.s.wait_stats(lambda s: s["total"] >= n and s["in_progress"] == 1,
                       limit=10)
    expect(s["total"] == n, f"first run: {s['total']} requests")
    rc, err, _ = term_when(t, p, 1)
    expect(rc == EXIT_INTERRUPTED, f"exit {rc}: {tail(err)}")
    # The rerun: the hang now times out (the checkpoint is the input's).
    g2 = t.graph({"max_in_flight": 32, "timeout": "300ms",
                  "max_attempts": 1}, append=True, checkpoint="ck/urls.ck")
    rep, *_ = t.run(g2, name="g2.yaml")
    out, errs = jsonl(t.tmp / "out.jsonl"), jsonl(t.tmp / "err.jsonl")
    s = t.s.stats()
    expect(requests_to(s, "/hang") == 2,
           f"the unfinished record fetched {requests_to(s, '/hang')} times")
    # The checkpoint advances by whole acknowledged source batches: the
    # rerun takes the lines from some point at or before the hang.
    again = rep["nodes"]["fetch"]["in"]
    expect(n - hang <= again < n, f"rerun took in {again} of {n}: the "
                                  f"checkpoint did not advance")
    for i in range(n):
        if i == hang:
            continue
        got = requests_to(s, f"/flaky/l{i}")
        expect(got == (2 if i >= n - again else 1),
               f"line {i} fetched {got} times; the rerun took the last "
               f"{again}")
    bodies = [json.loads(r["body"])["url"] for r in out]
    expect(set(bodies) == set(urls) - {urls[hang]},
           f"outputs over both runs miss {len(set(urls) - set(bodies))}")
    expect([e["body"] for e in errs] == [urls[hang]], f"errors {errs}")


# -- the shipped scraper ------------------------------------------------------

@case
def scraper_yaml_as_shipped(t):
    src = (t.src / "config/scraper.yaml").read_text()
    urls = (t.src / "config/scraper_urls.txt").read_text()
    expect(src.count("config/scraper_urls.txt") == 1, "urls path moved")
    t.write("urls.txt", urls.replace("127.0.0.1:8080",
                                     f"127.0.0.1:{t.s.port}"))
    rep, took, err = t.run(src.replace("config/scraper_urls.txt", "urls.txt"))
    got = jsonl(t.tmp / "out/scraped.jsonl")
    expect(len(got) == 10, f"{len(got)} results")
    failed = [r for r in got if "error" in r.get("attrs", {})]
    ok = [r for r in got if "error" not in r.get("attrs", {})]
    expect(len(ok) == 8 and len(failed) == 2,
           f"{len(ok)} ok, errors {[r['body'] for r in failed]}")
    expect(sorted(attr(r, "http_status") for r in failed) == ["404", "500"],
           f"{[r['attrs'] for r in failed]}")
    for r in ok:
        j = body_json(r)
        expect(j["status"] == 200 and "url" in j and "body" in j, f"{j}")
    s = t.s.stats()
    expect(s["max_in_progress"] <= 5, f"{s['max_in_progress']} at once")
    times = [a for a, _ in s["arrivals"]]
    # Slack 2: a followed redirect is one permit but two arrivals.
    check_paced(times, 2, 1, slack=2)
    rate = (len(times) - 1) / (max(times) - min(times))
    expect(rate <= 2.2, f"{rate:.2f} requests/s overall")


def main(argv):
    global SERVER, TLS, CERT
    if len(argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    with tempfile.TemporaryDirectory(prefix="troupe-http-servers-") as d:
        d = Path(d)
        CERT, key = make_cert(d)
        source = Path(argv[2]).resolve()
        SERVER = Server(source, d)
        TLS = Server(source, d, tls=(CERT, key))
        try:
            skip_known_bugs()
            rc = harness.main(argv[1], argv[2], Env)
        finally:
            SERVER.stop()
            TLS.stop()
    sys.exit(rc)


if __name__ == "__main__":
    main(sys.argv)
