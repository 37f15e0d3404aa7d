// The deadlock detector: one actor per runtime that watches every request
// between troupe actors, finds the ones that wait on each other in a cycle
// (A asks B, B asks C, C asks A), on themselves or on dead actors, reports
// them and, by policy, resolves them. The graph logic is the CAF-free
// wait_graph (deadlock.hpp); this is the actor around it.
//
// How waits are seen without a round trip: troupe::ask() and the nodes' calls
// put each outstanding request in the runtime's wait table (a sharded table
// of plain entries: a lock, a slot, no message, ~tens of ns) and take it out
// when the reply, the error or the timeout arrives. Every probe interval the
// detector reads the entries at least 0.9 intervals old into its wait_graph
// and probes it, so a cycle is reported between 0.9 and 1.9 intervals after
// it forms (plus timer latency: within two), and a slow but progressing chain
// whose waits end sooner never is (deadlock.hpp, "the detection rule"). The typed protocol below is for everything else: waits that other
// code registers itself, queries and subscriptions.
//
// What is a deadlock: a cycle of waits of which at least one blocks its
// waiter (request(...).await or a blocking receive, or a wait registered by
// message), an actor blocked on itself, or one blocked on a dead actor. A
// waiter using .then goes on handling messages, and its reply may come from
// elsewhere (a promise handed to another actor, a timer), so waits made only
// with .then are listed (get_atom) but never reported: a cycle of them is
// left to the requests' timeouts.
//
// Resolution (deadlock_policy):
//   report  - log, count and notify; the requests go on waiting until their
//             own timeout.
//   fail    - each waiting request of the cycle (or the self-wait, or the
//             wait on a dead actor) gets a troupe `deadlock` error as its
//             reply now, instead of a silent timeout later. Works even for
//             an actor blocked in request(...).await, which ignores every
//             other message.
//   restart - one member that has a supervisor (a YAML node, a child of
//             troupe::spawn_supervisor) gets the error and is then killed;
//             its supervisor restarts it (a node's records are redelivered).
//             With no supervised member it falls back to fail.
//
// Example (an embedder; runtime_options::deadlock sets the policy):
//   troupe::runtime rt{reg, opts};
//   auto det = rt.deadlock_detector();
//   caf::anon_send(det, troupe::subscribe_atom_v, my_listener);
//   // my_listener receives (deadlock_atom, troupe::deadlock_notice)
#pragma once

#include <cstdint>
#include <string>
#include <typeinfo>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_control_block.hpp>
#include <caf/fwd.hpp>
#include <caf/timespan.hpp>
#include <caf/typed_actor.hpp>

#include "troupe/graph_spec.hpp"
#include "troupe/type_ids.hpp"

