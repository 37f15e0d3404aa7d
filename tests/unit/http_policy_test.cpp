// The http_fetch stage's CAF-free decisions (issue 9): which outcomes are
// retried and after how long (full-jitter backoff, Retry-After and its cap),
// Retry-After parsing, the per-host circuit breaker, the adaptive concurrency
// limit, hosts of URLs and request templates. Plain doctest: no threads, no
// sleeps; every call gets its `now`.
#include <doctest/doctest.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "http/policy.hpp"
#include "troupe/record.hpp"

using namespace troupe;
using namespace troupe::http;
using namespace std::chrono_literals;

namespace {

using wall_clock = std::chrono::system_clock;

// "Wed, 21 Oct 2015 07:28:00 GMT"
const wall_clock::time_point oct_2015 = wall_clock::time_point{}
                                        + std::chrono::seconds(1445412480);

request req(const std::string& method = "GET") {
  return request{method, "http://example.org/x", {}, {}};
}

response status(long st, header_list headers = {}) {
  response r;
  r.status = st;
  r.headers = std::move(headers);
  return r;
}

response failed(failure f) {
  response r;
  r.error = f;
  return r;
}

record rec(std::string key, std::string body, uint64_t seq = 0) {
  record r;
  r.key = std::move(key);
  r.body = std::move(body);
  r.seq = seq;
  return r;
}

// `n` delays for the same attempt number from one policy.
std::vector<duration> delays(retry_policy& p, uint32_t attempt, int n) {
  std::vector<duration> out;
  for (int i = 0; i < n; ++i) {
    auto d = p.next(req(), status(503), attempt, oct_2015);
    REQUIRE(d);
    out.push_back(*d);
  }
  return out;
}

double mean_ms(const std::vector<duration>& ds) {
  double sum = 0;
  for (auto d : ds)
    sum += std::chrono::duration<double, std::milli>(d).count();
  return sum / static_cast<double>(ds.size());
}

} // namespace

// -- retries ---------------------------------------------------------------------

TEST_CASE("http policy: check(retry_options) refuses what cannot work") {
  CHECK(check(retry_options{}) == "");
  retry_options o;
  o.max_attempts = 0;
  CHECK(check(o).find("max_attempts") != std::string::npos);
  o = {};
  o.backoff = 0ms;
  CHECK(check(o).find("backoff") != std::string::npos);
  o = {};
  o.max_backoff = 100ms;
  CHECK(check(o).find("max_backoff") != std::string::npos);
  o = {};
  o.retry_after_cap = 0s;
  CHECK(check(o).find("retry_after_cap") != std::string::npos);
  o = {};
  o.retry_on = {"connect", "timeout", "low_speed", "reset", "404", "599",
                "4xx", "5xx"};
  CHECK(check(o) == "");
  for (std::string bad : {"6xx", "200", "3xx", "connection", "50", "5000", ""}) {
    CAPTURE(bad);
    o.retry_on = {"connect", bad};
    auto err = check(o);
    CHECK(err.find("'" + bad + "'") != std::string::npos);
    CHECK(err.find("valid:") != std::string::npos);
  }
}

