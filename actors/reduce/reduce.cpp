// reduce: folds all records into one result per key (`by: key`) or one in
// total (`by: all`) with `op: count | sum`, emitted when the inputs end.
//
// Delivery note: reduce acknowledges its inputs as it folds them (holding
// them would need unbounded upstream buffers), so its aggregate lives only in
// this actor. It is not restartable: if it crashes, or is stopped by a group
// restart, the run fails loudly instead of writing a wrong total. It never
// throws on good input; a non-numeric body for `sum` goes to `errors`.
#include <cmath>
#include <map>

#include "troupe/actors/builtin_types.hpp"

namespace troupe::actors {

namespace {

class reduce_logic : public node_logic {
public:
  explicit reduce_logic(const param_set& p)
    : sum_(p.str("op") == "sum"), by_key_(p.str("by") == "key") {
  }

  void consume(record_batch batch, emitter& out) override {
    for (auto& r : batch.records()) {
      auto& acc = totals_[by_key_ ? r.key : std::string{}];
      if (!sum_) {
        acc += 1;
        out.drop(1);
        continue;
      }
      char* end = nullptr;
      auto v = std::strtod(r.body.c_str(), &end);
      if (r.body.empty() || *end != '\0' || !std::isfinite(v)) {
        out.fail(r, "sum: body is not a number: '" + r.body.substr(0, 40)
                      + "'");
        continue;
      }
      acc += v;
      out.drop(1);
    }
  }

  void finish(emitter& out) override {
    std::vector<record> rs;
    uint64_t seq = 0;
    for (auto& [key, v] : totals_) {
      record r;
      r.seq = seq++;
      r.key = key;
      char buf[64];
      if (v == std::floor(v) && std::fabs(v) < 9e15)
        std::snprintf(buf, sizeof(buf), "%.0f", v);
      else
        std::snprintf(buf, sizeof(buf), "%.17g", v);
      r.body = buf;
      rs.push_back(std::move(r));
    }
    if (!rs.empty()) {
      out.create(rs.size());
      out.emit(record_batch{std::move(rs)});
    }
  }

private:
  bool sum_;
  bool by_key_;
  std::map<std::string, double> totals_;
};

} // namespace

actor_type reduce_type() {
  actor_type t;
  t.name = "reduce";
  t.kind = actor_kind::stage;
  t.doc = "Counts or sums records per key (or in total); emits the results "
          "when its inputs end.";
  t.params = {
    {"op", param_type::choice, false, "count", "count or sum (of the bodies)",
     {"count", "sum"}, 0},
    {"by", param_type::choice, false, "key", "key: one result per key; all: "
     "one result", {"key", "all"}, 0},
  };
  t.make_node = [](const node_context& ctx) {
    return std::make_unique<reduce_logic>(ctx.spec.params);
  };
  t.restartable = false;
  return t;
}

} // namespace troupe::actors
