#!/usr/bin/env python3
"""The graph validator through the real CLI: paths checked at lint and run.

Usage: python3 test_validate.py TROUPE_BIN SOURCE_DIR

Cases that need files on disk (the static ones are in tests/bad_configs).
Each runs in a fresh temporary working directory with a timeout; prints one
line per case and `N passed, M failed`; exits 1 if any case failed.
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (  # noqa: E402
    EXIT_CONFIG, Skip, expect, case, run_cases)
from harness import Env as BaseEnv  # noqa: E402

TIMEOUT = 30


class Env(BaseEnv):
    def troupe(self, *args, env=None):
        full_env = dict(os.environ)
        full_env.update(env or {})
        return subprocess.run([self.bin, *map(str, args)], cwd=self.tmp,
                              env=full_env, text=True, capture_output=True,
                              timeout=TIMEOUT, stdin=subprocess.DEVNULL)


def config_error(t, cfg, line_col, text, *extra, env=None):
    """lint and run both exit 78 with exactly one located error."""
    for cmd in (["lint", cfg], ["run", cfg, "--no-progress", *extra]):
        p = t.troupe(*cmd, env=env)
        errors = [l for l in p.stderr.splitlines() if ": error: " in l]
        expect(p.returncode == EXIT_CONFIG,
               f"{cmd[0]}: exit {p.returncode}, expected 78: {p.stderr[-300:]}")
        expect(len(errors) == 1, f"{cmd[0]}: {len(errors)} errors: {errors}")
        expect(errors[0].startswith(f"{cfg}:{line_col}: error: ")
               and text in errors[0], f"{cmd[0]}: got {errors[0]!r}")
        expect("crashed" not in p.stderr, f"{cmd[0]}: a node ran and crashed")


@case
def input_file_is_also_the_output(t):
    data = t.write("data.txt", "one\ntwo\n")
    cfg = t.write("g.yaml", "version: 1\nnodes:\n"
                  "  src: { type: file, path: data.txt }\n"
                  "  out: { type: file, path: ./data.txt, format: lines, "
                  "inputs: [src] }\n")
    config_error(t, cfg, "4:28", "destroys the input")
    expect(data.read_text() == "one\ntwo\n", "the input was touched")


@case
def input_path_through_a_symlink(t):
    t.write("real/data.txt", "x\n")
    os.symlink(t.tmp / "real", t.tmp / "link")
    cfg = t.write("g.yaml", "version: 1\nnodes:\n"
                  "  src: { type: file, path: real/data.txt }\n"
                  "  out: { type: file, path: link/data.txt, inputs: [src] }\n")
    config_error(t, cfg, "4:28", "destroys the input")


@case
def report_path_that_cannot_be_written(t):
    cfg = t.write("g.yaml", "version: 1\nnodes:\n"
                  "  src: { type: generate, count: 3 }\n"
                  "  out: { type: file, path: out.jsonl, inputs: [src] }\n")
    (t.tmp / "adir").mkdir()
    for report, why in (("adir", "is a directory"),
                        ("missing/r.json", "does not exist")):
        p = t.troupe("run", cfg, "--no-progress", "--report", report)
        errors = [l for l in p.stderr.splitlines() if ": error: " in l]
        expect(p.returncode == EXIT_CONFIG, f"{report}: exit {p.returncode}")
        expect(len(errors) == 1 and why in errors[0], f"{report}: {errors}")
        expect(not (t.tmp / "out.jsonl").exists(), "the graph ran anyway")


@case
def input_path_through_a_hard_link(t):
    data = t.write("data.txt", "x\n")
    os.link(data, t.tmp / "other.txt")
    cfg = t.write("g.yaml", "version: 1\nnodes:\n"
                  "  src: { type: file, path: data.txt }\n"
                  "  out: { type: file, path: other.txt, inputs: [src] }\n")
    config_error(t, cfg, "4:28", "destroys the input")
    expect(data.read_text() == "x\n", "the input was touched")


@case
def output_is_the_config_file(t):
    cfg = t.write("g.yaml", "version: 1\nnodes:\n"
                  "  src: { type: generate, count: 3 }\n"
                  "  out: { type: file, path: g.yaml, inputs: [src] }\n")
    before = cfg.read_text()
    config_error(t, cfg, "4:28", "the configuration file itself")
    expect(cfg.read_text() == before, "the config file was overwritten")


@case
def report_path_equal_to_a_sink_output(t):
    cfg = t.write("g.yaml", "version: 1\nnodes:\n"
                  "  src: { type: generate, count: 3 }\n"
                  "  out: { type: file, path: out.jsonl, inputs: [src] }\n")
    p = t.troupe("run", cfg, "--no-progress", "--report", "./out.jsonl")
    errors = [l for l in p.stderr.splitlines() if ": error: " in l]
    expect(p.returncode == EXIT_CONFIG, f"exit {p.returncode}: {p.stderr}")
    expect(len(errors) == 1 and "--report" in errors[0], f"got {errors}")
    expect(not (t.tmp / "out.jsonl").exists(), "the graph ran anyway")


@case
def paths_compared_after_env_expansion(t):
    cfg = t.write("g.yaml", "version: 1\nnodes:\n"
                  "  src: { type: generate, count: 3 }\n"
                  "  a: { type: file, path: \"${DIR_A}/x.txt\", inputs: [src] }\n"
                  "  b: { type: file, path: \"${DIR_B}/x.txt\", inputs: [src] }\n")
    config_error(t, cfg, "5:26", "two sinks on one file",
                 env={"DIR_A": "out", "DIR_B": "./out/"})


@case
def empty_path_from_set_is_one_clear_error(t):
    cfg = t.write("g.yaml", "version: 1\nnodes:\n"
                  "  src: { type: generate, count: 3 }\n"
                  "  out: { type: file, path: out.txt, inputs: [src] }\n")
    p = t.troupe("run", cfg, "--no-progress", "--set", "nodes.out.path=")
    expect(p.returncode == EXIT_CONFIG, f"exit {p.returncode}: {p.stderr}")
    errors = [l for l in p.stderr.splitlines() if ": error: " in l]
    expect(errors == ["<command line>: error: 'path' is empty (an unset "
                      "${VAR}?); name a file"], f"got {errors}")
    expect("crashed" not in p.stderr, "the sink ran and crashed")


@case
def missing_input_file(t):
    cfg = t.write("g.yaml", "version: 1\nnodes:\n"
                  "  src: { type: file, path: missing.txt }\n"
                  "  out: { type: stdout, inputs: [src] }\n")
    config_error(t, cfg, "3:28", "input file 'missing.txt' does not exist")


@case
def input_is_a_directory(t):
    (t.tmp / "folder").mkdir()
    cfg = t.write("g.yaml", "version: 1\nnodes:\n"
                  "  src: { type: file, path: folder }\n"
                  "  out: { type: stdout, inputs: [src] }\n")
    config_error(t, cfg, "3:28", "is a directory, not a file")


@case
def output_is_a_directory(t):
    (t.tmp / "folder").mkdir()
    cfg = t.write("g.yaml", "version: 1\nnodes:\n"
                  "  src: { type: generate, count: 3 }\n"
                  "  out: { type: file, path: folder, inputs: [src] }\n")
    config_error(t, cfg, "4:28", "names the directory 'folder'")


@case
def output_in_a_read_only_folder(t):
    if os.geteuid() == 0:
        raise Skip("root may write anywhere")
    ro = t.tmp / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        cfg = t.write("g.yaml", "version: 1\nnodes:\n"
                      "  src: { type: generate, count: 3 }\n"
                      "  out: { type: file, path: ro/sub/x.txt, "
                      "inputs: [src] }\n")
        config_error(t, cfg, "4:28", "is not writable")
    finally:
        ro.chmod(0o755)


@case
def output_in_a_missing_folder_is_created(t):
    cfg = t.write("g.yaml", "version: 1\nnodes:\n"
                  "  src: { type: generate, count: 3 }\n"
                  "  out: { type: file, path: new/dir/x.txt, format: lines, "
                  "inputs: [src] }\n")
    p = t.troupe("run", cfg, "--no-progress")
    expect(p.returncode == 0, f"exit {p.returncode}: {p.stderr[-300:]}")
    expect((t.tmp / "new/dir/x.txt").read_text() == "0\n1\n2\n",
           "output not written")


@case
def devices_may_be_shared(t):
    cfg = t.write("g.yaml", "version: 1\nnodes:\n"
                  "  src: { type: generate, count: 3 }\n"
                  "  a: { type: file, path: /dev/null, inputs: [src] }\n"
                  "  b: { type: file, path: /dev/null, inputs: [src] }\n")
    p = t.troupe("lint", cfg)
    expect(p.returncode == 0, f"exit {p.returncode}: {p.stderr}")


@case
def graph_shows_each_node_as_its_resolved_kind(t):
    # `file` is a source and a sink: `troupe graph` draws the kind the
    # validator resolved, not a second guess of its own.
    t.write("data.txt", "one\n")
    cfg = t.write("g.yaml", "version: 1\nnodes:\n"
                  "  src: { type: file, path: data.txt }\n"
                  "  up:  { type: map, fn: upper, inputs: [src] }\n"
                  "  out: { type: file, path: out.txt, inputs: [up] }\n")
    p = t.troupe("graph", cfg)
    expect(p.returncode == 0, f"exit {p.returncode}: {p.stderr[-300:]}")
    shapes = {}
    for line in p.stdout.splitlines():
        if "shape=" in line:
            shapes[line.split()[0].strip('"')] = line.split("shape=")[1].split(",")[0]
    expect(shapes == {"src": "invhouse", "up": "box", "out": "house"},
           f"shapes {shapes}")


@case
def parameter_value_problems_point_at_the_value(t):
    # Parsed by the validator, located by the parser.
    cfg = t.write("g.yaml", "version: 1\nnodes:\n"
                  "  src: { type: generate, count: -1 }\n"
                  "  out: { type: stdout, inputs: [src] }\n")
    config_error(t, cfg, "3:33", "'count': must be at least 0, got -1")


if __name__ == "__main__":
    run_cases(sys.argv, Env, __doc__, timings=False)
