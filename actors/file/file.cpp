// file: as a source (no inputs) reads a text file line by line; as a sink
// (with inputs) writes records as jsonl or lines.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <stdexcept>

#include "troupe/actors/builtin_types.hpp"
#include "troupe/actors/record_format.hpp"

namespace troupe::actors {

namespace {

struct file_closer {
  void operator()(std::FILE* f) const {
    if (f)
      std::fclose(f);
  }
};
using file_ptr = std::unique_ptr<std::FILE, file_closer>;

std::runtime_error io_error(const std::string& what, const std::string& path) {
  return std::runtime_error(what + " " + path + ": " + std::strerror(errno));
}

// With `checkpoint: PATH` the source remembers how far acknowledged work got
// (byte offset and line number, in a small text file replaced atomically), and
// a new run of the same config continues from there: after a kill -9, nothing
// acknowledged is read again and nothing unacknowledged is skipped.
class file_source : public node_logic {
public:
  explicit file_source(const param_set& p)
    : path_(p.str("path")),
      checkpoint_(p.has("checkpoint") ? p.str("checkpoint") : "") {
    file_.reset(std::fopen(path_.c_str(), "rb"));
    if (!file_)
      throw io_error("cannot open", path_);
    if (!checkpoint_.empty())
      resume();
  }

  ~file_source() override {
    if (checkpoint_.empty() || !dirty_)
      return;
    try {
      save();
    } catch (const std::exception& e) {
      std::fprintf(stderr, "troupe: %s\n", e.what()); // a destructor must not throw
    }
  }

  produce_status produce(size_t max, emitter& out) override {
    std::vector<record> rs;
    rs.reserve(max);
    char* line = nullptr;
    size_t cap = 0;
    while (rs.size() < max) {
      auto len = ::getline(&line, &cap, file_.get());
      if (len < 0)
        break;
      record r;
      r.seq = next_++;
      r.body.assign(line, static_cast<size_t>(len));
      if (!r.body.empty() && r.body.back() == '\n')
        r.body.pop_back();
      rs.push_back(std::move(r));
    }
    std::free(line);
    bool eof = rs.size() < max;
    if (!rs.empty()) {
      if (!checkpoint_.empty())
        pending_[rs.front().seq] = {std::ftell(file_.get()), next_, false};
      out.create(rs.size());
      out.emit(record_batch{std::move(rs)});
    }
    return eof ? produce_status::done : produce_status::more;
  }

  void acknowledged(const record_batch& batch) override {
    if (checkpoint_.empty() || batch.empty())
      return;
    auto i = pending_.find(batch.records()[0].seq);
    if (i == pending_.end())
      return;
    i->second.acked = true;
    // Advance over the acknowledged prefix only: a later batch acknowledged
    // first must not let the checkpoint skip an earlier one.
    while (!pending_.empty() && pending_.begin()->second.acked) {
      offset_ = pending_.begin()->second.end_offset;
      line_ = pending_.begin()->second.next_line;
      pending_.erase(pending_.begin());
      dirty_ = true;
      ++unsaved_;
    }
    if (unsaved_ >= 16)
      save();
  }

private:
  struct batch_end {
    long end_offset;    // file position after the batch
    uint64_t next_line; // line number after the batch
    bool acked;
  };

  void resume() {
    std::FILE* f = std::fopen(checkpoint_.c_str(), "r");
    if (!f)
      return; // first run
    long offset = 0;
    unsigned long long line = 0;
    bool ok = std::fscanf(f, "%ld %llu", &offset, &line) == 2;
    std::fclose(f);
    if (!ok || std::fseek(file_.get(), offset, SEEK_SET) != 0)
      throw std::runtime_error("checkpoint " + checkpoint_
                               + " is unreadable; delete it to start over");
    offset_ = offset;
    line_ = next_ = line;
  }

  void save() {
    auto tmp = checkpoint_ + ".tmp";
    std::FILE* f = std::fopen(tmp.c_str(), "w");
    if (!f)
      throw io_error("cannot write checkpoint", tmp);
    std::fprintf(f, "%ld %llu\n", offset_,
                 static_cast<unsigned long long>(line_));
    std::fclose(f);
    if (std::rename(tmp.c_str(), checkpoint_.c_str()) != 0)
      throw io_error("cannot replace checkpoint", checkpoint_);
    dirty_ = false;
    unsaved_ = 0;
  }

  std::string path_;
  std::string checkpoint_;
  file_ptr file_;
  uint64_t next_ = 0;
  std::map<uint64_t, batch_end> pending_; // by first seq, unacknowledged
  long offset_ = 0;
  uint64_t line_ = 0;
  bool dirty_ = false;
  int unsaved_ = 0;
};

class file_sink : public node_logic {
public:
  file_sink(const param_set& p, bool restarted)
    : path_(p.str("path")), format_(parse_record_format(p.str("format"))) {
    auto parent = std::filesystem::path(path_).parent_path();
    if (!parent.empty())
      std::filesystem::create_directories(parent);
    // A restarted sink appends: what its predecessor wrote stays written.
    bool append = restarted || p.boolean("append");
    file_.reset(std::fopen(path_.c_str(), append ? "ab" : "wb"));
    if (!file_)
      throw io_error("cannot open", path_);
    // Our own buffer, written in chunks: glibc ignores setvbuf's size
    // without a caller buffer and writes every batch larger than 4 KiB
    // through to the kernel (26k write calls per million records).
    std::setvbuf(file_.get(), nullptr, _IONBF, 0);
    buf_.reserve(chunk_bytes + 64 * 1024);
  }

  // Records stay `buffered` (unacknowledged upstream) until their chunk is
  // handed to the kernel, so a kill -9 can lose only unacknowledged records,
  // which a checkpointed source reads again.
  void consume(record_batch batch, emitter& out) override {
    for (auto& r : batch.records())
      append_record(buf_, r, format_);
    unwritten_ += batch.size();
    if (buf_.size() >= chunk_bytes || unwritten_ >= chunk_records)
      write_out();
    out.emit(std::move(batch));
  }

  size_t buffered() const override {
    return unwritten_;
  }
  duration tick_interval() const override {
    return std::chrono::milliseconds(20);
  }
  void tick(emitter&) override {
    write_out();
  }
  void finish(emitter&) override {
    write_out();
  }

  ~file_sink() override {
    if (!buf_.empty())
      std::fwrite(buf_.data(), 1, buf_.size(), file_.get());
  }

private:
  // Well below the default credit window (16384 records), so upstream never
  // waits for the 20 ms tick in steady flow.
  static constexpr size_t chunk_bytes = 256 * 1024;
  static constexpr size_t chunk_records = 1024;

  void write_out() {
    if (!buf_.empty()
        && std::fwrite(buf_.data(), 1, buf_.size(), file_.get()) != buf_.size())
      throw io_error("cannot write", path_);
    buf_.clear();
    unwritten_ = 0;
  }

  std::string path_;
  record_format format_;
  file_ptr file_;
  std::string buf_;
  size_t unwritten_ = 0; // records in buf_
};

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
  };
  t.make_node = [](const node_context& ctx) {
    return std::make_unique<file_source>(ctx.spec.params);
  };
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
