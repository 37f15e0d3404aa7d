#include "graph_supervisor.hpp"

#include <chrono>
#include <iostream>
#include <map>

#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/exit_reason.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/system_messages.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "node_actor.hpp"
#include "troupe/errors.hpp"
#include "troupe/hygiene.hpp"
#include "troupe/report.hpp"
#include "supervision/completion.hpp"
#include "supervision/engine.hpp"
#include "supervision/transit.hpp"
#include "troupe/deadlock_detector.hpp"
#include "troupe/log.hpp"

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

namespace sv = supervision;

// The public interface (stop: drain) plus the supervisor's own timers,
// which only it sends to itself: restart_due(token), and the drain's
// shutdown_timeout / the end-of-run wait.
using graph_supervisor_impl
  = graph_supervisor_actor::extend<caf::reacts_to<restart_atom, uint64_t>,
                                   caf::reacts_to<timeout_atom>>;

struct child {
  node_actor handle;
  uint32_t incarnations = 0;
  // An incarnation of it received records, or records died in its mailbox:
  // a node whose state redelivery cannot rebuild is not restarted then.
  bool had_input = false;
  // What the node keeps across incarnations (node_context::memory).
  std::shared_ptr<std::unique_ptr<node_memory>> memory
    = std::make_shared<std::unique_ptr<node_memory>>();
};

struct supervisor_state {
  static inline const char* name = "troupe.supervisor";
  std::shared_ptr<const run_plan> plan;
  done_callback done;
  std::vector<child> children;
  // Decides restarts: groups are its scopes, nodes its units (graph order),
  // a restart set is killed at once. A fixed seed keeps tests repeatable.
  sv::engine engine{sv::stop_mode::together, {}, "root", 42};
  bool stopping = false;
  bool completed = false;
  // The outcome is decided; the nodes still running were killed and the
  // run ends once they are down (or after a second): only then are their
  // counters final.
  bool ending = false;
  bool ended = false;
  run_outcome outcome;
  std::vector<size_t> killed;
  // at_most_once: per node, per input port, what died in its incarnations'
  // mailboxes with no producer left to send it again.
  std::vector<std::vector<sv::transit_book>> transit;
};

using sup_pointer
  = graph_supervisor_impl::stateful_pointer<supervisor_state>;

void build_engine(supervisor_state& st) {
  auto& g = st.plan->graph;
  st.engine = sv::engine{sv::stop_mode::together, g.supervision, "root", 42};
  std::map<std::string, sv::scope_id> by_name;
  for (auto& grp : g.groups)
    by_name[grp.name] = st.engine.add_scope(grp.name, grp.supervision);
  for (auto& grp : g.groups)
    if (!grp.parent.empty())
      st.engine.set_parent(by_name.at(grp.name), by_name.at(grp.parent));
  // Start order is the graph's topological order (sources first).
  for (auto& n : g.nodes)
    st.engine.add_child(n.name, n.restart,
                        n.group.empty() ? sv::root_scope : by_name.at(n.group));
}

bool finished_or_removed(const supervisor_state& st, size_t i) {
  auto s = st.engine.state(i);
  return s == sv::unit_state::finished || s == sv::unit_state::removed;
}

// What the producer of `e` sent to its consumer's current incarnation and
// the consumer never received died in the consumer's mailbox: the
// supervisor's account of the consumer. Only when the consumer is down (its
// gauges final); the producer's edge gauge is taken, so it counts once.
void count_mailbox_loss(supervisor_state& st, const edge& e) {
  auto& m = *st.plan->metrics->nodes[e.consumer];
  auto& p = *st.plan->metrics->nodes[e.producer];
  // A producer not rewired yet counts what it sent an older incarnation.
  if (p.sent_to[e.tag].load(std::memory_order_relaxed) + 1
      != st.children[e.consumer].incarnations)
    return;
  auto sent = p.sent_out[e.tag].exchange(0, std::memory_order_relaxed);
  auto got = m.received_in[e.in_port].load(std::memory_order_relaxed);
  if (sent > got) {
    m.add(m.supervised.unreceived, sent - got);
    st.children[e.consumer].had_input = true;
  }
}

