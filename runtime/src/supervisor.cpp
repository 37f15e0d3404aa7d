#include "supervisor.hpp"

#include <chrono>
#include <cmath>
#include <deque>
#include <iostream>
#include <random>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/system_messages.hpp>
#include <caf/exit_reason.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "node_actor.hpp"
#include "troupe/errors.hpp"
#include "troupe/hygiene.hpp"

namespace troupe {

const char* to_string(run_outcome::status x) {
  switch (x) {
    case run_outcome::status::completed:
      return "completed";
    case run_outcome::status::failed:
      return "failed";
    case run_outcome::status::interrupted:
      return "interrupted";
    default:
      return "timed_out";
  }
}

} // namespace troupe

namespace troupe::detail {

namespace {

using clock_type = std::chrono::steady_clock;

struct child {
  node_actor handle;
  bool alive = false;
  bool finished = false;
  uint32_t incarnations = 0;
  std::deque<clock_type::time_point> crashes; // within the budget period
};

struct supervisor_state {
  static inline const char* name = "troupe.supervisor";
  std::shared_ptr<const run_plan> plan;
  done_callback done;
  std::vector<child> children;
  std::minstd_rand rng{42}; // jitter; fixed seed keeps tests repeatable
  bool stopping = false;
  bool completed = false;
};

using sup_pointer = supervisor_actor::stateful_pointer<supervisor_state>;

void complete(sup_pointer self, run_outcome outcome) {
  auto& st = self->state;
  if (st.completed)
    return;
  st.completed = true;
  for (size_t i = 0; i < st.children.size(); ++i) {
    auto& c = st.children[i];
    if (c.alive) {
      outcome.unfinished.push_back(st.plan->graph.nodes[i].name);
      self->send_exit(c.handle, caf::exit_reason::kill);
    }
  }
  if (st.done)
    st.done(std::move(outcome));
  self->quit();
}

void start_child(sup_pointer self, size_t i) {
  auto& st = self->state;
  node_wiring w;
  for (auto& e : st.plan->out_edges[i])
    w.consumers.push_back(
      caf::actor_cast<caf::strong_actor_ptr>(st.children[e.consumer].handle));
  for (auto& e : st.plan->in_edges[i])
    w.closed_inputs.push_back(st.children[e.producer].finished);
  w.incarnation = st.children[i].incarnations++;
  auto h = spawn_node(self, st.plan, i, std::move(w));
  self->monitor(h);
  st.children[i].handle = h;
  st.children[i].alive = true;
}

void restart_child(sup_pointer self, size_t i) {
  auto& st = self->state;
  if (st.completed)
    return;
  start_child(self, i);
  st.plan->metrics->nodes[i]->add(st.plan->metrics->nodes[i]->restarts, 1);
  auto ptr = caf::actor_cast<caf::strong_actor_ptr>(st.children[i].handle);
  for (auto& e : st.plan->in_edges[i]) {
    auto& producer = st.children[e.producer];
    if (producer.alive)
      self->send(producer.handle, rewire_atom_v, e.tag, ptr);
  }
  if (st.stopping && st.plan->types[i]->kind == actor_kind::source)
    self->send(st.children[i].handle, stop_atom_v);
}

duration backoff(supervisor_state& st, size_t recent) {
  auto& sv = st.plan->graph.supervision;
  auto base = static_cast<double>(sv.backoff_min.count())
              * std::pow(2.0, static_cast<double>(recent > 0 ? recent - 1 : 0));
  base = std::min(base, static_cast<double>(sv.backoff_max.count()));
  std::uniform_real_distribution<double> jitter(-sv.backoff_jitter,
                                                sv.backoff_jitter);
  return duration{static_cast<int64_t>(base * (1.0 + jitter(st.rng)))};
}

void on_down(sup_pointer self, caf::down_msg& dm) {
  auto& st = self->state;
  size_t i = 0;
  for (; i < st.children.size(); ++i)
    if (st.children[i].alive && st.children[i].handle.address() == dm.source)
      break;
  if (i == st.children.size() || st.completed)
    return;
  auto& c = st.children[i];
  c.alive = false;
  auto& spec = st.plan->graph.nodes[i];
  auto* m = st.plan->metrics->nodes[i].get();
  if (!dm.reason) {
    c.finished = true;
    for (auto& e : st.plan->out_edges[i]) {
      auto& consumer = st.children[e.consumer];
      if (consumer.alive)
        self->send(consumer.handle, close_atom_v, e.in_port);
    }
    for (auto& other : st.children)
      if (!other.finished)
        return;
    complete(self, {st.stopping ? run_outcome::status::interrupted
                                : run_outcome::status::completed,
                    st.stopping ? "stopped by signal; drained" : "", {}});
    return;
  }
  // A crash: account for what the incarnation held, then restart it.
  m->add(m->errors, 1);
  auto held = m->in_flight();
  if (held > 0) {
    if (st.plan->graph.runtime.delivery == delivery_mode::at_most_once)
      m->add(m->lost, static_cast<uint64_t>(held));
    else
      m->add(m->retried, static_cast<uint64_t>(held));
  }
  auto reason = render(dm.reason);
  auto now = clock_type::now();
  auto& sv = st.plan->graph.supervision;
  c.crashes.push_back(now);
  while (!c.crashes.empty() && now - c.crashes.front() > sv.period)
    c.crashes.pop_front();
  if (c.crashes.size() > sv.intensity) {
    complete(self, {run_outcome::status::failed,
                    "node '" + spec.name + "' crashed "
                      + std::to_string(c.crashes.size()) + " times within "
                      + format_duration(sv.period)
                      + " (restart budget exhausted); last reason: " + reason,
                    {}});
    return;
  }
  std::cerr << "troupe: node '" << spec.name << "' crashed (" << reason
            << "); restarting\n";
  self->delayed_send(self, backoff(st, c.crashes.size()), restart_atom_v,
                     static_cast<uint32_t>(i));
}

supervisor_actor::behavior_type
supervisor_fn(sup_pointer self, std::shared_ptr<const run_plan> plan,
              done_callback done) {
  auto& st = self->state;
  st.plan = plan;
  st.done = std::move(done);
  st.children.resize(plan->graph.nodes.size());
  self->set_down_handler([self](caf::down_msg& dm) { on_down(self, dm); });
  install_default_handler(self, "supervisor of " + plan->graph.name);
  self->set_exception_handler(
    [self](caf::scheduled_actor*, std::exception_ptr& e) -> caf::error {
      complete(self, {run_outcome::status::failed,
                      "supervisor failed: " + describe(e), {}});
      return make_error(errc::stage_failed, "supervisor: " + describe(e));
    });
  // Consumers first, so every producer starts with its consumers' handles.
  for (size_t k = plan->graph.nodes.size(); k > 0; --k)
    start_child(self, k - 1);
  return {
    [=](stop_atom) {
      auto& st = self->state;
      if (st.stopping || st.completed)
        return;
      st.stopping = true;
      for (size_t i = 0; i < st.children.size(); ++i)
        if (st.children[i].alive
            && st.plan->types[i]->kind == actor_kind::source)
          self->send(st.children[i].handle, stop_atom_v);
      self->delayed_send(self, st.plan->graph.runtime.shutdown_timeout,
                         timeout_atom_v);
    },
    [=](restart_atom, uint32_t i) {
      if (i < self->state.children.size() && !self->state.children[i].alive)
        restart_child(self, i);
    },
    [=](timeout_atom) {
      complete(self, {run_outcome::status::timed_out,
                      "shutdown_timeout "
                        + format_duration(
                          self->state.plan->graph.runtime.shutdown_timeout)
                        + " expired before the graph drained",
                      {}});
    },
  };
}

} // namespace

supervisor_actor spawn_supervisor(caf::actor_system& sys,
                                  std::shared_ptr<const run_plan> plan,
                                  done_callback done) {
  return sys.spawn(supervisor_fn, std::move(plan), std::move(done));
}

} // namespace troupe::detail
