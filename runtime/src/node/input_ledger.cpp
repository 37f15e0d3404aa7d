#include "input_ledger.hpp"

namespace troupe::detail {

input_ledger::input_ledger(size_t ports, size_t window, size_t window_bytes,
                           bool at_most_once)
  : window_(window),
    window_bytes_(window_bytes),
    at_most_once_(at_most_once),
    ended_(ports, false),
    unacked_records_(ports, 0),
    unacked_bytes_(ports, 0) {
}

void input_ledger::end(uint32_t in_port) {
  ended_[in_port] = true;
}

bool input_ledger::all_ended() const {
  for (bool e : ended_)
    if (!e)
      return false;
  return true;
}

uint64_t input_ledger::receive(uint32_t in_port, uint32_t tag,
                               uint64_t batch_id, uint32_t sender,
                               size_t records, size_t bytes, time_point now,
                               node_commands& out) {
  ended_[in_port] = false;
  auto token = next_token_++;
  auto& in = inputs_[token];
  in.tag = tag;
  in.in_port = in_port;
  in.sender = sender;
  in.batch_id = batch_id;
  in.refs = 1;
  in.size = records;
  in.bytes = bytes;
  in.received = now;
  unacked_records_[in_port] += records;
  unacked_bytes_[in_port] += bytes;
  // At most once: tell the producer we have it, so a crash of ours never
  // brings it back (what we held is counted lost); the ack, and with it
  // the credit, still waits until the records are released.
  if (at_most_once_)
    out.received(sender, tag, batch_id);
  return token;
}

void input_ledger::open(uint64_t token) {
  auto i = inputs_.find(token);
  if (i == inputs_.end())
    return;
  consumed_ += i->second.size;
  i->second.end = consumed_;
  open_.push_back(token);
}

void input_ledger::hold(uint64_t token) {
  if (auto i = inputs_.find(token); i != inputs_.end())
    ++i->second.refs;
}

void input_ledger::release(uint64_t token, node_commands& out) {
  auto i = inputs_.find(token);
  if (i == inputs_.end())
    return;
  if (--i->second.refs == 0)
    acknowledge(i, out);
}

void input_ledger::acknowledge(map_type::iterator i, node_commands& out) {
  auto& in = i->second;
  out.ack(in.sender, in.tag, in.batch_id, in.in_port, in.size);
  unacked_records_[in.in_port] -= in.size;
  unacked_bytes_[in.in_port] -= in.bytes;
  inputs_.erase(i);
  if (inputs_.empty())
    upstream_starved_ = false;
}

void input_ledger::release_open(size_t buffered, node_commands& out) {
  auto threshold = consumed_ >= buffered ? consumed_ - buffered : 0;
  while (!open_.empty()) {
    auto t = open_.front();
    auto i = inputs_.find(t);
    if (i != inputs_.end() && i->second.end > threshold)
      break;
    open_.pop_front();
    if (i != inputs_.end()) {
      out.latency(i->second.received);
      if (--i->second.refs == 0)
        acknowledge(i, out);
    }
  }
}

void input_ledger::release_all_open(node_commands& out) {
  while (!open_.empty()) {
    auto t = open_.front();
    open_.pop_front();
    release(t, out);
  }
}

const input_ledger::entry* input_ledger::find(uint64_t token) const {
  auto i = inputs_.find(token);
  return i == inputs_.end() ? nullptr : &i->second;
}

bool input_ledger::starve() {
  if (inputs_.empty())
    return false;
  upstream_starved_ = true;
  return true;
}

bool input_ledger::pressing() const {
  if (upstream_starved_)
    return true;
  for (size_t p = 0; p < ended_.size(); ++p)
    if (unacked_records_[p] >= window_ || unacked_bytes_[p] >= window_bytes_)
      return true;
  return false;
}

} // namespace troupe::detail
