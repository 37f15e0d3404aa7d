// stdout: writes records to standard output (data goes to stdout, logs to
// stderr).
#include <unistd.h>

#include <memory>

#include "troupe/actors/builtin_types.hpp"
#include "troupe/actors/io.hpp"
#include "troupe/actors/record_format.hpp"

namespace troupe::actors {

namespace {

// Writes in chunks straight to descriptor 1 (no stdio buffer that could hold
// records the report already counts): a batch is `out` only once its chunk
// reached the kernel, and a failed write (a full device, a closed stdout, a
// reader that went away) fails the run with the reason.
class stdout_sink : public node_logic {
public:
  explicit stdout_sink(const param_set& p)
    : writer_(STDOUT_FILENO, "stdout", parse_record_format(p.str("format"))) {
  }

  void consume(record_batch batch, emitter& out) override {
    writer_.add(std::move(batch), out);
  }
  size_t buffered() const override {
    return writer_.buffered();
  }
  duration tick_interval() const override {
    return std::chrono::milliseconds(20);
  }
  void tick(emitter& out) override {
    writer_.flush(out);
  }
  void finish(emitter& out) override {
    writer_.flush(out);
  }
  // A small credit window is full of records waiting for the next chunk:
  // write now rather than at the next tick.
  void starved(emitter& out) override {
    writer_.flush(out);
  }

private:
  record_writer writer_;
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
