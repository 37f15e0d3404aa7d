// reduce: folds all records into one result per key (`by: key`) or one in
// total (`by: all`) with `op: count | sum`, emitted when the inputs end.
//
// Delivery note: reduce acknowledges its inputs as it folds them (holding
// them would need unbounded upstream buffers), so its aggregate lives only in
// this actor. It is not restartable: if it crashes, or is stopped by a group
// restart, the run fails loudly instead of writing a wrong total. It never
// throws on good input; a non-numeric body for `sum` goes to `errors`.
//
// Exact under at_least_once: when a stage upstream crashes, records it had
// already passed on arrive again. Every record names its source and its
// sequence number there (record_context::origin, seq), so reduce remembers
// which it folded (one bit per record, in blocks) and drops the duplicates.
// That needs each source to reach reduce by one path only (a diamond would
// bring one record twice on purpose): lint rejects the other shapes.
#include <bitset>
#include <charconv>
#include <cmath>
#include <map>
#include <unordered_map>

#include "troupe/actors/builtin_types.hpp"

namespace troupe::actors {

namespace {

// GCC's 128-bit integers; __extension__: no -Wpedantic warning for them.
__extension__ typedef __int128 int128;
__extension__ typedef unsigned __int128 uint128;

class reduce_logic : public node_logic {
public:
  explicit reduce_logic(const param_set& p)
    : sum_(p.str("op") == "sum"), by_key_(p.str("by") == "key") {
  }

  void consume(record_batch batch, emitter& out) override {
    for (auto& r : batch.records()) {
      if (!first_time(r)) {
        out.drop(1); // a redelivered duplicate: folded already
        continue;
      }
      auto& acc = totals_[by_key_ ? r.key : std::string{}];
      if (!sum_) {
        acc.whole += 1;
        out.drop(1);
        continue;
      }
      if (!acc.add(r.body)) {
        out.fail(r, "sum: body is not a decimal number: '"
                      + r.body.substr(0, 40) + "'");
        continue;
      }
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
      r.body = v.str(key);
      rs.push_back(std::move(r));
    }
    if (!rs.empty()) {
      out.create(rs.size());
      out.emit(record_batch{std::move(rs)});
    }
  }

private:
  // Integers add up exactly (128 bits: no realistic input overflows them);
  // a body with a fraction or an exponent makes the key's sum a double.
  struct total {
    int128 whole = 0;
    double fraction = 0;
    bool inexact = false;

    // Strict decimal: no blanks, no hex, no '+', nothing after the number.
    bool add(const std::string& body) {
      auto* first = body.data();
      auto* last = first + body.size();
      int64_t i = 0;
      if (auto [p, ec] = std::from_chars(first, last, i);
          ec == std::errc{} && p == last) {
        whole += i;
        return true;
      }
      double d = 0;
      auto [p, ec] = std::from_chars(first, last, d,
                                     std::chars_format::general);
      if (ec != std::errc{} || p != last || !std::isfinite(d))
        return false;
      fraction += d;
      inexact = true;
      return true;
    }

    std::string str(const std::string& key) const {
      if (!inexact) {
        auto neg = whole < 0;
        auto u = neg ? -static_cast<uint128>(whole)
                     : static_cast<uint128>(whole);
        std::string digits;
        do {
          digits.insert(digits.begin(), static_cast<char>('0' + u % 10));
          u /= 10;
        } while (u != 0);
        return neg ? "-" + digits : digits;
      }
      auto v = static_cast<double>(whole) + fraction;
      if (!std::isfinite(v))
        throw unrecoverable_error("reduce: the sum of key '" + key
                                  + "' overflows a double");
      char buf[64];
      std::snprintf(buf, sizeof(buf), "%.17g", v);
      return buf;
    }
  };

  struct block_key {
    uint32_t origin;
    uint64_t block;
    bool operator==(const block_key& x) const {
      return origin == x.origin && block == x.block;
    }
  };
  struct block_hash {
    size_t operator()(const block_key& k) const {
      return std::hash<uint64_t>{}(k.block * 0x9e3779b97f4a7c15ULL ^ k.origin);
    }
  };
  static constexpr uint64_t block_bits = 4096;

  bool first_time(const record& r) {
    if (r.ctx.origin == 0) {
      // Not made by a source of this run: no identity to check. A first
      // delivery is folded; a redelivery cannot be told from a new record.
      if (r.ctx.attempt > 1)
        throw unrecoverable_error(
          "reduce: a redelivered record without a source identity (seq "
          + std::to_string(r.seq) + "); the total would not be exact");
      return true;
    }
    auto& bits = seen_[{r.ctx.origin, r.seq / block_bits}];
    auto bit = r.seq % block_bits;
    if (bits.test(bit))
      return false;
    bits.set(bit);
    return true;
  }

  bool sum_;
  bool by_key_;
  std::map<std::string, total> totals_;
  std::unordered_map<block_key, std::bitset<block_bits>, block_hash> seen_;
};

// Duplicates are recognised by (source, seq): a source whose records reach
// this reduce along two paths would have legitimate copies dropped.
void check(const node_spec& n, const graph_spec& g, const registry&,
           std::vector<diagnostic>& errors) {
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < g.nodes.size(); ++i)
    index[g.nodes[i].name] = i;
  for (auto& src : g.nodes) {
    if (!src.inputs.empty())
      continue;
    // Paths from src to every node, in topological order.
    std::vector<uint64_t> paths(g.nodes.size(), 0);
    paths[index[src.name]] = 1;
    for (size_t i = 0; i < g.nodes.size(); ++i)
      for (auto& in : g.nodes[i].inputs)
        if (auto j = index.find(in.node); j != index.end())
          paths[i] = std::min<uint64_t>(paths[i] + paths[j->second], 2);
    if (paths[index[n.name]] > 1) {
      errors.push_back({n.where, "reduce '" + n.name + "' receives records of '"
                                   + src.name
                                   + "' along more than one path; it tells "
                                     "redelivered duplicates by (source, seq), "
                                     "so give each path its own reduce"});
      return;
    }
  }
}

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
  t.validate = check;
  return t;
}

} // namespace troupe::actors
