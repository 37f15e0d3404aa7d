#include "troupe/runtime.hpp"

#include <map>
#include <thread>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/actor_system_config.hpp>
#include <caf/exit_reason.hpp>
#include <caf/scoped_execution_unit.hpp>
#include <caf/send.hpp>

#include "run_plan.hpp"
#include "graph_supervisor.hpp"
#include "troupe/errors.hpp"
#include "troupe/registry.hpp"
#include "troupe/type_ids.hpp"

namespace troupe {

struct runtime::impl {
  caf::actor_system_config cfg;
  std::unique_ptr<caf::actor_system> sys;
  std::vector<std::weak_ptr<graph_run::state>> runs;
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

runtime::runtime(const registry& reg, runtime_options opts)
  : reg_(reg), impl_(std::make_unique<impl>()) {
  auto& cfg = impl_->cfg;
  auto threads = opts.threads > 0
                   ? opts.threads
                   : std::max(1u, std::thread::hardware_concurrency());
  cfg.set("scheduler.max-threads", threads);
  // CAF 0.17 lets one busy actor run unboundedly; bound its turn so a flood
  // on one node cannot starve the others.
  cfg.set("scheduler.max-throughput", 64);
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
  // Stop what still runs, else the actor system's destructor waits forever.
  for (auto& w : impl_->runs)
    if (auto st = w.lock()) {
      if (st->supervisor)
        caf::anon_send_exit(st->supervisor, caf::exit_reason::user_shutdown);
      for (auto& [_, r] : st->resources)
        caf::anon_send_exit(r, caf::exit_reason::user_shutdown);
    }
}

caf::actor_system& runtime::system() {
  return *impl_->sys;
}

graph_run runtime::start(const graph_spec& graph) {
  graph_run run;
  run.state_ = std::make_shared<graph_run::state>();
  auto st = run.state_;
  st->outcome = st->promise.get_future().share();
  auto metrics = std::make_shared<run_metrics>();
  for (auto& n : graph.nodes) {
    auto m = std::make_unique<node_metrics>();
    m->name = n.name;
    m->type = n.type;
    metrics->nodes.push_back(std::move(m));
  }
  for (auto& r : graph.resources) {
    auto* t = reg_.find(r.type);
    if (t && t->make_service)
      st->resources[r.name] = t->make_service(*impl_->sys, r);
  }
  auto plan = detail::run_plan::make(graph, reg_, metrics, st->resources);
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
  return state_->outcome.wait_for(timeout) == std::future_status::ready;
}

void graph_run::stop() const {
  if (!finished())
    caf::anon_send(state_->supervisor, stop_atom_v);
}

const run_metrics& graph_run::metrics() const {
  return *state_->plan->metrics;
}

caf::actor graph_run::resource(const std::string& name) const {
  auto i = state_->resources.find(name);
  return i == state_->resources.end() ? caf::actor{} : i->second;
}

run_report graph_run::report() const {
  run_report r;
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
