#!/usr/bin/env python3
"""Configuration and CLI front end: the real binary on real YAML.

Usage: python3 test_config.py TROUPE_BIN SOURCE_DIR

Covers issue 6 findings 11 (RE2 filter), 12 (exit after the shutdown
timeout whatever a thread does), 16/19 (bounded numbers), 17 (output is
always valid JSON) and 20 (pipes as config files, BOM, nested ${...},
early signals, SIGPIPE). Each case is a function registered with @case; it
runs in a fresh temporary directory and every troupe invocation has a
timeout. Prints one line per case and `N passed, M failed`; exits 1 if any
case failed.
"""
import json
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (  # noqa: E402
    EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_INTERRUPTED, Fail, expect, case,
    tail, load_report, stop_with_signal, run_cases)
from harness import Env as BaseEnv  # noqa: E402

TIMEOUT = 30  # default seconds per troupe invocation
CRASH = re.compile(
    rb"AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer"
    rb"|runtime error:|terminate called|Segmentation fault|core dumped")


class Env(BaseEnv):
    def troupe(self, *args, timeout=TIMEOUT, env=None, stdin=None, **kw):
        """Runs troupe in the temp dir; returns the CompletedProcess (bytes).
        Arguments may be bytes (invalid UTF-8 on the command line)."""
        full_env = dict(os.environb)
        full_env.pop(b"OUT_DIR", None)
        full_env.update(env or {})
        p = subprocess.run(
            [self.bin, *[a if isinstance(a, bytes) else str(a) for a in args]],
            cwd=self.tmp, env=full_env, input=stdin, capture_output=True,
            timeout=timeout, stdin=None if stdin is not None
            else subprocess.DEVNULL, **kw)
        if m := CRASH.search(p.stderr):
            raise Fail(f"crash output {m[0]!r}: {tail(p.stderr)}")
        return p


GRAPH = """\
version: 1
name: piped
nodes:
  src: { type: generate, count: 3 }
  out: { type: file, path: out.txt, format: lines, inputs: [src] }
"""


def every_line_json(path):
    expect(path.exists(), f"{path.name} was not written")
    lines = path.read_bytes().splitlines()
    for i, line in enumerate(lines):
        try:
            json.loads(line)  # bytes: must be UTF-8 and JSON
        except ValueError as e:
            raise Fail(f"{path.name} line {i + 1} is not JSON ({e}): "
                       f"{line[:80]!r}")
    return [json.loads(line) for line in lines]


# --- 20: configuration from pipes, BOM, nested ${...} -------------------------

@case
def config_from_stdin(t):
    p = t.troupe("run", "/dev/stdin", "--no-progress", stdin=GRAPH.encode())
    expect(p.returncode == EXIT_OK, f"exit {p.returncode}: {tail(p.stderr)}")
    expect((t.tmp / "out.txt").read_text() == "0\n1\n2\n", "wrong output")


@case
def config_from_process_substitution(t):
    t.write("g.yaml", GRAPH)
    p = subprocess.run(["bash", "-c", f'exec "{t.bin}" run <(cat g.yaml) '
                        "--no-progress"], cwd=t.tmp, capture_output=True,
                       timeout=TIMEOUT, stdin=subprocess.DEVNULL)
    expect(p.returncode == EXIT_OK, f"exit {p.returncode}: {tail(p.stderr)}")
    expect((t.tmp / "out.txt").read_text() == "0\n1\n2\n", "wrong output")


@case
def endless_pipe_is_refused_at_1mib(t):
    # An endless stream must stop being read just past the limit.
    p = subprocess.run(["bash", "-c", f'yes "# padding" | "{t.bin}" lint '
                        "/dev/stdin"], cwd=t.tmp, capture_output=True,
                       timeout=TIMEOUT)
    err = p.stderr.decode()
    expect(p.returncode == EXIT_CONFIG, f"exit {p.returncode}: {tail(err)}")
    expect("/dev/stdin:1:1: error:" in err and "1 MiB" in err, tail(err))
    expect("18446744073709551615" not in err, "bogus size in the message")


@case
def directory_as_config(t):
    p = t.troupe("lint", t.tmp)
    expect(p.returncode == EXIT_CONFIG, f"exit {p.returncode}")
    expect(b"is a directory" in p.stderr, tail(p.stderr))


@case
def byte_order_mark(t):
    bom = b"\xef\xbb\xbf"
    ok = t.write("bom.yaml", bom + b"""version: 1
nodes:
  src: { type: generate, count: 3 }
  out: { type: null, inputs: [src] }
""")
    p = t.troupe("run", ok, "--no-progress")
    expect(p.returncode == EXIT_OK,
           f"`type: null` after a BOM: exit {p.returncode}: {tail(p.stderr)}")
    bad = t.write("bom_bad.yaml", bom + b"""version: 1
nodes:
  src: { type: generate, count: 3, bogus: 1 }
  out: { type: null, inputs: [src] }
""")
    p = t.troupe("lint", bad)
    expect(p.returncode == EXIT_CONFIG, f"exit {p.returncode}")
    expect(f"{bad}:3:36: error: unknown field 'bogus'".encode() in p.stderr,
           f"wrong location: {tail(p.stderr)}")


