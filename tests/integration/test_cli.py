#!/usr/bin/env python3
"""End-to-end tests of the troupe CLI binary.

Usage: python3 test_cli.py TROUPE_BIN SOURCE_DIR

Each case is a plain function registered with @case; it runs in a fresh
temporary working directory, and every troupe invocation has a timeout.
Prints one line per case and a final line `N passed, M failed`; exits 1 if
any case failed.
"""
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (  # noqa: E402
    EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED, Fail, Skip, expect, case, tail,
    load_report, check_balanced, wait_with_rusage, stop_with_signal,
    run_cases)
from harness import Env as BaseEnv  # noqa: E402

TIMEOUT = 60  # default seconds per troupe invocation
NODE_KEYS = ["in", "out", "errors", "dead_lettered", "restarts", "batches",
             "latency_p50_us", "latency_p99_us"]
BUILTIN_TYPES = ["generate", "map", "filter", "batch", "reduce", "file",
                 "stdout", "null", "stdin", "counter", "chaos", "dedupe",
                 "http_fetch", "paginate"]


class Env(BaseEnv):
    def troupe(self, *args, timeout=TIMEOUT, env=None, stdin=None, cwd=None):
        """Runs troupe in the temp dir (or `cwd`); returns the
        CompletedProcess (text)."""
        full_env = dict(os.environ)
        full_env.pop("OUT_DIR", None)
        full_env.update(env or {})
        return subprocess.run([self.bin, *map(str, args)],
                              cwd=cwd or self.tmp,
                              env=full_env, input=stdin, text=True,
                              capture_output=True, timeout=timeout,
                              stdin=None if stdin is not None
                              else subprocess.DEVNULL)

    def config(self, name):
        return self.src / "config" / name


def read_lines(path):
    expect(path.exists(), f"{path.name} was not written")
    return path.read_text().splitlines()


def read_jsonl(path):
    return [json.loads(line) for line in read_lines(path) if line.strip()]


# --- the seed ETL pipeline -----------------------------------------------------

def check_etl(t, path, count):
    checker = t.src / "tests" / "integration" / "check_etl_output.py"
    p = subprocess.run([sys.executable, str(checker), str(path), str(count)],
                       capture_output=True, text=True, timeout=120)
    expect(p.returncode == 0, f"check_etl_output.py: {tail(p.stderr, 8)}")


@case
def run_etl(t):
    t.run_ok("run", t.config("etl.yaml"), "--no-progress")
    check_etl(t, t.tmp / "out" / "etl.jsonl", 1000)


@case
def etl_report(t):
    t.run_ok("run", t.config("etl.yaml"), "--no-progress", "--report",
             "r.json")
    r = load_report(t.tmp / "r.json")
    expect(r.get("status") == "completed", f"status {r.get('status')!r}")
    totals = r["totals"]
    expect(totals["source_records"] == 1000,
           f"source_records {totals['source_records']}")
    expect(totals["sink_records"] == 1000,
           f"sink_records {totals['sink_records']}")
    for name, n in r["nodes"].items():
        missing = [k for k in NODE_KEYS if k not in n]
        expect(not missing, f"node {name} lacks {missing}")
    check_balanced(r)
    expect("load" in r["nodes"], "no node 'load' in the report")
    batches = r["nodes"]["load"]["batches"]
    expect(batches == 20, f"load got {batches} batches, expected 20 "
                          f"(1000 records / size 50)")


@case
def set_override(t):
    t.run_ok("run", t.config("etl.yaml"), "--no-progress", "--set",
             "nodes.extract.count=120")
    lines = read_lines(t.tmp / "out" / "etl.jsonl")
    expect(len(lines) == 120, f"{len(lines)} lines, expected 120")
    check_etl(t, t.tmp / "out" / "etl.jsonl", 120)


@case
def env_interpolation(t):
    t.run_ok("run", t.config("etl.yaml"), "--no-progress",
             env={"OUT_DIR": "custom"})
    check_etl(t, t.tmp / "custom" / "etl.jsonl", 1000)
    expect(not (t.tmp / "out").exists(), "also wrote to out/")


# --- config/mapreduce.yaml -----------------------------------------------------

def even_square_sum(n):
    return sum(i * i for i in range(n) if i * i % 2 == 0)


