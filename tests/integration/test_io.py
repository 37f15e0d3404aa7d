#!/usr/bin/env python3
"""I/O faults through the real troupe binary: sinks whose writes fail, a full
disk, endless lines, inputs that shrink or are directories, and sources that
must resume after a restart without losing what they had read.

Usage: python3 test_io.py TROUPE_BIN SOURCE_DIR

Same harness as test_cli.py: one fresh temporary directory per case, a
timeout on every run, one line per case, exit 1 if any case failed.
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
    EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED, Skip, expect, case, tail,
    load_report, check_balanced, wait_with_rusage, run_cases)
from harness import Env as BaseEnv  # noqa: E402

TIMEOUT = 60


class Env(BaseEnv):
    def troupe(self, *args, timeout=TIMEOUT, stdin=None, stdout=None,
               input=None):
        """Runs troupe in the temp dir (SIGPIPE ignored, as the CLI does)."""
        return subprocess.run(
            [self.bin, *map(str, args)], cwd=self.tmp, input=input,
            stdin=stdin if stdin is not None
            else (None if input is not None else subprocess.DEVNULL),
            stdout=stdout if stdout is not None else subprocess.PIPE,
            stderr=subprocess.PIPE, timeout=timeout, restore_signals=False)

    def report(self, name="r.json"):
        return load_report(self.tmp / name)


def err_text(p):
    return p.stderr.decode(errors="replace")


def expect_failed(p, reason, report=None):
    """A failed run: exit 1, the reason on stderr, at once (no restarts)."""
    err = err_text(p)
    expect(p.returncode == EXIT_FAILED,
           f"exit {p.returncode}, want 1: {tail(err)}")
    expect(reason in err, f"stderr lacks {reason!r}: {tail(err)}")
    expect("restarting" not in err, f"restarted on an unrecoverable error: "
                                     f"{tail(err)}")
    if report is not None:
        expect(report["status"] == "failed", f"status {report['status']}")


GEN_TO_STDOUT = """\
version: 1
nodes:
  src: {{ type: generate, count: 100000, template: "line-{{i}}" }}
  out: {{ type: stdout, format: {fmt}, inputs: [src] }}
"""


# --- finding 4: a sink whose writes fail -----------------------------------------

@case
def stdout_to_dev_full_fails(t):
    for fmt in ("lines", "jsonl"):
        cfg = t.write(f"full-{fmt}.yaml", GEN_TO_STDOUT.format(fmt=fmt))
        with open("/dev/full", "wb") as full:
            p = t.troupe("run", cfg, "--no-progress", "--report", "r.json",
                         stdout=full)
        r = t.report()
        expect_failed(p, "No space left on device", r)
        expect(r["nodes"]["out"]["out"] == 0,
               f"{fmt}: the sink counts {r['nodes']['out']['out']} records "
               f"written to /dev/full")
        check_balanced(r, drained=False)


@case
def cli_output_to_dev_full_fails(t):
    for args in (["types"], ["--version"], ["graph", "full.yaml"]):
        t.write("full.yaml", GEN_TO_STDOUT.format(fmt="lines"))
        with open("/dev/full", "wb") as full:
            p = t.troupe(*args, stdout=full)
        expect(p.returncode == 1, f"{args}: exit {p.returncode}, want 1")
        err = p.stderr.decode(errors="replace")
        expect("cannot write to stdout" in err, f"{args}: {err}")


@case
def stdout_closed_fails(t):
    cfg = t.write("closed.yaml", GEN_TO_STDOUT.format(fmt="lines"))
    p = subprocess.run(["sh", "-c", 'exec "$0" run "$1" --no-progress >&-',
                        t.bin, str(cfg)], cwd=t.tmp, stdin=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=TIMEOUT)
    expect_failed(p, "Bad file descriptor")


@case
def stdout_reader_gone_fails(t):
    """`| head -1` with SIGPIPE ignored: EPIPE fails the run."""
    cfg = t.write("pipe.yaml", GEN_TO_STDOUT.format(fmt="jsonl"))
    p = subprocess.Popen([t.bin, "run", str(cfg), "--no-progress"], cwd=t.tmp,
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, restore_signals=False)
    first = p.stdout.readline()
    p.stdout.close()  # the reader goes away, as head does
    try:
        _, err = p.communicate(timeout=TIMEOUT)
    finally:
        p.kill()
    expect(json.loads(first)["body"] == "line-0", f"first line {first!r}")
    p.stderr = err
    expect_failed(p, "Broken pipe")


@case
def file_sink_to_dev_full_fails(t):
    for fmt in ("lines", "jsonl"):
        cfg = t.write(f"f-{fmt}.yaml", f"""\
