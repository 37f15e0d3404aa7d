#!/usr/bin/env python3
"""Run troupe on a corpus of invalid configurations and check its diagnostics.

Usage: python3 run_bad_configs.py TROUPE_BIN DIR

Every DIR/*.yaml starts with comment lines that state what troupe must say:

    # expect: LINE:COL: SUBSTRING   (one or more) stderr has a line
                                    FILE:LINE:COL: error: ...SUBSTRING...
    # expect-count: N               (optional) exactly N error lines

For each file `TROUPE_BIN lint FILE` (and, for a few files, `TROUPE_BIN run
FILE --no-progress`) must exit 78 with those lines and without any sign of a
crash or sanitizer report. A few more cases are generated in a temp dir:
files over 1 MiB (too large to commit), a file of exactly 1 MiB, and deeply
nested block- and flow-style files.

Prints one line per case and a final line `N passed, M failed`; exits 1 if
any case failed.
"""
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

TIMEOUT = 10  # seconds per troupe invocation
CONFIG_INVALID = 78
MAX_BYTES = 1024 * 1024
MAX_DEPTH = 64
MIN_CORPUS = 30

# Files that are also checked through `troupe run`, not just `troupe lint`.
RUN_TOO = ["malformed_yaml", "unknown_field", "cycle", "non_utf8",
           "unset_env_var", "deep_nesting_flow", "multiple_errors",
           "wrong_protocol_resource"]

CRASH = re.compile(
    r"AddressSanitizer|LeakSanitizer|ThreadSanitizer|MemorySanitizer"
    r"|UndefinedBehaviorSanitizer|runtime error:|terminate called"
    r"|Segmentation fault|core dumped|stack-overflow|Assertion .* failed"
    r"|std::bad_alloc|\bpanic\b", re.IGNORECASE)
EXPECT = re.compile(r"#\s*expect:\s*(\d+):(\d+):\s?(.*?)\s*$")
EXPECT_COUNT = re.compile(r"#\s*expect-count:\s*(\d+)\s*$")

# ${TROUPE_TEST_UNSET_VAR} must really be unset for unset_env_var.yaml.
ENV = {k: v for k, v in os.environ.items() if k != "TROUPE_TEST_UNSET_VAR"}


class Expectation:
    def __init__(self, errors, count=None):
        self.errors = errors  # [(line, col, substring)]
        self.count = count    # exact number of error lines, or None


def read_expectation(path):
    """Parses the leading comment lines of a corpus file."""
    errors, count = [], None
    text = path.read_bytes().decode("utf-8", errors="replace")
    for line in text.splitlines():
        if not line.startswith("#"):
            break
        if m := EXPECT.match(line):
            errors.append((int(m[1]), int(m[2]), m[3]))
        elif m := EXPECT_COUNT.match(line):
            count = int(m[1])
    return Expectation(errors, count)


def troupe(binary, args, cwd):
    """Runs troupe; returns (exit code, stdout, stderr) or raises on timeout."""
    p = subprocess.run([binary, *args], cwd=cwd, env=ENV,
                       stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=TIMEOUT)
    return (p.returncode, p.stdout.decode("utf-8", "replace"),
            p.stderr.decode("utf-8", "replace"))


def problems_with(binary, args, file, expect, cwd, want_rc=CONFIG_INVALID):
    """Runs troupe and lists everything wrong with its answer (empty: ok)."""
    try:
        rc, out, err = troupe(binary, args, cwd)
    except subprocess.TimeoutExpired:
        return [f"no answer within {TIMEOUT}s"]
    found = []
    if rc < 0:
        found.append(f"killed by signal {-rc}")
    elif rc != want_rc:
        found.append(f"exit {rc}, expected {want_rc}")
    if m := CRASH.search(out + err):
        found.append(f"crash output: {m[0]!r}")
    prefix = re.escape(str(file))
    for line, col, sub in expect.errors:
        pattern = rf"^{prefix}:{line}:{col}: error: .*{re.escape(sub)}"
        if not re.search(pattern, err, re.MULTILINE):
            found.append(f"no line '{file.name}:{line}:{col}: error: "
                         f"...{sub}'")
    if expect.count is not None:
        n = len(re.findall(rf"^{prefix}:\d+:\d+: error: ", err, re.MULTILINE))
        if n != expect.count:
            found.append(f"{n} errors reported, expected {expect.count}")
    if found:
        shown = err.strip().splitlines()[:6]
        found.append("stderr was:\n      " + "\n      ".join(shown or ["(empty)"]))
    return found


class Results:
    def __init__(self):
        self.passed = self.failed = 0

    def report(self, name, problems):
        if problems:
            self.failed += 1
            print(f"FAIL {name}: " + "; ".join(problems), flush=True)
        else:
            self.passed += 1
            print(f"ok   {name}", flush=True)


# --- generated cases ---------------------------------------------------------

GRAPH = ("version: 1\nnodes:\n  src: { type: generate, count: 3 }\n"
         "  out: { type: stdout, inputs: [src] }\n")


