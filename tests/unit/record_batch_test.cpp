// record and record_batch: attributes, and the copy-on-write rules the
// runtime relies on (slices share storage, the first writer detaches, a
// shared batch is never changed under another holder).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "troupe/record.hpp"

using troupe::record;
using troupe::record_batch;

namespace {

std::vector<record> make_records(size_t n) {
  std::vector<record> rs(n);
  for (size_t i = 0; i < n; ++i) {
    rs[i].seq = i;
    rs[i].key = "k" + std::to_string(i);
    rs[i].body = "body" + std::to_string(i);
  }
  return rs;
}

std::vector<uint64_t> seqs(const record_batch& b) {
  std::vector<uint64_t> out;
  for (auto& r : b.records())
    out.push_back(r.seq);
  return out;
}

} // namespace

TEST_CASE("record attributes: set, replace, look up; order kept") {
  record r;
  CHECK(r.attr("a") == nullptr);
  r.set_attr("a", "1");
  r.set_attr("b", "2");
  r.set_attr("a", "3"); // replaces in place
  REQUIRE(r.attrs.size() == 2);
  CHECK(r.attrs[0].first == "a");
  CHECK(r.attrs[1].first == "b");
  REQUIRE(r.attr("a") != nullptr);
  CHECK(*r.attr("a") == "3");
  CHECK(*r.attr("b") == "2");
  CHECK(r.attr("c") == nullptr);
}

TEST_CASE("record defaults: first attempt, no origin") {
  record r;
  CHECK(r.seq == 0);
  CHECK(r.ctx.attempt == 1);
  CHECK(r.ctx.origin == 0);
}

TEST_CASE("an empty batch") {
  record_batch b;
  CHECK(b.empty());
  CHECK(b.size() == 0);
  CHECK(b.records().empty());
  CHECK(b.payload_bytes() == 0);
  CHECK(b.slice(0, 5).empty());
  CHECK(b.take().empty());
}

TEST_CASE("payload_bytes counts key and body bytes only") {
  std::vector<record> rs(2);
  rs[0].key = "ab";
  rs[0].body = "xyz";
  rs[0].set_attr("attr", "not counted");
  rs[1].body = "12345";
  record_batch b{std::move(rs)};
  CHECK(b.size() == 2);
  CHECK(b.payload_bytes() == 2 + 3 + 5);
  CHECK(b.slice(1, 1).payload_bytes() == 5);
}

TEST_CASE("slice shares storage and clamps to the batch") {
  record_batch b{make_records(10)};
  auto s = b.slice(3, 4);
  CHECK(seqs(s) == std::vector<uint64_t>{3, 4, 5, 6});
  // No copy: the slice's records are the batch's records.
  CHECK(&s.records()[0] == &b.records()[3]);
  CHECK(s.payload_bytes() == 4 * (2 + 5));
  // Clamped at the end; out of range or zero length is empty.
  CHECK(seqs(b.slice(8, 100)) == std::vector<uint64_t>{8, 9});
  CHECK(b.slice(10, 1).empty());
  CHECK(b.slice(3, 0).empty());
  // A slice of a slice is relative to the slice.
  auto ss = s.slice(1, 2);
  CHECK(seqs(ss) == std::vector<uint64_t>{4, 5});
  CHECK(&ss.records()[0] == &b.records()[4]);
  CHECK(s.slice(3, 5).size() == 1);
}

TEST_CASE("copies share until one writes: the writer detaches") {
  record_batch a{make_records(3)};
  record_batch b = a;
  CHECK(&a.records()[0] == &b.records()[0]);
  b.mutable_records()[0].body = "changed";
  CHECK(&a.records()[0] != &b.records()[0]);
  CHECK(a.records()[0].body == "body0");
  CHECK(b.records()[0].body == "changed");
  // Now unshared: writing again keeps the same storage.
  auto* before = &b.records()[0];
  b.mutable_records()[1].body = "again";
  CHECK(&b.records()[0] == before);
  CHECK(a.records()[1].body == "body1");
}

TEST_CASE("an unshared whole batch is written in place") {
  record_batch a{make_records(2)};
  auto* before = &a.records()[0];
  auto& rs = a.mutable_records();
  CHECK(&rs[0] == before);
  rs.push_back(record{});
  CHECK(a.size() == 3); // a whole batch follows its vector's size
}

TEST_CASE("writing a slice copies just the slice's records") {
  record_batch a{make_records(5)};
  auto s = a.slice(1, 2);
  a = record_batch{}; // the slice is now the storage's only holder
  auto& rs = s.mutable_records(); // still a slice: detaches to its 2 records
  CHECK(rs.size() == 2);
  CHECK(rs[0].seq == 1);
  CHECK(rs[1].seq == 2);
  rs.erase(rs.begin());
  CHECK(s.size() == 1);
  CHECK(seqs(s) == std::vector<uint64_t>{2});
}

TEST_CASE("take moves out of an unshared batch and copies a shared one") {
  SUBCASE("unshared: moved, the batch is left empty") {
    record_batch a{make_records(3)};
    auto* body = a.records()[0].body.data();
    auto rs = a.take();
    REQUIRE(rs.size() == 3);
    CHECK(rs[0].body.data() == body); // moved, not copied
    CHECK(a.empty());
  }
  SUBCASE("shared: copied, both holders keep their records") {
    record_batch a{make_records(3)};
    record_batch b = a;
    auto rs = a.take();
    CHECK(rs.size() == 3);
    CHECK(a.size() == 3);
    CHECK(b.size() == 3);
    rs[0].body = "mine";
    CHECK(b.records()[0].body == "body0");
  }
  SUBCASE("a slice: copies just the slice") {
    record_batch a{make_records(4)};
    auto rs = a.slice(2, 2).take();
    REQUIRE(rs.size() == 2);
    CHECK(rs[0].seq == 2);
    CHECK(rs[1].seq == 3);
    CHECK(a.size() == 4);
  }
}

TEST_CASE("select keeps the flagged records; all kept is the same batch") {
  record_batch a{make_records(4)};
  auto all = a.select({true, true, true, true});
  CHECK(&all.records()[0] == &a.records()[0]); // no copy
  auto some = a.select({false, true, false, true});
  CHECK(seqs(some) == std::vector<uint64_t>{1, 3});
  CHECK(&some.records()[0] != &a.records()[1]);
  // Missing flags count as not kept.
  CHECK(seqs(a.select({true})) == std::vector<uint64_t>{0});
  CHECK(a.select({}).empty());
  // On a slice: flags index the slice.
  CHECK(seqs(a.slice(1, 3).select({false, false, true}))
        == std::vector<uint64_t>{3});
  CHECK(a.size() == 4);
}
