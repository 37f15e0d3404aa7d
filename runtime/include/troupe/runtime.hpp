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
// Resources (service actors such as a counter) have an explicit lifetime:
// - runtime resources (add_resource) are shared by every later run and live
//   until release_resource(name) or ~runtime;
// - a graph's own resources (its `resources:` section) are started with its
//   run and outlive the run's end, so the embedder can still read them (a
//   final count); they stop at graph_run::release(), when the last graph_run
//   handle of that run is gone, or at ~runtime, whichever comes first. The
//   CLI drops its run at exit, so there they end with the run.
// Both are handed out typed: resource<Handle>(name), see below.
//
// Threads: start(), add_resource(), release_resource() and resource() may be
// called from several threads at once. Destroying the runtime stops what
// still runs: each running graph gets a graceful stop bounded by its
// runtime.shutdown_timeout, then is taken down; then every resource is
// stopped; ~runtime returns once all ended. It must not run on one of the
// runtime's own actor threads.
//
// Example:
//   troupe::registry reg;
//   troupe::register_builtins(reg);
//   troupe::runtime rt{reg};            // copies reg
//   auto g = troupe::load_graph_file("config/etl.yaml", rt.types());
//   auto run = rt.start(*g.graph);      // throws std::invalid_argument
//   run.wait_for(std::chrono::seconds(60));
//   std::cout << troupe::report_json(run.report()) << '\n';
//
//   rt.add_resource({"seen", "counter"});           // shared by later runs
//   auto seen = rt.resource<troupe::counter_actor>("seen"); // typed handle
//   rt.release_resource("seen");
#pragma once

#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <type_traits>
#include <typeinfo>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_control_block.hpp>
#include <caf/fwd.hpp>

#include "troupe/deadlock_detector.hpp"
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
  // The deadlock detector (deadlock_detector.hpp): one per runtime, watching
  // every request between its actors. YAML: `runtime: deadlock:`.
  deadlock_spec deadlock;
};

class graph_run;

namespace detail {

// What resource<Handle> asks for: the exact typed_actor alias a service type
// registered (typed_service), or nullptr for caf::actor (any protocol).
template <class Handle>
const std::type_info* wanted_handle() {
  if constexpr (std::is_same_v<Handle, caf::actor>)
    return nullptr;
  else
    return &typeid(Handle);
}

} // namespace detail

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
  // The runtime's deadlock detector (deadlock_detector.hpp); an invalid
  // handle when runtime_options::deadlock.detect is false.
  deadlock_detector_actor deadlock_detector() const;
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

  // Starts a resource the runtime owns: `spec.type` names a registered
  // service, its parameters are checked and defaulted as in a graph. It lives
  // until release_resource(spec.name) or ~runtime. Every later start() can
  // use it: a node's slot may name it without the graph declaring it, and a
  // graph that declares a resource of the same name and type uses this one
  // (the graph's parameters for it are then ignored). Its slots
  // (actor_type::calls) may name resources this runtime owns, never itself;
  // a graph's resources may name it, and start() brings in what it names.
  // Throws std::invalid_argument (a diagnostic per line) when the spec is
  // invalid, the name is taken, or the factory fails; nothing is started
  // then.
  void add_resource(resource_spec spec);
  // Stops the runtime's resource `name` now. False when there is none. Runs
  // still using it go on; what their nodes report to it is dropped.
  bool release_resource(const std::string& name);
  // The runtime's resource `name` as the protocol it speaks: Handle is the
  // caf::typed_actor alias its service type registered (e.g.
  // troupe::counter_actor), or caf::actor for an untyped handle. Throws
  // std::invalid_argument for an unknown name or another protocol.
  template <class Handle>
  Handle resource(const std::string& name) const {
    return caf::actor_cast<Handle>(
      resource_ptr(name, detail::wanted_handle<Handle>()));
  }

private:
  caf::strong_actor_ptr resource_ptr(const std::string& name,
                                     const std::type_info* want) const;
  struct impl;
  std::shared_ptr<const registry> reg_;
  std::unique_ptr<impl> impl_;
};

// A graph while it runs and after it ended. Copyable handle.
//
// A default-constructed or moved-from graph_run has no graph: finished() is
// true, wait_for() returns true, stop() and release() do nothing, report() is
// empty with status "none", metrics() has no nodes and resource() throws.
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
  // A resource this run uses (its own or a runtime resource) as the protocol
  // it speaks; as runtime::resource<Handle>. The run's own resources outlive
  // its end until release(); asking for one after that throws.
  template <class Handle = caf::actor>
  Handle resource(const std::string& name) const {
    return caf::actor_cast<Handle>(
      resource_ptr(name, detail::wanted_handle<Handle>()));
  }
  // Stops the run's own resources now (not the runtime's). Safe to call
  // more than once and from any thread; a run still going on drops what its
  // nodes report to them.
  void release() const;

private:
  caf::strong_actor_ptr resource_ptr(const std::string& name,
                                     const std::type_info* want) const;
  friend class runtime;
  struct state;
  std::shared_ptr<state> state_;
};

} // namespace troupe
