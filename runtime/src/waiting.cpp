#include "troupe/waiting.hpp"

#include <stdexcept>

namespace troupe {

const char* to_string(call_status s) {
  switch (s) {
    case call_status::ok:
      return "ok";
    case call_status::timeout:
      return "timeout";
    case call_status::refused:
      return "refused";
    case call_status::failed:
      return "failed";
    case call_status::unavailable:
      return "unavailable";
  }
  return "?";
}

slot_client::~slot_client() = default;

node_calls::~node_calls() = default;

external_call::~external_call() = default;

pending_records::pending_records(bool ordered, size_t max_in_flight)
  : ordered_(ordered), max_in_flight_(max_in_flight == 0 ? 1 : max_in_flight) {
}

pending_records::ticket pending_records::hold(record r) {
  entries_.push_back(entry{std::move(r)});
  ++held_;
  return next_++;
}

pending_records::entry* pending_records::find(ticket t) {
  if (t < first_ || t >= next_)
    return nullptr;
  auto& e = entries_[static_cast<size_t>(t - first_)];
  return e.st == state::released ? nullptr : &e;
}

std::optional<pending_records::ticket> pending_records::next_to_start() {
  if (started_ >= max_in_flight_)
    return std::nullopt;
  if (next_start_ < first_)
    next_start_ = first_;
  while (next_start_ < next_) {
    auto t = next_start_++;
    auto& e = entries_[static_cast<size_t>(t - first_)];
    if (e.st == state::waiting) {
      e.st = state::started;
      ++started_;
      return t;
    }
  }
  return std::nullopt;
}

record& pending_records::at(ticket t) {
  auto* e = find(t);
  if (e == nullptr)
    throw std::out_of_range("pending_records: ticket " + std::to_string(t)
                            + " is not held");
  return e->rec;
}

void pending_records::complete(ticket t, outcome what) {
  auto* e = find(t);
  if (e == nullptr || e->st == state::done)
    throw std::logic_error("pending_records: ticket " + std::to_string(t)
                           + " completed twice or never held");
  if (e->st == state::started)
    --started_;
  e->st = state::done;
  e->what = what;
}

void pending_records::fail(ticket t, std::string reason) {
  complete(t, outcome::fail);
  find(t)->reason = std::move(reason);
}

void pending_records::release(entry& e, std::vector<record>& ready,
                              size_t& dropped, emitter& out) {
  switch (e.what) {
    case outcome::emit:
      ready.push_back(std::move(e.rec));
      break;
    case outcome::drop:
      ++dropped;
      break;
    case outcome::fail:
      out.fail(std::move(e.rec), std::move(e.reason));
      break;
  }
  e.st = state::released;
  e.rec = record{};
  --held_;
}

void pending_records::flush(emitter& out) {
  std::vector<record> ready;
  size_t dropped = 0;
  if (ordered_) {
    for (auto& e : entries_) {
      if (e.st != state::done)
        break;
      release(e, ready, dropped, out);
    }
  } else {
    for (auto& e : entries_)
      if (e.st == state::done)
        release(e, ready, dropped, out);
  }
  while (!entries_.empty() && entries_.front().st == state::released) {
    entries_.pop_front();
    ++first_;
  }
  if (dropped)
    out.drop(dropped);
  if (!ready.empty())
    out.emit(record_batch{std::move(ready)});
}

size_t pending_records::buffered() const {
  // The front entry is never a released one (flush trims them).
  return entries_.size();
}

} // namespace troupe