// The producer of `e` was removed for good and its consumer is down: what
// the producer would have sent its next incarnation again is lost, counted
// at the consumer as never received (sv::orphaned_records). The gauges are
// taken, so it counts once.
void count_orphaned(supervisor_state& st, const edge& e) {
  auto& m = *st.plan->metrics->nodes[e.consumer];
  auto sent = st.plan->metrics->nodes[e.producer]->sent_out[e.tag].exchange(
    0, std::memory_order_relaxed);
  auto got = m.received_in[e.in_port].load(std::memory_order_relaxed);
  auto unacked = m.unacked_in[e.in_port].exchange(0, std::memory_order_relaxed);
  auto n = sv::orphaned_records(st.plan->graph.runtime.delivery,
                                st.engine.state(e.consumer)
                                  == sv::unit_state::removed,
                                sent, got, unacked);
  if (n > 0) {
    m.add(m.supervised.unreceived, n);
    st.children[e.consumer].had_input = true;
  }
}

bool at_most_once(const supervisor_state& st) {
  return st.plan->graph.runtime.delivery == delivery_mode::at_most_once;
}

// The incarnation of node `i` that runs now (or ran last, when it is down).
uint32_t current_incarnation(const supervisor_state& st, size_t i) {
  auto n = st.children[i].incarnations;
  return n > 0 ? n - 1 : 0;
}

// Records of `e` lost in transit: counted at the consumer as never received.
void lose_in_transit(supervisor_state& st, const edge& e, uint64_t n) {
  if (n == 0)
    return;
  auto& m = *st.plan->metrics->nodes[e.consumer];
  m.add(m.supervised.unreceived, n);
  st.children[e.consumer].had_input = true;
}

// at_most_once: an incarnation of node `i` ended (crashed, stopped, killed,
// removed). As a producer, what it sent and was not received is nobody's to
// send again; as a consumer, what dead producers sent it and it never
// received died in its mailbox (supervision/transit.hpp). Its gauges are
// final; sent_out is taken, so nothing counts twice.
void incarnation_ended(supervisor_state& st, size_t i) {
  if (!at_most_once(st))
    return;
  auto& m = *st.plan->metrics->nodes[i];
  for (auto& e : st.plan->out_edges[i]) {
    auto sent = m.sent_out[e.tag].exchange(0, std::memory_order_relaxed);
    auto to = m.sent_to[e.tag].load(std::memory_order_relaxed);
    auto& book = st.transit[e.consumer][e.in_port];
    lose_in_transit(st, e, book.producer_ended(to, sent));
    // Its next incarnation sends to the consumer's current one: the older
    // ones are down and settled.
    book.forget_before(current_incarnation(st, e.consumer));
  }
  auto inc = current_incarnation(st, i);
  for (auto& e : st.plan->in_edges[i])
    lose_in_transit(st, e,
                    st.transit[i][e.in_port].consumer_ended(
                      inc, m.received_in[e.in_port].load(
                             std::memory_order_relaxed)));
}

// Reports the outcome. What producers sent that a node killed at the end
// never received died in its mailbox: lost, counted there.
void end_run(sup_pointer self) {
  auto& st = self->state;
  if (st.ended)
    return;
  st.ended = true;
  if (at_most_once(st)) {
    // Every node killed at the end is down now: its gauges are final.
    for (auto c : st.killed)
      incarnation_ended(st, c);
  } else {
    for (auto c : st.killed)
      for (auto& e : st.plan->in_edges[c])
        count_mailbox_loss(st, e);
  }
  if (st.done)
    st.done(std::move(st.outcome));
  self->quit();
}

