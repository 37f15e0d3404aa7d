// The HTTP side of the observe library: /metrics, and with the live view
// the page, the picture, /api/snapshot and /events (server-sent events).
//
// cpp-httplib on threads of its own. A scrape reads the counters (relaxed
// atomics) on the request's thread; a sampler thread builds the live view's
// snapshot every 250 ms and hands it to the /events streams under a mutex
// (server threads only: the record path never sees it). Each /events client
// holds a pool thread for its lifetime, so they are capped and the pool has
// threads beyond the cap for /metrics and the rest.
#include <httplib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "live_page.hpp"
#include "troupe/graph_spec.hpp"
#include "troupe/observe.hpp"
#include "troupe/runtime.hpp"

namespace troupe {

namespace {

constexpr auto sample_interval = std::chrono::milliseconds(250);
// Threads beyond the /events cap: /metrics, /api/snapshot, the page. Each
// connection holds one until its request is in (an idle one at most the
// 1 s keep-alive wait): enough of them that a few dozen idle connections
// do not starve a scrape (an idle thread costs only its stack). The 2 s
// read timeout is per read, so a client trickling a byte a second holds
// its thread as long as it likes (a known limit; loopback by default).
constexpr size_t spare_threads = 32;
constexpr int accept_backlog = 128;

// httplib's own pool starts all its threads up front: ~75 thread starts and
// joins for the two servers, which a short run pays in wall time even when
// nobody connects. This one starts a thread only when a request finds none
// idle, up to the same cap, and keeps it for the next. Like httplib's, it
// runs the queued requests before it stops.
class on_demand_pool : public httplib::TaskQueue {
public:
  explicit on_demand_pool(size_t max_threads) : max_threads_(max_threads) {
  }

  void enqueue(std::function<void()> fn) override {
    std::unique_lock<std::mutex> lock{mutex_};
    jobs_.push_back(std::move(fn));
    if (idle_ < jobs_.size() && threads_.size() < max_threads_) {
      try {
        threads_.emplace_back([this] { work(); });
      } catch (const std::exception&) {
        // Out of threads (a memory or pids limit): the threads there are
        // serve it in turn. With none, the accept thread serves it itself
        // rather than let it wait forever; the run goes on either way.
        if (threads_.empty()) {
          auto job = std::move(jobs_.back());
          jobs_.pop_back();
          lock.unlock();
          job();
          return;
        }
      }
    }
    lock.unlock();
    wake_.notify_one();
  }

  void shutdown() override {
    {
      std::lock_guard<std::mutex> guard{mutex_};
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& t : threads_) // no enqueue() after shutdown(): no new threads
      t.join();
  }

private:
  void work() {
    std::unique_lock<std::mutex> lock{mutex_};
    for (;;) {
      ++idle_;
      wake_.wait(lock, [this] { return !jobs_.empty() || stopping_; });
      --idle_;
      if (jobs_.empty())
        return; // stopping, and nothing left to serve
      auto fn = std::move(jobs_.front());
      jobs_.pop_front();
      lock.unlock();
      fn();
      lock.lock();
    }
  }

  const size_t max_threads_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> jobs_;
  std::vector<std::thread> threads_;
  size_t idle_ = 0; // threads waiting for a job
  bool stopping_ = false;
};

} // namespace

listen_address parse_listen_address(const std::string& text) {
  listen_address a;
  a.host = "127.0.0.1";
  std::string port = text;
  auto colon = text.rfind(':');
  if (colon != std::string::npos) {
    auto host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
      host = host.substr(1, host.size() - 2);
    else if (host.find(':') != std::string::npos || host.find('[') == 0)
      // `::1` would read as host `:` port 1, `::1:0` as a guess.
      throw std::invalid_argument("bad address '" + text
                                  + "' (an IPv6 host goes in brackets, "
                                    "then the port: [::1]:PORT)");
    if (!host.empty())
      a.host = host;
    if (a.host.find_first_of(" /?#@[]") != std::string::npos)
      throw std::invalid_argument("bad host '" + a.host + "' in '" + text
                                  + "' (want HOST:PORT)");
  }
  if (port.empty() || port.size() > 5
      || !std::all_of(port.begin(), port.end(),
                      [](char c) { return c >= '0' && c <= '9'; }))
    throw std::invalid_argument("bad port in '" + text
                                + "' (want HOST:PORT, PORT 0-65535)");
  a.port = std::stoi(port);
  if (a.port > 65535)
    throw std::invalid_argument("port out of range in '" + text
                                + "' (want 0-65535)");
  return a;
}

struct web_server::impl {
  graph_run run;
  const graph_spec& graph;
  options opts;
  listen_address where;
  httplib::Server server;
  std::thread listener;
  std::thread sampler;