TEST_CASE("http policy: idempotent methods") {
  for (auto m : {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE", "get"})
    CHECK_MESSAGE(idempotent(m), m);
  for (auto m : {"POST", "PATCH", "post", "CONNECT", "PURGE", ""})
    CHECK_MESSAGE(!idempotent(m), m);
}

TEST_CASE("http policy: retryable follows the retry_on list") {
  retry_options o;
  o.retry_on = {"connect", "timeout", "low_speed", "reset", "429", "5xx"};
  retry_policy p{o, 1};
  CHECK(p.retryable(req(), failed(failure::connect)));
  CHECK(p.retryable(req(), failed(failure::timeout)));
  CHECK(p.retryable(req(), failed(failure::low_speed)));
  CHECK(p.retryable(req(), failed(failure::reset)));
  for (auto f : {failure::tls, failure::forbidden_address,
                 failure::forbidden_scheme, failure::too_large,
                 failure::too_many_redirects, failure::bad_request,
                 failure::cancelled, failure::other}) {
    CAPTURE(static_cast<int>(f));
    CHECK(!p.retryable(req(), failed(f)));
  }
  CHECK(p.retryable(req(), status(429)));
  CHECK(p.retryable(req(), status(500)));
  CHECK(p.retryable(req(), status(503)));
  CHECK(p.retryable(req(), status(599)));
  CHECK(!p.retryable(req(), status(404)));
  CHECK(!p.retryable(req(), status(400)));
  CHECK(!p.retryable(req(), status(200)));
  CHECK(!p.retryable(req(), status(301)));

  SUBCASE("an entry missing from the list is not retried") {
    o.retry_on = {"404"};
    retry_policy q{o, 1};
    CHECK(q.retryable(req(), status(404)));
    CHECK(!q.retryable(req(), status(429)));
    CHECK(!q.retryable(req(), status(500)));
    CHECK(!q.retryable(req(), failed(failure::connect)));
    CHECK(!q.retryable(req(), failed(failure::low_speed)));
  }
  SUBCASE("4xx is a class") {
    o.retry_on = {"4xx"};
    retry_policy q{o, 1};
    CHECK(q.retryable(req(), status(400)));
    CHECK(q.retryable(req(), status(499)));
    CHECK(!q.retryable(req(), status(500)));
  }
  SUBCASE("the default list") {
    retry_policy q{retry_options{}, 1};
    CHECK(q.retryable(req(), failed(failure::connect)));
    CHECK(!q.retryable(req(), failed(failure::low_speed)));
    CHECK(q.retryable(req(), status(429)));
    CHECK(q.retryable(req(), status(502)));
    CHECK(!q.retryable(req(), status(404)));
  }
}

TEST_CASE("http policy: POST and PATCH are retried only with retry_unsafe") {
  retry_options o;
  retry_policy p{o, 1};
  CHECK(!p.retryable(req("POST"), status(503)));
  CHECK(!p.retryable(req("PATCH"), failed(failure::connect)));
  CHECK(!p.next(req("POST"), status(503), 1, oct_2015));
  CHECK(p.retryable(req("PUT"), status(503)));
  CHECK(p.retryable(req("DELETE"), failed(failure::reset)));
  o.retry_unsafe = true;
  retry_policy q{o, 1};
  CHECK(q.retryable(req("POST"), status(503)));
  CHECK(q.retryable(req("PATCH"), failed(failure::connect)));
  CHECK(q.next(req("POST"), status(503), 1, oct_2015));
  // retry_unsafe widens the methods, not the list.
  CHECK(!q.retryable(req("POST"), status(404)));
}

TEST_CASE("http policy: next stops at max_attempts and on final outcomes") {
  retry_options o;
  o.max_attempts = 3;
  retry_policy p{o, 7};
  CHECK(p.next(req(), status(500), 1, oct_2015));
  CHECK(p.next(req(), status(500), 2, oct_2015));
  CHECK(!p.next(req(), status(500), 3, oct_2015));
  CHECK(!p.next(req(), status(500), 4, oct_2015));
  CHECK(!p.next(req(), status(404), 1, oct_2015));
  CHECK(!p.next(req(), status(200), 1, oct_2015));
  CHECK(!p.next(req(), failed(failure::tls), 1, oct_2015));
  o.max_attempts = 1;
  retry_policy once{o, 7};
  CHECK(!once.next(req(), status(500), 1, oct_2015));
}

TEST_CASE("http policy: full-jitter backoff stays in its bounds, grows, caps") {
  retry_options o;
  o.max_attempts = 100;
  o.backoff = 100ms;
  o.max_backoff = 2s;
  retry_policy p{o, 42};
  // Ceilings: 100, 200, 400, 800, 1600, then 2000 ms for ever.
  const std::vector<duration> ceilings = {100ms, 200ms, 400ms, 800ms,
                                          1600ms, 2s, 2s};
  std::vector<double> means;
  for (uint32_t attempt = 1; attempt <= ceilings.size(); ++attempt) {
    CAPTURE(attempt);
    auto ds = delays(p, attempt, 2000);
    auto ceiling = ceilings[attempt - 1];
    duration lo = ceiling, hi = 0ms;
    for (auto d : ds) {
      CHECK(d >= 0ms);
      CHECK(d <= ceiling);
      lo = std::min(lo, d);
      hi = std::max(hi, d);
    }
    // Full jitter spreads over the whole range, not a band near the top.
    CHECK(lo < ceiling / 10);
    CHECK(hi > ceiling * 9 / 10);
    // Uniform: the mean is half the ceiling (2000 draws: within 10%).
    auto expected = std::chrono::duration<double, std::milli>(ceiling).count() / 2;
    CHECK(mean_ms(ds) == doctest::Approx(expected).epsilon(0.1));
    means.push_back(mean_ms(ds));
  }
  for (size_t i = 1; i < 5; ++i)
    CHECK(means[i] > means[i - 1] * 1.5); // doubling in expectation
  // Far past the cap, and no overflow of backoff * 2^n.
  for (auto d : delays(p, 99, 200))
    CHECK(d <= 2s);
  retry_options big = o;
  big.max_attempts = 1000000;
  big.backoff = 1s;
  big.max_backoff = max_duration;
  retry_policy q{big, 1};
  auto d = q.next(req(), status(500), 999999, oct_2015);
  REQUIRE(d);
  CHECK(*d >= 0ms);
  CHECK(*d <= max_duration);
}

TEST_CASE("http policy: backoff is deterministic for a seed") {
  retry_options o;
  o.max_attempts = 10;
  retry_policy a{o, 1234};
  retry_policy b{o, 1234};
  retry_policy c{o, 1235};
  std::vector<duration> da, db, dc;
  for (uint32_t attempt = 1; attempt < 10; ++attempt) {
    da.push_back(*a.next(req(), status(500), attempt, oct_2015));
    db.push_back(*b.next(req(), status(500), attempt, oct_2015));
    dc.push_back(*c.next(req(), status(500), attempt, oct_2015));
  }
  CHECK(da == db);
  CHECK(da != dc);
}

TEST_CASE("http policy: Retry-After on 429 and 503 wins, up to the cap") {
  retry_options o;
  o.max_attempts = 5;
  o.backoff = 100ms;
  o.max_backoff = 1s;
  o.retry_after_cap = 30s;
  retry_policy p{o, 3};
  CHECK(p.next(req(), status(429, {{"Retry-After", "2"}}), 1, oct_2015) == 2s);
  CHECK(p.next(req(), status(503, {{"retry-after", " 7 "}}), 1, oct_2015) == 7s);
  CHECK(p.next(req(), status(429, {{"RETRY-AFTER", "0"}}), 4, oct_2015) == 0s);
  // An HTTP-date, relative to the wall clock's now.
  CHECK(p.next(req(),
               status(503, {{"Retry-After", "Wed, 21 Oct 2015 07:28:12 GMT"}}),
               1, oct_2015)
        == 12s);
  CHECK(p.next(req(),
               status(503, {{"Retry-After", "Wed, 21 Oct 2015 07:27:00 GMT"}}),
               1, oct_2015)
        == 0s);
  // The cap itself is allowed; beyond it the outcome is final.
  CHECK(p.next(req(), status(429, {{"Retry-After", "30"}}), 1, oct_2015) == 30s);
  CHECK(!p.next(req(), status(429, {{"Retry-After", "31"}}), 1, oct_2015));
  CHECK(!p.next(req(),
                status(503, {{"Retry-After", "Wed, 21 Oct 2015 08:28:00 GMT"}}),
                1, oct_2015));
  // Attempts exhausted: final, whatever the server says.
  CHECK(!p.next(req(), status(429, {{"Retry-After", "1"}}), 5, oct_2015));
  // Malformed: ignored, the usual backoff (<= 100ms on the first retry).
  for (int i = 0; i < 50; ++i) {
    auto d = p.next(req(), status(429, {{"Retry-After", "soon"}}), 1, oct_2015);
    REQUIRE(d);
    CHECK(*d <= 100ms);
  }
  // Only 429 and 503 carry it: on a 500 it is not honoured.
  for (int i = 0; i < 50; ++i) {
    auto d = p.next(req(), status(500, {{"Retry-After", "7"}}), 1, oct_2015);
    REQUIRE(d);
    CHECK(*d <= 100ms);
  }
  // Not retryable at all: Retry-After does not make it so.
  o.retry_on = {"5xx"};
  retry_policy q{o, 3};
  CHECK(!q.next(req(), status(429, {{"Retry-After", "1"}}), 1, oct_2015));
  CHECK(!q.next(req("POST"), status(503, {{"Retry-After", "1"}}), 1, oct_2015));
}

TEST_CASE("http policy: parse_retry_after") {
  auto now = oct_2015;
  CHECK(parse_retry_after("120", now) == 120s);
  CHECK(parse_retry_after("0", now) == 0s);
  CHECK(parse_retry_after(" 5 ", now) == 5s);
  CHECK(parse_retry_after("\t5", now) == 5s);
  CHECK(parse_retry_after("007", now) == 7s);
  // IMF-fixdate.
  CHECK(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now) == 0s);
  CHECK(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now - 90s) == 90s);
  CHECK(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now - 1500ms)
        == 1500ms);
  CHECK(parse_retry_after("Thu, 22 Oct 2015 07:28:00 GMT", now) == 24h);
  CHECK(parse_retry_after("Sun, 06 Nov 1994 08:49:37 GMT", now) == 0s); // past
  CHECK(parse_retry_after("Thu, 29 Feb 2024 12:00:00 GMT",
                          wall_clock::time_point{} + std::chrono::seconds(1709207990))
        == 10s);
  CHECK(parse_retry_after("Thu, 01 Jan 1970 00:00:00 GMT", now) == 0s);
  // Far future: saturates (a date as nanoseconds would overflow).
  CHECK(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now) == max_duration);
  CHECK(parse_retry_after("99999999999999999999999", now) == max_duration);
  // The obsolete forms RFC 9110 asks recipients to accept.
  auto nov_1994 = wall_clock::time_point{} + std::chrono::seconds(784111777);
  CHECK(parse_retry_after("Sunday, 06-Nov-94 08:49:47 GMT", nov_1994) == 10s);
  CHECK(parse_retry_after("Sun Nov  6 08:49:47 1994", nov_1994) == 10s);
  CHECK(parse_retry_after("Sun Nov 16 08:49:37 1994", nov_1994) == 240h);
  // Malformed.
  for (auto bad : {"", "   ", "-1", "-0", "+5", "1.5", "5s", "1e3", "soon",
                   "Wed, 21 Oct 2015 07:28:00", "Wed, 21 Oct 2015 07:28:00 UTC",
                   "Wed, 21 Oct 2015 07:28:00 GMT junk",
                   "Wed, 21 Okt 2015 07:28:00 GMT", "Xyz, 21 Oct 2015 07:28:00 GMT",
                   "Wed, 1 Oct 2015 07:28:00 GMT", "Wed, 21 Oct 15 07:28:00 GMT",
                   "Wed, 31 Nov 2015 07:28:00 GMT", "Sun, 29 Feb 2015 07:28:00 GMT",
                   "Wed, 21 Oct 2015 24:00:00 GMT", "Wed, 21 Oct 2015 07:60:00 GMT",
                   "Wed,21 Oct 2015 07:28:00 GMT", "Wed, 00 Oct 2015 07:28:00 GMT",
                   "wed, 21 oct 2015 07:28:00 gmt"}) {
    CAPTURE(bad);
    CHECK(!parse_retry_after(bad, now));
  }
}

