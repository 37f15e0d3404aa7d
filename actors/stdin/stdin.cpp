// stdin: one record per line of standard input. Reads without blocking (poll
// with a zero timeout), so a quiet terminal never stalls a scheduler thread.
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>

#include "troupe/actors/builtin_types.hpp"

namespace troupe::actors {

namespace {

class stdin_source : public node_logic {
public:
  produce_status produce(size_t max, emitter& out) override {
    std::vector<record> rs;
    bool eof = false;
    while (rs.size() < max) {
      auto nl = pending_.find('\n', scanned_);
      if (nl != std::string::npos) {
        record r;
        r.seq = next_++;
        r.body = pending_.substr(0, nl);
        pending_.erase(0, nl + 1);
        scanned_ = 0;
        rs.push_back(std::move(r));
        continue;
      }
      scanned_ = pending_.size();
      if (eof)
        break;
      pollfd p{STDIN_FILENO, POLLIN, 0};
      if (::poll(&p, 1, 0) <= 0)
        break; // nothing to read now
      char buf[65536];
      auto n = ::read(STDIN_FILENO, buf, sizeof(buf));
      if (n < 0 && errno != EINTR && errno != EAGAIN)
        throw std::runtime_error("cannot read stdin");
      if (n == 0)
        eof = true;
      if (n > 0)
        pending_.append(buf, static_cast<size_t>(n));
    }
    if (eof && !pending_.empty() && rs.size() < max) {
      record r; // a last line without newline
      r.seq = next_++;
      r.body = std::move(pending_);
      pending_.clear();
      rs.push_back(std::move(r));
    }
    if (!rs.empty()) {
      out.create(rs.size());
      out.emit(record_batch{std::move(rs)});
    }
    if (eof && pending_.empty())
      return produce_status::done;
    return rs.size() == max ? produce_status::more : produce_status::idle;
  }

private:
  std::string pending_;
  size_t scanned_ = 0;
  uint64_t next_ = 0;
};

} // namespace

actor_type stdin_type() {
  actor_type t;
  t.name = "stdin";
  t.kind = actor_kind::source;
  t.doc = "Reads standard input; one record per line.";
  t.make_node = [](const node_context&) {
    return std::make_unique<stdin_source>();
  };
  return t;
}

} // namespace troupe::actors
