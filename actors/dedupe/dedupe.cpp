// dedupe: drops records already seen, by sequence number or key, remembering
// the last `window` identities. After at-least-once delivery redelivered a
// crashed node's records, a dedupe in front of the sink makes the output
// effectively-once. Dropped duplicates count as `filtered` on this node.
// `by: seq` means the record's identity: the source that made it and its
// sequence number there, so two sources' records never collide.
#include <deque>
#include <unordered_set>

#include "troupe/actors/builtin_types.hpp"

namespace troupe::actors {

namespace {

class dedupe_logic : public node_logic {
public:
  explicit dedupe_logic(const param_set& p)
    : by_key_(p.str("by") == "key"),
      window_(static_cast<size_t>(p.integer("window"))) {
  }

  void consume(record_batch batch, emitter& out) override {
    auto in = batch.records();
    std::vector<bool> fresh(in.size());
    size_t kept = 0;
    for (size_t i = 0; i < in.size(); ++i) {
      auto id = by_key_ ? in[i].key
                        : std::to_string(in[i].ctx.origin) + ':'
                            + std::to_string(in[i].seq);
      if (!seen_.insert(id).second)
        continue;
      order_.push_back(std::move(id));
      if (order_.size() > window_) {
        seen_.erase(order_.front());
        order_.pop_front();
      }
      fresh[i] = true;
      ++kept;
    }
    out.drop(in.size() - kept);
    out.emit(batch.select(fresh)); // unchanged batch without duplicates
  }

private:
  bool by_key_;
  size_t window_;
  std::unordered_set<std::string> seen_;
  std::deque<std::string> order_; // eviction order
};

} // namespace

actor_type dedupe_type() {
  actor_type t;
  t.name = "dedupe";
  t.kind = actor_kind::stage;
  t.doc = "Drops records seen before (by seq or key) within a bounded window.";
  t.params = {
    {"by", param_type::choice, false, "seq", "seq or key", {"seq", "key"}, 0},
    {"window", param_type::integer, false, "1000000",
     "identities remembered", {}, 1},
  };
  t.make_node = [](const node_context& ctx) {
    return std::make_unique<dedupe_logic>(ctx.spec.params);
  };
  return t;
}

} // namespace troupe::actors