  std::mutex mutex;
  std::condition_variable changed;
  std::string latest;      // the newest snapshot JSON
  uint64_t seq = 0;        // bumped with every new snapshot
  bool ended = false;      // `latest` is the final snapshot
  bool stopping = false;
  bool wake = false;       // finish(): sample now, the run has ended
  size_t clients = 0;      // /events streams open
  size_t ends_pending = 0; // of them, not yet sent `end`
  std::atomic<bool> stopped{false};
  int listen_fd = -1;      // the bound socket (httplib's; it closes it)
  int wake_fd = -1;        // our own descriptor of it, for shutdown()

  impl(const graph_spec& g, options o) : graph(g), opts(std::move(o)) {
  }

  void sample_loop() {
    std::shared_ptr<snapshot_state> state;
    std::unique_lock<std::mutex> lock{mutex};
    while (!stopping) {
      lock.unlock();
      bool done = run.finished(); // counters are final once it is
      auto json = snapshot_json(run, graph, state);
      lock.lock();
      latest = std::move(json);
      ++seq;
      if (done) {
        ended = true;
        changed.notify_all();
        return;
      }
      changed.notify_all();
      changed.wait_for(lock, sample_interval,
                       [this] { return stopping || wake; });
      wake = false; // one sample per finish(), not a busy loop

    }
  }

  void serve_events(const httplib::Request&, httplib::Response& res) {
    {
      std::lock_guard<std::mutex> guard{mutex};
      if (clients >= opts.max_event_clients || stopping) {
        res.status = 503;
        res.set_content("too many live-view clients\n", "text/plain");
        return;
      }
      ++clients;
      ++ends_pending;
    }
    res.set_header("Cache-Control", "no-cache");
    auto sent = std::make_shared<uint64_t>(0);
    auto end_sent = std::make_shared<bool>(false);
    res.set_chunked_content_provider(
      "text/event-stream",
      [this, sent, end_sent](size_t, httplib::DataSink& sink) {
        std::string chunk;
        bool last = false;
        {
          std::unique_lock<std::mutex> lock{mutex};
          changed.wait_for(lock, std::chrono::milliseconds(500), [&] {
            return stopping || ended || seq > *sent;
          });
          if (stopping && !ended)
            return false;
          if (ended) {
            chunk = "event: end\ndata: " + latest + "\n\n";
            last = true;
          } else if (seq > *sent) {
            chunk = "event: snapshot\ndata: " + latest + "\n\n";
            *sent = seq;
          } else {
            chunk = ": keep-alive\n\n";
          }
        }
        if (!sink.is_writable() || !sink.write(chunk.data(), chunk.size()))
          return false;
        if (last) {
          *end_sent = true;
          sink.done();
        }
        return true;
      },
      [this](bool) {
        std::lock_guard<std::mutex> guard{mutex};
        --clients;
        --ends_pending;
        changed.notify_all();
      });
  }

  // options::svg, or make_svg's picture drawn at the first request: a run
  // nobody looks at never pays for Graphviz (~20 ms of plugin and font
  // loading).
  std::once_flag drawn;
  const std::string& picture() {
    std::call_once(drawn, [this] {
      if (opts.make_svg)
        opts.svg = opts.make_svg();
    });
    return opts.svg;
  }

  std::string snapshot_now() {
    std::unique_lock<std::mutex> lock{mutex};
    if (!latest.empty())
      return latest;
    lock.unlock();
    std::shared_ptr<snapshot_state> state;
    return snapshot_json(run, graph, state);
  }

