// The public message protocols: what an embedder may send to troupe's actors.
//
// Protocols are caf::typed_actor aliases behind troupe's own names, so the
// compiler checks every send and a CAF upgrade touches few files. Each
// message type is registered once (type_ids.hpp) and has an `inspect`, so it
// can cross to a remote node. The protocols troupe's own actors speak among
// themselves (node, worker) are internal (runtime/src/internal_protocols.hpp);
// a service's protocol lives with the service (e.g. counter_actor in
// troupe/actors/counter.hpp).
#pragma once

#include <cstdint>
#include <string>

#include <caf/actor.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "troupe/type_ids.hpp"

namespace troupe {

// The graph supervisor: spawns, watches and restarts the nodes of one run.
// (Internal; embedders use supervisor_actor below.)
using graph_supervisor_actor
  = caf::typed_actor<caf::reacts_to<stop_atom>,
                     caf::reacts_to<restart_atom, uint32_t>,
                     caf::reacts_to<timeout_atom>>;

// A supervisor for any actors (supervisor.hpp): get(name) answers the
// child's current incarnation (an invalid handle while it is down or gone);
// stop stops the children in reverse start order, then the supervisor.
using supervisor_actor
  = caf::typed_actor<caf::replies_to<get_atom, std::string>::with<caf::actor>,
                     caf::reacts_to<stop_atom>,
                     caf::reacts_to<restart_atom, uint32_t>,
                     caf::reacts_to<timeout_atom, uint32_t>>;

} // namespace troupe
