// counter: the seed's SafeCounter as an actor. The actor is the lock: add and
// get are messages handled one at a time, so no caller ever sees a torn value.
// Protocol (protocols.hpp, counter_actor): add(n) -> new total, get -> total.
// Nodes that name it (`counter: NAME`) add the records they pass on.
#include <caf/actor_cast.hpp>
#include <caf/actor_system.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "troupe/actors/builtin_types.hpp"
#include "troupe/hygiene.hpp"
#include "troupe/protocols.hpp"

namespace troupe::actors {

namespace {

struct counter_state {
  static inline const char* name = "troupe.counter";
  int64_t value = 0;
};

counter_actor::behavior_type
counter_fn(counter_actor::stateful_pointer<counter_state> self,
           int64_t initial) {
  self->state.value = initial;
  install_exception_handler(self, "counter");
  install_default_handler(self, "counter");
  return {
    [=](add_atom, int64_t n) { return self->state.value += n; },
    [=](get_atom) { return self->state.value; },
  };
}

} // namespace

actor_type counter_type() {
  actor_type t;
  t.name = "counter";
  t.kind = actor_kind::service;
  t.protocol = "counter";
  t.doc = "A shared counter: add(n) -> total, get -> total.";
  t.params = {{"initial", param_type::integer, false, "0", "starting value",
               {}, INT64_MIN}};
  t.make_service = [](caf::actor_system& sys, const resource_spec& r) {
    return caf::actor_cast<caf::actor>(
      sys.spawn(counter_fn, r.params.integer("initial")));
  };
  return t;
}

} // namespace troupe::actors
