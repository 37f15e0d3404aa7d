#!/usr/bin/env python3
"""Logs and progress through the real troupe binary: structured lines
(--log-format json: every stderr line is one JSON object with ts, level,
node, msg), quiet by default (warnings and errors only), --log-level, bad
values refused with exit 64, and the TTY progress line (percent, ETA,
per-node rates) on a real pseudo-terminal, silent when stderr is not one.

Usage: python3 test_logs.py TROUPE_BIN SOURCE_DIR
"""
import json
import os
import pty
import select
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (  # noqa: E402
    EXIT_OK, EXIT_USAGE, expect, case, tail, load_report, check_balanced,
    run_cases)
from harness import Env  # noqa: E402


def lines(stderr):
    return [l for l in stderr.decode().splitlines() if l.strip()]


@case
def json_logs_parse_line_by_line(t):
    """config/resilient.yaml crashes its chaos stage on purpose: every
    stderr line parses, crash lines name the node, the summary is there."""
    p = t.troupe("run", t.src / "config/resilient.yaml", "--no-progress",
                 "--log-format", "json", "--log-level", "info",
                 "--report", "r.json")
    expect(p.returncode == EXIT_OK, f"exit {p.returncode}: {tail(p.stderr)}")
    report = load_report(t.tmp / "r.json")
    check_balanced(report)
    entries = []
    for line in lines(p.stderr):
        try:
            entries.append(json.loads(line))
        except ValueError:
            expect(False, f"not JSON: {line!r}")
    for e in entries:
        expect(set(e) <= {"ts", "level", "node", "msg"}, f"fields: {e}")
        expect(e["level"] in ("error", "warn", "info", "debug"), str(e))
        expect(e["ts"].endswith("Z") and "T" in e["ts"], str(e))
    crashes = [e for e in entries if "crashed" in e["msg"]]
    restarts = report["nodes"]["chaos"]["restarts"]
    expect(restarts > 0, "the chaos stage never restarted")
    expect(len(crashes) == restarts,
           f"{len(crashes)} crash lines for {restarts} restarts")
    expect(all(e.get("node") == "chaos" and e["level"] == "warn"
               for e in crashes), str(crashes[:2]))
    msgs = [e["msg"] for e in entries]
    expect(any("started" in m for m in msgs), "no start line at info")
    expect(any(m.startswith("resilient completed") for m in msgs),
           f"no summary: {msgs[-3:]}")


@case
def quiet_by_default_and_levels_filter(t):
    p = t.troupe("run", t.src / "config/resilient.yaml", "--no-progress")
    expect(p.returncode == EXIT_OK, tail(p.stderr))
    ls = lines(p.stderr)
    expect(not any(": info: " in l for l in ls), f"info shown: {ls[:3]}")
    expect(any(l.startswith("troupe: warn: chaos: crashed") for l in ls),
           f"no crash warning: {ls[:3]}")
    p = t.troupe("run", t.src / "config/resilient.yaml", "--no-progress",
                 "--log-level", "error")
    expect(p.returncode == EXIT_OK, tail(p.stderr))
    ls = lines(p.stderr)
    expect(not any("crashed" in l for l in ls), f"warnings shown: {ls[:3]}")
    expect(any("resilient completed" in l for l in ls), "no summary")


@case
def bad_log_values_are_usage_errors(t):
    for args in (["--log-level", "loud"], ["--log-format", "xml"],
                 ["--log-level"]):
        p = t.troupe("run", t.src / "config/etl.yaml", "--no-progress", *args)
        expect(p.returncode == EXIT_USAGE,
               f"{args}: exit {p.returncode}: {tail(p.stderr)}")
        expect(not (t.tmp / "out").exists(), f"{args}: the graph ran")
    # lint takes files only: an option is a usage error, not a missing file.
    p = t.troupe("lint", t.src / "config/etl.yaml", "--metrics", ":0")
    expect(p.returncode == EXIT_USAGE, f"lint --metrics: exit {p.returncode}")
    p = t.troupe("run", t.src / "config/etl.yaml", "--metrics")
    expect(p.returncode == EXIT_USAGE and b"needs a value" in p.stderr,
           f"run --metrics: exit {p.returncode}: {tail(p.stderr)}")


def run_on_pty(t, args, seconds):
    """Runs troupe with stderr on a pseudo-terminal; returns its bytes."""
    master, slave = pty.openpty()
    env = dict(os.environ, OUT_DIR=str(t.tmp / "out"))
    p = subprocess.Popen([t.bin, *map(str, args)], cwd=t.tmp, env=env,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=slave)
    os.close(slave)
    out = b""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # the child closed its end
                break
            if not chunk:
                break
            out += chunk
        elif p.poll() is not None:
            break
    p.wait(timeout=30)
    os.close(master)
    return p.returncode, out.decode(errors="replace")


@case
def progress_line_on_a_tty_shows_eta_and_node_rates(t):
    """400,000 records at 200,000/s: ~2 s of progress lines on a pty."""
    code, err = run_on_pty(t, ["run", t.src / "config/etl.yaml",
                               "--set", "nodes.extract.count=400000",
                               "--set", "nodes.extract.rate=200k/s"], 60)
    expect(code == EXIT_OK, f"exit {code}: {err[-400:]}")
    frames = [f for f in err.split("\r") if f.startswith("\033[K")]
    expect(len(frames) >= 3, f"{len(frames)} progress frames: {err[-300:]}")
    mid = [f for f in frames if "ETA" in f]
    expect(mid, f"no ETA: {frames[:2]}")
    f = mid[0]
    expect("etl: " in f and "% ETA " in f, f)
    for node in ("extract", "hash", "load"):
        expect(f" {node} " in f and "/s" in f, f"{node} rate missing: {f}")
    # Percent grows and the line is cleared at the end.
    pcts = [int(x.split("etl: ")[1].split("%")[0]) for x in frames
            if "etl: " in x and "%" in x]
    expect(pcts == sorted(pcts) and pcts[-1] > pcts[0], str(pcts))
    expect("etl completed" in err, err[-300:])


@case
def no_progress_line_without_a_tty(t):
    p = t.troupe("run", t.src / "config/etl.yaml",
                 "--set", "nodes.extract.count=300000",
                 "--set", "nodes.extract.rate=200k/s")
    expect(p.returncode == EXIT_OK, tail(p.stderr))
    expect(b"\r" not in p.stderr and b"ETA" not in p.stderr,
           tail(p.stderr))


if __name__ == "__main__":
    run_cases(sys.argv, Env, __doc__)
