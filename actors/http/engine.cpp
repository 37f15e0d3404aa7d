// http::engine: one libcurl multi handle driven by one I/O thread.
//
// Why a thread of its own rather than CAF's multiplexer: CAF 0.17's
// multiplexer is private to libcaf_io brokers and has no public way to watch
// foreign sockets such as curl's, so it cannot host them. A dedicated thread
// keeps every actor handler non-blocking (curl never runs on a scheduler
// thread) and isolates curl's DNS resolution, which may block, from the actors.
//
// Threads: submit() and cancel() append to a mutex-guarded list and wake the
// I/O thread (curl_multi_wakeup); everything else — easy handles, the
// transfer table, the callbacks — belongs to the I/O thread alone.

#include "troupe/actors/http.hpp"

#include <curl/curl.h>

#include <algorithm>
#include <arpa/inet.h>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <exception>
#include <mutex>
#include <utility>
#include <netinet/in.h>
#include <pthread.h>
#include <stdexcept>
#include <sys/socket.h>
#include <thread>
#include <unordered_map>
#include "troupe/log.hpp"

namespace troupe::http {

const char* to_string(failure f) {
  switch (f) {
    case failure::none:
      return "none";
    case failure::connect:
      return "connect";
    case failure::timeout:
      return "timeout";
    case failure::low_speed:
      return "low_speed";
    case failure::reset:
      return "reset";
    case failure::too_large:
      return "too_large";
    case failure::forbidden_address:
      return "forbidden_address";
    case failure::forbidden_scheme:
      return "forbidden_scheme";
    case failure::too_many_redirects:
      return "too_many_redirects";
    case failure::tls:
      return "tls";
    case failure::cancelled:
      return "cancelled";
    case failure::bad_request:
      return "bad_request";
    case failure::other:
      return "other";
  }
  return "other";
}

namespace {

char lower(char c) {
  return static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
}

bool iequals(const std::string& a, const std::string& b) {
  return a.size() == b.size()
         && std::equal(a.begin(), a.end(), b.begin(),
                       [](char x, char y) { return lower(x) == lower(y); });
}

} // namespace

std::string response::header(const std::string& name) const {
  for (const auto& [key, value] : headers)
    if (iequals(key, name))
      return value;
  return "";
}

std::string check(const transport_options& o) {
  if (o.connect_timeout <= duration::zero())
    return "connect_timeout must be > 0";
  if (o.timeout <= duration::zero())
    return "timeout must be > 0";
  if (o.low_speed_limit < 1)
    return "low_speed_limit must be >= 1 byte/s";
  if (o.low_speed_time <= duration::zero())
    return "low_speed_time must be > 0";
  if (o.max_redirects < 0 || o.max_redirects > 5)
    return "max_redirects must be between 0 and 5";
  if (o.max_body_bytes == 0)
    return "max_body_bytes must be > 0";
  if (o.max_per_host < 1)
    return "max_per_host must be >= 1";
  if (o.max_connections < 1)
    return "max_connections must be >= 1";
  return "";
}

namespace {

void global_init() {
  static std::once_flag once;
  std::call_once(once, [] {
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
      throw std::runtime_error("http: curl_global_init failed");
  });
}

// Milliseconds for curl's long options: at least 1 (0 would mean "none").
long to_ms(duration d) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return static_cast<long>(std::clamp<int64_t>(ms, 1, LONG_MAX));
}

// LOW_SPEED_TIME is whole seconds: round up, at least 1.
long to_seconds_up(duration d) {
  auto s = std::chrono::duration_cast<std::chrono::seconds>(
             d + std::chrono::seconds(1) - duration(1))
             .count();
  return static_cast<long>(std::clamp<int64_t>(s, 1, LONG_MAX));
}

duration from_us(curl_off_t us) {
  return std::chrono::microseconds(us);
}

// -- the private-address guard ------------------------------------------------

bool in_v4(uint32_t addr, uint32_t net, int bits) {
  uint32_t mask = bits == 0 ? 0 : ~uint32_t{0} << (32 - bits);
  return (addr & mask) == (net & mask);
}

constexpr uint32_t v4(uint32_t a, uint32_t b, uint32_t c, uint32_t d) {
  return a << 24 | b << 16 | c << 8 | d;
}

// Host order.
bool forbidden_v4(uint32_t a) {
  return in_v4(a, v4(10, 0, 0, 0), 8) || in_v4(a, v4(172, 16, 0, 0), 12)
         || in_v4(a, v4(192, 168, 0, 0), 16) || in_v4(a, v4(127, 0, 0, 0), 8)
         || in_v4(a, v4(169, 254, 0, 0), 16) || in_v4(a, v4(0, 0, 0, 0), 8)
         || in_v4(a, v4(100, 64, 0, 0), 10)
         || in_v4(a, v4(198, 18, 0, 0), 15)  // benchmarking networks
         || in_v4(a, v4(224, 0, 0, 0), 4)    // multicast
         || in_v4(a, v4(240, 0, 0, 0), 4);   // reserved, broadcast
}

bool forbidden_v6(const unsigned char* b) {
  static const unsigned char zero[16] = {};
  // ::ffff:a.b.c.d (mapped) and ::a.b.c.d (compatible, deprecated) carry an
  // IPv4 address that the kernel would connect to.
  bool ten_zero = std::memcmp(b, zero, 10) == 0;
  if (ten_zero && b[10] == 0xff && b[11] == 0xff)
    return forbidden_v4(v4(b[12], b[13], b[14], b[15]));
  if (ten_zero && b[10] == 0 && b[11] == 0) {
    // :: and ::1 are unspecified and loopback; other ::a.b.c.d compatible.
    if (std::memcmp(b, zero, 15) == 0 && (b[15] == 0 || b[15] == 1))
      return true;
    return forbidden_v4(v4(b[12], b[13], b[14], b[15]));
  }
  // NAT64 (64:ff9b::/96) and 6to4 (2002::/16) reach the IPv4 address they
  // carry: judge that one (a known way around guards that look at v6 only).
  static const unsigned char nat64[12] = {0x00, 0x64, 0xff, 0x9b};
  if (std::memcmp(b, nat64, 12) == 0)
    return forbidden_v4(v4(b[12], b[13], b[14], b[15]));
  if (b[0] == 0x20 && b[1] == 0x02)
    return forbidden_v4(v4(b[2], b[3], b[4], b[5]));
  if (b[0] == 0xff) // ff00::/8 multicast
    return true;
  if ((b[0] & 0xfe) == 0xfc) // fc00::/7 unique local
    return true;
  if (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) // fe80::/10 link-local
    return true;
  return false;
}

// "" when the address may be connected to, else its text.
std::string refused_address(const curl_sockaddr* a) {
  char text[INET6_ADDRSTRLEN] = "?";
  if (a->family == AF_INET && a->addrlen >= sizeof(sockaddr_in)) {
    sockaddr_in in{};
    std::memcpy(&in, &a->addr, sizeof in);
    if (!forbidden_v4(ntohl(in.sin_addr.s_addr)))
      return "";
    inet_ntop(AF_INET, &in.sin_addr, text, sizeof text);
    return text;
  }
  if (a->family == AF_INET6 && a->addrlen >= sizeof(sockaddr_in6)) {
    sockaddr_in6 in6{};
    std::memcpy(&in6, &a->addr, sizeof in6);
    if (!forbidden_v6(in6.sin6_addr.s6_addr))
      return "";
    inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof text);
    return text;
  }
  // Another family (a Unix socket cannot come from an http(s) URL): refuse.
  return "(address family " + std::to_string(a->family) + ")";
}

