#!/usr/bin/env python3
"""The seed's constructs through the real troupe binary on real YAML: a map
through a cache, a worker pool and a rate limiter (config/services.yaml),
per-key order across parallel workers (config/partitioned.yaml), services
that fail or go away mid-run, and `troupe types` for every construct.

Usage: python3 test_constructs.py TROUPE_BIN SOURCE_DIR

Same harness as test_cli.py: one fresh temporary directory per case, a
timeout on every run, one line per case, exit 1 if any case failed.
"""
import hashlib
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (  # noqa: E402
    EXIT_OK, EXIT_CONFIG, expect, case, tail, load_report, check_balanced,
    run_cases)
from harness import Env as BaseEnv  # noqa: E402

TIMEOUT = 120


class Env(BaseEnv):

    def run_ok(self, *args, timeout=TIMEOUT):
        p = self.troupe("run", *args, "--no-progress", "--report", "r.json",
                        timeout=timeout)
        expect(p.returncode == EXIT_OK,
               f"exit {p.returncode}: {tail(p.stderr)}")
        report = load_report(self.tmp / "r.json")
        check_balanced(report)
        return report


def jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


@case
def services_yaml_memoises_paces_and_keeps_order(t):
    """config/services.yaml: every record hashed right, in input order, at
    the limiter's pace (10,000 at 2000/s after a burst of 100: >= 4.9 s)."""
    start = time.monotonic()
    rep = t.run_ok(t.src / "config/services.yaml")
    took = time.monotonic() - start
    out = jsonl(t.tmp / "out/services.jsonl")
    expect(len(out) == 10000, f"{len(out)} records")
    for i, r in enumerate(out):
        expect(r["seq"] == i, f"record {i} has seq {r['seq']}: order lost")
        expect(r["body"] == sha(f"item_{i % 500}"), f"record {i}: wrong hash")
    expect(took >= 4.9, f"10,000 at 2000/s took {took:.2f} s: not paced")
    expect(rep["totals"]["dead_lettered"] == 0, "dead letters")


@case
def partitioned_yaml_keeps_order_per_key(t):
    t.run_ok(t.src / "config/partitioned.yaml")
    out = jsonl(t.tmp / "out/partitioned.jsonl")
    expect(len(out) == 100000, f"{len(out)} records")
    last = {}
    for r in out:
        k = r["key"]
        expect(k not in last or r["seq"] > last[k],
               f"key {k}: seq {r['seq']} after {last.get(k)}")
        last[k] = r["seq"]
        expect(r["body"] == sha(f"event_{r['seq'] % 97}"), "wrong hash")
    expect(len(last) == 97, f"{len(last)} keys")


@case
def failed_computations_reach_errors_uncached(t):
    """`square` fails on a body that is not an integer: those records go to
    errors (every one: a failure is not cached), the rest are memoised."""
    t.write("g.yaml", """\
version: 1
name: sq
resources:
  memo: { type: cache }
nodes:
  nums: { type: generate, count: 300, template: "{i}", cycle: 30 }
  junk: { type: generate, count: 30, template: "x{i}", cycle: 3 }
  sq:   { type: map, fn: square, cache: memo, inputs: [nums, junk] }
  out:  { type: file, path: out.jsonl, inputs: [sq] }
  dead: { type: file, path: dead.jsonl, inputs: [sq.errors] }
""")
    rep = t.run_ok("g.yaml")
    out, dead = jsonl(t.tmp / "out.jsonl"), jsonl(t.tmp / "dead.jsonl")
    expect(len(out) == 300, f"{len(out)} records")
    expect(sorted(int(r["body"]) for r in out)
           == sorted((i % 30) ** 2 for i in range(300)), "wrong squares")
    expect(len(dead) == 30, f"{len(dead)} failed, want all 30 junk records")
    expect(rep["nodes"]["sq"]["dead_lettered"] == 30, "dead letters counted")


@case
def limiter_max_wait_checked_at_lint(t):
    """64 records started at once at 5/s would wait 12.6 s for permits,
    beyond max_wait 2s: lint refuses (they would go to errors, not slow
    down); with max_in_flight 8 all 20 pass, paced."""
    graph = """\
version: 1
name: paced
resources:
  gate: {{ type: rate_limiter, rate: 5/s, burst: 1, max_wait: 2s }}
nodes:
  src: {{ type: generate, count: 20 }}
  m:   {{ type: map, fn: upper, rate_limit: gate{extra}, inputs: [src] }}
  out: {{ type: file, path: out.jsonl, inputs: [m] }}
  dead: {{ type: file, path: dead.jsonl, inputs: [m.errors] }}
"""
    t.write("g.yaml", graph.format(extra=""))
    p = t.troupe("lint", "g.yaml")
    err = p.stderr.decode()
    expect(p.returncode == EXIT_CONFIG, f"exit {p.returncode}: {tail(err)}")
    expect("g.yaml:7:" in err and "beyond its max_wait" in err, tail(err))
    t.write("g.yaml", graph.format(extra=", max_in_flight: 8"))
    start = time.monotonic()
    rep = t.run_ok("g.yaml")
    took = time.monotonic() - start
    out, dead = jsonl(t.tmp / "out.jsonl"), jsonl(t.tmp / "dead.jsonl")
    expect(len(out) == 20 and not dead, f"{len(out)} passed, {len(dead)} refused")
    expect(took >= 3.7, f"20 at 5/s took {took:.2f} s: not paced")
    expect(rep["nodes"]["m"]["dead_lettered"] == 0, "dead letters")


@case
def wrong_slot_protocol_is_located(t):
    t.write("g.yaml", """\
version: 1
name: bad
resources:
  memo: { type: cache }
nodes:
  src: { type: generate }
  m:   { type: map, fn: upper, pool: memo, inputs: [src] }
  out: { type: "null", inputs: [m] }
""")
    p = t.troupe("lint", "g.yaml")
    err = p.stderr.decode()
    expect(p.returncode == EXIT_CONFIG, f"exit {p.returncode}")
    expect("g.yaml:7:" in err and "'pool' needs a resource speaking "
           "'worker_pool'" in err, tail(err))


@case
def types_lists_every_construct(t):
    p = t.troupe("types", "--json")
    expect(p.returncode == EXIT_OK, tail(p.stderr))
    types = {x["name"]: x for x in json.loads(p.stdout)}
    for name in ("cache", "worker_pool", "rate_limiter", "once", "counter"):
        expect(name in types, f"{name} missing from troupe types")
        expect(types[name]["kind"] == "service", f"{name} is not a service")
        expect(types[name]["params"], f"{name} documents no parameters")
    p = t.troupe("types", "map")
    text = p.stdout.decode()
    for field in ("partition_by", "blocking", "max_in_flight", "cache_key",
                  "pool: NAME"):
        expect(field in text, f"`troupe types map` lacks {field}")


if __name__ == "__main__":
    run_cases(sys.argv, Env, __doc__)
