// append_json_string skips 8 plain bytes at a time (a word test for control
// characters, '"', '\\' and bytes >= 0x80). Whatever the word test says, the
// output must be what a plain byte-by-byte escaper makes: here every byte
// value, and each kind of special, at every position of the first two
// words, in strings long and short enough to take every path (all-word,
// word then tail, tail only).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "troupe/json.hpp"

namespace {

// Length of the well-formed UTF-8 sequence at s[i] (RFC 3629), 0 if none.
// Written from the RFC's table of well-formed byte sequences, not from
// json.cpp.
size_t utf8_at(const std::string& s, size_t i) {
  auto b = [&](size_t k) -> int {
    return i + k < s.size() ? static_cast<unsigned char>(s[i + k]) : -1;
  };
  auto in = [](int x, int lo, int hi) { return x >= lo && x <= hi; };
  int c = b(0);
  if (in(c, 0xC2, 0xDF))
    return in(b(1), 0x80, 0xBF) ? 2 : 0;
  if (c == 0xE0)
    return in(b(1), 0xA0, 0xBF) && in(b(2), 0x80, 0xBF) ? 3 : 0;
  if (in(c, 0xE1, 0xEC) || in(c, 0xEE, 0xEF))
    return in(b(1), 0x80, 0xBF) && in(b(2), 0x80, 0xBF) ? 3 : 0;
  if (c == 0xED)
    return in(b(1), 0x80, 0x9F) && in(b(2), 0x80, 0xBF) ? 3 : 0;
  if (c == 0xF0)
    return in(b(1), 0x90, 0xBF) && in(b(2), 0x80, 0xBF)
               && in(b(3), 0x80, 0xBF)
             ? 4
             : 0;
  if (in(c, 0xF1, 0xF3))
    return in(b(1), 0x80, 0xBF) && in(b(2), 0x80, 0xBF)
               && in(b(3), 0x80, 0xBF)
             ? 4
             : 0;
  if (c == 0xF4)
    return in(b(1), 0x80, 0x8F) && in(b(2), 0x80, 0xBF)
               && in(b(3), 0x80, 0xBF)
             ? 4
             : 0;
  return 0;
}

// The reference: one byte at a time, the same escapes json.hpp promises
// (short forms for \" \\ \n \r \t, \u00xx for other control characters,
// valid UTF-8 kept, each byte of invalid UTF-8 replaced by U+FFFD).
std::string reference(const std::string& s) {
  static const char hex[] = "0123456789abcdef";
  std::string out = "\"";
  for (size_t i = 0; i < s.size();) {
    auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      if (auto n = utf8_at(s, i)) {
        out.append(s, i, n);
        i += n;
      } else {
        out += "\xEF\xBF\xBD";
        ++i;
      }
      continue;
    }
    ++i;
    if (c == '"')
      out += "\\\"";
    else if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (c == '\r')
      out += "\\r";
    else if (c == '\t')
      out += "\\t";
    else if (c < 0x20) {
      out += "\\u00";
      out += hex[c >> 4];
      out += hex[c & 0xF];
    } else
      out += static_cast<char>(c);
  }
  out += '"';
  return out;
}

// `len` plain bytes, varied so a misplaced copy shows ('a', 'b', ...).
std::string plain(size_t len) {
  std::string s;
  for (size_t i = 0; i < len; ++i)
    s += static_cast<char>('a' + i % 26);
  return s;
}

std::string hex_of(const std::string& s) {
  static const char hex[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out += hex[c >> 4];
    out += hex[c & 0xF];
    out += ' ';
  }
  return out;
}

// Checks `s` against the reference; returns whether it matched.
bool same_as_reference(const std::string& s) {
  auto got = troupe::json_string(s);
  auto want = reference(s);
  CHECK_MESSAGE(got == want, "input " << hex_of(s) << "\n  got  " << got
                                      << "\n  want " << want);
  return got == want;
}

} // namespace

TEST_CASE("json escape: the reference escaper itself, on known answers") {
  // So the comparisons below compare against something right.
  CHECK(reference("") == "\"\"");
  CHECK(reference("a\"b\\c\nd\re\tf") == "\"a\\\"b\\\\c\\nd\\re\\tf\"");
  CHECK(reference(std::string("\x01\x1f\x7f", 3)) == "\"\\u0001\\u001f\x7f\"");
  CHECK(reference(std::string(1, '\0')) == "\"\\u0000\"");
  CHECK(reference("\xC3\xA9") == "\"\xC3\xA9\"");           // é
  CHECK(reference("\xE2\x82\xAC") == "\"\xE2\x82\xAC\"");   // €
  CHECK(reference("\xF0\x9F\x98\x80") == "\"\xF0\x9F\x98\x80\""); // 😀
  CHECK(reference("\xFF") == "\"\xEF\xBF\xBD\"");
  CHECK(reference("\xC3") == "\"\xEF\xBF\xBD\"");     // cut short
  CHECK(reference("\xC0\xAF") == "\"\xEF\xBF\xBD\xEF\xBF\xBD\""); // overlong
  CHECK(reference("\xED\xA0\x80")
        == "\"\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\""); // a surrogate
}

