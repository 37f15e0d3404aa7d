// http::engine against a real server: tests/http/server.py (aiohttp), run on
// loopback with /usr/bin/python3 for the whole binary. These tests take real
// time, so every wait has a deadline and every timing check a tolerance.

#include "troupe/actors/http.hpp"

#include <doctest/doctest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <functional>
#include <future>
#include <memory>
#include <netinet/in.h>
#include <poll.h>
#include <stdexcept>
#include <string>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>
#include <vector>

#ifndef TROUPE_HTTP_TEST_SERVER
#error "TROUPE_HTTP_TEST_SERVER must name tests/http/server.py"
#endif
#ifndef TROUPE_HTTP_TEST_PYTHON
#define TROUPE_HTTP_TEST_PYTHON "/usr/bin/python3"
#endif

namespace http = troupe::http;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

// -- processes ----------------------------------------------------------------

// Runs argv to completion; its exit status (-1 when it could not run).
int run_program(const std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (const auto& a : args)
    argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = fork();
  if (pid < 0)
    return -1;
  if (pid == 0) {
    int null = open("/dev/null", O_WRONLY);
    if (null >= 0) {
      dup2(null, 1);
      dup2(null, 2);
    }
    execv(argv[0], argv.data());
    _exit(127);
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// server.py in a child process: started, its port read from its first
// line, killed on destruction. PDEATHSIG and --exit-on-stdin-eof make it go
// with this process even when the tests crash.
class test_server {
public:
  explicit test_server(std::vector<std::string> extra = {})
    : tls_(!extra.empty()) {
    int out[2];
    int in[2];
    if (pipe2(out, O_CLOEXEC) != 0 || pipe2(in, O_CLOEXEC) != 0)
      throw std::runtime_error("pipe2 failed");
    std::vector<std::string> args = {TROUPE_HTTP_TEST_PYTHON,
                                     TROUPE_HTTP_TEST_SERVER,
                                     "--exit-on-stdin-eof"};
    args.insert(args.end(), extra.begin(), extra.end());
    std::vector<char*> argv;
    for (auto& a : args)
      argv.push_back(a.data());
    argv.push_back(nullptr);
    pid_t parent = getpid();
    pid_ = fork();
    if (pid_ < 0)
      throw std::runtime_error("fork failed");
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent)
        _exit(1);
      dup2(in[0], 0);
      dup2(out[1], 1);
      execv(argv[0], argv.data());
      _exit(127);
    }
    close(out[1]);
    close(in[0]);
    stdout_ = out[0];
    stdin_ = in[1];
    read_port();
  }

  ~test_server() {
    close(stdin_);
    kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    close(stdout_);
  }

  test_server(const test_server&) = delete;
  test_server& operator=(const test_server&) = delete;

  std::string url(const std::string& path) const {
    return std::string(tls_ ? "https" : "http") + "://127.0.0.1:"
           + std::to_string(port_) + path;
  }
  int port() const {
    return port_;
  }

private:
  void read_port() {
    std::string line;
    auto deadline = steady::now() + 20s;
    while (line.find('\n') == std::string::npos) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - steady::now());
      pollfd p{stdout_, POLLIN, 0};
      if (left.count() <= 0 || poll(&p, 1, static_cast<int>(left.count())) <= 0)
        throw std::runtime_error("server.py did not print its port in 20 s");
      char buf[256];
      ssize_t n = read(stdout_, buf, sizeof buf);
      if (n <= 0)
        throw std::runtime_error(
          "server.py exited before printing its port (is python3-aiohttp "
          "installed for " TROUPE_HTTP_TEST_PYTHON "?)");
      line.append(buf, static_cast<size_t>(n));
    }
    if (line.compare(0, 5, "PORT ") != 0)
      throw std::runtime_error("server.py said: " + line);
    port_ = std::stoi(line.substr(5));
  }

  bool tls_;
  pid_t pid_ = -1;
  int stdout_ = -1;
  int stdin_ = -1;
  int port_ = 0;
};

test_server& server() {
  static test_server s;
  return s;
}

