// The runtime embedders use: an actor system built in code, the registry of
// actor types, and graphs started from a graph_spec.
//
// A runtime owns one caf::actor_system (no caf-application.ini, no argv: the
// host program owns its command line). Graphs run concurrently on it; each
// has its own supervisor.
//
// Ownership: the runtime shares its registry (a shared_ptr, or its own copy
// when given a registry by value), and every graph_run shares what its report
// needs, so a temporary registry, or a graph_run kept after the registry or
// the runtime is gone, is safe.
//
// Threads: start() may be called from several threads at once. Destroying the
// runtime stops what still runs: each running graph gets a graceful stop
// bounded by its runtime.shutdown_timeout, then is taken down; ~runtime
// returns once all ended. It must not run on one of the runtime's own actor
// threads.
//
// Example:
//   troupe::registry reg;
//   troupe::register_builtins(reg);
//   troupe::runtime rt{reg};            // copies reg
//   auto g = troupe::load_graph_file("config/etl.yaml", rt.types());
//   auto run = rt.start(*g.graph);      // throws std::invalid_argument
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
#include "troupe/registry.hpp"
#include "troupe/report.hpp"

namespace troupe {

struct runtime_options {
  size_t threads = 0; // 0: one per hardware thread
  // CAF's test coordinator (scheduler.policy "testing"), for tests: nothing
  // runs until the caller drives `system().scheduler()` (run(),
  // advance_time()). ~runtime then drives it itself until every graph ended.
  bool deterministic = false;
};

class graph_run;

class runtime {
public:
  // Shares `reg`: types added to it later are seen by later start() calls.
  explicit runtime(std::shared_ptr<const registry> reg,
                   runtime_options opts = {});
  // Keeps its own copy of `reg` (a temporary is fine).
  explicit runtime(registry reg, runtime_options opts = {});
  ~runtime();
  runtime(const runtime&) = delete;
  runtime& operator=(const runtime&) = delete;

  caf::actor_system& system();
  const registry& types() const {
    return *reg_;
  }

  // Validates the graph (troupe::validate, validate.hpp: the loader's checks),
  // then spawns its resources and its supervisor, which spawns the nodes.
  // Throws std::invalid_argument whose what() lists every diagnostic, one
  // `file:line:col: error: message` per line; nothing is started then.
  graph_run start(const graph_spec& graph);

  // Graphs started and not yet ended; ended ones are forgotten, so a
  // long-lived runtime stays flat.
  size_t running() const;

private:
  struct impl;
  std::shared_ptr<const registry> reg_;
  std::unique_ptr<impl> impl_;
};

// A graph while it runs and after it ended. Copyable handle.
//
// A default-constructed or moved-from graph_run has no graph: finished() is
// true, wait_for() returns true, stop() does nothing, report() is empty with
// status "none", metrics() has no nodes and resource() is invalid.
class graph_run {
public:
  // True once the run ended (completed, failed, interrupted or timed out).
  // Any duration works, duration::max() included (waits until it ends).
  bool wait_for(duration timeout) const;
  bool finished() const {
    return wait_for(duration{0});
  }
  // Graceful stop: sources stop, in-flight records drain, bounded by
  // runtime.shutdown_timeout. Does nothing once finished.
  void stop() const;
  // Counters so far (complete once finished()).
  run_report report() const;
  const run_metrics& metrics() const;
  // A resource actor by name (e.g. a counter), or an invalid handle. The
  // runtime stops resources when the run ends; handles are released when
  // the runtime is destroyed.
  caf::actor resource(const std::string& name) const;

private:
  friend class runtime;
  struct state;
  std::shared_ptr<state> state_;
};

} // namespace troupe
