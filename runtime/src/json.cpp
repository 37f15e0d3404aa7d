#include "troupe/json.hpp"

#include <cstdint>
#include <cstring>

namespace troupe {

namespace {

// What a byte needs: 0 nothing, 1 an escape (control characters, '"',
// '\\'), 2 a UTF-8 check (bytes >= 0x80 start or continue a sequence).
struct escape_table {
  unsigned char needs[256] = {};
  constexpr escape_table() {
    for (int c = 0; c < 0x20; ++c)
      needs[c] = 1;
    needs[static_cast<unsigned char>('"')] = 1;
    needs[static_cast<unsigned char>('\\')] = 1;
    for (int c = 0x80; c < 0x100; ++c)
      needs[c] = 2;
  }
};
constexpr escape_table escapes;

// Length of the well-formed UTF-8 sequence at p (RFC 3629: no overlong
// forms, no surrogates, nothing above U+10FFFF), or 0 when it is not one.
size_t utf8_length(const unsigned char* p, const unsigned char* end) {
  auto avail = static_cast<size_t>(end - p);
  auto cont = [](unsigned char c) { return (c & 0xC0) == 0x80; };
  auto c = p[0];
  if (c >= 0xC2 && c <= 0xDF)
    return avail >= 2 && cont(p[1]) ? 2 : 0;
  if (c >= 0xE0 && c <= 0xEF) {
    if (avail < 3 || !cont(p[1]) || !cont(p[2]))
      return 0;
    if ((c == 0xE0 && p[1] < 0xA0) || (c == 0xED && p[1] > 0x9F))
      return 0; // overlong, or a surrogate
    return 3;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    if (avail < 4 || !cont(p[1]) || !cont(p[2]) || !cont(p[3]))
      return 0;
    if ((c == 0xF0 && p[1] < 0x90) || (c == 0xF4 && p[1] > 0x8F))
      return 0; // overlong, or above U+10FFFF
    return 4;
  }
  return 0;
}

// Whether any of the 8 bytes in `w` needs attention (escapes[] != 0): a
// control character, '"', '\\' or a byte >= 0x80. Word at a time, because
// nearly every body has none (a hex digest, plain text).
inline bool word_needs_attention(uint64_t w) {
  constexpr uint64_t ones = 0x0101010101010101ull;
  constexpr uint64_t highs = 0x8080808080808080ull;
  auto has_zero = [](uint64_t v) { return (v - ones) & ~v & highs; };
  auto below_space = (w - ones * 0x20) & ~w & highs;
  return ((w & highs) | below_space | has_zero(w ^ (ones * '"'))
          | has_zero(w ^ (ones * '\\')))
         != 0;
}

} // namespace

bool json_plain(const std::string& s) {
  auto p = reinterpret_cast<const unsigned char*>(s.data());
  auto end = p + s.size();
  for (; end - p >= 8; p += 8) {
    uint64_t w;
    std::memcpy(&w, p, 8);
    if (word_needs_attention(w))
      return false;
  }
  for (; p != end; ++p)
    if (escapes.needs[*p] != 0)
      return false;
  return true;
}

bool is_utf8(const std::string& s) {
  auto p = reinterpret_cast<const unsigned char*>(s.data());
  auto end = p + s.size();
  while (p < end) {
    if (*p < 0x80) {
      ++p;
      continue;
    }
    auto len = utf8_length(p, end);
    if (len == 0)
      return false;
    p += len;
  }
  return true;
}

void append_base64(std::string& out, const std::string& bytes) {
  static constexpr char digits[]
    = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  auto p = reinterpret_cast<const unsigned char*>(bytes.data());
  size_t n = bytes.size(), i = 0;
  out.reserve(out.size() + (n + 2) / 3 * 4);
  for (; i + 3 <= n; i += 3) {
    uint32_t v = (uint32_t{p[i]} << 16) | (uint32_t{p[i + 1]} << 8) | p[i + 2];
    out += digits[v >> 18];
    out += digits[(v >> 12) & 63];
    out += digits[(v >> 6) & 63];
    out += digits[v & 63];
  }
  if (auto rest = n - i; rest > 0) {
    uint32_t v = uint32_t{p[i]} << 16;
    if (rest == 2)
      v |= uint32_t{p[i + 1]} << 8;
    out += digits[v >> 18];
    out += digits[(v >> 12) & 63];
    out += rest == 2 ? digits[(v >> 6) & 63] : '=';
    out += '=';
  }
}

void append_json_string(std::string& out, const std::string& s) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  // Copy runs of plain bytes in one go; most bodies have no escapes at all.
  auto* begin = reinterpret_cast<const unsigned char*>(s.data());
  auto* end = begin + s.size();
  auto* run = begin;
  auto flush = [&](const unsigned char* p) {
    out.append(reinterpret_cast<const char*>(run),
               static_cast<size_t>(p - run));
  };
  for (auto* p = begin; p != end;) {
    if (end - p >= 8) {
      uint64_t w;
      std::memcpy(&w, p, 8);
      if (!word_needs_attention(w)) {
        p += 8;
        continue;
      }
    }
    auto c = *p;
    auto need = escapes.needs[c];
    if (need == 0) {
      ++p;
      continue;
    }
    if (need == 2) {
      if (auto len = utf8_length(p, end)) {
        p += len; // valid UTF-8 passes through unchanged
        continue;
      }
      // Not UTF-8: JSON text must be, so the byte becomes U+FFFD.
      flush(p);
      out += "\xEF\xBF\xBD";
      run = ++p;
      continue;
    }
    flush(p);
    run = ++p;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += "\\u00";
        out += hex[c >> 4];
        out += hex[c & 0xF];
    }
  }
  flush(end);
  out += '"';
}

} // namespace troupe
