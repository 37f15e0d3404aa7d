// record_batch's recycled storage (record.cpp: the shelf): batches made
// from recycled records look brand new, copies are independent, slices
// outlive their parent, copy-on-write detaches, the payload byte count
// follows changes, the shelf keeps strings' capacity (its point) but not
// unusually large strings, and all of it is safe from two threads.
//
// The shelf is process-wide and gives its eight size classes to the first
// eight batch sizes it sees, for good. Tests that must see a batch come
// back from it therefore run in a fresh process of this binary
// (in_fresh_process): in a whole-binary run, earlier tests may already have
// taken every class, and no recycling would be visible at all.
#include <doctest/doctest.h>

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "troupe/record.hpp"

extern char** environ;

using troupe::record;
using troupe::record_batch;
using troupe::record_span;

namespace {

constexpr const char* fresh_env = "TROUPE_TEST_FRESH_SHELF";

// In the parent: runs the test cases matching `filter` (doctest -tc) in a
// fresh process of this binary, checks that exactly one ran and passed, and
// returns false. In that child: returns true (run the body).
bool in_fresh_process(const std::string& filter) {
  if (auto* e = std::getenv(fresh_env); e && filter == e)
    return true;
  std::string tc = "--test-case=" + filter;
  std::string file = "--source-file=*record_storage_test.cpp";
  std::string colors = "--force-colors=false";
  std::string no_skip = "--no-skip"; // also a case marked skip, when asked
  std::vector<char*> argv{const_cast<char*>("troupe-unit-tests"),
                          tc.data(),     file.data(),
                          colors.data(), no_skip.data(),
                          nullptr};
  std::string mark = std::string(fresh_env) + "=" + filter;
  std::vector<char*> envp;
  for (auto** e = environ; *e; ++e)
    if (std::strncmp(*e, fresh_env, std::strlen(fresh_env)) != 0)
      envp.push_back(*e);
  envp.push_back(mark.data());
  envp.push_back(nullptr);
  int out[2];
  REQUIRE(pipe(out) == 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, out[1], 2);
  posix_spawn_file_actions_addclose(&fa, out[0]);
  pid_t pid = 0;
  auto rc = posix_spawn(&pid, "/proc/self/exe", &fa, nullptr, argv.data(),
                        envp.data());
  posix_spawn_file_actions_destroy(&fa);
  close(out[1]);
  REQUIRE(rc == 0);
  std::string text;
  char buf[4096];
  for (ssize_t n; (n = read(out[0], buf, sizeof(buf))) > 0;)
    text.append(buf, static_cast<size_t>(n));
  close(out[0]);
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  // Exactly one test case ran in the child, and passed: its summary line
  // reads "test cases: 1 | 1 passed | ..." (numbers padded).
  bool ran = false;
  if (auto at = text.find("test cases:"); at != std::string::npos) {
    std::vector<unsigned long> numbers;
    auto* p = text.c_str() + at;
    while (numbers.size() < 2 && *p && *p != '\n') {
      if (std::isdigit(static_cast<unsigned char>(*p))) {
        char* next = nullptr;
        numbers.push_back(std::strtoul(p, &next, 10));
        p = next;
      } else {
        ++p;
      }
    }
    ran = numbers.size() == 2 && numbers[0] == 1 && numbers[1] == 1;
  }
  CHECK_MESSAGE((ok && ran), "the fresh process for \"" << filter
                                 << "\" did not pass:\n" << text);
  return false;
}

// `n` records with content in every field: key, body of `body_len` bytes,
// two attributes, a redelivery attempt and an origin.
std::vector<record> full_records(size_t n, size_t body_len = 20,
                                 uint64_t first = 1) {
  std::vector<record> rs(n);
  for (size_t i = 0; i < n; ++i) {
    auto& r = rs[i];
    r.seq = first + i;
    r.key = "key-" + std::to_string(first + i);
    r.body.assign(body_len, static_cast<char>('a' + i % 26));
    r.set_attr("error", "something went wrong with record "
                          + std::to_string(first + i));
    r.set_attr("stage", "m");
    r.ctx.attempt = 3;
    r.ctx.origin = 7;
  }
  return rs;
}

bool is_default(const record& r) {
  return r.seq == 0 && r.key.empty() && r.body.empty() && r.attrs.empty()
         && r.ctx.attempt == 1 && r.ctx.origin == 0;
}

bool same(const record& a, const record& b) {
  return a.seq == b.seq && a.key == b.key && a.body == b.body
         && a.attrs == b.attrs && a.ctx.attempt == b.ctx.attempt
         && a.ctx.origin == b.ctx.origin;
}

bool same(record_span a, record_span b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (!same(a[i], b[i]))
      return false;
  return true;
}

std::vector<uint64_t> seqs(const record_batch& b) {
  std::vector<uint64_t> out;
  for (auto& r : b.records())
    out.push_back(r.seq);
  return out;
}

size_t bytes_by_hand(const record_batch& b) {
  size_t n = 0;
  for (auto& r : b.records())
    n += r.key.size() + r.body.size();
  return n;
}

// A short record like those a warm pipeline fills recycled storage with.
std::vector<record> short_records(size_t n) {
  std::vector<record> rs(n);
  for (size_t i = 0; i < n; ++i) {
    rs[i].seq = i;
    rs[i].body = "s" + std::to_string(i % 10);
  }
  return rs;
}

} // namespace

