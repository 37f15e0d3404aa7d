// Configuration hardening (issue 6: findings 16, 17, 19, 20): the shared
// number parsers, the param schema's bounds, JSON escaping of invalid UTF-8,
// a byte order mark and nested ${...} defaults. No actor system.
#include <doctest/doctest.h>

#include <limits>

#include "troupe/json.hpp"
#include "troupe/loader.hpp"
#include "troupe/params.hpp"
#include "troupe/registry.hpp"
#include "troupe/units.hpp"

using namespace troupe;

namespace {

const registry& builtin_types() {
  static registry reg = [] {
    registry r;
    register_builtins(r);
    return r;
  }();
  return reg;
}

const std::string nodes = "nodes:\n"
                          "  src: { type: generate, count: 3 }\n"
                          "  out: { type: stdout, inputs: [src] }\n";

load_result load(const std::string& text, load_options opts = {}) {
  return load_graph_text(text, "c.yaml", builtin_types(), opts);
}

std::string errors_of(const load_result& r) {
  std::string s;
  for (auto& d : r.errors)
    s += d.str() + "\n";
  return s;
}

// True when `s` is well-formed UTF-8 (what a JSON parser demands).
bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2
                 : c >= 0xE0 && c <= 0xEF                ? 3
                 : c >= 0xF0 && c <= 0xF4                ? 4
                                                         : 0;
    if (len == 0 || i + len > s.size())
      return false;
    for (size_t k = 1; k < len; ++k)
      if ((static_cast<unsigned char>(s[i + k]) & 0xC0) != 0x80)
        return false;
    i += len;
  }
  return true;
}

} // namespace

TEST_CASE("numbers: no NaN, no infinity, no hex, no blanks") {
  CHECK(parse_number("0.25") == 0.25);
  CHECK(parse_number("-3") == -3.0);
  CHECK(parse_number("1e-3") == 1e-3);
  CHECK(parse_number(".5") == 0.5);
  for (auto bad : {"nan", "NaN", ".nan", "inf", "-inf", ".inf", "infinity",
                   "0x1p3", " 1", "1 ", "", ".", "-", "1e", "1e400", "e5"})
    CHECK_MESSAGE(!parse_number(bad), bad);
}

TEST_CASE("integers: overflow and junk are errors, never truncated") {
  CHECK(parse_integer("4294967296") == int64_t{4294967296});
  CHECK(!parse_integer("99999999999999999999"));
  CHECK(!parse_integer(" 5"));
  CHECK(!parse_integer("+5"));
  CHECK(!parse_integer("5x"));
}

TEST_CASE("durations, sizes and rates that overflow when converted") {
  CHECK(parse_duration("1000000000s") == max_duration);
  CHECK(!parse_duration("1000000001s"));
  CHECK(!parse_duration("9999999999h"));
  CHECK(!parse_duration("0.5ns")); // would round to 0
  CHECK(parse_duration("0s") == duration{0});
  CHECK(parse_duration("1.5ns") == duration{1});
  CHECK(!parse_duration(std::string(400, '9') + "s")); // strtod: inf
  CHECK(parse_size("4GiB") == uint64_t{4} << 30);
  CHECK(!parse_size("99999999999GiB"));
  CHECK(!parse_size("18446744073709551616"));
  CHECK(parse_rate("1000M/s") == 1e9);
  CHECK(!parse_rate("1001M/s"));
  CHECK(!parse_rate("0.0000000001/s"));
  CHECK(!parse_rate("1/1000000001s"));
}

TEST_CASE("param schema: integer bounds and finite numbers") {
  param_spec count{"count", param_type::integer, false, "", "", {}, 1, 10};
  param_value v;
  CHECK(parse_param(count, "10", v).empty());
  CHECK(v.integer == 10);
  CHECK(parse_param(count, "11", v) == "must be at most 10, got 11");
  CHECK(parse_param(count, "0", v) == "must be at least 1, got 0");
  param_spec p{"p", param_type::number, false, "", "", {}, 0};
  CHECK(parse_param(p, "0.5", v).empty());
  CHECK(v.number == 0.5);
  CHECK(!parse_param(p, "nan", v).empty());
  CHECK(!parse_param(p, "inf", v).empty());
}