version: 1
nodes:
  src: {{ type: generate, count: 100000 }}
  out: {{ type: file, path: /dev/full, format: {fmt}, inputs: [src] }}
""")
        p = t.troupe("run", cfg, "--no-progress", "--report", "r.json")
        r = t.report()
        expect_failed(p, "No space left on device", r)
        n = r["nodes"]["out"]
        expect(n["out"] == 0, f"{fmt}: out {n['out']} for /dev/full")
        expect(n["dead_lettered"] == 0, f"{fmt}: {n['dead_lettered']} dead "
                                        f"letters for a full disk")


# --- finding 7: full disk -------------------------------------------------------------

class Tmpfs:
    """A small tmpfs (needs root); skips the case loudly when unavailable."""

    def __init__(self, path, size):
        self.path = path
        path.mkdir()
        p = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}",
                            "tmpfs", str(path)], capture_output=True, text=True)
        if p.returncode != 0:
            print(f"SKIPPING full-disk case: cannot mount a tmpfs here "
                  f"({tail(p.stderr)}); /dev/full cases still run",
                  file=sys.stderr, flush=True)
            raise Skip("cannot mount a tmpfs (needs root): "
                       + tail(p.stderr))

    def resize(self, size):
        subprocess.run(["mount", "-o", f"remount,size={size}", str(self.path)],
                       check=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


LINE = re.compile(r"^\d+-line-padding-padding$")


@case
def full_disk_fails_then_rerun_has_no_torn_line(t):
    n = 30_000
    t.write("in.txt", "".join(f"{i}-line-padding-padding\n" for i in range(n)))
    cfg = t.write("disk.yaml", """\
version: 1
supervision: { intensity: 1000, period: 10s }
nodes:
  src: { type: file, path: in.txt, checkpoint: in.ckpt }
  out: { type: file, path: disk/out.txt, format: lines, append: true,
         inputs: [src] }
""")
    with Tmpfs(t.tmp / "disk", "64k") as disk:
        p = t.troupe("run", cfg, "--no-progress", "--report", "r.json",
                     timeout=20)
        r = t.report()
        expect_failed(p, "No space left on device", r)
        out = (t.tmp / "disk/out.txt").read_bytes()
        expect(out.endswith(b"\n"), "the full disk left a torn line")
        lines = out.decode().splitlines()
        sink = r["nodes"]["out"]
        expect(sink["out"] == len(lines),
               f"out says {sink['out']}, the file has {len(lines)} lines")
        expect(sink["dead_lettered"] == 0 and sink["restarts"] == 0,
               f"dead_lettered {sink['dead_lettered']}, restarts "
               f"{sink['restarts']}")
        # Room again: the rerun continues from the checkpoint.
        disk.resize("16m")
        p = t.troupe("run", cfg, "--no-progress", timeout=60)
        expect(p.returncode == EXIT_OK, f"rerun exit {p.returncode}: "
                                        f"{tail(err_text(p))}")
        lines = (t.tmp / "disk/out.txt").read_text().splitlines()
        torn = [l for l in lines if not LINE.match(l)]
        expect(not torn, f"torn lines after the rerun: {torn[:3]}")
        missing = {f"{i}-line-padding-padding" for i in range(n)} - set(lines)
        expect(not missing, f"{len(missing)} lines missing after the rerun")


@case
def append_cuts_a_partial_last_line(t):
    t.write("out.txt", "kept-1\nkept-2\ntorn-rec")
    cfg = t.write("app.yaml", """\
version: 1
nodes:
  src: { type: generate, count: 3, template: "new-{i}" }
  out: { type: file, path: out.txt, format: lines, append: true, inputs: [src] }
""")
    p = t.troupe("run", cfg, "--no-progress")
    expect(p.returncode == EXIT_OK, f"exit {p.returncode}: {tail(err_text(p))}")
    got = (t.tmp / "out.txt").read_text().splitlines()
    expect(got == ["kept-1", "kept-2", "new-0", "new-1", "new-2"],
           f"file is {got}")
    expect("partial line" in err_text(p), "the cut was not reported")


# --- finding 9: lines without end ----------------------------------------------------

@case
def dev_zero_input_is_bounded_and_reported(t):
    cfg = t.write("zero.yaml", """\
version: 1
nodes:
  src: { type: file, path: /dev/zero, max_line: 64KiB }
  out: { type: "null", inputs: [src] }
