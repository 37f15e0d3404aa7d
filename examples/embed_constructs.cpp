// A pricing service that embeds troupe and uses its constructs by typed
// handle, from an actor of its own:
// - a cache (single-flight get_or_compute), a rate limiter (acquire/release)
//   and a worker pool (a C++ callable and a registered record function);
// - a long-running graph `queue -> map (cache, rate limiter) -> queue` that
//   the service feeds with requests and reads answers from, round after
//   round, until it closes the input queue and the graph completes.
// Every answer is checked; exits non-zero on any mismatch (it is a test).
#include <caf/actor_system.hpp>
#include <caf/event_based_actor.hpp>
#include <caf/scoped_actor.hpp>
#include <caf/send.hpp>
#include <caf/stateful_actor.hpp>

#include <atomic>
#include <future>
#include <iostream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "troupe/actors/cache.hpp"
#include "troupe/actors/queue.hpp"
#include "troupe/actors/rate_limiter.hpp"
#include "troupe/actors/worker_pool.hpp"
#include "troupe/errors.hpp"
#include "troupe/loader.hpp"
#include "troupe/registry.hpp"
#include "troupe/runtime.hpp"

using namespace std::chrono_literals;

namespace {

constexpr int rounds = 4, per_round = 25, skus = 15;
std::atomic<int> quotes_run{0}; // how often the pricing function really ran

// The service's (deterministic) pricing function: "sku-7" -> "sku-7=149".
std::string price_of(const std::string& sku) {
  int n = std::stoi(sku.substr(4));
  return sku + "=" + std::to_string(100 + n * n % 97);
}

// The resources are declared here and become the runtime's (in main): they
// outlive the run, and the service holds typed handles to them.
const char* graph_yaml = R"(version: 1
name: pricing
resources:
  requests: { type: queue, capacity: 64 }    # C++ pushes, the graph pops
  answers:  { type: queue, capacity: 256 }   # the graph pushes, C++ pops
  prices:   { type: cache, capacity: 1000, ttl: 10m }
  pace:     { type: rate_limiter, rate: 2000/s, burst: 50, max_in_flight: 16 }
nodes:
  in:    { type: queue, queue: requests }
  price: { type: map, fn: quote, cache: prices, rate_limit: pace,
           max_in_flight: 16, inputs: [in] }
  out:   { type: queue, queue: answers, inputs: [price] }
)";

struct outcome {
  std::vector<std::string> errors;
  int answers = 0, fx_computed = 0;
};

struct service_state {
  troupe::cache_actor cache;
  troupe::rate_limiter_actor limiter;
  troupe::worker_pool_actor pool;
  troupe::queue_actor requests, answers;
  std::shared_ptr<std::promise<outcome>> done; // empty once finished
  outcome out;
  int steps_left = 0, round = 0;
  bool closing = false; // requests closed: pop answers to the end
  uint64_t permit = 0;
  std::map<std::string, std::string> expected; // request key -> answer body
};
using service_actor = caf::stateful_actor<service_state>;

void check(service_actor* self, bool ok, std::string what) {
  if (!ok)
    self->state.out.errors.push_back(std::move(what));
}

void finish(service_actor* self) {
  auto& st = self->state;
  if (!st.done)
    return;
  for (auto& e : st.expected)
    st.out.errors.push_back("no answer for " + e.first);
  st.done->set_value(std::move(st.out));
  st.done.reset();
  self->quit();
}

// A failed request ends the service (the main thread reports it).
auto fail_with(service_actor* self, std::string what) {
  return [self, what](caf::error& err) {
    check(self, false, what + ": " + troupe::render(err));
    finish(self);
  };
}

void feed_round(service_actor* self);

// Part 1 ends when every direct call answered: the permit goes back.
void step_done(service_actor* self) {
  if (--self->state.steps_left > 0)
    return;
  self->send(self->state.limiter, troupe::release_atom_v, self->state.permit);
  std::cout << "direct calls done, permit released\n";
  feed_round(self);
}