@case
def nested_default_interpolation(t):
    cfg = t.write("nest.yaml", """\
version: 1
name: "${TROUPE_T_A:-${TROUPE_T_B}}"
nodes:
  src: { type: generate, count: 3 }
  out: { type: file, path: "${TROUPE_T_A:-${TROUPE_T_C:-deep}.txt}",
         format: lines, inputs: [src] }
""")
    env = {b"TROUPE_T_B": b"from_b"}
    p = t.troupe("run", cfg, "--no-progress", "--report", "r.json", env=env)
    expect(p.returncode == EXIT_OK, f"exit {p.returncode}: {tail(p.stderr)}")
    r = load_report(t.tmp / "r.json")
    expect(r["graph"] == "from_b", f"graph name {r['graph']!r}")
    expect((t.tmp / "deep.txt").exists(), "nested default was not expanded: "
           f"{sorted(x.name for x in t.tmp.iterdir())}")
    p = t.troupe("lint", cfg)  # TROUPE_T_B unset: the inner one is reported
    expect(p.returncode == EXIT_CONFIG and b"'TROUPE_T_B' is not set"
           in p.stderr, f"exit {p.returncode}: {tail(p.stderr)}")


# --- 20: signals from the first millisecond, SIGPIPE ----------------------------

@case
def signal_before_the_run_starts(t):
    # The config is a FIFO: troupe blocks reading it, so SIGTERM surely
    # arrives before the run starts; then the config arrives.
    fifo = t.tmp / "cfg.yaml"
    os.mkfifo(fifo)
    proc = subprocess.Popen([t.bin, "run", str(fifo), "--no-progress",
                             "--report", "r.json"], cwd=t.tmp,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)
    time.sleep(0.3)
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.1)
    if proc.poll() is not None:
        raise Fail(f"died while reading its config: exit {proc.returncode}: "
                   f"{tail(proc.communicate()[1])}")
    fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)  # never blocks the test
    os.write(fd, GRAPH.encode())
    os.close(fd)
    _, err = proc.communicate(timeout=TIMEOUT)
    expect(proc.returncode == EXIT_INTERRUPTED,
           f"exit {proc.returncode}: {tail(err)}")
    r = load_report(t.tmp / "r.json")
    expect(r["status"] == "interrupted", f"status {r['status']!r}")
    expect(not (t.tmp / "out.txt").exists(), "the graph ran anyway")


@case
def sigpipe_does_not_kill(t):
    cfg = t.write("p.yaml", """\
version: 1
nodes:
  src: { type: generate, count: 2000000 }
  out: { type: stdout, inputs: [src] }
""")
    p = subprocess.run(["bash", "-c", f'"{t.bin}" run {cfg} --no-progress '
                        '2>err.txt | head -1 >/dev/null; '
                        'echo "${PIPESTATUS[0]}"'], cwd=t.tmp,
                       capture_output=True, timeout=TIMEOUT)
    rc = int(p.stdout.decode().strip())
    err = (t.tmp / "err.txt").read_text()
    expect(rc != 128 + signal.SIGPIPE, f"killed by SIGPIPE: {tail(err)}")
    expect(rc in (EXIT_OK, EXIT_FAILED), f"exit {rc}: {tail(err)}")
    expect("troupe: " in err, f"no summary: {tail(err)}")


# --- 12: out after the shutdown timeout whatever a thread is doing ---------------

@case
def stuck_fifo_sink_exits_after_shutdown_timeout(t):
    fifo = t.tmp / "out.fifo"
    os.mkfifo(fifo)  # nobody ever reads: the sink's open() blocks forever
    cfg = t.write("stuck.yaml", f"""\
version: 1
runtime: {{ shutdown_timeout: 1s }}
nodes:
  src: {{ type: generate, count: 10 }}
  out: {{ type: file, path: {fifo}, inputs: [src] }}
""")
    rc, err, took = stop_with_signal(t, ["run", cfg, "--no-progress",
                                         "--report", "r.json"], after=0.5,
                                     limit=12)
    expect(rc == EXIT_INTERRUPTED, f"exit {rc}: {tail(err)}")
    r = load_report(t.tmp / "r.json")
    expect(r["status"] == "timed_out", f"status {r['status']!r}")
    # The ten records the stuck sink never received died in its mailbox:
    # counted there as lost, not in no counter at all.
    out = r["nodes"]["out"]
    expect(out["in"] == 10 and out["lost"] == 10,
           f"sink in {out['in']}, lost {out['lost']}")
    expect(took < 10, f"took {took:.1f}s")


# --- 11: RE2 ------------------------------------------------------------------

def filter_graph(t, regex, line):
    t.write("in.txt", line + "\nc\n")
    return t.write("f.yaml", f"""\
version: 1
nodes:
  src:  {{ type: file, path: in.txt }}
  keep: {{ type: filter, regex: '{regex}', inputs: [src] }}
  out:  {{ type: file, path: out.txt, format: lines, inputs: [keep] }}
""")