def padded_graph(size):
    """A valid graph padded with comment lines to exactly `size` bytes."""
    text = GRAPH
    line = "#" + "x" * 98 + "\n"
    while len(text) + len(line) <= size:
        text += line
    rest = size - len(text)
    if rest:
        text += "#" + "x" * (rest - 2) + "\n" if rest >= 2 else "\n"
    assert len(text.encode()) == size
    return text


def deep_block_maps(levels):
    """Nested block maps under 'extra'; returns (text, line, col) of the
    first map that is one level too deep."""
    text = GRAPH + "extra:\n"
    first = text.count("\n") + 1  # line of k1
    for i in range(1, levels + 1):
        text += "  " * i + f"k{i}:\n"
    text += "  " * (levels + 1) + "leaf\n"
    # The root map is level 1, so the map holding k{i} is level i + 1: the
    # first map deeper than MAX_DEPTH holds k{MAX_DEPTH}.
    return text, first + MAX_DEPTH - 1, 2 * MAX_DEPTH + 1


def generated_cases(binary, tmp, results):
    tmp = Path(tmp)

    big = tmp / "too_large.yaml"
    big.write_text(padded_graph(MAX_BYTES + 4096))
    results.report("lint >1 MiB file (generated)", problems_with(
        binary, ["lint", str(big)], big,
        Expectation([(1, 1, "1 MiB")]), tmp))
    results.report("run >1 MiB file (generated)", problems_with(
        binary, ["run", str(big), "--no-progress"], big,
        Expectation([(1, 1, "1 MiB")]), tmp))

    # If the message states the file's size, the size must be the real one.
    try:
        _, _, err = troupe(binary, ["lint", str(big)], tmp)
        m = re.search(r"file is (\d+) bytes", err)
        real = big.stat().st_size
        wrong = [] if not m or int(m[1]) == real else [
            f"message says the file is {m[1]} bytes, it is {real}"]
    except subprocess.TimeoutExpired:
        wrong = [f"no answer within {TIMEOUT}s"]
    results.report(">1 MiB file: stated size is the real size", wrong)

    exact = tmp / "exactly_1mib.yaml"
    exact.write_text(padded_graph(MAX_BYTES))
    results.report("lint file of exactly 1 MiB is accepted", problems_with(
        binary, ["lint", str(exact)], exact, Expectation([]), tmp,
        want_rc=0))

    text, line, col = deep_block_maps(MAX_DEPTH + 6)
    deep = tmp / "deep_block_maps.yaml"
    deep.write_text(text)
    results.report(f"lint block maps nested {MAX_DEPTH + 7} deep (generated)",
                   problems_with(binary, ["lint", str(deep)], deep,
                                 Expectation([(line, col, "nesting deeper "
                                               "than 64 levels")]), tmp))

    # Compact nested block sequences: "- - - ... x" on one line. The
    # 64th '-' opens level 65 (the root map is level 1).
    seqs = tmp / "deep_block_sequences.yaml"
    seqs.write_text("version: 1\nextra:\n" + "- " * 100_000 + "x\n")
    results.report("lint 100000 nested block sequences (generated)",
                   problems_with(binary, ["lint", str(seqs)], seqs,
                                 Expectation([(3, 2 * (MAX_DEPTH - 1) + 1,
                                               "nesting deeper than 64")]),
                                 tmp))

    flow = tmp / "deep_flow.yaml"
    flow.write_text("version: 1\nextra: " + "[" * 200_000 + "]" * 200_000
                    + "\n")
    results.report("lint 200000 nested flow lists (generated)",
                   problems_with(binary, ["lint", str(flow)], flow,
                                 Expectation([(2, 8 + MAX_DEPTH,
                                               "nesting deeper than 64")]),
                                 tmp))


def main(binary, corpus):
    binary = str(Path(binary).resolve())
    corpus = Path(corpus).resolve()
    files = sorted(corpus.glob("*.yaml"))
    results = Results()
    results.report(f"corpus has at least {MIN_CORPUS} files ({len(files)})",
                   [] if len(files) >= MIN_CORPUS else ["too few files"])
    with tempfile.TemporaryDirectory(prefix="troupe-bad-") as tmp:
        for f in files:
            expect = read_expectation(f)
            if not expect.errors and expect.count is None:
                results.report(f"lint {f.name}", ["no '# expect:' header"])
                continue
            results.report(f"lint {f.name}", problems_with(
                binary, ["lint", str(f)], f, expect, tmp))
            if f.stem in RUN_TOO:
                results.report(f"run  {f.name}", problems_with(
                    binary, ["run", str(f), "--no-progress"], f, expect, tmp))
        generated_cases(binary, tmp, results)
    print(f"{results.passed} passed, {results.failed} failed")
    return 1 if results.failed else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__.split("\n\n")[1])
    sys.exit(main(sys.argv[1], sys.argv[2]))