// -- recycling (each in a fresh process: see the top) -----------------------------

TEST_CASE("storage: make(n) gives default records even in storage recycled "
          "from records with content, attributes and attempts") {
  if (!in_fresh_process("storage: make(n) gives default*"))
    return;
  constexpr size_t n = 37;
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    {
      record_batch used{full_records(n, 100)};
      auto kept = used; // two holders: the last one recycles
    }
    auto b = record_batch::make(n);
    REQUIRE(b.size() == n);
    // It did come from the shelf: a body's capacity is the used one's.
    CHECK(b.records()[0].body.capacity() >= 100);
    for (auto& r : b.records())
      CHECK(is_default(r));
    // Its records are the caller's to fill, and look new when they come
    // back again.
    for (auto& r : b.mutable_records()) {
      r.body = std::string(100, 'z');
      r.set_attr("x", "y");
      r.ctx.attempt = 9;
    }
  }
  CHECK(record_batch::make(0).empty());
}

TEST_CASE("storage: copy_of in recycled storage keeps the strings' capacity, "
          "but not a body grown above the shelf's 4096-byte limit") {
  if (!in_fresh_process("storage: copy_of in recycled storage*"))
    return;
  constexpr size_t n = 41;
  auto shorts = short_records(n);
  record_span short_span{shorts.data(), shorts.size()};
  { record_batch long_bodies{full_records(n, 100)}; } // to the shelf
  auto b = record_batch::copy_of(short_span);
  REQUIRE(b.size() == n);
  CHECK(same(b.records(), short_span));
  for (auto& r : b.records())
    CHECK(r.body.capacity() >= 100); // the point: no allocation to refill
  b = record_batch{}; // back to the shelf, still roomy
  auto again = record_batch::copy_of(short_span);
  CHECK(again.records()[n - 1].body.capacity() >= 100);
  CHECK(same(again.records(), short_span));
  again = record_batch{};
  // Drain what the shelf holds for n records, so what comes next is
  // certainly the block we give it.
  std::vector<record_batch> hold;
  for (int i = 0; i < 8; ++i)
    hold.push_back(record_batch::copy_of(short_span));
  // Bodies grown past the limit are freed on the way in, not kept.
  { record_batch huge{full_records(n, 5000)}; }
  auto after = record_batch::copy_of(short_span);
  CHECK(same(after.records(), short_span));
  for (auto& r : after.records())
    CHECK(r.body.capacity() < 4096);
}

TEST_CASE("storage: a huge key is not kept on the shelf either") {
  if (!in_fresh_process("storage: a huge key*"))
    return;
  constexpr size_t n = 43;
  std::vector<record> big(n);
  for (auto& r : big)
    r.key.assign(10000, 'k');
  { record_batch b{std::move(big)}; }
  auto shorts = short_records(n);
  auto b = record_batch::copy_of({shorts.data(), shorts.size()});
  for (auto& r : b.records())
    CHECK(r.key.capacity() < 4096);
}

