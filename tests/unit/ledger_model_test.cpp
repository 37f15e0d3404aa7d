// The delivery ledger against a model, the way LevelDB tests its skiplist:
// thousands of random messages (fixed seeds) to an input_ledger + outbox
// pair wired as the node actor wires them, with the test keeping its own
// books of what upstream sent, what each consumer holds, and what every
// output entry derives from. After every step the ledger's state must match
// the books and its invariants hold:
//   - a batch goes out only while its edge is under the window (records
//     and bytes), and is flagged a redelivery exactly when that edge had it
//     before;
//   - every input batch is acknowledged exactly once, and only when
//     nothing derived from it is still unacknowledged downstream and the
//     logic no longer holds it;
//   - per edge, in-flight and queued counts equal what the books say;
//     an entry's pending count equals the edges that still owe it;
//   - `unsent` counts exactly the entries not yet handed to every edge;
//   - after a rewire, the redelivered records are the unacknowledged ones
//     the consumer had not reported received; a drop counts as lost what
//     was queued and what died in the removed consumer's mailbox.
// At the end everything drains: all acknowledged, every eof sent.
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <vector>

#include "node/commands.hpp"
#include "node/input_ledger.hpp"
#include "node/outbox.hpp"
#include "node/worker_dispatch.hpp"

using namespace troupe;
using namespace troupe::detail;
using kind = node_command::kind;

namespace {

record_batch batch_of(size_t n, size_t bytes) {
  std::vector<record> rs(n);
  for (auto& r : rs)
    r.body.assign(bytes, 'x');
  return record_batch{std::move(rs)};
}

class ledger_model {
public:
  ledger_model(uint64_t seed, size_t window, size_t window_bytes,
               bool at_most_once, bool second_finished)
    : rng_(seed),
      window_(window),
      window_bytes_(window_bytes),
      at_most_once_(at_most_once),
      in_(2, window, window_bytes, at_most_once) {
    std::vector<outbox::edge_config> edges{
      {out_data_port, 0, true, false},
      {out_data_port, 1, true, second_finished},
      {out_errors_port, 0, true, false},
    };
    out_ = outbox{edges, window, window_bytes, false};
    consumers_.resize(edges.size());
    consumers_[1].dropped = second_finished;
  }

  void step() {
    auto p = pick(1000);
    if (p < 350)
      receive();
    else if (p < 500)
      flush(false);
    else if (p < 800)
      ack();
    else if (p < 850)
      received();
    else if (p < 880)
      rewire();
    else if (p < 882)
      drop();
    else if (p < 915)
      starve();
    else if (p < 965)
      let_go();
    else
      stale_ack();
    check();
  }

  // Nothing more arrives: the logic lets go, every consumer acknowledges
  // what it gets, eof goes out.
  void drain() {
    let_go();
    for (int round = 0; round < 10000; ++round) {
      flush(true);
      bool any = false;
      for (uint32_t tag = 0; tag < consumers_.size(); ++tag)
        while (!consumers_[tag].unacked.empty()) {
          auto id = consumers_[tag].unacked.begin()->first;
          REQUIRE(out_.ack(tag, id, in_, todo_));
          consumers_[tag].unacked.erase(id);
          consumers_[tag].received.erase(id);
          process();
          any = true;
        }
      check();
      if (!any && out_.entries() == 0 && in_.empty())
        break;
    }
    flush(true);
    check();
    CHECK(out_.entries() == 0);
    CHECK(in_.empty());
    CHECK(out_.drained());
    for (auto& [id, b] : upstream_)
      CHECK(b.acks == 1);
    for (uint32_t tag = 0; tag < consumers_.size(); ++tag)
      CHECK(out_.edge(tag).eof_sent);
  }

  uint64_t sent_batches() const {
    return sends_;
  }
  uint64_t redelivered_batches() const {
    return redeliveries_;
  }
  uint64_t drops() const {
    return drops_;
  }

private:
  struct upstream_batch {
    uint32_t port = 0;
    size_t records = 0;
    size_t bytes = 0;
    uint64_t token = 0;
    int acks = 0;
  };

  struct consumer {
    std::map<uint64_t, std::pair<size_t, size_t>> unacked; // records, bytes
    std::set<uint64_t> received;
    std::set<uint64_t> ever_sent;
    bool dropped = false;
  };

  size_t pick(size_t n) {
    return std::uniform_int_distribution<size_t>(0, n - 1)(rng_);
  }

  // -- messages --------------------------------------------------------------

