// paginate: a source that walks a paginated HTTP API (the seed's
// AsyncPaginator). It fetches page first_page, first_page + 1, ... from a URL
// template with {page}, one page at a time, and makes each item of a page a
// record (its key the page number): a line of the body, or an element of a
// JSON array. It stops at an empty page, a status in stop_on, or max_pages;
// a page that fails after its retries goes to `errors` and ends the walk.
//
// The walk's position and the items not yet emitted live in node_memory, and
// emitted records stay in a replay log until acknowledged, so a restarted
// paginate neither skips nor refetches a page it had.
#include <cstdio>
#include <deque>
#include <string_view>

#include "fetcher.hpp"
#include "settings.hpp"
#include "troupe/actors/builtin_types.hpp"
#include "troupe/actors/io.hpp"
#include "troupe/actors/rate_limiter.hpp"
#include "troupe/log.hpp"

namespace troupe::actors {

namespace {

using namespace troupe::http;

// The elements of a JSON array: strings unescaped, anything else as its JSON
// text. nullopt when `s` is not one JSON array.
class json_items {
public:
  static std::optional<std::vector<std::string>> parse(std::string_view s) {
    json_items p{s};
    std::vector<std::string> out;
    p.blank();
    if (!p.eat('['))
      return std::nullopt;
    p.blank();
    if (p.eat(']'))
      return p.end() ? std::optional{std::move(out)} : std::nullopt;
    for (;;) {
      p.blank();
      auto begin = p.pos_;
      if (p.peek() == '"') {
        std::string v;
        if (!p.string(v))
          return std::nullopt;
        out.push_back(std::move(v));
      } else {
        if (!p.value())
          return std::nullopt;
        out.emplace_back(s.substr(begin, p.pos_ - begin));
      }
      p.blank();
      if (p.eat(','))
        continue;
      if (p.eat(']'))
        return p.end() ? std::optional{std::move(out)} : std::nullopt;
      return std::nullopt;
    }
  }

private:
  explicit json_items(std::string_view s) : s_(s) {
  }
  char peek() const {
    return pos_ < s_.size() ? s_[pos_] : '\0';
  }
  bool eat(char c) {
    if (peek() != c)
      return false;
    ++pos_;
    return true;
  }
  void blank() {
    while (pos_ < s_.size()
           && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r'
               || s_[pos_] == '\t'))
      ++pos_;
  }
  bool end() {
    blank();
    return pos_ == s_.size();
  }
  static void utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out += static_cast<char>(cp);
    } else if (cp < 0x800) {
      out += static_cast<char>(0xC0 | (cp >> 6));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      out += static_cast<char>(0xE0 | (cp >> 12));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    } else {
      out += static_cast<char>(0xF0 | (cp >> 18));
      out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
      out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
      out += static_cast<char>(0x80 | (cp & 0x3F));
    }
  }
  bool hex4(uint32_t& v) {
    if (pos_ + 4 > s_.size())
      return false;
    v = 0;
    for (int i = 0; i < 4; ++i) {
      auto c = s_[pos_++];
      v <<= 4;
      if (c >= '0' && c <= '9')
        v |= static_cast<uint32_t>(c - '0');
      else if (c >= 'a' && c <= 'f')
        v |= static_cast<uint32_t>(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F')
        v |= static_cast<uint32_t>(c - 'A' + 10);
      else
        return false;
    }
    return true;
  }
  bool string(std::string& out) {
    if (!eat('"'))
      return false;
    while (pos_ < s_.size()) {
      auto c = s_[pos_++];
      if (c == '"')
        return true;
      if (static_cast<unsigned char>(c) < 0x20)
        return false;
      if (c != '\\') {
        out += c;
        continue;
      }
      if (pos_ >= s_.size())
        return false;
      switch (auto e = s_[pos_++]) {
        case '"': case '\\': case '/': out += e; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'n': out += '\n'; break;
        case 'r': out += '\r'; break;
        case 't': out += '\t'; break;
        case 'u': {
          uint32_t cp = 0;
          if (!hex4(cp))
            return false;
          if (cp >= 0xD800 && cp < 0xDC00) { // a surrogate pair
            uint32_t lo = 0;
            if (!eat('\\') || !eat('u') || !hex4(lo) || lo < 0xDC00
                || lo > 0xDFFF)
              return false;
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          }
          utf8(out, cp);
          break;
        }
        default:
          return false;
      }
    }
    return false;
  }
  // Skips one JSON value (depth-limited: a hostile page cannot recurse us).
  bool value(int depth = 0) {
    if (depth > 64)
      return false;
    blank();
    auto c = peek();
    if (c == '"') {
      std::string ignored;
      return string(ignored);
    }
    if (c == '[' || c == '{') {
      char close = c == '[' ? ']' : '}';
      ++pos_;
      blank();
      if (eat(close))
        return true;
      for (;;) {
        if (close == '}') {
          std::string ignored;
          blank();
          if (!string(ignored))
            return false;
          blank();
          if (!eat(':'))
            return false;
        }
        if (!value(depth + 1))
          return false;
        blank();
        if (eat(','))
          continue;
        return eat(close);
      }
    }
    auto begin = pos_;
    while (pos_ < s_.size()
           && std::string_view{"+-.0123456789eEtruefalsn"}.find(s_[pos_])
                != std::string_view::npos)
      ++pos_;
    auto word = s_.substr(begin, pos_ - begin);
    if (word == "true" || word == "false" || word == "null")
      return true;
    return !word.empty()
           && (word[0] == '-' || (word[0] >= '0' && word[0] <= '9'));
  }

  std::string_view s_;
  size_t pos_ = 0;
};