// Failed on 8e9398a: the shelf trimmed keys and bodies above 4096 bytes
// and attribute *lists* above 16 entries, but not the attribute strings, so
// a 100 kB attribute value stayed on the shelf and copy_of handed the
// capacity on (vector copy-assignment reuses the element strings).
TEST_CASE("storage: a huge attribute value is not kept on the shelf") {
  if (!in_fresh_process("storage: a huge attribute value*"))
    return;
  constexpr size_t n = 47;
  std::vector<record> big(n);
  for (auto& r : big)
    r.set_attr("error", std::string(100000, 'e'));
  { record_batch b{std::move(big)}; }
  std::vector<record> small(n);
  for (auto& r : small)
    r.set_attr("error", "short");
  auto b = record_batch::copy_of({small.data(), small.size()});
  size_t kept = 0; // records whose attribute value kept the 100 kB
  for (auto& r : b.records()) {
    REQUIRE(r.attrs.size() == 1);
    CHECK(r.attrs[0].second == "short");
    kept += r.attrs[0].second.capacity() >= 4096 ? 1 : 0;
  }
  CHECK(kept == 0);
}

// Failed on 8e9398a (performance, not correctness): the shelf's eight
// size classes went to the first eight batch sizes ever dropped and were
// never given back, even when empty. A filter (select) or a partial batch
// flushed by timeout makes batches of any size, so in a long-lived process
// the sizes that come again (a source's batch_size) were never recycled.
TEST_CASE("storage: a new batch size recycles once older sizes' classes are "
          "empty") {
  if (!in_fresh_process("storage: a new batch size recycles*"))
    return;
  // Eight sizes pass through once each, as a filter's outputs do...
  for (size_t n = 101; n <= 108; ++n)
    record_batch{full_records(n, 100)};
  // ... and are taken again: their classes hold nothing now.
  std::vector<record_batch> hold;
  for (size_t n = 101; n <= 108; ++n)
    hold.push_back(record_batch::make(n));
  { record_batch b{full_records(256, 100)}; }
  auto shorts = short_records(256);
  auto again = record_batch::copy_of({shorts.data(), shorts.size()});
  CHECK(again.records()[0].body.capacity() >= 100);
}

// -- copies, concat, slices, copy-on-write -----------------------------------------

TEST_CASE("storage: copy_of gives independent copies equal to the "
          "originals") {
  auto originals = full_records(9);
  record_batch src{originals};
  auto copy = record_batch::copy_of(src.records());
  REQUIRE(copy.size() == 9);
  CHECK(same(copy.records(), src.records()));
  CHECK(copy.records().begin() != src.records().begin()); // own storage
  // Changing the copy leaves the original alone...
  auto& cr = copy.mutable_records();
  cr[0].body = "changed";
  cr[1].set_attr("error", "other");
  cr[2].ctx.attempt = 1;
  cr[3].key.clear();
  CHECK(same(src.records(), {originals.data(), originals.size()}));
  // ... and the other way round.
  auto& sr = src.mutable_records();
  sr[4].body = "src changed";
  CHECK(copy.records()[4].body == originals[4].body);
  CHECK(copy.records()[0].body == "changed");
}

TEST_CASE("storage: copy_of of a batch still shared is independent of every "
          "holder") {
  auto originals = full_records(6);
  record_batch a{originals};
  auto b = a; // shared by a and b
  auto copy = record_batch::copy_of(a.records());
  copy.mutable_records()[0].body = "mine";
  CHECK(a.records()[0].body == originals[0].body);
  CHECK(b.records()[0].body == originals[0].body);
  CHECK(a.records().begin() == b.records().begin()); // still shared
  // A copy of part of it.
  auto part = record_batch::copy_of(a.slice(2, 3).records());
  CHECK(seqs(part) == std::vector<uint64_t>{3, 4, 5});
  part.mutable_records()[0].key = "k";
  CHECK(a.records()[2].key == originals[2].key);
  CHECK(record_batch::copy_of(record_span{nullptr, 0}).empty());
}

