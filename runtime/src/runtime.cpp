#include "troupe/runtime.hpp"

#include <algorithm>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scheduler/test_coordinator.hpp>
#include <caf/scoped_execution_unit.hpp>
#include <caf/send.hpp>

#include "graph_supervisor.hpp"
#include "run_plan.hpp"
#include "troupe/errors.hpp"
#include "troupe/registry.hpp"
#include "troupe/type_ids.hpp"
#include "troupe/validate.hpp"

namespace troupe {

struct runtime::impl {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  bool deterministic = false;
  // Guards `runs`: start() may be called from any thread. Never taken by
  // actor code.
  mutable std::mutex mtx;
  // Runs not yet seen finished. Strong references: ~runtime must stop a
  // graph even when the caller dropped its handle.
  mutable std::vector<std::shared_ptr<graph_run::state>> runs;

  // Forgets finished runs (under mtx).
  void prune() const {
    runs.erase(std::remove_if(runs.begin(), runs.end(),
                              [](auto& st) {
                                return st->outcome.wait_for(duration{0})
                                       == std::future_status::ready;
                              }),
               runs.end());
  }
};

struct graph_run::state {
  std::shared_ptr<const detail::run_plan> plan;
  graph_supervisor_actor supervisor;
  std::map<std::string, caf::actor> resources;
  std::promise<run_outcome> promise;
  std::shared_future<run_outcome> outcome;
  std::chrono::steady_clock::time_point started;
  std::chrono::steady_clock::time_point ended;
};

namespace {

std::shared_ptr<const registry> checked(std::shared_ptr<const registry> reg) {
  if (!reg)
    throw std::invalid_argument("troupe::runtime needs a registry, got null");
  return reg;
}

} // namespace

runtime::runtime(registry reg, runtime_options opts)
  : runtime(std::make_shared<const registry>(std::move(reg)), opts) {
}

runtime::runtime(std::shared_ptr<const registry> reg, runtime_options opts)
  : reg_(checked(std::move(reg))), impl_(std::make_unique<impl>()) {
  auto& cfg = impl_->cfg;
  auto threads = opts.threads > 0
                   ? opts.threads
                   : std::max(1u, std::thread::hardware_concurrency());
  cfg.set("scheduler.max-threads", threads);
  // CAF 0.17 lets one busy actor run unboundedly; bound its turn so a flood
  // on one node cannot starve the others.
  cfg.set("scheduler.max-throughput", 64);
  impl_->deterministic = opts.deterministic;
  if (opts.deterministic)
    cfg.set("scheduler.policy", caf::atom("testing"));
  cfg.add_message_types<caf::id_block::troupe>();
  cfg.add_error_category(caf::atom("troupe"),
                         [](uint8_t code, caf::atom_value,
                            const caf::message& ctx) -> std::string {
                           caf::error e{code, caf::atom("troupe"), ctx};
                           return render(e);
                         });
  impl_->sys = std::make_unique<caf::actor_system>(cfg);
}

runtime::~runtime() {
  std::vector<std::shared_ptr<graph_run::state>> runs;
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    impl_->prune();
    runs = std::move(impl_->runs);
  }
  auto ended = [](auto& st) {
    return st->outcome.wait_for(duration{0}) == std::future_status::ready;
  };
  // A graceful stop first: sources stop, what is in flight drains.
  for (auto& st : runs)
    caf::anon_send(st->supervisor, stop_atom_v);
  if (impl_->deterministic) {
    // Nobody else drives the test coordinator now: run it, and let virtual
    // time pass up to each graph's shutdown_timeout.
    auto& sched = dynamic_cast<caf::scheduler::test_coordinator&>(
      impl_->sys->scheduler());
    sched.run();
    for (auto& st : runs) {
      if (ended(st))
        continue;
      sched.advance_time(st->plan->graph.runtime.shutdown_timeout);
      sched.run();
    }
    for (auto& st : runs)
      if (!ended(st))
        caf::anon_send_exit(st->supervisor, caf::exit_reason::user_shutdown);
    sched.run();
  } else {
    for (auto& st : runs)
      if (!ended(st))
        st->outcome.wait_for(st->plan->graph.runtime.shutdown_timeout
                             + std::chrono::seconds(1));
    // Past its shutdown_timeout: the supervisor takes its nodes down.
    for (auto& st : runs)
      if (!ended(st)) {
        caf::anon_send_exit(st->supervisor, caf::exit_reason::user_shutdown);
        st->outcome.wait_for(std::chrono::seconds(5));
      }
  }
  // A run that never reached its supervisor's end leaves its resources.
  for (auto& st : runs)
    if (!ended(st))
      for (auto& [_, r] : st->resources)
        caf::anon_send_exit(r, caf::exit_reason::user_shutdown);
  impl_->sys.reset();
}

