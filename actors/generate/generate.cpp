// generate: a source of `count` records whose body (and key) come from a
// template where {i} is the record's index. Optional `rate` paces it.
#include <charconv>
#include <chrono>

#include "troupe/actors/builtin_types.hpp"
#include "troupe/actors/io.hpp"

namespace troupe::actors {

namespace {

struct generate_config {
  uint64_t count;           // records to make
  uint64_t start;           // first index
  std::string body;         // template; {i} becomes the index
  std::string key;          // template for the key; may be empty
  double rate;              // records per second; 0: as fast as credit allows
  uint64_t cycle;           // > 0: {i} in templates is the index modulo this

  static generate_config from(const param_set& p) {
    return {static_cast<uint64_t>(p.integer("count")),
            static_cast<uint64_t>(p.integer("start")), p.str("template"),
            p.has("key") ? p.str("key") : "",
            p.has("rate") ? p.number("rate") : 0.0,
            static_cast<uint64_t>(p.integer("cycle"))};
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

// Kept across restarts (node_context::memory): how far generating got, and
// what was emitted but not acknowledged, which a replacement sends again
// (attempt + 1) before it goes on. So a restart, alone or with its group,
// makes progress instead of starting over.
struct generate_memory : node_memory {
  replay_log log;
  uint64_t next = 0; // records made so far
  std::chrono::steady_clock::time_point began; // of the rate's token bucket
};

class generate_logic : public node_logic {
public:
  generate_logic(generate_config cfg, const node_context& ctx)
    : cfg_(std::move(cfg)), body_(cfg_.body), key_(cfg_.key),
      origin_(ctx.origin) {
    if (ctx.memory && *ctx.memory)
      if (auto* m = dynamic_cast<generate_memory*>(ctx.memory->get())) {
        mem_ = m;
        mem_->log.restart(replays_sent(ctx));
        return;
      }
    auto m = std::make_unique<generate_memory>();
    mem_ = m.get();
    if (ctx.memory)
      *ctx.memory = std::move(m);
    else
      own_ = std::move(m);
  }

  produce_status produce(size_t max, emitter& out) override {
    auto& next = mem_->next;
    if (mem_->log.replaying()) {
      mem_->log.replay(max, out);
      return produce_status::more;
    }
    auto left = cfg_.count - next;
    auto n = std::min<uint64_t>(left, max);
    if (cfg_.rate > 0) {
      // Token bucket of one second: only what the elapsed time allows. The
      // emitter's clock, so the pacing runs in virtual time under test.
      auto now = out.now();
      auto& began = mem_->began;
      if (next == 0)
        began = now;
      auto secs = std::chrono::duration<double>(now - began).count();
      auto allowed = static_cast<uint64_t>(secs * cfg_.rate) + 1;
      auto made = next;
      n = std::min<uint64_t>(n, allowed > made ? allowed - made : 0);
      if (n == 0)
        return left == 0 ? produce_status::done : produce_status::idle;
    }
    // Recycled storage: the records' strings keep their capacity.
    auto b = record_batch::make(n);
    for (auto& r : b.mutable_records()) {
      auto i = cfg_.start + next++;
      r.seq = i;
      r.ctx.origin = origin_;
      auto shown = cfg_.cycle > 0 ? i % cfg_.cycle : i;
      body_.expand(shown, r.body);
      if (!key_.empty())
        key_.expand(shown, r.key);
    }
    if (n > 0) {
      mem_->log.sent(b);
      out.create(n);
      out.emit(std::move(b));
    }
    if (next == cfg_.count)
      return produce_status::done;
    return cfg_.rate > 0 ? produce_status::idle : produce_status::more;
  }

  progress_mark progress() const override {
    return {mem_->next, cfg_.count};
  }

  void acknowledged(const record_batch& batch) override {
    mem_->log.acknowledged(batch);
  }

  duration idle_delay() const override {
    auto per = 1e9 / std::max(cfg_.rate, 1e-3);
    return duration{static_cast<int64_t>(std::clamp(per, 1e5, 1e9))};
  }

private:
  generate_config cfg_;
  index_template body_;
  index_template key_;
  uint32_t origin_;
  generate_memory* mem_ = nullptr;
  std::unique_ptr<generate_memory> own_; // without node_context::memory
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
    {"cycle", param_type::integer, false, "0",
     "when above 0, {i} in the templates is the index modulo cycle, so "
     "bodies and keys repeat (seq stays unique)",
     {}, 0},
  };
  t.make_node = [](const node_context& ctx) {
    return std::make_unique<generate_logic>(
      generate_config::from(ctx.spec.params), ctx);
  };
  return t;
}

} // namespace troupe::actors