@case
def mapreduce(t):
    cfg = t.config("mapreduce.yaml")
    if not cfg.exists():
        raise Skip("config/mapreduce.yaml does not exist")
    # generate 0..N-1 -> square -> keep even -> sum; N is the count of the
    # one generate node (generate's default, 1000, when it has none).
    m = re.search(r"type:\s*generate\b[^}\n]*\bcount:\s*(\d+)",
                  cfg.read_text())
    count = int(m[1]) if m else 1000
    t.run_ok("run", cfg, "--no-progress", "--report", "r.json")
    got = read_lines(t.tmp / "out" / "mapreduce.txt")
    want = even_square_sum(count)
    expect(got == [str(want)], f"output {got[:3]}, expected [{want}]")
    r = load_report(t.tmp / "r.json")
    expect(r["status"] == "completed", f"status {r['status']!r}")
    check_balanced(r)
    # A different size through --set, to be sure the sum is computed.
    t.run_ok("run", cfg, "--no-progress", "--set", "nodes.numbers.count=777")
    got = read_lines(t.tmp / "out" / "mapreduce.txt")
    want = even_square_sum(777)
    expect(got == [str(want)], f"count=777: output {got[:3]}, "
                               f"expected [{want}]")


# --- the other commands --------------------------------------------------------

@case
def lint_shipped_configs(t):
    configs = sorted((t.src / "config").glob("*.yaml"))
    expect(configs, "no config/*.yaml")
    for cfg in configs:
        # From the checkout's root, as the README runs them (scraper.yaml
        # reads config/scraper_urls.txt).
        p = t.troupe("lint", cfg, cwd=t.src)
        expect(p.returncode == EXIT_OK,
               f"lint {cfg.name} exited {p.returncode}: {tail(p.stderr)}")


@case
def types(t):
    listing = t.run_ok("types").stdout
    for name in BUILTIN_TYPES:
        expect(re.search(rf"^{name} \(", listing, re.MULTILINE),
               f"`types` does not list {name}")
    p = t.run_ok("types", "map")
    expect(re.search(r"^\s+fn:", p.stdout, re.MULTILINE),
           "`types map` does not show fn")
    p = t.run_ok("types", "--json")
    try:
        data = json.loads(p.stdout)
    except ValueError as e:
        raise Fail(f"`types --json` is not JSON: {e}")
    names = {x["name"] for x in data}
    expect(set(BUILTIN_TYPES) <= names,
           f"`types --json` lacks {set(BUILTIN_TYPES) - names}")


@case
def graph_dot(t):
    out = t.run_ok("graph", t.config("etl.yaml")).stdout
    expect(out.startswith("digraph"), f"starts with {out[:20]!r}")
    expect('"extract" -> "hash"' in out, 'no edge "extract" -> "hash"')
    expect(re.search(r'"hash" -> "failed" \[[^]]*style=dashed', out),
           "no dashed errors edge hash -> failed")


@case
def version_help_usage(t):
    p = t.run_ok("--version")
    expect("CAF 0.17.6" in p.stdout + p.stderr,
           f"--version says {tail(p.stdout + p.stderr)}")
    p = t.run_ok("--help")
    expect("usage" in p.stdout + p.stderr, "--help shows no usage")
    p = t.troupe("frobnicate")
    expect(p.returncode == EXIT_USAGE,
           f"unknown command exited {p.returncode}, expected {EXIT_USAGE}")


# --- small pipelines -----------------------------------------------------------

@case
def stdin_to_stdout(t):
    cfg = t.write("io.yaml", """\
version: 1
nodes:
  src: { type: stdin }
  up:  { type: map, fn: upper, inputs: [src] }
  out: { type: stdout, inputs: [up] }
""")
    p = t.run_ok("run", cfg, "--no-progress", stdin="a\nb\nc\n")
    expect(p.stdout == "A\nB\nC\n", f"stdout {p.stdout!r}")


@case
def file_filter_lines(t):
    words = ["banana", "apple", "ananas", "cherry", "mango", "kiwi", "pecan"]
    t.write("in/words.txt", "\n".join(words) + "\n")
    cfg = t.write("filter.yaml", """\
version: 1
nodes:
  words: { type: file, path: in/words.txt }
  keep:  { type: filter, contains: "an", inputs: [words] }
  out:   { type: file, path: out/kept.txt, format: lines, inputs: [keep] }
""")
    t.run_ok("run", cfg, "--no-progress")
    got = read_lines(t.tmp / "out" / "kept.txt")
    want = [w for w in words if "an" in w]
    expect(got == want, f"kept {got}, expected {want}")


