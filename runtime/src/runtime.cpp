#include "troupe/runtime.hpp"

#include <algorithm>
#include <atomic>
#include <iostream>
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

#include "deadlock/detector.hpp"
#include "troupe/deadlock.hpp"
#include "graph_supervisor.hpp"
#include "internal_protocols.hpp"
#include "resources.hpp"
#include "run_plan.hpp"
#include "troupe/errors.hpp"
#include "troupe/registry.hpp"
#include "troupe/service.hpp"
#include "troupe/type_ids.hpp"
#include "troupe/validate.hpp"
#include "troupe/log.hpp"

namespace troupe {

void add_message_types(caf::actor_system_config& cfg) {
  cfg.add_message_types<caf::id_block::troupe>();
  cfg.add_error_category(caf::atom("troupe"),
                         [](uint8_t code, caf::atom_value,
                            const caf::message& ctx) -> std::string {
                           caf::error e{code, caf::atom("troupe"), ctx};
                           return render(e);
                         });
}

namespace detail {

// A run's own resources. Stopped once: by graph_run::release(), when the
// run's last handle goes, or by ~runtime (after which nothing is sent to the
// dead actor system).
struct resource_group {
  std::mutex mtx;
  resource_map map;
  bool released = false;

  // Keeps `map` (resource() then says "released" rather than "unknown").
  void release() {
    {
      std::lock_guard<std::mutex> guard{mtx};
      if (released)
        return;
      released = true;
    }
    for (auto& [_, r] : map)
      caf::anon_send_exit(r->handle, caf::exit_reason::user_shutdown);
  }

  ~resource_group() {
    release();
  }
};

namespace {

std::string diagnostics_text(const std::vector<diagnostic>& diags) {
  std::string msg;
  for (auto& d : diags)
    msg += (msg.empty() ? "" : "\n") + d.str();
  return msg;
}

// The running services the slots of `spec` name (actor_type::calls), from
// `running`: the validator ordered a graph's resources so that these were
// spawned first.
std::shared_ptr<const slot_handles> handles_for(const resource_spec& spec,
                                                const resource_map& running) {
  auto out = std::make_shared<slot_handles>();
  for (auto& [slot, name] : spec.resources) {
    auto i = running.find(name);
    if (i == running.end() || i->second->released)
      throw std::invalid_argument("resource '" + spec.name + "': slot '"
                                  + slot + "' names '" + name
                                  + "', which is not running");
    out->by_slot[slot] = {name, i->second->handle, i->second->handle_type};
  }
  return out;
}

// Spawns the service `spec` (validated) of type `t`; `running` has the
// services its slots name.
std::shared_ptr<const resource_entry>
spawn_resource(caf::actor_system& sys, std::shared_ptr<const registry> reg,
               const actor_type& t, const resource_spec& spec,
               const resource_map& running) {
  auto e = std::make_shared<resource_entry>();
  e->spec = spec;
  e->protocol = t.protocol;
  e->handle_type = t.service.handle_type;
  e->on_node_event = t.service.on_node_event;
  e->make_client = t.service.make_client;
  auto for_factory = spec;
  for_factory.types = std::move(reg);
  for_factory.handles = handles_for(spec, running);
  try {
    e->handle = t.service.spawn(sys, for_factory);
  } catch (const std::exception& ex) {
    throw std::invalid_argument("resource '" + spec.name
                                + "': its factory threw: " + ex.what());
  }
  if (!e->handle)
    throw std::invalid_argument("resource '" + spec.name
                                + "': its factory returned no actor");
  deadlock::name_actor(sys, e->handle.get(), spec.name, false);
  return e;
}

// The handle in `r`, if it speaks `want` (nullptr: any protocol).
caf::strong_actor_ptr checked_handle(const resource_entry& r,
                                     const std::type_info* want) {
  if (want && (!r.handle_type || *want != *r.handle_type))
    throw std::invalid_argument("resource '" + r.spec.name + "' is a "
                                + r.spec.type + " and speaks protocol '"
                                + r.protocol
                                + "': ask for it as the handle type its "
                                  "service registered, or as caf::actor");
  return r.handle;
}

std::string unknown_resource(const std::string& name,
                             const resource_map& known) {
  std::string msg = "no resource '" + name + "'";
  std::string names;
  for (auto& [n, _] : known)
    names += (names.empty() ? "" : ", ") + n;
  return msg + (names.empty() ? " (there are none)" : " (known: " + names + ")");
}

} // namespace

// The deadlock detector's findings, for the run reports: every run reports
// those made while it ran (by position in the log).
struct notice_log {
  static constexpr size_t max_kept = 1000;
  std::mutex mtx;
  std::vector<deadlock_notice> kept; // the first max_kept
  uint64_t total = 0;