TEST_CASE("runtime and supervision numbers are bounded, not truncated") {
  struct bad {
    const char* yaml;
    const char* field;
  };
  for (auto b : {bad{"runtime: { batch_size: 4611686018427387904 }", "batch_size"},
                 bad{"runtime: { batch_size: 1048577 }", "batch_size"},
                 bad{"runtime: { window: 16777217 }", "window"},
                 bad{"runtime: { max_attempts: 4294967296 }", "max_attempts"},
                 bad{"runtime: { max_attempts: 4294967299 }", "max_attempts"},
                 bad{"supervision: { intensity: 4294967296 }", "intensity"},
                 bad{"supervision: { backoff: { jitter: nan } }", "jitter"},
                 bad{"supervision: { backoff: { jitter: .inf } }", "jitter"},
                 bad{"nodes:\n  c: { type: chaos, p: nan, inputs: [src] }\n",
                     "'p'"},
                 bad{"nodes:\n  c: { type: chaos, kill: nan, inputs: [src] }\n",
                     "'kill'"}}) {
    auto text = std::string{"version: 1\n"} + b.yaml + "\n";
    if (text.find("nodes:") == std::string::npos)
      text += nodes;
    else
      text += "  src: { type: generate }\n  out: { type: stdout, inputs: [c] }\n";
    auto r = load(text);
    CHECK_MESSAGE(!r.ok(), b.yaml);
    CHECK_MESSAGE(errors_of(r).find(b.field) != std::string::npos,
                  errors_of(r));
  }
  auto r = load("version: 1\nruntime: { batch_size: 1048576, window: 16777216, "
                "max_attempts: 1000 }\nsupervision: { intensity: 1000000 }\n"
                + nodes);
  REQUIRE_MESSAGE(r.ok(), errors_of(r));
  CHECK(r.graph->runtime.batch_size == 1048576);
  CHECK(r.graph->runtime.max_attempts == 1000);
  CHECK(r.graph->supervision.intensity == 1000000);
}

TEST_CASE("json strings are valid UTF-8 whatever the input bytes") {
  CHECK(json_string("plain") == "\"plain\"");
  CHECK(json_string("caf\xc3\xa9 \xf0\x9f\x8e\xad") == "\"caf\xc3\xa9 \xf0\x9f\x8e\xad\"");
  CHECK(json_string("a\"b\\c\n\x01") == "\"a\\\"b\\\\c\\n\\u0001\"");
  const std::string fffd = "\xef\xbf\xbd";
  CHECK(json_string("x\xffy") == "\"x" + fffd + "y\"");
  CHECK(json_string("\xc3") == "\"" + fffd + "\"");          // cut short
  CHECK(json_string("\xc0\xaf") == "\"" + fffd + fffd + "\""); // overlong
  CHECK(json_string("\xed\xa0\x80") == "\"" + fffd + fffd + fffd + "\""); // surrogate
  CHECK(json_string("\xf4\x90\x80\x80").find(fffd) != std::string::npos); // > U+10FFFF
  CHECK(json_string("\xe2\x82") == "\"" + fffd + fffd + "\"");
  std::string all;
  for (int c = 0; c < 256; ++c)
    all += static_cast<char>(c);
  all += all; // every byte, in every neighbourhood
  CHECK(valid_utf8(json_string(all)));
}

TEST_CASE("a UTF-8 byte order mark is skipped; columns stay right") {
  auto r = load("\xef\xbb\xbfversion: 1\nnodes:\n"
                "  src: { type: generate, count: 3, bogus: 1 }\n"
                "  out: { type: null, inputs: [src] }\n");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors[0].where.line == 3);
  CHECK(r.errors[0].where.column == 36);
  auto ok = load("\xef\xbb\xbfversion: 1\nnodes:\n"
                 "  src: { type: generate, count: 3 }\n"
                 "  out: { type: null, inputs: [src] }\n");
  CHECK_MESSAGE(ok.ok(), errors_of(ok));
}

TEST_CASE("${A:-${B}} expands the nested default") {
  load_options opts;
  opts.env = [](const std::string& name) -> std::optional<std::string> {
    if (name == "B")
      return std::string{"bee"};
    if (name == "EMPTY")
      return std::string{};
    return std::nullopt;
  };
  auto named = [&](const std::string& name) {
    auto r = load("version: 1\nname: \"" + name + "\"\n" + nodes, opts);
    REQUIRE_MESSAGE(r.ok(), errors_of(r));
    return r.graph->name;
  };
  CHECK(named("${A:-${B}}") == "bee");
  CHECK(named("x${A:-${C:-${B}-z}}y") == "xbee-zy");
  CHECK(named("${EMPTY:-${C:-deep}}") == "deep");
  CHECK(named("${B:-${UNSET}}") == "bee"); // unused default: not expanded
  auto r = load("version: 1\nname: \"${A:-${C}}\"\n" + nodes, opts);
  CHECK(errors_of(r).find("'C' is not set") != std::string::npos);
  r = load("version: 1\nname: \"${A:-${B}\"\n" + nodes, opts);
  CHECK(errors_of(r).find("unterminated") != std::string::npos);
}
