// The at_most_once transit book (supervision/transit.hpp), event by event:
// what producer incarnations sent a consumer incarnation that never
// received it, once nobody is left to send it again.
#include <doctest/doctest.h>

#include "supervision/transit.hpp"

using troupe::supervision::transit_book;

TEST_CASE("transit: a dead producer's batches still queued at a live "
          "consumer are not lost") {
  transit_book b;
  CHECK(b.producer_ended(0, 10) == 0);
  // ... and the consumer finishes: it received them all; nothing to count.
}

TEST_CASE("transit: the consumer dies after the producer: what it never "
          "received is lost, once") {
  transit_book b;
  CHECK(b.producer_ended(0, 10) == 0);
  CHECK(b.consumer_ended(0, 4) == 6);
}

TEST_CASE("transit: the producer dies after the consumer: what it had sent "
          "the dead incarnation and it never received is lost") {
  transit_book b;
  // The consumer received 4 (of the live producer's); the producer went on
  // sending to the dead incarnation until it died too, 10 in all.
  CHECK(b.consumer_ended(0, 4) == 0);
  CHECK(b.producer_ended(0, 10) == 6);
}

TEST_CASE("transit: producer incarnations in a row, FIFO: the consumer gets "
          "the dead ones' batches first") {
  transit_book b;
  CHECK(b.producer_ended(0, 5) == 0); // first producer incarnation
  CHECK(b.producer_ended(0, 3) == 0); // the second (restarted, died again)
  // A live third one sent it more; the consumer received 6 in all: the
  // first 5 and 1 of the second. The live one's it never received, the
  // producer sends again on rewire; the second's other 2 are lost.
  CHECK(b.consumer_ended(0, 6) == 2);
  // The live third dies before it saw the rewire: it had sent 4 to the
  // dead incarnation, none received (the consumer received only 6).
  CHECK(b.producer_ended(0, 4) == 4);
}

TEST_CASE("transit: a producer that saw the rewire sends to the next "
          "incarnation; nothing counts twice") {
  transit_book b;
  CHECK(b.consumer_ended(0, 7) == 0); // the producer lives: it resends
  // It resent 3 and sent 2 more to incarnation 1, then died; incarnation 1
  // received all 5 and lives on.
  CHECK(b.producer_ended(1, 5) == 0);
  b.forget_before(1);
  CHECK(b.size() == 1);
  CHECK(b.consumer_ended(1, 5) == 0);
  CHECK(b.consumer_ended(1, 5) == 0);
}

TEST_CASE("transit: nothing sent, or all received: nothing lost") {
  transit_book b;
  CHECK(b.producer_ended(3, 0) == 0);
  CHECK(b.consumer_ended(3, 0) == 0);
  CHECK(b.producer_ended(4, 8) == 0);
  CHECK(b.consumer_ended(4, 8) == 0);
  b.forget_before(5);
  CHECK(b.size() == 0);
}