bool valid_method(const std::string& m) {
  return !m.empty() && m.size() <= 32
         && std::all_of(m.begin(), m.end(), [](char c) {
              return std::isalnum(static_cast<unsigned char>(c)) || c == '-'
                     || c == '_';
            });
}

bool has_line_break(const std::string& s) {
  return s.find_first_of("\r\n") != std::string::npos
         || s.find('\0') != std::string::npos;
}

std::string trim(const std::string& s) {
  auto b = s.find_first_not_of(" \t\r\n");
  if (b == std::string::npos)
    return "";
  auto e = s.find_last_not_of(" \t\r\n");
  return s.substr(b, e - b + 1);
}

// The scheme of an absolute URL, lower-case, or "" when it has none.
std::string scheme_of(const std::string& url) {
  auto colon = url.find("://");
  if (colon == std::string::npos || colon == 0)
    return "";
  std::string s = url.substr(0, colon);
  for (char c : s)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '+' && c != '-'
        && c != '.')
      return "";
  std::transform(s.begin(), s.end(), s.begin(), lower);
  return s;
}

} // namespace

struct engine::impl {
  struct transfer {
    uint64_t id = 0;
    request req;
    done_fn done;
    CURL* easy = nullptr;
    curl_slist* headers = nullptr;
    response resp;
    uint64_t max_body = 0;
    bool block_private = false;
    bool body_too_large = false;
    std::string refused;                      // the guard's last refusal
    std::chrono::steady_clock::time_point start;
    char errbuf[CURL_ERROR_SIZE] = {};
  };

