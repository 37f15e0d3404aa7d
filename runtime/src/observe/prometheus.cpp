// The Prometheus text exposition format 0.0.4 of a running graph.
//
// Read from the counters alone (the report and the latency buckets, relaxed
// atomics): a scrape never asks an actor. One HELP/TYPE pair per family, the
// series of every node under it.
#include <cstdio>
#include <string>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>

#include "troupe/graph_spec.hpp"
#include "troupe/observe.hpp"
#include "troupe/registry.hpp"
#include "troupe/runtime.hpp"
#include "text.hpp"

namespace troupe {

namespace {

// Label values: backslash, double quote and newline escaped (0.0.4).
void append_label_value(std::string& out, const std::string& v) {
  for (char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '"')
      out += "\\\"";
    else if (c == '\n')
      out += "\\n";
    else
      out += c;
  }
}

void append_number(std::string& out, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.12g", v);
  out += buf;
}

struct writer {
  std::string out;

  void family(const char* name, const char* type, const char* help) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
  }

  // name{labels} value; `labels` is already formatted (without braces).
  void sample(const std::string& name, const std::string& labels,
              const std::string& value) {
    out += name;
    out += '{';
    out += labels;
    out += "} ";
    out += value;
    out += '\n';
  }
  void sample(const std::string& name, const std::string& labels,
              uint64_t value) {
    sample(name, labels, std::to_string(value));
  }
  void sample(const std::string& name, const std::string& labels,
              int64_t value) {
    sample(name, labels, std::to_string(value));
  }
  void sample(const std::string& name, const std::string& labels,
              double value) {
    std::string text;
    append_number(text, value);
    sample(name, labels, text);
  }
};

std::string label(const char* key, const std::string& value) {
  std::string s = key;
  s += "=\"";
  append_label_value(s, value);
  s += '"';
  return s;
}

struct node_view {
  const node_report* report;
  const node_metrics* metrics; // nullptr when not found
  std::string labels;
};

} // namespace

std::string prometheus_text(const graph_run& run, const graph_spec& graph) {
  return prometheus_text(run.report(), run.metrics(), graph);
}

