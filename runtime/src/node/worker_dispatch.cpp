#include "worker_dispatch.hpp"

namespace troupe::detail {

worker_dispatch::worker_dispatch(size_t workers, bool ordered)
  : ordered_(ordered), busy_(workers, 0) {
}

void worker_dispatch::enqueue(uint64_t token, bool redelivery,
                              record_batch batch, size_t records) {
  ++outstanding_;
  records_ += records;
  waiting_.push_back(waiting{token, redelivery, std::move(batch)});
}

void worker_dispatch::dispatch(node_commands& out) {
  while (!waiting_.empty() && !busy_.empty()) {
    size_t best = 0;
    for (size_t w = 1; w < busy_.size(); ++w)
      if (busy_[w] < busy_[best])
        best = w;
    if (busy_[best] >= 2)
      return;
    auto next = std::move(waiting_.front());
    waiting_.pop_front();
    ++busy_[best];
    out.exec(static_cast<uint32_t>(best), next_dispatch_++, next.token,
             next.redelivery, std::move(next.batch));
  }
}

void worker_dispatch::complete(size_t worker, uint64_t seq, uint64_t token,
                               stage_result result) {
  --busy_[worker];
  if (!ordered_) {
    ready_.emplace_back(token, std::move(result));
    return;
  }
  done_.emplace(seq, std::make_pair(token, std::move(result)));
  while (!done_.empty() && done_.begin()->first == next_apply_) {
    auto node = done_.extract(done_.begin());
    ready_.push_back(std::move(node.mapped()));
    ++next_apply_;
  }
}

bool worker_dispatch::next_ready(uint64_t& token, stage_result& result) {
  if (ready_.empty())
    return false;
  token = ready_.front().first;
  result = std::move(ready_.front().second);
  ready_.pop_front();
  return true;
}

void worker_dispatch::applied(size_t records) {
  records_ -= records;
  --outstanding_;
}

} // namespace troupe::detail
