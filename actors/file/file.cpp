// file: as a source (no inputs) reads a text file line by line; as a sink
// (with inputs) writes records as jsonl or lines.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
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

class file_source : public node_logic {
public:
  explicit file_source(const param_set& p) : path_(p.str("path")) {
    file_.reset(std::fopen(path_.c_str(), "rb"));
    if (!file_)
      throw io_error("cannot open", path_);
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
      out.create(rs.size());
      out.emit(record_batch{std::move(rs)});
    }
    return eof ? produce_status::done : produce_status::more;
  }

private:
  std::string path_;
  file_ptr file_;
  uint64_t next_ = 0;
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
    // Our own buffer, written in large chunks: glibc ignores setvbuf's size
    // without a caller buffer and writes every batch larger than 4 KiB
    // through to the kernel (26k write calls per million records).
    std::setvbuf(file_.get(), nullptr, _IONBF, 0);
    buf_.reserve(chunk_bytes + 64 * 1024);
  }

  // The record counts as written once it is in the buffer; a crash of the
  // process before the next chunk loses it (issue: checkpointed delivery).
  void consume(record_batch batch, emitter& out) override {
    for (auto& r : batch.records())
      append_record(buf_, r, format_);
    if (buf_.size() >= chunk_bytes)
      write_out();
    out.emit(std::move(batch));
  }

  void finish(emitter&) override {
    write_out();
  }

  ~file_sink() override {
    if (!buf_.empty())
      std::fwrite(buf_.data(), 1, buf_.size(), file_.get());
  }

private:
  static constexpr size_t chunk_bytes = 1 << 20;

  void write_out() {
    if (!buf_.empty()
        && std::fwrite(buf_.data(), 1, buf_.size(), file_.get()) != buf_.size())
      throw io_error("cannot write", path_);
    buf_.clear();
  }

  std::string path_;
  record_format format_;
  file_ptr file_;
  std::string buf_;
};

} // namespace

actor_type file_source_type() {
  actor_type t;
  t.name = "file";
  t.kind = actor_kind::source;
  t.doc = "Reads a text file; one record per line (seq is the line index).";
  t.params = {{"path", param_type::string, true, "", "file to read", {}, 0}};
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
  return t;
}

} // namespace troupe::actors
