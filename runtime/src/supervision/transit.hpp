// at_most_once: the records of one edge that died in a consumer's mailbox
// with no producer left to send them again (CAF-free, the supervisor's).
//
// Under at_most_once a consumer tells its producer on receipt that it has a
// batch, so a producer that lives on sends again, after a restart of its
// consumer, exactly what the dead consumer never received. A producer
// incarnation that dies takes that knowledge with it: what it had sent and
// its consumer never received is gone, whether the consumer died before the
// producer (its mailbox died with it) or after (the batches were still
// queued when it went down). Nobody sends them again (the producer's own
// upstream forgot them on receipt), so they are lost, counted at the
// consumer as never received.
//
// The book keeps, per consumer incarnation, what dead producer incarnations
// sent to it and, once it is down, what it received. A mailbox is FIFO and
// producer incarnations follow one another, so a consumer incarnation
// receives every batch of a dead producer incarnation before any of a later
// one: of what it received, the first `sent` came from the dead ones, and
// what they sent beyond what it received is lost. A live producer's own
// unreceived batches are not in the book: it sends them again on rewire.
//
// Example:
//   transit_book b;
//   b.producer_ended(0, 10);   // 0: consumer incarnation 0 may still get them
//   b.consumer_ended(0, 4);    // 6: died in its mailbox
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>

namespace troupe::supervision {

class transit_book {
public:
  // A producer incarnation ended having sent `sent` records to consumer
  // incarnation `to` (its gauges, final). Returns the records newly lost.
  uint64_t producer_ended(uint32_t to, uint64_t sent);
  // Consumer incarnation `incarnation` went down having received `received`
  // records on this edge (its gauge, final). Returns the records newly lost.
  uint64_t consumer_ended(uint32_t incarnation, uint64_t received);
  // No producer incarnation can send to consumer incarnations before
  // `incarnation` any more (they are down and settled): forget them.
  void forget_before(uint32_t incarnation);
  // Consumer incarnations the book still keeps (bounded by the restarts a
  // live producer has not caught up with).
  std::size_t size() const noexcept {
    return entries_.size();
  }

private:
  struct entry {
    uint64_t sent = 0;     // by producer incarnations that ended
    uint64_t received = 0; // valid once `ended`
    bool ended = false;
    uint64_t counted = 0;  // lost, already returned
  };
  static uint64_t settle(entry& e);
  std::map<uint32_t, entry> entries_;
};

} // namespace troupe::supervision