// A self-signed certificate for 127.0.0.1 and localhost in a temporary
// folder, made once with the openssl CLI.
struct certificate {
  std::string dir;
  std::string cert;
  std::string key;
  certificate() {
    char tmpl[] = "/tmp/troupe-http-tls-XXXXXX";
    if (mkdtemp(tmpl) == nullptr)
      throw std::runtime_error("mkdtemp failed");
    dir = tmpl;
    cert = dir + "/cert.pem";
    key = dir + "/key.pem";
    int rc = run_program({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec",
                          "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                          "-keyout", key, "-out", cert, "-days", "2", "-subj",
                          "/CN=127.0.0.1", "-addext",
                          "subjectAltName=IP:127.0.0.1,DNS:localhost"});
    if (rc != 0)
      throw std::runtime_error("openssl req failed (is openssl installed?)");
  }
  ~certificate() {
    unlink(cert.c_str());
    unlink(key.c_str());
    rmdir(dir.c_str());
  }
};

certificate& tls_certificate() {
  static certificate c;
  return c;
}

test_server& tls_server() {
  static test_server s({"--tls", tls_certificate().cert, tls_certificate().key});
  return s;
}

// -- requests -----------------------------------------------------------------

http::transport_options loopback() {
  http::transport_options o;
  o.block_private = false;
  o.connect_timeout = 2s;
  o.timeout = 10s;
  return o;
}

http::request get(const std::string& url) {
  return http::request{"GET", url, {}, {}};
}

// Submits and waits (with a deadline) for the response.
http::response fetch(http::engine& e, http::request r,
                     std::chrono::milliseconds deadline = 10s) {
  auto p = std::make_shared<std::promise<http::response>>();
  auto f = p->get_future();
  e.submit(std::move(r), [p](http::response resp) { p->set_value(std::move(resp)); });
  if (f.wait_for(deadline) != std::future_status::ready)
    throw std::runtime_error("no response within the deadline");
  return f.get();
}

// The integer after `"key": ` (searching from `from`), or -1.
long json_int(const std::string& text, const std::string& key,
              size_t from = 0) {
  auto at = text.find("\"" + key + "\": ", from);
  if (at == std::string::npos)
    return -1;
  return std::strtol(text.c_str() + at + key.size() + 4, nullptr, 10);
}

// The server's statistics, through an engine of their own.
struct stats_client {
  http::engine web{loopback()};
  std::string stats(test_server& s) {
    auto r = fetch(web, get(s.url("/_stats")));
    REQUIRE(r.status == 200);
    return r.body;
  }
  void reset(test_server& s) {
    REQUIRE(fetch(web, get(s.url("/_reset"))).status == 200);
  }
  // Polls the statistics until `key` (inside `section` when given) reaches
  // `at_least`, or the deadline passes; the last value seen.
  long wait_for(test_server& s, const std::string& key, long at_least,
                std::chrono::milliseconds deadline = 3s,
                const std::string& section = "") {
    auto until = steady::now() + deadline;
    long value = -1;
    for (;;) {
      std::string text = stats(s);
      size_t from = section.empty() ? 0 : text.find("\"" + section + "\"");
      value = from == std::string::npos ? -1 : json_int(text, key, from);
      if (value >= at_least || steady::now() > until)
        return value;
      std::this_thread::sleep_for(20ms);
    }
  }
};

stats_client& client() {
  static stats_client c;
  return c;
}

double seconds_since(steady::time_point t) {
  return std::chrono::duration<double>(steady::now() - t).count();
}

} // namespace

