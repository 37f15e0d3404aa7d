// file: as a source (no inputs) reads a text file line by line; as a sink
// (with inputs) writes records as jsonl or lines.
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <limits>
#include <memory>
#include <optional>
#include <system_error>

#include "troupe/actors/builtin_types.hpp"
#include "troupe/actors/io.hpp"
#include "troupe/actors/record_format.hpp"
#include "troupe/log.hpp"

namespace troupe::actors {

namespace {

// The node's memory (node_context::memory), kept across its restarts: the
// open input and where reading stands, and what was emitted but not
// acknowledged. A replacement replays that, then reads on, so a crash of the
// source or a group restart around it loses nothing and redoes little.
struct file_source_memory : line_source_memory {
  bool dirty = false; // the acknowledged position moved since the last save
  size_t unsaved = 0; // batches acknowledged since the last save
  bool regular = false; // the input is a regular file (can be fingerprinted)
  unique_fd lock;       // flock on CHECKPOINT.lock, held for the whole run
};

// -- the checkpoint file ------------------------------------------------------
//
// One line, `troupe-checkpoint 2 OFFSET LINE FINGERPRINT\n`: the byte offset
// of the first unacknowledged line, its line number, and 16 hex digits
// hashing the input's first and last (up to) 4 KiB before OFFSET. The
// fingerprint ties the checkpoint to its input: a rotated or replaced file
// fails the rerun instead of resuming mid-line in other data. Device and
// inode are left out on purpose: a copy, a restore or a remount changes them
// while the data stays the same. The old format `OFFSET LINE\n` is still
// read (without the fingerprint, the offset must still start a line).

struct checkpoint_state {
  uint64_t offset = 0;
  uint64_t line = 0;
  std::optional<uint64_t> fingerprint; // none in the old format
};

constexpr const char* checkpoint_magic = "troupe-checkpoint 2 ";
constexpr uint64_t fingerprint_span = 4096;

// An unsigned decimal at s[i], strictly: digits only (no sign), no overflow.
bool parse_u64(const std::string& s, size_t& i, uint64_t& v) {
  size_t start = i;
  v = 0;
  for (; i < s.size() && s[i] >= '0' && s[i] <= '9'; ++i) {
    auto d = static_cast<uint64_t>(s[i] - '0');
    if (v > (std::numeric_limits<uint64_t>::max() - d) / 10)
      return false;
    v = v * 10 + d;
  }
  return i > start;
}

bool parse_hex64(const std::string& s, size_t& i, uint64_t& v) {
  if (s.size() - i < 16)
    return false;
  v = 0;
  for (size_t end = i + 16; i < end; ++i) {
    char c = s[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0)
      return false;
    v = v << 4 | static_cast<uint64_t>(d);
  }
  return true;
}

// The whole text, exactly as save() writes it, or nothing.
std::optional<checkpoint_state> parse_checkpoint(const std::string& s) {
  checkpoint_state c;
  size_t i = 0;
  std::string magic = checkpoint_magic;
  bool v2 = s.compare(0, magic.size(), magic) == 0;
  if (v2)
    i = magic.size();
  if (!parse_u64(s, i, c.offset) || i >= s.size() || s[i++] != ' '
      || !parse_u64(s, i, c.line))
    return std::nullopt;
  if (v2) {
    uint64_t h = 0;
    if (i >= s.size() || s[i++] != ' ' || !parse_hex64(s, i, h))
      return std::nullopt;
    c.fingerprint = h;
  }
  if (i + 1 != s.size() || s[i] != '\n')
    return std::nullopt;
  return c;
}

// Reads up to n bytes at `at`; fewer only at the end of the file.
size_t pread_all(int fd, char* buf, size_t n, uint64_t at,
                 const std::string& name) {
  size_t got = 0;
  while (got < n) {
    auto r = ::pread(fd, buf + got, n - got, static_cast<off_t>(at + got));
    if (r < 0 && errno == EINTR)
      continue;
    if (r < 0)
      throw_errno(errno, "cannot read " + name);
    if (r == 0)
      break;
    got += static_cast<size_t>(r);
  }
  return got;
}

// FNV-1a over the offset and the input's first and last (up to) 4 KiB
// before it: cheap at every save, and a different file almost surely
// differs in one of them.
uint64_t fingerprint(int fd, uint64_t offset, const std::string& name) {
  uint64_t h = 14695981039346656037ull;
  auto mix = [&](const char* p, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      h ^= static_cast<unsigned char>(p[i]);
      h *= 1099511628211ull;
    }
  };
  for (int i = 0; i < 8; ++i) {
    char b = static_cast<char>(offset >> (8 * i));
    mix(&b, 1);
  }
  char buf[fingerprint_span];
  auto n = std::min(offset, fingerprint_span);
  mix(buf, pread_all(fd, buf, n, 0, name));
  mix(buf, pread_all(fd, buf, n, offset - n, name));
  return h;
}

// With `checkpoint: PATH` the source remembers how far acknowledged work got
// (byte offset and line number, in a small text file replaced atomically), and
// a new run of the same config continues from there: after a kill -9, nothing
// acknowledged is read again and nothing unacknowledged is skipped.
class file_source : public node_logic {
public:
  explicit file_source(const node_context& ctx)
    : path_(ctx.spec.params.str("path")),
      checkpoint_(ctx.spec.params.has("checkpoint")
                    ? ctx.spec.params.str("checkpoint")
                    : "") {
    if (ctx.memory && *ctx.memory) {
      if (auto* m = dynamic_cast<file_source_memory*>(ctx.memory->get())) {
        mem_ = m;
        mem_->log.restart(replays_sent(ctx)); // replay, then read on
        return;
      }
    }
    auto m = open(ctx.spec.params.bytes("max_line"));
    mem_ = m.get();
    if (ctx.memory)
      *ctx.memory = std::move(m);
    else
      own_ = std::move(m);
  }

