// The http_fetch stage's decisions, free of CAF and of clocks: retries,
// Retry-After, the per-host circuit breaker, the adaptive concurrency limit,
// hosts of URLs and request templates. See policy.hpp for the contracts.
#include "policy.hpp"

#include <algorithm>
#include <cmath>
#include <iterator>
#include <cstddef>
#include <string_view>
#include <utility>

namespace troupe::http {

namespace {

char lower(char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

bool is_digit(char c) {
  return c >= '0' && c <= '9';
}

bool is_alpha(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

bool iequals(const std::string& a, const std::string& b) {
  if (a.size() != b.size())
    return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i]))
      return false;
  return true;
}

// A retry_on status: three digits, 400..599.
std::optional<long> retry_status(const std::string& s) {
  if (s.size() != 3 || !is_digit(s[0]) || !is_digit(s[1]) || !is_digit(s[2]))
    return std::nullopt;
  long v = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
  if (v < 400 || v > 599)
    return std::nullopt;
  return v;
}

// response::header belongs to the engine; the policy reads its own way.
const std::string* find_header(const response& res, const char* name) {
  for (auto& [k, v] : res.headers)
    if (iequals(k, name))
      return &v;
  return nullptr;
}

} // namespace

// -- retries -------------------------------------------------------------------

bool idempotent(const std::string& method) {
  for (const char* m : {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})
    if (iequals(method, m))
      return true;
  return false;
}

std::string check(const retry_options& o) {
  if (o.max_attempts < 1)
    return "max_attempts must be at least 1 (1: no retry)";
  if (o.backoff <= duration::zero())
    return "backoff must be positive";
  if (o.max_backoff < o.backoff)
    return "max_backoff must be at least backoff";
  if (o.retry_after_cap <= duration::zero())
    return "retry_after_cap must be positive";
  for (auto& e : o.retry_on) {
    if (e == "connect" || e == "timeout" || e == "low_speed" || e == "reset"
        || e == "4xx" || e == "5xx" || retry_status(e))
      continue;
    return "unknown retry_on entry '" + e
           + "' (valid: connect, timeout, low_speed, reset, a status 400..599"
             ", 4xx, 5xx)";
  }
  return {};
}

retry_policy::retry_policy(retry_options o, uint64_t seed)
  : opts_(std::move(o)), rng_(seed) {
  for (auto& e : opts_.retry_on) {
    if (e == "connect")
      on_connect_ = true;
    else if (e == "timeout")
      on_timeout_ = true;
    else if (e == "low_speed")
      on_low_speed_ = true;
    else if (e == "reset")
      on_reset_ = true;
    else if (e == "4xx")
      on_4xx_ = true;
    else if (e == "5xx")
      on_5xx_ = true;
    else if (auto st = retry_status(e))
      on_status_.push_back(*st);
    // Anything else was refused by check(); ignored here.
  }
}

bool retry_policy::retryable(const request& req, const response& res) const {
  if (!opts_.retry_unsafe && !idempotent(req.method))
    return false;
  switch (res.error) {
    case failure::none:
      break;
    case failure::connect:
      return on_connect_;
    case failure::timeout:
      return on_timeout_;
    case failure::low_speed:
      return on_low_speed_;
    case failure::reset:
      return on_reset_;
    default:
      // tls, forbidden_*, too_large, too_many_redirects, bad_request,
      // cancelled, other: the same request would fail the same way.
      return false;
  }
  auto st = res.status;
  if (st < 400 || st > 599)
    return false;
  if (std::find(on_status_.begin(), on_status_.end(), st) != on_status_.end())
    return true;
  return st < 500 ? on_4xx_ : on_5xx_;
}

