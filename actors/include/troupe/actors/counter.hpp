// The `counter` service's protocol (the seed's SafeCounter: the actor is the
// lock). A node whose `counter:` slot names a counter resource adds the
// records it passes on to the total.
//
// Protocol (counter_actor):
//   add(n)         -> new total
//   get            -> total
//   reset          -> the total before; the total is 0 afterwards
//   add(key, n)    -> new count of key      (refused beyond max_keys keys)
//   get(key)       -> count of key (0 for a key never added)
//   reset(key)     -> the key's count before; the key is forgotten
//   keys           -> counter_keys: every key's count
// The total and the per-key counts are independent: add(key, n) does not
// change the total, and reset leaves the keys alone.
//
// Example (an embedder reading a counter after a run):
//   auto c = rt.resource<troupe::counter_actor>("seen");
//   self->request(c, std::chrono::seconds(5), troupe::get_atom_v)...
//   self->request(c, std::chrono::seconds(5), troupe::add_atom_v,
//                 std::string{"errors"}, int64_t{1})...
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include <caf/meta/type_name.hpp>
#include <caf/replies_to.hpp>
#include <caf/typed_actor.hpp>

#include "troupe/actors/type_ids.hpp"

namespace troupe {

// A snapshot of the per-key counts.
struct counter_keys {
  std::map<std::string, int64_t> counts;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, counter_keys& x) {
  return f(caf::meta::type_name("troupe::counter_keys"), x.counts);
}

using counter_actor = caf::typed_actor<
  caf::replies_to<add_atom, int64_t>::with<int64_t>,
  caf::replies_to<get_atom>::with<int64_t>,
  caf::replies_to<reset_atom>::with<int64_t>,
  caf::replies_to<add_atom, std::string, int64_t>::with<int64_t>,
  caf::replies_to<get_atom, std::string>::with<int64_t>,
  caf::replies_to<reset_atom, std::string>::with<int64_t>,
  caf::replies_to<keys_atom>::with<counter_keys>>;

} // namespace troupe