TEST_CASE("json escape: each special at every position 0..15 of strings of "
          "1..24 bytes matches the byte-by-byte reference") {
  struct special {
    const char* name;
    std::string bytes;
  };
  const std::vector<special> specials = {
    {"quote", "\""},
    {"backslash", "\\"},
    {"newline", "\n"},
    {"0x01", std::string(1, '\x01')},
    {"0x1f", std::string(1, '\x1f')},
    {"0x7f (plain)", std::string(1, '\x7f')},
    {"two-byte UTF-8", "\xC3\xA9"},
    {"invalid 0xff", std::string(1, '\xFF')},
    {"NUL", std::string(1, '\0')},
    {"0x80 (lone continuation)", std::string(1, '\x80')},
    {"0xc3 (cut-short lead)", std::string(1, '\xC3')},
  };
  size_t checked = 0, failed = 0;
  for (auto& sp : specials) {
    CAPTURE(sp.name);
    for (size_t len = 1; len <= 24; ++len)
      for (size_t pos = 0; pos < 16 && pos < len; ++pos) {
        // `len` bytes with the special starting at `pos` (a two-byte
        // sequence that would run past the end is cut to fit: an invalid
        // lead byte there, which is a case of its own).
        auto s = plain(len);
        s.replace(pos, std::min(sp.bytes.size(), len - pos),
                  sp.bytes.substr(0, len - pos));
        REQUIRE(s.size() == len);
        failed += same_as_reference(s) ? 0 : 1;
        ++checked;
      }
  }
  CHECK(failed == 0);
  CHECK(checked > 2000);
}

TEST_CASE("json escape: every byte value at every position 0..15 of strings "
          "of 1..24 bytes matches the reference") {
  size_t failed = 0;
  for (int b = 0; b < 256; ++b)
    for (size_t len = 1; len <= 24; ++len)
      for (size_t pos = 0; pos < 16 && pos < len; ++pos) {
        auto s = plain(len);
        s[pos] = static_cast<char>(b);
        if (!same_as_reference(s) && ++failed > 20)
          FAIL("too many mismatches; stopping");
      }
  CHECK(failed == 0);
}

TEST_CASE("json escape: the neighbours of the special values pass unchanged "
          "at every position") {
  // 0x20 is the first byte that is not a control character, '!' and '#'
  // sit either side of '"', '[' and ']' either side of '\\', 0x7f is the
  // last byte below 0x80: a word test off by one would flag or miss them.
  const std::string neighbours = " !#[]\x7f~0";
  for (char n : neighbours) {
    CAPTURE(static_cast<int>(static_cast<unsigned char>(n)));
    for (size_t len = 1; len <= 24; ++len)
      for (size_t pos = 0; pos < 16 && pos < len; ++pos) {
        auto s = plain(len);
        s[pos] = n;
        CHECK(troupe::json_string(s) == "\"" + s + "\"");
      }
    // A whole string of it: every word made only of the neighbour.
    std::string all(24, n);
    CHECK(troupe::json_string(all) == "\"" + all + "\"");
  }
}

TEST_CASE("json escape: two specials in one word, and a two-byte sequence "
          "across the word boundary") {
  // Pairs of specials at every pair of positions of a 17-byte string
  // (two words and a tail byte).
  const std::vector<std::string> specials
    = {"\"", "\\", "\n", std::string(1, '\x01'), "\xFF", "\x7F"};
  size_t failed = 0;
  for (auto& x : specials)
    for (auto& y : specials)
      for (size_t i = 0; i < 17; ++i)
        for (size_t j = i + 1; j < 17; ++j) {
          auto s = plain(17);
          s[i] = x[0];
          s[j] = y[0];
          failed += same_as_reference(s) ? 0 : 1;
        }
  CHECK(failed == 0);
  // é, € and 😀 starting at each offset around the end of the first word.
  for (std::string seq : {"\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80"})
    for (size_t pos = 4; pos <= 9; ++pos) {
      auto s = plain(20);
      s.replace(pos, seq.size(), seq);
      REQUIRE(s.size() == 20);
      CHECK(same_as_reference(s));
      CHECK(troupe::json_string(s) == "\"" + s + "\""); // kept as is
    }
}

TEST_CASE("json escape: long plain runs between specials are copied whole") {
  // Many words skipped, then one special, then more words; the runs around
  // it must come out complete and in place.
  for (size_t before : {0u, 7u, 8u, 9u, 63u, 64u, 65u})
    for (size_t after : {0u, 1u, 8u, 15u, 64u}) {
      auto s = plain(before) + "\"" + plain(after);
      CAPTURE(before);
      CAPTURE(after);
      CHECK(troupe::json_string(s)
            == "\"" + plain(before) + "\\\"" + plain(after) + "\"");
    }
  // Appends to what is already in `out`.
  std::string out = "x=";
  troupe::append_json_string(out, plain(40));
  CHECK(out == "x=\"" + plain(40) + "\"");
}
