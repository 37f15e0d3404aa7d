// The `counter` service's protocol (the seed's SafeCounter: the actor is the
// lock). add(n) answers the new total, get the total. A node whose
// `counter:` slot names a counter resource adds the records it passes on.
//
// Example (an embedder reading a counter after a run):
//   auto c = rt.resource<troupe::counter_actor>("seen");
//   self->request(c, std::chrono::seconds(5), troupe::get_atom_v)...
#pragma once

#include <cstdint>

#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "troupe/type_ids.hpp"

namespace troupe {

using counter_actor
  = caf::typed_actor<caf::replies_to<add_atom, int64_t>::with<int64_t>,
                     caf::replies_to<get_atom>::with<int64_t>>;

} // namespace troupe
