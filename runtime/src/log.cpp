#include "troupe/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>

#include "troupe/json.hpp"
#include "troupe/units.hpp"

namespace troupe {

namespace {

std::atomic<int> current_level{static_cast<int>(log_level::warn)};
std::atomic<int> current_format{static_cast<int>(log_format::text)};

// Logs are rare (crashes, failures, warnings): a mutex keeps the sink
// swappable and one line at a time.
std::mutex& sink_mutex() {
  static std::mutex m;
  return m;
}
std::function<void(const log_entry&)>& sink() {
  static std::function<void(const log_entry&)> s;
  return s;
}

void write_all(const std::string& line) {
  const char* p = line.data();
  size_t left = line.size();
  while (left > 0) {
    auto n = ::write(STDERR_FILENO, p, left);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return; // stderr closed or full: a log line is not worth failing for
    p += n;
    left -= static_cast<size_t>(n);
  }
}

} // namespace

std::string_view to_string(log_level level) {
  switch (level) {
    case log_level::error:
      return "error";
    case log_level::warn:
      return "warn";
    case log_level::info:
      return "info";
    case log_level::debug:
      return "debug";
  }
  return "?";
}

std::optional<log_level> parse_log_level(std::string_view text) {
  for (auto l : {log_level::error, log_level::warn, log_level::info,
                 log_level::debug})
    if (text == to_string(l))
      return l;
  return std::nullopt;
}

std::optional<log_format> parse_log_format(std::string_view text) {
  if (text == "text")
    return log_format::text;
  if (text == "json")
    return log_format::json;
  return std::nullopt;
}

void set_log_options(log_options opts) {
  current_level.store(static_cast<int>(opts.level), std::memory_order_relaxed);
  current_format.store(static_cast<int>(opts.format),
                       std::memory_order_relaxed);
}

log_options get_log_options() {
  return {static_cast<log_level>(current_level.load(std::memory_order_relaxed)),
          static_cast<log_format>(
            current_format.load(std::memory_order_relaxed))};
}

void set_log_sink(std::function<void(const log_entry&)> s) {
  std::lock_guard<std::mutex> guard{sink_mutex()};
  sink() = std::move(s);
}

bool log_enabled(log_level level) {
  return static_cast<int>(level)
         <= current_level.load(std::memory_order_relaxed);
}

std::string format_log_line(const log_entry& e, log_format format) {
  std::string line;
  if (format == log_format::json) {
    line = "{\"ts\":\"" + format_utc(e.at) + "\",\"level\":\""
           + std::string(to_string(e.level)) + "\"";
    if (!e.node.empty())
      line += ",\"node\":" + json_string(std::string(e.node));
    line += ",\"msg\":" + json_string(std::string(e.message)) + "}";
    return line;
  }
  line = "troupe: ";
  line += to_string(e.level);
  line += ": ";
  if (!e.node.empty()) {
    line += e.node;
    line += ": ";
  }
  line += e.message;
  return line;
}

void log(log_level level, std::string_view node, std::string_view message) {
  if (!log_enabled(level))
    return;
  log_entry e{std::chrono::system_clock::now(), level, node, message};
  std::lock_guard<std::mutex> guard{sink_mutex()};
  if (sink()) {
    sink()(e);
    return;
  }
  auto line = format_log_line(
    e, static_cast<log_format>(current_format.load(std::memory_order_relaxed)));
  line += '\n';
  write_all(line);
}

} // namespace troupe