TEST_CASE("http engine: options are checked") {
  http::transport_options o;
  CHECK(http::check(o) == "");
  auto broken = [](auto change) {
    http::transport_options x;
    change(x);
    return http::check(x);
  };
  CHECK(broken([](auto& x) { x.connect_timeout = 0s; }) != "");
  CHECK(broken([](auto& x) { x.timeout = -1s; }) != "");
  CHECK(broken([](auto& x) { x.low_speed_limit = 0; }) != "");
  CHECK(broken([](auto& x) { x.low_speed_time = 0s; }) != "");
  CHECK(broken([](auto& x) { x.max_redirects = 6; }) != "");
  CHECK(broken([](auto& x) { x.max_redirects = -1; }) != "");
  CHECK(broken([](auto& x) { x.max_body_bytes = 0; }) != "");
  CHECK(broken([](auto& x) { x.max_per_host = 0; }) != "");
  CHECK(broken([](auto& x) { x.max_connections = 0; }) != "");
  CHECK(broken([](auto& x) { x.max_redirects = 5; }) == "");
  o.timeout = 0s;
  CHECK_THROWS_AS(http::engine{o}, std::invalid_argument);
}

TEST_CASE("http engine: failure names and header lookup") {
  CHECK(std::string(http::to_string(http::failure::none)) == "none");
  CHECK(std::string(http::to_string(http::failure::too_many_redirects))
        == "too_many_redirects");
  CHECK(std::string(http::to_string(http::failure::forbidden_address))
        == "forbidden_address");
  http::response r;
  r.headers = {{"content-type", "text/plain"}, {"x-a", "1"}};
  CHECK(r.header("Content-Type") == "text/plain");
  CHECK(r.header("X-A") == "1");
  CHECK(r.header("missing") == "");
}

TEST_CASE("http engine: 200 with a body, its headers and timings") {
  http::engine web{loopback()};
  auto r = fetch(web, get(server().url("/ok?size=1000")));
  CHECK(r.transferred());
  CHECK(r.status == 200);
  CHECK(r.body == std::string(1000, 'x'));
  CHECK(r.header("Content-Length") == "1000");
  CHECK(r.url == server().url("/ok?size=1000"));
  CHECK(r.redirects == 0);
  CHECK(r.total > 0ns);
  CHECK(r.first_byte <= r.total);
  CHECK(r.connect_time <= r.first_byte);
  auto s = web.snapshot();
  CHECK(s.submitted == 1);
  CHECK(s.completed == 1);
  CHECK(s.in_flight == 0);
  CHECK(s.connections == 1);
}

TEST_CASE("http engine: 404 is a transferred response with its status") {
  http::engine web{loopback()};
  auto r = fetch(web, get(server().url("/status/404")));
  CHECK(r.transferred());
  CHECK(r.status == 404);
  CHECK(r.body == "status 404\n");
}

TEST_CASE("http engine: a chunked body arrives whole") {
  http::engine web{loopback()};
  auto r = fetch(web, get(server().url("/chunked?chunks=4")));
  CHECK(r.status == 200);
  CHECK(r.body == "chunk 0\nchunk 1\nchunk 2\nchunk 3\n");
  CHECK(r.header("transfer-encoding") == "chunked");
}

TEST_CASE("http engine: method, headers and body are sent as given") {
  http::engine web{loopback()};
  auto r = fetch(web, {"PUT", server().url("/echo?a=1"),
                       {{"X-Troupe", "yes"}, {"Content-Type", "text/plain"}},
                       "the body"});
  REQUIRE(r.status == 200);
  CHECK(r.body.find("\"method\": \"PUT\"") != std::string::npos);
  CHECK(r.body.find("\"x-troupe\": \"yes\"") != std::string::npos);
  CHECK(r.body.find("\"body\": \"the body\"") != std::string::npos);
  CHECK(r.body.find("\"query\": \"a=1\"") != std::string::npos);
  CHECK(r.body.find("\"user-agent\": \"troupe\"") != std::string::npos);
  // No Expect: 100-continue round trip.
  CHECK(r.body.find("\"expect\"") == std::string::npos);

  auto post = fetch(web, {"POST", server().url("/echo"), {}, ""});
  CHECK(post.body.find("\"method\": \"POST\"") != std::string::npos);
  CHECK(post.body.find("\"content-length\": \"0\"") != std::string::npos);

  auto head = fetch(web, {"HEAD", server().url("/ok?size=10"), {}, ""});
  CHECK(head.status == 200);
  CHECK(head.body.empty());

  auto del = fetch(web, {"DELETE", server().url("/echo"), {}, ""});
  CHECK(del.body.find("\"method\": \"DELETE\"") != std::string::npos);
}

