#include "graph_supervisor.hpp"

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <random>

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
#include "troupe/supervision.hpp"

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
  bool finished = false;      // exited normally: all its output acknowledged
  bool removed = false;       // a temporary node that failed: gone for good
  bool expected_down = false; // stopped by us, to be restarted with siblings
  uint32_t stop_batch = 0;     // the restart batch that stopped it
  uint32_t incarnations = 0;
  // What the node keeps across incarnations (node_context::memory).
  std::shared_ptr<std::unique_ptr<node_memory>> memory
    = std::make_shared<std::unique_ptr<node_memory>>();
};

// A child of a supervision scope: a node, or a nested group.
struct unit {
  bool is_group = false;
  size_t index = 0; // node index or scope index
};

// The root (scope 0) and one scope per YAML group, each with its own policy.
struct scope {
  std::string name;
  int parent = -1;
  supervision_spec policy;
  restart_budget budget;
  std::vector<unit> units; // in start order
};

// Nodes being stopped together, restarted together after a backoff.
struct restart_batch {
  std::vector<size_t> nodes;
  size_t pending_down = 0;
  duration delay{0};
};

struct supervisor_state {
  static inline const char* name = "troupe.supervisor";
  std::shared_ptr<const run_plan> plan;
  done_callback done;
  std::vector<child> children;
  std::vector<scope> scopes;
  std::vector<int> node_scope;
  std::map<uint32_t, restart_batch> batches;
  uint32_t next_batch = 0;
  std::minstd_rand rng{42}; // jitter; a fixed seed keeps tests repeatable
  bool stopping = false;
  bool completed = false;
  // The outcome is decided; the nodes still running were killed and the
  // run ends once they are down (or after a second): only then are their
  // counters final.
  bool ending = false;
  bool ended = false;
  run_outcome outcome;
  std::vector<size_t> killed;
};

using sup_pointer = graph_supervisor_actor::stateful_pointer<supervisor_state>;

void build_scopes(supervisor_state& st) {
  auto& g = st.plan->graph;
  st.scopes.push_back(
    {"root", -1, g.supervision,
     restart_budget{g.supervision.intensity, g.supervision.period}, {}});
  std::map<std::string, int> by_name;
  for (auto& grp : g.groups) {
    by_name[grp.name] = static_cast<int>(st.scopes.size());
    st.scopes.push_back({grp.name, 0, grp.supervision,
                         restart_budget{grp.supervision.intensity,
                                        grp.supervision.period},
                         {}});
  }
  for (size_t k = 0; k < g.groups.size(); ++k)
    if (!g.groups[k].parent.empty())
      st.scopes[k + 1].parent = by_name.at(g.groups[k].parent);
  // Start order is the graph's topological order (sources first); a group
  // starts where its first node starts.
  std::vector<bool> placed(st.scopes.size(), false);
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    int s = g.nodes[i].group.empty() ? 0 : by_name.at(g.nodes[i].group);
    st.node_scope.push_back(s);
    st.scopes[s].units.push_back({false, i});
    for (int t = s; t > 0 && !placed[t]; t = st.scopes[t].parent) {
      placed[t] = true;
      st.scopes[st.scopes[t].parent].units.push_back(
        {true, static_cast<size_t>(t)});
    }
  }
}

bool within(const supervisor_state& st, size_t node, int scope_index) {
  for (int s = st.node_scope[node]; s >= 0; s = st.scopes[s].parent)
    if (s == scope_index)
      return true;
  return false;
}

// What the producer of `e` sent to its consumer's current incarnation and
// the consumer never received died in the consumer's mailbox. Only when
// the consumer is down (its counters final).
void count_mailbox_loss(supervisor_state& st, const edge& e) {
  auto& m = *st.plan->metrics->nodes[e.consumer];
  auto sent = st.plan->metrics->nodes[e.producer]->sent_out[e.tag].exchange(
    0, std::memory_order_relaxed);
  auto got = m.received_in[e.in_port].load(std::memory_order_relaxed);
  if (sent > got)
    m.lose_unreceived(sent - got);
}