// -- circuit breaker -----------------------------------------------------------------

TEST_CASE("http policy: circuit breaker opens, refuses, probes once, closes") {
  using v = circuit_breaker::verdict;
  using st = circuit_breaker::state;
  const std::string h = "http://a.example";
  circuit_breaker cb{3, 10s};
  time_point t0{};
  CHECK(cb.admit(h, t0) == v::go);
  cb.failure(h, t0);
  cb.failure(h, t0);
  CHECK(cb.of(h) == st::closed);
  CHECK(cb.admit(h, t0) == v::go);
  cb.failure(h, t0 + 1s); // the third in a row opens it
  CHECK(cb.of(h) == st::open);
  CHECK(cb.admit(h, t0 + 1s) == v::refuse);
  CHECK(cb.admit(h, t0 + 11s - 1ns) == v::refuse);
  // Another host is not affected.
  CHECK(cb.admit("http://b.example", t0 + 2s) == v::go);
  CHECK(cb.of("http://b.example") == st::closed);
  // After the cooldown: exactly one probe, the others refused meanwhile.
  CHECK(cb.admit(h, t0 + 11s) == v::probe);
  CHECK(cb.of(h) == st::half_open);
  CHECK(cb.admit(h, t0 + 11s) == v::refuse);
  CHECK(cb.admit(h, t0 + 60s) == v::refuse);
  cb.success(h);
  CHECK(cb.of(h) == st::closed);
  CHECK(cb.admit(h, t0 + 61s) == v::go);
  // The count starts again from zero.
  cb.failure(h, t0 + 62s);
  cb.failure(h, t0 + 62s);
  CHECK(cb.of(h) == st::closed);
  cb.failure(h, t0 + 62s);
  CHECK(cb.of(h) == st::open);
}