@case
def errors_output(t):
    count = 200
    cfg = t.write("sq.yaml", f"""\
version: 1
nodes:
  gen:  {{ type: generate, count: {count}, template: "x{{i}}" }}
  sq:   {{ type: map, fn: square, inputs: [gen] }}
  good: {{ type: file, path: out/good.jsonl, inputs: [sq] }}
  bad:  {{ type: file, path: out/bad.jsonl, format: jsonl, inputs: [sq.errors] }}
""")
    t.run_ok("run", cfg, "--no-progress", "--report", "r.json")
    expect(read_lines(t.tmp / "out" / "good.jsonl") == [],
           "records that square cannot handle reached the data output")
    bad = read_jsonl(t.tmp / "out" / "bad.jsonl")
    expect(len(bad) == count, f"{len(bad)} error records, expected {count}")
    seqs = sorted(r["seq"] for r in bad)
    expect(seqs == list(range(count)), "error records are not seq 0..N-1 "
                                       "exactly once")
    for r in bad:
        expect(r["body"] == f"x{r['seq']}", f"body changed: {r}")
        attrs = r.get("attrs", {})
        for key in ("error", "stage", "attempt"):
            expect(attrs.get(key), f"error record without attrs.{key}: {r}")
        expect(attrs["stage"] == "sq", f"stage {attrs['stage']!r}: {r}")
    rep = load_report(t.tmp / "r.json")
    dead = rep["nodes"]["sq"]["dead_lettered"]
    expect(dead == count, f"sq dead_lettered {dead}, expected {count}")
    check_balanced(rep)


@case
def null_sink_unquoted(t):
    # `troupe types` lists a sink named null; `type: null` must name it,
    # even though YAML reads a plain null as "no value".
    cfg = t.write("null.yaml", """\
version: 1
nodes:
  src: { type: generate, count: 10 }
  out: { type: null, inputs: [src] }
""")
    t.run_ok("lint", cfg)


# --- signals and flow control --------------------------------------------------

@case
def sigterm_drains(t):
    cfg = t.write("long.yaml", """\
version: 1
nodes:
  gen: { type: generate, count: 100000000, rate: 50000/s }
  out: { type: "null", inputs: [gen] }
""")
    rc, err, took = stop_with_signal(t, ["run", cfg, "--no-progress",
                                         "--report", "r.json"], after=1)
    expect(rc == EXIT_INTERRUPTED,
           f"exit {rc}, expected {EXIT_INTERRUPTED}: {tail(err)}")
    r = load_report(t.tmp / "r.json")
    expect(r["status"] == "interrupted", f"status {r['status']!r}")
    check_balanced(r)
    n = r["totals"]["source_records"]
    expect(0 < n < 100_000_000, f"source_records {n}")
    expect(r["totals"]["sink_records"] == n,
           f"{n} records made, {r['totals']['sink_records']} reached the sink")
    expect(took < 10, f"took {took:.1f}s to stop")