TEST_CASE("http engine: malformed requests are refused before any I/O") {
  http::engine web{loopback()};
  auto injected = fetch(web, {"GET", server().url("/ok"),
                              {{"X-A", "1\r\nX-Injected: 1"}}, ""});
  CHECK(injected.error == http::failure::bad_request);
  auto method = fetch(web, {"GE T", server().url("/ok"), {}, ""});
  CHECK(method.error == http::failure::bad_request);
  auto no_scheme = fetch(web, get("127.0.0.1/ok"));
  CHECK(no_scheme.error == http::failure::bad_request);
  CHECK(web.snapshot().connections == 0);
}

TEST_CASE("http engine: sequential requests reuse one connection") {
  client().reset(server());
  http::engine web{loopback()};
  for (int i = 0; i < 100; ++i) {
    auto r = fetch(web, get(server().url("/ok")));
    REQUIRE(r.status == 200);
  }
  CHECK(web.snapshot().connections <= 2);
  std::string stats = client().stats(server());
  CHECK(json_int(stats, "/ok") == 100);
  // The stats client's own connection is not counted (/_stats is exempt).
  CHECK(json_int(stats, "connections") <= 2);
}

TEST_CASE("http engine: max_per_host bounds the requests the server sees") {
  client().reset(server());
  auto o = loopback();
  o.max_per_host = 3;
  std::atomic<int> ok{0};
  std::promise<void> all;
  constexpr int n = 24;
  std::atomic<int> left{n};
  http::engine web{o}; // after what its completions touch
  auto t0 = steady::now();
  for (int i = 0; i < n; ++i)
    web.submit(get(server().url("/delay?ms=50")), [&](http::response r) {
      if (r.status == 200)
        ++ok;
      if (--left == 0)
        all.set_value();
    });
  REQUIRE(all.get_future().wait_for(10s) == std::future_status::ready);
  CHECK(ok == n);
  std::string stats = client().stats(server());
  long max_delay = json_int(stats, "/delay",
                            stats.find("max_in_progress_by_prefix"));
  CHECK(max_delay <= 3);
  CHECK(max_delay >= 2); // it did run in parallel
  CHECK(web.snapshot().connections <= 3);
  // 24 requests of 50 ms three at a time: at least 8 rounds.
  CHECK(seconds_since(t0) >= 0.35);
}

TEST_CASE("http engine: a server that never answers times out") {
  auto o = loopback();
  o.timeout = 300ms;
  http::engine web{o};
  auto t0 = steady::now();
  auto r = fetch(web, get(server().url("/hang")));
  double elapsed = seconds_since(t0);
  CHECK(r.error == http::failure::timeout);
  CHECK(r.status == 0);
  CHECK(elapsed >= 0.25);
  CHECK(elapsed < 3.0);
  CHECK(!r.error_text.empty());
}

TEST_CASE("http engine: a refused connection is a connect failure") {
  // A port that was free a moment ago: nothing listens there.
  int s = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  REQUIRE(bind(s, reinterpret_cast<sockaddr*>(&a), len) == 0);
  REQUIRE(getsockname(s, reinterpret_cast<sockaddr*>(&a), &len) == 0);
  int port = ntohs(a.sin_port);
  close(s);
  http::engine web{loopback()};
  auto r = fetch(web, get("http://127.0.0.1:" + std::to_string(port) + "/"));
  CHECK(r.error == http::failure::connect);
}

TEST_CASE("http engine: a 1 byte/s trickle is a low-speed abort") {
  auto o = loopback();
  o.low_speed_limit = 100;
  o.low_speed_time = 1s;
  http::engine web{o};
  auto t0 = steady::now();
  auto r = fetch(web, get(server().url("/trickle?bytes=60")));
  double elapsed = seconds_since(t0);
  CHECK(r.error == http::failure::low_speed);
  CHECK(elapsed >= 0.9);
  CHECK(elapsed < 4.0);
}

TEST_CASE("http engine: a reset mid-response is a reset") {
  http::engine web{loopback()};
  auto r = fetch(web, get(server().url("/reset")));
  CHECK(r.error == http::failure::reset);
  CHECK(r.body.empty());
}

