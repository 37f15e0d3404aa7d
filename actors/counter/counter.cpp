// counter: the seed's SafeCounter as an actor. The actor is the lock: add and
// get are messages handled one at a time, so no caller ever sees a torn value.
// Protocol (troupe/actors/counter.hpp, counter_actor): add(n) -> new total,
// get -> total. Its slot: a node that names it (`counter: NAME`) adds the
// records it passes on.
#include <caf/actor_system.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "troupe/actors/builtin_types.hpp"
#include "troupe/actors/counter.hpp"
#include "troupe/hygiene.hpp"
#include "troupe/service.hpp"

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
  t.service = typed_service<counter_actor>(
    [](caf::actor_system& sys, const resource_spec& r) {
      return sys.spawn(counter_fn, r.params.integer("initial"));
    },
    [](const counter_actor& c, const slot_event& e) {
      if (e.what == slot_event::kind::passed_on)
        caf::anon_send(c, add_atom_v, static_cast<int64_t>(e.records));
    });
  return t;
}

} // namespace troupe::actors
