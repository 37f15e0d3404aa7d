"""What the integration scripts (test_cli.py, test_observe.py, ...)
share: the case registry, expect(), the per-case Env base and the driver
that prints one line per case and `N passed, M failed`.

A script registers its cases with @case on its own registry (CASES is per
importing script: each runs as its own process), subclasses Env when it
runs the binary another way, and calls run_cases(argv, env_class, doc).
"""
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG, EXIT_INTERRUPTED = (
    0, 1, 64, 78, 130)
# Sanitized builds are several times slower: upper time bounds stretch.
SLOW = 4.0 if os.environ.get("TROUPE_SANITIZED") else 1.0


class Fail(Exception):
    pass


class Skip(Exception):
    pass


def expect(condition, message):
    if not condition:
        raise Fail(message)


CASES = []


def case(fn):
    CASES.append(fn)
    return fn


def tail(text, lines=5):
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    return " | ".join(text.strip().splitlines()[-lines:]) or "(empty)"


class Env:
    """What a case works with: the binary, the source tree, its temp dir.
    Scripts override troupe() when they run the binary another way."""

    TIMEOUT = 120

    def __init__(self, binary, source, tmp):
        self.bin, self.src, self.tmp = binary, source, tmp

    def troupe(self, *args, timeout=TIMEOUT):
        """`troupe ARGS` in the case's directory, OUT_DIR set there; output
        captured as bytes."""
        env = dict(os.environ, OUT_DIR=str(self.tmp / "out"))
        return subprocess.run([self.bin, *map(str, args)], cwd=self.tmp,
                              env=env, stdin=subprocess.DEVNULL,
                              capture_output=True, timeout=timeout)

    def run_ok(self, *args, **kw):
        """troupe() that must exit 0."""
        p = self.troupe(*args, **kw)
        expect(p.returncode == EXIT_OK,
               f"`troupe {' '.join(map(str, args))}` exited {p.returncode}: "
               f"{tail(p.stderr)}")
        return p

    def write(self, name, text):
        path = self.tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(text, bytes):
            path.write_bytes(text)
        else:
            path.write_text(text)
        return path


def load_report(path):
    expect(path.exists(), f"report {path.name} was not written")
    try:
        return json.loads(path.read_bytes())
    except ValueError as e:
        raise Fail(f"report is not JSON: {e}")


def check_balanced(report, drained=True):
    """Every node must account for each record it saw (and, when the run
    drained, hold none)."""
    for name, n in report["nodes"].items():
        lhs = n["in"] + n["created"]
        rhs = (n["out"] + n["filtered"] + n["dead_lettered"] + n["in_flight"]
               + n["retried"] + n["lost"])
        expect(lhs == rhs, f"node {name}: in + created = {lhs} but out + "
                           f"filtered + dead_lettered + in_flight + retried "
                           f"+ lost = {rhs}")
        expect(not drained or n["in_flight"] == 0,
               f"node {name}: {n['in_flight']} records still in flight")


def wait_with_rusage(proc, timeout):
    """Waits for proc; returns its rusage (ru_maxrss: its own peak RSS in
    KiB). Kills it and fails the case after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage
        if time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise Fail(f"still running after {timeout}s")
        time.sleep(0.02)


def stop_with_signal(t, args, after, sig=signal.SIGTERM, limit=10):
    """Starts `troupe ARGS`, sends `sig` after `after` seconds, returns
    (returncode, stderr, seconds from the signal to the exit)."""
    p = subprocess.Popen([t.bin, *map(str, args)], cwd=t.tmp,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    time.sleep(after)
    if p.poll() is not None:
        raise Fail(f"exited early ({p.returncode}): {tail(p.communicate()[1])}")
    sent = time.monotonic()
    p.send_signal(sig)
    try:
        _, err = p.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise Fail(f"still running {limit} s after the signal")
    return p.returncode, err, time.monotonic() - sent


def main(binary, source, env_class, timings=True):
    """Runs every case in a fresh temporary directory; one line per case."""
    binary = str(Path(binary).resolve())
    source = Path(source).resolve()
    passed = failed = 0
    for fn in CASES:
        start = time.monotonic()
        with tempfile.TemporaryDirectory(prefix=f"troupe-{fn.__name__}-") as d:
            try:
                fn(env_class(binary, source, Path(d)))
                status, detail = "ok  ", ""
            except Skip as e:
                status, detail = "skip", f": {e}"
            except Fail as e:
                status, detail = "FAIL", f": {e}"
            except subprocess.TimeoutExpired as e:
                status, detail = "FAIL", f": timed out after {e.timeout}s"
            except Exception as e:  # a broken case is a failed case
                status, detail = "FAIL", f": {type(e).__name__}: {e}"
        secs = f" ({time.monotonic() - start:.1f}s)" if timings else ""
        print(f"{status} {fn.__name__}{secs}{detail}", flush=True)
        if status == "FAIL":
            failed += 1
        elif status == "ok  ":
            passed += 1
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


def run_cases(argv, env_class, doc, timings=True):
    """The scripts' entry point: `script.py TROUPE_BIN SOURCE_DIR`."""
    if len(argv) != 3:
        sys.exit(doc.split("\n\n")[1])
    sys.exit(main(argv[1], argv[2], env_class, timings))