TEST_CASE("http engine: redirects") {
  SUBCASE("off: the 3xx is returned as is") {
    http::engine web{loopback()};
    auto r = fetch(web, get(server().url("/redirect?to=/ok")));
    CHECK(r.transferred());
    CHECK(r.status == 302);
    CHECK(r.header("location") == "/ok");
    CHECK(r.redirects == 0);
  }
  SUBCASE("on: followed, the final response's headers only") {
    auto o = loopback();
    o.max_redirects = 2;
    http::engine web{o};
    auto r = fetch(web, get(server().url("/redirect?to=/ok")));
    CHECK(r.status == 200);
    CHECK(r.body == "ok\n");
    CHECK(r.redirects == 1);
    CHECK(r.url == server().url("/ok"));
    CHECK(r.header("location") == "");
  }
  SUBCASE("a loop ends at max_redirects") {
    client().reset(server());
    auto o = loopback();
    o.max_redirects = 3;
    http::engine web{o};
    auto r = fetch(web, get(server().url("/loop")));
    CHECK(r.error == http::failure::too_many_redirects);
    CHECK(json_int(client().stats(server()), "/loop") == 4);
  }
  SUBCASE("to another scheme is refused") {
    auto o = loopback();
    o.max_redirects = 5;
    http::engine web{o};
    auto r = fetch(web, get(server().url("/to-ftp")));
    CHECK(r.error == http::failure::forbidden_scheme);
  }
}

TEST_CASE("http engine: only http and https URLs") {
  http::engine web{loopback()};
  for (const char* url : {"ftp://127.0.0.1/file", "file:///etc/passwd",
                          "gopher://127.0.0.1/", "FTP://127.0.0.1/"}) {
    CAPTURE(url);
    auto r = fetch(web, get(url));
    CHECK(r.error == http::failure::forbidden_scheme);
  }
  CHECK(web.snapshot().connections == 0);
}

TEST_CASE("http engine: a body above max_body_bytes is too_large") {
  auto o = loopback();
  o.max_body_bytes = 1000;
  http::engine web{o};
  SUBCASE("announced by Content-Length") {
    auto r = fetch(web, get(server().url("/big?size=100000")));
    CHECK(r.error == http::failure::too_large);
    CHECK(r.body.empty());
  }
  SUBCASE("chunked: counted as it arrives") {
    auto r = fetch(web, get(server().url("/big?size=100000&chunked=1")));
    CHECK(r.error == http::failure::too_large);
    CHECK(r.body.empty());
  }
  SUBCASE("at the limit is fine") {
    auto r = fetch(web, get(server().url("/ok?size=1000")));
    CHECK(r.status == 200);
    CHECK(r.body.size() == 1000);
  }
}

TEST_CASE("http engine: block_private refuses loopback and private addresses") {
  client().reset(server());
  http::transport_options o = loopback();
  o.block_private = true; // the default
  http::engine web{o};
  std::string port = std::to_string(server().port());
  auto r = fetch(web, get("http://127.0.0.1:" + port + "/ok"));
  CHECK(r.error == http::failure::forbidden_address);
  CHECK(r.error_text.find("127.0.0.1") != std::string::npos);
  for (std::string host : {"127.1.2.3", "0.0.0.0", "[::1]", "[::ffff:127.0.0.1]",
                           "localhost"}) {
    CAPTURE(host);
    auto x = fetch(web, get("http://" + host + ":" + port + "/ok"));
    CHECK(x.error == http::failure::forbidden_address);
  }
  // The server saw none of them.
  CHECK(json_int(client().stats(server()), "total") == 0);
  CHECK(http::transport_options{}.block_private);
}

