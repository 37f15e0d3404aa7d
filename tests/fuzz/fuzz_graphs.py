#!/usr/bin/env python3
"""Random-graph fuzzer for troupe: generates valid random graphs from a seed,
runs each through the real CLI, and checks the run against an independent
model of what the graph must deliver.

  fuzz_graphs.py --binary build/troupe --ci                 # fixed seeds + regressions (ctest)
  fuzz_graphs.py --binary build/troupe --seeds 0:2000 --jobs 2 [--out DIR] [--shrink]
  fuzz_graphs.py --binary build/troupe --seed 17 --keep     # reproduce one seed
  fuzz_graphs.py --binary build/troupe --yaml F.yaml        # check one saved graph

Checks per run:
  * no hang (timeout), no crash (signal), a report is written;
  * exit code agrees with the report status (0 only if completed);
  * per node: in + created = out + filtered + dead_lettered + in_flight +
    retried + lost, the report's `balanced` agrees, in_flight 0 if completed;
  * a run with no fault injected (no chaos kill) completes;
  * file sinks: lines written == the sink's `out` (when it never restarted);
  * contents against the model: at_least_once + completed => every record
    the model says must arrive is there (chaos `p` is a choice the model
    cannot predict: that record must be in the output OR in the errors,
    wherever each leads), nothing the model forbids is there, duplicates
    only when something restarted; at_most_once => what is missing is
    covered by the report's `lost`.

Stdlib only. The model never looks at troupe's code paths: it recomputes
what each node type does from the README's semantics.
"""
import argparse
import collections
import copy
import hashlib
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# --------------------------------------------------------------------------
# Graph representation: a dict
#   {"name", "runtime": {...}, "supervision": {...}, "groups": {name: {...}},
#    "nodes": {name: {"type":..., "inputs": [...], ...}}  (insertion order is
#    topological), "files": {relpath: [lines]}  (inputs the fuzzer writes)}
# --------------------------------------------------------------------------

SOURCE_TYPES = {"generate", "file_src"}
SINK_TYPES = {"file_sink", "null"}
MAP_FNS = ["identity", "upper", "lower", "sha256", "trim", "square", "even"]


