#!/usr/bin/env python3
"""The graph as a picture: `troupe graph --format svg|dot` and
`troupe run --report-html FILE`, on the real CLI.

usage: test_pictures.py TROUPE_BIN SOURCE_DIR
"""
import html.parser
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (  # noqa: E402
    EXIT_OK, EXIT_USAGE, EXIT_CONFIG, expect, case, tail, load_report,
    run_cases)
from harness import Env as BaseEnv  # noqa: E402

SVG = "{http://www.w3.org/2000/svg}"

# Every construct the picture draws: kinds, a parallel stage, an errors
# port, nested supervision groups, resources used by slot and by a service.
RICH = """\
version: 1
name: rich
runtime: { max_attempts: 1 }
groups:
  fragile:
    nodes: [chaos]
    supervision: { strategy: one_for_all, intensity: 50, period: 10s }
  inner:
    parent: fragile
    nodes: [upper]
resources:
  memo: { type: cache, capacity: 1000 }
  pace: { type: rate_limiter, rate: 100000/s, burst: 1000 }
nodes:
  src:   { type: generate, count: 2000, template: "r{i}" }
  chaos: { type: chaos, seed: 7, p: 0.02, inputs: [src] }
  upper: { type: map, fn: upper, workers: 2, inputs: [chaos] }
  hash:  { type: map, fn: sha256, cache: memo, rate_limit: pace, inputs: [upper] }
  out:   { type: file, path: out.txt, format: lines, inputs: [hash] }
  dead:  { type: file, path: dead.jsonl, inputs: [chaos.errors] }
"""
NODES = ["src", "chaos", "upper", "hash", "out", "dead"]


class Env(BaseEnv):
    def troupe(self, *args, timeout=60):
        return subprocess.run([self.bin, *map(str, args)], cwd=self.tmp,
                              stdin=subprocess.DEVNULL, capture_output=True,
                              text=True, timeout=timeout)


def groups_by_id(root):
    return {g.get("id"): g for g in root.iter(f"{SVG}g") if g.get("id")}


def texts(el):
    return " ".join(t.text or "" for t in el.iter(f"{SVG}text"))


@case
def svg_parses_with_every_part(t):
    cfg = t.write("rich.yaml", RICH)
    p = t.run_ok("graph", cfg, "--format", "svg")
    expect(p.stderr == "", f"stderr not empty: {tail(p.stderr)}")
    try:
        root = ET.fromstring(p.stdout.encode())
    except ET.ParseError as e:
        raise AssertionError(f"svg is not XML: {e}")
    expect(root.tag == f"{SVG}svg", f"root element {root.tag}")
    ids = groups_by_id(root)
    for n in NODES:
        g = ids.get(f"node-{n}")
        expect(g is not None, f"no g#node-{n}")
        expect(n in texts(g), f"node-{n} does not name {n}: {texts(g)!r}")
    expect("x2" in texts(ids["node-upper"]), "workers: 2 not shown")
    for grp in ["fragile", "inner"]:
        g = ids.get(f"group-{grp}")
        expect(g is not None and "cluster" in g.get("class", ""),
               f"no cluster for group {grp}")
        expect(grp in texts(g), f"cluster {grp} unlabelled")
    expect("one_for_all" in texts(ids["group-fragile"]),
           "the group's strategy is not shown")
    for res in ["memo", "pace"]:
        expect(f"resource-{res}" in ids, f"no resource {res}")
    edges = {}
    for g in root.iter(f"{SVG}g"):
        if "edge" in (g.get("class") or "").split():
            title = g.find(f"{SVG}title").text.replace("&#45;", "-")
            edges[title] = g
    err = edges.get("chaos->dead")
    expect(err is not None, f"no chaos->dead edge in {sorted(edges)}")
    expect("errors" in texts(err), "the errors edge is not labelled")
    path = err.find(f"{SVG}path")
    expect(path.get("stroke") == "red" and path.get("stroke-dasharray"),
           "the errors edge is not red and dashed")
    expect("record_stream" in texts(edges["src->chaos"]),
           "a data edge does not name its protocol")
    expect("cache" in texts(edges["hash->memo"]), "the cache slot unlabelled")
    expect("rate_limit" in texts(edges["hash->pace"]),
           "the rate_limit slot unlabelled")


@case
def dot_is_the_same_builder(t):
    cfg = t.write("rich.yaml", RICH)
    for args in (["graph", cfg], ["graph", cfg, "--format", "dot"]):
        out = t.run_ok(*args).stdout
        expect(out.startswith("digraph"), f"starts with {out[:20]!r}")
        for n in NODES:
            expect(f'id="node-{n}"' in out, f"no id for {n}")
        expect('subgraph "cluster_fragile"' in out, "no cluster")
        expect('label="errors"' in out, "no errors label")