TEST_CASE("http engine: the guard's ranges, refused before any connect") {
  auto o = loopback();
  o.block_private = true;
  o.connect_timeout = 300ms;
  o.timeout = 1s;
  http::engine web{o};
  struct probe {
    std::string host;
    std::shared_ptr<std::promise<http::response>> done =
      std::make_shared<std::promise<http::response>>();
  };
  std::vector<probe> refused;
  for (const char* h :
       {"10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
        "169.254.169.254", "100.64.0.1", "100.127.255.255", "0.1.2.3",
        "127.255.255.254", "[fc00::1]", "[fdff::1]", "[fe80::1]", "[::]",
        "[::ffff:10.0.0.1]", "[::ffff:192.168.0.1]", "[::ffff:169.254.1.1]",
        // benchmarking, multicast, reserved and broadcast
        "198.18.0.1", "198.19.255.254", "224.0.0.1", "239.1.2.3", "240.0.0.1",
        "255.255.255.255",
        // NAT64 and 6to4 carrying a private address, v6 multicast
        "[64:ff9b::7f00:1]", "[64:ff9b::a00:1]", "[2002:a00:1::1]",
        "[2002:7f00:1::1]", "[ff02::1]"})
    refused.push_back({h});
  // Documentation addresses (TEST-NET, 2001:db8::/32) pass the guard; what
  // happens next depends on the network (unreachable, a timeout, or a proxy
  // of the sandbox answering), never the guard's refusal.
  std::vector<probe> allowed;
  for (const char* h : {"192.0.2.1", "198.51.100.1", "203.0.113.1", "[2001:db8::1]",
                        "[64:ff9b::c000:201]"}) // NAT64 of 192.0.2.1
    allowed.push_back({h});
  auto t0 = steady::now();
  for (auto* list : {&refused, &allowed})
    for (auto& p : *list) {
      auto d = p.done;
      web.submit(get("http://" + p.host + ":9/"),
                 [d](http::response r) { d->set_value(std::move(r)); });
    }
  for (auto& p : refused) {
    CAPTURE(p.host);
    auto f = p.done->get_future();
    REQUIRE(f.wait_for(5s) == std::future_status::ready);
    auto r = f.get();
    CHECK(r.error == http::failure::forbidden_address);
    CHECK(r.error_text.find("block_private") != std::string::npos);
  }
  for (auto& p : allowed) {
    CAPTURE(p.host);
    auto f = p.done->get_future();
    REQUIRE(f.wait_for(5s) == std::future_status::ready);
    auto r = f.get();
    CHECK(r.error != http::failure::forbidden_address);
  }
  CHECK(seconds_since(t0) < 3.0);
}

TEST_CASE("http engine: cancel closes the transfer; done gets cancelled once") {
  client().reset(server());
  auto p = std::make_shared<std::promise<http::response>>();
  std::atomic<int> calls{0};
  http::engine web{loopback()};
  uint64_t id = web.submit(get(server().url("/hang")), [p, &calls](http::response r) {
    ++calls;
    p->set_value(std::move(r));
  });
  REQUIRE(client().wait_for(server(), "in_progress", 1) >= 1);
  web.cancel(id);
  auto f = p->get_future();
  REQUIRE(f.wait_for(3s) == std::future_status::ready);
  auto r = f.get();
  CHECK(r.error == http::failure::cancelled);
  CHECK(client().wait_for(server(), "cancelled", 1) == 1);
  web.cancel(id); // already done: nothing
  CHECK(fetch(web, get(server().url("/ok"))).status == 200);
  CHECK(calls == 1);
  CHECK(web.snapshot().in_flight == 0);
}

TEST_CASE("http engine: a done may submit again") {
  http::engine web{loopback()};
  auto p = std::make_shared<std::promise<http::response>>();
  std::string second = server().url("/ok?size=3");
  web.submit(get(server().url("/ok")), [&web, p, second](http::response) {
    web.submit(get(second), [p](http::response r) { p->set_value(std::move(r)); });
  });
  auto f = p->get_future();
  REQUIRE(f.wait_for(5s) == std::future_status::ready);
  CHECK(f.get().body == "xxx");
}