  void add(const deadlock_notice& n) {
    std::lock_guard<std::mutex> guard{mtx};
    if (kept.size() < max_kept)
      kept.push_back(n);
    ++total;
  }
  uint64_t position() {
    std::lock_guard<std::mutex> guard{mtx};
    return total;
  }
  // Texts of findings [from, to), and how many there were.
  uint64_t between(uint64_t from, uint64_t to, std::vector<std::string>& out) {
    std::lock_guard<std::mutex> guard{mtx};
    for (auto i = from; i < to && i < kept.size(); ++i)
      out.push_back(kept[i].text + " (" + kept[i].resolution + ")");
    return to > from ? to - from : 0;
  }
};

} // namespace detail

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
  // The runtime's own resources (add_resource), by name.
  detail::resource_map resources;
  // Every run's own resources still alive: ~runtime stops them.
  mutable std::vector<std::weak_ptr<detail::resource_group>> run_resources;
  // The deadlock detector and the table its waits come from. The table
  // outlives the actor system: a handler running during shutdown may still
  // end a wait.
  std::shared_ptr<deadlock::wait_table> waits;
  deadlock_detector_actor detector;
  deadlock::lock_listener_token lock_listener = 0;
  std::shared_ptr<detail::notice_log> notices
    = std::make_shared<detail::notice_log>();

  // Forgets finished runs and released resource groups (under mtx).
  void prune() const {
    runs.erase(std::remove_if(runs.begin(), runs.end(),
                              [](auto& st) {
                                return st->outcome.wait_for(duration{0})
                                       == std::future_status::ready;
                              }),
               runs.end());
    run_resources.erase(std::remove_if(run_resources.begin(),
                                       run_resources.end(),
                                       [](auto& g) { return g.expired(); }),
                        run_resources.end());
  }
};

struct graph_run::state {
  std::shared_ptr<const detail::run_plan> plan;
  graph_supervisor_actor supervisor;
  std::shared_ptr<detail::resource_group> own; // its `resources:` section
  std::promise<run_outcome> promise;
  std::shared_future<run_outcome> outcome;
  std::chrono::steady_clock::time_point started;
  std::chrono::steady_clock::time_point ended;
  // Deadlock findings: the log, and its positions at start and end.
  std::shared_ptr<detail::notice_log> notices;
  uint64_t notices_from = 0;
  std::atomic<uint64_t> notices_to{0}; // set when the run ended
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
  // The limit YAML's `runtime.threads` has: beyond it only start-up time grows.
  if (opts.threads > 256)
    throw std::invalid_argument("runtime_options.threads expects 0 (one per "
                                "hardware thread) or 1..256, got "
                                + std::to_string(opts.threads));
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
  add_message_types(cfg);
  for (auto& f : reg_->message_types())
    f(cfg);
  impl_->sys = std::make_unique<caf::actor_system>(cfg);
  if (opts.deadlock.probe_interval <= duration{0})
    throw std::invalid_argument("runtime_options.deadlock.probe_interval "
                                "must be positive");
  if (opts.deadlock.detect) {
    impl_->waits = std::make_shared<deadlock::wait_table>();
    if (!deadlock::install_table(impl_->sys.get(), impl_->waits.get()))
      troupe::log(troupe::log_level::warn, "",
          "deadlock detection is off for this runtime: too many runtimes in "
          "one process");
    impl_->detector = deadlock::spawn_detector(
      *impl_->sys, impl_->waits, opts.deadlock,
      [log = impl_->notices](const deadlock_notice& n) {
        log->add(n);
        // (A lock report was printed where it happened.)
        if (n.kind.rfind("lock_", 0) != 0)
          TROUPE_LOG(error, "",
                     "deadlock: " << n.text << " (" << n.resolution << ")");
      });
    // tracked_mutex's reports reach the detector's subscribers and the run
    // reports too.
    impl_->lock_listener = deadlock::add_lock_listener(
      [det = impl_->detector](const deadlock::lock_report& r) {
        caf::anon_send(det, deadlock_atom_v, deadlock::notice_of(r));
      });
  }
}

