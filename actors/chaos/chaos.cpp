// chaos: fault injection, for rehearsing failure. Records pass through
// unchanged unless a fault fires:
//   p      a record fails with this probability on each attempt (retried in
//          place up to max_attempts, then to `errors`);
//   keys   records with these keys always fail (poison records);
//   every  the first attempt of every n-th record (by seq) fails;
//   kill   each first delivery of a batch kills the node's actor with this
//          probability (a crash: restart and redelivery);
//   delay  each batch is held this long (without blocking a thread).
// Every decision is a hash of (seed, record, attempt), so a run is
// reproducible and a retried record gets a fresh draw.
#include <algorithm>
#include <deque>
#include <functional>
#include <set>
#include <stdexcept>

#include "troupe/actors/builtin_types.hpp"

namespace troupe::actors {

namespace {

struct chaos_config {
  uint64_t seed;
  double p;                   // per-attempt record failure probability
  std::set<std::string> keys; // always-failing keys
  uint64_t every;             // 0: off
  double kill;                // per-batch actor kill probability
  duration delay;             // 0: none

  static chaos_config from(const param_set& ps) {
    chaos_config c{static_cast<uint64_t>(ps.integer("seed")), ps.number("p"),
                   {},
                   static_cast<uint64_t>(ps.integer("every")),
                   ps.number("kill"),
                   ps.has("delay") ? ps.dur("delay") : duration{0}};
    if (ps.has("keys"))
      c.keys.insert(ps.strings("keys").begin(), ps.strings("keys").end());
    return c;
  }
};

// splitmix64: a fast, well-mixed hash for reproducible fault decisions.
uint64_t mix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

double draw(uint64_t seed, const record& r, uint64_t salt) {
  auto h = mix(seed ^ mix(r.seq ^ mix(r.ctx.attempt ^ mix(salt))));
  h ^= std::hash<std::string>{}(r.key);
  return static_cast<double>(mix(h) >> 11) / static_cast<double>(1ULL << 53);
}

class chaos_logic : public node_logic {
public:
  chaos_logic(chaos_config cfg, uint32_t max_attempts)
    : cfg_(std::move(cfg)), max_attempts_(max_attempts) {
    fault_ = [this](record& r) -> fn_result {
      if (cfg_.keys.count(r.key))
        throw std::runtime_error("chaos: poison key '" + r.key + "'");
      if (cfg_.every > 0 && r.ctx.attempt == 1
          && r.seq % cfg_.every == cfg_.every - 1)
        throw std::runtime_error("chaos: every " + std::to_string(cfg_.every)
                                 + "th record fails once");
      if (cfg_.p > 0 && draw(cfg_.seed, r, 1) < cfg_.p)
        throw std::runtime_error("chaos: random record fault");
      return fn_result::keep();
    };
  }

  void consume(record_batch batch, emitter& out) override {
    auto start = seen_;
    seen_ += batch.size();
    auto in = batch.records();
    if (!in.empty() && in[0].ctx.attempt == 1 && cfg_.kill > 0
        && draw(cfg_.seed, in[0], 2) < cfg_.kill)
      throw std::runtime_error("chaos: actor killed by fault injection");
    auto kept = apply_to_batch(fault_, std::move(batch), max_attempts_, out);
    if (cfg_.delay.count() == 0) {
      out.emit(std::move(kept));
    } else {
      held_ += kept.size();
      pending_.push_back({out.now(), start, std::move(kept)});
    }
  }

  // From the oldest held batch to the newest record consumed (see
  // node_logic::buffered): later failures must not release what we hold.
  size_t buffered() const override {
    return pending_.empty() ? 0 : seen_ - pending_.front().start;
  }
  // Failed records between held batches are not held: count exactly.
  size_t held() const override {
    return held_;
  }
  // A quarter of the delay, but never zero: a delay of a few nanoseconds
  // must still be released (a zero interval would mean "never ticks").
  duration tick_interval() const override {
    return std::max<duration>(cfg_.delay / 4, std::chrono::microseconds(1));
  }
  void tick(emitter& out) override {
    while (!pending_.empty()
           && out.now() - pending_.front().arrived >= cfg_.delay)
      release(out);
  }

private:
  void release(emitter& out) {
    held_ -= pending_.front().batch.size();
    out.emit(std::move(pending_.front().batch));
    pending_.pop_front();
  }

  struct held_batch {
    std::chrono::steady_clock::time_point arrived;
    uint64_t start; // position of its first record among all consumed
    record_batch batch;
  };

  chaos_config cfg_;
  uint32_t max_attempts_;
  record_fn fault_;
  std::deque<held_batch> pending_;
  uint64_t seen_ = 0; // records consumed so far
  size_t held_ = 0;   // records in pending_
};

void check(const node_spec& n, const graph_spec&, const registry&, std::vector<diagnostic>& errors) {
  for (auto name : {"p", "kill"}) {
    auto& v = n.params.get(name);
    if (v.number < 0 || v.number > 1)
      errors.push_back({v.where, std::string{"'"} + name
                                   + "' is a probability between 0 and 1, got "
                                   + v.text});
  }
}

} // namespace

actor_type chaos_type() {
  actor_type t;
  t.name = "chaos";
  t.kind = actor_kind::stage;
  t.doc = "Injects faults to rehearse failure: failing records (p, keys, "
          "every), killed actors (kill), delays (delay). Reproducible by seed.";
  t.params = {
    {"seed", param_type::integer, false, "1", "seed of every decision", {}, 0},
    {"p", param_type::number, false, "0",
     "probability that a record attempt fails", {}, 0},
    {"keys", param_type::strings, false, "",
     "keys whose records always fail (poison)", {}, 0},
    {"every", param_type::integer, false, "0",
     "the first attempt of every n-th record fails (0: off)", {}, 0},
    {"kill", param_type::number, false, "0",
     "probability that a batch kills the actor", {}, 0},
    {"delay", param_type::time_span, false, "", "hold each batch this long", {},
     0},
  };
  t.make_node = [](const node_context& ctx) {
    return std::make_unique<chaos_logic>(chaos_config::from(ctx.spec.params),
                                         ctx.max_attempts);
  };
  t.validate = check;
  return t;
}

} // namespace troupe::actors
