// A sink that hands its input to a service, batch by batch (internal to the
// queue and topic sinks). A batch counts as written (emitted) only once the
// service accepted it; until then it is held, so it is acknowledged upstream
// only after that, and a crash before it makes upstream deliver it again.
// One call at a time keeps input order. A call that timed out is sent again
// (the service was full: backpressure reaches upstream through credit); a
// refusal or a service that is gone fails the batch's records to `errors`.
#pragma once

#include <deque>
#include <functional>
#include <string>
#include <utility>

#include "troupe/node_logic.hpp"
#include "troupe/waiting.hpp"

namespace troupe::actors {

class forwarding_sink : public node_logic {
public:
  // send(batch, done): start one call for the batch.
  using send_fn = std::function<void(record_batch, completion<uint64_t>)>;
  // at_end(done): optional, one last call once the inputs ended and all was
  // written (the queue sink closes its queue).
  using end_fn = std::function<void(completion<uint64_t>)>;

  forwarding_sink(std::string what, send_fn send, end_fn at_end = {})
    : what_(std::move(what)), send_(std::move(send)), at_end_(std::move(at_end)) {
  }

  void consume(record_batch batch, emitter& out) override {
    if (batch.empty())
      return;
    held_ += batch.size();
    batches_.push_back(std::move(batch));
    next(out);
  }

  size_t buffered() const override {
    return held_;
  }

  void finish(emitter& out) override {
    finishing_ = true;
    next(out);
  }

private:
  void next(emitter&) {
    if (busy_)
      return;
    if (!batches_.empty()) {
      busy_ = true;
      send_(batches_.front(),
            [this](call_result<uint64_t> r, emitter& out) { sent(r, out); });
      return;
    }
    if (finishing_ && at_end_ && !ended_) {
      ended_ = true;
      busy_ = true;
      at_end_([this](call_result<uint64_t>, emitter&) { busy_ = false; });
    }
  }

  void sent(call_result<uint64_t>& r, emitter& out) {
    busy_ = false;
    if (r.ok()) {
      auto b = std::move(batches_.front());
      batches_.pop_front();
      held_ -= b.size();
      out.emit(std::move(b));
    } else if (r.status() != call_status::timeout) {
      auto b = std::move(batches_.front());
      batches_.pop_front();
      held_ -= b.size();
      auto why = what_ + ": " + to_string(r.status()) + ": " + r.error();
      for (auto& rec : b.take())
        out.fail(std::move(rec), why);
    } // a timeout: the same batch again
    next(out);
  }

  std::string what_;
  send_fn send_;
  end_fn at_end_;
  std::deque<record_batch> batches_; // bounded by the input credit window
  size_t held_ = 0;
  bool busy_ = false;
  bool finishing_ = false;
  bool ended_ = false;
};

} // namespace troupe::actors