  ~file_source() override {
    if (checkpoint_.empty() || !mem_->dirty)
      return;
    try {
      save();
    } catch (const std::exception& e) {
      troupe::log(troupe::log_level::error, "", e.what()); // a destructor must not throw
    }
  }

  progress_mark progress() const override {
    if (!mem_->reader)
      return {};
    return {mem_->reader->position(), mem_->reader->size_at_open()};
  }

  produce_status produce(size_t max, emitter& out) override {
    return produce_lines(*mem_, max, out, path_, /*positions=*/true,
                         /*reserve=*/true);
  }

  void acknowledged(const record_batch& batch) override {
    auto& m = *mem_;
    auto advanced = m.log.acknowledged(batch);
    if (checkpoint_.empty() || advanced == 0)
      return;
    m.dirty = true;
    m.unsaved += advanced;
    if (m.unsaved >= 16)
      save();
  }

private:
  std::unique_ptr<file_source_memory> open(uint64_t max_line) {
    auto m = std::make_unique<file_source_memory>();
    if (!checkpoint_.empty())
      m->lock = lock_checkpoint();
    // A FIFO is opened without blocking (open would wait for a writer) and
    // read when poll says so: a quiet pipe idles the source, it never holds
    // a scheduler thread, and a stop request still gets through.
    struct stat before;
    bool fifo = ::stat(path_.c_str(), &before) == 0 && S_ISFIFO(before.st_mode);
    unique_fd fd{::open(path_.c_str(),
                        O_RDONLY | O_CLOEXEC | (fifo ? O_NONBLOCK : 0))};
    if (fd.get() < 0)
      throw_errno(errno, "cannot open input '" + path_ + "'");
    struct stat s;
    if (::fstat(fd.get(), &s) != 0)
      throw_errno(errno, "cannot read input '" + path_ + "'");
    if (S_ISDIR(s.st_mode))
      throw unrecoverable_error("input '" + path_ + "'"
                                + " is a directory, not a file");
    m->regular = S_ISREG(s.st_mode);
    m->reader = std::make_unique<line_reader>(
      std::move(fd), path_, static_cast<size_t>(max_line),
      !S_ISREG(s.st_mode)); // a FIFO or device: never block a thread on it
    if (!checkpoint_.empty())
      resume(*m, s);
    return m;
  }

  // Created with its folder (as a sink creates its file's) at start, so a
  // bad place fails the run before anything is written, not at the first
  // save. A second run of the config fails at once rather than race this
  // one for CHECKPOINT.tmp and move the checkpoint backwards.
  unique_fd lock_checkpoint() {
    auto parent = std::filesystem::path(checkpoint_).parent_path();
    if (!parent.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(parent, ec);
      if (ec)
        throw unrecoverable_error("cannot create folder " + parent.string()
                                  + " for checkpoint " + checkpoint_ + ": "
                                  + ec.message());
    }
    auto name = checkpoint_ + ".lock";
    unique_fd fd{::open(name.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0666)};
    if (fd.get() < 0)
      throw unrecoverable_error("cannot create checkpoint lock " + name + ": "
                                + std::strerror(errno));
    while (::flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EINTR)
        continue;
      if (errno == EWOULDBLOCK)
        throw unrecoverable_error("checkpoint " + checkpoint_
                                  + " is in use by another run (it holds "
                                  + name + ")");
      throw unrecoverable_error("cannot lock " + name + ": "
                                + std::strerror(errno));
    }
    return fd;
  }

  [[noreturn]] void bad_checkpoint(const std::string& why) const {
    throw unrecoverable_error("checkpoint " + checkpoint_ + " " + why
                              + "; delete the checkpoint to start over");
  }