  struct submission {
    uint64_t id;
    request req;
    done_fn done;
  };

  // Idle easy handles kept for reuse (curl_easy_reset keeps their caches).
  static constexpr size_t max_idle_handles = 256;

  transport_options opts;
  CURLM* multi = nullptr;
  std::thread io;

  std::mutex mtx; // guards the next four
  std::vector<submission> submissions;
  std::vector<uint64_t> cancels;
  bool stopping = false;
  // A wake-up is on its way and the lists were not taken since: a burst of
  // submits costs one curl_multi_wakeup (a pipe write), not one each.
  bool woken = false;

  std::atomic<uint64_t> next_id{1};
  std::atomic<uint64_t> submitted{0};
  std::atomic<uint64_t> completed{0};
  std::atomic<uint64_t> connections{0};

  // I/O thread only.
  std::unordered_map<uint64_t, std::unique_ptr<transfer>> running;
  std::vector<CURL*> idle;

  explicit impl(transport_options o) : opts(std::move(o)) {
  }

  // -- curl callbacks (I/O thread) ---------------------------------------------

  static size_t on_body(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<transfer*>(user);
    size_t bytes = size * n;
    if (t->resp.body.size() + bytes > t->max_body) {
      t->body_too_large = true;
      return 0; // CURLE_WRITE_ERROR
    }
    t->resp.body.append(data, bytes);
    return bytes;
  }