// `wait`: let the nodes still running go down before ending the run (not
// possible from the supervisor's own exception handler).
void complete(sup_pointer self, run_outcome outcome, bool wait = true) {
  auto& st = self->state;
  if (st.completed)
    return;
  st.completed = true;
  // The engine kills what still runs in reverse start order: consumers go
  // first.
  for (auto& c : st.engine.shutdown())
    if (c.what == sv::command::op::kill)
      for (auto i : c.units) {
        outcome.unfinished.insert(outcome.unfinished.begin(),
                                  st.plan->graph.nodes[i].name);
        self->send_exit(st.children[i].handle, caf::exit_reason::kill);
        st.killed.push_back(i);
      }
  st.outcome = std::move(outcome);
  if (!wait || st.killed.empty()) {
    end_run(self);
    return;
  }
  st.ending = true; // a node stuck in a call may never go down: bounded
  self->delayed_send(self, std::chrono::seconds(1), timeout_atom_v);
}

// Every node ended: the run is over. It completed only if every node's
// counters balance against what it measurably holds, nothing is held, and
// nothing was lost that the delivery mode promised (completion.hpp).
void check_completion(sup_pointer self) {
  auto& st = self->state;
  for (size_t i = 0; i < st.children.size(); ++i)
    if (!finished_or_removed(st, i))
      return;
  std::vector<sv::ended_node> nodes;
  for (size_t i = 0; i < st.children.size(); ++i)
    nodes.push_back({snapshot(*st.plan->metrics->nodes[i]),
                     st.plan->types[i]->kind == actor_kind::source,
                     st.engine.state(i) == sv::unit_state::removed});
  auto why = sv::completion_failure(nodes, st.plan->graph.runtime.delivery);
  if (!why.empty()) {
    complete(self, {run_outcome::status::failed, why, {}});
    return;
  }
  complete(self, {st.stopping ? run_outcome::status::interrupted
                              : run_outcome::status::completed,
                  st.stopping ? "stopped; drained" : "", {}});
}

void start_child(sup_pointer self, size_t i) {
  auto& st = self->state;
  node_wiring w;
  for (auto& e : st.plan->out_edges[i]) {
    auto removed = st.engine.state(e.consumer) == sv::unit_state::removed;
    w.consumers.push_back(removed ? caf::strong_actor_ptr{}
                                  : caf::actor_cast<caf::strong_actor_ptr>(
                                    st.children[e.consumer].handle));
    w.finished_consumers.push_back(st.engine.state(e.consumer)
                                   == sv::unit_state::finished);
  }
  for (auto& e : st.plan->in_edges[i])
    w.closed_inputs.push_back(finished_or_removed(st, e.producer));
  // A restart: a producer removed for good, or a temporary one that is down
  // (it never comes back), will not send the new incarnation what the last
  // one had from it and had not acknowledged. Counted before the gauges
  // below forget the last incarnation.
  if (st.children[i].incarnations > 0)
    for (auto& e : st.plan->in_edges[i]) {
      auto s = st.engine.state(e.producer);
      if (s == sv::unit_state::removed
          || (st.plan->graph.nodes[e.producer].restart == restart_type::temporary
              && !st.engine.up(e.producer) && s != sv::unit_state::finished))
        count_orphaned(st, e);
    }
  w.incarnation = st.children[i].incarnations++;
  // What this incarnation sends goes to its consumers' current
  // incarnations (a consumer that is down gets a rewire to its next one).
  // sent_out goes on from the last incarnation's count when that sent to
  // the same consumer incarnation (at_least_once's count_orphaned needs all
  // of it; at_most_once took it when the last one ended).
  for (auto& e : st.plan->out_edges[i]) {
    auto& m = *st.plan->metrics->nodes[i];
    auto to = current_incarnation(st, e.consumer);
    if (m.sent_to[e.tag].exchange(to, std::memory_order_relaxed) != to)
      m.sent_out[e.tag].store(0, std::memory_order_relaxed);
  }
  w.memory = st.children[i].memory;
  // A new incarnation has received nothing yet (account_held took what the
  // last one held).
  for (auto& u : st.plan->metrics->nodes[i]->unacked_in)
    u.store(0, std::memory_order_relaxed);
  for (auto& u : st.plan->metrics->nodes[i]->received_in)
    u.store(0, std::memory_order_relaxed);
  // Producers count what they send to this new incarnation from zero: a
  // live one when it is rewired (its own gauge: until then it may still
  // send to the dead incarnation), one that is down here.
  for (auto& e : st.plan->in_edges[i])
    if (!st.engine.up(e.producer)) {
      st.plan->metrics->nodes[e.producer]->sent_out[e.tag].store(
        0, std::memory_order_relaxed);
      // Its next incarnation sends to this one: older ones are settled.
      if (at_most_once(st))
        st.transit[i][e.in_port].forget_before(current_incarnation(st, i));
    } else if (at_most_once(st)) {
      // It sends to none before the one it counts for.
      st.transit[i][e.in_port].forget_before(
        st.plan->metrics->nodes[e.producer]->sent_to[e.tag].load(
          std::memory_order_relaxed));
    }
  auto h = spawn_node(self, st.plan, i, std::move(w));
  // Named in deadlock reports; a kill by the detector's restart policy
  // comes back here as a crash.
  deadlock::name_actor(self->system(),
                       caf::actor_cast<caf::abstract_actor*>(h)->ctrl(),
                       st.plan->graph.nodes[i].name,
                       st.plan->types[i]->restartable
                         && st.plan->graph.nodes[i].restart
                              != restart_type::temporary);
  self->monitor(h);
  st.children[i].handle = h;
  st.engine.started(i);
}