@case
def slow_sink_bounded_memory(t):
    # Both delivery modes keep credit-based backpressure: a flood into a
    # slow sink, through a stage, stays in bounded memory.
    for delivery in ("at_least_once", "at_most_once"):
        cfg = t.write(f"slow-{delivery}.yaml", f"""\
version: 1
runtime: {{ delivery: {delivery} }}
nodes:
  gen: {{ type: generate, count: 300000, template: "record-{{i}}-with-some-padding" }}
  up:  {{ type: map, fn: upper, inputs: [gen] }}
  out: {{ type: "null", delay: 100us, inputs: [up] }}
""")
        proc = subprocess.Popen([t.bin, "run", str(cfg), "--no-progress",
                                 "--report", "r.json"], cwd=t.tmp,
                                stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        usage = wait_with_rusage(proc, timeout=120)
        rc, peak_kib = proc.returncode, usage.ru_maxrss
        expect(rc == EXIT_OK, f"{delivery}: exit {rc}")
        # AddressSanitizer's shadow memory and quarantine inflate RSS; the
        # bound is about troupe's buffers, so it applies to the plain build.
        limit_mib = 400 if os.environ.get("TROUPE_SANITIZED") else 100
        expect(peak_kib < limit_mib * 1024,
               f"{delivery}: peak RSS {peak_kib / 1024:.0f} MiB, "
               f"limit {limit_mib} MiB")
        r = load_report(t.tmp / "r.json")
        expect(r["totals"]["sink_records"] == 300000,
               f"{delivery}: sink_records {r['totals']['sink_records']}")
        check_balanced(r)


# --- delivery under failure (supervision issue) ------------------------------

@case
def chaos_million_exactly_once(t):
    # 1% of record attempts fail and about 8 batches kill the chaos actor:
    # every record still arrives, and dedupe makes the output exactly once.
    cfg = t.write("chaos.yaml", """\
version: 1
runtime: { max_attempts: 6 }
supervision: { intensity: 100, period: 10s, backoff: { min: 1ms, max: 50ms } }
nodes:
  src:   { type: generate, count: 1000000, template: "r{i}" }
  chaos: { type: chaos, seed: 7, p: 0.01, kill: 0.002, inputs: [src] }
  once:  { type: dedupe, by: seq, inputs: [chaos] }
  out:   { type: file, path: out.txt, format: lines, inputs: [once] }
""")
    t.run_ok("run", cfg, "--no-progress", "--report", "r.json", timeout=300)
    lines = read_lines(t.tmp / "out.txt")
    expect(len(lines) == 1_000_000, f"{len(lines)} lines, expected 1000000")
    expect(len(set(lines)) == 1_000_000, "duplicates reached the sink")
    expect(set(lines) == {f"r{i}" for i in range(1_000_000)},
           "some inputs are missing from the output")
    r = load_report(t.tmp / "r.json")
    check_balanced(r)
    chaos = r["nodes"]["chaos"]
    expect(chaos["restarts"] >= 1, "chaos never killed its actor")
    expect(chaos["dead_lettered"] == 0, f"{chaos['dead_lettered']} dead letters")
    expect(r["nodes"]["src"]["redelivered"] > 0, "nothing was redelivered")


@case
def checkpoint_survives_kill_9(t):
    inp = t.write("in.txt", "".join(f"line-{i}\n" for i in range(200_000)))
    cfg = t.write("ck.yaml", """\
version: 1
runtime: { window: 2048 }
nodes:
  lines: { type: file, path: in.txt, checkpoint: in.ckpt }
  slow:  { type: chaos, delay: 50ms, inputs: [lines] }
  up:    { type: map, fn: upper, inputs: [slow] }
  out:   { type: file, path: out.txt, format: lines, append: true, inputs: [up] }
""")
    p = subprocess.Popen([t.bin, "run", str(cfg), "--no-progress"], cwd=t.tmp,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    expect(p.poll() is None, "finished before the kill")
    p.kill()  # SIGKILL: no drain, no report
    p.wait(timeout=10)
    first = len(read_lines(t.tmp / "out.txt"))
    expect(0 < first < 200_000, f"{first} lines before the kill")
    t.run_ok("run", cfg, "--no-progress", timeout=120)
    lines = read_lines(t.tmp / "out.txt")
    want = {f"LINE-{i}" for i in range(200_000)}
    missing = want - set(lines)
    expect(not missing, f"{len(missing)} lines missing after the rerun")
    dups = len(lines) - len(set(lines))
    # Bounded by what was in flight: one credit window per edge plus the
    # checkpoint's save interval (16 batches of 256).
    expect(dups <= 4 * 2048 + 16 * 256, f"{dups} duplicates")


@case
def shutdown_timeout_names_the_blocker(t):
    cfg = t.write("stuck.yaml", """\
version: 1
runtime: { shutdown_timeout: 1s }
nodes:
  gen:  { type: generate, count: 100000000 }
  hold: { type: "null", delay: 1h, inputs: [gen] }
""")
    rc, err, took = stop_with_signal(t, ["run", cfg, "--no-progress",
                                         "--report", "r.json"], after=0.5)
    expect(rc == EXIT_INTERRUPTED, f"exit {rc}: {tail(err)}")
    expect(took < 10, f"took {took:.1f}s")
    r = load_report(t.tmp / "r.json")
    expect(r["status"] == "timed_out", f"status {r['status']!r}")
    expect("hold" in r["unfinished"], f"unfinished {r['unfinished']}")
    expect("hold" in err, f"stderr does not name the blocker: {tail(err)}")
    check_balanced(r, drained=False)
    expect(r["nodes"]["hold"]["in_flight"] > 0, "in-flight records not reported")


@case
def at_most_once_counts_losses(t):
    cfg = t.write("amo.yaml", """\
version: 1
runtime: { delivery: at_most_once }
supervision: { intensity: 100, period: 10s, backoff: { min: 1ms, max: 10ms } }
nodes:
  src:   { type: generate, count: 200000 }
  chaos: { type: chaos, seed: 3, kill: 0.01, inputs: [src] }
  out:   { type: file, path: out.txt, format: lines, inputs: [chaos] }
""")
    t.run_ok("run", cfg, "--no-progress", "--report", "r.json", timeout=120)
    r = load_report(t.tmp / "r.json")
    check_balanced(r)
    lost = r["totals"]["lost"]
    got = len(set(read_lines(t.tmp / "out.txt")))
    expect(r["nodes"]["chaos"]["restarts"] > 0, "no crash happened")
    expect(lost > 0, "a crash under at_most_once lost nothing?")
    expect(got + lost >= 200_000, f"{got} delivered + {lost} lost < 200000")


if __name__ == "__main__":
    run_cases(sys.argv, Env, __doc__)