TEST_CASE("http policy: a failed probe reopens the circuit for a new cooldown") {
  using v = circuit_breaker::verdict;
  using st = circuit_breaker::state;
  const std::string h = "https://api.example";
  circuit_breaker cb{1, 5s};
  time_point t0{};
  cb.failure(h, t0);
  CHECK(cb.of(h) == st::open);
  CHECK(cb.admit(h, t0 + 5s) == v::probe);
  cb.failure(h, t0 + 8s); // the probe failed 3 s later
  CHECK(cb.of(h) == st::open);
  CHECK(cb.admit(h, t0 + 12s) == v::refuse); // cooldown counts from 8 s
  CHECK(cb.admit(h, t0 + 13s - 1ns) == v::refuse);
  CHECK(cb.admit(h, t0 + 13s) == v::probe);
  CHECK(cb.admit(h, t0 + 13s) == v::refuse);
  cb.success(h);
  CHECK(cb.admit(h, t0 + 13s) == v::go);
}

TEST_CASE("http policy: a success in the closed state resets the count") {
  using st = circuit_breaker::state;
  const std::string h = "http://a";
  circuit_breaker cb{3, 1s};
  time_point t0{};
  cb.failure(h, t0);
  cb.failure(h, t0);
  cb.success(h);
  cb.failure(h, t0);
  cb.failure(h, t0);
  CHECK(cb.of(h) == st::closed);
  cb.failure(h, t0);
  CHECK(cb.of(h) == st::open);
}