TEST_CASE("http engine: destruction aborts running transfers without done") {
  client().reset(server());
  std::atomic<int> calls{0};
  auto t0 = steady::now();
  {
    http::engine web{loopback()};
    for (int i = 0; i < 4; ++i)
      web.submit(get(server().url("/hang")), [&](http::response) { ++calls; });
    for (int i = 0; i < 4; ++i)
      web.submit(get(server().url("/delay?ms=5000")), [&](http::response) { ++calls; });
    REQUIRE(client().wait_for(server(), "in_progress", 8) == 8);
    t0 = steady::now();
  }
  CHECK(seconds_since(t0) < 1.0);
  CHECK(calls == 0);
  CHECK(client().wait_for(server(), "cancelled", 8) == 8);
}

TEST_CASE("http engine: destruction with nothing running is prompt") {
  auto t0 = steady::now();
  { http::engine web{loopback()}; }
  CHECK(seconds_since(t0) < 1.0);
}

TEST_CASE("http engine: TLS with a self-signed certificate") {
  std::string url = tls_server().url("/ok");
  SUBCASE("refused by default") {
    http::engine web{loopback()};
    auto r = fetch(web, get(url));
    CHECK(r.error == http::failure::tls);
  }
  SUBCASE("accepted with its CA file") {
    auto o = loopback();
    o.ca_file = tls_certificate().cert;
    http::engine web{o};
    auto r = fetch(web, get(url));
    CHECK(r.status == 200);
    CHECK(r.body == "ok\n");
    auto local = fetch(web, get("https://localhost:"
                                + std::to_string(tls_server().port()) + "/ok"));
    CHECK(local.status == 200);
  }
  SUBCASE("accepted with verify_tls: false") {
    auto o = loopback();
    o.verify_tls = false;
    http::engine web{o};
    auto r = fetch(web, get(url));
    CHECK(r.status == 200);
  }
}

TEST_CASE("http engine: 1000 submits from 4 threads complete exactly once") {
  auto o = loopback();
  o.max_per_host = 16;
  constexpr int threads = 4;
  constexpr int each = 250;
  std::vector<std::atomic<int>> calls(threads * each);
  std::atomic<int> ok{0};
  std::atomic<int> left{threads * each};
  std::promise<void> all;
  http::engine web{o}; // after what its completions touch
  std::vector<std::thread> submitters;
  std::string url = server().url("/ok");
  for (int t = 0; t < threads; ++t)
    submitters.emplace_back([&, t] {
      for (int i = 0; i < each; ++i)
        web.submit(get(url), [&, k = t * each + i](http::response r) {
          ++calls[static_cast<size_t>(k)];
          if (r.status == 200)
            ++ok;
          if (--left == 0)
            all.set_value();
        });
    });
  for (auto& t : submitters)
    t.join();
  REQUIRE(all.get_future().wait_for(30s) == std::future_status::ready);
  CHECK(ok == threads * each);
  int wrong = 0;
  for (auto& c : calls)
    wrong += c != 1;
  CHECK(wrong == 0);
  auto s = web.snapshot();
  CHECK(s.submitted == threads * each);
  CHECK(s.completed == threads * each);
  CHECK(s.in_flight == 0);
  CHECK(s.connections <= 16);
}

// Not a check: a figure for the report. Run with
//   troupe-unit-tests -tc='*throughput*' --no-skip
TEST_CASE("http engine: throughput on loopback, 64 in flight" * doctest::skip()) {
  auto o = loopback();
  o.max_per_host = 64;
  constexpr int total = 10000;
  constexpr int window = 64;
  std::atomic<int> started{0};
  std::atomic<int> left{total};
  std::promise<void> all;
  std::string url = server().url("/ok");
  std::function<void()> next;
  http::engine web{o}; // after what its completions touch
  next = [&] {
    if (started.fetch_add(1) >= total)
      return;
    web.submit(get(url), [&](http::response) {
      if (--left == 0)
        all.set_value();
      else
        next();
    });
  };
  auto t0 = steady::now();
  for (int i = 0; i < window; ++i)
    next();
  REQUIRE(all.get_future().wait_for(120s) == std::future_status::ready);
  double s = seconds_since(t0);
  MESSAGE(total << " GETs in " << s << " s: " << total / s << " GETs/s, "
                << web.snapshot().connections << " connections");
}