  void resume(file_source_memory& m, const struct stat& input) {
    unique_fd fd{::open(checkpoint_.c_str(), O_RDONLY | O_CLOEXEC)};
    if (fd.get() < 0 && errno == ENOENT)
      return; // first run
    if (fd.get() < 0)
      throw unrecoverable_error("cannot read checkpoint " + checkpoint_ + ": "
                                + std::strerror(errno));
    char buf[256];
    auto n = pread_all(fd.get(), buf, sizeof buf, 0, checkpoint_);
    auto c = n < sizeof buf ? parse_checkpoint(std::string(buf, n))
                            : std::nullopt;
    if (!c)
      bad_checkpoint("is corrupt or was edited (want one line, `"
                     + std::string{checkpoint_magic}
                     + "OFFSET LINE FINGERPRINT`)");
    auto at = " is at byte " + std::to_string(c->offset) + ", line "
              + std::to_string(c->line);
    if (c->line > c->offset || (c->offset == 0) != (c->line == 0)
        || c->offset > static_cast<uint64_t>(std::numeric_limits<off_t>::max()))
      bad_checkpoint("is corrupt or was edited:" + at
                     + ", which no input has");
    if (m.regular) {
      auto size = static_cast<uint64_t>(input.st_size);
      if (c->offset > size)
        bad_checkpoint("is at byte " + std::to_string(c->offset) + " but "
                       + path_ + " has only " + std::to_string(size)
                       + " bytes: the input changed since");
      char before = '\n';
      if (c->offset > 0)
        pread_all(m.reader->fd(), &before, 1, c->offset - 1, path_);
      if (before != '\n')
        bad_checkpoint("does not belong to " + path_ + ": byte "
                       + std::to_string(c->offset)
                       + " is not the start of a line (was the input "
                         "rotated or replaced?)");
      if (c->fingerprint
          && *c->fingerprint != fingerprint(m.reader->fd(), c->offset, path_))
        bad_checkpoint("does not belong to " + path_ + ": the bytes before "
                       "byte " + std::to_string(c->offset)
                       + " changed since it was written (was the input "
                         "rotated or replaced?)");
    }
    m.reader->seek(c->offset);
    m.next_seq = c->line;
  }

  void save() {
    auto& m = *mem_;
    auto tmp = checkpoint_ + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f)
      throw_errno(errno, "cannot write checkpoint " + tmp);
    auto pos = m.log.acked();
    // A pipe or device cannot be read back: its fingerprint is 0, unchecked.
    auto print = m.regular ? fingerprint(m.reader->fd(), pos.offset, path_) : 0;
    std::fprintf(f, "%s%llu %llu %016llx\n", checkpoint_magic,
                 static_cast<unsigned long long>(pos.offset),
                 static_cast<unsigned long long>(pos.next_seq),
                 static_cast<unsigned long long>(print));
    bool failed = std::ferror(f) != 0;
    int err = errno;
    if (std::fclose(f) != 0 && !failed) {
      failed = true;
      err = errno;
    }
    if (failed)
      throw_errno(err, "cannot write checkpoint " + tmp);
    if (std::rename(tmp.c_str(), checkpoint_.c_str()) != 0)
      throw_errno(errno, "cannot replace checkpoint " + checkpoint_);
    m.dirty = false;
    m.unsaved = 0;
  }

  std::string path_;
  std::string checkpoint_;
  file_source_memory* mem_ = nullptr;
  std::unique_ptr<file_source_memory> own_; // without node_context::memory
};

class file_sink : public node_logic {
public:
  file_sink(const param_set& p, bool restarted,
            std::unique_ptr<node_memory>* memory)
    : path_(p.str("path")) {
    auto parent = std::filesystem::path(path_).parent_path();
    if (!parent.empty()) {
      std::error_code ec;
      std::filesystem::create_directories(parent, ec);
      if (ec)
        throw unrecoverable_error("cannot create folder " + parent.string()
                                  + " for " + path_ + ": " + ec.message());
    }
    // A restarted sink appends: what its predecessor wrote stays written.
    bool append = restarted || p.boolean("append");
    // Truncated only once locked (below), never under another writer.
    fd_ = unique_fd{::open(path_.c_str(),
                           O_WRONLY | O_CREAT | O_CLOEXEC
                             | (append ? O_APPEND : 0),
                           0666)};
    if (fd_.get() < 0)
      throw_errno(errno, "cannot open output '" + path_ + "'");
    lock_output(memory);
    if (!append && is_regular(fd_.get()) && ::ftruncate(fd_.get(), 0) != 0)
      throw_errno(errno, "cannot truncate output '" + path_ + "'");
    if (append)
      drop_partial_last_line(fd_.get(), path_);
    writer_ = std::make_unique<record_writer>(
      fd_.get(), path_, parse_record_format(p.str("format")));
  }

