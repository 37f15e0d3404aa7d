// generate: a source of `count` records whose body (and key) come from a
// template where {i} is the record's index. Optional `rate` paces it.
#include <charconv>
#include <chrono>

#include "troupe/actors/builtin_types.hpp"

namespace troupe::actors {

namespace {

struct generate_config {
  uint64_t count;           // records to make
  uint64_t start;           // first index
  std::string body;         // template; {i} becomes the index
  std::string key;          // template for the key; may be empty
  double rate;              // records per second; 0: as fast as credit allows

  static generate_config from(const param_set& p) {
    return {static_cast<uint64_t>(p.integer("count")),
            static_cast<uint64_t>(p.integer("start")), p.str("template"),
            p.has("key") ? p.str("key") : "",
            p.has("rate") ? p.number("rate") : 0.0};
  }
};

// A template split once at its {i} placeholders, so making a record is a
// few appends and one integer formatting.
class index_template {
public:
  explicit index_template(const std::string& text) {
    size_t pos = 0;
    for (;;) {
      auto hit = text.find("{i}", pos);
      parts_.push_back(text.substr(pos, hit == std::string::npos
                                          ? std::string::npos
                                          : hit - pos));
      if (hit == std::string::npos)
        return;
      pos = hit + 3;
    }
  }

  bool empty() const {
    return parts_.size() == 1 && parts_[0].empty();
  }

  void expand(uint64_t i, std::string& out) const {
    char digits[24];
    auto end = std::to_chars(digits, digits + sizeof(digits), i).ptr;
    out.assign(parts_[0]);
    for (size_t k = 1; k < parts_.size(); ++k) {
      out.append(digits, end);
      out.append(parts_[k]);
    }
  }

private:
  std::vector<std::string> parts_; // literal text around each {i}
};

class generate_logic : public node_logic {
public:
  explicit generate_logic(generate_config cfg)
    : cfg_(std::move(cfg)), body_(cfg_.body), key_(cfg_.key) {
  }

  produce_status produce(size_t max, emitter& out) override {
    auto left = cfg_.count - next_;
    auto n = std::min<uint64_t>(left, max);
    if (cfg_.rate > 0) {
      // Token bucket of one second: only what the elapsed time allows.
      auto now = std::chrono::steady_clock::now();
      if (next_ == 0)
        began_ = now;
      auto secs = std::chrono::duration<double>(now - began_).count();
      auto allowed = static_cast<uint64_t>(secs * cfg_.rate) + 1;
      auto made = next_;
      n = std::min<uint64_t>(n, allowed > made ? allowed - made : 0);
      if (n == 0)
        return left == 0 ? produce_status::done : produce_status::idle;
    }
    std::vector<record> rs(n);
    for (auto& r : rs) {
      auto i = cfg_.start + next_++;
      r.seq = i;
      body_.expand(i, r.body);
      if (!key_.empty())
        key_.expand(i, r.key);
    }
    if (n > 0) {
      out.create(n);
      out.emit(record_batch{std::move(rs)});
    }
    if (next_ == cfg_.count)
      return produce_status::done;
    return cfg_.rate > 0 ? produce_status::idle : produce_status::more;
  }

  duration idle_delay() const override {
    auto per = 1e9 / std::max(cfg_.rate, 1e-3);
    return duration{static_cast<int64_t>(std::clamp(per, 1e5, 1e9))};
  }

private:
  generate_config cfg_;
  index_template body_;
  index_template key_;
  uint64_t next_ = 0;
  std::chrono::steady_clock::time_point began_;
};

} // namespace

actor_type generate_type() {
  actor_type t;
  t.name = "generate";
  t.kind = actor_kind::source;
  t.doc = "Makes `count` records from a template ({i} is the index).";
  t.params = {
    {"count", param_type::integer, false, "1000", "number of records", {}, 0},
    {"start", param_type::integer, false, "0", "first index", {}, 0},
    {"template", param_type::string, false, "{i}",
     "body template; {i} becomes the index", {}, 0},
    {"key", param_type::string, false, "", "key template; {i} is the index",
     {}, 0},
    {"rate", param_type::rate, false, "",
     "records per second (e.g. 100/s); unset: as fast as credit allows", {}, 0},
  };
  t.make_node = [](const node_context& ctx) {
    return std::make_unique<generate_logic>(
      generate_config::from(ctx.spec.params));
  };
  return t;
}

} // namespace troupe::actors
