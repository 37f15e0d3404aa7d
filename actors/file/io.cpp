#include "troupe/actors/io.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include "troupe/log.hpp"

namespace troupe::actors {

// -- errors -------------------------------------------------------------------

bool is_permanent_errno(int e) {
  switch (e) {
    case ENOSPC:
    case EDQUOT:
    case EFBIG:
    case EPIPE:
    case EBADF:
    case EISDIR:
    case ENOTDIR:
    case ENOENT:
    case EROFS:
    case EACCES:
    case EPERM:
    case EINVAL:
    case ENXIO:
    case ENAMETOOLONG:
    case ELOOP:
      return true;
    default:
      return false;
  }
}

void throw_errno(int e, const std::string& what) {
  auto msg = what + ": " + std::strerror(e);
  if (is_permanent_errno(e))
    throw unrecoverable_error(msg);
  throw std::runtime_error(msg);
}

unique_fd& unique_fd::operator=(unique_fd&& x) noexcept {
  if (this != &x) {
    if (fd_ >= 0)
      ::close(fd_);
    fd_ = x.release();
  }
  return *this;
}

unique_fd::~unique_fd() {
  if (fd_ >= 0)
    ::close(fd_);
}

namespace {

bool is_regular(int fd) {
  struct stat s;
  return ::fstat(fd, &s) == 0 && S_ISREG(s.st_mode);
}

} // namespace

bool write_all(int fd, const char* data, size_t n, const std::string& what,
               size_t& written) {
  written = 0;
  while (written < n) {
    auto k = ::write(fd, data + written, n - written);
    if (k >= 0) {
      written += static_cast<size_t>(k);
      continue;
    }
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return false; // a non-blocking descriptor is full: try again later
    throw_errno(errno, what);
  }
  return true;
}

uint64_t drop_partial_last_line(int fd, const std::string& path) {
  struct stat s;
  if (::fstat(fd, &s) != 0 || !S_ISREG(s.st_mode) || s.st_size == 0)
    return 0;
  auto size = static_cast<uint64_t>(s.st_size);
  // `fd` may be write-only: read through a descriptor of our own.
  unique_fd in{::open(path.c_str(), O_RDONLY | O_CLOEXEC)};
  if (in.get() < 0)
    throw_errno(errno, "cannot read " + path);
  char last = 0;
  if (::pread(in.get(), &last, 1, static_cast<off_t>(size - 1)) != 1)
    throw_errno(errno, "cannot read " + path);
  if (last == '\n')
    return 0;
  // Find the last newline, reading backwards in blocks.
  uint64_t keep = 0;
  char block[65536];
  for (uint64_t end = size; end > 0 && keep == 0;) {
    auto from = end > sizeof(block) ? end - sizeof(block) : 0;
    auto len = static_cast<size_t>(end - from);
    if (::pread(in.get(), block, len, static_cast<off_t>(from))
        != static_cast<ssize_t>(len))
      throw_errno(errno, "cannot read " + path);
    for (size_t k = len; k > 0; --k)
      if (block[k - 1] == '\n') {
        keep = from + k;
        break;
      }
    end = from;
  }
  if (::ftruncate(fd, static_cast<off_t>(keep)) != 0)
    throw_errno(errno, "cannot truncate " + path);
  TROUPE_LOG(warn, "",
             path << " ended in a partial line (" << (size - keep)
                  << " bytes without a newline, left by a crash or a full "
                     "disk); removed it before appending");
  return size - keep;
}

// -- record_writer ------------------------------------------------------------

record_writer::record_writer(int fd, std::string name, record_format fmt)
  : fd_(fd),
    name_(std::move(name)),
    write_error_("cannot write to " + name_),
    format_(fmt),
    regular_(is_regular(fd)) {
  buf_.reserve(chunk_bytes + 64 * 1024);
}

void record_writer::add(record_batch batch, emitter& out) {
  for (auto& r : batch.records())
    append_record(buf_, r, format_);
  unwritten_ += batch.size();
  held_.push_back(std::move(batch));
  if (failed_ || (buf_.size() < chunk_bytes && unwritten_ < chunk_records))
    return;
  try {
    if (!write_chunk())
      return;
  } catch (...) {
    failed_ = std::current_exception(); // thrown by the next flush()
    return;
  }
  pass_on(out);
}

void record_writer::flush(emitter& out) {
  if (failed_)
    std::rethrow_exception(failed_);
  if (write_chunk())
    pass_on(out);
}

bool record_writer::write_chunk() {
  if (buf_.empty())
    return true;
  size_t written = 0;
  try {
    if (!write_all(fd_, buf_.data(), buf_.size(), write_error_, written)) {
      // A full non-blocking descriptor (an inherited O_NONBLOCK stdout):
      // keep the rest for the next tick instead of blocking this thread.
      buf_.erase(0, written);
      return false;
    }
  } catch (...) {
    // Nothing of this chunk counts as written: cut a regular file back to
    // where the chunk began, so it never ends inside a record.
    if (regular_ && written > 0) {
      struct stat s;
      if (::fstat(fd_, &s) == 0
          && static_cast<uint64_t>(s.st_size) >= written)
        if (::ftruncate(fd_, s.st_size - static_cast<off_t>(written)) != 0)
          TROUPE_LOG(error, "", "cannot cut " << name_ << " back: "
                                              << std::strerror(errno));
    }
    throw;
  }
  buf_.clear();
  return true;
}

void record_writer::pass_on(emitter& out) {
  for (auto& b : held_)
    out.emit(std::move(b));
  held_.clear();
  unwritten_ = 0;
}

// -- line_reader --------------------------------------------------------------

line_reader::line_reader(unique_fd fd, std::string name, size_t max_line,
                         bool poll_first)
  : fd_(std::move(fd)),
    name_(std::move(name)),
    max_line_(std::max<size_t>(max_line, 1)),
    poll_first_(poll_first),
    regular_(is_regular(fd_.get())) {
  buf_.resize(std::min<size_t>(256 * 1024, max_line_ + 1));
  struct stat s;
  if (regular_ && ::fstat(fd_.get(), &s) == 0)
    size_at_open_ = static_cast<uint64_t>(s.st_size);
}

void line_reader::seek(uint64_t offset) {
  if (::lseek(fd_.get(), static_cast<off_t>(offset), SEEK_SET) < 0)
    throw_errno(errno, "cannot seek in " + name_);
  begin_ = end_ = 0;
  buf_offset_ = line_start_ = offset;
  skipping_ = eof_ = false;
}

line_reader::fill_result line_reader::fill() {
  if (eof_)
    return fill_result::eof;
  // Keep the unfinished line, at the front.
  if (begin_ > 0) {
    std::memmove(buf_.data(), buf_.data() + begin_, end_ - begin_);
    buf_offset_ += begin_;
    end_ -= begin_;
    begin_ = 0;
  }
  if (end_ == buf_.size()) // a long line (still within max_line)
    buf_.resize(std::min(buf_.size() * 2, max_line_ + 1));
  if (end_ == buf_.size()) // next() reports such a line before reading on
    throw std::logic_error("line_reader: no room to read " + name_);
  if (poll_first_) {
    pollfd p{fd_.get(), POLLIN, 0};
    int n = ::poll(&p, 1, 0);
    if (n < 0 && errno != EINTR)
      throw_errno(errno, "cannot read " + name_);
    if (n <= 0)
      return fill_result::would_block;
    if (p.revents & POLLNVAL)
      throw_errno(EBADF, "cannot read " + name_);
  }
  for (;;) {
    auto k = ::read(fd_.get(), buf_.data() + end_, buf_.size() - end_);
    if (k > 0) {
      end_ += static_cast<size_t>(k);
      return fill_result::data;
    }
    if (k == 0)
      break;
    if (errno == EINTR)
      continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK)
      return fill_result::would_block;
    throw_errno(errno, "cannot read " + name_);
  }
  if (regular_) {
    // End of a regular file: make sure it did not shrink under us (a
    // truncated input would otherwise end the run early and look complete).
    struct stat s;
    auto read_to = buf_offset_ + end_;
    if (::fstat(fd_.get(), &s) == 0 && static_cast<uint64_t>(s.st_size) < read_to)
      throw unrecoverable_error(
        name_ + " shrank to " + std::to_string(s.st_size)
        + " bytes while it was read (at byte " + std::to_string(read_to)
        + "): the input was truncated or replaced during the run");
  }
  eof_ = true;
  return fill_result::eof;
}