TEST_CASE("storage: concat of one part is that part's storage; of several, "
          "their records in order") {
  record_batch one{full_records(5, 10, 1)};
  auto same_one = record_batch::concat({one});
  CHECK(same_one.size() == 5);
  CHECK(same_one.records().begin() == one.records().begin()); // no copy
  record_batch two{full_records(3, 10, 6)};
  record_batch three{full_records(4, 10, 9)};
  auto all = record_batch::concat({one, two, three});
  CHECK(seqs(all) == std::vector<uint64_t>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10,
                                           11, 12});
  CHECK(same(all.records()[5], two.records()[0]));
  CHECK(same(all.records()[11], three.records()[3]));
  // Slices and empty parts, in order too.
  auto mixed
    = record_batch::concat({three.slice(1, 2), record_batch{}, one.slice(0, 1)});
  CHECK(seqs(mixed) == std::vector<uint64_t>{10, 11, 1});
  // The result is its own: writing it changes no part.
  all.mutable_records()[0].body = "x";
  CHECK(one.records()[0].body != "x");
  CHECK(record_batch::concat({}).empty());
  CHECK(record_batch::concat({record_batch{}, record_batch{}}).empty());
}

TEST_CASE("storage: a slice keeps working after its parent was dropped") {
  auto originals = full_records(20, 30);
  record_batch s1, s2;
  {
    record_batch parent{originals};
    s1 = parent.slice(5, 4);
    s2 = parent.slice(18, 10); // clamped to 2
  } // the parent is gone; its storage is not recycled while slices hold it
  // Batches made now must not get the slices' storage.
  std::vector<record_batch> others;
  for (int i = 0; i < 4; ++i) {
    others.push_back(record_batch::make(20));
    others.push_back(record_batch::copy_of({originals.data(), 20}));
    for (auto& r : others.back().mutable_records())
      r.body = "overwritten";
  }
  REQUIRE(s1.size() == 4);
  REQUIRE(s2.size() == 2);
  for (size_t i = 0; i < 4; ++i)
    CHECK(same(s1.records()[i], originals[5 + i]));
  CHECK(same(s2.records()[0], originals[18]));
  CHECK(same(s2.records()[1], originals[19]));
  // A slice's own copy-on-write.
  s1.mutable_records()[0].body = "slice";
  CHECK(s1.size() == 4);
  CHECK(s2.records()[0].body == originals[18].body);
}

TEST_CASE("storage: mutable_records on a shared batch detaches; the other "
          "holder keeps its records") {
  auto originals = full_records(8);
  record_batch a{originals};
  auto b = a;
  auto& rs = b.mutable_records();
  CHECK(b.records().begin() != a.records().begin());
  rs[0].body = "b's";
  rs[1].attrs.clear();
  rs.pop_back();
  CHECK(b.size() == 7);
  CHECK(a.size() == 8);
  CHECK(same(a.records(), {originals.data(), originals.size()}));
  // Now unshared: writing again is in place.
  auto* before = b.records().begin();
  b.mutable_records()[2].body = "again";
  CHECK(b.records().begin() == before);
  // The last holder writes in place too.
  auto* a_before = a.records().begin();
  a.mutable_records()[0].body = "a's";
  CHECK(a.records().begin() == a_before);
  CHECK(b.records()[0].body == "b's");
}

TEST_CASE("storage: payload_bytes follows bodies changed through "
          "mutable_records, and counts a slice's own records") {
  record_batch a{full_records(10, 20)};
  auto first = a.payload_bytes();
  CHECK(first == bytes_by_hand(a));
  for (auto& r : a.mutable_records())
    r.body = "1"; // shorter
  CHECK(a.payload_bytes() == bytes_by_hand(a));
  CHECK(a.payload_bytes() != first);
  a.mutable_records()[3].body.assign(500, 'x'); // longer
  CHECK(a.payload_bytes() == bytes_by_hand(a));
  // A copy remembers the count; its own changes recount, the original's
  // count stays right.
  auto b = a;
  CHECK(b.payload_bytes() == a.payload_bytes());
  b.mutable_records()[0].key = "a much longer key than before";
  CHECK(b.payload_bytes() == bytes_by_hand(b));
  CHECK(a.payload_bytes() == bytes_by_hand(a));
  CHECK(a.payload_bytes() != b.payload_bytes());
  // Slices of a counted batch count only their own records.
  auto s = a.slice(2, 3);
  CHECK(s.payload_bytes() == bytes_by_hand(s));
  CHECK(s.payload_bytes() < a.payload_bytes());
  CHECK(a.slice(3, 1).payload_bytes() == 500 + a.records()[3].key.size());
  // A slice written detaches and recounts.
  s.mutable_records()[0].body = "";
  CHECK(s.payload_bytes() == bytes_by_hand(s));
  CHECK(a.payload_bytes() == bytes_by_hand(a));
  // take() empties an unshared batch: nothing left to count.
  auto c = record_batch::copy_of(a.records());
  CHECK(c.payload_bytes() == a.payload_bytes());
  auto taken = c.take();
  CHECK(taken.size() == 10);
  CHECK(c.payload_bytes() == bytes_by_hand(c));
}

