// What an operator looks at while a graph runs: its metrics in the
// Prometheus text format, the live view's snapshot JSON, and an HTTP server
// that serves both (library troupe::observe; the CLI's --metrics / --http).
//
// Everything here reads the run's counters (relaxed atomics, metrics.hpp)
// from the caller's thread: nothing asks or blocks an actor, and the record
// path takes no lock for it.
//
// Example (an embedder serving /metrics while its graph runs):
//   troupe::web_server http{graph, {"127.0.0.1:9464"}}; // binds: may throw
//   auto run = rt.start(graph);
//   http.serve(run);
//   std::cerr << "metrics at http://" << http.address() << "/metrics\n";
//   run.wait_for(std::chrono::hours(1));
//   http.finish(std::chrono::seconds(1)); // SSE clients get `end`
//   http.stop();
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>

namespace troupe {

class graph_run;
struct graph_spec;
struct run_report;
struct run_metrics;
class registry;

// The run's metrics in the Prometheus text exposition format 0.0.4: per node
// (labels graph, node, type, kind) the report's counters, in-flight gauges
// and a batch latency histogram; run-level gauges (up, status, wall time).
// `graph` is the spec the run was started from (node kinds).
std::string prometheus_text(const graph_run& run, const graph_spec& graph);
// The same from a report and the counters it was taken from (tests, or a
// run kept by other means).
std::string prometheus_text(const run_report& report,
                            const run_metrics& metrics,
                            const graph_spec& graph);

// The services' own figures (service_ops::read_stats: a cache's hits, a
// pool's queue depth, ...) for the resources `graph` declares, as
// troupe_service_* families labelled graph, resource and type, plus
// troupe_service_up (0: no answer within `timeout`, or released). Asks each
// service and waits for it: call it from a thread that is no actor's.
std::string service_metrics_text(
  const graph_run& run, const graph_spec& graph, const registry& types,
  std::chrono::milliseconds timeout = std::chrono::milliseconds(250));

// The live view's snapshot (the JSON contract in README "Live view"). Rates
// are records out per second since the previous call with the same `state`
// (an empty one at first: rates 0); the function keeps what it needs there.
struct snapshot_state;
std::string snapshot_json(const graph_run& run, const graph_spec& graph,
                          std::shared_ptr<snapshot_state>& state);

// "HOST:PORT", ":PORT" or "PORT" (HOST defaults to 127.0.0.1; port 0: a free
// one). Throws std::invalid_argument with a one-line reason.
struct listen_address {
  std::string host;
  int port = 0;
};
listen_address parse_listen_address(const std::string& text);

// An HTTP server on threads of its own for one run:
//   GET /metrics        prometheus_text (text/plain; version=0.0.4)
// and, with live_view:
//   GET /               the live page (text/html)
//   GET /graph.svg      options.svg as given (image/svg+xml)
//   GET /api/snapshot   snapshot_json (application/json)
//   GET /events         server-sent events: `snapshot` every 250 ms, then
//                       one `event: end` with the final snapshot.
// Long-lived /events clients are capped (max_event_clients, more get 503) so
// they never take the threads /metrics needs.
class web_server {
public:
  struct options {
    std::string listen = "127.0.0.1:0";
    bool live_view = false;
    std::string svg; // the picture /graph.svg serves
    // When set, draws the picture at the first /graph.svg request instead
    // (then kept): a run nobody watches does not pay for the drawing.
    std::function<std::string()> make_svg;
    size_t max_event_clients = 8;
    // With it, /metrics adds the services' own figures
    // (service_metrics_text); it must outlive the server.
    const registry* types = nullptr;
  };
  // Binds before returning (so a port in use is known before the run
  // starts): throws std::invalid_argument for a bad address and
  // std::runtime_error when it cannot listen there. `graph` must outlive
  // the server.
  web_server(const graph_spec& graph, options opts);
  ~web_server(); // stop()
  web_server(const web_server&) = delete;
  web_server& operator=(const web_server&) = delete;

  // Starts answering, about `run` (started from `graph`); once only.
  void serve(const graph_run& run);
  // "HOST:PORT" with the port actually bound.
  std::string address() const;
  // The run ended: /events clients get their `end` event; waits up to
  // `linger` for every connected one to have received it.
  void finish(std::chrono::milliseconds linger);
  // Stops serving; idempotent.
  void stop();

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace troupe