runtime::~runtime() {
  std::vector<std::shared_ptr<graph_run::state>> runs;
  std::vector<std::weak_ptr<detail::resource_group>> groups;
  detail::resource_map resources;
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    impl_->prune();
    runs = std::move(impl_->runs);
    groups = std::move(impl_->run_resources);
    resources = std::move(impl_->resources);
  }
  // Resources end after the runs (a draining node still reports to them),
  // before the actor system, which waits for every actor.
  auto stop_resources = [&] {
    for (auto& g : groups)
      if (auto p = g.lock())
        p->release();
    for (auto& [_, r] : resources) {
      r->released = true;
      caf::anon_send_exit(r->handle, caf::exit_reason::user_shutdown);
    }
  };
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
    stop_resources();
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
    stop_resources();
  }
  // Requests still waiting now will not be answered: an actor blocked in
  // .await on one (a cycle under policy report) would hold the actor
  // system's shutdown until its timeout.
  if (impl_->waits) {
    deadlock::answer_all(*impl_->waits, "the runtime is shutting down");
    if (impl_->deterministic)
      dynamic_cast<caf::scheduler::test_coordinator&>(impl_->sys->scheduler())
        .run();
  }
  resources.clear(); // the last handles, while the system still exists
  if (impl_->lock_listener != 0)
    deadlock::remove_lock_listener(impl_->lock_listener);
  if (impl_->detector) {
    caf::anon_send_exit(impl_->detector, caf::exit_reason::user_shutdown);
    if (impl_->deterministic)
      dynamic_cast<caf::scheduler::test_coordinator&>(impl_->sys->scheduler())
        .run();
    impl_->detector = nullptr;
  }
  deadlock::uninstall_table(impl_->sys.get());
  impl_->sys.reset();
  impl_->waits.reset(); // after the actors: none can end a wait any more
}