""")
    p = subprocess.Popen([t.bin, "run", str(cfg), "--no-progress", "--report",
                          "r.json"], cwd=t.tmp, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(1.5)
    os.kill(p.pid, signal.SIGTERM)  # not send_signal: it may reap the child
    usage = wait_with_rusage(p, 20)
    err = p.stderr.read().decode(errors="replace")
    expect(p.returncode == EXIT_INTERRUPTED,
           f"exit {p.returncode}: {tail(err)}")
    limit_mib = 600 if os.environ.get("TROUPE_SANITIZED") else 200
    expect(usage.ru_maxrss < limit_mib * 1024,
           f"peak RSS {usage.ru_maxrss // 1024} MiB reading /dev/zero")
    expect("longer than max_line" in err, f"no error for the line: {tail(err)}")
    r = t.report()
    expect(r["nodes"]["src"]["dead_lettered"] == 1,
           f"dead_lettered {r['nodes']['src']['dead_lettered']}")


@case
def long_line_goes_to_errors(t):
    cfg = t.write("long.yaml", """\
version: 1
nodes:
  src: { type: stdin, max_line: 1MiB }
  out: { type: file, path: out.txt, format: lines, inputs: [src] }
  bad: { type: file, path: bad.jsonl, inputs: [src.errors] }
""")
    data = b"before\n" + b"x" * (3 << 20) + b"\nafter\nlast-without-newline"
    p = t.troupe("run", cfg, "--no-progress", "--report", "r.json",
                 input=data)
    expect(p.returncode == EXIT_OK, f"exit {p.returncode}: {tail(err_text(p))}")
    got = (t.tmp / "out.txt").read_text().splitlines()
    expect(got == ["before", "after", "last-without-newline"], f"out {got}")
    bad = [json.loads(l) for l in (t.tmp / "bad.jsonl").read_text().splitlines()]
    expect(len(bad) == 1, f"{len(bad)} error records")
    expect(bad[0]["seq"] == 1 and len(bad[0]["body"]) == 1024
           and "max_line" in bad[0]["attrs"]["error"], f"error record {bad[0]}")
    check_balanced(t.report())
    # The file source too, with a line just at the limit kept whole.
    t.write("in.txt", "a" * 100 + "\n" + "b" * 101 + "\nc\n")
    cfg = t.write("long2.yaml", """\
version: 1
nodes:
  src: { type: file, path: in.txt, max_line: 100 }
  out: { type: file, path: out2.txt, format: lines, inputs: [src] }
""")
    p = t.troupe("run", cfg, "--no-progress", "--report", "r.json")
    expect(p.returncode == EXIT_OK, f"exit {p.returncode}: {tail(err_text(p))}")
    got = (t.tmp / "out2.txt").read_text().splitlines()
    expect(got == ["a" * 100, "c"], f"out2 {[l[:5] for l in got]}")
    expect(t.report()["nodes"]["src"]["dead_lettered"] == 1, "no dead letter")


# --- finding 10: inputs that shrink, directories, stale checkpoints --------------------

@case
def truncated_input_fails(t):
    inp = t.write("big.txt", "".join(f"{i:099d}\n" for i in range(100_000)))
    cfg = t.write("trunc.yaml", """\
version: 1
runtime: { window: 512 }
nodes:
  src: { type: file, path: big.txt }
  out: { type: "null", delay: 10ms, inputs: [src] }
""")
    p = subprocess.Popen([t.bin, "run", str(cfg), "--no-progress"], cwd=t.tmp,
                         stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    time.sleep(0.3)
    expect(p.poll() is None, "finished before the truncation")
    os.truncate(inp, 0)
    _, err = p.communicate(timeout=TIMEOUT)
    p.stderr = err
    expect_failed(p, "shrank to 0 bytes")


@case
def checkpoint_past_end_fails(t):
    t.write("in.txt", "a\nb\nc\n")
    t.write("in.ckpt", "1000 500\n")
    cfg = t.write("ck.yaml", """\
version: 1
nodes:
  src: { type: file, path: in.txt, checkpoint: in.ckpt }
  out: { type: file, path: out.txt, append: true, inputs: [src] }
""")
    p = t.troupe("run", cfg, "--no-progress")
    expect_failed(p, "delete the checkpoint")


# --- checkpoints: replaced inputs, edited files, missing folders, two runs -----------

CKPT = """\
version: 1
nodes:
  src: {{ type: file, path: in.txt, checkpoint: {ckpt} }}
  out: {{ type: file, path: out.txt, format: lines, append: true,
         inputs: [src] }}