  void routes() {
    // Read only: a method that would change something is refused as such
    // (405), not answered "not found".
    auto read_only = [](const httplib::Request&, httplib::Response& res) {
      res.status = 405;
      res.set_header("Allow", "GET, HEAD");
      res.set_content("read only: GET or HEAD\n", "text/plain");
    };
    server.Post(".*", read_only);
    server.Put(".*", read_only);
    server.Patch(".*", read_only);
    server.Delete(".*", read_only);
    server.Get("/metrics", [this](const httplib::Request&,
                                  httplib::Response& res) {
      auto text = prometheus_text(run, graph);
      if (opts.types)
        text += service_metrics_text(run, graph, *opts.types);
      res.set_content(text,
                      "text/plain; version=0.0.4; charset=utf-8");
    });
    if (!opts.live_view)
      return;
    server.Get("/", [this](const httplib::Request&, httplib::Response& res) {
      res.set_content(observe::live_page_html(graph.name),
                      "text/html; charset=utf-8");
    });
    server.Get("/graph.svg",
               [this](const httplib::Request&, httplib::Response& res) {
                 res.set_content(picture(), "image/svg+xml");
               });
    server.Get("/api/snapshot",
               [this](const httplib::Request&, httplib::Response& res) {
                 res.set_header("Cache-Control", "no-cache");
                 res.set_content(snapshot_now(), "application/json");
               });
    server.Get("/events",
               [this](const httplib::Request& req, httplib::Response& res) {
                 serve_events(req, res);
               });
  }
};

web_server::web_server(const graph_spec& graph, options opts)
  : impl_(std::make_unique<impl>(graph, std::move(opts))) {
  auto& d = *impl_;
  d.where = parse_listen_address(d.opts.listen);
  auto threads = (d.opts.live_view ? d.opts.max_event_clients : 0)
                 + spare_threads;
  d.server.new_task_queue = [threads] { return new on_demand_pool(threads); };
  // One request per connection: an idle keep-alive connection would hold a
  // pool thread, and stop() would wait for it (httplib checks for the end
  // only between requests). A scrape every second or so does not miss it.
  d.server.set_keep_alive_max_count(1);
  d.server.set_keep_alive_timeout(1);
  d.server.set_read_timeout(2, 0);
  // httplib listens with a backlog of 5: a burst of connections (a page
  // loading, a few clients at once) while the accept thread starts a pool
  // thread would be refused. Remember the socket to listen again, deeper.
  auto listening = std::make_shared<int>(-1);
  d.server.set_socket_options([listening](int sock) {
    // SO_REUSEADDR only: httplib's default adds SO_REUSEPORT, with which a
    // second process (or a second server of this one) binds the same port
    // and takes half the requests instead of failing.
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
    *listening = sock; // the last one tried is the one bound
  });
  d.server.set_write_timeout(5, 0);
  d.routes();
  if (d.where.port == 0) {
    auto port = d.server.bind_to_any_port(d.where.host);
    if (port < 0)
      throw std::runtime_error("cannot listen on " + d.where.host
                               + " (any port)");
    d.where.port = port;
  } else if (!d.server.bind_to_port(d.where.host, d.where.port)) {
    throw std::runtime_error("cannot listen on " + d.where.host + ":"
                             + std::to_string(d.where.port)
                             + " (address in use or not available)");
  }
  ::listen(*listening, accept_backlog); // best effort: 5 stays if it fails
  d.listen_fd = *listening;
  d.wake_fd = ::dup(*listening);
}

void web_server::serve(const graph_run& run) {
  auto& d = *impl_;
  if (d.listener.joinable() || d.stopped)
    return;
  d.run = run;
  d.listener = std::thread([&d] { d.server.listen_after_bind(); });
  if (d.opts.live_view)
    d.sampler = std::thread([&d] { d.sample_loop(); });
}

web_server::~web_server() {
  stop();
}

std::string web_server::address() const {
  auto host = impl_->where.host;
  if (host.find(':') != std::string::npos)
    host = "[" + host + "]";
  return host + ":" + std::to_string(impl_->where.port);
}

void web_server::finish(std::chrono::milliseconds linger) {
  auto& d = *impl_;
  if (!d.opts.live_view)
    return;
  auto deadline = std::chrono::steady_clock::now() + linger;
  std::unique_lock<std::mutex> lock{d.mutex};
  d.wake = true;
  d.changed.notify_all();
  // The sampler takes the final snapshot now; then every open stream sends
  // `end` and closes.
  d.changed.wait_until(lock, deadline, [&d] {
    return d.stopping || (d.ended && d.ends_pending == 0);
  });
}

void web_server::stop() {
  auto& d = *impl_;
  if (d.stopped.exchange(true))
    return;
  {
    std::lock_guard<std::mutex> guard{d.mutex};
    d.stopping = true;
  }
  d.changed.notify_all();
  if (d.listener.joinable()) {
    // httplib 0.11's stop() does nothing until its accept loop has begun
    // (it checks is_running_): a stop() before the listener thread ran left
    // that thread in accept() for good. A shut-down socket fails accept()
    // now or as soon as the loop begins; the loop then closes its
    // descriptor and waits for its request threads. Ours (a dup) stays
    // valid whenever that happens, so shutdown() never hits a reused one.
    if (d.wake_fd >= 0)
      ::shutdown(d.wake_fd, SHUT_RDWR);
    else
      d.server.stop(); // no dup (out of descriptors): httplib's own way
    d.listener.join();
  } else if (d.listen_fd >= 0) {
    ::close(d.listen_fd); // bound, never served: nobody else closes it
  }
  if (d.wake_fd >= 0)
    ::close(d.wake_fd);
  if (d.sampler.joinable())
    d.sampler.join();
}

} // namespace troupe