// Accounts what a dead incarnation held, in the supervisor's own section of
// its metrics: redelivered by its upstream (at_least_once) or given up
// (at_most_once, or a removed temporary node). Its gauges (what it held as
// it last published them) are final now; they are taken, so a later
// incarnation publishes from zero and nothing counts twice.
void account_held(supervisor_state& st, size_t i, bool gone_for_good) {
  auto* m = st.plan->metrics->nodes[i].get();
  auto& sup = m->supervised;
  bool lost = gone_for_good
              || st.plan->graph.runtime.delivery == delivery_mode::at_most_once;
  // Emitted but never handed over: under at_least_once the replacement emits
  // them again (counted again in `out`); otherwise they are lost, not out.
  auto unsent = m->unsent.exchange(0, std::memory_order_relaxed);
  if (lost && unsent > 0)
    m->add(sup.withdrawn, unsent);
  // What it held, as it last published it, and the batch it was handling.
  auto held = m->held.exchange(0, std::memory_order_relaxed)
              + m->processing.exchange(0, std::memory_order_relaxed);
  if (held > 0)
    m->add(lost ? sup.lost : sup.retried, held);
  for (auto& r : m->received_in)
    if (r.load(std::memory_order_relaxed) > 0)
      st.children[i].had_input = true;
  // Inputs from producers removed before this incarnation went down: nobody
  // sends their records again. (A producer removed later: start_child.)
  for (auto& e : st.plan->in_edges[i])
    if (st.engine.state(e.producer) == sv::unit_state::removed)
      count_orphaned(st, e);
}

// A temporary node that is not restarted: its producers drop the edge to
// it and its consumers see their input closed.
void remove_child(sup_pointer self, size_t i) {
  auto& st = self->state;
  account_held(st, i, true);
  for (auto& e : st.plan->in_edges[i])
    if (st.engine.up(e.producer))
      self->send(st.children[e.producer].handle, drop_atom_v, e.tag, false);
  for (auto& e : st.plan->out_edges[i])
    if (st.engine.up(e.consumer))
      self->send(st.children[e.consumer].handle, close_atom_v, e.in_port);
}

void restart_child(sup_pointer self, size_t i) {
  auto& st = self->state;
  auto* type = st.plan->types[i];
  if (!type->restartable && st.children[i].had_input) {
    complete(self, {run_outcome::status::failed,
                    "node '" + st.plan->graph.nodes[i].name + "' (" + type->name
                      + ") went down holding state that redelivery cannot "
                        "rebuild; failing the run instead of restarting it "
                        "into a wrong result",
                    {}});
    return;
  }
  start_child(self, i);
  auto* m = st.plan->metrics->nodes[i].get();
  m->add(m->supervised.restarts, 1);
  auto ptr = caf::actor_cast<caf::strong_actor_ptr>(st.children[i].handle);
  for (auto& e : st.plan->in_edges[i])
    if (st.engine.state(e.producer) == sv::unit_state::running)
      self->send(st.children[e.producer].handle, rewire_atom_v, e.tag, ptr);
  if (st.stopping && st.plan->types[i]->kind == actor_kind::source)
    self->send(st.children[i].handle, stop_atom_v);
}