def yaml_scalar(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    s = str(v)
    return json.dumps(s)  # a JSON string is a valid YAML double-quoted scalar


def yaml_flow(v):
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {yaml_flow(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(yaml_flow(x) for x in v) + "]"
    return yaml_scalar(v)


def node_yaml_fields(n):
    """The YAML fields of a node (internal type names mapped to troupe's)."""
    out = {}
    t = n["type"]
    out["type"] = {"file_src": "file", "file_sink": "file"}.get(t, t)
    for k, v in n.items():
        if k in ("type",):
            continue
        out[k] = v
    return out


def to_yaml(g):
    lines = ["version: 1", f"name: {g['name']}"]
    if g.get("runtime"):
        lines.append("runtime: " + yaml_flow(g["runtime"]))
    if g.get("supervision"):
        lines.append("supervision: " + yaml_flow(g["supervision"]))
    if g.get("resources"):
        lines.append("resources:")
        for name, r in g["resources"].items():
            lines.append(f"  {name}: " + yaml_flow(r))
    lines.append("nodes:")
    for name, n in g["nodes"].items():
        lines.append(f"  {name}: " + yaml_flow(node_yaml_fields(n)))
    if g.get("groups"):
        lines.append("groups:")
        for name, gr in g["groups"].items():
            lines.append(f"  {name}: " + yaml_flow(gr))
    return "\n".join(lines) + "\n"


def parse_flow(text):
    """Parses the YAML subset to_yaml writes: flow maps/lists of plain or
    double-quoted scalars (enough for the regression files)."""
    pos = 0

    def ws():
        nonlocal pos
        while pos < len(text) and text[pos] in " \t":
            pos += 1

    def value():
        nonlocal pos
        ws()
        c = text[pos]
        if c == "{":
            pos += 1
            out = {}
            ws()
            if text[pos] == "}":
                pos += 1
                return out
            while True:
                ws()
                k = scalar(":")
                ws()
                assert text[pos] == ":", text
                pos += 1
                out[k] = value()
                ws()
                if text[pos] == ",":
                    pos += 1
                    continue
                assert text[pos] == "}", text
                pos += 1
                return out
        if c == "[":
            pos += 1
            out = []
            ws()
            if text[pos] == "]":
                pos += 1
                return out
            while True:
                out.append(value())
                ws()
                if text[pos] == ",":
                    pos += 1
                    continue
                assert text[pos] == "]", text
                pos += 1
                return out
        quoted = text[pos] == '"'
        v = scalar(",]}")
        return v if quoted else convert(v)

    def scalar(stops):
        nonlocal pos
        ws()
        if text[pos] == '"':
            dec = json.JSONDecoder()
            v, end = dec.raw_decode(text, pos)
            pos = end
            return v
        start = pos
        while pos < len(text) and text[pos] not in stops:
            pos += 1
        return text[start:pos].strip()

    v = value()
    return v


def convert(s):
    if not isinstance(s, str):
        return s
    if s in ("true", "false"):
        return s == "true"
    if re.fullmatch(r"-?\d+", s):
        return int(s)
    if re.fullmatch(r"-?\d+\.\d*(e-?\d+)?", s):
        return float(s)
    return s


def from_yaml(text, name="regression"):
    """Reads a graph written in to_yaml's form back into the graph dict."""
    g = {"name": name, "runtime": {}, "supervision": {}, "groups": {},
         "resources": {}, "nodes": {}, "files": {}}
    section = None

    def add(section, key, v):
        if section == "nodes" and v.get("type") == "file":
            v["type"] = "file_sink" if v.get("inputs") else "file_src"
        g[section][key] = v

    for line in text.splitlines():
        m = re.match(r"#\s*fuzz-accept:\s*(.*)", line.strip())
        if m:  # an outcome a fix may choose instead, e.g. "rejected" (exit 78)
            g.setdefault("accept", []).extend(m.group(1).split())
        m = re.match(r"#\s*fuzz-repeat:\s*(\d+)", line.strip())
        if m:  # a timing-dependent failure: run up to N times, stop at the first failure
            g["repeat"] = int(m.group(1))
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            key, _, rest = line.partition(":")
            rest = rest.strip()
            section = None
            if key in ("nodes", "groups", "resources") and not rest:
                section = key
            elif key in ("nodes", "groups", "resources"):
                for k, v in parse_flow(rest).items():
                    add(key, k, v)
            elif key == "name":
                g["name"] = convert(parse_flow(rest)) if rest.startswith('"') else rest
            elif key in ("runtime", "supervision"):
                g[key] = parse_flow(rest)
            continue
        key, _, rest = line.strip().partition(":")
        if section:
            add(section, key, parse_flow(rest.strip()))
    return g


# --------------------------------------------------------------------------
# Generator
# --------------------------------------------------------------------------

def pick_duration_ms(rng, lo, hi):
    return f"{rng.randint(lo, hi)}ms"


def gen_graph(seed, small=False):
    rng = random.Random(seed)
    g = {"name": f"fuzz{seed}", "runtime": {}, "supervision": {}, "groups": {},
         "nodes": {}, "files": {}}
    rt = g["runtime"]
    delivery = "at_most_once" if rng.random() < 0.2 else "at_least_once"
    if rng.random() < 0.6 or delivery == "at_most_once":
        rt["delivery"] = delivery
    window = None
    if rng.random() < 0.5:
        window = rng.choice([16, 64, 256, 1024, 4096])
        rt["window"] = window
    if rng.random() < 0.6:
        bs = rng.choice([1, 2, 7, 16, 64, 100, 256])
        if window is not None and rng.random() < 0.8:
            bs = min(bs, window)
        rt["batch_size"] = bs
    if rng.random() < 0.4:
        rt["max_attempts"] = rng.randint(1, 4)
    if rng.random() < 0.3:
        rt["threads"] = rng.choice(["auto", 1, 2, 4])
    rt["shutdown_timeout"] = "5s"
    eff_window = window or 16384
    max_attempts = rt.get("max_attempts", 3)

    sv = g["supervision"]
    if rng.random() < 0.8:
        sv["strategy"] = rng.choice(["one_for_one", "one_for_all", "rest_for_one"])
    if rng.random() < 0.8:
        sv["intensity"] = rng.choice([0, 3, 50, 500, 1000, 1000])
    if rng.random() < 0.6:
        sv["period"] = rng.choice(["1s", "5s", "10s"])
    sv["backoff"] = {"min": "1ms", "max": pick_duration_ms(rng, 1, 20)}

    nodes = g["nodes"]
    count_hi = 300 if small else 3000
    # Sources: generate (disjoint index ranges so seq and bodies are unique
    # across sources), at most one file source (seq = line index).
    n_src = rng.choice([1, 1, 1, 2, 2, 3])
    keyed_sources = []
    have_file = False
    for k in range(n_src):
        name = f"src{k}"
        if not have_file and rng.random() < 0.2:
            have_file = True
            n_lines = rng.randint(0, count_hi)
            style = rng.choice(["num", "word", "space"])
            lines = []
            for i in range(n_lines):
                if style == "num":
                    lines.append(str(500000 + i))
                elif style == "word":
                    lines.append(f"f{k}-line{i}")
                else:
                    lines.append(f"  f{k} Line{i} ")
            path = f"in/{name}.txt"
            g["files"][path] = lines
            nodes[name] = {"type": "file_src", "path": path}
        else:
            cnt = int(rng.choice([0, 1, 5, rng.randint(1, count_hi),
                                  rng.randint(1, count_hi)]))
            n = {"type": "generate", "count": cnt,
                 "start": (k + 1) * 1000000 + rng.randint(0, 1000)}
            r = rng.random()
            if r < 0.4:
                pass  # "{i}": numeric bodies
            elif r < 0.7:
                n["template"] = f"s{k}-{{i}}"
            else:
                n["template"] = f"Rec {{i}} of s{k}"
            r = rng.random()
            if r < 0.35:
                n["key"] = "k{i}"
                keyed_sources.append((name, n))
            elif r < 0.5:
                n["key"] = rng.choice(["ka", "kb"])
            nodes[name] = n
        maybe_restart(rng, nodes[name])

    producers = list(nodes)  # nodes with a data output
    n_stages = rng.randint(0, 3 if small else 7)
    for k in range(n_stages):
        name = f"st{k}"
        n_in = 1 if rng.random() < 0.7 else 2
        ins = []
        for _ in range(n_in):
            p = rng.choice(producers)
            port = p + ".errors" if (rng.random() < 0.12
                                     and nodes[p]["type"] not in SOURCE_TYPES) else p
            if port not in ins:
                ins.append(port)
        t = rng.choices(["map", "filter", "batch", "chaos", "dedupe", "reduce"],
                        [30, 12, 12, 30, 10, 5])[0]
        n = {"type": t}
        if t == "map":
            n["fn"] = rng.choice(MAP_FNS)
            if rng.random() < 0.3:
                waiting_map(rng, g, n)
            else:
                workers_ordered(rng, n)
        elif t == "filter":
            r = rng.random()
            if r < 0.4:
                n["contains"] = rng.choice(["1", "7", "s0", "-", "Rec"])
            elif r < 0.7:
                n["regex"] = rng.choice(["[13579]$", "^s1", "0{2}", "e"])
            else:
                n["fn"] = "even"
            if rng.random() < 0.3:
                n["invert"] = True
            workers_ordered(rng, n)
        elif t == "batch":
            n["size"] = min(rng.choice([1, 3, 10, 50, 100, 500]), eff_window)
            if rng.random() < 0.4:
                n["timeout"] = pick_duration_ms(rng, 1, 50)
        elif t == "chaos":
            n["seed"] = rng.randint(0, 1000)
            if rng.random() < 0.5:
                n["p"] = rng.choice([0.01, 0.05, 0.2, 0.5])
            if rng.random() < 0.25 and keyed_sources:
                src, sn = rng.choice(keyed_sources)
                c = max(sn["count"], 1)
                n["keys"] = [f"k{sn['start'] + rng.randrange(c)}"
                             for _ in range(rng.randint(1, 3))]
            if rng.random() < 0.25:
                n["every"] = rng.choice([2, 7, 100])
            if rng.random() < 0.45:
                n["kill"] = rng.choice([0.002, 0.01, 0.03, 0.1])
            if rng.random() < 0.15:
                n["delay"] = (f"{rng.randint(1, 5)}ns" if rng.random() < 0.15
                              else pick_duration_ms(rng, 1, 3))
        elif t == "dedupe":
            n["by"] = rng.choice(["seq", "seq", "key"])
            if rng.random() < 0.15:
                n["window"] = rng.choice([10, 1000])
        elif t == "reduce":
            n["op"] = rng.choice(["count", "sum"])
            n["by"] = rng.choice(["key", "all"])
        n["inputs"] = ins
        maybe_restart(rng, n)
        nodes[name] = n
        producers.append(name)

    # A reduce recognises redelivered duplicates by (source, seq), so lint
    # rejects one that gets a source's records along two paths (a diamond):
    # such a reduce becomes an identity map, keeping the graph valid.
    for name, n in nodes.items():
        if n["type"] != "reduce":
            continue
        for src in nodes:
            if nodes[src]["type"] not in SOURCE_TYPES:
                continue
            paths = {src: 1}
            for other, m in nodes.items():  # insertion order is topological
                for i in m.get("inputs", []):
                    paths[other] = paths.get(other, 0) + paths.get(
                        i.split(".")[0], 0)
            if paths.get(name, 0) > 1:
                for k in ("op", "by"):
                    n.pop(k, None)
                n["type"], n["fn"] = "map", "identity"
                break

    # Sinks: every main output without a consumer gets one (sometimes a
    # shared one: fan-in); some errors outputs get a sink too.
    consumed = set()
    for n in nodes.values():
        for i in n.get("inputs", []):
            consumed.add(i)
    dangling = [p for p in producers if p not in consumed]
    # extra fan-out to sinks from consumed nodes
    for p in producers:
        if p in consumed and rng.random() < 0.15:
            dangling.append(p)
    for p in producers:
        if nodes[p]["type"] not in SOURCE_TYPES and rng.random() < 0.2:
            dangling.append(p + ".errors")
    rng.shuffle(dangling)
    k = 0
    while dangling:
        take = 1 if rng.random() < 0.75 or len(dangling) == 1 else 2
        ins, dangling = dangling[:take], dangling[take:]
        name = f"sink{k}"
        k += 1
        if rng.random() < 0.15:
            n = {"type": "null"}
            if rng.random() < 0.1:
                n["delay"] = "1ms"
        else:
            n = {"type": "file_sink", "path": f"out/{name}.txt",
                 "format": "jsonl" if rng.random() < 0.75 else "lines"}
        n["inputs"] = ins
        maybe_restart(rng, n)
        nodes[name] = n

    # Groups: a random partition of some nodes, maybe nested.
    names = list(nodes)
    n_groups = rng.choice([0, 0, 1, 1, 2, 3])
    free = names[:]
    rng.shuffle(free)
    for gi in range(n_groups):
        if not free:
            break
        size = rng.randint(1, max(1, min(4, len(free))))
        members, free = free[:size], free[size:]
        gr = {"nodes": sorted(members, key=names.index)}
        if rng.random() < 0.8:
            gsv = {"strategy": rng.choice(["one_for_one", "one_for_all",
                                           "rest_for_one"])}
            if rng.random() < 0.7:
                gsv["intensity"] = rng.choice([0, 3, 100, 500, 1000])
            if rng.random() < 0.5:
                gsv["period"] = rng.choice(["1s", "5s", "10s"])
            gsv["backoff"] = {"min": "1ms", "max": "5ms"}
            gr["supervision"] = gsv
        if gi > 0 and rng.random() < 0.5:
            gr["parent"] = f"g{rng.randrange(gi)}"
        g["groups"][f"g{gi}"] = gr
    return g


def avoid_known(g):
    """Steers a generated graph away from the known findings (see
    known_failures.txt), so a campaign finds new classes; applied after
    generation, so a seed is the same graph with the known parts removed."""
    g = copy.deepcopy(g)
    nodes = g["nodes"]
    rt = g["runtime"]
    for n in nodes.values():
        if n.get("restart") == "temporary":          # finding 5
            del n["restart"]
        if str(n.get("delay", "")).endswith("ns"):   # finding 1
            n["delay"] = "1ms"
    window = rt.get("window", 16384)
    bs = rt.get("batch_size", 256)
    for n in nodes.values():                         # finding 13
        if n["type"] == "batch":
            if window < 4 * bs:
                window = 4 * bs
                rt["window"] = window
            n["size"] = max(1, min(n["size"], (window - 2 * bs) // 2))
            # behind a filter or an errors output no size is safe: a timeout
            # flushes the partial group that pins the window
            n.setdefault("timeout", "5ms")
    kills = any(n.get("kill") for n in nodes.values())
    if kills and any(n["type"] == "reduce" for n in nodes.values()):
        for n in nodes.values():                     # finding 6
            n.pop("kill", None)
        kills = False
    if kills:
        # finding 14 (a node restarted after its producer finished never
        # ends) and new_at_most_once_sibling_restart (a restarted sibling
        # drops records uncounted): only the crashing node restarts
        g["supervision"]["strategy"] = "one_for_one"
        for gr in g["groups"].values():
            # and no escalation: a parent would restart the whole group
            gr["supervision"] = {"strategy": "one_for_one", "intensity": 100000,
                                 "backoff": {"min": "1ms", "max": "5ms"}}
    if kills:                                        # finding 15
        if g["supervision"].get("strategy") == "one_for_all":
            g["supervision"]["strategy"] = "one_for_one"
        # a group escalating to its parent restarts its sources too
        for gr in g["groups"].values():
            gr["nodes"] = [x for x in gr["nodes"] if nodes[x]["type"] not in SOURCE_TYPES]
        fix_groups(g)
    return g


def maybe_restart(rng, n):
    r = rng.random()
    if r < 0.05:
        n["restart"] = "temporary"
    elif r < 0.15:
        n["restart"] = "transient"
    elif r < 0.2:
        n["restart"] = "permanent"


def waiting_map(rng, g, n):
    """A map through services: a cache (memoising the same deterministic
    function: the model is unchanged), a worker pool and a fast rate
    limiter, shared by every waiting map of the graph."""
    res = g.setdefault("resources", {})
    slots = [s for s in ("cache", "pool", "rate_limit") if rng.random() < 0.5]
    if not slots:
        slots = [rng.choice(["cache", "pool", "rate_limit"])]
    for slot in slots:
        if slot == "cache" and "memo" not in res:
            res["memo"] = {"type": "cache",
                           "capacity": rng.choice([2, 50, 10000])}
            if rng.random() < 0.3:
                res["memo"]["shards"] = 2
        if slot == "pool" and "crew" not in res:
            res["crew"] = {"type": "worker_pool", "workers": rng.randint(1, 3),
                           "routing": rng.choice(["round_robin",
                                                  "least_loaded", "key_hash"]),
                           "queue_size": rng.choice([4, 64]),
                           "max_blocked": 100000}
        if slot == "rate_limit" and "pace" not in res:
            res["pace"] = {"type": "rate_limiter", "rate": "200k/s",
                           "burst": rng.choice([1, 100])}
            if rng.random() < 0.5:
                res["pace"]["max_in_flight"] = rng.choice([1, 8])
        n[slot] = {"cache": "memo", "pool": "crew", "rate_limit": "pace"}[slot]
    if rng.random() < 0.5:
        n["max_in_flight"] = rng.choice([1, 4, 64])
    if rng.random() < 0.3:
        n["ordered"] = False


def workers_ordered(rng, n):
    if rng.random() < 0.35:
        n["workers"] = rng.choice([2, 3, 4])
        if rng.random() < 0.4:
            n["ordered"] = False


# --------------------------------------------------------------------------
# The model: what each node must / may emit.
#
# A copy is (tuple, kind); tuple = (seq, key, body); kind is "M" (must
# arrive), "Y" (may arrive) or ("C", d, branch): must arrive if the choice d
# (a chaos `p` decision the model cannot predict) went to `branch`.
# "W" marks a wildcard (a reduce result the model cannot compute exactly).
# --------------------------------------------------------------------------

NUM_RE = re.compile(r"^[ \t\n\v\f\r]*[+-]?(\d+\.?\d*([eE][+-]?\d+)?|\.\d+([eE][+-]?\d+)?)$")
INT_RE = re.compile(r"^[ \t\n\v\f\r]*[+-]?\d+$")


def c_isspace(ch):
    return ch in " \t\n\v\f\r"


def fn_apply(fn, body):
    """("keep", body) | ("drop",) | ("fail",)"""
    if fn == "identity":
        return ("keep", body)
    if fn == "upper":
        return ("keep", "".join(c.upper() if "a" <= c <= "z" else c for c in body))
    if fn == "lower":
        return ("keep", "".join(c.lower() if "A" <= c <= "Z" else c for c in body))
    if fn == "sha256":
        return ("keep", hashlib.sha256(body.encode("utf-8", "surrogateescape")).hexdigest())
    if fn == "trim":
        b, e = 0, len(body)
        while b < e and c_isspace(body[b]):
            b += 1
        while e > b and c_isspace(body[e - 1]):
            e -= 1
        return ("keep", body[b:e])
    if fn == "square":
        if not INT_RE.match(body):
            return ("fail",)
        v = int(body)
        if abs(v) > 3037000499:
            return ("fail",)
        return ("keep", str(v * v))
    if fn == "even":
        if not INT_RE.match(body):
            return ("drop",)
        v = int(body)
        if abs(v) >= 2 ** 63:
            return ("unknown",)
        return ("keep", body) if v % 2 == 0 else ("drop",)
    raise ValueError(fn)


def filter_keep(n, body):
    if "contains" in n:
        hit = n["contains"] in body
    elif "regex" in n:
        hit = re.search(n["regex"], body) is not None
    else:
        r = fn_apply("even", body)
        if r[0] == "unknown":
            return None
        hit = r[0] == "keep"
    return hit != bool(n.get("invert", False))


def topo_order(g):
    order, seen = [], set()

    def visit(x):
        if x in seen:
            return
        seen.add(x)
        for ref in g["nodes"][x].get("inputs", []):
            visit(ref.partition(".")[0])
        order.append(x)

    for x in g["nodes"]:
        visit(x)
    return order


class Model:
    def __init__(self, g):
        self.g = g
        self.next_d = 0
        self.out = {}   # node -> list of copies (main output)
        self.err = {}   # node -> list of copies (errors output)
        self.sinks = {}  # sink -> {"copies": [...], "wild": bool}
        self.wild = set()  # nodes whose output contains wildcards
        # d -> branch -> list of (sink, tuple); branches seen
        self.obl = collections.defaultdict(lambda: collections.defaultdict(list))
        self.d_branches = {}
        max_attempts = g.get("runtime", {}).get("max_attempts", 3)
        self.max_attempts = max_attempts
        for name in topo_order(g):
            self.eval(name, g["nodes"][name])

    def inputs(self, n):
        copies, wild = [], False
        for ref in n.get("inputs", []):
            src, _, port = ref.partition(".")
            copies.extend(self.err[src] if port == "errors" else self.out[src])
            wild = wild or src in self.wild
        return copies, wild

    def new_d(self):
        self.next_d += 1
        self.d_branches[self.next_d] = ("out", "err")
        return self.next_d

    def eval(self, name, n):
        t = n["type"]
        out, err = [], []
        ins, wild = self.inputs(n)
        if t == "generate":
            start, count = n.get("start", 0), n.get("count", 1000)
            for i in range(start, start + count):
                body = n.get("template", "{i}").replace("{i}", str(i))
                key = n.get("key", "").replace("{i}", str(i))
                out.append(((i, key, body), "M"))
        elif t == "file_src":
            for i, line in enumerate(self.g["files"][n["path"]]):
                out.append(((i, "", line), "M"))
        elif t == "map":
            for (seq, key, body), kind in ins:
                r = fn_apply(n["fn"], body)
                if r[0] == "keep":
                    out.append(((seq, key, r[1]), kind))
                elif r[0] == "fail":
                    err.append(((seq, key, body), kind))
                elif r[0] == "unknown":
                    out.append(((seq, key, body), "Y"))
        elif t == "filter":
            for (seq, key, body), kind in ins:
                k = filter_keep(n, body)
                if k is None:
                    out.append(((seq, key, body), "Y"))
                elif k:
                    out.append(((seq, key, body), kind))
        elif t == "batch":
            out = list(ins)
        elif t == "chaos":
            keys = set(n.get("keys", []))
            every = n.get("every", 0)
            p = n.get("p", 0)
            for tup, kind in ins:
                seq, key, body = tup
                if key in keys:
                    err.append((tup, kind))
                    continue
                choice = p > 0 or (every > 0 and self.max_attempts == 1
                                   and seq % every == every - 1)
                if not choice:
                    out.append((tup, kind))
                elif kind == "M":
                    d = self.new_d()
                    out.append((tup, ("C", d, "out")))
                    err.append((tup, ("C", d, "err")))
                else:
                    out.append((tup, "Y"))
                    err.append((tup, "Y"))
        elif t == "dedupe":
            by_key = n.get("by", "seq") == "key"
            groups = collections.OrderedDict()
            for tup, kind in ins:
                groups.setdefault(tup[1] if by_key else tup[0], []).append((tup, kind))
            small_window = n.get("window", 1000000) < len(ins)
            for ident, cs in groups.items():
                tuples = {c[0] for c in cs}
                if small_window:
                    # identities fall out of the window: a repeat may pass
                    out.extend((tup, "Y") for tup, _ in cs[1:])
                if len(tuples) == 1:
                    kinds = [c[1] for c in cs]
                    if "M" in kinds:
                        kind = "M"
                    elif len(kinds) == 1:
                        kind = kinds[0]
                    else:
                        kind = "Y"
                    out.append((cs[0][0], kind))
                else:
                    for tup in tuples:
                        out.append((tup, "Y"))
        elif t == "reduce":
            exact = not wild and all(k == "M" for _, k in ins)
            by_key = n.get("by", "key") == "key"
            totals = {}
            for (seq, key, body), kind in ins:
                kk = key if by_key else ""
                totals.setdefault(kk, 0)  # the key exists even if its sum fails
                if n.get("op", "count") == "count":
                    totals[kk] = totals.get(kk, 0) + 1
                    continue
                if NUM_RE.match(body):
                    v = float(body) if not INT_RE.match(body) else int(body)
                    if isinstance(v, float) and v != int(v):
                        exact = False
                    totals[kk] = totals.get(kk, 0) + int(v)
                elif body.strip().lower().startswith(("inf", "nan", "0x", "+", "-")) \
                        or "0x" in body.lower():
                    exact = False  # strtod forms the model does not follow
                    totals.setdefault(kk, 0)
                else:
                    err.append(((seq, key, body), kind))
            if any(abs(v) >= 2 ** 53 for v in totals.values()):
                exact = False
            if exact:
                for i, kk in enumerate(sorted(k for k, v in totals.items())):
                    v = totals[kk]
                    out.append(((i, kk, str(v)), "M"))
            else:
                self.wild.add(name)
        elif t in SINK_TYPES:
            if t == "file_sink":
                self.sinks[name] = {"copies": ins, "wild": wild}
                for tup, kind in ins:
                    if isinstance(kind, tuple):
                        self.obl[kind[1]][kind[2]].append((name, tup))
            else:
                for tup, kind in ins:
                    if isinstance(kind, tuple):
                        self.obl[kind[1]][kind[2]]  # unobservable branch
        if wild and t not in SINK_TYPES:
            self.wild.add(name)
        self.out[name] = out
        self.err[name] = err

    def paths_to_sinks(self):
        """Max number of sink copies one record can become (for at_most_once)."""
        best = max((len(s["copies"]) for s in self.sinks.values()), default=0)
        amp = {}
        for name in reversed(topo_order(self.g)):
            n = self.g["nodes"][name]
            if n["type"] in SINK_TYPES:
                amp[name] = 1
            else:
                amp[name] = 0
        for name in reversed(topo_order(self.g)):
            for ref in self.g["nodes"][name].get("inputs", []):
                src = ref.partition(".")[0]
                amp[src] = amp.get(src, 0) + amp[name]
        return max(list(amp.values()) + [1])


# --------------------------------------------------------------------------
# Running and checking
# --------------------------------------------------------------------------

ID_FIELDS_L = ("in", "created")
ID_FIELDS_R = ("out", "filtered", "dead_lettered", "in_flight", "retried", "lost")


class Result:
    def __init__(self):
        self.failures = []  # (class, detail)
        self.rc = None
        self.report = None
        self.seconds = 0.0

    def fail(self, cls, detail):
        self.failures.append((cls, detail))

    @property
    def ok(self):
        return not self.failures

    def reason(self):
        if self.ok:
            return "ok"
        cls, detail = self.failures[0]
        more = f" (+{len(self.failures) - 1} more)" if len(self.failures) > 1 else ""
        return f"{cls}: {detail}{more}"


def write_case(g, d):
    os.makedirs(d, exist_ok=True)
    for path, lines in g.get("files", {}).items():
        full = os.path.join(d, path)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write("".join(l + "\n" for l in lines))
    with open(os.path.join(d, "graph.yaml"), "w") as f:
        f.write(g.get("_yaml") or to_yaml(g))  # a regression runs verbatim
    with open(os.path.join(d, "graph.json"), "w") as f:
        json.dump(g, f, indent=1)


def read_sink(path, fmt):
    if not os.path.exists(path):
        return [], None
    with open(path, "rb") as f:
        data = f.read()
    text = data.decode("utf-8", "surrogateescape")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    elif lines:
        return None, "last line not terminated (torn write)"
    if fmt == "lines":
        return [(None, None, l) for l in lines], None
    out = []
    for l in lines:
        try:
            o = json.loads(l)
            out.append((o["seq"], o["key"], o["body"]))
        except Exception:
            return None, f"invalid jsonl line {l[:80]!r}"
    return out, None


def run_case(binary, g, d, timeout):
    """Writes the case under d, runs it, returns a Result."""
    res = Result()
    if os.path.exists(d):
        shutil.rmtree(d)
    write_case(g, d)
    report_path = os.path.join(d, "report.json")
    t0 = time.monotonic()
    env = dict(os.environ)
    try:
        p = subprocess.Popen([binary, "run", "graph.yaml", "--report", "report.json",
                              "--no-progress"], cwd=d, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, env=env, start_new_session=True)
        try:
            _, stderr = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            _, stderr = p.communicate()
            res.seconds = time.monotonic() - t0
            res.fail("hang", f"no exit within {timeout}s")
            with open(os.path.join(d, "stderr.txt"), "wb") as f:
                f.write(stderr[-20000:])
            return res
    except OSError as e:
        res.fail("harness", str(e))
        return res
    res.seconds = time.monotonic() - t0
    res.rc = p.returncode
    with open(os.path.join(d, "stderr.txt"), "wb") as f:
        f.write(stderr[-20000:])
    err_text = stderr.decode("utf-8", "replace")
    if res.rc == 78:
        res.fail("config rejected", err_text.strip().splitlines()[0] if err_text.strip() else "exit 78")
        return res
    if res.rc < 0:
        res.fail("crash", f"killed by signal {-res.rc}; {tail(err_text)}")
        return res
    if "AddressSanitizer" in err_text or "runtime error:" in err_text:
        res.fail("sanitizer", tail(err_text))
    try:
        with open(report_path) as f:
            rep = json.load(f)
    except Exception as e:
        res.fail("no report", f"exit {res.rc}, {e.__class__.__name__}; {tail(err_text)}")
        return res
    res.report = rep
    try:
        check(g, d, rep, res, err_text)
    except Exception as e:  # a bug of the fuzzer, not of troupe
        import traceback
        res.fail("harness", f"{e.__class__.__name__}: {e} at "
                 + traceback.format_exc().strip().splitlines()[-3].strip())
    return res


def tail(text, n=200):
    text = text.strip().replace("\n", " | ")
    return text[-n:]


def check(g, d, rep, res, err_text):
    status = rep.get("status")
    expected_rc = {"completed": 0, "failed": 1, "timed_out": 130, "interrupted": 130}
    if status not in expected_rc:
        res.fail("bad status", f"status {status!r}, exit {res.rc}")
        return
    if res.rc != expected_rc[status]:
        res.fail("exit code", f"status {status} but exit {res.rc}")
    if status in ("timed_out", "interrupted"):
        res.fail("not completed", f"status {status} without a signal")
    nodes = rep.get("nodes", {})
    all_balanced = True
    for name in g["nodes"]:
        m = nodes.get(name)
        if m is None:
            res.fail("report", f"node {name} missing from the report")
            continue
        lhs = sum(m.get(k, 0) for k in ID_FIELDS_L)
        rhs = sum(m.get(k, 0) for k in ID_FIELDS_R)
        if lhs != rhs:
            all_balanced = False
            res.fail("identity", f"{name}: in+created={lhs} != {rhs} "
                     + " ".join(f"{k}={m.get(k)}" for k in ID_FIELDS_L + ID_FIELDS_R))
        elif m.get("balanced") is False:
            res.fail("balanced flag", f"{name}: identity holds but balanced=false")
        if status == "completed" and m.get("in_flight", 0) != 0:
            res.fail("in_flight after completion",
                     f"{name}: in_flight={m['in_flight']} "
                     f"(report balanced={rep.get('balanced')})")
    if not all_balanced and rep.get("balanced") is True:
        res.fail("balanced flag", "report says balanced but a node is not")
    restarts = sum(m.get("restarts", 0) for m in nodes.values())
    lost = sum(m.get("lost", 0) for m in nodes.values())
    kills = any(n["type"] == "chaos" and n.get("kill", 0) > 0 for n in g["nodes"].values())
    delivery = g.get("runtime", {}).get("delivery", "at_least_once")
    if status == "failed":
        if not kills:
            res.fail("failed without a fault", f"message {rep.get('message')!r}")
        return
    if status != "completed":
        return
    # edges: without restarts, a consumer takes in exactly what its
    # producers passed on (main output: out; errors output: dead_lettered).
    # Under at_most_once also with restarts: a record is never sent twice,
    # and what a consumer never received is counted there (in and lost).
    if restarts == 0 or delivery == "at_most_once":
        for name, n in g["nodes"].items():
            if not n.get("inputs"):
                continue
            want = 0
            for ref in n["inputs"]:
                src, _, port = ref.partition(".")
                want += nodes.get(src, {}).get("dead_lettered" if port else "out", 0)
            got = nodes.get(name, {}).get("in", 0)
            if got != want:
                res.fail("edge unaccounted",
                         f"{name}: in={got} but its inputs passed on {want} "
                         f"({', '.join(n['inputs'])}); {delivery}, "
                         f"restarts={restarts}, report lost={lost}")
    # sources made what they should
    for name, n in g["nodes"].items():
        m = nodes.get(name, {})
        if n["type"] == "generate":
            count = n.get("count", 1000)
            if m.get("created", 0) < count:
                res.fail("source short", f"{name}: created {m.get('created')} < count {count}")
            elif m.get("restarts", 0) == 0 and m.get("created") != count:
                res.fail("source long", f"{name}: created {m.get('created')} != count {count} without restarts")
    model = Model(g)
    total_missing = 0
    amp = model.paths_to_sinks()
    sink_actual = {}
    for name, s in model.sinks.items():
        n = g["nodes"][name]
        fmt = n.get("format", "jsonl")
        actual, err = read_sink(os.path.join(d, n["path"]), fmt)
        if err:
            res.fail("sink format", f"{name}: {err}")
            continue
        m = nodes.get(name, {})
        if m.get("restarts", 0) == 0 and len(actual) != m.get("out"):
            res.fail("sink count", f"{name}: file has {len(actual)} lines, report out={m.get('out')}")

        def view(t, fmt=fmt):
            return t if fmt == "jsonl" else (None, None, t[2])
        act = collections.Counter(actual)
        sink_actual[name] = (act, view)
        must = collections.Counter(view(t) for t, k in s["copies"] if k == "M")
        may = collections.Counter(view(t) for t, k in s["copies"])
        missing = sum(max(0, c - act[t]) for t, c in must.items())
        total_missing += missing
        if missing and delivery == "at_least_once":
            ex = next(t for t, c in must.items() if act[t] < c)
            res.fail("missing records (silent)" if missing > lost * amp
                     else "missing records (counted lost, exit 0)",
                     f"{name}: {missing} of {sum(must.values())} expected records missing "
                     f"(e.g. seq={ex[0]} body={ex[2]!r}); report lost={lost}, restarts={restarts}")
        if not s["wild"]:
            extra = [t for t in act if t not in may]
            if extra:
                res.fail("unexpected records", f"{name}: {len(extra)} records the model cannot produce, "
                         f"e.g. {extra[0]!r}")
            dup_ok = delivery == "at_least_once" and restarts > 0
            # a dedupe straight before the sink, neither restarted, window large
            ins = n.get("inputs", [])
            if len(ins) == 1 and "." not in ins[0] and g["nodes"][ins[0]]["type"] == "dedupe":
                dd = g["nodes"][ins[0]]
                if (nodes.get(ins[0], {}).get("restarts", 0) == 0 and m.get("restarts", 0) == 0
                        and dd.get("window", 1000000) >= 1000000):
                    dup_ok = False
            if not dup_ok:
                over = [(t, act[t], may[t]) for t in act if t in may and act[t] > may[t]]
                if over:
                    t, a, mx = over[0]
                    res.fail("duplicates", f"{name}: {len(over)} records more often than possible "
                             f"(e.g. seq={t[0]} body={t[2]!r} {a}x, at most {mx}x); restarts={restarts}")
        elif len(actual) and not may and not any(True for _ in s["copies"]):
            pass
    if delivery == "at_most_once" and total_missing > lost * amp:
        res.fail("missing records beyond lost",
                 f"{total_missing} expected sink records missing, report lost={lost} (x{amp} paths)")
    # choices: one branch must be fully present (only when nothing was lost)
    if lost == 0:
        for dd, branches in model.obl.items():
            ok = False
            for b in ("out", "err"):
                obls = branches.get(b, [])
                need = collections.Counter()
                for sink, t in obls:
                    if sink in sink_actual:
                        need[(sink, sink_actual[sink][1](t))] += 1
                good = True
                for (sink, t), c in need.items():
                    act, _ = sink_actual[sink]
                    mustc = sum(1 for tt, k in model.sinks[sink]["copies"]
                                if k == "M" and sink_actual[sink][1](tt) == t)
                    if act[t] < mustc + c:
                        good = False
                        break
                if good:
                    ok = True
                    break
            if not ok:
                ex = next(iter(branches.get("out") or branches.get("err")))
                res.fail("missing records (silent)" if delivery == "at_least_once" else "missing records beyond lost",
                         f"a record neither in the output nor the errors: seq={ex[1][0]} "
                         f"body={ex[1][2]!r} (sink {ex[0]})")
                break


# --------------------------------------------------------------------------
# Shrinking
# --------------------------------------------------------------------------

def remove_node(g, name):
    g = copy.deepcopy(g)
    todo = [name]
    while todo:
        x = todo.pop()
        if x not in g["nodes"]:
            continue
        del g["nodes"][x]
        for n2, n in list(g["nodes"].items()):
            if "inputs" in n:
                n["inputs"] = [i for i in n["inputs"] if i.partition(".")[0] != x]
                if not n["inputs"]:
                    todo.append(n2)
    # groups
    for gn, gr in list(g["groups"].items()):
        gr["nodes"] = [x for x in gr["nodes"] if x in g["nodes"]]
    fix_groups(g)
    # files
    used = {n.get("path") for n in g["nodes"].values() if n["type"] == "file_src"}
    g["files"] = {p: v for p, v in g["files"].items() if p in used}
    return g


def fix_groups(g):
    changed = True
    while changed:
        changed = False
        for gn, gr in list(g["groups"].items()):
            if not gr["nodes"]:
                del g["groups"][gn]
                for gr2 in g["groups"].values():
                    if gr2.get("parent") == gn:
                        if gr.get("parent"):
                            gr2["parent"] = gr["parent"]
                        else:
                            del gr2["parent"]
                changed = True


def shrink_candidates(g):
    g = {k: v for k, v in g.items() if k != "_yaml"}
    # big removals first
    for name in reversed(list(g["nodes"])):
        yield f"drop node {name}", remove_node(g, name)
    for gn in list(g["groups"]):
        h = copy.deepcopy(g)
        del h["groups"][gn]
        for gr2 in h["groups"].values():
            if gr2.get("parent") == gn:
                del gr2["parent"]
        yield f"drop group {gn}", h
    for gn, gr in g["groups"].items():
        for k in list(gr.get("supervision", {})):
            h = copy.deepcopy(g)
            del h["groups"][gn]["supervision"][k]
            if not h["groups"][gn]["supervision"]:
                del h["groups"][gn]["supervision"]
            yield f"drop {gn}.supervision.{k}", h
        if "parent" in gr:
            h = copy.deepcopy(g)
            del h["groups"][gn]["parent"]
            yield f"drop {gn}.parent", h
    for sect in ("runtime", "supervision"):
        for k in list(g.get(sect, {})):
            h = copy.deepcopy(g)
            del h[sect][k]
            yield f"drop {sect}.{k}", h
    for name, n in g["nodes"].items():
        for k in list(n):
            if k in ("type", "inputs", "path", "fn", "format", "count", "start"):
                continue
            h = copy.deepcopy(g)
            del h["nodes"][name][k]
            yield f"drop {name}.{k}", h
        if len(n.get("inputs", [])) > 1:
            for i in n["inputs"]:
                h = copy.deepcopy(g)
                h["nodes"][name]["inputs"] = [x for x in n["inputs"] if x != i]
                yield f"drop input {i} of {name}", h
        if n["type"] == "generate" and n.get("count", 1000) > 1:
            h = copy.deepcopy(g)
            h["nodes"][name]["count"] = n.get("count", 1000) // 2
            yield f"halve {name}.count", h
        if n["type"] == "file_src" and len(g["files"][n["path"]]) > 1:
            h = copy.deepcopy(g)
            h["files"][n["path"]] = h["files"][n["path"]][: len(g["files"][n["path"]]) // 2]
            yield f"halve {name} lines", h
        if n["type"] == "file_sink" and n.get("format") == "lines":
            pass


def failure_class(res):
    return res.failures[0][0] if res.failures else None


def shrink(binary, g, cls, workdir, timeout, budget_s, log=None):
    """Greedy: apply any candidate that keeps the failure class; repeat."""
    deadline = time.monotonic() + budget_s
    best = g
    steps = 0
    progress = True
    while progress and time.monotonic() < deadline:
        progress = False
        for what, cand in shrink_candidates(best):
            if time.monotonic() >= deadline:
                break
            if not any(n["type"] in SINK_TYPES for n in cand["nodes"].values()) and cls != "hang":
                continue
            r = run_case(binary, cand, os.path.join(workdir, "shrink"), timeout)
            if failure_class(r) == cls:
                best = cand
                steps += 1
                progress = True
                if log:
                    log(f"  shrink: {what} -> {len(best['nodes'])} nodes")
                break
    return best, steps


# --------------------------------------------------------------------------
# Regressions (known findings as YAML) and the expected-failure list
# --------------------------------------------------------------------------

def load_known_failures(path):
    names = {}
    if not os.path.exists(path):
        return names
    for line in open(path):
        line = line.split("#", 1)
        body = line[0].strip()
        if body:
            names[body.split()[0]] = (line[1].strip() if len(line) > 1 else "")
    return names


def regression_cases(dirpath):
    """Each regression is NAME.yaml, a graph in to_yaml's form (sinks write
    under out/, relative to the case folder), checked like a fuzzed graph."""
    out = []
    for f in sorted(os.listdir(dirpath)):
        if f.endswith(".yaml"):
            with open(os.path.join(dirpath, f)) as fh:
                text = fh.read()
                g = from_yaml(text, f[:-5])
                g["_yaml"] = text
                out.append((f[:-5], g))
    return out


# --------------------------------------------------------------------------
# Driver
# --------------------------------------------------------------------------

# CI: (seed, small) pairs, the whole generator (the known findings run as
# regressions instead). Seeds that exposed a new class became regressions.
CI_SEEDS = [(s, True) for s in range(300)] + [(s, False) for s in range(200)]
CI_SEEDS_SANITIZED = [(s, True) for s in range(60)] + [(s, False) for s in range(12)]


def run_seed(args, seed, workroot):
    small = args.small
    if isinstance(seed, tuple):
        seed, small = seed
    g = gen_graph(seed, small=small)
    if args.avoid_known:
        g = avoid_known(g)
    label = f"{seed}{' --small' if small else ''}"
    d = os.path.join(workroot, f"seed{seed}{'s' if small else ''}")
    res = run_case(args.binary, g, d, args.timeout)
    return label, g, d, res


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", required=True)
    ap.add_argument("--seeds", help="A:B, a range of seeds")
    ap.add_argument("--seed", type=int, help="one seed")
    ap.add_argument("--yaml", help="check one graph saved as graph.json (its folder)")
    ap.add_argument("--ci", action="store_true", help="fixed seeds + regressions")
    ap.add_argument("--regressions", action="store_true", help="only the regressions")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--timeout", type=float, default=30.0)
    ap.add_argument("--reg-timeout", type=float, default=None,
                    help="timeout of a regression run (several are hangs today)")
    ap.add_argument("--out", default="fuzz-failures", help="where failing cases are kept")
    ap.add_argument("--keep", action="store_true", help="keep the case folder (printed)")
    ap.add_argument("--shrink", action="store_true", help="shrink failing seeds")
    ap.add_argument("--shrink-budget", type=float, default=120.0)
    ap.add_argument("--small", action="store_true", help="smaller graphs")
    ap.add_argument("--avoid-known", action="store_true",
                    help="steer graphs away from the known findings (new classes only)")
    ap.add_argument("--print", action="store_true", help="print the YAML of --seed and exit")
    args = ap.parse_args()
    args.binary = os.path.abspath(args.binary)
    sanitized = os.environ.get("TROUPE_SANITIZED") == "1"
    if args.reg_timeout is None:  # a fixed regression ends in well under 1 s
        args.reg_timeout = 12.0 if sanitized else 5.0

    if args.print and args.seed is not None:
        g = gen_graph(args.seed, small=args.small)
        sys.stdout.write(to_yaml(avoid_known(g) if args.avoid_known else g))
        return 0

    workroot = tempfile.mkdtemp(prefix="troupe-fuzz-")
    outdir = os.path.abspath(args.out)
    failed = 0
    t_start = time.monotonic()

    def keep(name, g, d, res, shrunk=None):
        dest = os.path.join(outdir, name)
        if os.path.exists(dest):
            shutil.rmtree(dest)
        shutil.copytree(d, dest)
        with open(os.path.join(dest, "reason.txt"), "w") as f:
            for cls, detail in res.failures:
                f.write(f"{cls}: {detail}\n")
        if shrunk is not None:
            sd = os.path.join(dest, "shrunk")
            write_case(shrunk, sd)
        return dest

    if args.seed is not None or args.yaml:
        if args.yaml:
            p = args.yaml
            if os.path.isdir(p):
                p = os.path.join(p, "graph.json")
            with open(p) as f:
                g = json.load(f) if p.endswith(".json") else from_yaml(f.read())
            name = (os.path.basename(os.path.dirname(os.path.abspath(p)))
                    if p.endswith(".json") else os.path.basename(p)[:-5])
            if not p.endswith(".json"):
                with open(p) as f:
                    g["_yaml"] = f.read()
        else:
            g = gen_graph(args.seed, small=args.small)
            if args.avoid_known:
                g = avoid_known(g)
            name = f"seed{args.seed}"
        d = os.path.join(workroot, name)
        res = run_case(args.binary, g, d, args.timeout)
        print(f"{name}: {res.reason()}  ({res.seconds:.2f}s, exit {res.rc})")
        for cls, detail in res.failures[1:]:
            print(f"    {cls}: {detail}")
        if args.keep or not res.ok:
            dest = keep(name, g, d, res)
            print(f"    kept in {dest}  (cd there; troupe run graph.yaml --report report.json)")
        if not res.ok and args.shrink:
            small, steps = shrink(args.binary, g, failure_class(res), workroot,
                                  args.timeout, args.shrink_budget, log=print)
            dest = keep(name, g, d, res, shrunk=small)
            print(f"    shrunk ({steps} steps) to {dest}/shrunk/graph.yaml:")
            print(to_yaml(small))
        shutil.rmtree(workroot, ignore_errors=True)
        return 0 if res.ok else 1

    from concurrent.futures import ThreadPoolExecutor
    jobs = max(1, args.jobs)
    if args.ci or args.regressions:
        regdir = os.path.join(HERE, "regressions")
        known = load_known_failures(os.path.join(HERE, "known_failures.txt"))
        regs = regression_cases(regdir)

        def run_reg(item):
            name, g = item
            d = os.path.join(workroot, name)
            for _ in range(g.get("repeat", 1)):
                res = run_case(args.binary, g, d, args.reg_timeout)
                if ("rejected" in g.get("accept", []) and res.failures
                        and all(c == "config rejected" for c, _ in res.failures)):
                    res.failures = []  # lint refusing the graph is a fix too
                if not res.ok:
                    break
            return name, g, d, res

        with ThreadPoolExecutor(max_workers=jobs) as ex:
            for name, g, d, res in ex.map(run_reg, regs):
                if name in known:
                    if res.ok and sanitized:
                        # several known findings are races: the sanitized
                        # build's timing may dodge them; the plain build decides
                        print(f"xpass {name}: passes in the sanitized build "
                              f"(timing); the plain build decides whether it is fixed",
                              flush=True)
                    elif res.ok:
                        print(f"FAIL {name}: fixed: remove from known_failures "
                              f"({known[name]})", flush=True)
                        failed += 1
                    else:
                        print(f"xfail {name}: {res.reason()}  [{known[name]}]", flush=True)
                elif res.ok:
                    print(f"ok {name} ({res.seconds:.2f}s)", flush=True)
                else:
                    failed += 1
                    dest = keep(name, g, d, res)
                    print(f"FAIL {name}: {res.reason()}  -> {dest}", flush=True)
        names = {n for n, _ in regs}
        for k in known:
            if k not in names:
                print(f"FAIL known_failures.txt names {k}, which is not in regressions/")
                failed += 1
    seeds = []
    if args.ci:
        seeds = CI_SEEDS_SANITIZED if sanitized else CI_SEEDS
    elif args.seeds:
        a, b = args.seeds.split(":")
        seeds = list(range(int(a), int(b)))

    if seeds:
        classes = collections.Counter()
        with ThreadPoolExecutor(max_workers=jobs) as ex:
            for seed, g, d, res in ex.map(lambda s: run_seed(args, s, workroot), seeds):
                if res.ok:
                    shutil.rmtree(d, ignore_errors=True)
                    continue
                failed += 1
                classes[failure_class(res)] += 1
                shrunk = None
                if args.shrink:
                    shrunk, _ = shrink(args.binary, g, failure_class(res),
                                       os.path.join(workroot, "sh" + os.path.basename(d)),
                                       args.timeout, args.shrink_budget)
                dest = keep(os.path.basename(d), g, d, res, shrunk)
                print(f"FAIL seed {seed}: {res.reason()}  -> {dest}", flush=True)
                shutil.rmtree(d, ignore_errors=True)
        flags = " --small" * (args.small and not args.ci) + " --avoid-known" * args.avoid_known
        print(f"{len(seeds)} seeds, {sum(classes.values())} failing "
              f"({', '.join(f'{c}: {n}' for c, n in classes.most_common()) or 'none'}), "
              f"{time.monotonic() - t_start:.1f}s; reproduce one with --seed N{flags} --keep")
    shutil.rmtree(workroot, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
