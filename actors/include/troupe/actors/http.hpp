// HTTP for troupe, free of CAF: the request and response a fetch is about,
// the transport options with safe defaults, and http_engine, the libcurl
// multi handle that the http_fetch stage and the paginate source drive.
//
// One engine runs its transfers on one I/O thread of its own (curl_multi_poll,
// woken by curl_multi_wakeup when a request is submitted or cancelled): no
// thread per request, no blocking call in any actor's handler, connections
// reused across requests. Completions are called on that I/O thread; an
// owner that is an actor posts them to itself (node_calls::external()).
//
// Example:
//   troupe::http::engine web{troupe::http::transport_options{}};
//   web.submit({"GET", "https://example.org/"}, [](troupe::http::response r) {
//     // on the engine's thread: r.status, r.body, r.error ...
//   });
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "troupe/units.hpp"

namespace troupe::http {

using header_list = std::vector<std::pair<std::string, std::string>>;

struct request {
  std::string method = "GET";
  std::string url;
  header_list headers; // sent as given
  std::string body;    // sent when non-empty (or the method is POST/PUT/PATCH)
};

// Why a transfer produced no usable HTTP response (none: it did; the status
// may still be 404 or 500).
enum class failure : uint8_t {
  none,
  connect,            // DNS, refused, unreachable
  timeout,            // connect_timeout or timeout elapsed
  low_speed,          // slower than low_speed_limit for low_speed_time
  reset,              // the peer closed or reset the connection mid-transfer
  too_large,          // body above max_body_bytes
  forbidden_address,  // the guard refused a private/loopback/link-local address
  forbidden_scheme,   // a URL or a redirect to another scheme than http/https
  too_many_redirects, // above max_redirects
  tls,                // certificate or handshake refused
  cancelled,          // cancel() or the engine's destruction
  bad_request,        // the URL or method cannot be used
  other,
};

const char* to_string(failure f);

struct response {
  long status = 0;          // the final HTTP status; 0 without a response
  header_list headers;      // of the final response; names lower-case
  std::string body;         // decoded (gzip/brotli), at most max_body_bytes
  std::string url;          // effective URL (after redirects)
  failure error = failure::none;
  std::string error_text;   // libcurl's message, or the guard's reason
  int curl_code = 0;        // CURLcode, 0 when fine
  uint32_t redirects = 0;
  duration connect_time{0}; // to connected
  duration first_byte{0};   // to the first response byte
  duration total{0};        // the whole transfer

  bool transferred() const {
    return error == failure::none;
  }
  // The value of a response header (name compared case-insensitively), or "".
  std::string header(const std::string& name) const;
};

// libcurl's defaults are unsafe for a data pipeline (no total timeout, every
// protocol it knows, proxies from the environment); these are not.
struct transport_options {
  duration connect_timeout = std::chrono::seconds(10); // > 0
  duration timeout = std::chrono::seconds(30);         // whole transfer, > 0
  int64_t low_speed_limit = 1;                         // bytes/s, >= 1
  duration low_speed_time = std::chrono::seconds(30);  // > 0
  int max_redirects = 0;            // 0: redirects are not followed; <= 5
  bool verify_tls = true;           // false is explicit and logged
  std::string ca_file;              // extra CA bundle (PEM); "" system store
  uint64_t max_body_bytes = 16u << 20; // > 0
  // Refuse private (10/8, 172.16/12, 192.168/16, fc00::/7), loopback
  // (127/8, ::1), link-local (169.254/16, fe80::/10) and unspecified
  // addresses, for every connection (each redirect's too). On by default;
  // tests of loopback servers turn it off.
  bool block_private = true;
  long max_per_host = 8;       // connections to one host at once, >= 1
  long max_connections = 64;   // connections in total at once, >= 1
  std::string proxy;           // "" no proxy (the environment is ignored)
  std::string user_agent = "troupe";
};

// "" when the options are usable, else why not.
std::string check(const transport_options& o);

// A libcurl multi handle on an I/O thread of its own. Thread-safe: submit()
// and cancel() may be called from any thread.
class engine {
public:
  using done_fn = std::function<void(response)>;

  explicit engine(transport_options opts);
  // Aborts the transfers still running (their connections are closed; their
  // done functions are not called) and joins the I/O thread.
  ~engine();
  engine(const engine&) = delete;
  engine& operator=(const engine&) = delete;

  // Starts a transfer; `done` runs exactly once on the I/O thread (unless
  // the engine is destroyed first). Returns an id for cancel().
  uint64_t submit(request req, done_fn done);
  // Aborts a transfer (its connection is closed, so the server sees it go);
  // its done gets failure::cancelled. Nothing if it already completed.
  void cancel(uint64_t id);

  struct stats {
    uint64_t submitted = 0;
    uint64_t completed = 0; // done called (any outcome)
    uint64_t in_flight = 0;
    uint64_t connections = 0; // new connections opened (reuse keeps it low)
  };
  stats snapshot() const;

  const transport_options& options() const;

private:
  struct impl;
  std::unique_ptr<impl> impl_;
};

} // namespace troupe::http
