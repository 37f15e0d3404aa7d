#include "troupe/units.hpp"

#include <cctype>
#include <cmath>
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

// Splits "12.5ms" into 12.5 and "ms". Fails on empty numbers or signs.
bool split_number(const std::string& text, double& value, std::string& unit) {
  size_t i = 0;
  while (i < text.size()
         && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  if (i == 0)
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
  if (ns > 1e18)
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
  return v / seconds;
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
  return static_cast<uint64_t>(v * mult);
}

std::optional<int64_t> parse_integer(const std::string& text) {
  if (text.empty())
    return std::nullopt;
  char* end = nullptr;
  errno = 0;
  auto v = std::strtoll(text.c_str(), &end, 10);
  if (errno != 0 || end != text.c_str() + text.size())
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
  return fmt(ns / 1e9, "s");
}

} // namespace troupe