// Failed on 8e9398a (minor): a moved-from batch had no records but still
// answered the payload_bytes() it had counted before the move.
TEST_CASE("storage: a moved-from batch counts no payload bytes") {
  record_batch a{full_records(4, 50)};
  CHECK(a.payload_bytes() > 0);
  auto b = std::move(a);
  CHECK(a.empty()); // NOLINT(bugprone-use-after-move): what is checked
  CHECK(a.payload_bytes() == 0);
  CHECK(b.payload_bytes() == bytes_by_hand(b));
}

TEST_CASE("storage: select keeps the flagged records in order, as copies; "
          "all flagged is the batch itself") {
  auto originals = full_records(6);
  record_batch a{originals};
  auto all = a.select({true, true, true, true, true, true});
  CHECK(all.records().begin() == a.records().begin()); // no copy
  auto some = a.select({false, true, false, true, true, false});
  REQUIRE(some.size() == 3);
  CHECK(same(some.records()[0], originals[1]));
  CHECK(same(some.records()[1], originals[3]));
  CHECK(same(some.records()[2], originals[4]));
  CHECK(some.payload_bytes() == bytes_by_hand(some));
  some.mutable_records()[0].body = "changed";
  CHECK(a.records()[1].body == originals[1].body);
  CHECK(a.select({false, false, false, false, false, false}).empty());
  // Flags missing at the end count as not kept.
  CHECK(seqs(a.select({true, false})) == std::vector<uint64_t>{1});
  // Of a slice: positions are the slice's.
  CHECK(seqs(a.slice(2, 3).select({true, false, true}))
        == std::vector<uint64_t>{3, 5});
}

// -- threads ----------------------------------------------------------------------

TEST_CASE("storage: two threads making, copying, slicing and dropping "
          "batches at once (run under TSan in CI)") {
  // Both threads share one batch's storage (each its own record_batch
  // object), copy from it, and feed the shelf blocks the other one takes.
  auto originals = full_records(16, 24);
  record_batch shared{originals};
  bool ok[2] = {false, false}; // one each: no shared write
  auto work = [&](record_batch mine, size_t id) {
    bool good = true;
    for (int i = 0; i < 2500 && good; ++i) { // 8 operations a round
      auto fresh = record_batch::make(16);
      for (auto& r : fresh.mutable_records()) {
        good = good && is_default(r);
        r.seq = id;
        r.body.assign(20 + i % 7, 'a');
        r.set_attr("t", std::to_string(id));
      }
      auto copy = record_batch::copy_of(mine.records());
      good = good && same(copy.records(), mine.records());
      auto part = mine.slice(i % 16, 5);
      auto part_copy = record_batch::copy_of(part.records());
      good = good && same(part_copy.records(), part.records());
      auto detached = mine;
      detached.mutable_records()[0].body = "local";
      good = good && mine.records()[0].body == originals[0].body;
      auto joined = record_batch::concat({fresh, copy});
      good = good && joined.size() == 32 && joined.records()[0].seq == id;
      // Everything but `mine` is dropped here, to the shelf.
    }
    ok[id] = good;
  };
  std::thread t1{work, shared, 0};
  std::thread t2{work, shared, 1};
  t1.join();
  t2.join();
  CHECK(ok[0]);
  CHECK(ok[1]);
  CHECK(same(shared.records(), {originals.data(), originals.size()}));
}