std::vector<std::string> split_lines(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    auto nl = body.find('\n', pos);
    auto line = body.substr(pos, nl == std::string::npos ? std::string::npos
                                                          : nl - pos);
    if (!line.empty() && line.back() == '\r')
      line.pop_back();
    if (!line.empty())
      out.push_back(std::move(line));
    if (nl == std::string::npos)
      break;
    pos = nl + 1;
  }
  return out;
}

struct paginate_memory : node_memory {
  replay_log log;
  uint64_t page = 0;     // the next page to fetch
  uint64_t fetched = 0;  // pages fetched so far
  uint64_t next_seq = 0;
  std::deque<record> ready; // items fetched, not emitted yet
  bool exhausted = false;
};

class paginate_logic : public node_logic {
public:
  explicit paginate_logic(const node_context& ctx)
    : settings_(read_fetch_settings(ctx.spec.params)),
      json_(ctx.spec.params.str("items") == "json"),
      max_pages_(static_cast<uint64_t>(ctx.spec.params.integer("max_pages"))) {
    if (ctx.calls == nullptr)
      throw std::logic_error("paginate needs node calls");
    auto& p = ctx.spec.params;
    std::string why;
    auto url = text_template::parse(p.str("url"), why);
    if (!url)
      throw std::invalid_argument(why);
    url_ = std::move(*url);
    if (p.has("stop_on"))
      stop_on_ = p.strings("stop_on");
    for (auto& [name, value] : settings_.headers) {
      auto t = text_template::parse(value, why);
      if (!t)
        throw std::invalid_argument(why);
      headers_.push_back({name, std::move(*t)});
    }
    if (ctx.memory && *ctx.memory)
      if (auto* m = dynamic_cast<paginate_memory*>(ctx.memory->get())) {
        mem_ = m;
        mem_->log.restart(ctx.delivery == delivery_mode::at_least_once);
      }
    if (mem_ == nullptr) {
      auto m = std::make_unique<paginate_memory>();
      m->page = static_cast<uint64_t>(p.integer("first_page"));
      mem_ = m.get();
      if (ctx.memory)
        *ctx.memory = std::move(m);
      else
        own_ = std::move(m);
    }
    fetcher_ = std::make_unique<fetcher>(
      settings_, *ctx.calls, ctx.calls->client<limiter_client>("rate_limit"),
      ctx.incarnation * 7919u + 3);
  }

  produce_status produce(size_t max, emitter& out) override {
    auto& m = *mem_;
    if (m.log.replaying()) {
      m.log.replay(max, out);
      return produce_status::more;
    }
    if (!m.ready.empty()) {
      auto n = std::min(max, m.ready.size());
      std::vector<record> rs;
      rs.reserve(n);
      for (size_t i = 0; i < n; ++i) {
        rs.push_back(std::move(m.ready.front()));
        m.ready.pop_front();
      }
      record_batch b{std::move(rs)};
      m.log.sent(b);
      out.create(n);
      out.emit(std::move(b));
      return produce_status::more;
    }
    if (m.exhausted)
      return produce_status::done;
    if (!fetching_)
      fetch_page(out);
    return produce_status::idle;
  }

  void acknowledged(const record_batch& batch) override {
    mem_->log.acknowledged(batch);
  }

  duration idle_delay() const override {
    return std::chrono::seconds(1); // a page's completion wakes us sooner
  }

private:
  void fetch_page(emitter& out) {
    fetching_ = true;
    record probe;
    auto page = mem_->page;
    request req;
    req.method = settings_.method;
    req.url = url_.render(probe, page, true);
    for (auto& [name, value] : headers_)
      req.headers.emplace_back(name, value.render(probe, page));
    fetcher_->fetch(std::move(req), std::string{},
                    [this, page](fetch_outcome o, emitter& later) {
                      fetching_ = false;
                      on_page(page, std::move(o), later);
                    },
                    out);
  }