TEST_CASE("http policy: stragglers, abandoned probes, failures 0") {
  using v = circuit_breaker::verdict;
  using st = circuit_breaker::state;
  const std::string h = "http://a";
  time_point t0{};
  SUBCASE("a failure while open does not extend the cooldown") {
    circuit_breaker cb{2, 10s};
    cb.failure(h, t0);
    cb.failure(h, t0);
    cb.failure(h, t0 + 9s); // admitted before the opening, ended later
    CHECK(cb.admit(h, t0 + 10s) == v::probe);
  }
  SUBCASE("a success while open does not close it") {
    circuit_breaker cb{2, 10s};
    cb.failure(h, t0);
    cb.failure(h, t0);
    cb.success(h);
    CHECK(cb.of(h) == st::open);
    CHECK(cb.admit(h, t0 + 1s) == v::refuse);
  }
  SUBCASE("an abandoned probe lets the next admit probe") {
    circuit_breaker cb{1, 10s};
    cb.failure(h, t0);
    CHECK(cb.admit(h, t0 + 10s) == v::probe);
    CHECK(cb.admit(h, t0 + 10s) == v::refuse);
    cb.abandon(h);
    CHECK(cb.of(h) == st::half_open);
    CHECK(cb.admit(h, t0 + 10s) == v::probe);
    CHECK(cb.admit(h, t0 + 10s) == v::refuse);
  }
  SUBCASE("failures 0: never opens") {
    circuit_breaker cb{0, 10s};
    for (int i = 0; i < 1000; ++i)
      cb.failure(h, t0);
    CHECK(cb.of(h) == st::closed);
    CHECK(cb.admit(h, t0) == v::go);
  }
}

// -- adaptive concurrency --------------------------------------------------------

namespace {

// One window: `limit()` completions with the same RTT; the last one is
// push-back if `pushed`.
void window(adaptive_limit& a, duration rtt, bool pushed = false) {
  auto n = a.limit();
  for (size_t i = 0; i < n; ++i)
    a.observe(rtt, pushed && i + 1 == n);
}

} // namespace