line_reader::status line_reader::next(std::string& body) {
  // Bounded work per call, so a newline-free input (/dev/zero) cannot hold a
  // scheduler thread.
  for (int reads = 0;; ++reads) {
    auto* data = buf_.data();
    if (skipping_) {
      auto* nl = static_cast<const char*>(
        std::memchr(data + begin_, '\n', end_ - begin_));
      if (nl) {
        begin_ = static_cast<size_t>(nl - data) + 1;
        line_start_ = buf_offset_ + begin_;
        skipping_ = false;
        continue;
      }
      buf_offset_ += end_;
      begin_ = end_ = 0;
    } else {
      auto* nl = static_cast<const char*>(
        std::memchr(data + begin_, '\n', end_ - begin_));
      auto len = nl ? static_cast<size_t>(nl - (data + begin_)) : end_ - begin_;
      if (len > max_line_) {
        body.assign(data + begin_, std::min(len, too_long_prefix));
        skipping_ = true;
        if (nl) {
          begin_ = static_cast<size_t>(nl - data) + 1;
          line_start_ = buf_offset_ + begin_;
          skipping_ = false;
        } else {
          begin_ = end_;
        }
        return status::too_long;
      }
      if (nl) {
        body.assign(data + begin_, len);
        begin_ += len + 1;
        line_start_ = buf_offset_ + begin_;
        return status::line;
      }
      if (eof_ && len > 0) { // a last line without a newline
        body.assign(data + begin_, len);
        begin_ = end_;
        line_start_ = buf_offset_ + begin_;
        return status::line;
      }
    }
    if (reads >= 64)
      return status::pause;
    switch (fill()) {
      case fill_result::data:
        break;
      case fill_result::would_block:
        return status::would_block;
      case fill_result::eof:
        if (skipping_) { // the too-long line ended with the input
          skipping_ = false;
          line_start_ = buf_offset_ + end_;
          return status::eof;
        }
        if (begin_ == end_)
          return status::eof;
        break; // the last line, without a newline: returned above
    }
  }
}