  static size_t on_header(char* data, size_t size, size_t n, void* user) {
    auto* t = static_cast<transfer*>(user);
    size_t bytes = size * n;
    std::string line(data, bytes);
    if (line.compare(0, 5, "HTTP/") == 0) {
      // A new response (after a redirect or a 1xx): only the final one's
      // headers and body count.
      t->resp.headers.clear();
      t->resp.body.clear();
      return bytes;
    }
    if (!line.empty() && (line[0] == ' ' || line[0] == '\t')) {
      // An obsolete folded continuation of the previous header.
      if (!t->resp.headers.empty())
        t->resp.headers.back().second += " " + trim(line);
      return bytes;
    }
    auto colon = line.find(':');
    if (colon == std::string::npos || colon == 0)
      return bytes; // the blank line that ends the block
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(), lower);
    t->resp.headers.emplace_back(std::move(name), trim(line.substr(colon + 1)));
    return bytes;
  }

  // Every connection curl opens — including each redirect's and each address
  // of a host tried in turn — passes here, so the guard sees them all.
  static curl_socket_t on_open_socket(void* user, curlsocktype,
                                      curl_sockaddr* addr) {
    auto* t = static_cast<transfer*>(user);
    if (t->block_private) {
      std::string refused = refused_address(addr);
      if (!refused.empty()) {
        t->refused = refused;
        return CURL_SOCKET_BAD;
      }
    }
    // CLOEXEC: a process the owner spawns must not inherit the connection.
    return ::socket(addr->family, addr->socktype | SOCK_CLOEXEC,
                    addr->protocol);
  }

  // -- transfers (I/O thread) --------------------------------------------------

  CURL* take_easy() {
    if (!idle.empty()) {
      CURL* e = idle.back();
      idle.pop_back();
      curl_easy_reset(e);
      return e;
    }
    return curl_easy_init();
  }

  void release_easy(CURL* e) {
    if (idle.size() < max_idle_handles)
      idle.push_back(e);
    else
      curl_easy_cleanup(e);
  }

  // Sets the transfer's options; a failure and its text when it cannot run.
  std::pair<failure, std::string> configure(transfer& t) {
    const request& r = t.req;
    std::string scheme = scheme_of(r.url);
    if (scheme.empty())
      return {failure::bad_request, "the URL has no scheme: " + r.url};
    if (scheme != "http" && scheme != "https")
      return {failure::forbidden_scheme,
              "scheme " + scheme + " is not allowed (http, https only)"};
    if (!valid_method(r.method))
      return {failure::bad_request, "bad method: " + r.method};
    for (const auto& [name, value] : r.headers) {
      if (name.empty() || has_line_break(name) || has_line_break(value)
          || name.find(':') != std::string::npos)
        return {failure::bad_request, "bad header: " + name};
      // curl sends "Name;" as a header with an empty value.
      std::string line = value.empty() ? name + ";" : name + ": " + value;
      curl_slist* next = curl_slist_append(t.headers, line.c_str());
      if (next == nullptr)
        return {failure::other, "out of memory"};
      t.headers = next;
    }
    bool has_expect = std::any_of(r.headers.begin(), r.headers.end(),
                                  [](const auto& h) {
                                    return iequals(h.first, "expect");
                                  });
    if (!has_expect) {
      // No "Expect: 100-continue" round trip before a large body.
      curl_slist* next = curl_slist_append(t.headers, "Expect:");
      if (next == nullptr)
        return {failure::other, "out of memory"};
      t.headers = next;
    }

    CURL* e = t.easy;
    curl_easy_setopt(e, CURLOPT_PRIVATE, &t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t.errbuf);
    curl_easy_setopt(e, CURLOPT_URL, r.url.c_str());
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    if (opts.max_redirects > 0) {
      curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
      curl_easy_setopt(e, CURLOPT_MAXREDIRS, static_cast<long>(opts.max_redirects));
    } else {
      curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    }
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    // A resolver thread stuck in getaddrinfo is left behind instead of
    // joined: the join would stall every transfer of this I/O thread.
    curl_easy_setopt(e, CURLOPT_QUICK_EXIT, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, to_ms(opts.connect_timeout));
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, to_ms(opts.timeout));
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT,
                     static_cast<long>(std::min<int64_t>(opts.low_speed_limit, LONG_MAX)));
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, to_seconds_up(opts.low_speed_time));
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, opts.verify_tls ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, opts.verify_tls ? 2L : 0L);
    if (!opts.ca_file.empty())
      curl_easy_setopt(e, CURLOPT_CAINFO, opts.ca_file.c_str());
    // "" disables proxies, including those named by the environment.
    curl_easy_setopt(e, CURLOPT_PROXY, opts.proxy.c_str());
    curl_easy_setopt(e, CURLOPT_SUPPRESS_CONNECT_HEADERS, 1L);
    curl_easy_setopt(e, CURLOPT_ACCEPT_ENCODING, ""); // all curl decodes
    curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE,
                     static_cast<curl_off_t>(std::min<uint64_t>(
                       opts.max_body_bytes, uint64_t{1} << 62)));
    curl_easy_setopt(e, CURLOPT_USERAGENT, opts.user_agent.c_str());
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t.headers);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &impl::on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &impl::on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &t);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, &impl::on_open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, &t);

    bool with_body = !r.body.empty() || r.method == "POST" || r.method == "PUT"
                     || r.method == "PATCH";
    if (r.method == "HEAD") {
      curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else if (with_body) {
      // POSTFIELDS points into t.req, which outlives the transfer.
      curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE,
                       static_cast<curl_off_t>(r.body.size()));
      curl_easy_setopt(e, CURLOPT_POSTFIELDS, r.body.data());
      if (r.method != "POST")
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r.method.c_str());
    } else if (r.method != "GET") {
      curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, r.method.c_str());
    }
    return {failure::none, ""};
  }

  void start(submission s) {
    auto t = std::make_unique<transfer>();
    t->id = s.id;
    t->req = std::move(s.req);
    t->done = std::move(s.done);
    t->start = std::chrono::steady_clock::now();
    t->max_body = opts.max_body_bytes;
    t->block_private = opts.block_private;
    t->resp.url = t->req.url;
    t->easy = take_easy();
    if (t->easy == nullptr) {
      fail(std::move(t), failure::other, "curl_easy_init failed");
      return;
    }
    auto [why, text] = configure(*t);
    if (why != failure::none) {
      fail(std::move(t), why, text);
      return;
    }
    CURLMcode rc = curl_multi_add_handle(multi, t->easy);
    if (rc != CURLM_OK) {
      fail(std::move(t), failure::other, curl_multi_strerror(rc));
      return;
    }
    uint64_t id = t->id;
    running.emplace(id, std::move(t));
  }

  // Frees the transfer's curl resources and calls its done.
  void finish(std::unique_ptr<transfer> t) {
    if (t->easy != nullptr)
      release_easy(t->easy);
    t->easy = nullptr;
    curl_slist_free_all(t->headers);
    t->headers = nullptr;
    completed.fetch_add(1, std::memory_order_relaxed);
    done_fn done = std::move(t->done);
    response resp = std::move(t->resp);
    t.reset();
    try {
      done(std::move(resp));
    } catch (const std::exception& ex) {
      TROUPE_LOG(error, "", "http: a completion threw: " << ex.what());
    } catch (...) {
      troupe::log(troupe::log_level::error, "", "http: a completion threw");
    }
  }

  void fail(std::unique_ptr<transfer> t, failure why, std::string text) {
    t->resp.error = why;
    t->resp.error_text = std::move(text);
    t->resp.total = std::chrono::steady_clock::now() - t->start;
    finish(std::move(t));
  }

  failure classify(CURLcode rc, const transfer& t) const {
    switch (rc) {
      case CURLE_OK:
        return failure::none;
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_RESOLVE_PROXY:
      case CURLE_COULDNT_CONNECT:
        return t.refused.empty() ? failure::connect
                                 : failure::forbidden_address;
      case CURLE_OPERATION_TIMEDOUT:
        // Both deadlines and the low-speed abort end here; only the latter
        // says "too slow".
        return std::strstr(t.errbuf, "too slow") != nullptr
                 ? failure::low_speed
                 : failure::timeout;
      case CURLE_RECV_ERROR:
      case CURLE_SEND_ERROR:
      case CURLE_GOT_NOTHING:
      case CURLE_PARTIAL_FILE:
      case CURLE_HTTP2:
      case CURLE_HTTP2_STREAM:
        return failure::reset;
      case CURLE_WRITE_ERROR:
        return t.body_too_large ? failure::too_large : failure::other;
      case CURLE_FILESIZE_EXCEEDED:
        return failure::too_large;
      case CURLE_TOO_MANY_REDIRECTS:
        return failure::too_many_redirects;
      case CURLE_UNSUPPORTED_PROTOCOL:
        return failure::forbidden_scheme;
      case CURLE_URL_MALFORMAT:
        return failure::bad_request;
      case CURLE_SSL_CONNECT_ERROR:
      case CURLE_PEER_FAILED_VERIFICATION:
      case CURLE_SSL_CERTPROBLEM:
      case CURLE_SSL_CIPHER:
      case CURLE_SSL_CACERT_BADFILE:
      case CURLE_SSL_ISSUER_ERROR:
      case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
      case CURLE_SSL_INVALIDCERTSTATUS:
      case CURLE_SSL_CRL_BADFILE:
      case CURLE_SSL_SHUTDOWN_FAILED:
      case CURLE_SSL_ENGINE_NOTFOUND:
      case CURLE_SSL_ENGINE_SETFAILED:
      case CURLE_SSL_ENGINE_INITFAILED:
      case CURLE_USE_SSL_FAILED:
        return failure::tls;
      default:
        return failure::other;
    }
  }

  void complete(transfer* raw, CURLcode rc) {
    auto it = running.find(raw->id);
    if (it == running.end())
      return;
    std::unique_ptr<transfer> t = std::move(it->second);
    running.erase(it);
    CURL* e = t->easy;
    curl_multi_remove_handle(multi, e);

    response& r = t->resp;
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    r.status = status;
    char* url = nullptr;
    if (curl_easy_getinfo(e, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK
        && url != nullptr)
      r.url = url;
    long redirects = 0;
    curl_easy_getinfo(e, CURLINFO_REDIRECT_COUNT, &redirects);
    r.redirects = static_cast<uint32_t>(std::max(0L, redirects));
    curl_off_t us = 0;
    if (curl_easy_getinfo(e, CURLINFO_CONNECT_TIME_T, &us) == CURLE_OK)
      r.connect_time = from_us(us);
    if (curl_easy_getinfo(e, CURLINFO_STARTTRANSFER_TIME_T, &us) == CURLE_OK)
      r.first_byte = from_us(us);
    if (curl_easy_getinfo(e, CURLINFO_TOTAL_TIME_T, &us) == CURLE_OK)
      r.total = from_us(us);
    long opened = 0;
    curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &opened);
    connections.fetch_add(static_cast<uint64_t>(std::max(0L, opened)),
                          std::memory_order_relaxed);

    r.curl_code = static_cast<int>(rc);
    r.error = classify(rc, *t);
    if (r.error != failure::none) {
      if (r.error == failure::forbidden_address)
        r.error_text = "refused private, loopback or link-local address "
                       + t->refused + " (block_private)";
      else if (r.error == failure::too_large && t->body_too_large)
        r.error_text = "body above max_body_bytes ("
                       + std::to_string(opts.max_body_bytes) + ")";
      else
        r.error_text = t->errbuf[0] != '\0' ? std::string(t->errbuf)
                                            : curl_easy_strerror(rc);
      r.body.clear(); // no partial bodies: a failure carries none
    }
    finish(std::move(t));
  }

  void cancel_one(uint64_t id) {
    auto it = running.find(id);
    if (it == running.end())
      return; // completed already (or never started)
    std::unique_ptr<transfer> t = std::move(it->second);
    running.erase(it);
    // Removing an unfinished transfer makes curl close its connection: the
    // server sees the client go.
    curl_multi_remove_handle(multi, t->easy);
    t->resp.status = 0;
    t->resp.headers.clear();
    t->resp.body.clear();
    fail(std::move(t), failure::cancelled, "cancelled");
  }

  void loop() {
    // Signals go to other threads (SIGPIPE from a write on a closed
    // connection stays pending here and write returns EPIPE instead).
    sigset_t all;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, nullptr);

    std::vector<submission> batch;
    std::vector<uint64_t> to_cancel;
    for (;;) {
      {
        std::lock_guard<std::mutex> guard(mtx);
        if (stopping)
          break;
        batch.swap(submissions);
        to_cancel.swap(cancels);
        woken = false;
      }
      // Submissions first: a cancel always follows its submission.
      for (auto& s : batch)
        start(std::move(s));
      batch.clear();
      for (uint64_t id : to_cancel)
        cancel_one(id);
      to_cancel.clear();

      int still_running = 0;
      curl_multi_perform(multi, &still_running);
      int left = 0;
      while (CURLMsg* msg = curl_multi_info_read(multi, &left)) {
        if (msg->msg != CURLMSG_DONE)
          continue;
        transfer* t = nullptr;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &t);
        if (t != nullptr)
          complete(t, msg->data.result);
      }
      // Waits for socket activity, curl's next timeout, or a wakeup; the
      // 1 s cap only bounds the wait when curl has nothing to time.
      curl_multi_poll(multi, nullptr, 0, 1000, nullptr);
    }
    abort_all();
  }

  // Destruction: transfers end without their done; connections close.
  void abort_all() {
    for (auto& [id, t] : running) {
      curl_multi_remove_handle(multi, t->easy);
      curl_easy_cleanup(t->easy);
      curl_slist_free_all(t->headers);
    }
    running.clear();
    for (CURL* e : idle)
      curl_easy_cleanup(e);
    idle.clear();
    std::lock_guard<std::mutex> guard(mtx);
    submissions.clear();
    cancels.clear();
  }
};