TEST_CASE("http policy: adaptive limit grows on noisy but steady latency") {
  // URLs of different cost: 20 to 80 ms, in a fixed pseudo-random order, the
  // same mix all along. Latency is not growing, so neither may the limit
  // shrink for long: it must reach its ceiling.
  // (Counting every wobble of a small window's mean as a rise, it took
  // twice as long to reach 30.)
  adaptive_limit a{4, 40};
  uint64_t x = 88172645463325252ull;
  size_t max_seen = 0;
  int reached_30 = -1;
  for (int i = 0; i < 4000; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    a.observe(std::chrono::milliseconds(20 + static_cast<int>(x % 61)), false);
    max_seen = std::max(max_seen, a.limit());
    if (reached_30 < 0 && a.limit() >= 30)
      reached_30 = i;
  }
  CHECK(max_seen == 40);
  CHECK(reached_30 >= 0);
  CHECK(reached_30 < 600);
  CHECK(a.limit() >= 30);
  // Latency that does grow (the same mix, three times slower) still
  // shrinks it at the next window.
  auto before = a.limit();
  for (size_t i = 0; i < before; ++i) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    a.observe(std::chrono::milliseconds(3 * (20 + static_cast<int>(x % 61))),
              false);
  }
  CHECK(a.limit() < before);
}

TEST_CASE("http policy: adaptive limit grows to the ceiling on steady RTT") {
  adaptive_limit a{4, 12};
  CHECK(a.limit() == 4);
  window(a, 20ms); // the first window only measures
  CHECK(a.limit() == 4);
  // Within a window nothing changes.
  for (int i = 0; i < 3; ++i)
    a.observe(20ms, false);
  CHECK(a.limit() == 4);
  a.observe(20ms, false);
  CHECK(a.limit() == 5);
  std::vector<size_t> seen;
  for (int i = 0; i < 20; ++i) {
    window(a, 20ms);
    seen.push_back(a.limit());
  }
  const std::vector<size_t> expected = {6,  7,  8,  9,  10, 11, 12, 12, 12, 12,
                                        12, 12, 12, 12, 12, 12, 12, 12, 12, 12};
  CHECK(seen == expected);
  // Jitter within the tolerance (+10%) still counts as holding.
  adaptive_limit b{1, 3};
  window(b, 100ms);
  window(b, 109ms);
  CHECK(b.limit() == 2);
  window(b, 95ms);
  CHECK(b.limit() == 3);
}

TEST_CASE("http policy: adaptive limit shrinks on rising RTT, not below 1") {
  adaptive_limit a{20, 50};
  window(a, 10ms);
  window(a, 10ms);
  CHECK(a.limit() == 21);
  // RTT up by half each window: *0.9 each time, floored.
  double rtt = 10;
  std::vector<size_t> seen;
  for (int i = 0; i < 40; ++i) {
    rtt *= 1.5;
    window(a, std::chrono::duration_cast<duration>(
                std::chrono::duration<double, std::milli>(rtt)));
    seen.push_back(a.limit());
  }
  CHECK(seen[0] == 18); // floor(21 * 0.9)
  CHECK(seen[1] == 16);
  CHECK(seen[2] == 14);
  for (size_t i = 1; i < seen.size(); ++i) {
    CHECK(seen[i] >= 1);
    CHECK((seen[i] < seen[i - 1] || seen[i] == 1));
  }
  CHECK(seen.back() == 1);
  // Once the RTT settles at its new level the EWMA catches up and the limit
  // grows again.
  for (int i = 0; i < 10; ++i)
    window(a, std::chrono::duration_cast<duration>(
                std::chrono::duration<double, std::milli>(rtt)));
  CHECK(a.limit() > 1);
}

TEST_CASE("http policy: adaptive limit halves on push-back (429, 503)") {
  adaptive_limit a{40, 64};
  window(a, 10ms);
  CHECK(a.limit() == 40);
  std::vector<size_t> seen;
  for (int i = 0; i < 8; ++i) {
    window(a, 10ms, true); // one 429 in the window is enough
    seen.push_back(a.limit());
  }
  CHECK(seen == std::vector<size_t>{20, 10, 5, 2, 1, 1, 1, 1});
  // Push-back in the very first window counts too.
  adaptive_limit b{8, 8};
  window(b, 10ms, true);
  CHECK(b.limit() == 4);
  // ... and it recovers additively once the pressure is gone.
  window(b, 10ms);
  window(b, 10ms);
  CHECK(b.limit() == 6);
}

