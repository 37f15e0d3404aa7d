#include "worker_dispatch.hpp"

namespace troupe::detail {

worker_dispatch::worker_dispatch(size_t workers, bool ordered, bool by_key)
  : ordered_(ordered && !by_key), by_key_(by_key), busy_(workers, 0) {
}

size_t worker_dispatch::worker_of(const std::string& key) const {
  // FNV-1a: the same key goes to the same worker in every run.
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : key)
    h = (h ^ c) * 1099511628211ull;
  return static_cast<size_t>(h % busy_.size());
}

void worker_dispatch::enqueue(uint64_t token, bool redelivery,
                              record_batch batch, size_t records) {
  ++outstanding_;
  records_ += records;
  if (!by_key_ || busy_.size() < 2) {
    waiting_.push_back(waiting{token, redelivery, std::move(batch)});
    return;
  }
  std::vector<std::vector<record>> parts(busy_.size());
  for (auto& r : batch.take())
    parts[worker_of(r.key)].push_back(std::move(r));
  size_t n = 0;
  for (size_t w = 0; w < parts.size(); ++w)
    if (!parts[w].empty()) {
      waiting_.push_back(
        waiting{token, redelivery, record_batch{std::move(parts[w])}, w});
      ++n;
    }
  if (n == 0) // an empty batch still goes through once
    waiting_.push_back(waiting{token, redelivery, record_batch{}, 0});
  outstanding_ += (n > 1 ? n - 1 : 0); // one per part
  parts_left_[token] = n == 0 ? 1 : n;
}

void worker_dispatch::dispatch(node_commands& out,
                               std::chrono::steady_clock::time_point now) {
  if (busy_.empty())
    return;
  for (auto i = waiting_.begin(); i != waiting_.end();) {
    size_t w = i->worker;
    if (w == any_worker) {
      w = 0;
      for (size_t k = 1; k < busy_.size(); ++k)
        if (busy_[k] < busy_[w])
          w = k;
      if (busy_[w] >= 2)
        return; // every worker is full; keep arrival order
    } else if (busy_[w] >= 2) {
      ++i; // its worker is full: later parts for other workers may go
      continue;
    }
    ++busy_[w];
    auto seq = next_dispatch_++;
    flight f;
    f.token = i->token;
    f.records = i->batch.size();
    f.sent = now;
    flights_.push_back(std::move(f));
    out.exec(static_cast<uint32_t>(w), seq, i->token, i->redelivery,
             std::move(i->batch));
    i = waiting_.erase(i);
  }
}

uint64_t worker_dispatch::token_of(uint64_t seq) const {
  return flights_[seq - flights_base_].token;
}

std::optional<std::chrono::steady_clock::time_point>
worker_dispatch::oldest_unanswered() const {
  for (size_t i = 0; i < flights_.size(); ++i)
    if (!flights_[i].answered)
      return flights_[i].sent;
  return std::nullopt;
}

void worker_dispatch::complete(size_t worker, uint64_t seq, uint64_t token,
                               stage_result result) {
  --busy_[worker];
  auto& f = flights_[seq - flights_base_];
  f.answered = true;
  f.token = token;
  if (ordered_) {
    f.result = std::move(result);
  } else {
    ready_.push_back(finished{token, std::move(result), f.records});
    f.handed_on = true;
  }
  // Results leave in dispatch order (ordered), or as they came.
  while (!flights_.empty() && flights_.front().answered) {
    auto& front = flights_.front();
    if (!front.handed_on)
      ready_.push_back(
        finished{front.token, std::move(front.result), front.records});
    flights_.pop_front();
    ++flights_base_;
  }
}

bool worker_dispatch::next_ready(uint64_t& token, stage_result& result,
                                 size_t& records, bool& last) {
  if (ready_.empty())
    return false;
  auto& f = ready_.front();
  token = f.token;
  result = std::move(f.result);
  records = f.records;
  last = true;
  if (auto i = parts_left_.find(token); i != parts_left_.end()) {
    last = --i->second == 0;
    if (last)
      parts_left_.erase(i);
  }
  ready_.pop_front();
  return true;
}

void worker_dispatch::applied(size_t records) {
  records_ -= records;
  --outstanding_;
}

} // namespace troupe::detail
