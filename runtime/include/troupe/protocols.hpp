// The public message protocols: what an embedder may send to troupe's actors.
//
// Protocols are caf::typed_actor aliases behind troupe's own names, so the
// compiler checks every send and a CAF upgrade touches few files. Each
// message type is registered once (type_ids.hpp) and has an `inspect`, so it
// can cross to a remote node. The protocols troupe's own actors speak among
// themselves (node, worker, graph supervisor) are internal (runtime/src/internal_protocols.hpp);
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

// A supervisor for any actors (supervisor.hpp): get(name) answers the
// child's current incarnation (an invalid handle while it is down or gone);
// stop stops the children in reverse start order, then the supervisor. Its
// restart and stop timers are internal to it.
using supervisor_actor
  = caf::typed_actor<caf::replies_to<get_atom, std::string>::with<caf::actor>,
                     caf::reacts_to<stop_atom>>;

} // namespace troupe
