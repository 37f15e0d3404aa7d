// What the I/O sources and sinks share: writing whole chunks to a file
// descriptor with errors told apart (a restart fixes it or it does not),
// reading lines with a length limit, and the replay log that lets a restarted
// source send again what was not acknowledged.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "troupe/actors/record_format.hpp"
#include "troupe/graph_spec.hpp"
#include "troupe/node_logic.hpp"
#include "troupe/pool_allocator.hpp"
#include "troupe/record.hpp"
#include "troupe/registry.hpp"
#include "troupe/source_location.hpp"

namespace troupe::actors {

// -- errors -----------------------------------------------------------------

// True for an errno a restart cannot fix (disk full, closed pipe or
// descriptor, a directory, no permission, read-only file system).
bool is_permanent_errno(int e);

// Throws unrecoverable_error for a permanent errno, std::runtime_error
// otherwise; the message is "<what>: <strerror(e)>".
[[noreturn]] void throw_errno(int e, const std::string& what);

// An owned file descriptor.
class unique_fd {
public:
  unique_fd() = default;
  explicit unique_fd(int fd) : fd_(fd) {
  }
  unique_fd(unique_fd&& x) noexcept : fd_(x.release()) {
  }
  unique_fd& operator=(unique_fd&& x) noexcept;
  unique_fd(const unique_fd&) = delete;
  unique_fd& operator=(const unique_fd&) = delete;
  ~unique_fd();
  int get() const {
    return fd_;
  }
  int release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }

private:
  int fd_ = -1;
};

// Writes all of [data, data + n) to `fd`, retrying interrupted and partial
// writes. Returns false when a non-blocking descriptor is full (never waits).
// On error it throws (throw_errno). `written`: how much reached the kernel.
bool write_all(int fd, const char* data, size_t n, const std::string& what,
               size_t& written);

// For a regular file opened to append: removes a last line that has no
// newline (a record torn by a crash or a full disk), so what is appended
// never continues it. Returns the bytes removed.
uint64_t drop_partial_last_line(int fd, const std::string& path);

// -- sinks ------------------------------------------------------------------

// A sink's output: records are formatted into one chunk that is written with
// one write call when it is large enough or on the sink's tick. A batch is
// passed on (counted as `out`, acknowledged upstream) only once its chunk
// reached the kernel; until then it stays buffered, so a crash or a failed
// write never counts as written what was not.
//
// A write error in add() (consume) is kept and thrown by the next flush()
// (tick or finish): a throw from consume would be taken for a poison record
// when the runtime re-runs a redelivered batch record by record.
class record_writer {
public:
  // `fd` is not owned. `name` is used in messages ("cannot write out.txt").
  // A regular file is cut back to its length before a failed chunk, so it
  // never ends in a torn record.
  record_writer(int fd, std::string name, record_format fmt);

  void add(record_batch batch, emitter& out);
  void flush(emitter& out);
  size_t buffered() const {
    return unwritten_;
  }

  // Well below the default credit window (16384 records), so upstream never
  // waits for the tick in steady flow.
  static constexpr size_t chunk_bytes = 256 * 1024;
  static constexpr size_t chunk_records = 1024;

private:
  bool write_chunk(); // false: a non-blocking descriptor is full; throws
  void pass_on(emitter& out);

  int fd_;
  std::string name_;
  std::string write_error_; // made once: not per chunk
  record_format format_;
  bool regular_ = false;
  std::string buf_;
  std::vector<record_batch> held_; // formatted into buf_, not written yet
  size_t unwritten_ = 0;           // records in held_
  std::exception_ptr failed_;      // a write error from add()
};

// -- sources ----------------------------------------------------------------

// Reads lines (without their '\n') from a descriptor in large chunks. A line
// longer than `max_line` bytes is reported once (with its first bytes) and
// skipped to its newline, so memory stays bounded whatever the input. Read
// errors throw (never taken for the end of the input); a regular file that
// shrinks below what was read is an error too.
class line_reader {
public:
  enum class status {
    line,      // `body` holds the next line
    too_long,  // the line passed max_line: `body` holds its first bytes
    pause,     // read a lot without finishing a line: call again later
    would_block, // nothing to read now (non-blocking mode)
    eof,
  };

  // `poll_first`: check readiness before each read (stdin must never block
  // a scheduler thread). `fd` is owned.
  line_reader(unique_fd fd, std::string name, size_t max_line,
              bool poll_first);

  status next(std::string& body);

  // Byte offset of the first line not returned yet (where a rerun resumes).
  uint64_t position() const {
    return line_start_;
  }
  // The size of a regular file at open (0: not a regular file).
  uint64_t size_at_open() const {
    return size_at_open_;
  }
  // Starts at byte `offset` of a regular file (a checkpoint).
  void seek(uint64_t offset);
  // The input, for pread: a checkpoint fingerprints the bytes it skips.
  int fd() const {
    return fd_.get();
  }
  size_t max_line() const {
    return max_line_;
  }

