#include "settings.hpp"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <system_error>

namespace troupe::http {

std::vector<param_spec> fetch_params() {
  return {
    {"method", param_type::choice, false, "GET", "the request's method",
     {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}, 0},
    {"headers", param_type::strings, false, "",
     "request headers as \"Name: value\"; the value is a template like url", {},
     0},
    {"connect_timeout", param_type::time_span, false, "10s",
     "deadline to connect (each attempt)", {}, 0},
    {"timeout", param_type::time_span, false, "30s",
     "deadline of a whole transfer (each attempt); always finite", {}, 0},
    {"low_speed_limit", param_type::integer, false, "1",
     "abort a transfer slower than this many bytes/s for low_speed_time", {},
     1, int64_t{1} << 40},
    {"low_speed_time", param_type::time_span, false, "30s",
     "how long a transfer may stay under low_speed_limit", {}, 0},
    {"max_redirects", param_type::integer, false, "0",
     "redirects followed (0: none; a 3xx is then the response)", {}, 0, 5},
    {"verify_tls", param_type::boolean, false, "true",
     "verify the server's certificate and name (false is logged)", {}, 0},
    {"ca_file", param_type::string, false, "",
     "a PEM file of CA certificates to trust besides the system's", {}, 0},
    {"max_body", param_type::size, false, "16MiB",
     "largest response body; a larger one fails the attempt", {}, 0},
    {"block_private", param_type::boolean, false, "true",
     "refuse private, loopback and link-local addresses (each redirect too)",
     {}, 0},
    {"max_per_host", param_type::integer, false, "",
     "connections to one host at once (default: http_fetch's max_in_flight, "
     "paginate's 8)",
     {}, 1, 100000},
    {"max_connections", param_type::integer, false, "64",
     "connections in total at once", {}, 1, 65536},
    {"proxy", param_type::string, false, "",
     "proxy URL; the environment's proxies are ignored", {}, 0},
    {"user_agent", param_type::string, false, "troupe", "User-Agent header",
     {}, 0},
    {"max_attempts", param_type::integer, false, "3",
     "attempts per request (1: no retry)", {}, 1, 100},
    {"backoff", param_type::time_span, false, "200ms",
     "first retry delay; doubles per attempt, with full jitter", {}, 0},
    {"max_backoff", param_type::time_span, false, "10s",
     "largest retry delay", {}, 0},
    {"retry_after_cap", param_type::time_span, false, "30s",
     "largest Retry-After honoured; a longer one ends the retries", {}, 0},
    {"retry_on", param_type::strings, false, "",
     "what is retried: connect, timeout, low_speed, reset, a status (429) or "
     "a class (5xx); default [connect, timeout, reset, 429, 5xx]",
     {}, 0},
    {"retry_unsafe", param_type::boolean, false, "false",
     "retry POST and PATCH too (not idempotent)", {}, 0},
    {"breaker_failures", param_type::integer, false, "5",
     "consecutive failures that open a host's circuit (0: never)", {}, 0,
     1000000},
    {"breaker_cooldown", param_type::time_span, false, "30s",
     "how long an open circuit fails fast before one probe", {}, 0},
    {"accept", param_type::strings, false, "",
     "statuses that succeed: a status (404) or a class (2xx); default [2xx]; "
     "others go to errors",
     {}, 0},
  };
}

bool valid_status_entry(const std::string& e) {
  if (e.size() != 3)
    return false;
  if (e[1] == 'x' && e[2] == 'x')
    return e[0] >= '1' && e[0] <= '5';
  return std::isdigit(static_cast<unsigned char>(e[0]))
         && std::isdigit(static_cast<unsigned char>(e[1]))
         && std::isdigit(static_cast<unsigned char>(e[2])) && e[0] >= '1'
         && e[0] <= '5';
}

fetch_settings read_fetch_settings(const param_set& p) {
  fetch_settings s;
  s.method = p.str("method");
  if (p.has("headers"))
    for (auto& h : p.strings("headers")) {
      auto colon = h.find(':');
      if (colon == std::string::npos)
        continue; // check_fetch_settings reports it
      auto value = h.substr(colon + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      s.headers.emplace_back(h.substr(0, colon), std::move(value));
    }
  auto& t = s.transport;
  t.connect_timeout = p.dur("connect_timeout");
  t.timeout = p.dur("timeout");
  t.low_speed_limit = p.integer("low_speed_limit");
  t.low_speed_time = p.dur("low_speed_time");
  t.max_redirects = static_cast<int>(p.integer("max_redirects"));
  t.verify_tls = p.boolean("verify_tls");
  if (p.has("ca_file"))
    t.ca_file = p.str("ca_file");
  t.max_body_bytes = p.bytes("max_body");
  t.block_private = p.boolean("block_private");
  if (p.has("max_per_host"))
    t.max_per_host = static_cast<long>(p.integer("max_per_host"));
  t.max_connections = static_cast<long>(p.integer("max_connections"));
  if (p.has("proxy"))
    t.proxy = p.str("proxy");
  t.user_agent = p.str("user_agent");
  // The default connect deadline must not outlast a shorter total one.
  t.connect_timeout = std::min(t.connect_timeout, t.timeout);
  auto& r = s.retry;
  r.max_attempts = static_cast<uint32_t>(p.integer("max_attempts"));
  r.backoff = p.dur("backoff");
  r.max_backoff = p.dur("max_backoff");
  r.retry_after_cap = p.dur("retry_after_cap");
  if (p.has("retry_on"))
    r.retry_on = p.strings("retry_on");
  r.retry_unsafe = p.boolean("retry_unsafe");
  s.breaker.failures = static_cast<uint32_t>(p.integer("breaker_failures"));
  s.breaker.cooldown = p.dur("breaker_cooldown");
  s.accept = p.has("accept") ? p.strings("accept")
                             : std::vector<std::string>{"2xx"};
  return s;
}

void check_template(const node_spec& n, const std::string& param,
                    std::vector<diagnostic>& errors) {
  if (!n.params.has(param))
    return;
  auto& v = n.params.get(param);
  auto texts = v.type == param_type::strings ? v.strings
                                             : std::vector<std::string>{v.text};
  for (auto& text : texts) {
    std::string why;
    if (!text_template::parse(text, why))
      errors.push_back({n.value_at(param), "'" + param + "': " + why});
  }
}

namespace {

std::vector<std::string> texts_of(const param_value& v) {
  return v.type == param_type::strings ? v.strings
                                       : std::vector<std::string>{v.text};
}

bool has_line_break(const std::string& s) {
  return s.find_first_of("\r\n") != std::string::npos;
}

} // namespace

void check_no_page(const node_spec& n, const std::string& param,
                   std::vector<diagnostic>& errors) {
  if (!n.params.has(param))
    return;
  for (auto& text : texts_of(n.params.get(param))) {
    std::string why;
    if (auto t = text_template::parse(text, why); t && t->uses("page"))
      errors.push_back({n.value_at(param),
                        "'" + param + "': {page} belongs to paginate; this "
                        "node has no pages"});
  }
}

void check_url(const node_spec& n, const std::string& param, bool paginate,
               std::vector<diagnostic>& errors) {
  if (!n.params.has(param))
    return;
  auto fail = [&](std::string why) {
    errors.push_back({n.value_at(param), "'" + param + "': " + std::move(why)});
  };
  for (auto& text : texts_of(n.params.get(param))) {
    std::string why;
    auto t = text_template::parse(text, why);
    if (!t) {
      fail(why);
      continue;
    }
    if (text.find_first_not_of(" \t") == std::string::npos) {
      fail(text.empty() ? "is empty" : "is blank");
      continue;
    }
    if (has_line_break(text)) {
      fail("has a line break");
      continue;
    }
    auto prefix = t->prefix();
    if (auto colon = prefix.find("://"); colon != std::string::npos) {
      std::string scheme;
      for (auto c : prefix.substr(0, colon))
        scheme += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (scheme != "http" && scheme != "https")
        fail("'" + scheme + "' is not http or https");
    }
    for (auto& name : t->placeholders()) {
      if (paginate && name != "page")
        fail("{" + name + "}: a paginate URL has no record to fill it from; "
             "use {page}");
      if (!paginate && name == "page")
        fail("{page} belongs to paginate; this node has no pages");
    }
  }
}

void check_fetch_settings(const node_spec& n,
                          std::vector<diagnostic>& errors) {
  auto& p = n.params;
  auto s = read_fetch_settings(p);
  auto fail = [&](const std::string& param, std::string why) {
    errors.push_back({n.value_at(param), "'" + param + "': " + std::move(why)});
  };
  for (auto param : {"connect_timeout", "timeout", "low_speed_time", "backoff",
                     "max_backoff", "retry_after_cap", "breaker_cooldown"})
    if (p.dur(param) <= duration{0})
      fail(param, "must be more than 0");
  if (s.transport.max_body_bytes == 0)
    fail("max_body", "must be more than 0");
  if (s.retry.max_backoff < s.retry.backoff)
    fail("max_backoff", "is less than 'backoff'");
  if (p.get("connect_timeout").name_where.line > 0
      && p.dur("connect_timeout") > p.dur("timeout"))
    fail("connect_timeout", "is longer than 'timeout', which bounds it");
  if (auto why = check(s.retry); !why.empty())
    fail("retry_on", why);
  for (auto& a : s.accept)
    if (!valid_status_entry(a))
      fail("accept", "'" + a + "' is neither a status (200) nor a class (2xx)");
  if (p.has("headers"))
    for (auto& h : p.strings("headers")) {
      auto colon = h.find(':');
      if (colon == std::string::npos || colon == 0)
        fail("headers", "'" + h + "' is not \"Name: value\"");
    }
  check_template(n, "headers", errors);
  for (auto param : {"user_agent", "proxy", "ca_file"})
    if (p.has(param) && (has_line_break(p.str(param))
                         || p.str(param).find('\0') != std::string::npos))
      fail(param, "has a line break or a NUL");
  if (p.has("ca_file") && !p.str("ca_file").empty()
      && !has_line_break(p.str("ca_file"))) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(p.str("ca_file"), ec))
      fail("ca_file", "'" + p.str("ca_file") + "' is not a readable file");
  }
  if (p.has("headers"))
    for (auto& h : p.strings("headers"))
      if (has_line_break(h))
        fail("headers", "'" + h.substr(0, h.find_first_of("\r\n"))
                          + "...' has a line break");
}

bool accepted(long status, const std::vector<std::string>& accept) {
  auto text = std::to_string(status);
  for (auto& a : accept) {
    if (a.size() == 3 && a[1] == 'x' && a[2] == 'x') {
      if (text.size() == 3 && text[0] == a[0])
        return true;
    } else if (a == text) {
      return true;
    }
  }
  return false;
}

} // namespace troupe::http
