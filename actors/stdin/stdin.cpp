// stdin: one record per line of standard input. Reads without blocking (poll
// with a zero timeout), so a quiet terminal never stalls a scheduler thread.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <memory>

#include "troupe/actors/builtin_types.hpp"
#include "troupe/actors/io.hpp"

namespace troupe::actors {

namespace {

// Kept across restarts (node_context::memory): standard input cannot be read
// again, so what was read but not acknowledged stays here and a replacement
// sends it again before it reads on. Lines read from the pipe but not yet
// complete stay in the reader.
struct stdin_memory : line_source_memory {};

class stdin_source : public node_logic {
public:
  explicit stdin_source(const node_context& ctx) {
    if (ctx.memory && *ctx.memory) {
      if (auto* m = dynamic_cast<stdin_memory*>(ctx.memory->get())) {
        mem_ = m;
        mem_->log.restart(replays_sent(ctx));
        return;
      }
    }
    // A duplicate, so the end of the run never closes descriptor 0 itself.
    unique_fd fd{::fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 3)};
    if (fd.get() < 0)
      throw_errno(errno, "cannot read stdin");
    auto m = std::make_unique<stdin_memory>();
    m->reader = std::make_unique<line_reader>(
      std::move(fd), "stdin",
      static_cast<size_t>(ctx.spec.params.bytes("max_line")), true);
    mem_ = m.get();
    if (ctx.memory)
      *ctx.memory = std::move(m);
    else
      own_ = std::move(m);
  }

  produce_status produce(size_t max, emitter& out) override {
    return produce_lines(*mem_, max, out, "stdin", /*positions=*/false,
                         /*reserve=*/false);
  }

  void acknowledged(const record_batch& batch) override {
    mem_->log.acknowledged(batch);
  }

private:
  stdin_memory* mem_ = nullptr;
  std::unique_ptr<stdin_memory> own_; // without node_context::memory
};

void check_stdin(const node_spec& n, const graph_spec&, const registry&,
                 std::vector<diagnostic>& errors) {
  check_max_line(n, errors);
}

} // namespace

actor_type stdin_type() {
  actor_type t;
  t.name = "stdin";
  t.kind = actor_kind::source;
  t.doc = "Reads standard input; one record per line.";
  t.params = {
    max_line_param(),
  };
  t.make_node = [](const node_context& ctx) {
    return std::make_unique<stdin_source>(ctx);
  };
  t.validate = check_stdin;
  return t;
}

} // namespace troupe::actors