bool replays_sent(const node_context& ctx) {
  return ctx.delivery == delivery_mode::at_least_once;
}

void fail_too_long(record r, const line_reader& reader, const std::string& what,
                   emitter& out) {
  auto reason = what + ": line " + std::to_string(r.seq)
                + " is longer than max_line (" + std::to_string(reader.max_line())
                + " bytes); its first bytes are the body, the rest was skipped";
  out.create(1);
  out.fail(std::move(r), std::move(reason));
}

void check_max_line(const node_spec& n, std::vector<diagnostic>& errors) {
  if (n.params.has("max_line") && n.params.bytes("max_line") == 0)
    errors.push_back({n.params.get("max_line").where,
                      "'max_line' must be at least 1 byte"});
}

param_spec max_line_param() {
  return {"max_line", param_type::size, false, default_max_line,
          "longest line; a longer one goes to `errors` (its first 1 KiB) and "
          "is skipped",
          {}, 0};
}

produce_status produce_lines(line_source_memory& m, size_t max, emitter& out,
                             const std::string& what, bool positions,
                             bool reserve) {
  if (m.log.replaying()) {
    m.log.replay(max, out);
    return produce_status::more;
  }
  std::vector<record> rs;
  if (reserve)
    rs.reserve(max);
  auto status = produce_status::more;
  try {
    while (rs.size() < max) {
      record r;
      auto got = m.reader->next(r.body);
      if (got == line_reader::status::line) {
        r.seq = m.next_seq++;
        rs.push_back(std::move(r));
        continue;
      }
      if (got == line_reader::status::too_long) {
        r.seq = m.next_seq++;
        fail_too_long(std::move(r), *m.reader, what, out);
        continue;
      }
      if (got == line_reader::status::eof)
        status = produce_status::done;
      else if (got == line_reader::status::would_block)
        status = produce_status::idle; // nothing to read now
      break;
    }
  } catch (...) {
    // Lines taken from the input but not emitted: the next incarnation (if a
    // restart can help) emits them first.
    replay_log::position pos{m.reader->position(), m.next_seq};
    m.log.unsent(std::move(rs), positions ? &pos : nullptr);
    throw;
  }
  if (!rs.empty()) {
    record_batch b{std::move(rs)};
    replay_log::position pos{m.reader->position(), m.next_seq};
    m.log.sent(b, positions ? &pos : nullptr);
    out.create(b.size());
    out.emit(std::move(b));
  }
  return status;
}