engine::engine(transport_options opts) {
  std::string why = check(opts);
  if (!why.empty())
    throw std::invalid_argument("http: " + why);
  global_init();
  impl_ = std::make_unique<impl>(std::move(opts));
  impl_->multi = curl_multi_init();
  if (impl_->multi == nullptr)
    throw std::runtime_error("http: curl_multi_init failed");
  const transport_options& o = impl_->opts;
  curl_multi_setopt(impl_->multi, CURLMOPT_MAX_HOST_CONNECTIONS, o.max_per_host);
  curl_multi_setopt(impl_->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, o.max_connections);
  // The pool of idle connections kept for reuse: as many as may be open.
  curl_multi_setopt(impl_->multi, CURLMOPT_MAXCONNECTS, o.max_connections);
  if (!o.verify_tls)
    troupe::log(troupe::log_level::warn, "",
        "http: TLS verification is off (verify_tls: false): servers are not "
        "authenticated");
  impl_->io = std::thread([this] { impl_->loop(); });
}

// Not from one of this engine's done functions: the I/O thread cannot join
// itself (std::thread::join would throw, and a destructor terminates).
engine::~engine() {
  {
    std::lock_guard<std::mutex> guard(impl_->mtx);
    impl_->stopping = true;
  }
  curl_multi_wakeup(impl_->multi);
  impl_->io.join();
  curl_multi_cleanup(impl_->multi);
}