std::optional<duration>
retry_policy::next(const request& req, const response& res,
                   uint32_t attempts_made,
                   std::chrono::system_clock::time_point wall_now) {
  if (!retryable(req, res) || attempts_made >= opts_.max_attempts)
    return std::nullopt;
  if (res.error == failure::none && (res.status == 429 || res.status == 503)) {
    if (auto h = find_header(res, "retry-after")) {
      if (auto ra = parse_retry_after(*h, wall_now)) {
        if (*ra > opts_.retry_after_cap)
          return std::nullopt;
        return *ra;
      }
    }
  }
  // Full jitter: uniform in [0, ceiling], ceiling = backoff * 2^(n-1) capped;
  // doubled step by step so it cannot overflow.
  duration ceiling = opts_.backoff;
  for (uint32_t i = 1; i < attempts_made && ceiling < opts_.max_backoff; ++i)
    ceiling = ceiling > opts_.max_backoff / 2 ? opts_.max_backoff : ceiling * 2;
  ceiling = std::min(ceiling, opts_.max_backoff);
  // The top 53 bits of mt19937_64 as a fraction in [0, 1]: the engine's
  // output is fixed by the standard, unlike uniform_*_distribution's.
  double u = static_cast<double>(rng_() >> 11) / static_cast<double>((uint64_t{1} << 53) - 1);
  auto ns = static_cast<double>(ceiling.count()) * u;
  return std::min(ceiling, duration{static_cast<duration::rep>(ns)});
}

// -- Retry-After -------------------------------------------------------------------

