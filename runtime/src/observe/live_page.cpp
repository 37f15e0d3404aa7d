#include "live_page.hpp"
#include "text.hpp"

namespace troupe::observe {

namespace {

// The page's parts. The DOM is a contract with the browser test
// (tests/browser/live_view.mjs) and the lead's README: node figures in
// [data-node=NAME] [data-field=...] (the table rows; the picture's badges
// and #detail use other attributes so a query finds the row), totals in
// #totals [data-field=...], the status in #status, a node's detail in
// #detail (data-node=NAME), the dead letters in #dead-letters li.
const char* head_part = R"PAGE(<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>troupe live: )PAGE";

const char* style_part = R"PAGE(</title>
<style>
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:0;color:#222;background:#f6f6f6}
header{display:flex;gap:1em;align-items:center;padding:.6em 1.2em;background:#263238;color:#fff}
header h1{font-size:1.15em;margin:0;font-weight:600}
#status{padding:.1em .7em;border-radius:1em;font-weight:600;background:#607d8b}
#status.running{background:#1565c0}#status.completed{background:#2e7d32}
#status.failed{background:#c62828}#status.interrupted,#status.timed_out{background:#ef6c00}
#conn,#wall{color:#b0bec5;font-size:.9em}
main{padding:1em 1.2em;display:grid;grid-template-columns:minmax(0,3fr) minmax(16em,1fr);gap:1em}
section{background:#fff;border:1px solid #ddd;border-radius:4px;padding:.7em}
h2{font-size:1em;margin:0 0 .5em}
#totals{grid-column:1 / span 2;display:flex;gap:2em;flex-wrap:wrap}
#totals div{display:flex;flex-direction:column}
#totals [data-field]{font-size:1.5em;font-weight:600;font-variant-numeric:tabular-nums}
#totals label{color:#666;font-size:.85em}
#picture{overflow:auto;min-height:8em}
#picture svg{max-width:100%;height:auto}
#picture g.node{cursor:pointer}
#picture g.node.selected > polygon,#picture g.node.selected > path,#picture g.node.selected > ellipse{stroke-width:3px;stroke:#1565c0}
#picture g.node.active > polygon,#picture g.node.active > path{fill:#c8efc8}
#picture g.node.restarted > polygon,#picture g.node.restarted > path{fill:#ffe0b2}
#picture g.node.failing > polygon,#picture g.node.failing > path{fill:#ffcdd2}
#picture text.badge{font:10px Helvetica,Arial,sans-serif;fill:#1b5e20}
#picture text.badge.bad{fill:#b71c1c}
#detail .none{color:#777}
#detail table{width:100%}
#nodes-section{grid-column:1 / span 2}
table{border-collapse:collapse}
th,td{border-bottom:1px solid #eee;padding:.25em .6em;text-align:right;font-variant-numeric:tabular-nums}
th{background:#fafafa}
td.name,th.name{text-align:left}
#nodes tbody tr{cursor:pointer}
#nodes tbody tr:hover{background:#f0f7ff}
#nodes tbody tr.selected{background:#e3f2fd}
#nodes tbody tr.bad td[data-field="errors"],#nodes tbody tr.bad td[data-field="dead_lettered"]{color:#c62828;font-weight:600}
#dl-section{grid-column:1 / span 2}
#dead-letters{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;max-height:16em;overflow:auto;margin:0;padding-left:1.2em}
#dead-letters li.crash{color:#b71c1c}
</style></head><body>
<header><h1>troupe live: <span id="graph-name">)PAGE";

const char* body_part = R"PAGE(</span></h1>
<span id="status" class="connecting">connecting</span>
<span id="wall"></span><span id="conn"></span></header>
<main>
<section id="totals">
<div><span data-field="source_records">0</span><label>source records</label></div>
<div><span data-field="sink_records">0</span><label>sink records</label></div>
<div><span data-field="in_flight">0</span><label>in flight</label></div>
<div><span data-field="dead_lettered">0</span><label>dead lettered</label></div>
<div><span data-field="restarts">0</span><label>restarts</label></div>
<div><span data-field="redelivered">0</span><label>redelivered</label></div>
<div><span data-field="lost">0</span><label>lost</label></div>
</section>
<section><h2>Graph</h2><div id="picture">loading the picture...</div></section>
<section><h2>Node</h2><div id="detail"><p class="none">Click a node (in the picture or the table) for its figures.</p></div></section>
<section id="nodes-section"><h2>Nodes</h2>
<table id="nodes"><thead><tr><th class="name">node</th><th class="name">kind</th>
<th>in</th><th>out</th><th>records/s</th><th>in flight</th><th>dead lettered</th>
<th>errors</th><th>restarts</th><th>p50</th><th>p99</th></tr></thead><tbody></tbody></table>
</section>
<section id="dl-section"><h2>Dead letters and crashes (last reasons, newest first)</h2>
<ul id="dead-letters"></ul></section>
</main>
<script>
"use strict";
(function () {
  const $ = (sel, root) => (root || document).querySelector(sel);
  const rowFields = ["in", "out", "rate", "in_flight", "dead_lettered", "errors", "restarts"];
  const detailFields = ["in", "created", "out", "filtered", "dead_lettered", "errors",
    "retried", "lost", "redelivered", "restarts", "in_flight", "rate"];
  const totalFields = ["source_records", "sink_records", "in_flight", "dead_lettered",
    "restarts", "redelivered", "lost"];
  let last = null;        // the newest snapshot
  let selected = null;    // the node whose detail is shown
  let finished = false;   // the `end` event (or a final snapshot) arrived
  let source = null;
  let pollTimer = null;
  let received = 0;

  function fmtNs(ns) {
    ns = Number(ns) || 0;
    if (ns < 1e3) return ns + " ns";
    if (ns < 1e6) return (ns / 1e3).toFixed(1) + " us";
    if (ns < 1e9) return (ns / 1e6).toFixed(1) + " ms";
    return (ns / 1e9).toFixed(2) + " s";
  }
  function fmt(field, v) {
    if (field === "rate") return String(Math.round(Number(v) || 0));
    return String(v === undefined || v === null ? 0 : v);
  }
  function setText(el, text) { if (el && el.textContent !== text) el.textContent = text; }
  function svgGroup(name) { return document.getElementById("node-" + name); }

  function rowFor(node) {
    const tbody = $("#nodes tbody");
    let tr = tbody.querySelector('tr[data-node="' + CSS.escape(node.name) + '"]');
    if (tr) return tr;
    tr = document.createElement("tr");
    tr.dataset.node = node.name;
    const cell = (cls, field, text) => {
      const td = document.createElement("td");
      if (cls) td.className = cls;
      if (field) td.dataset.field = field;
      td.textContent = text;
      tr.appendChild(td);
    };
    cell("name", null, node.name);
    cell("name", null, node.kind + " (" + node.type + ")");
    for (const f of rowFields) cell(null, f, "0");
    cell(null, "latency_p50", "");
    cell(null, "latency_p99", "");
    tr.addEventListener("click", () => select(node.name));
    tbody.appendChild(tr);
    return tr;
  }

  function badgeFor(name) {
    const g = svgGroup(name);
    if (!g) return null;
    let t = g.querySelector("text.badge");
    if (t) return t;
    const box = g.getBBox();
    t = document.createElementNS("http://www.w3.org/2000/svg", "text");
    t.setAttribute("class", "badge");
    t.setAttribute("x", String(box.x + box.width / 2));
    t.setAttribute("y", String(box.y + box.height + 11));
    t.setAttribute("text-anchor", "middle");
    g.appendChild(t);
    return t;
  }

  function paintNode(n) {
    const g = svgGroup(n.name);
    if (!g) return;
    g.classList.toggle("active", Number(n.rate) > 0 || Number(n.in_flight) > 0);
    g.classList.toggle("restarted", Number(n.restarts) > 0);
    g.classList.toggle("failing", Number(n.errors) > 0 || Number(n.dead_lettered) > 0);
    const t = badgeFor(n.name);
    if (!t) return;
    let text = fmt("rate", n.rate) + "/s  " + n.in_flight + " in flight";
    if (Number(n.errors) > 0) text += "  " + n.errors + " err";
    if (Number(n.restarts) > 0) text += "  " + n.restarts + " restarts";
    setText(t, text);
    t.classList.toggle("bad", Number(n.errors) > 0 || Number(n.restarts) > 0);
  }

  function showDetail() {
    const box = $("#detail");
    if (!selected || !last) return;
    const n = (last.nodes || []).find((x) => x.name === selected);
    if (!n) return;
    box.setAttribute("data-node", n.name);
    let html = "<h3></h3><table><tbody></tbody></table><h4>last failures</h4><ul class=\"failures\"></ul>";
    if (!box.querySelector("table")) box.innerHTML = html;
    setText(box.querySelector("h3"), n.name + " — " + n.kind + " (" + n.type + ")");
    const tbody = box.querySelector("tbody");
    const rows = detailFields.map((f) => [f, fmt(f, n[f])])
      .concat([["latency_p50", fmtNs(n.latency_p50_ns)], ["latency_p99", fmtNs(n.latency_p99_ns)]]);
    tbody.textContent = "";
    for (const [k, v] of rows) {
      const tr = document.createElement("tr");
      const th = document.createElement("th");
      th.className = "name";
      th.textContent = k.replace(/_/g, " ");
      const td = document.createElement("td");
      td.dataset.key = k;
      td.textContent = v;
      tr.append(th, td);
      tbody.appendChild(tr);
    }
    const ul = box.querySelector("ul.failures");
    ul.textContent = "";
    const fails = (n.failures || []).slice().reverse();
    if (!fails.length) {
      const li = document.createElement("li");
      li.textContent = "none";
      ul.appendChild(li);
    }
    for (const f of fails) {
      const li = document.createElement("li");
      li.textContent = f.at + (f.crash ? " crash: " : " seq " + f.seq + ": ") + f.reason;
      ul.appendChild(li);
    }
  }

  function select(name) {
    selected = name;
    document.querySelectorAll("#nodes tbody tr.selected, #picture g.node.selected")
      .forEach((e) => e.classList.remove("selected"));
    const tr = $('#nodes tbody tr[data-node="' + CSS.escape(name) + '"]');
    if (tr) tr.classList.add("selected");
    const g = svgGroup(name);
    if (g) g.classList.add("selected");
    const box = $("#detail");
    box.setAttribute("data-node", name);
    box.textContent = "";
    showDetail();
  }

  function apply(s) {
    if (!s || !Array.isArray(s.nodes)) return;
    last = s;
    received++;
    const st = $("#status");
    setText(st, s.status);
    st.className = s.status;
    setText($("#wall"), (Number(s.wall_seconds) || 0).toFixed(1) + " s");
    const totals = s.totals || {};
    for (const f of totalFields)
      setText($('#totals [data-field="' + f + '"]'), fmt(f, totals[f]));
    for (const n of s.nodes) {
      const tr = rowFor(n);
      for (const f of rowFields)
        setText(tr.querySelector('[data-field="' + f + '"]'), fmt(f, n[f]));
      setText(tr.querySelector('[data-field="latency_p50"]'), fmtNs(n.latency_p50_ns));
      setText(tr.querySelector('[data-field="latency_p99"]'), fmtNs(n.latency_p99_ns));
      tr.classList.toggle("bad", Number(n.errors) > 0 || Number(n.dead_lettered) > 0);
      paintNode(n);
    }
    const ul = $("#dead-letters");
    ul.textContent = "";
    for (const d of (s.dead_letters || []).slice().reverse()) {
      const li = document.createElement("li");
      li.dataset.node = d.node;
      if (d.crash) li.className = "crash";
      li.textContent = d.at + " " + d.node + (d.seq ? " seq " + d.seq : "") + ": " + d.reason;
      ul.appendChild(li);
    }
    showDetail();
    if (s.status !== "running") finish(s, "run ended");
  }

  function finish(s, why) {
    if (finished) return;
    finished = true;
    if (source) { source.close(); source = null; }
    if (pollTimer) { clearTimeout(pollTimer); pollTimer = null; }
    setText($("#conn"), "final figures (" + why + ")");
    document.body.classList.add("finished");
  }

  function poll() {
    if (finished) return;
    fetch("/api/snapshot", { cache: "no-store" })
      .then((r) => { if (!r.ok) throw new Error("HTTP " + r.status); return r.json(); })
      .then((s) => { setText($("#conn"), "polling"); apply(s); })
      .catch(() => setText($("#conn"), "server unreachable; retrying"))
      .finally(() => { if (!finished) pollTimer = setTimeout(poll, 500); });
  }

  function follow() {
    if (!("EventSource" in window)) { poll(); return; }
    source = new EventSource("/events");
    let lastMessage = Date.now();
    source.addEventListener("open", () => setText($("#conn"), "live"));
    source.addEventListener("snapshot", (e) => {
      lastMessage = Date.now();
      try { apply(JSON.parse(e.data)); } catch (err) { /* a torn message: the next one comes */ }
    });
    source.addEventListener("end", (e) => {
      try { apply(JSON.parse(e.data)); } catch (err) { /* keep the last figures */ }
      finish(last, "run ended");
    });
    source.addEventListener("error", () => {
      if (finished) return;
      // The stream broke (a proxy that buffers, a server restart): ask for
      // snapshots instead once it stays silent.
      if (Date.now() - lastMessage > 2000 || received === 0) {
        if (source) { source.close(); source = null; }
        setText($("#conn"), "events unavailable; polling");
        poll();
      }
    });
  }

  function loadPicture() {
    return fetch("/graph.svg", { cache: "no-store" })
      .then((r) => { if (!r.ok) throw new Error("HTTP " + r.status); return r.text(); })
      .then((text) => {
        const at = text.indexOf("<svg");
        const pic = $("#picture");
        pic.innerHTML = at >= 0 ? text.slice(at) : text;
        const svg = pic.querySelector("svg");
        if (svg) {
          // Room around the nodes for their badges (wider than a node at
          // the edge, and below the lowest); CSS sizes it.
          const vb = (svg.getAttribute("viewBox") || "").split(/[\s,]+/).map(Number);
          if (vb.length === 4 && vb.every(isFinite))
            svg.setAttribute("viewBox", [vb[0] - 40, vb[1], vb[2] + 80, vb[3] + 14].join(" "));
          svg.removeAttribute("height");
          svg.removeAttribute("width");
        }
        pic.querySelectorAll('g[id^="node-"]').forEach((g) => {
          g.classList.add("node");
          const name = g.id.slice(5);
          g.addEventListener("click", () => select(name));
        });
        if (last) { for (const n of last.nodes) paintNode(n); }
        if (selected) select(selected);
      })
      .catch((err) => setText($("#picture"), "no picture: " + err.message));
  }

  loadPicture().finally(follow);
})();
</script>
</body></html>
)PAGE";

} // namespace

std::string live_page_html(const std::string& graph_name) {
  auto name = html_escape(graph_name);
  return std::string(head_part) + name + style_part + name + body_part;
}

} // namespace troupe::observe