# A hostile review's graph: Graphviz 2.42's default ranking corrupted its
# heap on it (a double free, the process aborted) 10 times out of 10.
GROUPED = """\
version: 1
name: big
groups:
  grp0: { nodes: [m2, m3, m4] }
  grp1: { nodes: [m5, m6, m7] }
nodes:
  s0: { type: generate, count: 10 }
  s1: { type: generate, count: 10 }
  m2: { type: map, fn: upper, inputs: [s1] }
  m3: { type: map, fn: upper, inputs: [m2] }
  m4: { type: map, fn: upper, inputs: [m3] }
  m5: { type: map, fn: upper, inputs: [m2, m4, s0] }
  m6: { type: map, fn: upper, inputs: [m3, s1] }
  m7: { type: map, fn: upper, inputs: [m3] }
  m8: { type: map, fn: upper, inputs: [s1, m7, m4] }
  m9: { type: map, fn: upper, inputs: [s1, m6] }
  sink: { type: null, inputs: [m2, m3, m4, m5, m8, m9] }
"""


@case
def grouped_graphs_render_without_crashing(t):
    cfg = t.write("big.yaml", GROUPED)
    for attempt in range(5):
        p = t.troupe("graph", cfg, "--format", "svg")
        expect(p.returncode == 0,
               f"attempt {attempt}: exit {p.returncode}: {tail(p.stderr)}")
        expect(p.stderr == "", f"stray stderr: {tail(p.stderr)}")
        root = ET.fromstring(p.stdout)
        ids = {g.get("id") for g in root.iter("{http://www.w3.org/2000/svg}g")}
        for n in ("s0", "m5", "m9", "sink"):
            expect(f"node-{n}" in ids, f"no node-{n}")
        expect({"group-grp0", "group-grp1"} <= ids, "clusters missing")


@case
def unknown_format_is_usage(t):
    cfg = t.write("rich.yaml", RICH)
    p = t.troupe("graph", cfg, "--format", "bogus")
    expect(p.returncode == EXIT_USAGE, f"exit {p.returncode}")
    expect("bogus" in p.stderr and "svg" in p.stderr,
           f"message: {tail(p.stderr)}")
    expect(len(p.stderr.strip().splitlines()) == 1, "not one line")
    expect(p.stdout == "", "printed something")
    p = t.troupe("graph", cfg, "--format")
    expect(p.returncode == EXIT_USAGE, f"--format alone: exit {p.returncode}")


class Figures(html.parser.HTMLParser):
    """Collects [data-node] [data-field] texts, #totals [data-field], the
    #status text and the #dead-letters items of the report page."""

    def __init__(self):
        super().__init__()
        self.nodes, self.totals, self.dead = {}, {}, []
        self.status = None
        self.stack = []  # (tag, attrs) of open elements
        self.capture = None
        self.svg_ids = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("meta", "br", "img", "link", "input") or \
                self.get_starttag_text().endswith("/>"):
            if tag == "g" and a.get("id"):
                self.svg_ids.add(a["id"])
            return
        self.stack.append((tag, a))
        if tag == "g" and a.get("id"):
            self.svg_ids.add(a["id"])
        field = a.get("data-field")
        if field:
            node = next((x.get("data-node") for _, x in reversed(self.stack)
                         if x.get("data-node")), None)
            in_totals = any(x.get("id") == "totals" for _, x in self.stack)
            if node:
                self.capture = ("node", node, field, a.get("data-value"))
            elif in_totals:
                self.capture = ("total", None, field, None)
        elif a.get("id") == "status":
            self.capture = ("status", None, None, None)
        elif tag == "li" and any(x.get("id") == "dead-letters"
                                 for _, x in self.stack):
            self.capture = ("dead", None, None, None)
        self.text = ""

    def handle_data(self, data):
        if self.capture:
            self.text += data

    def handle_endtag(self, tag):
        while self.stack:
            t, _ = self.stack.pop()
            if t == tag:
                break
        if not self.capture:
            return
        kind, node, field, value = self.capture
        self.capture = None
        if kind == "node":
            self.nodes.setdefault(node, {})[field] = value or self.text
        elif kind == "total":
            self.totals[field] = self.text
        elif kind == "status":
            self.status = self.text
        elif kind == "dead":
            self.dead.append(self.text)


