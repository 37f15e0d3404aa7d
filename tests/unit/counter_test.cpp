// counter (issue 8, part 5): reset and per-key counters beside the total,
// the slot still counting what a node passes on. Test coordinator.
#include <doctest/doctest.h>

#include <memory>
#include <string>

#include <caf/event_based_actor.hpp>

#include "graph_harness.hpp"
#include "troupe/actors/counter.hpp"
#include "troupe/errors.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

// Sends `msg...` to the counter and returns the reply (or -1 and the error).
struct counter_probe {
  troupe_test::harness& h;
  counter_actor c;
  std::string last_error;

  template <class... Ts>
  int64_t ask(Ts... xs) {
    auto out = std::make_shared<int64_t>(-2);
    auto err = std::make_shared<std::string>();
    h.rt->system().spawn([c = c, out, err, xs...](caf::event_based_actor* self, int) {
      self->request(c, 1s, xs...)
        .then([out](int64_t n) { *out = n; },
              [out, err](caf::error& e) {
                *out = -1;
                *err = render(e);
              });
    }, 0);
    h.sched->run();
    last_error = *err;
    return *out;
  }

  counter_keys keys() {
    auto out = std::make_shared<counter_keys>();
    h.rt->system().spawn([c = c, out](caf::event_based_actor* self, int) {
      self->request(c, 1s, keys_atom_v).then([out](counter_keys& k) {
        *out = k;
      });
    }, 0);
    h.sched->run();
    return *out;
  }
};

} // namespace

TEST_CASE("counter: reset answers the total before and starts from 0") {
  troupe_test::harness h;
  auto run = h.start(R"(version: 1
resources:
  seen: { type: counter, initial: 7 }
nodes:
  src: { type: generate, count: 20, counter: seen }
  out: { type: collect, inputs: [src] }
)");
  REQUIRE(h.drive(run));
  counter_probe p{h, run.resource<counter_actor>("seen"), {}};
  CHECK(p.ask(get_atom_v) == 27); // the slot still adds what src passed on
  CHECK(p.ask(reset_atom_v) == 27);
  CHECK(p.ask(get_atom_v) == 0);
  CHECK(p.ask(add_atom_v, int64_t{5}) == 5);
  CHECK(p.ask(reset_atom_v) == 5);
  CHECK(p.ask(reset_atom_v) == 0);
}

TEST_CASE("counter: per-key counts are independent of each other and the "
          "total") {
  troupe_test::harness h;
  auto run = h.start(R"(version: 1
resources:
  hits: { type: counter, max_keys: 2 }
nodes:
  src: { type: generate, count: 1 }
  out: { type: collect, inputs: [src] }
)");
  REQUIRE(h.drive(run));
  counter_probe p{h, run.resource<counter_actor>("hits"), {}};
  CHECK(p.ask(add_atom_v, std::string{"a"}, int64_t{2}) == 2);
  CHECK(p.ask(add_atom_v, std::string{"a"}, int64_t{3}) == 5);
  CHECK(p.ask(add_atom_v, std::string{"b"}, int64_t{-1}) == -1);
  CHECK(p.ask(get_atom_v, std::string{"a"}) == 5);
  CHECK(p.ask(get_atom_v, std::string{"never"}) == 0);
  CHECK(p.ask(get_atom_v) == 0); // the total is apart
  auto k = p.keys();
  CHECK(k.counts == std::map<std::string, int64_t>{{"a", 5}, {"b", -1}});
  // A third key is beyond max_keys: refused, the others unchanged.
  CHECK(p.ask(add_atom_v, std::string{"c"}, int64_t{1}) == -1);
  CHECK(p.last_error.find("troupe.refused") != std::string::npos);
  CHECK(p.last_error.find("max_keys") != std::string::npos);
  // reset(key) answers the count before and forgets the key: room again.
  CHECK(p.ask(reset_atom_v, std::string{"a"}) == 5);
  CHECK(p.ask(get_atom_v, std::string{"a"}) == 0);
  CHECK(p.ask(add_atom_v, std::string{"c"}, int64_t{1}) == 1);
  CHECK(p.keys().counts.size() == 2);
  // reset (the total) leaves the keys alone.
  p.ask(add_atom_v, int64_t{4});
  CHECK(p.ask(reset_atom_v) == 4);
  CHECK(p.ask(get_atom_v, std::string{"c"}) == 1);
}
