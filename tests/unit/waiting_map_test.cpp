// map through services (issue 8): `cache:` memoises the function, `pool:`
// runs it on a worker pool, `rate_limit:` paces it, together or alone; all on
// the test coordinator in virtual time.
#include <doctest/doctest.h>

#include <map>
#include <memory>
#include <optional>

#include <caf/event_based_actor.hpp>

#include "troupe/actors/cache.hpp"
#include "troupe/actors/rate_limiter.hpp"
#include "troupe/actors/type_ids.hpp"

#include "graph_harness.hpp"

using namespace troupe_test;

namespace {

struct map_harness : harness {
  std::map<std::string, int> computed; // per body, by the `count` function
  int poison_throws = 0;

  map_harness() {
    // `count`: body := body + "#", and counts how often each body was seen.
    reg.add_function("count", "", [this] {
      return record_fn{[this](record& r) {
        ++computed[r.body];
        r.body += "#";
        return fn_result::keep();
      }};
    });
    // `bad7`: fails a body "v7" (a record failure, not a crash).
    reg.add_function("bad7", "", [] {
      return record_fn{[](record& r) {
        if (r.body == "v7")
          return fn_result::fail("seven is bad");
        r.body += "#";
        return fn_result::keep();
      }};
    });
  }

  // Asks `h` from a fresh actor; the reply, if one came.
  template <class T, class Handle, class... Ts>
  std::optional<T> ask(const Handle& h, Ts... xs) {
    auto out = std::make_shared<std::optional<T>>();
    rt->system().spawn(
      [=](caf::event_based_actor* self, int) {
        self->request(h, std::chrono::seconds(5), xs...)
          .then([out](T& v) { *out = std::move(v); }, [](caf::error&) {});
      },
      0); // (the int: CAF 0.17 and argument-less function actors)
    sched->run();
    return *out;
  }
};

std::string memo_graph(int count, int cycle, const std::string& extra_node = "",
                       const std::string& resource = "{ type: cache }") {
  return "version: 1\nname: memo\n"
         "resources:\n  memo: "
         + resource
         + "\n"
           "nodes:\n"
           "  src: { type: generate, count: "
         + std::to_string(count) + ", template: \"v{i}\", cycle: "
         + std::to_string(cycle)
         + " }\n"
           "  m: { type: map, fn: count, cache: memo, inputs: [src]"
         + extra_node
         + " }\n"
           "  out: { type: collect, inputs: [m] }\n"
           "  bad: { type: collect, inputs: [m.errors] }\n";
}

} // namespace

TEST_CASE("map with cache: a repeated body costs no computation") {
  map_harness h;
  auto run = h.start(memo_graph(1000, 10));
  REQUIRE(h.drive(run));
  auto rep = run.report();
  CHECK(rep.status == "completed");
  check_balanced(rep);
  auto& got = h.sinks["out"].records;
  REQUIRE(got.size() == 1000);
  for (size_t i = 0; i < got.size(); ++i) {
    CHECK(got[i].seq == i); // ordered by default
    CHECK(got[i].body == "v" + std::to_string(i % 10) + "#");
  }
  // Ten distinct bodies: ten computations, each once, whatever the overlap.
  CHECK(h.computed.size() == 10);
  for (auto& [body, n] : h.computed)
    CHECK_MESSAGE(n == 1, body << " computed " << n << " times");
  auto stats = h.ask<cache_stats>(run.resource<cache_actor>("memo"),
                                  stats_atom_v);
  REQUIRE(stats);
  CHECK(stats->computations == 10);
  CHECK(stats->hits + stats->coalesced == 990);
}

TEST_CASE("map with cache by key memoises per record key") {
  map_harness h;
  auto run = h.start(
    "version: 1\nname: k\nresources:\n  memo: { type: cache }\nnodes:\n"
    "  src: { type: generate, count: 60, template: \"b{i}\", key: \"k{i}\", "
    "cycle: 3 }\n"
    "  m: { type: map, fn: count, cache: memo, cache_key: key, inputs: [src] }\n"
    "  out: { type: collect, inputs: [m] }\n");
  REQUIRE(h.drive(run));
  CHECK(run.report().status == "completed");
  CHECK(h.sinks["out"].records.size() == 60);
  CHECK(h.computed.size() == 3);
}