// Carries out the engine's commands.
void run(sup_pointer self, const sv::commands& cmds) {
  auto& st = self->state;
  for (auto& c : cmds) {
    if (st.completed)
      return;
    switch (c.what) {
      case sv::command::op::kill:
        for (auto i : c.units)
          self->send_exit(st.children[i].handle, caf::exit_reason::kill);
        break;
      case sv::command::op::schedule:
        if (c.delay.count() > 0)
          self->delayed_send(self, c.delay, restart_atom_v, c.token);
        else
          self->send(self, restart_atom_v, c.token);
        break;
      case sv::command::op::escalate:
        TROUPE_LOG(warn, "",
                   "group '" << st.engine.scope_name(c.scope)
                     << "' exhausted its restart budget; escalating to '"
                     << st.engine.scope_name(st.engine.scope_parent(c.scope))
                     << "'");
        break;
      case sv::command::op::fail: {
        auto& root = st.engine.scope_policy(sv::root_scope);
        complete(self, {run_outcome::status::failed,
                        "node '" + st.plan->graph.nodes[c.units[0]].name
                          + "' failed and the restart budget is exhausted ("
                          + std::to_string(root.intensity) + " in "
                          + format_duration(root.period)
                          + "); last reason: " + c.reason,
                        {}});
        break;
      }
      case sv::command::op::restart:
        // What died in transit was counted as each node went down
        // (incarnation_ended).
        break;
      case sv::command::op::remove:
        for (auto i : c.units)
          remove_child(self, i);
        break;
      case sv::command::op::start:
        // Consumers first, so each restarted producer starts with their
        // handles.
        for (auto k = c.units.rbegin(); k != c.units.rend() && !st.completed;
             ++k)
          restart_child(self, *k);
        break;
      default: // stop (one_by_one only), all_stopped (handled in on_down)
        break;
    }
  }
}

void on_down(sup_pointer self, caf::down_msg& dm) {
  auto& st = self->state;
  size_t i = 0;
  for (; i < st.children.size(); ++i)
    if (st.engine.up(i) && st.children[i].handle.address() == dm.source)
      break;
  if (i == st.children.size())
    return;
  auto now = self->clock().now();
  if (st.completed) {
    auto r = st.engine.child_down(i, sv::exit_kind::crash, "", now);
    for (auto& c : r.cmds)
      if (c.what == sv::command::op::all_stopped && st.ending)
        end_run(self);
    return;
  }
  auto& spec = st.plan->graph.nodes[i];
  auto reason = dm.reason ? render(dm.reason) : std::string{};
  bool fatal = dm.reason && dm.reason.category() == caf::atom("troupe")
               && dm.reason.code() == static_cast<uint8_t>(errc::unrecoverable);
  auto r = st.engine.child_down(i,
                                !dm.reason ? sv::exit_kind::finished
                                : fatal    ? sv::exit_kind::fatal
                                           : sv::exit_kind::crash,
                                reason, now);
  auto* m = st.plan->metrics->nodes[i].get();
  switch (r.what) {
    case sv::disposition::finished:
      // Finished: everything it sent is acknowledged.
      for (auto& e : st.plan->out_edges[i])
        if (st.engine.up(e.consumer))
          self->send(st.children[e.consumer].handle, close_atom_v, e.in_port);
      // Its producers must not send it anything more (a restarted producer's
      // replay): it would never be acknowledged.
      for (auto& e : st.plan->in_edges[i])
        if (st.engine.up(e.producer))
          self->send(st.children[e.producer].handle, drop_atom_v, e.tag, true);
      run(self, r.cmds);
      check_completion(self);
      return;
    case sv::disposition::stopped:
      // Stopped by us as part of a group restart. A temporary node stays
      // down: what it held is lost, not redelivered.
      incarnation_ended(st, i);
      account_held(st, i, spec.restart == restart_type::temporary);
      run(self, r.cmds);
      return;
    case sv::disposition::fatal:
      // A restart cannot fix it (disk full, a closed pipe): fail now, loudly.
      // Nothing will deliver again what the node held: lost, not retried.
      m->add(m->supervised.crashes, 1);
      incarnation_ended(st, i);
      account_held(st, i, true);
      complete(self, {run_outcome::status::failed,
                      "node '" + spec.name + "' failed and a restart cannot fix "
                        "it: " + reason,
                      {}});
      return;
    case sv::disposition::removed:
      m->add(m->supervised.crashes, 1);
      m->failures.note(true, 0, reason);
      TROUPE_LOG(warn, spec.name,
                 "temporary node failed (" << reason << "); removed");
      incarnation_ended(st, i);
      run(self, r.cmds);
      check_completion(self);
      return;
    case sv::disposition::restarting:
    case sv::disposition::failed:
      m->add(m->supervised.crashes, 1);
      m->failures.note(true, 0, reason);
      incarnation_ended(st, i);
      account_held(st, i, false);
      TROUPE_LOG(warn, spec.name, "crashed (" << reason << "); restarting");
      run(self, r.cmds);
      return;
    default:
      return;
  }
}

