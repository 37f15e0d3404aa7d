#include "troupe/units.hpp"

#include <cctype>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <cstdlib>

#include "troupe/source_location.hpp"

namespace troupe {

std::string source_location::str() const {
  if (line <= 0)
    return file;
  return file + ":" + std::to_string(line) + ":" + std::to_string(column);
}

std::string diagnostic::str() const {
  return where.str() + ": error: " + message;
}

namespace {

// Splits "12.5ms" into 12.5 and "ms". Fails on empty numbers or signs, and
// on digit strings too long to be exact (strtod would round or overflow).
bool split_number(const std::string& text, double& value, std::string& unit) {
  size_t i = 0;
  while (i < text.size()
         && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  if (i == 0 || i > 32)
    return false;
  auto num = text.substr(0, i);
  char* end = nullptr;
  value = std::strtod(num.c_str(), &end);
  if (end != num.c_str() + num.size() || !std::isfinite(value))
    return false;
  unit = text.substr(i);
  while (!unit.empty() && unit.front() == ' ')
    unit.erase(unit.begin());
  return true;
}

} // namespace

std::optional<duration> parse_duration(const std::string& text) {
  double v = 0;
  std::string unit;
  if (!split_number(text, v, unit))
    return std::nullopt;
  double ns_per;
  if (unit == "ns")
    ns_per = 1;
  else if (unit == "us")
    ns_per = 1e3;
  else if (unit == "ms")
    ns_per = 1e6;
  else if (unit == "s")
    ns_per = 1e9;
  else if (unit == "m" || unit == "min")
    ns_per = 60e9;
  else if (unit == "h")
    ns_per = 3600e9;
  else
    return std::nullopt;
  auto ns = v * ns_per;
  // Bounded so that adding it to a clock reading or doubling it for a
  // backoff cannot overflow; a positive value below 1ns would silently
  // become 0 (no delay, no timeout), so it is rejected too.
  if (!(ns <= static_cast<double>(max_duration.count())) || (v > 0 && ns < 1))
    return std::nullopt;
  return duration{static_cast<int64_t>(ns)};
}

std::optional<double> parse_rate(const std::string& text) {
  auto slash = text.find('/');
  if (slash == std::string::npos)
    return std::nullopt;
  double v = 0;
  std::string mult;
  if (!split_number(text.substr(0, slash), v, mult))
    return std::nullopt;
  if (mult == "k")
    v *= 1e3;
  else if (mult == "M")
    v *= 1e6;
  else if (!mult.empty())
    return std::nullopt;
  auto per = text.substr(slash + 1);
  double seconds;
  if (per == "s")
    seconds = 1;
  else if (per == "m" || per == "min")
    seconds = 60;
  else if (per == "h")
    seconds = 3600;
  else if (auto d = parse_duration(per))
    seconds = static_cast<double>(d->count()) / 1e9;
  else
    return std::nullopt;
  if (seconds <= 0 || v <= 0)
    return std::nullopt;
  auto rate = v / seconds;
  // Pacing turns a rate into an interval and elapsed time into a count:
  // both must stay within what a duration and a 64-bit count can hold.
  if (!std::isfinite(rate) || rate < min_rate || rate > max_rate)
    return std::nullopt;
  return rate;
}

std::optional<uint64_t> parse_size(const std::string& text) {
  double v = 0;
  std::string unit;
  if (!split_number(text, v, unit))
    return std::nullopt;
  double mult;
  if (unit.empty() || unit == "B")
    mult = 1;
  else if (unit == "KiB")
    mult = 1024;
  else if (unit == "MiB")
    mult = 1024.0 * 1024;
  else if (unit == "GiB")
    mult = 1024.0 * 1024 * 1024;
  else if (unit == "kB" || unit == "KB")
    mult = 1e3;
  else if (unit == "MB")
    mult = 1e6;
  else if (unit == "GB")
    mult = 1e9;
  else
    return std::nullopt;
  auto bytes = v * mult;
  if (!(bytes <= static_cast<double>(max_size)))
    return std::nullopt; // would not fit the integer it becomes
  return static_cast<uint64_t>(bytes);
}

std::optional<int64_t> parse_integer(const std::string& text) {
  // strtoll skips leading blanks and accepts "+": a value is digits only,
  // with an optional minus.
  if (text.empty() || !(std::isdigit(static_cast<unsigned char>(text[0]))
                        || text[0] == '-'))
    return std::nullopt;
  char* end = nullptr;
  errno = 0;
  auto v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end != text.c_str() + text.size())
    return std::nullopt;
  return v;
}

std::optional<double> parse_number(const std::string& text) {
  // Plain decimal notation only: strtod would also take "nan", "inf",
  // hexadecimal and leading blanks.
  size_t i = 0;
  auto n = text.size();
  auto digits = [&] {
    auto from = i;
    while (i < n && std::isdigit(static_cast<unsigned char>(text[i])))
      ++i;
    return i - from;
  };
  if (i < n && (text[i] == '-' || text[i] == '+'))
    ++i;
  auto whole = digits();
  size_t frac = 0;
  if (i < n && text[i] == '.') {
    ++i;
    frac = digits();
  }
  if (whole + frac == 0)
    return std::nullopt;
  if (i < n && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    if (i < n && (text[i] == '-' || text[i] == '+'))
      ++i;
    if (digits() == 0)
      return std::nullopt;
  }
  if (i != n)
    return std::nullopt;
  char* end = nullptr;
  auto v = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + n || !std::isfinite(v))
    return std::nullopt;
  return v;
}

std::optional<bool> parse_bool(const std::string& text) {
  if (text == "true")
    return true;
  if (text == "false")
    return false;
  return std::nullopt;
}

std::string format_duration(duration d) {
  auto ns = d.count();
  auto fmt = [](double v, const char* unit) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.3g%s", v, unit);
    return std::string{buf};
  };
  if (ns < 1000)
    return std::to_string(ns) + "ns";
  if (ns < 1000000)
    return fmt(ns / 1e3, "us");
  if (ns < 1000000000)
    return fmt(ns / 1e6, "ms");
  if (ns < 1000000000000)
    return fmt(ns / 1e9, "s");
  // %g would print 3.6e+03s: whole seconds from 1000 s on.
  return std::to_string(ns / 1000000000) + "s";
}

std::string format_utc(std::chrono::system_clock::time_point t) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
              t.time_since_epoch())
              .count();
  auto secs = static_cast<std::time_t>(ms / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[64];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ",
                tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
                tm.tm_min, tm.tm_sec, static_cast<int>(ms % 1000));
  return buf;
}

} // namespace troupe