  void on_page(uint64_t page, fetch_outcome o, emitter& out) {
    auto& m = *mem_;
    auto& res = o.res;
    if (succeeded(o, stop_on_)) {
      m.exhausted = true; // the API's own end (e.g. 404 past the last page)
      return;
    }
    if (!succeeded(o, settings_.accept)) {
      // The walk cannot go on without this page: say so on errors.
      record r;
      r.seq = m.next_seq++;
      r.key = std::to_string(page);
      r.body = res.url;
      set_outcome_attrs(r, o, false);
      out.create(1);
      out.fail(std::move(r), "page " + std::to_string(page) + ": "
                               + failure_reason(o)
                               + "; the walk ends here, later pages unread");
      m.exhausted = true;
      return;
    }
    std::vector<std::string> items;
    if (json_) {
      auto parsed = json_items::parse(res.body);
      if (!parsed) {
        record r;
        r.seq = m.next_seq++;
        r.key = std::to_string(page);
        r.body = res.body.substr(0, 1024);
        out.create(1);
        out.fail(std::move(r), "page " + std::to_string(page)
                                 + ": the body is not a JSON array; the walk "
                                   "ends here, later pages unread");
        m.exhausted = true;
        return;
      }
      items = std::move(*parsed);
    } else {
      items = split_lines(res.body);
    }
    ++m.fetched;
    ++m.page;
    if (items.empty()) {
      m.exhausted = true;
    } else if (m.fetched >= max_pages_) {
      // Not an error (the limit is the user's), but never silent.
      TROUPE_LOG(warn, "",
                 "paginate: stopped at max_pages ("
                   << max_pages_ << ") although page " << page
                   << " had items; raise max_pages to read on");
      m.exhausted = true;
    }
    for (auto& item : items) {
      record r;
      r.seq = m.next_seq++;
      r.key = std::to_string(page);
      r.body = std::move(item);
      m.ready.push_back(std::move(r));
    }
  }

  fetch_settings settings_;
  bool json_;
  uint64_t max_pages_;
  text_template url_;
  std::vector<std::string> stop_on_;
  std::vector<std::pair<std::string, text_template>> headers_;
  paginate_memory* mem_ = nullptr;
  std::unique_ptr<paginate_memory> own_;
  bool fetching_ = false;
  std::unique_ptr<fetcher> fetcher_;
};

void check(const node_spec& n, const graph_spec&, const registry&,
           std::vector<diagnostic>& errors) {
  check_fetch_settings(n, errors);
  check_url(n, "url", true, errors);
  // Its headers have no record either: {page} is all they may use.
  if (n.params.has("headers"))
    for (auto& h : n.params.strings("headers")) {
      std::string why;
      auto colon = h.find(':');
      if (colon == std::string::npos)
        continue; // check_fetch_settings reports it
      if (auto t = text_template::parse(h.substr(colon + 1), why))
        for (auto& name : t->placeholders())
          if (name != "page")
            errors.push_back({n.value_at("headers"),
                              "'headers': {" + name + "}: paginate has no "
                              "record to fill it from; use {page}"});
    }
  std::string why;
  if (auto t = text_template::parse(n.params.str("url"), why);
      t && !t->uses("page"))
    errors.push_back({n.value_at("url"),
                      "'url' has no {page}: every page would be the same"});
  if (n.params.has("stop_on"))
    for (auto& s : n.params.strings("stop_on"))
      if (!valid_status_entry(s))
        errors.push_back({n.value_at("stop_on"),
                          "'stop_on': '" + s
                            + "' is neither a status (404) nor a class (4xx)"});
}

} // namespace

actor_type paginate_type() {
  actor_type t;
  t.name = "paginate";
  t.kind = actor_kind::source;
  t.slots = {"rate_limit"};
  t.doc = "Fetches page after page of an HTTP API (url with {page}) until a "
          "page is empty, a stop_on status, or max_pages; each item (a line, "
          "or a JSON array element) becomes a record keyed by its page.";
  t.params = {
    {"url", param_type::string, true, "",
     "the page's URL, a template with {page}", {}, 0},
    {"first_page", param_type::integer, false, "0", "the first page's number",
     {}, 0, int64_t{1} << 53},
    {"max_pages", param_type::integer, false, "1000",
     "stop after this many pages", {}, 1, int64_t{1} << 40},
    {"items", param_type::choice, false, "lines",
     "a page's items: its non-empty lines, or the elements of a JSON array "
     "(strings unescaped, others as JSON text)",
     {"lines", "json"}, 0},
    {"stop_on", param_type::strings, false, "",
     "statuses that mean 'no more pages' (e.g. 404)", {}, 0},
  };
  for (auto& p : fetch_params())
    if (p.name != "body")
      t.params.push_back(std::move(p));
  t.make_node = [](const node_context& ctx) -> std::unique_ptr<node_logic> {
    return std::make_unique<paginate_logic>(ctx);
  };
  t.validate = check;
  return t;
}

} // namespace troupe::actors