// Part 1: the constructs called directly, under one limiter permit.
void direct_calls(service_actor* self) {
  auto& st = self->state;
  st.steps_left = 2 + 20;
  // A C++ callable, run on a pool worker (not on this actor).
  troupe::submit_callable(self, st.pool, 5s, [] {
    return std::to_string(1000L * 1001 / 2);
  }).then([=](troupe::pool_result& r) {
    check(self, r.value == "500500", "pool callable gave " + r.value);
    step_done(self);
  }, fail_with(self, "pool callable"));
  // A registered record function on the pool, over a batch.
  std::vector<troupe::record> two(2);
  two[0].body = "sku-1";
  two[1].body = "sku-2";
  self->request(st.pool, 5s, troupe::pool_submit_atom_v,
                troupe::make_function_task("quote", troupe::record_batch{two}))
    .then([=](troupe::pool_result& r) {
      auto rs = r.kept.records();
      check(self, r.kept.size() == 2 && rs.begin()[0].body == "sku-1=101"
                    && rs.begin()[1].body == "sku-2=104", "pool quote batch");
      step_done(self);
    }, fail_with(self, "pool quote"));
  // 20 concurrent lookups over 4 keys: single flight computes each once.
  static const std::map<std::string, std::string> fx = {
    {"fx:EUR", "0.92"}, {"fx:GBP", "0.79"}, {"fx:JPY", "151.2"},
    {"fx:CHF", "0.88"}};
  for (int i = 0; i < 20; ++i) {
    auto key = std::next(fx.begin(), i % 4)->first;
    troupe::get_or_compute(
      self, st.cache, key, 5s,
      [=](const std::string& k) { // runs in this actor, once per key
        ++self->state.out.fx_computed;
        return fx.at(k);
      },
      [=](troupe::call_result<std::string> v) {
        check(self, v.ok() && v.value() == fx.at(key), "fx " + key);
        step_done(self);
      });
  }
}

void pull(service_actor* self);

// Part 2: one round of incoming requests, pushed into the graph's queue.
void feed_round(service_actor* self) {
  auto& st = self->state;
  if (st.round == rounds) { // no more requests: close, the graph completes
    st.closing = true;
    self->request(st.requests, 5s, troupe::queue_close_atom_v)
      .then([=](uint64_t) { pull(self); }, fail_with(self, "close"));
    return;
  }
  std::vector<troupe::record> batch(per_round);
  for (int i = 0; i < per_round; ++i) {
    batch[i].key = "req-" + std::to_string(st.round) + "-" + std::to_string(i);
    batch[i].body = "sku-" + std::to_string((st.round * 7 + i) % skus);
    st.expected[batch[i].key] = price_of(batch[i].body);
  }
  // Answered once all are in (a full queue makes us wait: backpressure).
  self->request(st.requests, 10s, troupe::queue_push_atom_v,
                troupe::record_batch{std::move(batch)}, caf::timespan{5s})
    .then([=](uint64_t accepted) {
      check(self, accepted == per_round, "push accepted " + std::to_string(accepted));
      pull(self);
    }, fail_with(self, "push"));
}

// Pops answers until this round's are in (once closing: to the end).
void pull(service_actor* self) {
  auto& st = self->state;
  if (!st.closing && st.out.answers == (st.round + 1) * per_round) {
    std::cout << "round " << ++st.round << ": " << per_round << " answers\n";
    return feed_round(self);
  }
  self->request(st.answers, 5s, troupe::queue_pop_atom_v, uint64_t{64},
                caf::timespan{1s})
    .then([=](troupe::queue_items& items) {
      auto& s = self->state;
      if (items.closed) { // end of stream: the graph's sink closed it
        check(self, s.closing, "answers closed before the last round");
        return finish(self);
      }
      for (auto& r : items.records.records()) {
        auto it = s.expected.find(r.key);
        bool ok = it != s.expected.end() && it->second == r.body;
        check(self, ok, "unexpected answer " + r.key + " " + r.body);
        if (ok)
          s.expected.erase(it);
        ++s.out.answers;
      }
      pull(self);
    }, fail_with(self, "pop"));
}

// A service's stats from the main thread; zeros if it does not answer.
template <class Stats, class Handle>
Stats stats_of(caf::scoped_actor& self, const Handle& service) {
  Stats result;
  self->request(service, 5s, troupe::stats_atom_v)
    .receive([&](Stats& s) { result = s; }, [](caf::error&) {});
  return result;
}

} // namespace