std::string prometheus_text(const run_report& report,
                            const run_metrics& metrics,
                            const graph_spec& graph) {
  std::vector<node_view> nodes;
  nodes.reserve(report.nodes.size());
  auto graph_label = label("graph", report.graph);
  for (auto& n : report.nodes) {
    const node_metrics* m = metrics.find(n.name);
    auto kind = observe::kind_of(graph, n.name);
    nodes.push_back({&n, m,
                     graph_label + ',' + label("node", n.name) + ','
                       + label("type", n.type) + ',' + label("kind", kind)});
  }
  writer w;
  struct counter_family {
    const char* name;
    const char* help;
    uint64_t node_report::*field;
  };
  static const counter_family counters[] = {
    {"troupe_records_in_total", "Records a node received (redeliveries too).",
     &node_report::in},
    {"troupe_records_out_total", "Records a node passed on (sinks: wrote).",
     &node_report::out},
    {"troupe_records_created_total", "Records a node made (sources, flat_map).",
     &node_report::created},
    {"troupe_records_filtered_total",
     "Records a node dropped on purpose (filter, aggregation).",
     &node_report::filtered},
    {"troupe_records_dead_lettered_total",
     "Records that failed: sent to the errors port or the log.",
     &node_report::dead_lettered},
    {"troupe_records_retried_total",
     "Records a crashed incarnation held, delivered again.",
     &node_report::retried},
    {"troupe_records_lost_total",
     "Records given up after a crash (at_most_once).", &node_report::lost},
    {"troupe_records_redelivered_total", "Records a node sent again.",
     &node_report::redelivered},
    {"troupe_node_restarts_total", "Restarts of a node by its supervisor.",
     &node_report::restarts},
    {"troupe_node_errors_total", "Crashes and failed records of a node.",
     &node_report::errors},
    {"troupe_node_batches_total", "Batches a node emitted.",
     &node_report::batches},
  };
  for (auto& f : counters) {
    w.family(f.name, "counter", f.help);
    for (auto& n : nodes)
      w.sample(f.name, n.labels, n.report->*f.field);
  }
  w.family("troupe_node_in_flight", "gauge",
           "Records a node holds now (measured).");
  for (auto& n : nodes)
    w.sample("troupe_node_in_flight", n.labels, n.report->in_flight);

  // Figures the nodes' logic keeps of its own (event_counters), one series
  // per node and event; the family only when some node has one.
  std::string events;
  for (auto& n : nodes)
    if (n.metrics)
      for (auto& [name, value] : n.metrics->events.list()) {
        events += "troupe_node_events_total{" + n.labels + ','
                  + label("event", name) + "} " + std::to_string(value)
                  + '\n';
      }
  if (!events.empty()) {
    w.family("troupe_node_events_total", "counter",
             "Events a node's logic counts of its own (http_fetch: final "
             "outcomes by status class).");
    w.out += events;
  }

  // The log2 buckets (bucket i: [2^i, 2^(i+1)) ns) summed into every other
  // boundary, 256 ns .. ~68.7 s: exact cumulative counts at each `le`.
  static constexpr size_t first_le = 8, last_le = 36, step = 2;
  w.family("troupe_node_batch_latency_seconds", "histogram",
           "Time a node took to handle one batch.");
  for (auto& n : nodes) {
    uint64_t buckets[48] = {};
    uint64_t sum_ns = 0;
    if (n.metrics) {
      for (size_t i = 0; i < 48; ++i)
        buckets[i] = n.metrics->latency[i].load(std::memory_order_relaxed);
      sum_ns = n.metrics->latency_sum_ns.load(std::memory_order_relaxed);
    }
    uint64_t cumulative = 0;
    size_t next = 0; // buckets below `next` are in `cumulative`
    for (size_t k = first_le; k <= last_le; k += step) {
      for (; next < k; ++next)
        cumulative += buckets[next];
      std::string le = n.labels + ",le=\"";
      append_number(le, static_cast<double>(uint64_t{1} << k) * 1e-9);
      le += '"';
      w.sample("troupe_node_batch_latency_seconds_bucket", le, cumulative);
    }
    for (; next < 48; ++next)
      cumulative += buckets[next];
    w.sample("troupe_node_batch_latency_seconds_bucket",
             n.labels + ",le=\"+Inf\"", cumulative);
    w.sample("troupe_node_batch_latency_seconds_sum", n.labels,
             static_cast<double>(sum_ns) * 1e-9);
    w.sample("troupe_node_batch_latency_seconds_count", n.labels, cumulative);
  }

  w.family("troupe_run_up", "gauge", "1 while the run goes on, 0 once it ended.");
  w.sample("troupe_run_up", graph_label,
           uint64_t{report.status == "running" ? 1u : 0u});
  w.family("troupe_run_status", "gauge",
           "The run's status: 1 for the current one.");
  for (auto* s : {"running", "completed", "failed", "interrupted",
                  "timed_out"})
    w.sample("troupe_run_status", graph_label + ',' + label("status", s),
             uint64_t{report.status == s ? 1u : 0u});
  w.family("troupe_run_wall_seconds", "gauge", "Seconds since the run started.");
  w.sample("troupe_run_wall_seconds", graph_label, report.wall_seconds);
  w.family("troupe_run_source_records_total", "counter",
           "Records the sources created.");
  w.sample("troupe_run_source_records_total", graph_label,
           report.source_records);
  w.family("troupe_run_sink_records_total", "counter",
           "Records the sinks wrote.");
  w.sample("troupe_run_sink_records_total", graph_label, report.sink_records);
  w.family("troupe_run_in_flight", "gauge", "Records in flight in the run.");
  w.sample("troupe_run_in_flight", graph_label, report.in_flight);
  return std::move(w.out);
}

} // namespace troupe

namespace troupe {

std::string service_metrics_text(const graph_run& run, const graph_spec& graph,
                                 const registry& types,
                                 std::chrono::milliseconds timeout) {
  // Families in first-seen order, each with its series: a family's series
  // must follow its one HELP/TYPE pair, whichever services have it.
  struct family_lines {
    std::string name, help;
    bool counter = false;
    std::string series;
  };
  std::vector<family_lines> families;
  auto family_of = [&](const service_sample& s) -> family_lines& {
    auto name = "troupe_service_" + s.name;
    for (auto& f : families)
      if (f.name == name)
        return f;
    families.push_back({name, s.help, s.counter, {}});
    return families.back();
  };
  std::string up_series;
  auto graph_label = label("graph", graph.name);
  for (auto& r : graph.resources) {
    auto* t = types.find(r.type, actor_kind::service);
    if (!t || !t->service.read_stats)
      continue;
    auto labels = graph_label + ',' + label("resource", r.name) + ','
                  + label("type", r.type);
    std::optional<std::vector<service_sample>> samples;
    try {
      auto handle = run.resource<caf::actor>(r.name);
      samples = t->service.read_stats(
        caf::actor_cast<caf::strong_actor_ptr>(handle), timeout);
    } catch (const std::exception&) {
      // Released, or gone with the run: no figures, down.
    }
    up_series += "troupe_service_up{" + labels + "} "
                 + (samples ? "1" : "0") + '\n';
    if (!samples)
      continue;
    for (auto& s : *samples) {
      auto& f = family_of(s);
      f.series += f.name + '{' + labels + "} ";
      append_number(f.series, s.value);
      f.series += '\n';
    }
  }
  if (up_series.empty())
    return {};
  writer w;
  w.family("troupe_service_up",
           "gauge", "1 when the service answered the scrape's stats request "
                    "in time, else 0.");
  w.out += up_series;
  for (auto& f : families) {
    w.family(f.name.c_str(), f.counter ? "counter" : "gauge", f.help.c_str());
    w.out += f.series;
  }
  return w.out;
}

} // namespace troupe