"""


def ckpt_run(t, ckpt="in.ckpt"):
    cfg = t.write("ck.yaml", CKPT.format(ckpt=ckpt))
    return t.troupe("run", cfg, "--no-progress")


def expect_ok(p):
    expect(p.returncode == EXIT_OK, f"exit {p.returncode}: {tail(err_text(p))}")


def out_lines(t):
    return (t.tmp / "out.txt").read_text().splitlines()


def replaced_input_fails(t, new_text):
    t.write("in.txt", "alpha\nbravo\n")
    expect_ok(ckpt_run(t))
    expect(out_lines(t) == ["alpha", "bravo"], f"first run: {out_lines(t)}")
    t.write("in.txt", new_text)
    p = ckpt_run(t)
    expect_failed(p, "delete the checkpoint")
    expect("checkpoint in.ckpt" in err_text(p), tail(err_text(p)))
    expect(out_lines(t) == ["alpha", "bravo"],
           f"resumed in another input: {out_lines(t)}")


@case
def checkpoint_of_replaced_input_fails(t):
    """The old offset lands mid-line in the new file: no torn '-line'."""
    replaced_input_fails(t, "charlie-long-line\ndelta\necho\n")


@case
def checkpoint_of_rotated_input_fails(t):
    """Same line lengths, other bytes: only the fingerprint tells."""
    replaced_input_fails(t, "xxxxx\nyyyyy\nzulu\n")


@case
def checkpoint_resumes_a_grown_input(t):
    t.write("in.txt", "alpha\nbravo\n")
    expect_ok(ckpt_run(t))
    with open(t.tmp / "in.txt", "a") as f:
        f.write("charlie\n")
    expect_ok(ckpt_run(t))
    expect(out_lines(t) == ["alpha", "bravo", "charlie"], str(out_lines(t)))


@case
def edited_checkpoints_fail(t):
    t.write("in.txt", "alpha\nbravo\n")
    for text in ["5 1\n", "10 3 extra\n", "-5 3\n", "+6 1\n", "6 1", "6\n",
                 "", " 6 1\n", "6 1\n\n", "6  1\n", "0 1\n", "6 0\n",
                 "6 7\n", "99999999999999999999 1\n",
                 "troupe-checkpoint 2 6 1\n",
                 "troupe-checkpoint 2 6 1 00000000000000zz\n",
                 "troupe-checkpoint 2 6 1 0000000000000000\n"]:
        t.write("in.ckpt", text)
        (t.tmp / "out.txt").unlink(missing_ok=True)
        p = ckpt_run(t)
        expect(p.returncode == EXIT_FAILED,
               f"checkpoint {text!r}: exit {p.returncode}")
        err = err_text(p)
        expect("checkpoint in.ckpt" in err and "delete the checkpoint" in err,
               f"checkpoint {text!r}: {tail(err)}")
        out = t.tmp / "out.txt"
        expect(not out.exists() or out.read_text() == "",
               f"checkpoint {text!r} emitted {out.read_text()!r}")


@case
def old_format_checkpoint_resumes(t):
    t.write("in.txt", "alpha\nbravo\n")
    t.write("in.ckpt", "6 1\n")
    expect_ok(ckpt_run(t))
    expect(out_lines(t) == ["bravo"], str(out_lines(t)))


@case
def checkpoint_in_missing_folder_is_created(t):
    """Lint passes it (like a sink's file), so the run must create it, not
    fail after the sink wrote and duplicate those records on the rerun."""
    t.write("in.txt", "alpha\nbravo\n")
    cfg = t.write("ck.yaml", CKPT.format(ckpt="state/deep/in.ckpt"))
    p = t.troupe("lint", cfg)
    expect(p.returncode == EXIT_OK, f"lint exit {p.returncode}: "
                                    f"{tail(err_text(p))}")
    p = t.troupe("run", cfg, "--no-progress")
    expect_ok(p)
    expect("checkpoint" not in err_text(p), tail(err_text(p)))
    expect((t.tmp / "state/deep/in.ckpt").is_file(), "no checkpoint written")
    with open(t.tmp / "in.txt", "a") as f:
        f.write("charlie\n")
    expect_ok(t.troupe("run", cfg, "--no-progress"))
    expect(out_lines(t) == ["alpha", "bravo", "charlie"], str(out_lines(t)))


@case
def second_run_on_one_checkpoint_fails(t):
    """A run idles on a FIFO holding the checkpoint; a second one fails
    at once instead of racing it for the checkpoint."""
    import fcntl
    os.mkfifo(t.tmp / "in.txt")
    cfg = t.write("ck.yaml", CKPT.format(ckpt="in.ckpt"))
    first = subprocess.Popen([t.bin, "run", str(cfg), "--no-progress"],
                             cwd=t.tmp, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        held = False
        while not held and time.monotonic() < deadline:
            expect(first.poll() is None, f"first run ended: {first.returncode}")
            try:
                with open(t.tmp / "in.ckpt.lock", "a") as f:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    fcntl.flock(f, fcntl.LOCK_UN)
            except FileNotFoundError:
                pass
            except BlockingIOError:
                held = True
            if not held:
                time.sleep(0.02)
        expect(held, "the first run never locked the checkpoint")
        p = t.troupe("run", cfg, "--no-progress", timeout=10)
        # Its source finds the checkpoint locked, or its sink the output
        # (file sinks lock their output too): whichever starts first.
        expect_failed(p, "by another run")
        err = err_text(p)
        expect("checkpoint in.ckpt is in use by another run" in err
               or "output 'out.txt' is being written by another run" in err,
               tail(err))
    finally:
        first.send_signal(signal.SIGTERM)
        try:
            first.wait(timeout=10)
        finally:
            first.kill()


@case
def fifo_without_writer_stops_cleanly(t):
    """A FIFO nobody writes to idles the source; a stop still drains."""
    os.mkfifo(t.tmp / "ff")
    cfg = t.write("fifo.yaml", """\
version: 1
runtime: { shutdown_timeout: 2s }
nodes:
  src: { type: file, path: ff }
  out: { type: stdout, inputs: [src] }
""")
    p = subprocess.Popen([t.bin, "run", str(cfg), "--no-progress", "--report",
                          "r.json"], cwd=t.tmp, stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)
    expect(p.poll() is None, "finished without a writer")
    start = time.monotonic()
    os.kill(p.pid, signal.SIGTERM)
    try:
        _, err = p.communicate(timeout=10)
    finally:
        p.kill()
    took = time.monotonic() - start
    err = err.decode(errors="replace")
    expect(p.returncode == EXIT_INTERRUPTED, f"exit {p.returncode}: {tail(err)}")
    expect(t.report()["status"] == "interrupted",
           f"status {t.report()['status']}: {tail(err)}")
    expect(took < 1.5, f"took {took:.1f}s to stop")


# --- findings 3 and 15: sources resume after a restart ---------------------------------

GROUP = """\
version: 1
supervision: {{ intensity: 1000, period: 10s, backoff: {{ min: 1ms, max: 5ms }} }}
groups:
  g:
    nodes: [src, chaos]
    supervision: {{ strategy: one_for_all, intensity: 1000, period: 10s,
                   backoff: {{ min: 1ms, max: 5ms }} }}
nodes:
  src:   {src}
  chaos: {{ type: chaos, seed: 7, kill: {kill}, inputs: [src] }}
  out:   {{ type: file, path: out.txt, format: lines, inputs: [chaos] }}
"""


def check_resumed(t, p, n, want):
    expect(p.returncode == EXIT_OK, f"exit {p.returncode}: {tail(err_text(p))}")
    r = t.report()
    check_balanced(r)
    expect(r["nodes"]["src"]["restarts"] > 0, "the source never restarted")
    lines = (t.tmp / "out.txt").read_text().splitlines()
    missing = want - set(lines)
    expect(not missing, f"{len(missing)} of {n} records missing, e.g. "
                        f"{sorted(missing)[:3]}")


@case
def one_for_all_generate_resumes(t):
    n = 200_000
    cfg = t.write("gen.yaml", GROUP.format(
        src=f"{{ type: generate, count: {n} }}", kill=0.01))
    p = t.troupe("run", cfg, "--no-progress", "--report", "r.json", timeout=60)
    check_resumed(t, p, n, {str(i) for i in range(n)})


@case
def one_for_all_stdin_resumes(t):
    n = 100_000
    cfg = t.write("sin.yaml", GROUP.format(src="{ type: stdin }", kill=0.05))
    data = "".join(f"{i}\n" for i in range(n)).encode()
    p = t.troupe("run", cfg, "--no-progress", "--report", "r.json",
                 input=data, timeout=60)
    check_resumed(t, p, n, {str(i) for i in range(n)})


@case
def one_for_all_file_source_resumes(t):
    n = 100_000
    t.write("in.txt", "".join(f"rec-{i}\n" for i in range(n)))
    cfg = t.write("fs.yaml", GROUP.format(
        src="{ type: file, path: in.txt }", kill=0.02))
    p = t.troupe("run", cfg, "--no-progress", "--report", "r.json", timeout=60)
    check_resumed(t, p, n, {f"rec-{i}" for i in range(n)})


if __name__ == "__main__":
    run_cases(sys.argv, Env, __doc__)
