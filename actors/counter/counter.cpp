// counter: the seed's SafeCounter as an actor. The actor is the lock: add and
// get are messages handled one at a time, so no caller ever sees a torn value.
// Protocol (troupe/actors/counter.hpp, counter_actor): add(n) -> new total,
// get -> total, reset -> previous total, and the same per key (at most
// max_keys keys: a counter is memory too). Its slot: a node that names it
// (`counter: NAME`) adds the records it passes on to the total.
#include <map>
#include <string>
#include <utility>

#include <caf/actor_system.hpp>
#include <caf/result.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "troupe/actors/builtin_types.hpp"
#include "troupe/actors/counter.hpp"
#include "troupe/errors.hpp"
#include "troupe/hygiene.hpp"
#include "troupe/service.hpp"
#include "troupe/service_stats.hpp"

namespace troupe::actors {

namespace {

struct counter_state {
  static inline const char* name = "troupe.counter";
  int64_t value = 0;
  std::map<std::string, int64_t> keys;
  size_t max_keys = 0;
};

counter_actor::behavior_type
counter_fn(counter_actor::stateful_pointer<counter_state> self,
           int64_t initial, int64_t max_keys) {
  self->state.value = initial;
  self->state.max_keys = static_cast<size_t>(max_keys);
  install_exception_handler(self, "counter");
  install_default_handler(self, "counter");
  return {
    [=](add_atom, int64_t n) { return self->state.value += n; },
    [=](get_atom) { return self->state.value; },
    [=](reset_atom) { return std::exchange(self->state.value, 0); },
    [=](add_atom, const std::string& key,
        int64_t n) -> caf::result<int64_t> {
      auto& st = self->state;
      auto i = st.keys.find(key);
      if (i == st.keys.end()) {
        if (st.keys.size() >= st.max_keys)
          return make_error(errc::refused,
                            "counter: already " + std::to_string(st.max_keys)
                              + " keys (max_keys); '" + key + "' not added");
        i = st.keys.emplace(key, 0).first;
      }
      return i->second += n;
    },
    [=](get_atom, const std::string& key) {
      auto i = self->state.keys.find(key);
      return i == self->state.keys.end() ? int64_t{0} : i->second;
    },
    [=](reset_atom, const std::string& key) {
      auto& keys = self->state.keys;
      auto i = keys.find(key);
      if (i == keys.end())
        return int64_t{0};
      auto before = i->second;
      keys.erase(i);
      return before;
    },
    [=](keys_atom) { return counter_keys{self->state.keys}; },
  };
}

} // namespace

actor_type counter_type() {
  actor_type t;
  t.name = "counter";
  t.kind = actor_kind::service;
  t.protocol = "counter";
  t.doc = "A shared counter (the actor is the lock). Protocol: add(n) -> "
          "total, get -> total, reset -> previous total (then 0); per key: "
          "add(key, n) -> key's count, get(key) -> count (0 if never added), "
          "reset(key) -> previous count (key forgotten), keys -> every "
          "key's count. Keys and total are independent. A node's `counter:` "
          "slot adds the records it passes on to the total.";
  t.params = {{"initial", param_type::integer, false, "0",
               "starting value of the total", {}, INT64_MIN},
              {"max_keys", param_type::integer, false, "100000",
               "most per-key counters kept; add(key, n) of a new key beyond "
               "it is refused (troupe.refused)",
               {}, 1, 100'000'000}};
  t.service = typed_service<counter_actor>(
    [](caf::actor_system& sys, const resource_spec& r) {
      return sys.spawn(counter_fn, r.params.integer("initial"),
                       r.params.integer("max_keys"));
    },
    [](const counter_actor& c, const slot_event& e) {
      if (e.what == slot_event::kind::passed_on)
        caf::anon_send(c, add_atom_v, static_cast<int64_t>(e.records));
    });
  // /metrics: the total (a gauge: reset and negative adds move it down);
  // per-key counts stay out, up to max_keys series would swamp a scrape.
  t.service.read_stats = stats_reader<counter_actor, int64_t>(
    get_atom_v, [](int64_t total) {
      return std::vector<service_sample>{
          {"counted", "What a counter holds: its total now.", false,
           static_cast<double>(total)}};
    });
  return t;
}

} // namespace troupe::actors