TEST_CASE("map with cache: a failed computation goes to errors, not cached") {
  map_harness h;
  auto yaml = memo_graph(30, 10, "", "{ type: cache }");
  yaml.replace(yaml.find("fn: count"), 9, "fn: bad7 ");
  auto run = h.start(yaml);
  REQUIRE(h.drive(run));
  auto rep = run.report();
  CHECK(rep.status == "completed");
  check_balanced(rep);
  CHECK(h.sinks["out"].records.size() == 27);
  REQUIRE(h.sinks["bad"].records.size() == 3); // v7 three times: each tried
  CHECK(*h.sinks["bad"].records[0].attr("error") == "seven is bad");
  auto stats = h.ask<cache_stats>(run.resource<cache_actor>("memo"),
                                  stats_atom_v);
  REQUIRE(stats);
  CHECK(stats->failures >= 1);
  CHECK(stats->entries == 9); // v7 is not cached
}

TEST_CASE("map with rate_limit is paced by the limiter, in virtual time") {
  map_harness h;
  auto run = h.start(
    "version: 1\nname: r\nresources:\n"
    "  api: { type: rate_limiter, rate: 10/s, burst: 5 }\n"
    "nodes:\n"
    "  src: { type: generate, count: 45 }\n"
    "  m: { type: map, fn: count, rate_limit: api, inputs: [src] }\n"
    "  out: { type: collect, inputs: [m] }\n");
  h.sched->run();
  // The burst goes at once; then one every 100 ms: 40 more take 4 s.
  CHECK(h.sinks["out"].records.size() == 5);
  for (int i = 0; i < 200; ++i) { // 2 s in steps of 10 ms
    h.sched->advance_time(std::chrono::milliseconds(10));
    h.sched->run();
  }
  auto at2s = h.sinks["out"].records.size();
  CHECK(at2s >= 24);
  CHECK(at2s <= 26);
  REQUIRE(h.drive(run));
  CHECK(run.report().status == "completed");
  CHECK(h.sinks["out"].records.size() == 45);
  auto stats = h.ask<limiter_stats>(run.resource<rate_limiter_actor>("api"),
                                    stats_atom_v);
  REQUIRE(stats);
  CHECK(stats->granted == 45);
}

TEST_CASE("map with pool and cache: computed on the pool once per body") {
  map_harness h;
  auto run = h.start(
    "version: 1\nname: p\nresources:\n"
    "  memo: { type: cache }\n"
    "  workers: { type: worker_pool, workers: 3, routing: key_hash }\n"
    "nodes:\n"
    "  src: { type: generate, count: 200, template: \"v{i}\", key: \"k{i}\", "
    "cycle: 20 }\n"
    "  m: { type: map, fn: count, cache: memo, pool: workers, "
    "max_in_flight: 16, inputs: [src] }\n"
    "  out: { type: collect, inputs: [m] }\n");
  REQUIRE(h.drive(run));
  auto rep = run.report();
  CHECK(rep.status == "completed");
  check_balanced(rep);
  auto& got = h.sinks["out"].records;
  REQUIRE(got.size() == 200);
  for (size_t i = 0; i < got.size(); ++i)
    CHECK(got[i].body == "v" + std::to_string(i % 20) + "#");
  CHECK(h.computed.size() == 20);
  for (auto& [body, n] : h.computed)
    CHECK_MESSAGE(n == 1, body << " computed " << n << " times");
}

TEST_CASE("crashes after a waiting map lose nothing") {
  map_harness h;
  // chaos kills its own node now and then (the batch that kills it is
  // redelivered by the map's outbox) while the map has lookups and
  // computations outstanding. (A crash of a waiting node itself:
  // waiting_test.cpp.)
  auto run = h.start(
    "version: 1\nname: c\nresources:\n  memo: { type: cache }\n"
    "nodes:\n"
    "  src: { type: generate, count: 500, template: \"v{i}\", cycle: 50 }\n"
    "  m: { type: map, fn: count, cache: memo, max_in_flight: 8, "
    "inputs: [src] }\n"
    "  k: { type: chaos, kill: 0.02, seed: 7, inputs: [m] }\n"
    "  out: { type: collect, inputs: [k] }\n");
  REQUIRE(h.drive(run));
  auto rep = run.report();
  CHECK(rep.status == "completed");
  check_balanced(rep);
  auto got = unique_seqs(h.sinks["out"]);
  CHECK(got.size() == 500);
}

