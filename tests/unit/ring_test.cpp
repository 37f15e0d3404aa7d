// detail::ring (node/ring.hpp), the ledger's FIFO in one growable circular
// buffer: order across growth and wrap-around, indexing from the front, and
// that popping or clearing lets go of what an element owned at once.
#include <doctest/doctest.h>

#include <memory>
#include <string>
#include <vector>

#include "node/ring.hpp"

using troupe::detail::ring;

namespace {

// The ring's elements front to back, through operator[].
template <class T>
std::vector<T> contents(const ring<T>& q) {
  std::vector<T> out;
  for (size_t i = 0; i < q.size(); ++i)
    out.push_back(q[i]);
  return out;
}

std::vector<int> iota(int from, int to) {
  std::vector<int> out;
  for (int i = from; i < to; ++i)
    out.push_back(i);
  return out;
}

} // namespace

TEST_CASE("ring: a new ring is empty; push and pop in FIFO order") {
  ring<int> q;
  CHECK(q.empty());
  CHECK(q.size() == 0);
  q.push_back(1);
  q.push_back(2);
  q.push_back(3);
  CHECK_FALSE(q.empty());
  CHECK(q.size() == 3);
  CHECK(q.front() == 1);
  q.pop_front();
  CHECK(q.front() == 2);
  CHECK(q.size() == 2);
  q.pop_front();
  q.pop_front();
  CHECK(q.empty());
}

TEST_CASE("ring: order is kept across growth, from empty to many times the "
          "first capacity") {
  ring<int> q;
  for (int i = 0; i < 1000; ++i) {
    q.push_back(i);
    REQUIRE(q.size() == static_cast<size_t>(i + 1));
    CHECK(q.front() == 0); // growth never moves the front
  }
  CHECK(contents(q) == iota(0, 1000));
  for (int i = 0; i < 1000; ++i) {
    REQUIRE(q.front() == i);
    q.pop_front();
  }
  CHECK(q.empty());
}

TEST_CASE("ring: growth while the contents wrap around the end of the "
          "buffer keeps their order") {
  // Every head position of the first buffer (8 slots), then a growth with
  // the contents split across its end.
  for (int head = 0; head < 8; ++head) {
    CAPTURE(head);
    ring<int> q;
    for (int i = 0; i < head; ++i) // moves the head to `head`
      q.push_back(-1);
    for (int i = 0; i < head; ++i)
      q.pop_front();
    REQUIRE(q.empty());
    for (int i = 0; i < 8; ++i) // fills all 8 slots, wrapping at 8 - head
      q.push_back(i);
    CHECK(contents(q) == iota(0, 8));
    for (int i = 8; i < 20; ++i) // grows to 16, then 32
      q.push_back(i);
    CHECK(contents(q) == iota(0, 20));
    for (int i = 0; i < 20; ++i) {
      REQUIRE(q.front() == i);
      q.pop_front();
    }
    CHECK(q.empty());
  }
}

TEST_CASE("ring: a queue that stays short wraps around many times in "
          "order") {
  ring<int> q;
  int next_in = 0, next_out = 0;
  // Three in, two out: the length creeps up slowly while head and tail
  // wrap around each buffer size many times.
  for (int round = 0; round < 500; ++round) {
    for (int k = 0; k < 3; ++k)
      q.push_back(next_in++);
    for (int k = 0; k < 2; ++k) {
      REQUIRE(q.front() == next_out);
      q.pop_front();
      ++next_out;
    }
    REQUIRE(q.size() == static_cast<size_t>(next_in - next_out));
  }
  CHECK(contents(q) == iota(next_out, next_in));
}

TEST_CASE("ring: operator[] counts from the front, also after pops, and "
          "writes through") {
  ring<std::string> q;
  for (int i = 0; i < 12; ++i)
    q.push_back("s" + std::to_string(i));
  for (int i = 0; i < 5; ++i)
    q.pop_front();
  REQUIRE(q.size() == 7);
  for (size_t i = 0; i < q.size(); ++i)
    CHECK(q[i] == "s" + std::to_string(i + 5));
  q[2] = "changed";
  CHECK(q[2] == "changed");
  q.pop_front();
  q.pop_front();
  CHECK(q.front() == "changed");
  const auto& cq = q;
  CHECK(cq[0] == "changed");
  CHECK(cq[1] == "s8");
}

TEST_CASE("ring: pop_front lets go of what the element owned at once") {
  auto a = std::make_shared<int>(1);
  auto b = std::make_shared<int>(2);
  ring<std::shared_ptr<int>> q;
  q.push_back(a);
  q.push_back(b);
  CHECK(a.use_count() == 2);
  CHECK(b.use_count() == 2);
  q.pop_front();
  CHECK(a.use_count() == 1); // not kept alive by the vacated slot
  CHECK(b.use_count() == 2);
  CHECK(*q.front() == 2);
  CHECK(q.front().get() == static_cast<const void*>(b.get()));
  // Moved in: the ring holds the only other reference.
  auto c = std::make_shared<int>(3);
  std::weak_ptr<int> wc = c;
  q.push_back(std::move(c));
  q.pop_front(); // b
  CHECK(b.use_count() == 1);
  q.pop_front(); // c
  CHECK(wc.expired());
  CHECK(q.empty());
}

TEST_CASE("ring: growth moves elements without copies left behind") {
  auto a = std::make_shared<int>(1);
  ring<std::shared_ptr<int>> q;
  q.push_back(a);
  for (int i = 0; i < 40; ++i) // grows 8 -> 16 -> 32 -> 64
    q.push_back(nullptr);
  CHECK(a.use_count() == 2); // only the one element: the old buffers let go
  q.pop_front();
  CHECK(a.use_count() == 1);
}

TEST_CASE("ring: clear empties it and lets go of every element; it is "
          "usable again") {
  std::vector<std::weak_ptr<int>> seen;
  ring<std::shared_ptr<int>> q;
  for (int i = 0; i < 11; ++i) {
    auto p = std::make_shared<int>(i);
    seen.push_back(p);
    q.push_back(std::move(p));
  }
  q.pop_front(); // head away from slot 0
  q.clear();
  CHECK(q.empty());
  CHECK(q.size() == 0);
  for (auto& w : seen)
    CHECK(w.expired());
  q.push_back(std::make_shared<int>(42));
  q.push_back(std::make_shared<int>(43));
  CHECK(q.size() == 2);
  CHECK(*q.front() == 42);
  CHECK(*q[1] == 43);
}
