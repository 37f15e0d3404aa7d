// Parsers for the units configuration values use: durations ("250ms", "5s",
// "10m", "1h"), rates ("2/s", "100/m", "1.5k/s") and sizes ("64KiB", "1MB").
// Each returns an empty optional on malformed input; callers add the location.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>

namespace troupe {

using duration = std::chrono::nanoseconds;

// The largest duration, size and rate configuration accepts: far beyond any
// sensible setting, far enough from the types' limits that arithmetic on
// them (now + d, 2 * d, elapsed seconds * rate) cannot overflow.
constexpr duration max_duration{1'000'000'000'000'000'000}; // ~31.7 years
constexpr uint64_t max_size = uint64_t{1} << 62;             // 4 EiB
constexpr double min_rate = 1e-9;                            // per second
constexpr double max_rate = 1e9;

// Each parser rejects NaN, infinity, values out of the bounds above and
// anything a conversion would truncate.
std::optional<duration> parse_duration(const std::string& text);
// Events per second.
std::optional<double> parse_rate(const std::string& text);
// Bytes.
std::optional<uint64_t> parse_size(const std::string& text);
std::optional<int64_t> parse_integer(const std::string& text);
// A finite decimal number ("0.25", "-3", "1e-3"); never nan or inf.
std::optional<double> parse_number(const std::string& text);
std::optional<bool> parse_bool(const std::string& text);

// "1.5s", "250ms", "80us": the shortest exact-ish rendering for reports.
std::string format_duration(duration d);

// "2026-12-01T07:40:00.123Z": a moment in UTC, to the millisecond (logs,
// the live view, the HTML report).
std::string format_utc(std::chrono::system_clock::time_point t);

} // namespace troupe