deadlock_detector_actor runtime::deadlock_detector() const {
  return impl_->detector;
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
  // The runtime's resources this graph uses: declared under the same name
  // and type, or named by a slot without a declaration (then added to the
  // spec so the validator sees them).
  detail::resource_map shared;
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    for (auto& r : spec.resources)
      if (auto i = impl_->resources.find(r.name);
          i != impl_->resources.end()) {
        if (r.type != i->second->spec.type)
          throw std::invalid_argument(
            "resource '" + r.name + "': the graph declares a " + r.type
            + ", but the runtime's resource '" + r.name + "' is a "
            + i->second->spec.type);
        shared.insert(*i);
      }
    std::vector<std::string> named;
    for (auto& n : spec.nodes)
      for (auto& [_, name] : n.resources)
        named.push_back(name);
    for (auto& r : spec.resources)
      for (auto& [_, name] : r.resources)
        named.push_back(name);
    // ... and, transitively, the runtime's resources those name.
    while (!named.empty()) {
      auto name = std::move(named.back());
      named.pop_back();
      if (auto i = impl_->resources.find(name);
          i != impl_->resources.end() && !shared.count(name)) {
        shared.insert(*i);
        spec.resources.push_back(i->second->spec);
        for (auto& [_, next] : i->second->spec.resources)
          named.push_back(next);
      }
    }
  }
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
  auto metrics = run_metrics::of(spec);
  st->own = std::make_shared<detail::resource_group>();
  auto resources = shared;
  // In spec order: validate() put what a resource calls before it.
  for (auto& r : spec.resources) {
    if (shared.count(r.name))
      continue;
    // On a throw, ~resource_group stops what was spawned so far.
    auto e = detail::spawn_resource(
      *impl_->sys, reg_, *reg_->find(r.type, actor_kind::service), r,
      resources);
    st->own->map.emplace(r.name, e);
    resources.emplace(r.name, std::move(e));
  }
  impl_->run_resources.push_back(st->own);
  auto plan = detail::run_plan::make(spec, reg_, metrics, std::move(resources));
  st->plan = plan;
  st->started = std::chrono::steady_clock::now();
  st->notices = impl_->notices;
  st->notices_from = st->notices->position();
  std::weak_ptr<graph_run::state> weak = st;
  st->supervisor = detail::spawn_graph_supervisor(
    *impl_->sys, plan, [weak](run_outcome outcome) {
      if (auto s = weak.lock()) {
        s->ended = std::chrono::steady_clock::now();
        s->notices_to = s->notices->position();
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

void runtime::add_resource(resource_spec spec) {
  // The validator's rules for a graph's resources, so both read alike; its
  // slots may name the resources running here.
  std::vector<resource_spec> running;
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    for (auto& [_, e] : impl_->resources)
      running.push_back(e->spec);
  }
  auto diags = validate(spec, *reg_, running);
  if (!diags.empty())
    throw std::invalid_argument(detail::diagnostics_text(diags));
  auto* t = reg_->find(spec.type, actor_kind::service);
  auto& r = spec;
  std::lock_guard<std::mutex> guard{impl_->mtx};
  if (r.name.empty() || impl_->resources.count(r.name))
    throw std::invalid_argument("resource '" + r.name + "': "
                                + (r.name.empty() ? "a resource needs a name"
                                                  : "the name is taken"));
  // (One its slots name released meanwhile: handles_for says so.)
  impl_->resources.emplace(r.name, detail::spawn_resource(*impl_->sys, reg_,
                                                          *t, r,
                                                          impl_->resources));
}

bool runtime::release_resource(const std::string& name) {
  std::shared_ptr<const detail::resource_entry> gone;
  {
    std::lock_guard<std::mutex> guard{impl_->mtx};
    auto i = impl_->resources.find(name);
    if (i == impl_->resources.end())
      return false;
    gone = std::move(i->second);
    impl_->resources.erase(i);
  }
  gone->released = true;
  caf::anon_send_exit(gone->handle, caf::exit_reason::user_shutdown);
  return true;
}

caf::strong_actor_ptr runtime::resource_ptr(const std::string& name,
                                            const std::type_info* want) const {
  std::lock_guard<std::mutex> guard{impl_->mtx};
  auto i = impl_->resources.find(name);
  if (i == impl_->resources.end())
    throw std::invalid_argument(
      detail::unknown_resource(name, impl_->resources));
  return detail::checked_handle(*i->second, want);
}

caf::strong_actor_ptr graph_run::resource_ptr(const std::string& name,
                                              const std::type_info* want) const {
  if (!state_)
    throw std::invalid_argument("no resource '" + name
                                + "': this graph_run has no graph");
  auto& own = *state_->own;
  {
    std::lock_guard<std::mutex> guard{own.mtx};
    if (auto i = own.map.find(name); i != own.map.end()) {
      if (own.released)
        throw std::invalid_argument("resource '" + name
                                    + "' of this run was released");
      return detail::checked_handle(*i->second, want);
    }
  }
  // A runtime resource the run uses (the plan never changes).
  auto& all = state_->plan->resources;
  auto i = all.find(name);
  if (i == all.end())
    throw std::invalid_argument(detail::unknown_resource(name, all));
  if (i->second->released)
    throw std::invalid_argument("resource '" + name
                                + "' was released by its runtime");
  return detail::checked_handle(*i->second, want);
}

void graph_run::release() const {
  if (state_)
    state_->own->release();
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
  auto to = finished() ? state_->notices_to.load() : state_->notices->position();
  r.deadlocks = state_->notices->between(state_->notices_from, to,
                                         r.deadlock_texts);
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
