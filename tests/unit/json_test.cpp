// JSON helpers shared by the report, the jsonl sinks and http_fetch.
#include <doctest/doctest.h>

#include <string>

#include "troupe/json.hpp"

using troupe::append_base64;
using troupe::is_utf8;
using troupe::json_string;

TEST_CASE("is_utf8 accepts well-formed UTF-8 and nothing else") {
  CHECK(is_utf8(""));
  CHECK(is_utf8("plain ascii"));
  CHECK(is_utf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
  CHECK_FALSE(is_utf8("\xFF"));
  CHECK_FALSE(is_utf8("\xC3"));             // truncated
  CHECK_FALSE(is_utf8("\xC0\xAF"));         // overlong
  CHECK_FALSE(is_utf8("\xED\xA0\x80"));     // a surrogate
  CHECK_FALSE(is_utf8("\xF4\x90\x80\x80")); // above U+10FFFF
  std::string all;
  for (int c = 0; c < 256; ++c)
    all += static_cast<char>(c);
  CHECK_FALSE(is_utf8(all));
}

TEST_CASE("append_base64 follows RFC 4648's test vectors") {
  auto b64 = [](const std::string& s) {
    std::string out;
    append_base64(out, s);
    return out;
  };
  CHECK(b64("") == "");
  CHECK(b64("f") == "Zg==");
  CHECK(b64("fo") == "Zm8=");
  CHECK(b64("foo") == "Zm9v");
  CHECK(b64("foob") == "Zm9vYg==");
  CHECK(b64("fooba") == "Zm9vYmE=");
  CHECK(b64("foobar") == "Zm9vYmFy");
  CHECK(b64(std::string("\x00\xFF\x80", 3)) == "AP+A");
}

TEST_CASE("json_string replaces what is not UTF-8, keeps what is") {
  CHECK(json_string("a\"b") == "\"a\\\"b\"");
  CHECK(json_string("\xC3\xA9") == "\"\xC3\xA9\"");
  CHECK(json_string("\xFF") == "\"\xEF\xBF\xBD\"");
}