@case
def report_html_matches_the_json(t):
    cfg = t.write("rich.yaml", RICH)
    t.run_ok("run", cfg, "--no-progress", "--report", "r.json",
             "--report-html", "r.html", timeout=120)
    r = load_report(t.tmp / "r.json")
    page = (t.tmp / "r.html").read_text()
    urls = set(re.findall(r"https?://[^\s\"'<>)]*", page))
    expect(urls <= {"http://www.w3.org/2000/svg"},
           f"the page points elsewhere: {urls}")
    expect("<script" not in page and "src=" not in page,
           "the report loads or runs something")
    f = Figures()
    f.feed(page)
    f.close()
    expect(f.status == r["status"] == "completed", f"status {f.status!r}")
    for k, v in r["totals"].items():
        expect(str(v) == f.totals.get(k), f"total {k}: page {f.totals.get(k)}"
                                          f" != report {v}")
    expect(set(f.nodes) == set(r["nodes"]), f"nodes {sorted(f.nodes)}")
    for name, n in r["nodes"].items():
        got = f.nodes[name]
        for k, v in n.items():
            if k in ("type", "balanced"):
                continue
            if k.startswith("latency_"):
                ns = int(got[k.replace("_us", "_ns")])
                # The JSON prints 6 significant digits.
                expect(abs(ns / 1000.0 - v) <= max(0.01, v * 1e-5),
                       f"{name}.{k}: page {ns} ns != report {v} us")
            else:
                expect(got.get(k) == str(v),
                       f"{name}.{k}: page {got.get(k)} != report {v}")
    for n in NODES:
        expect(f"node-{n}" in f.svg_ids, f"picture lacks node-{n}")
    expect(r["nodes"]["chaos"]["dead_lettered"] > 0, "chaos failed nothing")
    expect(f.dead and all("chaos" in d for d in f.dead),
           f"dead letters: {f.dead[:3]}")
    expect(f"out {r['nodes']['hash']['out']}" in page,
           "the picture does not carry the node's counts")


@case
def report_html_never_overwrites(t):
    cfg = t.write("rich.yaml", RICH)
    for target in ["rich.yaml", "out.txt", "dead.jsonl"]:
        before = (t.tmp / target).read_bytes() if (t.tmp / target).exists() \
            else None
        p = t.troupe("run", cfg, "--no-progress", "--report-html", target)
        expect(p.returncode == EXIT_CONFIG,
               f"--report-html {target}: exit {p.returncode}")
        expect("--report-html" in p.stderr, f"message: {tail(p.stderr)}")
        after = (t.tmp / target).read_bytes() if (t.tmp / target).exists() \
            else None
        expect(before == after, f"{target} changed")
    # --report and --report-html on one file, however it is spelled: the
    # page would replace the JSON (exit 0, no report).
    t.write("r.json", "{}")
    os.symlink("r.json", t.tmp / "r_link.json")
    for a, b in [("x", "x"), ("r.json", str(t.tmp / "r.json")),
                 ("r.json", "./sub/../r.json"), ("r.json", "r_link.json")]:
        (t.tmp / "sub").mkdir(exist_ok=True)
        p = t.troupe("run", cfg, "--no-progress", "--report", a,
                     "--report-html", b)
        expect(p.returncode == EXIT_USAGE and "same file" in p.stderr,
               f"--report {a} --report-html {b}: exit {p.returncode}: "
               f"{tail(p.stderr)}")
        expect((t.tmp / "r.json").read_text() == "{}", "r.json was written")
    # An empty name (an unset $REPORT) is no report at all: refused.
    for flag in ("--report", "--report-html"):
        p = t.troupe("run", cfg, "--no-progress", flag, "")
        expect(p.returncode == EXIT_USAGE and "needs a file name" in p.stderr,
               f"{flag} '': exit {p.returncode}: {tail(p.stderr)}")
    # A dangling symlink to a sink's file that does not exist yet: the
    # report would have been written through it, in place of the records.
    for flag in ("--report-html", "--report"):
        link = t.tmp / f"link{flag.replace('-', '_')}"
        if (t.tmp / "out.txt").exists():
            (t.tmp / "out.txt").unlink()
        os.symlink("out.txt", link)
        p = t.troupe("run", cfg, "--no-progress", flag, link.name)
        expect(p.returncode == EXIT_CONFIG,
               f"{flag} via a dangling symlink: exit {p.returncode}")
        expect("'out'" in p.stderr, f"message: {tail(p.stderr)}")


if __name__ == "__main__":
    run_cases(sys.argv, Env, __doc__)
