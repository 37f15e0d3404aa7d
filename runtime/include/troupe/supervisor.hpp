// A supervisor for any actors, for embedders: OTP semantics (one_for_one,
// one_for_all, rest_for_one; intensity within period; permanent, transient
// and temporary children) plus jittered restart backoff.
//
// The supervisor starts its children in order and monitors them. When a child
// fails it applies its strategy: the children to restart are stopped one by
// one in reverse start order, then started again in start order after the
// backoff. When failures exceed the budget it stops every child in reverse
// start order and exits with troupe.restart_budget — so a supervisor started
// as another supervisor's child (supervisor_child) escalates to its parent.
// A child that does not stop within shutdown_timeout is killed.
//
// A start function that throws or returns an invalid handle is a failed
// start: it counts against the budget like a crash. A transient child that
// exits normally or with user_shutdown is not restarted (OTP's `shutdown`).
// Children may be spawned linked: the supervisor unlinks and monitors them,
// so a child's death never takes it down. Only its own timers restart or kill
// children; restart/timeout messages sent by anyone else are ignored.
//
// Example (the function actor takes an argument: CAF 0.17 dereferences a
// null argument tuple when a function actor takes none, which UBSan reports):
//   caf::behavior cache_fn(caf::event_based_actor* self, int capacity);
//   troupe::supervisor_config cfg;
//   cfg.policy.strategy = troupe::strategy::one_for_all;
//   cfg.children.push_back({"cache", troupe::restart_type::permanent,
//                           [](caf::local_actor& p) {
//                             return p.spawn(cache_fn, 1024);
//                           }});
//   auto sup = troupe::spawn_supervisor(sys, cfg);
//   // ask sup for the current cache: request(sup, 1s, get_atom_v, "cache")
#pragma once

#include <functional>
#include <string>
#include <vector>

#include <caf/fwd.hpp>

#include "troupe/graph_spec.hpp"
#include "troupe/protocols.hpp"
#include "troupe/supervision.hpp"

namespace troupe {

struct child_spec {
  std::string name;
  restart_type restart = restart_type::permanent;
  // Spawns one incarnation; called inside the supervisor (spawn with
  // `parent.spawn(...)`). The supervisor monitors what it returns.
  std::function<caf::actor(caf::local_actor& parent)> start;
};

struct supervisor_config {
  std::string name = "supervisor";
  supervision_spec policy;
  duration shutdown_timeout = std::chrono::seconds(5); // per child
  std::vector<child_spec> children;                    // in start order
};

supervisor_actor spawn_supervisor(caf::actor_system& sys,
                                  supervisor_config cfg);

// A child that is itself a supervisor: the way to nest supervision trees.
child_spec supervisor_child(std::string name, supervisor_config cfg,
                            restart_type restart = restart_type::permanent);

} // namespace troupe