TEST_CASE("http policy: adaptive limit keeps 1 <= limit <= ceiling") {
  CHECK(adaptive_limit{0, 5}.limit() == 1);
  CHECK(adaptive_limit{9, 5}.limit() == 5);
  CHECK(adaptive_limit{3, 0}.limit() == 1);
  adaptive_limit a{1, 1};
  for (int i = 0; i < 100; ++i) {
    a.observe(std::chrono::milliseconds(1 + (i * 37) % 200), i % 7 == 0);
    CHECK(a.limit() == 1);
  }
  adaptive_limit b{2, 5};
  for (int i = 0; i < 1000; ++i) {
    b.observe(std::chrono::milliseconds(1 + (i * 37) % 200), i % 13 == 0);
    CHECK(b.limit() >= 1);
    CHECK(b.limit() <= 5);
  }
}

// -- hosts ---------------------------------------------------------------------------

TEST_CASE("http policy: host_of") {
  CHECK(host_of("http://Example.org:8080/x") == "http://example.org:8080");
  CHECK(host_of("https://a.b/c") == "https://a.b");
  CHECK(host_of("https://a.b") == "https://a.b");
  CHECK(host_of("HTTPS://A.B:443/c?d#e") == "https://a.b");
  CHECK(host_of("http://a.b:80") == "http://a.b");
  CHECK(host_of("http://a.b:443/") == "http://a.b:443");
  CHECK(host_of("https://a.b:80/") == "https://a.b:80");
  CHECK(host_of("http://a.b:08080/") == "http://a.b:8080");
  CHECK(host_of("http://a.b:/x") == "http://a.b");
  CHECK(host_of("http://a.b?q=1") == "http://a.b");
  CHECK(host_of("http://a.b#frag") == "http://a.b");
  CHECK(host_of("http://user:pw@Host.example:81/p") == "http://host.example:81");
  CHECK(host_of("http://u@v@host/p") == "http://host");
  CHECK(host_of("http://[::1]:8080/x") == "http://[::1]:8080");
  CHECK(host_of("http://[::1]:80/x") == "http://[::1]");
  CHECK(host_of("http://[FE80::1]/") == "http://[fe80::1]");
  CHECK(host_of("http://127.0.0.1:9000") == "http://127.0.0.1:9000");
  for (auto bad : {"", "example.org", "example.org/x", "/x", "http:/a.b",
                   "http://", "http:///x", "http://:80/", "http://user@/x",
                   "http://a.b:port/", "http://a.b:0/", "http://a.b:65536/",
                   "http://a.b:123456/", "http://[::1/", "http://[]/",
                   "http://[::1]x/", "http://a b/", "http://a\tb/", "://a.b",
                   "1http://a.b"}) {
    CAPTURE(bad);
    CHECK(host_of(bad) == "");
  }
}

// -- templates -----------------------------------------------------------------------

TEST_CASE("http policy: text_template renders placeholders and escapes") {
  std::string err;
  auto t = text_template::parse(
    "https://api.example/{key}/items?seq={seq}&page={page}&who={attr.who}"
    "&{{lit}}",
    err);
  REQUIRE_MESSAGE(t, err);
  auto r = rec("a b/c", "ignored", 17);
  r.set_attr("who", "x&y=z");
  CHECK(t->render(r, 3)
        == "https://api.example/a b/c/items?seq=17&page=3&who=x&y=z&{lit}");
  CHECK(t->render(r, 3, true)
        == "https://api.example/a%20b%2Fc/items?seq=17&page=3&who=x%26y%3Dz"
           "&{lit}");
  // A missing attribute renders as nothing.
  auto bare = rec("k", "b");
  CHECK(t->render(bare, 0, true)
        == "https://api.example/k/items?seq=0&page=0&who=&{lit}");
  CHECK(t->uses("key"));
  CHECK(t->uses("seq"));
  CHECK(t->uses("page"));
  CHECK(t->uses("attr.who"));
  CHECK(!t->uses("body"));
  CHECK(!t->uses("attr.other"));
  CHECK(!t->uses("lit"));
}