  // Records stay `buffered` (unacknowledged upstream, not yet `out`) until
  // their chunk is handed to the kernel, so a kill -9 or a failed write loses
  // only unacknowledged records, which upstream (or a checkpointed source)
  // delivers again. What is not written when the node goes down is not
  // written by a destructor either: it was not acknowledged.
  void consume(record_batch batch, emitter& out) override {
    writer_->add(std::move(batch), out);
  }
  size_t buffered() const override {
    return writer_->buffered();
  }
  duration tick_interval() const override {
    return std::chrono::milliseconds(20);
  }
  void tick(emitter& out) override {
    writer_->flush(out);
  }
  void finish(emitter& out) override {
    writer_->flush(out);
  }
  // A small credit window is full of records waiting for the next chunk:
  // write now rather than at the next tick.
  void starved(emitter& out) override {
    writer_->flush(out);
  }

private:
  static bool is_regular(int fd) {
    struct stat st {};
    return ::fstat(fd, &st) == 0 && S_ISREG(st.st_mode);
  }

  // Two writers of one regular file (two runs of one runtime, two
  // processes) would overwrite each other's lines while both report them
  // written: the first start of a sink locks its output for the whole run.
  // The lock lives in the node's memory, which the supervisor keeps across
  // restarts: a new incarnation never competes with its killed predecessor,
  // whose descriptor CAF may close only later. Devices and pipes are shared
  // on purpose.
  struct output_lock : node_memory {
    unique_fd fd;
  };

  void lock_output(std::unique_ptr<node_memory>* memory) {
    if (!is_regular(fd_.get()) || (memory && *memory))
      return;
    auto lock = std::make_unique<output_lock>();
    lock->fd = unique_fd{::open(path_.c_str(), O_WRONLY | O_CLOEXEC)};
    if (lock->fd.get() < 0)
      throw_errno(errno, "cannot open output '" + path_ + "'");
    if (::flock(lock->fd.get(), LOCK_EX | LOCK_NB) != 0) {
      if (errno == EWOULDBLOCK)
        throw unrecoverable_error("output '" + path_
                                  + "' is being written by another run; "
                                    "give each run its own file");
      throw_errno(errno, "cannot lock output '" + path_ + "'");
    }
    if (memory)
      *memory = std::move(lock);
    else
      own_lock_ = std::move(lock);
  }

  std::string path_;
  unique_fd fd_;
  std::unique_ptr<record_writer> writer_;
  std::unique_ptr<output_lock> own_lock_; // without node_context::memory
};

void check_source(const node_spec& n, const graph_spec&, const registry&,
                  std::vector<diagnostic>& errors) {
  check_max_line(n, errors);
}

// A rerun after a crash continues a checkpointed source where it stopped; a
// sink that truncates its file would throw away what the first run wrote.
void check_sink(const node_spec& n, const graph_spec& g, const registry&,
                std::vector<diagnostic>& errors) {
  if (n.params.boolean("append"))
    return;
  for (auto& other : g.nodes)
    if (other.is_source && other.type == "file"
        && other.params.has("checkpoint")) {
      errors.push_back({n.where, "file sink '" + n.name
                                   + "' truncates its file, but source '"
                                   + other.name
                                   + "' resumes from a checkpoint: set "
                                     "`append: true` so a rerun keeps what "
                                     "the first run wrote"});
      return;
    }
}

} // namespace

actor_type file_source_type() {
  actor_type t;
  t.name = "file";
  t.kind = actor_kind::source;
  t.doc = "Reads a text file; one record per line (seq is the line index).";
  t.params = {
    {"path", param_type::string, true, "", "file to read", {}, 0},
    {"checkpoint", param_type::string, false, "",
     "file keeping the acknowledged offset; a rerun continues from it", {}, 0},
    max_line_param(),
  };
  t.make_node = [](const node_context& ctx) {
    return std::make_unique<file_source>(ctx);
  };
  t.validate = check_source;
  return t;
}

actor_type file_sink_type() {
  actor_type t;
  t.name = "file";
  t.kind = actor_kind::sink;
  t.doc = "Writes records to a file, as jsonl (seq, key, body, attrs) or "
          "lines (body only). Creates parent folders.";
  t.params = {
    {"path", param_type::string, true, "", "file to write", {}, 0},
    {"format", param_type::choice, false, "jsonl", "jsonl or lines",
     {"jsonl", "lines"}, 0},
    {"append", param_type::boolean, false, "false",
     "append instead of truncating", {}, 0},
  };
  t.make_node = [](const node_context& ctx) {
    return std::make_unique<file_sink>(ctx.spec.params, ctx.incarnation > 0,
                                       ctx.memory);
  };
  t.validate = check_sink;
  return t;
}

} // namespace troupe::actors
