// troupe's structured log (log.hpp): the text and JSON line formats, level
// filtering (quiet by default) and an embedder's sink.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "troupe/json.hpp"
#include "troupe/log.hpp"

namespace {

// Restores the process-wide options and sink when a test case ends.
struct log_guard {
  troupe::log_options saved = troupe::get_log_options();
  ~log_guard() {
    troupe::set_log_options(saved);
    troupe::set_log_sink(nullptr);
  }
};

struct captured {
  troupe::log_level level;
  std::string node, message;
};

} // namespace

TEST_CASE("log: the text line names level and node") {
  using namespace troupe;
  log_entry e{std::chrono::system_clock::now(), log_level::warn, "hash",
              "crashed (boom); restarting"};
  CHECK(format_log_line(e, log_format::text)
        == "troupe: warn: hash: crashed (boom); restarting");
  e.node = "";
  e.level = log_level::error;
  CHECK(format_log_line(e, log_format::text)
        == "troupe: error: crashed (boom); restarting");
}

TEST_CASE("log: the JSON line is one object with escaped fields") {
  using namespace troupe;
  // 2026-12-01T07:40:00.123Z
  auto at = std::chrono::system_clock::time_point{
    std::chrono::milliseconds(1796110800123LL)};
  log_entry e{at, log_level::info, "n\"1", "line one\nline \"two\"\t\\"};
  auto line = format_log_line(e, log_format::json);
  CHECK(line
        == "{\"ts\":\"2026-12-01T07:40:00.123Z\",\"level\":\"info\","
           "\"node\":\"n\\\"1\",\"msg\":\"line one\\nline \\\"two\\\"\\t\\\\\"}");
  e.node = "";
  line = format_log_line(e, log_format::json);
  CHECK(line.find("\"node\"") == std::string::npos);
  CHECK(line.find('\n') == std::string::npos);
}

TEST_CASE("log: levels filter, warnings by default, and a sink sees lines") {
  using namespace troupe;
  log_guard guard;
  set_log_options({});
  CHECK(log_enabled(log_level::error));
  CHECK(log_enabled(log_level::warn));
  CHECK_FALSE(log_enabled(log_level::info));
  CHECK_FALSE(log_enabled(log_level::debug));
  std::vector<captured> seen;
  set_log_sink([&](const log_entry& e) {
    seen.push_back({e.level, std::string(e.node), std::string(e.message)});
  });
  int evaluated = 0;
  auto costly = [&] {
    ++evaluated;
    return 42;
  };
  TROUPE_LOG(info, "a", "hidden " << costly());
  TROUPE_LOG(warn, "b", "shown " << costly());
  log(log_level::debug, "c", "hidden too");
  log(log_level::error, "", "an error");
  // A message below the level is not even formatted.
  CHECK(evaluated == 1);
  REQUIRE(seen.size() == 2);
  CHECK(seen[0].level == log_level::warn);
  CHECK(seen[0].node == "b");
  CHECK(seen[0].message == "shown 42");
  CHECK(seen[1].level == log_level::error);
  CHECK(seen[1].node.empty());
  set_log_options({log_level::debug, log_format::json});
  TROUPE_LOG(debug, "d", "now shown");
  REQUIRE(seen.size() == 3);
  CHECK(seen[2].message == "now shown");
  set_log_options({log_level::error, log_format::text});
  log(log_level::warn, "e", "quiet now");
  CHECK(seen.size() == 3);
}

TEST_CASE("log: levels and formats parse from their names only") {
  using namespace troupe;
  CHECK(parse_log_level("error") == log_level::error);
  CHECK(parse_log_level("warn") == log_level::warn);
  CHECK(parse_log_level("info") == log_level::info);
  CHECK(parse_log_level("debug") == log_level::debug);
  CHECK_FALSE(parse_log_level("WARN").has_value());
  CHECK_FALSE(parse_log_level("warning").has_value());
  CHECK_FALSE(parse_log_level("").has_value());
  CHECK(parse_log_format("text") == log_format::text);
  CHECK(parse_log_format("json") == log_format::json);
  CHECK_FALSE(parse_log_format("yaml").has_value());
}