caf::actor_system& runtime::system() {
  return *impl_->sys;
}

size_t runtime::running() const {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  impl_->prune();
  return impl_->runs.size();
}

graph_run runtime::start(const graph_spec& graph) {
  auto spec = graph;
  if (auto diags = validate(spec, *reg_); !diags.empty()) {
    std::string msg;
    for (auto& d : diags)
      msg += (msg.empty() ? "" : "\n") + d.str();
    throw std::invalid_argument(msg);
  }
  std::lock_guard<std::mutex> guard{impl_->mtx};
  impl_->prune();
  graph_run run;
  run.state_ = std::make_shared<graph_run::state>();
  auto st = run.state_;
  st->outcome = st->promise.get_future().share();
  auto metrics = std::make_shared<run_metrics>();
  for (auto& n : spec.nodes) {
    auto m = std::make_unique<node_metrics>();
    m->name = n.name;
    m->type = n.type;
    metrics->nodes.push_back(std::move(m));
  }
  auto stop_resources = [&] {
    for (auto& [_, r] : st->resources)
      caf::anon_send_exit(r, caf::exit_reason::user_shutdown);
  };
  for (auto& r : spec.resources) {
    auto* t = reg_->find(r.type, actor_kind::service);
    caf::actor handle;
    try {
      handle = t->make_service(*impl_->sys, r);
    } catch (const std::exception& e) {
      stop_resources();
      throw std::invalid_argument("resource '" + r.name + "': its factory "
                                  "threw: " + e.what());
    }
    if (!handle) {
      stop_resources();
      throw std::invalid_argument("resource '" + r.name
                                  + "': its factory returned no actor");
    }
    st->resources[r.name] = handle;
  }
  auto plan = detail::run_plan::make(spec, reg_, metrics, st->resources);
  st->plan = plan;
  st->started = std::chrono::steady_clock::now();
  std::weak_ptr<graph_run::state> weak = st;
  st->supervisor = detail::spawn_graph_supervisor(
    *impl_->sys, plan, [weak](run_outcome outcome) {
      if (auto s = weak.lock()) {
        s->ended = std::chrono::steady_clock::now();
        for (auto& [_, r] : s->resources)
          caf::anon_send_exit(r, caf::exit_reason::user_shutdown);
        s->promise.set_value(std::move(outcome));
      }
    });
  impl_->runs.push_back(st);
  return run;
}

bool graph_run::wait_for(duration timeout) const {
  if (!state_)
    return true;
  // future::wait_for adds the timeout to now(): a huge one overflows.
  if (timeout > std::chrono::hours(24 * 365 * 100)) {
    state_->outcome.wait();
    return true;
  }
  if (timeout < duration{0})
    timeout = duration{0};
  return state_->outcome.wait_for(timeout) == std::future_status::ready;
}

void graph_run::stop() const {
  if (!finished())
    caf::anon_send(state_->supervisor, stop_atom_v);
}

const run_metrics& graph_run::metrics() const {
  static const run_metrics none;
  return state_ ? *state_->plan->metrics : none;
}

caf::actor graph_run::resource(const std::string& name) const {
  if (!state_)
    return {};
  auto i = state_->resources.find(name);
  return i == state_->resources.end() ? caf::actor{} : i->second;
}

run_report graph_run::report() const {
  run_report r;
  if (!state_) {
    r.status = "none";
    return r;
  }
  auto& plan = *state_->plan;
  r.graph = plan.graph.name;
  auto end = std::chrono::steady_clock::now();
  if (finished()) {
    auto& o = state_->outcome.get();
    r.status = to_string(o.what);
    r.message = o.message;
    r.unfinished = o.unfinished;
    end = state_->ended;
  } else {
    r.status = "running";
  }
  r.wall_seconds = std::chrono::duration<double>(end - state_->started).count();
  for (size_t i = 0; i < plan.metrics->nodes.size(); ++i) {
    auto n = snapshot(*plan.metrics->nodes[i]);
    auto kind = plan.types[i]->kind;
    if (kind == actor_kind::source)
      r.source_records += n.created;
    if (kind == actor_kind::sink)
      r.sink_records += n.out;
    r.dead_lettered += n.dead_lettered;
    r.restarts += n.restarts;
    r.redelivered += n.redelivered;
    r.lost += n.lost;
    r.in_flight += n.in_flight;
    r.nodes.push_back(std::move(n));
  }
  return r;
}

} // namespace troupe
