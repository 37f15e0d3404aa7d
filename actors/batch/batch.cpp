// batch: regroups records into batches of `size` records (or `bytes` of
// bodies), flushing a partial batch after `timeout` and at the end — never an
// empty one. Downstream sees each group as one batch.
#include <algorithm>
#include "troupe/actors/builtin_types.hpp"

namespace troupe::actors {

namespace {

struct batch_config {
  size_t size;       // records per batch
  uint64_t bytes;    // 0: no byte limit; else flush when bodies reach it
  duration timeout;  // 0: no timeout; else flush a partial batch this old

  static batch_config from(const param_set& p) {
    return {static_cast<size_t>(p.integer("size")),
            p.has("bytes") ? p.bytes("bytes") : 0,
            p.has("timeout") ? p.dur("timeout") : duration{0}};
  }
};

class batch_logic : public node_logic {
public:
  explicit batch_logic(batch_config cfg) : cfg_(cfg) {
  }

  // A group is kept as slices of the input batches: a group that lies within
  // one input batch leaves as that slice, without copying a record.
  void consume(record_batch batch, emitter& out) override {
    auto rs = batch.records();
    size_t from = 0;
    while (from < rs.size()) {
      if (count_ == 0)
        started_ = out.now();
      size_t n = 0;
      bool full = false;
      while (from + n < rs.size() && !full) {
        bytes_ += rs[from + n].body.size();
        ++n;
        full = count_ + n >= cfg_.size || (cfg_.bytes && bytes_ >= cfg_.bytes);
      }
      parts_.push_back(batch.slice(from, n));
      count_ += n;
      from += n;
      if (full)
        flush(out);
    }
  }

  size_t buffered() const override {
    return count_;
  }

  // Checks four times per timeout, so a partial group leaves at most a
  // quarter timeout after it turned `timeout` old.
  duration tick_interval() const override {
    if (cfg_.timeout.count() <= 0)
      return duration{0};
    // Never zero for a tiny timeout: zero means "never ticks".
    return std::max<duration>(cfg_.timeout / 4, std::chrono::microseconds(1));
  }

  void tick(emitter& out) override {
    if (count_ > 0 && out.now() - started_ >= cfg_.timeout)
      flush(out);
  }

  void finish(emitter& out) override {
    flush(out);
  }

  // Upstream is out of credit while the group fills (its records are held
  // unacknowledged until the group leaves): send the partial group now.
  void starved(emitter& out) override {
    flush(out);
  }

private:
  void flush(emitter& out) {
    if (count_ == 0)
      return;
    // One part leaves as it is; several are copied into recycled storage.
    out.emit(record_batch::concat(parts_));
    parts_.clear();
    count_ = 0;
    bytes_ = 0;
  }

  batch_config cfg_;
  std::vector<record_batch> parts_; // the pending group, as slices
  size_t count_ = 0;
  uint64_t bytes_ = 0;
  std::chrono::steady_clock::time_point started_; // first record's arrival
};

// A group larger than the credit window could never fill: upstream stops at
// `window` unacknowledged records, all of them waiting in the group.
void check(const node_spec& n, const graph_spec& g, const registry&,
           std::vector<diagnostic>& errors) {
  auto& size = n.params.get("size");
  if (static_cast<uint64_t>(size.integer) > g.runtime.window)
    errors.push_back({size.where.line > 0 ? size.where : n.where,
                      "'size' " + size.text + " exceeds runtime.window "
                        + std::to_string(g.runtime.window)
                        + ": upstream would stop before a batch fills; raise "
                          "the window or lower the size"});
}

} // namespace

actor_type batch_type() {
  actor_type t;
  t.name = "batch";
  t.kind = actor_kind::stage;
  t.doc = "Groups records into batches by count, body bytes or age.";
  t.params = {
    {"size", param_type::integer, false, "100", "records per batch", {}, 1},
    {"bytes", param_type::size, false, "",
     "flush when the bodies reach this size (e.g. 64KiB)", {}, 0},
    {"timeout", param_type::time_span, false, "",
     "flush a partial batch this long after its first record", {}, 0},
  };
  t.make_node = [](const node_context& ctx) {
    return std::make_unique<batch_logic>(batch_config::from(ctx.spec.params));
  };
  t.validate = check;
  return t;
}

} // namespace troupe::actors