int main() {
  auto reg = std::make_shared<troupe::registry>();
  troupe::register_builtins(*reg);
  reg->add_function("quote", "body := body=price", [] {
    return troupe::record_fn{[](troupe::record& r) {
      ++quotes_run;
      r.body = price_of(r.body);
      return troupe::fn_result::keep();
    }};
  });
  troupe::runtime rt{reg}; // shares reg: the pool below finds "quote" too

  auto loaded = troupe::load_graph_text(graph_yaml, "pricing.yaml", *reg);
  for (auto& d : loaded.errors)
    std::cerr << d.str() << '\n';
  if (!loaded.ok())
    return 78;
  // The graph's resources become the runtime's: the run uses these very ones.
  for (const auto& r : loaded.graph->resources)
    rt.add_resource(r);
  // A pool for the service alone, configured in C++.
  troupe::worker_pool_config pool_cfg;
  pool_cfg.workers = 2;
  auto pool = troupe::spawn_worker_pool(rt.system(), pool_cfg, reg);

  auto run = rt.start(*loaded.graph); // runs until `requests` is closed
  auto done = std::make_shared<std::promise<outcome>>();
  auto result = done->get_future();
  // `done` goes in as a spawn argument: CAF 0.17 spawning a function with no
  // arguments dereferences a null tuple pointer (UBSan reports it).
  rt.system().spawn([=, &rt](service_actor* self,
                             std::shared_ptr<std::promise<outcome>> promise) {
    auto& st = self->state;
    st.cache = rt.resource<troupe::cache_actor>("prices");
    st.limiter = rt.resource<troupe::rate_limiter_actor>("pace");
    st.requests = rt.resource<troupe::queue_actor>("requests");
    st.answers = rt.resource<troupe::queue_actor>("answers");
    st.pool = pool;
    st.done = std::move(promise);
    self->request(st.limiter, 5s, troupe::acquire_atom_v, std::string{})
      .then([=](uint64_t permit) {
        self->state.permit = permit;
        direct_calls(self);
      }, fail_with(self, "acquire"));
  }, done);

  // The main thread only waits (finitely) for the service's outcome.
  if (result.wait_for(60s) != std::future_status::ready) {
    std::cerr << "embed_constructs: the service did not finish\n";
    return 1;
  }
  auto out = result.get();
  bool ended = run.wait_for(30s);
  auto report = run.report();
  std::cout << troupe::report_summary(report);

  // Final statistics by typed handle (blocking is fine: not an actor).
  caf::scoped_actor self{rt.system()};
  auto cs = stats_of<troupe::cache_stats>(self, rt.resource<troupe::cache_actor>("prices"));
  auto ls = stats_of<troupe::limiter_stats>(
    self, rt.resource<troupe::rate_limiter_actor>("pace"));
  auto ps = stats_of<troupe::pool_stats>(self, pool);
  caf::anon_send_exit(pool, caf::exit_reason::user_shutdown);
  std::cout << "cache: hits " << cs.hits << ", misses " << cs.misses
            << ", coalesced " << cs.coalesced << ", computations "
            << cs.computations << ", entries " << cs.entries << '\n'
            << "limiter: granted " << ls.granted << ", waited " << ls.waited
            << ", in flight " << ls.in_flight << '\n'
            << "pool: submitted " << ps.submitted << ", completed "
            << ps.completed << ", workers " << ps.workers << '\n'
            << "quote ran " << quotes_run.load() << " times, fx computed "
            << out.fx_computed << " times, " << out.answers << " answers\n";

  const int total = rounds * per_round;
  std::pair<bool, const char*> checks[] = {
    {ended && report.status == "completed" && report.balanced(), "run end"},
    {report.source_records == total && report.sink_records == total, "run"},
    {out.answers == total, "answer count"},
    {out.fx_computed == 4, "fx single flight"},
    {quotes_run == 2 + skus, "quote runs: 2 on the pool, 1 per sku"},
    {cs.computations == 4 + skus, "cache computations"},
    {ls.granted == 1 + total && ls.in_flight == 0, "limiter permits"},
    {ps.completed == 2, "pool tasks"}};
  for (auto& [ok, what] : checks)
    if (!ok)
      out.errors.push_back(what);
  for (auto& e : out.errors)
    std::cerr << "mismatch: " << e << '\n';
  std::cout << "embed_constructs: " << (out.errors.empty() ? "ok" : "FAILED")
            << '\n';
  return out.errors.empty() ? 0 : 1;
}
