// null: discards records. With `delay` it is a deliberately slow consumer that
// takes one batch per delay, for rehearsing backpressure; at the end it keeps
// that pace while it drains.
#include <deque>

#include "troupe/actors/builtin_types.hpp"

namespace troupe::actors {

namespace {

class null_sink : public node_logic {
public:
  explicit null_sink(const param_set& p)
    : delay_(p.has("delay") ? p.dur("delay") : duration{0}) {
  }

  void consume(record_batch batch, emitter& out) override {
    if (delay_.count() == 0) {
      out.emit(std::move(batch));
      return;
    }
    held_ += batch.size();
    pending_.push_back(std::move(batch));
  }

  // Held batches are always the newest consumed records: a count suffices.
  size_t buffered() const override {
    return held_;
  }
  duration tick_interval() const override {
    return delay_;
  }
  void tick(emitter& out) override {
    if (pending_.empty())
      return;
    held_ -= pending_.front().size();
    out.emit(std::move(pending_.front()));
    pending_.pop_front();
  }

private:
  duration delay_;
  std::deque<record_batch> pending_;
  size_t held_ = 0;
};

} // namespace

actor_type null_type() {
  actor_type t;
  t.name = "null";
  t.kind = actor_kind::sink;
  t.doc = "Discards records (counted as out). `delay` makes it a slow sink.";
  t.params = {{"delay", param_type::time_span, false, "",
               "take one batch per delay (a slow consumer)", {}, 0}};
  t.make_node = [](const node_context& ctx) {
    return std::make_unique<null_sink>(ctx.spec.params);
  };
  return t;
}

} // namespace troupe::actors
