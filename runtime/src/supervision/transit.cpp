#include "transit.hpp"

namespace troupe::supervision {

uint64_t transit_book::settle(entry& e) {
  if (!e.ended)
    return 0; // a live consumer may still receive them
  auto lost = e.sent > e.received ? e.sent - e.received : 0;
  // `sent` only grows once the consumer is down, so neither does `lost`
  // shrink: what was counted stays counted.
  auto n = lost > e.counted ? lost - e.counted : 0;
  e.counted += n;
  return n;
}

uint64_t transit_book::producer_ended(uint32_t to, uint64_t sent) {
  if (sent == 0)
    return 0;
  auto& e = entries_[to];
  e.sent += sent;
  return settle(e);
}

uint64_t transit_book::consumer_ended(uint32_t incarnation, uint64_t received) {
  // Kept even when no dead producer sent it anything yet: a live one that
  // dies before it is rewired had sent to this incarnation.
  auto& e = entries_[incarnation];
  e.ended = true;
  e.received = received;
  return settle(e);
}

void transit_book::forget_before(uint32_t incarnation) {
  entries_.erase(entries_.begin(), entries_.lower_bound(incarnation));
}

} // namespace troupe::supervision