namespace {

// Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
// (era-based day counting: 400-year eras of 146097 days, years from March).
int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2 ? 1 : 0;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

bool leap(int64_t y) {
  return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

unsigned days_in(int64_t y, unsigned m) {
  static constexpr unsigned days[] = {31, 28, 31, 30, 31, 30,
                                      31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : days[m - 1];
}

// The civil year of a time (for RFC 850's two-digit years).
int64_t year_of(std::chrono::system_clock::time_point t) {
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(
                t.time_since_epoch())
                .count();
  int64_t days = secs >= 0 ? secs / 86400 : (secs - 86399) / 86400;
  // civil_from_days, year only.
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const auto doe = static_cast<unsigned>(days - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return static_cast<int64_t>(yoe) + era * 400 + (m <= 2 ? 1 : 0);
}

// A cursor over the date text; each take_* consumes or fails.
struct cursor {
  const std::string& s;
  size_t i = 0;

  bool done() const {
    return i == s.size();
  }
  bool lit(const char* text) {
    size_t j = i;
    for (; *text; ++text, ++j)
      if (j >= s.size() || s[j] != *text)
        return false;
    i = j;
    return true;
  }
  // Exactly n digits (n_max > n: between n and n_max).
  std::optional<int> digits(size_t n, size_t n_max = 0) {
    n_max = std::max(n, n_max);
    size_t j = i;
    int v = 0;
    while (j < s.size() && j - i < n_max && is_digit(s[j]))
      v = v * 10 + (s[j++] - '0');
    if (j - i < n)
      return std::nullopt;
    i = j;
    return v;
  }
  std::string word() {
    size_t j = i;
    while (j < s.size() && is_alpha(s[j]))
      ++j;
    std::string w = s.substr(i, j - i);
    i = j;
    return w;
  }
};

constexpr const char* short_days[] = {"Mon", "Tue", "Wed", "Thu",
                                      "Fri", "Sat", "Sun"};
constexpr const char* long_days[] = {"Monday", "Tuesday",  "Wednesday",
                                     "Thursday", "Friday", "Saturday",
                                     "Sunday"};
constexpr const char* months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

template <size_t N>
bool one_of(const std::string& w, const char* const (&names)[N]) {
  for (auto n : names)
    if (w == n)
      return true;
  return false;
}

std::optional<unsigned> month_of(const std::string& w) {
  for (unsigned m = 0; m < 12; ++m)
    if (w == months[m])
      return m + 1;
  return std::nullopt;
}

// "HH:MM:SS" into seconds of the day.
std::optional<int64_t> time_of_day(cursor& c) {
  auto h = c.digits(2);
  if (!h || !c.lit(":"))
    return std::nullopt;
  auto mi = c.digits(2);
  if (!mi || !c.lit(":"))
    return std::nullopt;
  auto se = c.digits(2);
  // 60: a leap second, as the RFC's grammar allows.
  if (!se || *h > 23 || *mi > 59 || *se > 60)
    return std::nullopt;
  return int64_t{*h} * 3600 + *mi * 60 + *se;
}

// Seconds since the Unix epoch of an HTTP-date (RFC 9110 5.6.7).
std::optional<int64_t>
parse_http_date(const std::string& s,
                std::chrono::system_clock::time_point wall_now) {
  cursor c{s};
  auto day_name = c.word();
  int64_t year = 0;
  unsigned month = 0;
  int day = 0;
  std::optional<int64_t> tod;
  if (one_of(day_name, short_days) && c.lit(", ")) {
    // IMF-fixdate: Sun, 06 Nov 1994 08:49:37 GMT
    auto d = c.digits(2);
    if (!d || !c.lit(" "))
      return std::nullopt;
    auto m = month_of(c.word());
    if (!m || !c.lit(" "))
      return std::nullopt;
    auto y = c.digits(4);
    if (!y || !c.lit(" "))
      return std::nullopt;
    tod = time_of_day(c);
    if (!tod || !c.lit(" GMT"))
      return std::nullopt;
    year = *y, month = *m, day = *d;
  } else if (one_of(day_name, long_days) && c.lit(", ")) {
    // RFC 850: Sunday, 06-Nov-94 08:49:37 GMT
    auto d = c.digits(2);
    if (!d || !c.lit("-"))
      return std::nullopt;
    auto m = month_of(c.word());
    if (!m || !c.lit("-"))
      return std::nullopt;
    auto yy = c.digits(2);
    if (!yy || !c.lit(" "))
      return std::nullopt;
    tod = time_of_day(c);
    if (!tod || !c.lit(" GMT"))
      return std::nullopt;
    // A two-digit year more than 50 years ahead is the past century's.
    auto now_year = year_of(wall_now);
    year = now_year - now_year % 100 + *yy;
    if (year > now_year + 50)
      year -= 100;
    month = *m, day = *d;
  } else if (one_of(day_name, short_days) && c.lit(" ")) {
    // asctime: Sun Nov  6 08:49:37 1994
    auto m = month_of(c.word());
    if (!m || !c.lit(" "))
      return std::nullopt;
    c.lit(" "); // a one-digit day is padded with a space
    auto d = c.digits(1, 2);
    if (!d || !c.lit(" "))
      return std::nullopt;
    tod = time_of_day(c);
    if (!tod || !c.lit(" "))
      return std::nullopt;
    auto y = c.digits(4);
    if (!y)
      return std::nullopt;
    year = *y, month = *m, day = *d;
  } else {
    return std::nullopt;
  }
  if (!c.done() || day < 1 || static_cast<unsigned>(day) > days_in(year, month))
    return std::nullopt;
  return days_from_civil(year, month, static_cast<unsigned>(day)) * 86400
         + *tod;
}

} // namespace

std::optional<duration>
parse_retry_after(const std::string& value,
                  std::chrono::system_clock::time_point wall_now) {
  // Optional whitespace around a field value (RFC 9110 5.5).
  size_t b = value.find_first_not_of(" \t");
  if (b == std::string::npos)
    return std::nullopt;
  size_t e = value.find_last_not_of(" \t");
  std::string v = value.substr(b, e - b + 1);
  if (std::all_of(v.begin(), v.end(), is_digit)) {
    constexpr int64_t max_secs = max_duration.count() / 1'000'000'000;
    int64_t secs = 0;
    for (char ch : v) {
      secs = secs * 10 + (ch - '0');
      if (secs >= max_secs) // saturate: a huge wait is still a huge wait
        return max_duration;
    }
    return std::chrono::seconds(secs);
  }
  auto at = parse_http_date(v, wall_now);
  if (!at)
    return std::nullopt;
  // In whole seconds first: a date in year 9999 as a system_clock
  // time_point (nanoseconds) would overflow.
  using std::chrono::seconds;
  auto now_s = std::chrono::floor<seconds>(wall_now);
  auto ahead = *at - now_s.time_since_epoch().count();
  if (ahead > max_duration.count() / 1'000'000'000)
    return max_duration;
  auto left = std::chrono::duration_cast<duration>(seconds(ahead))
              - std::chrono::duration_cast<duration>(wall_now - now_s);
  return std::max(duration::zero(), left);
}

// -- circuit breaker -----------------------------------------------------------

circuit_breaker::circuit_breaker(uint32_t failures, duration cooldown)
  : failures_(failures), cooldown_(cooldown) {
}

circuit_breaker::verdict circuit_breaker::admit(const std::string& host,
                                                time_point now) {
  auto i = hosts_.find(host);
  if (failures_ == 0 || i == hosts_.end())
    return verdict::go;
  auto& h = i->second;
  switch (h.st) {
    case state::closed:
      return verdict::go;
    case state::open:
      if (now - h.opened < cooldown_)
        return verdict::refuse;
      h.st = state::half_open;
      h.probing = true;
      return verdict::probe;
    case state::half_open:
      if (h.probing)
        return verdict::refuse;
      h.probing = true; // the last probe was abandoned: another one
      return verdict::probe;
  }
  return verdict::refuse;
}

void circuit_breaker::success(const std::string& host) {
  auto i = hosts_.find(host);
  if (i == hosts_.end() || i->second.st == state::open)
    return;
  // Closed (reset the count) or half-open (the probe succeeded: close). A
  // closed host with no failures needs no entry: the map holds only hosts
  // that are failing.
  hosts_.erase(i);
}

void circuit_breaker::failure(const std::string& host, time_point now) {
  if (failures_ == 0)
    return;
  // Bounded: a stream of ever new failing hosts (a crawl) must not grow the
  // map for ever. Closed entries (counting towards an opening) go first.
  if (hosts_.size() >= max_hosts && !hosts_.count(host)) {
    for (auto i = hosts_.begin(); i != hosts_.end();)
      i = i->second.st == state::closed ? hosts_.erase(i) : std::next(i);
    if (hosts_.size() >= max_hosts)
      hosts_.erase(hosts_.begin()); // all open: forget one (fails open)
  }
  auto& h = hosts_[host];
  switch (h.st) {
    case state::closed:
      if (++h.consecutive >= failures_) {
        h.st = state::open;
        h.opened = now;
      }
      break;
    case state::open:
      break; // a straggler from before the opening: the cooldown stands
    case state::half_open:
      h.st = state::open;
      h.opened = now;
      h.probing = false;
      break;
  }
}

void circuit_breaker::abandon(const std::string& host) {
  auto i = hosts_.find(host);
  if (i != hosts_.end() && i->second.st == state::half_open)
    i->second.probing = false;
}

circuit_breaker::state circuit_breaker::of(const std::string& host) const {
  auto i = hosts_.find(host);
  return i == hosts_.end() ? state::closed : i->second.st;
}

// -- adaptive concurrency --------------------------------------------------------

namespace {

constexpr double ewma_alpha = 0.4;     // weight of the newest window
constexpr double rtt_tolerance = 0.10; // RTT may exceed its average by this
constexpr double rtt_decrease = 0.9;   // multiplicative decrease on RTT
constexpr double push_decrease = 0.5;  // ... and on push-back

size_t scaled(size_t limit, double factor) {
  auto v = static_cast<size_t>(std::floor(static_cast<double>(limit) * factor));
  return std::max<size_t>(1, v);
}

} // namespace

adaptive_limit::adaptive_limit(size_t initial, size_t ceiling)
  : limit_(std::clamp<size_t>(initial, 1, std::max<size_t>(1, ceiling))),
    ceiling_(std::max<size_t>(1, ceiling)) {
}

void adaptive_limit::observe(duration rtt, bool pushed_back) {
  auto ms = std::max(0.0, std::chrono::duration<double, std::milli>(rtt).count());
  if (has_avg_) {
    auto d = std::abs(ms - avg_ms_);
    dev_ms_ = has_dev_ ? 0.75 * dev_ms_ + 0.25 * d : d;
    has_dev_ = true;
  }
  ++seen_;
  window_ms_ += ms;
  window_pushed_ = window_pushed_ || pushed_back;
  if (seen_ < limit_)
    return;
  auto n = static_cast<double>(seen_);
  auto mean = window_ms_ / n;
  // A window's mean wanders by about sd / sqrt(n) even when nothing
  // changed (URLs of different cost; sd ~ 1.25 mean deviation): only a rise
  // beyond twice that, and beyond the tolerance, is latency growing.
  // At most half the average: a steady rise inflates the deviation too, and
  // must still shrink the limit window after window.
  auto noise = has_dev_ ? std::min(2 * 1.25 * dev_ms_ / std::sqrt(n),
                                   0.5 * avg_ms_)
                        : 0.0;
  if (window_pushed_)
    limit_ = scaled(limit_, push_decrease);
  else if (has_avg_ && mean > avg_ms_ * (1 + rtt_tolerance) + noise)
    limit_ = scaled(limit_, rtt_decrease);
  else if (has_avg_)
    limit_ = std::min(ceiling_, limit_ + 1);
  avg_ms_ = has_avg_ ? ewma_alpha * mean + (1 - ewma_alpha) * avg_ms_ : mean;
  has_avg_ = true;
  seen_ = 0;
  window_ms_ = 0;
  window_pushed_ = false;
}

// -- hosts ---------------------------------------------------------------------------

std::string host_of(const std::string& url) {
  // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ), then "://"
  size_t i = 0;
  if (url.empty() || !is_alpha(url[0]))
    return {};
  while (i < url.size()
         && (is_alpha(url[i]) || is_digit(url[i]) || url[i] == '+'
             || url[i] == '-' || url[i] == '.'))
    ++i;
  if (url.compare(i, 3, "://") != 0)
    return {};
  std::string scheme;
  for (size_t k = 0; k < i; ++k)
    scheme += lower(url[k]);
  size_t a = i + 3;
  size_t end = url.find_first_of("/?#", a);
  std::string auth = url.substr(a, end == std::string::npos ? std::string::npos
                                                            : end - a);
  if (auto at = auth.rfind('@'); at != std::string::npos)
    auth.erase(0, at + 1);
  std::string host;
  std::string port;
  if (!auth.empty() && auth[0] == '[') {
    auto close = auth.find(']');
    if (close == std::string::npos || close == 1)
      return {};
    for (size_t k = 1; k < close; ++k) {
      char ch = auth[k];
      if (!(is_digit(ch) || is_alpha(ch) || ch == ':' || ch == '.'
            || ch == '%' || ch == '-' || ch == '_' || ch == '~'))
        return {};
    }
    host = auth.substr(0, close + 1);
    auto rest = auth.substr(close + 1);
    if (!rest.empty()) {
      if (rest[0] != ':')
        return {};
      port = rest.substr(1);
    }
  } else {
    auto colon = auth.find(':');
    host = auth.substr(0, colon);
    if (colon != std::string::npos)
      port = auth.substr(colon + 1);
    if (host.empty())
      return {};
    for (char ch : host) {
      // reg-name: unreserved, pct-encoded and sub-delims (RFC 3986 3.2.2).
      if (!(is_digit(ch) || is_alpha(ch)
            || std::string_view("-._~%!$&'()*+,;=").find(ch)
                 != std::string_view::npos))
        return {};
    }
  }
  for (auto& ch : host)
    ch = lower(ch);
  std::string out = scheme + "://" + host;
  if (port.empty()) // "host:" is allowed and means the default port
    return out;
  if (port.size() > 5 || !std::all_of(port.begin(), port.end(), is_digit))
    return {};
  auto n = std::stol(port);
  if (n < 1 || n > 65535)
    return {};
  if ((scheme == "http" && n == 80) || (scheme == "https" && n == 443))
    return out;
  return out + ":" + std::to_string(n);
}

// -- templates -----------------------------------------------------------------------

namespace {

constexpr const char* valid_placeholders
  = "{body}, {key}, {seq}, {page}, {attr.NAME}";

bool known_placeholder(const std::string& name) {
  return name == "body" || name == "key" || name == "seq" || name == "page"
         || (name.size() > 5 && name.compare(0, 5, "attr.") == 0);
}

void percent_encode(const std::string& v, std::string& out) {
  static constexpr char hex[] = "0123456789ABCDEF";
  for (char ch : v) {
    if (is_alpha(ch) || is_digit(ch) || ch == '-' || ch == '.' || ch == '_'
        || ch == '~') {
      out += ch;
    } else {
      auto b = static_cast<unsigned char>(ch);
      out += '%';
      out += hex[b >> 4];
      out += hex[b & 0xF];
    }
  }
}

} // namespace

std::optional<text_template> text_template::parse(const std::string& text,
                                                  std::string& error) {
  text_template t;
  std::string lit;
  auto col = [](size_t i) { return std::to_string(i + 1); };
  for (size_t i = 0; i < text.size(); ++i) {
    char ch = text[i];
    if (ch == '}') {
      if (i + 1 < text.size() && text[i + 1] == '}') {
        lit += '}';
        ++i;
        continue;
      }
      error = "a lone '}' at column " + col(i) + " (write '}}' for a brace)";
      return std::nullopt;
    }
    if (ch != '{') {
      lit += ch;
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '{') {
      lit += '{';
      ++i;
      continue;
    }
    auto close = text.find_first_of("{}", i + 1);
    if (close == std::string::npos || text[close] == '{') {
      error = "unclosed '{' at column " + col(i)
              + " (write '{{' for a brace)";
      return std::nullopt;
    }
    auto name = text.substr(i + 1, close - i - 1);
    if (name.empty()) {
      error = "an empty placeholder '{}' at column " + col(i) + " (valid: "
              + valid_placeholders + ")";
      return std::nullopt;
    }
    if (!known_placeholder(name)) {
      error = "unknown placeholder '{" + name + "}' at column " + col(i)
              + " (valid: " + valid_placeholders + ")";
      return std::nullopt;
    }
    if (!lit.empty())
      t.parts_.push_back({false, std::move(lit)});
    lit.clear();
    t.parts_.push_back({true, std::move(name)});
    i = close;
  }
  if (!lit.empty())
    t.parts_.push_back({false, std::move(lit)});
  return t;
}

std::string text_template::render(const record& r, uint64_t page,
                                  bool url_encode) const {
  // A template that is one placeholder is a whole URL (or body): kept as is.
  bool encode = url_encode && !(parts_.size() == 1 && parts_[0].placeholder);
  std::string out;
  for (auto& p : parts_) {
    if (!p.placeholder) {
      out += p.text;
      continue;
    }
    std::string value;
    if (p.text == "body")
      value = r.body;
    else if (p.text == "key")
      value = r.key;
    else if (p.text == "seq")
      value = std::to_string(r.seq);
    else if (p.text == "page")
      value = std::to_string(page);
    else if (auto a = r.attr(p.text.substr(5)))
      value = *a;
    if (encode)
      percent_encode(value, out);
    else
      out += value;
  }
  return out;
}

std::vector<std::string> text_template::placeholders() const {
  std::vector<std::string> out;
  for (auto& p : parts_)
    if (p.placeholder)
      out.push_back(p.text);
  return out;
}

std::vector<std::string> text_template::missing_attrs(const record& r) const {
  std::vector<std::string> out;
  for (auto& p : parts_)
    if (p.placeholder && p.text.compare(0, 5, "attr.") == 0
        && r.attr(p.text.substr(5)) == nullptr)
      out.push_back(p.text.substr(5));
  return out;
}

std::string text_template::prefix() const {
  std::string out;
  for (auto& p : parts_) {
    if (p.placeholder)
      break;
    out += p.text;
  }
  return out;
}

bool text_template::uses(const std::string& placeholder) const {
  return std::any_of(parts_.begin(), parts_.end(), [&](const part& p) {
    return p.placeholder && p.text == placeholder;
  });
}

} // namespace troupe::http
