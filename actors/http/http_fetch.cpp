// http_fetch: a stage that makes one HTTP request per record and passes on
// the response. The request is built from the record (url, headers and body
// are templates over body, key, seq and attributes); the response becomes
// the record's body (`output`) and attributes (http_status, http_url,
// http_attempts, http_elapsed_ms, and the headers named in
// `response_headers` as http_<name>). What finally fails goes to `errors`
// with http_error, http_status, http_url and http_attempts.
//
// Each node drives its own engine (one libcurl multi handle on one I/O
// thread); at most max_in_flight records are being fetched at once (or an
// adaptive number), each attempt takes a permit of the `rate_limit:`
// resource, and a `cache:` resource answers repeated GETs without a request
// (concurrent misses of one URL make one request: the cache's lease).
// With `mirrors`, each record races its URL on every mirror: the first
// success wins and the other transfers are aborted.
#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <optional>
#include <unordered_map>

#include "fetcher.hpp"
#include "settings.hpp"
#include "troupe/actors/builtin_types.hpp"
#include "troupe/actors/cache.hpp"
#include "troupe/actors/rate_limiter.hpp"
#include "troupe/json.hpp"
#include "troupe/metrics.hpp"

namespace troupe::actors {

namespace {

using namespace troupe::http;
using ticket = pending_records::ticket;
using outcome = pending_records::outcome;

enum class output_mode { json, body, status };

struct header_template {
  std::string name;
  text_template value;
};

// What a cache keeps of a response: enough to build the same output again.
std::string encode_cached(const response& r) {
  std::string out = std::to_string(r.status) + '\n' + r.url + '\n'
                    + std::to_string(r.headers.size()) + '\n';
  for (auto& [k, v] : r.headers)
    out += k + ": " + v + '\n';
  out += r.body;
  return out;
}

std::optional<response> decode_cached(const std::string& s) {
  response r;
  size_t pos = 0;
  auto line = [&](std::string& to) {
    auto nl = s.find('\n', pos);
    if (nl == std::string::npos)
      return false;
    to.assign(s, pos, nl - pos);
    pos = nl + 1;
    return true;
  };
  std::string status, count, h;
  if (!line(status) || !line(r.url) || !line(count))
    return std::nullopt;
  try {
    r.status = std::stol(status);
    auto n = std::stoul(count);
    for (size_t i = 0; i < n; ++i) {
      if (!line(h))
        return std::nullopt;
      auto colon = h.find(": ");
      if (colon == std::string::npos)
        return std::nullopt;
      r.headers.emplace_back(h.substr(0, colon), h.substr(colon + 2));
    }
  } catch (const std::exception&) {
    return std::nullopt;
  }
  r.body = s.substr(pos);
  return r;
}

std::string trim(std::string s) {
  auto blank = [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
  };
  while (!s.empty() && blank(s.back()))
    s.pop_back();
  size_t i = 0;
  while (i < s.size() && blank(s[i]))
    ++i;
  return s.substr(i);
}

std::string lower(std::string s) {
  for (auto& c : s)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

class http_fetch_logic : public waiting_stage {
public:
  explicit http_fetch_logic(const node_context& ctx)
    : waiting_stage(ctx.spec.ordered, ceiling(ctx.spec.params)),
      settings_(read_fetch_settings(ctx.spec.params)) {
    if (ctx.calls == nullptr)
      throw std::logic_error("http_fetch needs node calls");
    if (ctx.metrics) {
      // Final outcomes by status class, for /metrics and the live view.
      static const char* names[] = {"http_no_response", "http_1xx",
                                    "http_2xx", "http_3xx", "http_4xx",
                                    "http_5xx"};
      for (size_t i = 0; i < status_classes_.size(); ++i)
        status_classes_[i] = ctx.metrics->events.get(names[i]);
    }
    auto& p = ctx.spec.params;
    url_ = parse(p.str("url"));
    if (p.has("body"))
      body_ = parse(p.str("body"));
    for (auto& [name, value] : settings_.headers)
      headers_.push_back({name, parse(value)});
    if (p.has("mirrors"))
      for (auto& m : p.strings("mirrors"))
        mirrors_.push_back(parse(m));
    if (p.has("response_headers"))
      for (auto& h : p.strings("response_headers"))
        keep_headers_.push_back(lower(h));
    auto mode = p.str("output");
    out_mode_ = mode == "body"     ? output_mode::body
                : mode == "status" ? output_mode::status
                                   : output_mode::json;
    rate_by_key_ = p.str("rate_by") == "key";
    auto cap = p.str("max_in_flight");
    if (cap == "adaptive")
      adaptive_.emplace(1, static_cast<size_t>(p.integer("adaptive_max")));
    else
      fixed_cap_ = std::stoul(cap);
    // Unless told, allow a connection per record in flight: a transfer
    // queued inside curl for a connection would spend its deadline there.
    if (!p.has("max_per_host"))
      settings_.transport.max_per_host = static_cast<long>(ceiling(p));
    settings_.transport.max_connections
      = std::max<long>(settings_.transport.max_connections,
                       settings_.transport.max_per_host);
    cache_ = ctx.calls->client<cache_client>("cache");
    auto* limiter = ctx.calls->client<limiter_client>("rate_limit");
    fetcher_ = std::make_unique<fetcher>(settings_, *ctx.calls, limiter,
                                         ctx.incarnation * 7919u + 1);
    if (adaptive_)
      fetcher_->on_transfer([this](const response& r) {
        bool pushed_back = r.status == 429 || r.status == 503
                           || r.error == failure::timeout;
        // Latency says something about the limit only when the stage used
        // all of it (else an idle stage would grow it to the ceiling), but
        // push-back always counts.
        if (pushed_back || active_ >= adaptive_->limit())
          adaptive_->observe(r.total, pushed_back);
      });
  }

  static size_t ceiling(const param_set& p) {
    auto cap = p.str("max_in_flight");
    if (cap == "adaptive")
      return static_cast<size_t>(p.integer("adaptive_max"));
    return std::stoul(cap);
  }

private:
  text_template parse(const std::string& text) {
    std::string why;
    auto t = text_template::parse(text, why);
    if (!t) // validation reported it already
      throw std::invalid_argument(why);
    return std::move(*t);
  }

  size_t limit() const {
    return adaptive_ ? adaptive_->limit() : fixed_cap_;
  }

  // Not re-entered: a record that ends at once (a refusal, an open
  // circuit) settles and asks to start the next from inside begin(); the
  // outer loop does that instead, so thousands of fast failures do not nest.
  void start(emitter& out) override {
    if (starting_) {
      start_again_ = true;
      return;
    }
    starting_ = true;
    do {
      start_again_ = false;
      while (active_ < limit()) {
        auto t = pending_.next_to_start();
        if (!t)
          break;
        ++active_;
        begin(*t, out);
      }
    } while (start_again_);
    starting_ = false;
  }

  request build(const record& r, const text_template& url) const {
    request req;
    req.method = settings_.method;
    req.url = trim(url.render(r, 0, true)); // a CRLF list's \r too
    for (auto& h : headers_)
      req.headers.emplace_back(h.name, h.value.render(r));
    if (body_)
      req.body = body_->render(r);
    return req;
  }

  // Why a record cannot be sent, or "".
  std::string unsendable(const record& r) const {
    std::vector<const text_template*> all{&url_};
    for (auto& h : headers_)
      all.push_back(&h.value);
    if (body_)
      all.push_back(&*body_);
    for (auto& m : mirrors_)
      all.push_back(&m);
    for (auto* t : all)
      if (auto missing = t->missing_attrs(r); !missing.empty())
        return "the record has no attribute '" + missing.front()
               + "' for the request";
    // A redelivered record (a restart upstream or here) may have been sent
    // already: a request that is not idempotent is not sent twice unasked.
    if (r.ctx.attempt > 1 && !idempotent(settings_.method)
        && !settings_.retry.retry_unsafe)
      return "not sent again after a restart: " + settings_.method
             + " is not idempotent and may have reached the server "
               "(retry_unsafe: true sends it again)";
    return {};
  }

  void begin(ticket t, emitter& out) {
    auto& r = pending_.at(t);
    if (auto why = unsendable(r); !why.empty()) {
      settle_failure(t, std::move(why), out);
      return;
    }
    auto req = build(r, url_);
    bool cacheable = cache_ != nullptr
                     && (req.method == "GET" || req.method == "HEAD");
    if (!cacheable) {
      fetch(t, std::move(req), std::nullopt, out);
      return;
    }
    auto key = req.method + ' ' + req.url;
    cache_->lookup({key}, [this, t, req, key](size_t, cache_answer a,
                                               emitter& later) mutable {
      switch (a.what) {
        case cache_answer::kind::hit:
          if (auto res = decode_cached(a.value)) {
            fetch_outcome o;
            o.res = std::move(*res);
            settle(t, o, later);
            return;
          }
          settle_failure(t, "cache: an entry http_fetch did not write",
                         later);
          return;
        case cache_answer::kind::lease:
          fetch(t, std::move(req), std::make_pair(key, a.lease), later);
          return;
        case cache_answer::kind::failed:
          // The cache is an optimisation: without it, fetch anyway.
          fetch(t, std::move(req), std::nullopt, later);
          return;
      }
    });
  }

  using lease = std::optional<std::pair<std::string, uint64_t>>;

  void fetch(ticket t, request req, lease l, emitter& out) {
    if (!mirrors_.empty()) {
      race(t, std::move(l), out);
      return;
    }
    auto key = rate_by_key_ ? pending_.at(t).key : std::string{};
    fetcher_->fetch(std::move(req), std::move(key),
                    [this, t, l](fetch_outcome o, emitter& later) {
                      settle_lease(l, o);
                      settle(t, o, later);
                    },
                    out);
  }

  // fetch_from_fastest: the record's request on every mirror at once; the
  // first accepted response wins and the others are aborted. All failing,
  // the record fails with each mirror's reason.
  struct race_state {
    std::vector<uint64_t> handles;
    size_t left = 0;
    bool won = false;
    std::string reasons;
  };

  void race(ticket t, lease l, emitter& out) {
    auto st = std::make_shared<race_state>();
    st->left = mirrors_.size();
    auto key = rate_by_key_ ? pending_.at(t).key : std::string{};
    for (auto& m : mirrors_) {
      auto req = build(pending_.at(t), m);
      st->handles.push_back(fetcher_->fetch(
        std::move(req), key,
        [this, t, l, st](fetch_outcome o, emitter& later) {
          --st->left;
          if (st->won)
            return;
          if (succeeded(o, settings_.accept)) {
            st->won = true;
            for (auto h : st->handles)
              fetcher_->cancel(h, later);
            settle_lease(l, o);
            settle(t, o, later);
            return;
          }
          if (o.res.error != failure::cancelled) {
            if (!st->reasons.empty())
              st->reasons += "; ";
            st->reasons += failure_reason(o);
          }
          if (st->left == 0) {
            o.refused = "every mirror failed: " + st->reasons;
            o.summary = true;
            settle_lease(l, o);
            settle(t, o, later);
          }
        },
        out));
    }
  }

  void settle_lease(const lease& l, const fetch_outcome& o) {
    if (!l)
      return;
    if (succeeded(o, settings_.accept))
      cache_->fulfil(l->first, l->second, encode_cached(o.res));
    else
      cache_->abandon(l->first, l->second, failure_reason(o));
  }

  void settle(ticket t, const fetch_outcome& o, emitter& out) {
    auto& r = pending_.at(t);
    auto& res = o.res;
    auto cls = res.status >= 100 && res.status < 600 ? res.status / 100 : 0;
    if (auto* c = status_classes_[static_cast<size_t>(cls)])
      c->fetch_add(1, std::memory_order_relaxed);
    bool ok = succeeded(o, settings_.accept);
    set_outcome_attrs(r, o, ok);
    if (!ok) {
      settle_failure(t, failure_reason(o), out);
      return;
    }
    for (auto& name : keep_headers_)
      if (auto v = res.header(name); !v.empty())
        r.set_attr("http_" + name, v);
    switch (out_mode_) {
      case output_mode::body:
        r.body = res.body;
        break;
      case output_mode::status:
        r.body = std::to_string(res.status);
        break;
      case output_mode::json: {
        std::string j = "{\"url\":";
        append_json_string(j, res.url);
        j += ",\"status\":" + std::to_string(res.status);
        if (!keep_headers_.empty()) {
          j += ",\"headers\":{";
          bool first = true;
          for (auto& name : keep_headers_) {
            auto v = res.header(name);
            if (v.empty())
              continue;
            if (!first)
              j += ',';
            first = false;
            append_json_string(j, name);
            j += ':';
            append_json_string(j, v);
          }
          j += '}';
        }
        j += ",\"attempts\":" + std::to_string(o.attempts);
        j += ",\"elapsed_ms\":" + millis(o.elapsed);
        j += ",\"transfer_ms\":" + millis(res.total);
        // JSON text is UTF-8: a body that is not (an image, gzip) goes as
        // base64 rather than losing its bytes to U+FFFD.
        if (is_utf8(res.body)) {
          j += ",\"body\":";
          append_json_string(j, res.body);
        } else {
          j += ",\"body_base64\":\"";
          append_base64(j, res.body);
          j += '"';
        }
        j += '}';
        r.body = std::move(j);
        break;
      }
    }
    pending_.complete(t, outcome::emit);
    after_settle(out);
  }

  void settle_failure(ticket t, std::string why, emitter& out) {
    pending_.fail(t, std::move(why));
    after_settle(out);
  }

  void after_settle(emitter& out) {
    --active_;
    pending_.flush(out);
    start(out);
  }

  fetch_settings settings_;
  text_template url_ = parse("{body}");
  std::optional<text_template> body_;
  std::vector<header_template> headers_;
  std::vector<text_template> mirrors_;
  std::vector<std::string> keep_headers_;
  output_mode out_mode_ = output_mode::json;
  // By status class: [0] no response, [k] kxx; null outside a run.
  std::array<std::atomic<uint64_t>*, 6> status_classes_{};
  bool rate_by_key_ = false;
  size_t fixed_cap_ = 64;
  std::optional<adaptive_limit> adaptive_;
  size_t active_ = 0; // records between begin and settle
  bool starting_ = false;
  bool start_again_ = false;
  cache_client* cache_ = nullptr;
  std::unique_ptr<fetcher> fetcher_;
};

void check(const node_spec& n, const graph_spec& g, const registry&,
           std::vector<diagnostic>& errors) {
  check_fetch_settings(n, errors);
  check_url(n, "url", false, errors);
  check_template(n, "body", errors);
  check_url(n, "mirrors", false, errors);
  for (auto param : {"body", "headers"})
    check_no_page(n, param, errors);
  // Records started at once, each taking a permit per mirror.
  int64_t at_once = -1;
  auto cap = n.params.str("max_in_flight");
  if (cap == "adaptive")
    at_once = n.params.integer("adaptive_max");
  else if (!cap.empty() && cap.size() <= 6
           && std::all_of(cap.begin(), cap.end(), [](char c) {
                return std::isdigit(static_cast<unsigned char>(c));
              }))
    at_once = static_cast<int64_t>(std::stoul(cap));
  if (at_once > 0) {
    auto mirrors = n.params.has("mirrors")
                     ? static_cast<int64_t>(n.params.strings("mirrors").size())
                     : 1;
    check_limiter_wait(n, g, at_once * std::max<int64_t>(mirrors, 1),
                       cap == "adaptive" ? "adaptive_max" : "max_in_flight",
                       errors);
  }
  if (cap != "adaptive") {
    bool digits = !cap.empty() && cap.size() <= 6
                  && std::all_of(cap.begin(), cap.end(), [](char c) {
                       return std::isdigit(static_cast<unsigned char>(c));
                     });
    if (!digits || std::stoul(cap) == 0)
      errors.push_back({n.value_at("max_in_flight"),
                        "'max_in_flight': expected a number from 1 to 999999 "
                        "or 'adaptive', got '" + cap + "'"});
  }
  if (n.params.has("mirrors") && n.params.strings("mirrors").size() < 2)
    errors.push_back({n.value_at("mirrors"),
                      "'mirrors': a race needs at least two URLs"});
  if (n.params.has("body") && n.params.str("method") == "GET")
    errors.push_back({n.value_at("body"),
                      "'body' is not sent with method GET: set 'method'"});
  if (n.workers > 1)
    errors.push_back({n.at("workers"),
                      "http_fetch overlaps its requests on its own node: use "
                      "'max_in_flight', not 'workers'"});
  if (n.blocking)
    errors.push_back({n.at("blocking"),
                      "http_fetch never blocks: its transfers run on its "
                      "engine's I/O thread"});
}

} // namespace

actor_type http_fetch_type() {
  actor_type t;
  t.name = "http_fetch";
  t.kind = actor_kind::stage;
  t.slots = {"cache", "rate_limit"};
  t.doc = "Makes one HTTP request per record (libcurl, connections reused) "
          "and passes the response on; failures after retries go to errors.";
  t.params = {
    {"url", param_type::string, false, "{body}",
     "the URL: a template over {body}, {key}, {seq}, {attr.NAME} (values "
     "are percent-encoded unless the template is one placeholder)",
     {}, 0},
    {"body", param_type::string, false, "",
     "the request body, a template (POST, PUT, PATCH)", {}, 0},
    {"mirrors", param_type::strings, false, "",
     "URL templates raced per record: the first accepted response wins, the "
     "other transfers are aborted",
     {}, 0},
    {"max_in_flight", param_type::string, false, "16",
     "records fetched at once: a number, or 'adaptive' (grows while latency "
     "holds, backs off on rising latency, 429, 503 and timeouts)",
     {}, 0},
    {"adaptive_max", param_type::integer, false, "64",
     "with max_in_flight: adaptive, the most it grows to", {}, 1, 100000},
    {"output", param_type::choice, false, "json",
     "the record's new body: json (url, status, headers, attempts, "
     "elapsed_ms, body), body (the response body) or status",
     {"json", "body", "status"}, 0},
    {"response_headers", param_type::strings, false, "",
     "response headers kept (as attributes http_<name>, and in json)", {}, 0},
    {"rate_by", param_type::choice, false, "none",
     "with a rate_limit slot: one bucket for all, or one per record key",
     {"none", "key"}, 0},
  };
  for (auto& p : fetch_params())
    t.params.push_back(std::move(p));
  t.make_node = [](const node_context& ctx) -> std::unique_ptr<node_logic> {
    return std::make_unique<http_fetch_logic>(ctx);
  };
  t.validate = check;
  return t;
}

} // namespace troupe::actors