// The submission list is emptied on every turn of the I/O loop; how many
// transfers run is bounded by the owner (http_fetch's max_in_flight), and
// those above the connection caps wait in curl's own queue — with their
// timeout running, since it counts from submission.
uint64_t engine::submit(request req, done_fn done) {
  uint64_t id = impl_->next_id.fetch_add(1, std::memory_order_relaxed);
  bool wake = false;
  {
    std::lock_guard<std::mutex> guard(impl_->mtx);
    impl_->submissions.push_back({id, std::move(req), std::move(done)});
    impl_->submitted.fetch_add(1, std::memory_order_relaxed);
    wake = !std::exchange(impl_->woken, true);
  }
  if (wake)
    curl_multi_wakeup(impl_->multi);
  return id;
}

void engine::cancel(uint64_t id) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> guard(impl_->mtx);
    impl_->cancels.push_back(id);
    wake = !std::exchange(impl_->woken, true);
  }
  if (wake)
    curl_multi_wakeup(impl_->multi);
}

engine::stats engine::snapshot() const {
  stats s;
  s.completed = impl_->completed.load(std::memory_order_relaxed);
  s.submitted = impl_->submitted.load(std::memory_order_relaxed);
  s.in_flight = s.submitted >= s.completed ? s.submitted - s.completed : 0;
  s.connections = impl_->connections.load(std::memory_order_relaxed);
  return s;
}

const transport_options& engine::options() const {
  return impl_->opts;
}

} // namespace troupe::http