@case
def regex_long_line_no_stack_overflow(t):
    cfg = filter_graph(t, "(a|b)*c", "ab" * 10_000)
    p = t.troupe("run", cfg, "--no-progress")
    expect(p.returncode == EXIT_OK, f"exit {p.returncode}: {tail(p.stderr)}")
    expect((t.tmp / "out.txt").read_text() == "c\n", "wrong matches")


@case
def regex_catastrophic_pattern_is_linear(t):
    cfg = filter_graph(t, "^(a+)+$", "a" * 32 + "!")
    p = t.troupe("run", cfg, "--no-progress", timeout=20)
    expect(p.returncode == EXIT_OK, f"exit {p.returncode}: {tail(p.stderr)}")
    expect((t.tmp / "out.txt").read_text() == "", "wrong matches")


@case
def regex_backreference_rejected_at_lint(t):
    cfg = filter_graph(t, r"(a)\1", "x")
    p = t.troupe("lint", cfg)
    expect(p.returncode == EXIT_CONFIG, f"exit {p.returncode}")
    expect(f"{cfg}:4:32: error: invalid regex".encode() in p.stderr,
           tail(p.stderr))


@case
def types_filter_states_regex_syntax(t):
    p = t.troupe("types", "filter")
    out = p.stdout.decode()
    expect("RE2" in out and "backreferences" in out, tail(out, 8))


# --- 17: output is always valid JSON --------------------------------------------

BAD_UTF8 = [b"ok \xc3\xa9", b"\xff\xfe raw", b"cut \xe2\x82", b"\xed\xa0\x80 x",
            b"\xc0\xaf overlong"]


@case
def invalid_utf8_jsonl_file_and_stdout(t):
    t.write("in.txt", b"\n".join(BAD_UTF8) + b"\n")
    cfg = t.write("u.yaml", """\
version: 1
nodes:
  src:  { type: file, path: in.txt }
  file: { type: file, path: out.jsonl, format: jsonl, inputs: [src] }
  std:  { type: stdout, format: jsonl, inputs: [src] }
""")
    p = t.troupe("run", cfg, "--no-progress")
    expect(p.returncode == EXIT_OK, f"exit {p.returncode}: {tail(p.stderr)}")
    recs = every_line_json(t.tmp / "out.jsonl")
    expect(len(recs) == len(BAD_UTF8), f"{len(recs)} records")
    expect(recs[0]["body"] == "ok \u00e9", f"valid UTF-8 changed: {recs[0]}")
    expect(recs[1]["body"] == "\ufffd\ufffd raw", f"got {recs[1]['body']!r}")
    t.write("stdout.jsonl", p.stdout)
    expect(len(every_line_json(t.tmp / "stdout.jsonl")) == len(BAD_UTF8),
           "stdout record count")


@case
def invalid_utf8_graph_name_in_report(t):
    cfg = t.write("n.yaml", 'version: 1\nname: "${TROUPE_T_NAME}"\n'
                  + GRAPH.split("\n", 2)[2])
    p = t.troupe("run", cfg, "--no-progress", "--report", "r1.json",
                 env={b"TROUPE_T_NAME": b"bad\xffname"})
    expect(p.returncode == EXIT_OK, f"exit {p.returncode}: {tail(p.stderr)}")
    expect(load_report(t.tmp / "r1.json")["graph"] == "bad\ufffdname",
           "name not replaced")
    p = t.troupe("run", cfg, "--no-progress", "--report", "r2.json",
                 "--set", b"name=\xc3(x", env={b"TROUPE_T_NAME": b"n"})
    expect(p.returncode == EXIT_OK, f"exit {p.returncode}: {tail(p.stderr)}")
    load_report(t.tmp / "r2.json")


# --- 16/19: numbers (the located errors are in tests/bad_configs) -----------------

@case
def huge_numbers_rejected_not_truncated(t):
    cases = {
        "runtime: { batch_size: 4611686018427387904 }": b"'batch_size'",
        "runtime: { max_attempts: 4294967296 }": b"'max_attempts'",
        "supervision: { intensity: 4294967296 }": b"'intensity'",
        "supervision: { backoff: { jitter: nan } }": b"'jitter'",
    }
    for line, what in cases.items():
        cfg = t.write("n.yaml", GRAPH + line + "\n")
        p = t.troupe("lint", cfg)
        expect(p.returncode == EXIT_CONFIG and what in p.stderr,
               f"{line}: exit {p.returncode}: {tail(p.stderr)}")
    for value in ["nan", ".nan", "inf", "-.inf", "0x1p-2", " 0.5"]:
        cfg = t.write("c.yaml", GRAPH.replace(
            "inputs: [src] }", "inputs: [mid] }") + f"""\
  mid: {{ type: chaos, kill: "{value}", inputs: [src] }}
""")
        p = t.troupe("lint", cfg)
        expect(p.returncode == EXIT_CONFIG and b"'kill'" in p.stderr,
               f"kill: {value!r}: exit {p.returncode}: {tail(p.stderr)}")


if __name__ == "__main__":
    run_cases(sys.argv, Env, __doc__)