// Reports the outcome. What producers sent that a node killed at the end
// never received died in its mailbox: lost, counted there.
void end_run(sup_pointer self) {
  auto& st = self->state;
  if (st.ended)
    return;
  st.ended = true;
  for (auto c : st.killed)
    for (auto& e : st.plan->in_edges[c])
      count_mailbox_loss(st, e);
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
  // Stop what still runs in reverse start order: consumers go first.
  for (size_t i = st.children.size(); i > 0; --i) {
    auto& c = st.children[i - 1];
    if (c.alive) {
      outcome.unfinished.insert(outcome.unfinished.begin(),
                                st.plan->graph.nodes[i - 1].name);
      self->send_exit(c.handle, caf::exit_reason::kill);
      st.killed.push_back(i - 1);
    }
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
// counters balance against what it measurably holds, and nothing is held.
void check_completion(sup_pointer self) {
  auto& st = self->state;
  for (auto& c : st.children)
    if (!c.finished && !c.removed)
      return;
  for (auto& m : st.plan->metrics->nodes) {
    auto n = snapshot(*m);
    if (n.in_flight != 0 || !n.balanced()) {
      complete(self,
               {run_outcome::status::failed,
                "node '" + n.name + "' ended with its records unaccounted for: "
                  + std::to_string(n.in + n.created) + " in and created, "
                  + std::to_string(n.out + n.filtered + n.dead_lettered
                                   + n.retried + n.lost)
                  + " out, filtered, dead-lettered, retried or lost, "
                  + std::to_string(n.in_flight) + " still held",
                {}});
      return;
    }
  }
  // A source removed before it ended did not read all its input: whatever
  // it never made is counted nowhere, so the run cannot be a success.
  for (size_t i = 0; i < st.children.size(); ++i)
    if (st.children[i].removed
        && st.plan->types[i]->kind == actor_kind::source) {
      complete(self, {run_outcome::status::failed,
                      "temporary source '" + st.plan->graph.nodes[i].name
                        + "' was removed before it produced all its records",
                      {}});
      return;
    }
  // at_least_once promises every record: a temporary node that went away
  // with records (counted lost) leaves the rest of the graph to finish, but
  // the run did not deliver everything, so it does not end as a success.
  if (st.plan->graph.runtime.delivery == delivery_mode::at_least_once) {
    uint64_t lost = 0;
    std::string where;
    for (auto& m : st.plan->metrics->nodes)
      if (auto n = m->lost.load(std::memory_order_relaxed); n > 0) {
        lost += n;
        where += (where.empty() ? "" : ", ") + m->name + " " + std::to_string(n);
      }
    if (lost > 0) {
      complete(self, {run_outcome::status::failed,
                      std::to_string(lost)
                        + " records lost with removed temporary nodes ("
                        + where + ") although delivery is at_least_once",
                      {}});
      return;
    }
  }
  complete(self, {st.stopping ? run_outcome::status::interrupted
                              : run_outcome::status::completed,
                  st.stopping ? "stopped by signal; drained" : "", {}});
}

void start_child(sup_pointer self, size_t i) {
  auto& st = self->state;
  node_wiring w;
  for (auto& e : st.plan->out_edges[i]) {
    auto& consumer = st.children[e.consumer];
    w.consumers.push_back(consumer.removed ? caf::strong_actor_ptr{}
                                           : caf::actor_cast<caf::strong_actor_ptr>(
                                             consumer.handle));
    w.finished_consumers.push_back(consumer.finished);
  }
  for (auto& e : st.plan->in_edges[i]) {
    auto& producer = st.children[e.producer];
    w.closed_inputs.push_back(producer.finished || producer.removed);
  }
  w.incarnation = st.children[i].incarnations++;
  w.memory = st.children[i].memory;
  // A new incarnation has received nothing yet (account_held took what the
  // last one held).
  for (auto& u : st.plan->metrics->nodes[i]->unacked_in)
    u.store(0, std::memory_order_relaxed);
  for (auto& u : st.plan->metrics->nodes[i]->received_in)
    u.store(0, std::memory_order_relaxed);
  // Producers count what they send to this new incarnation from zero.
  for (auto& e : st.plan->in_edges[i])
    st.plan->metrics->nodes[e.producer]->sent_out[e.tag].store(
      0, std::memory_order_relaxed);
  auto h = spawn_node(self, st.plan, i, std::move(w));
  self->monitor(h);
  auto& c = st.children[i];
  c.handle = h;
  c.alive = true;
  c.expected_down = false;
}

// Counts what a dead incarnation held: redelivered by its upstream
// (at_least_once) or given up (at_most_once, or a removed temporary node).
void account_held(supervisor_state& st, size_t i, bool gone_for_good) {
  auto* m = st.plan->metrics->nodes[i].get();
  bool lost = gone_for_good
              || st.plan->graph.runtime.delivery == delivery_mode::at_most_once;
  // Emitted but never handed over: under at_least_once the replacement emits
  // them again (counted again in `out`); otherwise they are lost, not out.
  auto unsent = m->unsent.exchange(0, std::memory_order_relaxed);
  if (lost && unsent > 0) {
    m->out.fetch_sub(unsent, std::memory_order_relaxed);
    m->add(m->lost, unsent);
  }
  // What it held, as it last published it, and the batch it was handling.
  auto held = m->held.exchange(0, std::memory_order_relaxed)
              + m->processing.exchange(0, std::memory_order_relaxed);
  if (held > 0)
    m->add(lost ? m->lost : m->retried, held);
}

// A temporary node that failed is not restarted: its producers drop the edge
// to it and its consumers see their input closed.
void remove_child(sup_pointer self, size_t i) {
  auto& st = self->state;
  st.children[i].removed = true;
  account_held(st, i, true);
  for (auto& e : st.plan->in_edges[i])
    if (st.children[e.producer].alive)
      self->send(st.children[e.producer].handle, drop_atom_v, e.tag, false);
  for (auto& e : st.plan->out_edges[i])
    if (st.children[e.consumer].alive)
      self->send(st.children[e.consumer].handle, close_atom_v, e.in_port);
}

void restart_child(sup_pointer self, size_t i) {
  auto& st = self->state;
  auto* type = st.plan->types[i];
  if (!type->restartable
      && st.plan->metrics->nodes[i]->in.load(std::memory_order_relaxed) > 0) {
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
  m->add(m->restarts, 1);
  auto ptr = caf::actor_cast<caf::strong_actor_ptr>(st.children[i].handle);
  for (auto& e : st.plan->in_edges[i]) {
    auto& producer = st.children[e.producer];
    if (producer.alive && !producer.expected_down)
      self->send(producer.handle, rewire_atom_v, e.tag, ptr);
  }
  if (st.stopping && st.plan->types[i]->kind == actor_kind::source)
    self->send(st.children[i].handle, stop_atom_v);
}

// at_most_once: a producer and its consumer went down together, so nobody
// will send again what died in the consumer's mailbox (at_least_once
// redelivers it from further upstream). Both are dead: their gauges are
// final until the restarts below reset them.
void count_lost_in_transit(supervisor_state& st,
                           const std::vector<size_t>& nodes) {
  if (st.plan->graph.runtime.delivery != delivery_mode::at_most_once)
    return;
  auto down = [&](size_t i) { // went down with the batch, not finished
    return std::find(nodes.begin(), nodes.end(), i) != nodes.end()
           && !st.children[i].alive && !st.children[i].finished;
  };
  for (auto c : nodes)
    if (down(c))
      for (auto& e : st.plan->in_edges[c])
        if (down(e.producer))
          count_mailbox_loss(st, e);
}

void run_batch(sup_pointer self, uint32_t id) {
  auto& st = self->state;
  auto it = st.batches.find(id);
  if (it == st.batches.end() || st.completed)
    return;
  auto nodes = std::move(it->second.nodes);
  st.batches.erase(it);
  count_lost_in_transit(st, nodes);
  // Consumers first, so each restarted producer starts with their handles.
  std::sort(nodes.rbegin(), nodes.rend());
  for (auto i : nodes) {
    if (st.completed)
      return;
    auto& c = st.children[i];
    if (c.alive || c.finished || c.removed)
      continue;
    if (st.plan->graph.nodes[i].restart == restart_type::temporary)
      remove_child(self, i);
    else
      restart_child(self, i);
  }
  check_completion(self);
}

void maybe_schedule(sup_pointer self, uint32_t id) {
  auto& st = self->state;
  auto& b = st.batches.at(id);
  if (b.pending_down > 0)
    return;
  if (b.delay.count() > 0)
    self->delayed_send(self, b.delay, restart_atom_v, id);
  else
    self->send(self, restart_atom_v, id);
}

void stopped_for_batch(sup_pointer self, uint32_t id) {
  auto it = self->state.batches.find(id);
  if (it == self->state.batches.end() || it->second.pending_down == 0)
    return;
  --it->second.pending_down;
  maybe_schedule(self, id);
}

// Applies the scope's strategy to a failed unit; escalates up the scopes
// while budgets are exhausted. Returns false when the root gave up.
bool handle_failure(sup_pointer self, size_t failed_node,
                    const std::string& reason) {
  auto& st = self->state;
  auto now = self->clock().now();
  int s = st.node_scope[failed_node];
  unit failed{false, failed_node};
  while (!st.scopes[s].budget.admit(now)) {
    auto& sc = st.scopes[s];
    if (s == 0) {
      complete(self, {run_outcome::status::failed,
                      "node '" + st.plan->graph.nodes[failed_node].name
                        + "' failed and the restart budget is exhausted ("
                        + std::to_string(sc.policy.intensity) + " in "
                        + format_duration(sc.policy.period)
                        + "); last reason: " + reason,
                      {}});
      return false;
    }
    std::cerr << "troupe: group '" << sc.name
              << "' exhausted its restart budget; escalating to '"
              << st.scopes[sc.parent].name << "'\n";
    sc.budget.reset();
    failed = {true, static_cast<size_t>(s)};
    s = sc.parent;
  }
  auto& sc = st.scopes[s];
  size_t pos = 0;
  for (; pos < sc.units.size(); ++pos)
    if (sc.units[pos].is_group == failed.is_group
        && sc.units[pos].index == failed.index)
      break;
  restart_batch batch;
  for (auto k : restart_set(sc.policy.strategy, pos, sc.units.size())) {
    auto& u = sc.units[k];
    for (size_t i = 0; i < st.children.size(); ++i)
      if (u.is_group ? within(st, i, static_cast<int>(u.index)) : i == u.index)
        batch.nodes.push_back(i);
  }
  std::uniform_real_distribution<double> jitter(-1.0, 1.0);
  batch.delay = backoff_delay(sc.policy.backoff, sc.budget.recent(),
                              jitter(st.rng));
  auto id = st.next_batch++;
  // Stop the others in reverse start order; restart all once they are down.
  for (auto k = batch.nodes.rbegin(); k != batch.nodes.rend(); ++k) {
    auto& c = st.children[*k];
    if (c.alive && !c.expected_down) {
      c.expected_down = true;
      c.stop_batch = id;
      ++batch.pending_down;
      self->send_exit(c.handle, caf::exit_reason::kill);
    }
  }
  st.batches.emplace(id, std::move(batch));
  maybe_schedule(self, id);
  return true;
}

void on_down(sup_pointer self, caf::down_msg& dm) {
  auto& st = self->state;
  size_t i = 0;
  for (; i < st.children.size(); ++i)
    if (st.children[i].alive && st.children[i].handle.address() == dm.source)
      break;
  if (i == st.children.size())
    return;
  if (st.completed) {
    st.children[i].alive = false;
    if (st.ending
        && std::none_of(st.children.begin(), st.children.end(),
                        [](const child& c) { return c.alive; }))
      end_run(self);
    return;
  }
  auto& c = st.children[i];
  c.alive = false;
  auto& spec = st.plan->graph.nodes[i];
  if (!dm.reason) {
    // Finished: everything it sent is acknowledged.
    c.finished = true;
    for (auto& e : st.plan->out_edges[i]) {
      auto& consumer = st.children[e.consumer];
      if (consumer.alive)
        self->send(consumer.handle, close_atom_v, e.in_port);
    }
    // Its producers must not send it anything more (a restarted producer's
    // replay): it would never be acknowledged.
    for (auto& e : st.plan->in_edges[i]) {
      auto& producer = st.children[e.producer];
      if (producer.alive)
        self->send(producer.handle, drop_atom_v, e.tag, true);
    }
    if (c.expected_down)
      stopped_for_batch(self, c.stop_batch);
    c.expected_down = false;
    check_completion(self);
    return;
  }
  if (c.expected_down) {
    // Stopped by us as part of a group restart. A temporary node stays
    // down: what it held is lost, not redelivered.
    account_held(st, i, spec.restart == restart_type::temporary);
    stopped_for_batch(self, c.stop_batch);
    return;
  }
  auto* m = st.plan->metrics->nodes[i].get();
  m->add(m->errors, 1);
  auto reason = render(dm.reason);
  if (dm.reason.category() == caf::atom("troupe")
      && dm.reason.code() == static_cast<uint8_t>(errc::unrecoverable)) {
    // A restart cannot fix it (disk full, a closed pipe): fail now, loudly.
    // Nothing will deliver again what the node held: lost, not retried.
    account_held(st, i, true);
    complete(self, {run_outcome::status::failed,
                    "node '" + spec.name + "' failed and a restart cannot fix "
                      "it: " + reason,
                    {}});
    return;
  }
  if (spec.restart == restart_type::temporary) {
    std::cerr << "troupe: temporary node '" << spec.name << "' failed ("
              << reason << "); removed\n";
    remove_child(self, i);
    check_completion(self);
    return;
  }
  account_held(st, i, false);
  std::cerr << "troupe: node '" << spec.name << "' crashed (" << reason
            << "); restarting\n";
  handle_failure(self, i, reason);
}

graph_supervisor_actor::behavior_type
supervisor_fn(sup_pointer self, std::shared_ptr<const run_plan> plan,
              done_callback done) {
  auto& st = self->state;
  st.plan = plan;
  st.done = std::move(done);
  st.children.resize(plan->graph.nodes.size());
  build_scopes(st);
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
  for (size_t k = plan->graph.nodes.size(); k > 0; --k)
    start_child(self, k - 1);
  return {
    [=, &st = self->state](stop_atom) {
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
    [=](restart_atom, uint32_t id) { run_batch(self, id); },
    [=](timeout_atom) {
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