TEST_CASE("lint: what a waiting map may not combine") {
  registry reg;
  register_builtins(reg);
  auto lint = [&](const std::string& res, const std::string& node) {
    auto r = load_graph_text("version: 1\nname: l\nresources:\n" + res
                               + "nodes:\n"
                                 "  src: { type: generate }\n"
                                 "  m: "
                               + node + "\n  out: { type: null, inputs: [m] }\n",
                             "l.yaml", reg);
    std::string all;
    for (auto& d : r.errors)
      all += d.str() + "\n";
    return all;
  };
  auto cache = std::string{"  memo: { type: cache }\n"};
  CHECK(lint(cache, "{ type: map, fn: upper, cache: memo, inputs: [src] }")
          .empty());
  CHECK(lint(cache, "{ type: map, fn: upper, cache: memo, workers: 4, "
                    "inputs: [src] }")
          .find("not 'workers'") != std::string::npos);
  CHECK(lint(cache, "{ type: map, fn: upper, cache: memo, blocking: true, "
                    "inputs: [src] }")
          .find("a pool resource takes 'blocking: true'") != std::string::npos);
  CHECK(lint(cache, "{ type: map, fn: upper, rate_by: key, inputs: [src] }")
          .find("l.yaml:7:30: error: 'rate_by' applies to a map with a "
                "'rate_limit' slot")
        != std::string::npos);
  CHECK(lint(cache, "{ type: map, fn: upper, max_in_flight: 9, inputs: [src] }")
          .find("applies to a map that waits") != std::string::npos);
  CHECK(lint(cache, "{ type: map, fn: upper, pool: memo, inputs: [src] }")
          .find("'pool' needs a resource speaking 'worker_pool'")
        != std::string::npos);
  CHECK(lint(cache, "{ type: map, fn: upper, cache: memo, max_in_flight: 0, "
                    "inputs: [src] }")
          .find("max_in_flight") != std::string::npos);
}

TEST_CASE("map with pool alone: records go in groups, each back to its own "
          "outcome") {
  map_harness h;
  // even keeps even integers and drops odd ones; square fails "x..." bodies.
  auto run = h.start(
    "version: 1\nname: g\nresources:\n"
    "  crew: { type: worker_pool, workers: 2 }\n"
    "nodes:\n"
    "  nums: { type: generate, count: 300, key: \"ka\" }\n"
    "  junk: { type: generate, count: 20, start: 1000, template: \"x{i}\" }\n"
    "  ev: { type: map, fn: even, pool: crew, max_in_flight: 32, "
    "inputs: [nums] }\n"
    "  sq: { type: map, fn: square, pool: crew, inputs: [ev, junk] }\n"
    "  out: { type: collect, inputs: [sq] }\n"
    "  bad: { type: collect, inputs: [sq.errors] }\n");
  REQUIRE(h.drive(run));
  auto rep = run.report();
  CHECK(rep.status == "completed");
  check_balanced(rep);
  auto& got = h.sinks["out"].records;
  REQUIRE(got.size() == 150);
  for (auto& r : got) {
    CHECK(r.seq % 2 == 0);
    CHECK(r.body == std::to_string(r.seq * r.seq));
  }
  CHECK(h.sinks["bad"].records.size() == 20);
  auto ev = std::find_if(rep.nodes.begin(), rep.nodes.end(),
                         [](auto& n) { return n.name == "ev"; });
  REQUIRE(ev != rep.nodes.end());
  CHECK(ev->filtered == 150);
}

TEST_CASE("map with cache memoises a filtering function: drops are cached "
          "too, never turned into errors") {
  map_harness h;
  auto run = h.start(
    "version: 1\nname: ev\nresources:\n  memo: { type: cache }\nnodes:\n"
    "  src: { type: generate, count: 400, cycle: 4 }\n"
    "  m: { type: map, fn: even, cache: memo, inputs: [src] }\n"
    "  out: { type: collect, inputs: [m] }\n"
    "  bad: { type: collect, inputs: [m.errors] }\n");
  REQUIRE(h.drive(run));
  auto rep = run.report();
  CHECK(rep.status == "completed");
  check_balanced(rep);
  CHECK(h.sinks["out"].records.size() == 200);
  CHECK(h.sinks["bad"].records.empty());
  auto stats = h.ask<cache_stats>(run.resource<cache_actor>("memo"),
                                  stats_atom_v);
  REQUIRE(stats);
  CHECK(stats->computations == 4); // "0".."3": the drops are cached as well
}
