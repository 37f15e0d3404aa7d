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
// retry_on statuses are 400..599: nothing below is an error to retry.
std::string check(const retry_options& o);

// Whether repeating `method` is harmless (RFC 9110 9.2.2): GET, HEAD, PUT,
// DELETE, OPTIONS, TRACE. Names compare case-insensitively; POST, PATCH and
// any other method are not idempotent.
bool idempotent(const std::string& method);

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
  // retry_after_cap (a larger Retry-After makes the outcome final: waiting
  // less than the server asked is pointless and waiting longer holds the
  // record, so it goes to `errors`). A malformed Retry-After is ignored
  // (backoff as usual). Deterministic for a seed: the same calls give the
  // same delays on every platform.
  std::optional<duration> next(const request& req, const response& res,
                               uint32_t attempts_made,
                               std::chrono::system_clock::time_point wall_now);

  const retry_options& options() const {
    return opts_;
  }

private:
  retry_options opts_;
  std::mt19937_64 rng_;
  // retry_on, parsed once.
  bool on_connect_ = false, on_timeout_ = false, on_low_speed_ = false,
       on_reset_ = false, on_4xx_ = false, on_5xx_ = false;
  std::vector<long> on_status_;
};

// Retry-After: delta-seconds ("120"; an absurdly large number saturates at
// max_duration) or an HTTP-date (IMF-fixdate "Wed, 21 Oct 2015 07:28:00 GMT",
// and the obsolete RFC 850 and asctime forms RFC 9110 asks recipients to
// accept), relative to `wall_now`; a date in the past is 0. nullopt when
// malformed (negative, fractional, garbage). Needs no locale.
std::optional<duration>
parse_retry_after(const std::string& value,
                  std::chrono::system_clock::time_point wall_now);

// -- circuit breaker -----------------------------------------------------------

// Per host: `failures` consecutive failed requests open the circuit; while
// open, requests fail fast; after `cooldown` one probe goes through
// (half-open): its success closes the circuit, its failure opens it again.
// Every go or probe admitted must be answered by success(), failure() or
// (a probe that ended with no verdict, e.g. cancelled) abandon().
// Outcomes count whichever request they come from: a request admitted
// before the circuit opened that fails while it is open changes nothing (the
// cooldown is not extended); one that ends while half-open counts as the
// probe's outcome would. A success while open is ignored: only a probe after
// the cooldown closes the circuit. One thread (the stage's actor) uses it.
//
// Example:
//   circuit_breaker cb{5, std::chrono::seconds(30)};
//   switch (cb.admit(host_of(url), now)) { case verdict::refuse: ... }
//   ... cb.success(host) or cb.failure(host, now) when the transfer ends.
class circuit_breaker {
public:
  enum class state : uint8_t { closed, open, half_open };
  enum class verdict : uint8_t { go, probe, refuse };

  circuit_breaker(uint32_t failures, duration cooldown); // failures 0: never opens

  verdict admit(const std::string& host, time_point now);
  void success(const std::string& host);
  void failure(const std::string& host, time_point now);
  // The probe in flight ended with no verdict: the next admit probes again.
  void abandon(const std::string& host);
  // The state as last changed (an open circuit whose cooldown has passed is
  // still open here until admit() lets its probe through).
  state of(const std::string& host) const;
  // Hosts with state (failing or open): at most max_hosts.
  size_t tracked() const {
    return hosts_.size();
  }

private:
  struct host_state {
    state st = state::closed;
    uint32_t consecutive = 0;
    time_point opened{};
    bool probing = false;
  };
  static constexpr size_t max_hosts = 10000;
  uint32_t failures_;
  duration cooldown_;
  std::map<std::string, host_state> hosts_;
};

// -- adaptive concurrency --------------------------------------------------------

// How many requests may run at once when `max_in_flight: adaptive`, after
// Vector's adaptive request concurrency: additive increase while the
// round-trip time holds near its moving average, multiplicative decrease
// when it rises past it or the server pushes back (429, 503, a timeout).
//
// Observations are judged in windows of `limit()` completions (about one
// round trip of the whole window of requests; AIMD changes once per round
// trip, like TCP). At a window's end, against the RTT's EWMA of the windows
// before (alpha 0.4, Vector's default):
//   - push-back in the window: limit = max(1, floor(limit * 0.5)): the server
//     said it is overloaded, halve as TCP does on loss;
//   - window mean RTT above the EWMA by more than 10%: limit = max(1,
//     floor(limit * 0.9)) (Vector's decrease_ratio): queues are building;
//   - otherwise limit + 1, up to the ceiling.
// The first window only sets the EWMA (push-back still halves). Unlike Vector
// it does not know whether the limit was reached (the stage may have had
// fewer requests to send); the stage may skip observe() when it was not.
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
  size_t seen_ = 0;   // observations in this window
  bool has_avg_ = false;
  double window_ms_ = 0;        // sum of the RTTs in this window
  double dev_ms_ = 0; // smoothed |RTT - average| per request (as TCP's RTTVAR)
  bool has_dev_ = false;
  bool window_pushed_ = false;  // push-back seen in this window
};

// -- building requests from records ------------------------------------------------

// "scheme://host:port" of a URL, lower-case; "" when it has none. The
// default port of http (80) and https (443) is left out, so "https://a.b/"
// and "https://a.b:443/" are one host; userinfo is dropped; an IPv6 literal
// keeps its brackets ("http://[::1]:8080"). "" for anything that is not
// scheme://authority (no scheme, empty host, a bad port, a space).
std::string host_of(const std::string& url);

// A text with placeholders: {body}, {key}, {seq}, {page}, {attr.NAME};
// "{{" and "}}" stand for braces. With url_encode, each placeholder's value
// is percent-encoded (RFC 3986 unreserved characters kept), except a value
// that is a whole URL standing alone ("{body}" as the template).
//
// Example:
//   std::string err;
//   auto t = text_template::parse("https://api.example/items?q={key}&p={page}", err);
//   t->render(r, 2, true); // "https://api.example/items?q=a%20b&p=2"
class text_template {
public:
  // nullopt with `error` set when the text has an unknown placeholder (the
  // message names it and lists the valid ones), an unclosed '{', an empty
  // "{}" or a lone '}'; positions in messages are 1-based columns.
  static std::optional<text_template> parse(const std::string& text,
                                            std::string& error);
  // A missing attribute renders as "".
  std::string render(const record& r, uint64_t page = 0,
                     bool url_encode = false) const;
  bool uses(const std::string& placeholder) const; // "page", "attr.x", ...
  // The placeholders used, in order ("body", "attr.id", ...).
  std::vector<std::string> placeholders() const;
  // The attributes the template names that `r` does not have.
  std::vector<std::string> missing_attrs(const record& r) const;
  // The literal text before the first placeholder (the whole text if none).
  std::string prefix() const;

private:
  struct part {
    bool placeholder = false;
    std::string text; // literal, or the placeholder's name
  };
  std::vector<part> parts_;
};

} // namespace troupe::http