graph_supervisor_impl::behavior_type
supervisor_fn(sup_pointer self, std::shared_ptr<const run_plan> plan,
              done_callback done) {
  auto& st = self->state;
  st.plan = plan;
  st.done = std::move(done);
  st.children.resize(plan->graph.nodes.size());
  for (size_t i = 0; i < plan->in_edges.size(); ++i)
    st.transit.emplace_back(plan->in_edges[i].size());
  build_engine(st);
  self->set_down_handler([self](caf::down_msg& dm) { on_down(self, dm); });
  // Asked to exit (the runtime shutting down, a linked parent): take the
  // nodes down first, or they would outlive us and block the actor system.
  self->set_exit_handler([self](caf::exit_msg& em) {
    complete(self, {run_outcome::status::failed,
                    "supervisor stopped: " + render(em.reason), {}});
  });
  install_default_handler(self, "supervisor of " + plan->graph.name);
  self->set_exception_handler(
    [self](caf::scheduled_actor*, std::exception_ptr& e) -> caf::error {
      complete(self, {run_outcome::status::failed,
                      "supervisor failed: " + describe(e), {}},
               false);
      end_run(self); // this actor ends with the handler: report now
      return make_error(errc::stage_failed, "supervisor: " + describe(e));
    });
  // Consumers first, so every producer starts with its consumers' handles.
  for (auto& c : st.engine.start_all())
    for (auto k = c.units.rbegin(); k != c.units.rend(); ++k)
      start_child(self, *k);
  return {
    [=, &st = self->state](stop_atom) {
      if (st.stopping || st.completed)
        return;
      st.stopping = true;
      for (size_t i = 0; i < st.children.size(); ++i)
        if (st.engine.up(i) && st.plan->types[i]->kind == actor_kind::source)
          self->send(st.children[i].handle, stop_atom_v);
      self->delayed_send(self, st.plan->graph.runtime.shutdown_timeout,
                         timeout_atom_v);
    },
    // Timers: only our own count.
    [=, &st = self->state](restart_atom, uint64_t token) {
      if (self->current_sender() != self->ctrl() || st.completed)
        return;
      auto cmds = st.engine.restart_due(token, self->clock().now());
      if (cmds.empty())
        return;
      run(self, cmds);
      if (!st.completed)
        check_completion(self);
    },
    [=](timeout_atom) {
      if (self->current_sender() != self->ctrl())
        return;
      if (self->state.ending) {
        end_run(self); // gave the killed nodes a second to go down
        return;
      }
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

graph_supervisor_actor spawn_graph_supervisor(caf::actor_system& sys,
                                  std::shared_ptr<const run_plan> plan,
                                  done_callback done) {
  return sys.spawn(supervisor_fn, std::move(plan), std::move(done));
}

} // namespace troupe::detail