// -- replay_log ---------------------------------------------------------------

void replay_log::forget_oldest() {
  while (records_ > max_records && !entries_.empty()) {
    auto i = entries_.begin();
    records_ -= i->second.batch.size();
    entries_.erase(i);
  }
}

void replay_log::sent(const record_batch& b, const position* end) {
  if (b.empty())
    return;
  auto& e = entries_[b.records()[0].seq];
  records_ += b.size() - e.batch.size();
  e.batch = b;
  e.acked = false;
  e.bump = true;
  e.has_end = end != nullptr;
  if (end)
    e.end = *end;
  forget_oldest();
}

void replay_log::unsent(std::vector<record> rs, const position* end) {
  if (rs.empty())
    return;
  auto key = rs[0].seq;
  auto& e = entries_[key];
  records_ += rs.size() - e.batch.size();
  e.batch = record_batch{std::move(rs)};
  e.bump = false;
  e.has_end = end != nullptr;
  if (end)
    e.end = *end;
  replay_.push_back(key);
}

size_t replay_log::acknowledged(const record_batch& b) {
  if (b.empty())
    return 0;
  auto i = entries_.find(b.records()[0].seq);
  if (i == entries_.end() || i->second.acked)
    return 0;
  i->second.acked = true;
  // Advance over the acknowledged prefix only: a later batch acknowledged
  // first must not let a checkpoint skip an earlier one.
  size_t advanced = 0;
  while (!entries_.empty() && entries_.begin()->second.acked) {
    auto& first = entries_.begin()->second;
    if (first.has_end) {
      acked_ = first.end;
      ++advanced;
    }
    records_ -= first.batch.size();
    entries_.erase(entries_.begin());
  }
  return advanced;
}

void replay_log::restart(bool replay_sent) {
  replay_.clear();
  for (auto i = entries_.begin(); i != entries_.end();) {
    auto& e = i->second;
    if (!replay_sent && e.bump) { // sent before: not ours to send again
      records_ -= e.batch.size();
      i = entries_.erase(i);
      continue;
    }
    if (!e.acked)
      replay_.push_back(i->first);
    ++i;
  }
}

size_t replay_log::replay(size_t max, emitter& out) {
  size_t sent_now = 0;
  while (!replay_.empty() && sent_now < max) {
    auto i = entries_.find(replay_.front());
    replay_.pop_front();
    if (i == entries_.end() || i->second.acked)
      continue;
    auto& e = i->second;
    auto room = max - sent_now;
    if (e.batch.size() > room) {
      // Split: the rest keeps the batch's end position; this part's end is
      // unknown, so acknowledging it alone does not move a checkpoint.
      auto rest = e.batch.slice(room, e.batch.size() - room);
      auto key = rest.records()[0].seq;
      auto& r = entries_[key]; // records_ unchanged: the same records
      r.batch = std::move(rest);
      r.bump = e.bump;
      r.has_end = e.has_end;
      r.end = e.end;
      e.batch = e.batch.slice(0, room);
      e.has_end = false;
      replay_.push_front(key);
    }
    if (e.bump)
      for (auto& r : e.batch.mutable_records())
        ++r.ctx.attempt;
    e.bump = true;
    sent_now += e.batch.size();
    out.create(e.batch.size());
    out.emit(e.batch);
  }
  return sent_now;
}

} // namespace troupe::actors