  void receive() {
    auto port = static_cast<uint32_t>(pick(2));
    // A producer sends only while it has credit.
    if (in_.unacked_records(port) >= window_
        || in_.unacked_bytes(port) >= window_bytes_)
      return;
    auto n = 1 + pick(6);
    auto bytes = pick(9);
    auto id = next_batch_++;
    auto token = in_.receive(port, port, id, 0, n, n * bytes, {}, todo_);
    upstream_[id] = upstream_batch{port, n, n * bytes, token, 0};
    process();
    // The logic: holds the records for a while, or emits all it holds.
    in_.open(token);
    if (pick(3) == 0) {
      held_ += n;
    } else {
      emit(out_data_port, held_ + n);
      held_ = 0;
    }
    if (pick(10) == 0)
      emit(out_errors_port, 1); // a failed record
    in_.release_open(held_, todo_);
    process();
    if (in_.pressing())
      let_go();
    flush(false);
  }

  void emit(uint32_t port, size_t n) {
    std::vector<uint64_t> lineage(in_.open_tokens().begin(),
                                  in_.open_tokens().end());
    auto before = out_.entries();
    out_.emit(port, batch_of(n, pick(5)), lineage, in_, todo_);
    process();
    if (out_.entries() > before)
      lineage_[next_out_++] = lineage;
  }

  void let_go() {
    if (held_ == 0)
      return;
    emit(out_data_port, held_);
    held_ = 0;
    in_.release_open(0, todo_);
    process();
  }

  void flush(bool input_done) {
    out_.flush(in_.pressing(), input_done, todo_);
    process();
  }

  uint32_t live_edge_with_unacked() {
    std::vector<uint32_t> tags;
    for (uint32_t t = 0; t < consumers_.size(); ++t)
      if (!consumers_[t].dropped && !consumers_[t].unacked.empty())
        tags.push_back(t);
    return tags.empty() ? UINT32_MAX : tags[pick(tags.size())];
  }

  uint64_t any_of(const std::map<uint64_t, std::pair<size_t, size_t>>& m) {
    auto i = m.begin();
    std::advance(i, static_cast<long>(pick(m.size())));
    return i->first;
  }

  void ack() {
    auto tag = live_edge_with_unacked();
    if (tag == UINT32_MAX)
      return;
    auto& c = consumers_[tag];
    auto id = any_of(c.unacked);
    REQUIRE(out_.ack(tag, id, in_, todo_));
    c.unacked.erase(id);
    c.received.erase(id);
    process();
    flush(false);
  }

  void stale_ack() {
    auto tag = static_cast<uint32_t>(pick(consumers_.size() + 1));
    auto id = static_cast<uint64_t>(pick(next_out_ + 2));
    if (tag < consumers_.size() && consumers_[tag].unacked.count(id))
      return;
    CHECK_FALSE(out_.ack(tag, id, in_, todo_));
    CHECK(todo_.empty());
  }

  void received() {
    if (!at_most_once_)
      return;
    auto tag = live_edge_with_unacked();
    if (tag == UINT32_MAX)
      return;
    auto id = any_of(consumers_[tag].unacked);
    out_.received(tag, id);
    consumers_[tag].received.insert(id);
  }

  void rewire() {
    auto tag = static_cast<uint32_t>(pick(consumers_.size()));
    auto& c = consumers_[tag];
    if (c.dropped)
      return;
    // Redelivered: what it had not acknowledged nor reported received,
    // newest first.
    std::vector<size_t> expected;
    for (auto i = c.unacked.rbegin(); i != c.unacked.rend(); ++i)
      if (!c.received.count(i->first))
        expected.push_back(i->second.first);
    REQUIRE(out_.rewire(tag, true, in_, todo_));
    c.unacked.clear();
    c.received.clear();
    std::vector<size_t> redelivered;
    for (auto& cmd : todo_.list())
      if (cmd.what == kind::redelivered)
        redelivered.push_back(cmd.records);
    CHECK(redelivered == expected);
    process();
    CHECK(out_.edge(tag).in_flight == 0);
    flush(false);
  }

  // Edge 0 stays: the rest of the run still has somewhere to send.
  void drop() {
    auto tag = static_cast<uint32_t>(1 + pick(consumers_.size() - 1));
    auto& c = consumers_[tag];
    if (c.dropped) {
      CHECK_FALSE(out_.drop(tag, true, 0, in_, todo_));
      return;
    }
    bool finished = pick(2) == 0;
    size_t in_flight = 0;
    for (auto& [id, rb] : c.unacked)
      in_flight += rb.first;
    auto got = pick(in_flight + 1); // it had received this much of it
    auto expected = out_.edge(tag).queued + (in_flight - got);
    REQUIRE(out_.drop(tag, finished, got, in_, todo_));
    uint64_t lost = 0;
    for (auto& cmd : todo_.list())
      if (cmd.what == kind::lost_at) {
        CHECK(cmd.edge == tag);
        lost += cmd.records;
      }
    CHECK(lost == (finished ? 0 : expected));
    c.dropped = true;
    ++drops_;
    c.unacked.clear();
    c.received.clear();
    process();
    flush(false);
  }

