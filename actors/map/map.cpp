// map: applies a registered record function to every record. With
// `workers: N` the node runs N copies of this logic on worker actors. A map
// that names a cache, a pool or a rate limiter waits for them instead
// (waiting_map.cpp).
#include <algorithm>
#include <chrono>

#include "troupe/actors/builtin_types.hpp"

#include "waiting_map.hpp"

namespace troupe::actors {

namespace {

class map_logic : public node_logic {
public:
  explicit map_logic(const node_context& ctx)
    : fn_name_(ctx.spec.params.str("fn")), max_attempts_(ctx.max_attempts) {
    fn_ = ctx.reg.find_function(fn_name_)->make();
  }

  void consume(record_batch batch, emitter& out) override {
    // identity forwards the shared batch untouched: no copy at all.
    if (fn_name_ == "identity") {
      out.emit(std::move(batch));
      return;
    }
    out.emit(apply_to_batch(fn_, std::move(batch), max_attempts_, out));
  }

private:
  std::string fn_name_;
  uint32_t max_attempts_;
  record_fn fn_;
};

void check(const node_spec& n, const graph_spec& g, const registry& reg,
           std::vector<diagnostic>& errors) {
  if (n.params.has("fn"))
    check_function_name(n.params.get("fn"), reg, errors);
  auto waits = map_waits(n);
  auto needs = [&](const char* param, const char* slot) {
    if (n.params.has(param) && n.params.get(param).where.line > 0
        && !n.resources.count(slot))
      errors.push_back({n.params.get(param).name_where,
                        std::string{"'"} + param + "' applies to a map with a '"
                          + slot + "' slot"});
  };
  needs("cache_key", "cache");
  needs("rate_by", "rate_limit");
  needs("priority", "pool");
  if (!waits) {
    if (n.params.has("max_in_flight") && n.params.get("max_in_flight").where.line > 0)
      errors.push_back({n.params.get("max_in_flight").name_where,
                        "'max_in_flight' applies to a map that waits (with a "
                        "'cache', 'pool' or 'rate_limit' slot)"});
    return;
  }
  if (n.params.has("max_in_flight"))
    check_limiter_wait(n, g, n.params.integer("max_in_flight"),
                       "max_in_flight", errors);
  // A waiting map runs on its node and overlaps its calls instead.
  if (n.workers > 1)
    errors.push_back({n.at("workers"),
                      "a map with a 'cache', 'pool' or 'rate_limit' slot "
                      "overlaps its calls on its own node: use "
                      "'max_in_flight' (or a pool's workers), not 'workers'"});
  if (n.blocking)
    errors.push_back({n.at("blocking"),
                      "'blocking' applies to a map's own workers; a pool "
                      "resource takes 'blocking: true' itself"});
}

} // namespace

actor_type map_type() {
  actor_type t;
  t.name = "map";
  t.kind = actor_kind::stage;
  t.parallel = true;
  t.slots = {"cache", "pool", "rate_limit"};
  t.doc = "Applies a record function (fn) to each record; workers: N runs N "
          "in parallel, ordered: false lets results overtake each other.";
  t.params = {
    {"fn", param_type::string, true, "",
     "record function: sha256, identity, upper, lower, trim, square, or one "
     "registered in C++",
     {}, 0},
    {"max_in_flight", param_type::integer, false, "64",
     "with a cache, pool or rate_limit slot: records between their first "
     "call and their outcome at once",
     {}, 1, 100000},
    {"cache_key", param_type::choice, false, "body",
     "with a cache slot: memoise by the record's body or its key",
     {"body", "key"}, 0},
    {"rate_by", param_type::choice, false, "none",
     "with a rate_limit slot: one bucket for all, or one per record key",
     {"none", "key"}, 0},
    {"priority", param_type::integer, false, "0",
     "with a pool slot: the tasks' priority (higher first)", {}, -1000000,
     1000000},
  };
  t.make_node = [](const node_context& ctx) -> std::unique_ptr<node_logic> {
    if (ctx.calls != nullptr && map_waits(ctx.spec))
      return make_waiting_map(ctx);
    return std::make_unique<map_logic>(ctx);
  };
  t.validate = check;
  return t;
}

} // namespace troupe::actors
