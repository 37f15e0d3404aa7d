// The runtime embedders use: an actor system built in code, the registry of
// actor types, and graphs started from a graph_spec.
//
// A runtime owns one caf::actor_system (no caf-application.ini, no argv: the
// host program owns its command line). Graphs run concurrently on it; each
// has its own supervisor. Destroying the runtime stops what still runs.
//
// Example:
//   troupe::registry reg;
//   troupe::register_builtins(reg);
//   troupe::runtime rt{reg, {}};
//   auto g = troupe::load_graph_file("config/etl.yaml", reg);
//   auto run = rt.start(*g.graph);
//   run.wait_for(std::chrono::seconds(60));
//   std::cout << troupe::report_json(run.report()) << '\n';
#pragma once

#include <chrono>
#include <future>
#include <memory>
#include <string>

#include <caf/fwd.hpp>

#include "troupe/graph_spec.hpp"
#include "troupe/metrics.hpp"
#include "troupe/report.hpp"

namespace troupe {

class registry;

struct runtime_options {
  size_t threads = 0;         // 0: one per hardware thread
  bool deterministic = false; // CAF's test coordinator: tests drive time
};

class graph_run;

class runtime {
public:
  runtime(const registry& reg, runtime_options opts);
  ~runtime();
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  caf::actor_system& system();
  const registry& types() const {
    return reg_;
  }

  // Spawns the graph's resources and its supervisor, which spawns the nodes.
  graph_run start(const graph_spec& graph);

private:
  struct impl;
  const registry& reg_;
  std::unique_ptr<impl> impl_;
};

// A graph while it runs and after it ended. Copyable handle.
class graph_run {
public:
  // True once the run ended (completed, failed, interrupted or timed out).
  bool wait_for(duration timeout) const;
  bool finished() const {
    return wait_for(duration{0});
  }
  // Graceful stop: sources stop, in-flight records drain, bounded by
  // runtime.shutdown_timeout.
  void stop() const;
  // Counters so far (complete once finished()).
  run_report report() const;
  const run_metrics& metrics() const;
  // A resource actor by name (e.g. a counter), or an invalid handle.
  caf::actor resource(const std::string& name) const;

private:
  friend class runtime;
  struct state;
  std::shared_ptr<state> state_;
};

} // namespace troupe