  void starve() {
    if (in_.starve())
      out_.forget_starved_told();
    let_go();
    flush(false);
  }

  // -- what the node actor would carry out -------------------------------------

  void process() {
    for (auto& cmd : todo_.list()) {
      switch (cmd.what) {
        case kind::send_batch: {
          auto& c = consumers_[cmd.edge];
          REQUIRE_FALSE(c.dropped);
          size_t records = 0, bytes = 0;
          for (auto& [id, rb] : c.unacked) {
            records += rb.first;
            bytes += rb.second;
          }
          // The credit: under the window before each send.
          CHECK(records < window_);
          CHECK(bytes < window_bytes_);
          CHECK(cmd.redelivery == (c.ever_sent.count(cmd.id) > 0));
          auto& b = todo_.batch(cmd);
          CHECK(cmd.records == b.size());
          CHECK(c.unacked.count(cmd.id) == 0);
          c.unacked[cmd.id] = {b.size(), b.payload_bytes()};
          c.ever_sent.insert(cmd.id);
          ++sends_;
          redeliveries_ += cmd.redelivery;
          break;
        }
        case kind::ack: {
          auto i = upstream_.find(cmd.id);
          REQUIRE(i != upstream_.end());
          auto& b = i->second;
          CHECK(++b.acks == 1);
          CHECK(cmd.port == b.port);
          CHECK(cmd.tag == b.port);
          CHECK(cmd.records == b.records);
          // Acknowledged only when nothing holds it any more.
          auto& open = in_.open_tokens();
          CHECK(std::find(open.begin(), open.end(), b.token) == open.end());
          for (auto& [out_id, lineage] : lineage_)
            if (out_.find(out_id))
              CHECK(std::find(lineage.begin(), lineage.end(), b.token)
                    == lineage.end());
          break;
        }
        case kind::received:
          CHECK(at_most_once_);
          break;
        case kind::source_acked:
        case kind::exec:
          FAIL("not a source, no workers");
          break;
        default:
          break;
      }
    }
    todo_.clear();
  }

  // -- invariants ----------------------------------------------------------------

  void check() {
    unsent_ += out_.take_counts().unsent;
    // Entries that settled are gone for good.
    for (auto i = lineage_.begin(); i != lineage_.end();)
      if (!out_.find(i->first))
        i = lineage_.erase(i);
      else
        ++i;
    int64_t unsent = 0;
    for (auto& [id, lineage] : lineage_) {
      auto* e = out_.find(id);
      size_t owing = 0;
      for (uint32_t t = 0; t < consumers_.size(); ++t) {
        auto& q = out_.edge(t).queue;
        owing += std::find(q.begin(), q.end(), id) != q.end()
                 || out_.edge(t).unacked.count(id) > 0;
      }
      CHECK(e->pending == owing);
      if (e->unsent > 0)
        unsent += static_cast<int64_t>(e->batch.size());
      for (auto t : lineage) {
        auto* in = in_.find(t);
        REQUIRE(in != nullptr); // not acknowledged while derived from
        CHECK(in->refs >= 1);
      }
    }
    CHECK(unsent_ == unsent);
    for (uint32_t t = 0; t < consumers_.size(); ++t) {
      auto& e = out_.edge(t);
      auto& c = consumers_[t];
      CHECK(e.dropped == c.dropped);
      size_t records = 0, bytes = 0;
      for (auto& [id, rb] : c.unacked) {
        records += rb.first;
        bytes += rb.second;
        CHECK(e.unacked.count(id) == 1);
      }
      CHECK(e.unacked.size() == c.unacked.size());
      CHECK(e.in_flight == records);
      CHECK(e.in_flight_bytes == bytes);
      size_t queued = 0;
      for (auto id : e.queue) {
        auto* o = out_.find(id);
        REQUIRE(o != nullptr);
        queued += o->batch.size();
      }
      CHECK(e.queued == queued);
      for (auto id : e.resent)
        CHECK(std::find(e.queue.begin(), e.queue.end(), id) != e.queue.end());
      for (auto id : e.received)
        CHECK(e.unacked.count(id) == 1);
      if (e.dropped)
        CHECK((e.queue.empty() && e.unacked.empty()));
    }
    size_t open_batches = 0;
    size_t records[2] = {0, 0}, bytes[2] = {0, 0};
    for (auto& [id, b] : upstream_)
      if (b.acks == 0) {
        ++open_batches;
        records[b.port] += b.records;
        bytes[b.port] += b.bytes;
      }
    CHECK(in_.size() == open_batches);
    for (uint32_t p = 0; p < 2; ++p) {
      CHECK(in_.unacked_records(p) == records[p]);
      CHECK(in_.unacked_bytes(p) == bytes[p]);
    }
  }

