// The live view's snapshot JSON (the contract between the web server and
// the page): the report's figures per node, rates since the previous
// snapshot, each node's recent failures and the newest dead letters.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <string>
#include <unordered_map>
#include <vector>

#include "troupe/graph_spec.hpp"
#include "troupe/json.hpp"
#include "troupe/observe.hpp"
#include "troupe/runtime.hpp"
#include "text.hpp"

namespace troupe {

struct snapshot_state {
  std::chrono::steady_clock::time_point taken;
  std::unordered_map<std::string, uint64_t> out; // per node, at `taken`
};

namespace {

void field(std::string& o, const char* name, uint64_t v, bool first = false) {
  if (!first)
    o += ", ";
  o += '"';
  o += name;
  o += "\": ";
  o += std::to_string(v);
}

void field(std::string& o, const char* name, int64_t v) {
  o += ", \"";
  o += name;
  o += "\": ";
  o += std::to_string(v);
}

struct dead_letter {
  const std::string* node;
  recent_failures::entry e;
};

} // namespace

std::string snapshot_json(const graph_run& run, const graph_spec& graph,
                          std::shared_ptr<snapshot_state>& state) {
  auto report = run.report();
  auto& metrics = run.metrics();
  auto now = std::chrono::steady_clock::now();
  auto fresh = std::make_shared<snapshot_state>();
  fresh->taken = now;
  double secs = state ? std::chrono::duration<double>(now - state->taken)
                          .count()
                      : 0.0;
  std::string o;
  o.reserve(4096);
  o += "{\"graph\": ";
  append_json_string(o, report.graph);
  o += ", \"status\": ";
  append_json_string(o, report.status);
  o += ", \"wall_seconds\": ";
  {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", report.wall_seconds);
    o += buf;
  }
  o += ", \"totals\": {";
  field(o, "source_records", report.source_records, true);
  field(o, "sink_records", report.sink_records);
  field(o, "dead_lettered", report.dead_lettered);
  field(o, "restarts", report.restarts);
  field(o, "redelivered", report.redelivered);
  field(o, "lost", report.lost);
  field(o, "in_flight", report.in_flight);
  o += "}, \"nodes\": [";
  std::vector<dead_letter> letters;
  for (size_t i = 0; i < report.nodes.size(); ++i) {
    auto& n = report.nodes[i];
    const node_metrics* m = metrics.find(n.name);
    auto kind = observe::kind_of(graph, n.name);
    fresh->out[n.name] = n.out;
    uint64_t rate = 0;
    if (state && secs > 0) {
      auto prev = state->out.find(n.name);
      if (prev != state->out.end() && n.out >= prev->second)
        rate = static_cast<uint64_t>(static_cast<double>(n.out - prev->second)
                                     / secs);
    }
    o += i ? ", {\"name\": " : "{\"name\": ";
    append_json_string(o, n.name);
    o += ", \"type\": ";
    append_json_string(o, n.type);
    o += ", \"kind\": ";
    append_json_string(o, kind);
    field(o, "in", n.in);
    field(o, "out", n.out);
    field(o, "created", n.created);
    field(o, "filtered", n.filtered);
    field(o, "dead_lettered", n.dead_lettered);
    field(o, "errors", n.errors);
    field(o, "retried", n.retried);
    field(o, "lost", n.lost);
    field(o, "redelivered", n.redelivered);
    field(o, "restarts", n.restarts);
    field(o, "in_flight", n.in_flight);
    field(o, "rate", rate);
    field(o, "latency_p50_ns", n.latency_p50_ns);
    field(o, "latency_p99_ns", n.latency_p99_ns);
    o += ", \"events\": {";
    if (m) {
      auto ev = m->events.list();
      for (size_t k = 0; k < ev.size(); ++k) {
        if (k)
          o += ", ";
        append_json_string(o, ev[k].first);
        o += ": " + std::to_string(ev[k].second);
      }
    }
    o += "}";
    o += ", \"failures\": [";
    if (m) {
      auto list = m->failures.list();
      for (size_t k = 0; k < list.size(); ++k) {
        auto& e = list[k];
        o += k ? ", {\"crash\": " : "{\"crash\": ";
        o += e.crash ? "true" : "false";
        field(o, "seq", e.seq);
        o += ", \"reason\": ";
        append_json_string(o, e.reason);
        o += ", \"at\": \"" + format_utc(e.at) + "\"}";
        if (!e.crash)
          letters.push_back({&n.name, std::move(e)});
      }
    }
    o += "]}";
  }
  o += "], \"dead_letters\": [";
  // The newest 50 over all nodes, newest last.
  std::stable_sort(letters.begin(), letters.end(),
                   [](const dead_letter& a, const dead_letter& b) {
                     return a.e.at < b.e.at;
                   });
  size_t from = letters.size() > 50 ? letters.size() - 50 : 0;
  for (size_t k = from; k < letters.size(); ++k) {
    auto& d = letters[k];
    o += k > from ? ", {\"node\": " : "{\"node\": ";
    append_json_string(o, *d.node);
    field(o, "seq", d.e.seq);
    o += ", \"reason\": ";
    append_json_string(o, d.e.reason);
    o += ", \"at\": \"" + format_utc(d.e.at) + "\"}";
  }
  o += "]}";
  state = std::move(fresh);
  return o;
}

} // namespace troupe
