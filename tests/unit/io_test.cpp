// The I/O building blocks of the file, stdin and stdout nodes, without an
// actor system: the line reader's limits and positions, the replay log that
// lets a restarted source resume, and the sink writer's error handling.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <string>
#include <vector>

#include "troupe/actors/io.hpp"

using namespace troupe;
using namespace troupe::actors;

namespace {

// Records what a logic emits; time is never asked.
struct test_emitter : emitter {
  std::vector<record_batch> emitted;
  std::vector<std::string> reasons;
  size_t created = 0;
  void emit(record_batch b) override {
    emitted.push_back(std::move(b));
  }
  void fail(record, std::string reason) override {
    reasons.push_back(std::move(reason));
  }
  void drop(size_t) override {
  }
  void create(size_t n) override {
    created += n;
  }
  size_t emitted_records() const {
    size_t n = 0;
    for (auto& b : emitted)
      n += b.size();
    return n;
  }
};

// A temporary file holding `text`, opened for reading.
unique_fd temp_input(const std::string& text) {
  char name[] = "/tmp/troupe-io-test-XXXXXX";
  int fd = ::mkstemp(name);
  REQUIRE(fd >= 0);
  ::unlink(name);
  REQUIRE(::write(fd, text.data(), text.size())
          == static_cast<ssize_t>(text.size()));
  ::lseek(fd, 0, SEEK_SET);
  return unique_fd{fd};
}

record_batch batch_of(uint64_t first, size_t n) {
  std::vector<record> rs(n);
  for (size_t i = 0; i < n; ++i) {
    rs[i].seq = first + i;
    rs[i].body = std::to_string(first + i);
  }
  return record_batch{std::move(rs)};
}

} // namespace

TEST_CASE("line_reader: lines, a last line without newline, positions") {
  line_reader in{temp_input("ab\n\ncd"), "t", 100, false};
  std::string body;
  CHECK(in.next(body) == line_reader::status::line);
  CHECK(body == "ab");
  CHECK(in.position() == 3);
  CHECK(in.next(body) == line_reader::status::line);
  CHECK(body == "");
  CHECK(in.next(body) == line_reader::status::line);
  CHECK(body == "cd");
  CHECK(in.position() == 6);
  CHECK(in.next(body) == line_reader::status::eof);
}

TEST_CASE("line_reader: a line over max_line is reported once and skipped") {
  std::string big(5000, 'x');
  line_reader in{temp_input("ok\n" + big + "\nnext\n" + big), "t", 4096,
                 false};
  std::string body;
  CHECK(in.next(body) == line_reader::status::line);
  CHECK(in.next(body) == line_reader::status::too_long);
  CHECK(body.size() == line_reader::too_long_prefix);
  CHECK(in.next(body) == line_reader::status::line);
  CHECK(body == "next");
  CHECK(in.position() == 3 + 5001 + 5);
  CHECK(in.next(body) == line_reader::status::too_long); // up to the end
  CHECK(in.next(body) == line_reader::status::eof);
}

TEST_CASE("line_reader: a line of exactly max_line bytes is kept") {
  std::string exact(4096, 'y');
  line_reader in{temp_input(exact + "\n"), "t", 4096, false};
  std::string body;
  CHECK(in.next(body) == line_reader::status::line);
  CHECK(body == exact);
}

TEST_CASE("line_reader: a directory is an unrecoverable read error") {
  unique_fd dir{::open("/tmp", O_RDONLY)};
  line_reader in{std::move(dir), "/tmp", 100, false};
  std::string body;
  CHECK_THROWS_AS(in.next(body), unrecoverable_error);
}

TEST_CASE("line_reader: a newline-free endless input pauses, bounded") {
  unique_fd zero{::open("/dev/zero", O_RDONLY)};
  line_reader in{std::move(zero), "/dev/zero", 1024, false};
  std::string body;
  CHECK(in.next(body) == line_reader::status::too_long);
  CHECK(in.next(body) == line_reader::status::pause);
  CHECK(in.position() == 0); // resume would start at the long line
}

TEST_CASE("replay_log: the acknowledged prefix ignores later batches acked first") {
  replay_log log;
  replay_log::position p1{10, 2}, p2{20, 4}, p3{30, 6};
  auto b1 = batch_of(0, 2), b2 = batch_of(2, 2), b3 = batch_of(4, 2);
  log.sent(b1, &p1);
  log.sent(b2, &p2);
  log.sent(b3, &p3);
  CHECK(log.acknowledged(b2) == 0);
  CHECK(log.acknowledged(b3) == 0);
  CHECK(log.acknowledged(b1) == 3);
  CHECK(log.acked().offset == 30);
  CHECK(log.records() == 0);
}