TEST_CASE("http policy: text_template percent-encodes per RFC 3986") {
  std::string err;
  auto t = text_template::parse("q={body}", err);
  REQUIRE(t);
  CHECK(t->render(rec("", "AZaz09-._~"), 0, true) == "q=AZaz09-._~");
  CHECK(t->render(rec("", "a+b c%d"), 0, true) == "q=a%2Bb%20c%25d");
  CHECK(t->render(rec("", "caf\xc3\xa9"), 0, true) == "q=caf%C3%A9");
  CHECK(t->render(rec("", "?#[]@!$&'()*,;=:/"), 0, true)
        == "q=%3F%23%5B%5D%40%21%24%26%27%28%29%2A%2C%3B%3D%3A%2F");
  CHECK(t->render(rec("", std::string("\0\x7f", 2)), 0, true) == "q=%00%7F");
  CHECK(t->render(rec("", "a b"), 0, false) == "q=a b");
}

TEST_CASE("http policy: a template that is one placeholder is used as is") {
  std::string err;
  auto t = text_template::parse("{body}", err);
  REQUIRE(t);
  auto r = rec("", "https://example.org/a b?x=1&y=%20");
  CHECK(t->render(r, 0, true) == "https://example.org/a b?x=1&y=%20");
  auto u = text_template::parse("{attr.url}", err);
  REQUIRE(u);
  r.set_attr("url", "http://h/p?q=a&b");
  CHECK(u->render(r, 0, true) == "http://h/p?q=a&b");
  // Anything more than the placeholder alone is encoded.
  auto v = text_template::parse("{body}/", err);
  REQUIRE(v);
  CHECK(v->render(rec("", "a b"), 0, true) == "a%20b/");
  // Literal text only, and the empty template.
  auto w = text_template::parse("a {{b}} c", err);
  REQUIRE(w);
  CHECK(w->render(rec("", "x"), 0, true) == "a {b} c");
  auto e = text_template::parse("", err);
  REQUIRE(e);
  CHECK(e->render(rec("k", "x")) == "");
}

TEST_CASE("http policy: text_template parse errors") {
  std::string err;
  CHECK(!text_template::parse("https://h/{nope}", err));
  CHECK(err.find("'{nope}'") != std::string::npos);
  CHECK(err.find("column 11") != std::string::npos);
  for (auto valid : {"{body}", "{key}", "{seq}", "{page}", "{attr.NAME}"})
    CHECK_MESSAGE(err.find(valid) != std::string::npos, valid);
  err.clear();
  CHECK(!text_template::parse("{attr.}", err));
  CHECK(err.find("'{attr.}'") != std::string::npos);
  err.clear();
  CHECK(!text_template::parse("{Body}", err));
  CHECK(err.find("unknown placeholder") != std::string::npos);
  err.clear();
  CHECK(!text_template::parse("a{body", err));
  CHECK(err.find("unclosed") != std::string::npos);
  CHECK(err.find("column 2") != std::string::npos);
  err.clear();
  CHECK(!text_template::parse("{a{body}", err));
  CHECK(err.find("unclosed") != std::string::npos);
  err.clear();
  CHECK(!text_template::parse("x{}", err));
  CHECK(err.find("empty") != std::string::npos);
  err.clear();
  CHECK(!text_template::parse("a}b", err));
  CHECK(err.find("'}'") != std::string::npos);
  err.clear();
  CHECK(!text_template::parse("{{{", err));
  CHECK(err.find("unclosed") != std::string::npos);
  // The escapes are fine next to placeholders.
  err.clear();
  auto t = text_template::parse("{{{key}}}", err);
  REQUIRE_MESSAGE(t, err);
  CHECK(t->render(rec("k", "")) == "{k}");
}

TEST_CASE("http policy: the breaker forgets closed hosts, not open ones, when full") {
  circuit_breaker b{2, 30s};
  auto t = time_point{} + 1h;
  b.failure("http://a", t);
  b.failure("http://a", t); // open
  REQUIRE(b.of("http://a") == circuit_breaker::state::open);
  for (int i = 0; i < 25000; ++i)
    b.failure("http://h" + std::to_string(i), t); // one failure each: closed
  CHECK(b.tracked() <= 10000);
  CHECK(b.of("http://a") == circuit_breaker::state::open);
  CHECK(b.admit("http://a", t + 1s) == circuit_breaker::verdict::refuse);
}
