// file: as a source (no inputs) reads a text file line by line; as a sink
// (with inputs) writes records as jsonl or lines.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <system_error>

#include "troupe/actors/builtin_types.hpp"
#include "troupe/actors/io.hpp"
#include "troupe/actors/record_format.hpp"

namespace troupe::actors {

namespace {

// The node's memory (node_context::memory), kept across its restarts: the
// open input and where reading stands, and what was emitted but not
// acknowledged. A replacement replays that, then reads on, so a crash of the
// source or a group restart around it loses nothing and redoes little.
struct file_source_memory : line_source_memory {
  bool dirty = false; // the acknowledged position moved since the last save
  size_t unsaved = 0; // batches acknowledged since the last save
};

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
      std::fprintf(stderr, "troupe: %s\n", e.what()); // a destructor must not throw
    }
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
    auto m = std::make_unique<file_source_memory>();
    m->reader = std::make_unique<line_reader>(
      std::move(fd), path_, static_cast<size_t>(max_line),
      !S_ISREG(s.st_mode)); // a FIFO or device: never block a thread on it
    if (!checkpoint_.empty())
      resume(*m, s);
    return m;
  }

  void resume(file_source_memory& m, const struct stat& input) {
    std::FILE* f = std::fopen(checkpoint_.c_str(), "r");
    if (!f)
      return; // first run
    unsigned long long offset = 0, line = 0;
    bool ok = std::fscanf(f, "%llu %llu", &offset, &line) == 2;
    std::fclose(f);
    if (!ok)
      throw unrecoverable_error("checkpoint " + checkpoint_
                                + " is unreadable; delete it to start over");
    if (S_ISREG(input.st_mode)
        && offset > static_cast<unsigned long long>(input.st_size))
      throw unrecoverable_error(
        "checkpoint " + checkpoint_ + " is at byte " + std::to_string(offset)
        + " but " + path_ + " has only " + std::to_string(input.st_size)
        + " bytes: the input changed since; delete the checkpoint to start "
          "over");
    m.reader->seek(offset);
    m.next_seq = line;
  }

  void save() {
    auto& m = *mem_;
    auto tmp = checkpoint_ + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f)
      throw_errno(errno, "cannot write checkpoint " + tmp);
    std::fprintf(f, "%llu %llu\n",
                 static_cast<unsigned long long>(m.log.acked().offset),
                 static_cast<unsigned long long>(m.log.acked().next_seq));
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
  file_sink(const param_set& p, bool restarted)
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
    fd_ = unique_fd{::open(path_.c_str(),
                           O_WRONLY | O_CREAT | O_CLOEXEC
                             | (append ? O_APPEND : O_TRUNC),
                           0666)};
    if (fd_.get() < 0)
      throw_errno(errno, "cannot open output '" + path_ + "'");
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
  std::string path_;
  unique_fd fd_;
  std::unique_ptr<record_writer> writer_;
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
    return std::make_unique<file_sink>(ctx.spec.params, ctx.incarnation > 0);
  };
  t.validate = check_sink;
  return t;
}

} // namespace troupe::actors
