// stdout: writes records to standard output (data goes to stdout, logs to
// stderr).
#include <cstdio>
#include <stdexcept>

#include "troupe/actors/builtin_types.hpp"
#include "troupe/actors/record_format.hpp"

namespace troupe::actors {

namespace {

class stdout_sink : public node_logic {
public:
  explicit stdout_sink(const param_set& p)
    : format_(parse_record_format(p.str("format"))) {
  }

  void consume(record_batch batch, emitter& out) override {
    buf_.clear();
    for (auto& r : batch.records())
      append_record(buf_, r, format_);
    if (std::fwrite(buf_.data(), 1, buf_.size(), stdout) != buf_.size())
      throw std::runtime_error("cannot write to stdout");
    out.emit(std::move(batch));
  }

  void finish(emitter&) override {
    std::fflush(stdout);
  }

private:
  record_format format_;
  std::string buf_;
};

} // namespace

actor_type stdout_type() {
  actor_type t;
  t.name = "stdout";
  t.kind = actor_kind::sink;
  t.doc = "Writes records to standard output.";
  t.params = {{"format", param_type::choice, false, "lines",
               "lines (body only) or jsonl", {"jsonl", "lines"}, 0}};
  t.make_node = [](const node_context& ctx) {
    return std::make_unique<stdout_sink>(ctx.spec.params);
  };
  return t;
}

} // namespace troupe::actors