TEST_CASE("replay_log: a restart replays what is unacknowledged, attempt + 1") {
  replay_log log;
  auto b1 = batch_of(0, 4), b2 = batch_of(4, 4);
  log.sent(b1);
  log.sent(b2);
  log.acknowledged(b2);
  log.restart();
  REQUIRE(log.replaying());
  test_emitter out;
  CHECK(log.replay(3, out) == 3); // credit for 3: the batch is split
  CHECK(log.replay(10, out) == 1);
  CHECK_FALSE(log.replaying());
  CHECK(out.created == 4);
  REQUIRE(out.emitted.size() == 2);
  CHECK(out.emitted[0].records()[0].seq == 0);
  CHECK(out.emitted[1].records()[0].seq == 3);
  for (auto& b : out.emitted)
    for (auto& r : b.records())
      CHECK(r.ctx.attempt == 2);
  // The replayed parts are acknowledged like any batch.
  log.acknowledged(out.emitted[0]);
  log.acknowledged(out.emitted[1]);
  CHECK(log.records() == 0);
}

TEST_CASE("replay_log: records made but never emitted keep attempt 1") {
  replay_log log;
  std::vector<record> rs(2);
  rs[0].seq = 7;
  rs[1].seq = 8;
  log.unsent(std::move(rs));
  test_emitter out;
  CHECK(log.replay(10, out) == 2);
  CHECK(out.emitted[0].records()[0].ctx.attempt == 1);
}

TEST_CASE("record_writer: nothing counts as written before the kernel has it") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  unique_fd rd{fds[0]}, wr{fds[1]};
  record_writer w{wr.get(), "pipe", record_format::lines};
  test_emitter out;
  w.add(batch_of(0, 3), out);
  CHECK(out.emitted.empty());
  CHECK(w.buffered() == 3);
  w.flush(out);
  CHECK(out.emitted_records() == 3);
  CHECK(w.buffered() == 0);
  char buf[64];
  auto n = ::read(rd.get(), buf, sizeof(buf));
  CHECK(std::string(buf, static_cast<size_t>(n)) == "0\n1\n2\n");
}

TEST_CASE("record_writer: a full device fails at the next flush, not in add") {
  unique_fd full{::open("/dev/full", O_WRONLY)};
  REQUIRE(full.get() >= 0);
  record_writer w{full.get(), "/dev/full", record_format::jsonl};
  test_emitter out;
  // Enough records for add() to write a chunk itself: the error is kept.
  for (uint64_t i = 0; i < record_writer::chunk_records; i += 256)
    CHECK_NOTHROW(w.add(batch_of(i, 256), out));
  CHECK(out.emitted.empty());
  CHECK(w.buffered() == record_writer::chunk_records);
  CHECK_THROWS_AS(w.flush(out), unrecoverable_error);
  CHECK(out.emitted.empty());
}

TEST_CASE("record_writer: a closed pipe is unrecoverable (EPIPE)") {
  auto old = std::signal(SIGPIPE, SIG_IGN);
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  ::close(fds[0]);
  unique_fd wr{fds[1]};
  record_writer w{wr.get(), "pipe", record_format::lines};
  test_emitter out;
  w.add(batch_of(0, 1), out);
  CHECK_THROWS_AS(w.flush(out), unrecoverable_error);
  std::signal(SIGPIPE, old);
}

TEST_CASE("drop_partial_last_line cuts a torn record, keeps whole ones") {
  char name[] = "/tmp/troupe-io-test-XXXXXX";
  int fd = ::mkstemp(name);
  REQUIRE(fd >= 0);
  unique_fd f{fd};
  std::string text = "one\ntwo\nthr";
  REQUIRE(::write(fd, text.data(), text.size())
          == static_cast<ssize_t>(text.size()));
  CHECK(drop_partial_last_line(fd, name) == 3);
  CHECK(::lseek(fd, 0, SEEK_END) == 8);
  CHECK(drop_partial_last_line(fd, name) == 0);
  ::unlink(name);
}

TEST_CASE("record_writer: a full non-blocking descriptor never blocks or loses") {
  int fds[2];
  REQUIRE(::pipe(fds) == 0);
  unique_fd rd{fds[0]}, wr{fds[1]};
  ::fcntl(wr.get(), F_SETFL, O_NONBLOCK);
  record_writer w{wr.get(), "pipe", record_format::lines};
  test_emitter out;
  std::vector<record> rs(1);
  rs[0].body.assign(200 * 1024, 'z'); // more than a pipe holds
  w.add(record_batch{std::move(rs)}, out);
  w.flush(out); // writes what fits, keeps the rest
  CHECK(out.emitted.empty());
  CHECK(w.buffered() == 1);
  std::string got;
  char buf[65536];
  while (out.emitted.empty()) {
    auto n = ::read(rd.get(), buf, sizeof(buf));
    REQUIRE(n > 0);
    got.append(buf, static_cast<size_t>(n));
    w.flush(out);
  }
  while (got.size() < 200 * 1024 + 1) {
    auto n = ::read(rd.get(), buf, sizeof(buf));
    REQUIRE(n > 0);
    got.append(buf, static_cast<size_t>(n));
  }
  CHECK(got.size() == 200 * 1024 + 1);
  CHECK(w.buffered() == 0);
}

TEST_CASE("replay_log: at_most_once replays only what was never emitted") {
  replay_log log;
  log.sent(batch_of(0, 4));
  std::vector<record> rs(1);
  rs[0].seq = 4;
  log.unsent(std::move(rs));
  log.restart(false);
  test_emitter out;
  CHECK(log.replay(10, out) == 1);
  CHECK(out.emitted[0].records()[0].seq == 4);
  CHECK(log.records() == 1);
}