  // Bytes of a too-long line kept as the body of its error record.
  static constexpr size_t too_long_prefix = 1024;

private:
  enum class fill_result { data, would_block, eof };
  fill_result fill();

  unique_fd fd_;
  std::string name_;
  size_t max_line_;
  bool poll_first_;
  bool regular_ = false;
  std::vector<char> buf_;
  size_t begin_ = 0, end_ = 0; // unread bytes in buf_
  uint64_t buf_offset_ = 0;    // input offset of buf_[0]
  uint64_t line_start_ = 0;    // input offset of the next line
  uint64_t size_at_open_ = 0;
  bool skipping_ = false;      // inside a too-long line
  bool eof_ = false;
};

// Whether a restarted source replays what it sent and was not acknowledged:
// under at_least_once it must; under at_most_once it must not. node_context
// does not carry the delivery mode yet, so this answers at_least_once.
bool replays_sent(const node_context& ctx);

// The default for the sources' `max_line`: far above any sane record, far
// below memory.
inline constexpr const char* default_max_line = "4MiB";

// Sends a line longer than max_line to the node's `errors` (counted as made
// by this source): its first bytes are the body, the reason says which line.
void fail_too_long(record r, const line_reader& reader, const std::string& what,
                   emitter& out);

// `max_line` must leave room for a line.
void check_max_line(const node_spec& n, std::vector<diagnostic>& errors);

// The `max_line` parameter of a line source (file, stdin).
param_spec max_line_param();

// What a source emitted and was not acknowledged yet, by first seq. Kept in
// node_memory, it lets a restarted source replay exactly that (each record's
// attempt + 1, so fault injection decides anew) before it continues, and it
// tracks the acknowledged prefix for checkpoints. Bounded by the credit window.
class replay_log {
public:
  // Where reading stood after a batch (byte offset, next seq); meaningful
  // only for sources that resume from a position.
  struct position {
    uint64_t offset = 0;
    uint64_t next_seq = 0;
  };

  // Remembers `b`, emitted now; `end`: where reading stands after it.
  void sent(const record_batch& b, const position* end = nullptr);
  // Remembers records made but not emitted (a produce that threw half-way):
  // the next incarnation emits them first.
  void unsent(std::vector<record> rs, const position* end = nullptr);
  // Returns how many batches with a position the acknowledged prefix
  // advanced over (0: it did not move).
  size_t acknowledged(const record_batch& b);
  // Everything up to here was acknowledged (valid when advanced at least once).
  const position& acked() const {
    return acked_;
  }

  // A new incarnation: what is unacknowledged will be replayed. Without
  // `replay_sent` (at_most_once) only what was never emitted is; what was
  // sent is delivered or counted lost by the runtime, never sent twice.
  void restart(bool replay_sent = true);
  bool replaying() const {
    return !replay_.empty();
  }
  // Emits up to `max` replayed records (create + emit); returns how many.
  size_t replay(size_t max, emitter& out);
  // Records remembered (sent or to replay, not acknowledged).
  size_t records() const {
    return records_;
  }

  // A source nobody consumes is never acknowledged; past this many records
  // the oldest are forgotten rather than kept forever. Far above any credit
  // window, so a consumed source never reaches it.
  static constexpr size_t max_records = size_t{1} << 21;

private:
  void forget_oldest();

  struct entry {
    record_batch batch;
    bool acked = false;
    bool has_end = false;
    bool bump = true; // replay with attempt + 1 (it was sent before)
    position end;
  };
  // Pooled nodes: a batch's entry costs no malloc once warm.
  std::map<uint64_t, entry, std::less<uint64_t>,
           pool_allocator<std::pair<const uint64_t, entry>>>
    entries_;
  std::deque<uint64_t> replay_; // keys, in seq order
  position acked_;
  size_t records_ = 0;
};

// What a line source (file, stdin) keeps across restarts
// (node_context::memory): its reader, what was sent and not acknowledged, and
// the next seq.
struct line_source_memory : node_memory {
  std::unique_ptr<line_reader> reader;
  replay_log log;
  uint64_t next_seq = 0;
};

// The produce() of a line source: first what the log replays, then up to
// `max` lines from the reader, one record each (seq counts lines); a line
// longer than max_line goes to `errors`, named by `what`. `positions`: each
// batch remembers where reading stands (a source that checkpoints);
// `reserve`: room for `max` records is taken up front.
produce_status produce_lines(line_source_memory& m, size_t max, emitter& out,
                             const std::string& what, bool positions,
                             bool reserve);

} // namespace troupe::actors
