#include "troupe/report_html.hpp"
#include "text.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <sstream>
#include <tuple>

namespace troupe {

using observe::html_escape;
using observe::ns_text;

namespace {

const char* style = R"(
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Helvetica,Arial,sans-serif;margin:1.5em;color:#222;background:#fafafa}
h1{font-size:1.4em;margin:0 0 .3em}
h2{font-size:1.1em;margin:1.4em 0 .4em}
.status{display:inline-block;padding:.1em .6em;border-radius:1em;font-weight:600;color:#fff;background:#777}
.status.completed{background:#2e7d32}.status.failed{background:#c62828}
.status.interrupted,.status.timed_out{background:#ef6c00}
table{border-collapse:collapse;background:#fff}
th,td{border:1px solid #ddd;padding:.25em .6em;text-align:right;white-space:nowrap}
th{background:#f0f0f0}
td.name,th.name{text-align:left}
tr.bad td{background:#fdecea}
.picture{background:#fff;border:1px solid #ddd;padding:.5em;overflow:auto}
.picture svg{max-width:100%;height:auto}
#dead-letters{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px}
.muted{color:#777}
)";

} // namespace

std::vector<dead_letter> recent_dead_letters(const run_metrics& m,
                                             size_t max) {
  std::vector<std::pair<std::chrono::system_clock::time_point, dead_letter>>
    all;
  for (auto& n : m.nodes)
    for (auto& e : n->failures.list())
      all.push_back({e.at, dead_letter{n->name, e.crash, e.seq, e.reason,
                                       format_utc(e.at)}});
  std::stable_sort(all.begin(), all.end(), [](auto& a, auto& b) {
    return a.first < b.first;
  });
  std::vector<dead_letter> out;
  auto from = all.size() > max ? all.size() - max : 0;
  for (size_t i = from; i < all.size(); ++i)
    out.push_back(std::move(all[i].second));
  return out;
}

std::string report_html(const graph_spec& g, const run_report& r,
                        const std::vector<dead_letter>& dead_letters,
                        const std::string& svg,
                        const std::string& picture_error) {
  std::ostringstream o;
  auto num = [&](const char* field, auto value) {
    o << "<td data-field=\"" << field << "\">" << value << "</td>";
  };
  o << "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
    << "<title>troupe report: " << html_escape(r.graph) << "</title>"
    << "<style>" << style << "</style></head><body>\n"
    << "<h1>troupe report: " << html_escape(r.graph) << "</h1>\n"
    << "<p>Status <span id=\"status\" class=\"status " << html_escape(r.status)
    << "\">" << html_escape(r.status) << "</span>";
  char wall[32];
  std::snprintf(wall, sizeof wall, "%.3f", r.wall_seconds);
  o << " after <span id=\"wall-seconds\">" << wall << "</span> s";
  if (!g.file.empty())
    o << " &middot; <span class=\"muted\">" << html_escape(g.file) << "</span>";
  o << "</p>\n";
  if (!r.message.empty())
    o << "<p id=\"message\">" << html_escape(r.message) << "</p>\n";
  if (!r.unfinished.empty()) {
    o << "<p>Unfinished:";
    for (auto& u : r.unfinished)
      o << ' ' << html_escape(u);
    o << "</p>\n";
  }

  o << "<h2>Totals</h2>\n<table id=\"totals\"><tr>"
       "<th>source records</th><th>sink records</th><th>dead lettered</th>"
       "<th>restarts</th><th>redelivered</th><th>lost</th><th>in flight</th>"
       "<th>deadlocks</th></tr>\n<tr>";
  num("source_records", r.source_records);
  num("sink_records", r.sink_records);
  num("dead_lettered", r.dead_lettered);
  num("restarts", r.restarts);
  num("redelivered", r.redelivered);
  num("lost", r.lost);
  num("in_flight", r.in_flight);
  num("deadlocks", r.deadlocks);
  o << "</tr></table>\n";

  o << "<h2>Graph</h2>\n<div class=\"picture\" id=\"picture\">";
  if (!svg.empty())
    o << svg;
  else
    o << "<p class=\"muted\">no picture: " << html_escape(picture_error) << "</p>";
  o << "</div>\n";

  o << "<h2>Nodes</h2>\n<table id=\"nodes\"><tr><th class=\"name\">node</th>"
       "<th class=\"name\">type</th><th>in</th><th>created</th><th>out</th>"
       "<th>filtered</th><th>dead lettered</th><th>errors</th>"
       "<th>retried</th><th>lost</th><th>redelivered</th><th>restarts</th>"
       "<th>in flight</th><th>batches</th><th>unexpected</th>"
       "<th>latency p50</th><th>latency p99</th></tr>\n";
  for (auto& n : r.nodes) {
    bool bad = n.errors > 0 || n.dead_lettered > 0 || n.lost > 0;
    o << "<tr data-node=\"" << html_escape(n.name) << "\"" << (bad ? " class=\"bad\"" : "")
      << "><td class=\"name\">" << html_escape(n.name) << "</td><td class=\"name\">"
      << html_escape(n.type) << "</td>";
    num("in", n.in);
    num("created", n.created);
    num("out", n.out);
    num("filtered", n.filtered);
    num("dead_lettered", n.dead_lettered);
    num("errors", n.errors);
    num("retried", n.retried);
    num("lost", n.lost);
    num("redelivered", n.redelivered);
    num("restarts", n.restarts);
    num("in_flight", n.in_flight);
    num("batches", n.batches);
    num("unexpected", n.unexpected);
    o << "<td data-field=\"latency_p50_ns\" data-value=\"" << n.latency_p50_ns
      << "\">" << ns_text(n.latency_p50_ns, " ") << "</td>"
      << "<td data-field=\"latency_p99_ns\" data-value=\"" << n.latency_p99_ns
      << "\">" << ns_text(n.latency_p99_ns, " ") << "</td></tr>\n";
  }
  o << "</table>\n";

  o << "<h2>Dead letters and crashes (last reasons)</h2>\n";
  if (dead_letters.empty())
    o << "<p class=\"muted\">none</p>\n";
  o << "<ul id=\"dead-letters\">";
  for (auto& d : dead_letters) {
    o << "<li data-node=\"" << html_escape(d.node) << "\">" << html_escape(d.at) << ' '
      << html_escape(d.node);
    if (d.crash)
      o << " crashed";
    else
      o << " seq " << d.seq;
    o << ": " << html_escape(d.reason) << "</li>";
  }
  o << "</ul>\n";
  if (!r.deadlock_texts.empty()) {
    o << "<h2>Deadlocks</h2>\n<ul id=\"deadlocks\">";
    for (auto& t : r.deadlock_texts)
      o << "<li>" << html_escape(t) << "</li>";
    o << "</ul>\n";
  }
  o << "</body></html>\n";
  return o.str();
}

} // namespace troupe