namespace troupe {

// One finding, as subscribers, the run report and the log see it.
struct deadlock_notice {
  // cycle | self_wait | dead_holder, or a tracked_mutex report:
  // lock_inversion | lock_timeout | lock_self_deadlock |
  // lock_unlock_not_owner | lock_unlock_not_held | lock_destroyed_held
  std::string kind;
  std::vector<std::string> members;       // display names, in wait order
  std::vector<uint64_t> member_ids;       // actor ids, parallel to members
  std::vector<std::string> message_types; // the message on each wait
  std::string text;       // "cycle a →(get) b →(get) c →(get) a"
  std::string resolution; // "reported" | "failed 3 requests" | "restarted b"
  int64_t detected_ns = 0; // steady clock, since its epoch
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, deadlock_notice& x) {
  return f(x.kind, x.members, x.member_ids, x.message_types, x.text,
           x.resolution, x.detected_ns);
}

// One outstanding wait, as a query answers it.
struct deadlock_wait {
  uint64_t id = 0;
  uint64_t waiter = 0;
  uint64_t holder = 0;
  std::string waiter_name;
  std::string holder_name;
  std::string message_type;
  int64_t age_ns = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, deadlock_wait& x) {
  return f(x.id, x.waiter, x.holder, x.waiter_name, x.holder_name,
           x.message_type, x.age_ns);
}

// What the detector did so far.
struct deadlock_stats {
  uint64_t probes = 0;
  uint64_t reports = 0;      // every kind
  uint64_t cycles = 0;
  uint64_t self_waits = 0;
  uint64_t dead_holders = 0;
  uint64_t failed_requests = 0; // deadlock errors delivered
  uint64_t restarts = 0;        // members killed for their supervisor
  uint64_t waits_seen = 0;      // waits old enough to enter the graph
  uint64_t waits_expired = 0;   // dropped past their deadline
  uint64_t lock_reports = 0;    // tracked_mutex findings passed on
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, deadlock_stats& x) {
  return f(x.probes, x.reports, x.cycles, x.self_waits, x.dead_holders,
           x.failed_requests, x.restarts, x.waits_seen, x.waits_expired,
           x.lock_reports);
}

// The detector's typed protocol.
//   (wait_atom, waiter, holder, type, timeout) -> wait id
//       registers a wait that is no troupe::ask (from other code); no
//       resolution can answer it for the waiter, so it is only reported.
//   (clear_atom, wait id)                 the wait ended
//   (name_atom, actor, name, restartable) a display name for reports; a
//       restartable actor is one its supervisor restarts when it is killed
//   (get_atom) -> waits                   the outstanding waits (any age)
//   (deadlock_stats_atom) -> deadlock_stats
//   (subscribe_atom, actor)               the actor receives
//       (deadlock_atom, deadlock_notice) for every finding; it is dropped
//       when it dies
//   (probe_atom)                          probes now (its timer does so
//                                         every interval by itself)
//   (tick_atom)                           its own timer; not for others
//   (deadlock_atom, deadlock_notice)      a finding made elsewhere (the
//       runtime forwards tracked_mutex's lock reports here: kind
//       lock_inversion, lock_timeout, ...): counted, logged, passed on
using deadlock_detector_actor = caf::typed_actor<
  caf::replies_to<wait_atom, caf::strong_actor_ptr, caf::strong_actor_ptr,
                  std::string, caf::timespan>::with<uint64_t>,
  caf::reacts_to<clear_atom, uint64_t>,
  caf::reacts_to<name_atom, caf::strong_actor_ptr, std::string, bool>,
  caf::replies_to<get_atom>::with<std::vector<deadlock_wait>>,
  caf::replies_to<deadlock_stats_atom>::with<deadlock_stats>,
  caf::reacts_to<subscribe_atom, caf::actor>,
  caf::reacts_to<probe_atom>, caf::reacts_to<tick_atom>,
  caf::reacts_to<deadlock_atom, deadlock_notice>>;

namespace deadlock {

// The runtime side of the wait table: what ask() and the nodes call. All are
// thread-safe and cheap; with no detector on `sys` they do nothing.

// An outstanding request, to be ended with end_wait. Zero: not tracked.
struct ticket {
  void* table = nullptr;
  uint64_t id = 0;
};

// `waiter` asked `holder` (message `type`, a string that outlives the
// process: a literal or a label_of<T>()) under `timeout`; `response_id` is
// the request's response message id (response_handle::id()), which a
// resolution answers with the deadlock error.
ticket begin_wait(caf::actor_system& sys, caf::actor_control_block* waiter,
                  caf::actor_control_block* holder, const char* type,
                  duration timeout, uint64_t response_id);
void end_wait(const ticket& t) noexcept;
// The waiter blocks until the reply (.await, a blocking receive): only
// blocking waits make deadlocks (see "what is a deadlock" above).
void mark_blocking(const ticket& t) noexcept;

// The label of a message sent as a caf::message (race, gather): its first
// atom's text, or "message".
const char* label_of(const caf::message& msg);

// The readable name of a type, for labels ("std::string", not its mangled
// name).
std::string type_label(const std::type_info& t);

// A display name for `who` in reports (a YAML node, a supervisor's child);
// `restartable`: its supervisor restarts it when it is killed.
void name_actor(caf::actor_system& sys, caf::actor_control_block* who,
                std::string name, bool restartable);

} // namespace deadlock

} // namespace troupe