  std::mt19937_64 rng_;
  size_t window_;
  size_t window_bytes_;
  bool at_most_once_;
  input_ledger in_;
  outbox out_;
  node_commands todo_;
  std::map<uint64_t, upstream_batch> upstream_; // by batch id
  uint64_t next_batch_ = 1;
  size_t held_ = 0; // records the logic holds since it last emitted
  std::vector<consumer> consumers_;
  std::map<uint64_t, std::vector<uint64_t>> lineage_; // live out id -> tokens
  uint64_t next_out_ = 1;
  int64_t unsent_ = 0;
  uint64_t sends_ = 0;
  uint64_t redeliveries_ = 0;
  uint64_t drops_ = 0;
};

} // namespace

TEST_CASE("ledger model: random messages keep credit, acknowledgement order "
          "and redelivery exact") {
  const size_t windows[] = {4, 9, 32};
  const size_t byte_windows[] = {12, 60, size_t{1} << 20};
  uint64_t sends = 0, redeliveries = 0, drops = 0;
  for (uint64_t seed = 1; seed <= 24; ++seed) {
    CAPTURE(seed);
    ledger_model m{seed, windows[seed % 3], byte_windows[(seed / 3) % 3],
                   seed % 2 == 0, seed % 5 == 0};
    for (int i = 0; i < 5000; ++i)
      m.step();
    m.drain();
    sends += m.sent_batches();
    redeliveries += m.redelivered_batches();
    drops += m.drops();
  }
  // The runs did exercise the paths they check.
  CHECK(sends > 20000);
  CHECK(redeliveries > 1000);
  CHECK(drops > 10);
  MESSAGE("sent ", sends, " batches, ", redeliveries, " again after a rewire; ",
          drops, " consumers dropped");
}

TEST_CASE("worker dispatch model: random completion order, ordered apply in "
          "dispatch order, at most two batches per worker") {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    CAPTURE(seed);
    std::mt19937_64 rng{seed};
    auto pick = [&](size_t n) {
      return std::uniform_int_distribution<size_t>(0, n - 1)(rng);
    };
    bool ordered = seed % 2 == 1;
    size_t workers = 1 + pick(4);
    worker_dispatch d{workers, ordered};
    node_commands todo;
    struct running {
      uint32_t worker;
      uint64_t seq;
      uint64_t token;
    };
    std::vector<running> out; // dispatched, not answered
    std::vector<uint64_t> applied;
    uint64_t next_token = 1, next_seq = 0;
    size_t records = 0;
    auto step = [&](bool more) {
      if (more && pick(2) == 0) {
        auto n = 1 + pick(5);
        d.enqueue(next_token++, false, batch_of(n, 1), n);
        records += n;
      }
      d.dispatch(todo);
      for (auto& c : todo.list()) {
        REQUIRE(c.what == kind::exec);
        CHECK(c.id == next_seq++);
        CHECK(todo.batch(c).size() == c.records);
        out.push_back({c.edge, c.id, c.token});
      }
      todo.clear();
      for (size_t w = 0; w < workers; ++w)
        CHECK(d.busy(w) <= 2);
      if (!out.empty() && pick(3) > 0) {
        auto k = pick(out.size());
        auto r = out[k];
        out.erase(out.begin() + static_cast<long>(k));
        stage_result res;
        res.created = r.token; // to recognise it
        d.complete(r.worker, r.seq, r.token, std::move(res));
        uint64_t token = 0;
        stage_result got;
        size_t n = 0;
        bool last = false;
        while (d.next_ready(token, got, n, last)) {
          CHECK(last);
          CHECK(got.created == token);
          applied.push_back(token);
          d.applied(0);
        }
      }
    };
    for (int i = 0; i < 3000; ++i)
      step(true);
    for (int i = 0; i < 100000 && !d.idle(); ++i)
      step(false);
    CHECK(d.idle());
    CHECK(applied.size() == next_token - 1);
    if (ordered)
      CHECK(std::is_sorted(applied.begin(), applied.end()));
    CHECK(d.records() == records); // applied(0): records were never returned
  }
}
