// What the http_fetch stage decides around each transfer, free of CAF and of
// clocks (every call takes `now`, so tests drive time): whether and when to
// retry, whether a host's circuit is open, how many requests may run at once
// when that is adaptive, and how a request is built from a record.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "troupe/actors/http.hpp"
#include "troupe/record.hpp"
#include "troupe/units.hpp"

namespace troupe::http {

using time_point = std::chrono::steady_clock::time_point;

// -- retries -------------------------------------------------------------------

struct retry_options {
  uint32_t max_attempts = 3;                         // >= 1, 1: no retry
  duration backoff = std::chrono::milliseconds(200); // first delay, > 0
  duration max_backoff = std::chrono::seconds(10);   // >= backoff
  duration retry_after_cap = std::chrono::seconds(30); // > 0
  // What is retried: "connect", "timeout", "low_speed", "reset", a status
  // ("429", "503") or a class ("5xx", "4xx").
  std::vector<std::string> retry_on = {"connect", "timeout", "reset", "429",
                                       "5xx"};
  bool retry_unsafe = false; // retry POST/PATCH (not idempotent) too
};

// "" when usable, else why not (an unknown retry_on entry names it).
std::string check(const retry_options& o);

class retry_policy {
public:
  retry_policy(retry_options o, uint64_t seed);

  // Whether this outcome may be retried at all (the list, and the method:
  // GET, HEAD, PUT, DELETE, OPTIONS, TRACE are idempotent).
  bool retryable(const request& req, const response& res) const;

  // The delay before the next attempt, or nullopt when `res` is final:
  // not retryable, or `attempts_made` reached max_attempts. Exponential
  // backoff with full jitter (uniform in [0, min(max_backoff, backoff *
  // 2^(attempts_made-1))]); a Retry-After header on 429/503 wins, capped at
  // retry_after_cap (a larger Retry-After makes the outcome final).
  std::optional<duration> next(const request& req, const response& res,
                               uint32_t attempts_made,
                               std::chrono::system_clock::time_point wall_now);

  const retry_options& options() const {
    return opts_;
  }

private:
  retry_options opts_;
  std::mt19937_64 rng_;
};

// Retry-After: delta-seconds or an HTTP-date; nullopt when malformed.
std::optional<duration>
parse_retry_after(const std::string& value,
                  std::chrono::system_clock::time_point wall_now);

// -- circuit breaker -----------------------------------------------------------

// Per host: `failures` consecutive failed requests open the circuit; while
// open, requests fail fast; after `cooldown` one probe goes through
// (half-open): its success closes the circuit, its failure opens it again.
class circuit_breaker {
public:
  enum class state : uint8_t { closed, open, half_open };
  enum class verdict : uint8_t { go, probe, refuse };

  circuit_breaker(uint32_t failures, duration cooldown); // failures 0: never opens

  verdict admit(const std::string& host, time_point now);
  void success(const std::string& host);
  void failure(const std::string& host, time_point now);
  state of(const std::string& host) const;

private:
  struct host_state {
    state st = state::closed;
    uint32_t consecutive = 0;
    time_point opened{};
    bool probing = false;
  };
  uint32_t failures_;
  duration cooldown_;
  std::map<std::string, host_state> hosts_;
};

// -- adaptive concurrency --------------------------------------------------------

// How many requests may run at once when `max_in_flight: adaptive`, after
// Vector's adaptive request concurrency: additive increase while the
// round-trip time holds near its moving average, multiplicative decrease
// when it rises past it or the server pushes back (429, 503, a timeout).
class adaptive_limit {
public:
  adaptive_limit(size_t initial, size_t ceiling); // 1 <= initial <= ceiling

  size_t limit() const {
    return limit_;
  }
  // One completed request: its round trip and whether it was push-back.
  void observe(duration rtt, bool pushed_back);

private:
  size_t limit_;
  size_t ceiling_;
  double avg_ms_ = 0; // exponentially weighted moving average of the RTT
  size_t seen_ = 0;   // observations since the last change
};

// -- building requests from records ------------------------------------------------

// "scheme://host:port" of a URL, lower-case; "" when it has none.
std::string host_of(const std::string& url);

// A text with placeholders: {body}, {key}, {seq}, {page}, {attr.NAME};
// "{{" and "}}" stand for braces. With url_encode, each placeholder's value
// is percent-encoded (RFC 3986 unreserved characters kept), except a value
// that is a whole URL standing alone ("{body}" as the template).
class text_template {
public:
  // nullopt with `error` set when the text has an unknown or unclosed
  // placeholder.
  static std::optional<text_template> parse(const std::string& text,
                                            std::string& error);
  std::string render(const record& r, uint64_t page = 0,
                     bool url_encode = false) const;
  bool uses(const std::string& placeholder) const; // "page", "attr.x", ...

private:
  struct part {
    bool placeholder = false;
    std::string text; // literal, or the placeholder's name
  };
  std::vector<part> parts_;
};

} // namespace troupe::http
