// troupe's log: one structured line per event (level, node, message) on
// stderr, as text or JSON. Quiet by default: warnings and errors only.
//
// Process-wide, like stderr itself: set_log_options() once before starting
// runs (the CLI does it from --log-level/--log-format). Any thread may log;
// a line is written with one write(2), so lines from several threads do not
// interleave. An embedder routes lines into its own logger with
// set_log_sink().
//
// Text:  troupe: warn: hash: crashed (boom); restarting
// JSON:  {"ts":"2026-12-01T07:40:00.123Z","level":"warn","node":"hash",
//         "msg":"crashed (boom); restarting"}
#pragma once

#include <chrono>
#include <functional>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>

namespace troupe {

enum class log_level { error = 0, warn = 1, info = 2, debug = 3 };
enum class log_format { text, json };

struct log_options {
  log_level level = log_level::warn;
  log_format format = log_format::text;
};

struct log_entry {
  std::chrono::system_clock::time_point at;
  log_level level;
  std::string_view node; // empty when the event is not about one node
  std::string_view message;
};

void set_log_options(log_options opts);
log_options get_log_options();
// Replaces writing to stderr (nullptr: back to stderr). Called on the
// logging thread, one call at a time; it must not block for long.
void set_log_sink(std::function<void(const log_entry&)> sink);

bool log_enabled(log_level level);
void log(log_level level, std::string_view node, std::string_view message);

// The line as the current format writes it, without the newline.
std::string format_log_line(const log_entry& e, log_format format);

std::string_view to_string(log_level level);
std::optional<log_level> parse_log_level(std::string_view text);
std::optional<log_format> parse_log_format(std::string_view text);

// Streams a message only when its level is on:
//   TROUPE_LOG(warn, spec.name, "crashed (" << reason << "); restarting");
#define TROUPE_LOG(LEVEL, NODE, STREAMED)                                      \
  do {                                                                         \
    if (::troupe::log_enabled(::troupe::log_level::LEVEL)) {                   \
      std::ostringstream troupe_log_text_;                                     \
      troupe_log_text_ << STREAMED;                                            \
      ::troupe::log(::troupe::log_level::LEVEL, NODE, troupe_log_text_.str()); \
    }                                                                          \
  } while (false)

} // namespace troupe
