#include "troupe/report.hpp"

#include <sstream>

#include "troupe/json.hpp"

namespace troupe {

bool node_report::balanced() const {
  return static_cast<int64_t>(in + created)
         == static_cast<int64_t>(out + filtered + dead_lettered + retried
                                 + lost)
              + in_flight;
}

bool run_report::balanced() const {
  for (auto& n : nodes)
    if (!n.balanced())
      return false;
  return true;
}

node_report snapshot(const node_metrics& m) {
  node_report n;
  auto get = [](const std::atomic<uint64_t>& c) {
    return c.load(std::memory_order_relaxed);
  };
  n.name = m.name;
  n.type = m.type;
  n.in = get(m.in);
  n.created = get(m.created);
  n.out = get(m.out);
  n.filtered = get(m.filtered);
  n.dead_lettered = get(m.dead_lettered);
  n.retried = get(m.retried);
  n.lost = get(m.lost);
  n.redelivered = get(m.redelivered);
  n.restarts = get(m.restarts);
  n.batches = get(m.batches);
  n.errors = get(m.errors);
  n.unexpected = get(m.unexpected);
  n.in_flight = m.in_flight();
  // What the supervisor accounted for the node's dead incarnations.
  auto& s = m.supervised;
  n.in += get(s.unreceived);
  n.out -= get(s.withdrawn);
  n.lost += get(s.lost) + get(s.withdrawn) + get(s.unreceived);
  n.retried += get(s.retried);
  n.restarts += get(s.restarts);
  n.errors += get(s.crashes);
  n.latency_p50_ns = m.latency_quantile(0.5);
  n.latency_p99_ns = m.latency_quantile(0.99);
  return n;
}

std::string report_json(const run_report& r) {
  std::ostringstream o;
  o << "{\n  \"graph\": " << json_string(r.graph)
    << ",\n  \"status\": " << json_string(r.status)
    << ",\n  \"message\": " << json_string(r.message)
    << ",\n  \"wall_seconds\": " << r.wall_seconds
    << ",\n  \"balanced\": " << (r.balanced() ? "true" : "false")
    << ",\n  \"unfinished\": [";
  for (size_t i = 0; i < r.unfinished.size(); ++i)
    o << (i ? ", " : "") << json_string(r.unfinished[i]);
  o << "],\n  \"totals\": {\"source_records\": " << r.source_records
    << ", \"sink_records\": " << r.sink_records
    << ", \"dead_lettered\": " << r.dead_lettered
    << ", \"restarts\": " << r.restarts
    << ", \"redelivered\": " << r.redelivered << ", \"lost\": " << r.lost
    << ", \"in_flight\": " << r.in_flight
    << ", \"deadlocks\": " << r.deadlocks << "},\n  \"deadlocks\": [";
  for (size_t i = 0; i < r.deadlock_texts.size(); ++i)
    o << (i ? ", " : "") << json_string(r.deadlock_texts[i]);
  o << "],\n  \"nodes\": {";
  for (size_t i = 0; i < r.nodes.size(); ++i) {
    auto& n = r.nodes[i];
    o << (i ? "," : "") << "\n    " << json_string(n.name)
      << ": {\"type\": " << json_string(n.type) << ", \"in\": " << n.in
      << ", \"created\": " << n.created << ", \"out\": " << n.out
      << ", \"filtered\": " << n.filtered
      << ", \"errors\": " << n.errors
      << ", \"dead_lettered\": " << n.dead_lettered
      << ", \"in_flight\": " << n.in_flight << ", \"retried\": " << n.retried
      << ", \"lost\": " << n.lost << ", \"redelivered\": " << n.redelivered
      << ", \"restarts\": " << n.restarts << ", \"batches\": " << n.batches
      << ", \"unexpected\": " << n.unexpected
      << ", \"latency_p50_us\": " << n.latency_p50_ns / 1000.0
      << ", \"latency_p99_us\": " << n.latency_p99_ns / 1000.0
      << ", \"balanced\": " << (n.balanced() ? "true" : "false") << "}";
  }
  o << "\n  }\n}\n";
  return o.str();
}

std::string report_summary(const run_report& r) {
  std::ostringstream o;
  o.precision(3);
  o << "troupe: " << r.graph << " " << r.status << " in " << r.wall_seconds
    << "s: " << r.source_records << " records from sources, "
    << r.sink_records << " into sinks, " << r.dead_lettered
    << " dead-lettered, " << r.restarts << " restarts";
  if (r.redelivered)
    o << ", " << r.redelivered << " redelivered";
  if (r.lost)
    o << ", " << r.lost << " lost";
  if (r.in_flight)
    o << ", " << r.in_flight << " in flight";
  if (r.deadlocks)
    o << ", " << r.deadlocks << " deadlock" << (r.deadlocks == 1 ? "" : "s");
  o << '\n';
  if (!r.message.empty())
    o << "troupe: " << r.message << '\n';
  if (!r.unfinished.empty()) {
    o << "troupe: still running at the end:";
    for (auto& n : r.unfinished)
      o << ' ' << n;
    o << '\n';
  }
  return o.str();
}

} // namespace troupe
