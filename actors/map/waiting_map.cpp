// The waiting map: a `map` whose node names services in its slots. For each
// record, in this order and each step only if its slot is set:
//   rate_limit: wait for a permit (per record key with `rate_by: key`)
//   cache:      look the record up (by function and body, or key with
//               `cache_key: key`); a hit is the result, no computation
//   compute:    on a pool worker (`pool:`) or inline; with a cache lease the
//               value is handed back to the cache (fulfil), a failure is not
//               cached (abandon)
// then the permit goes back. At most `max_in_flight` records are between
// their first step and their outcome; the rest wait, held, in input order.
// `ordered` (default) passes results on in input order.
//
// Everything here runs on the node's thread; the services answer through
// the node (waiting.hpp), so a crash of this node redelivers every record it
// held, whatever step it was in.
#include "waiting_map.hpp"

#include <algorithm>
#include <optional>
#include <unordered_map>

#include "troupe/actors/cache.hpp"
#include "troupe/actors/rate_limiter.hpp"
#include "troupe/actors/worker_pool.hpp"
#include "troupe/waiting.hpp"

namespace troupe::actors {

namespace {

using ticket = pending_records::ticket;
using outcome = pending_records::outcome;

class waiting_map : public waiting_stage {
public:
  explicit waiting_map(const node_context& ctx)
    : waiting_stage(ctx.spec.ordered, static_cast<size_t>(
                                        ctx.spec.params.integer("max_in_flight"))),
      fn_name_(ctx.spec.params.str("fn")),
      max_attempts_(ctx.max_attempts),
      cap_(static_cast<size_t>(ctx.spec.params.integer("max_in_flight"))),
      cache_by_key_(ctx.spec.params.str("cache_key") == "key"),
      rate_by_key_(ctx.spec.params.str("rate_by") == "key"),
      priority_(static_cast<int>(ctx.spec.params.integer("priority"))) {
    if (ctx.calls == nullptr)
      throw std::logic_error("a waiting map needs node calls");
    limiter_ = ctx.calls->client<limiter_client>("rate_limit");
    cache_ = ctx.calls->client<cache_client>("cache");
    pool_ = ctx.calls->client<pool_client>("pool");
    if (pool_ == nullptr)
      fn_ = ctx.reg.find_function(fn_name_)->make();
  }

private:
  // Starts every record the cap allows, batching cache lookups.
  void start(emitter& out) override {
    std::vector<ticket> ready;
    while (auto t = pending_.next_to_start()) {
      if (limiter_ != nullptr)
        acquire(*t);
      else
        ready.push_back(*t);
    }
    if (!ready.empty())
      after_permit(std::move(ready), out);
  }

  // Starting more only once half the cap is free gathers lookups into
  // batches instead of one request per completed record.
  void maybe_start(emitter& out) {
    if (pending_.started() <= cap_ / 2)
      start(out);
  }

  void acquire(ticket t) {
    auto& r = pending_.at(t);
    limiter_->acquire(rate_by_key_ ? r.key : std::string{},
                      [this, t](call_result<uint64_t> p, emitter& out) {
                        if (!p.ok()) {
                          done(t, fn_result::fail(std::string{"rate_limit: "}
                                                  + to_string(p.status())
                                                  + ": " + p.error()),
                               out);
                          return;
                        }
                        permits_[t] = p.value();
                        after_permit({t}, out);
                      });
  }

  void after_permit(std::vector<ticket> ts, emitter& out) {
    if (cache_ == nullptr) {
      if (pool_ != nullptr) {
        submit_groups(ts);
        return;
      }
      for (auto t : ts)
        compute(t, std::nullopt, out);
      return;
    }
    std::vector<std::string> keys;
    keys.reserve(ts.size());
    for (auto t : ts) {
      auto& r = pending_.at(t);
      keys.push_back(cache_key_of(r));
    }
    cache_->lookup(
      std::move(keys),
      [this, ts = std::move(ts)](size_t i, cache_answer a, emitter& later) {
        auto t = ts.at(i);
        switch (a.what) {
          case cache_answer::kind::hit:
            done(t, from_cache(pending_.at(t), std::move(a.value)), later);
            break;
          case cache_answer::kind::lease:
            compute(t, a.lease, later);
            break;
          case cache_answer::kind::failed:
            done(t, fn_result::fail("cache: " + a.error), later);
            break;
        }
      });
  }

  void compute(ticket t, std::optional<uint64_t> lease, emitter& out) {
    auto& r = pending_.at(t);
    std::string cache_key;
    if (lease)
      cache_key = cache_key_of(r);
    if (pool_ == nullptr) {
      auto res = apply_with_retries(fn_, r, max_attempts_);
      settle_lease(lease, cache_key, r, res);
      done(t, std::move(res), out);
      return;
    }
    pool_->submit(
      fn_name_, record_batch{std::vector<record>{r}}, r.key, priority_,
      [this, t, lease, cache_key](call_result<pool_result> res,
                                  emitter& later) {
        auto& rec = pending_.at(t);
        fn_result f;
        if (!res.ok()) {
          f = fn_result::fail(std::string{"pool: "} + to_string(res.status())
                              + ": " + res.error());
        } else if (auto& v = res.value(); !v.kept.empty()) {
          rec = std::move(v.kept.mutable_records().front());
        } else if (!v.failed.empty()) {
          f = fn_result::fail(v.failed.front().reason);
        } else {
          f = fn_result::drop();
        }
        settle_lease(lease, cache_key, rec, f);
        done(t, std::move(f), later);
      });
  }

  // Without a cache every record goes to the pool: one task per record key
  // among the records started together (a task costs a few microseconds;
  // a key's records stay together for a key_hash pool).
  void submit_groups(const std::vector<ticket>& ts) {
    std::vector<std::pair<std::string, std::vector<ticket>>> groups;
    for (auto t : ts) {
      auto& key = pending_.at(t).key;
      auto g = std::find_if(groups.begin(), groups.end(),
                            [&](auto& x) { return x.first == key; });
      if (g == groups.end())
        groups.emplace_back(key, std::vector<ticket>{t});
      else
        g->second.push_back(t);
    }
    for (auto& [key, group] : groups) {
      std::vector<record> rs;
      rs.reserve(group.size());
      for (auto t : group)
        rs.push_back(pending_.at(t));
      pool_->submit(fn_name_, record_batch{std::move(rs)}, key, priority_,
                    [this, group = group](call_result<pool_result> res,
                                          emitter& later) {
                      settle_group(group, res, later);
                    });
    }
  }

  // A group's result back to its records: kept records come back in input
  // order, failed ones by identity, the rest were dropped; the counts must
  // agree, or the function changed what identifies a record.
  void settle_group(const std::vector<ticket>& group,
                    call_result<pool_result>& res, emitter& out) {
    if (!res.ok()) {
      auto why = std::string{"pool: "} + to_string(res.status()) + ": "
                 + res.error();
      for (auto t : group)
        settle(t, fn_result::fail(why));
      pending_.flush(out);
      maybe_start(out);
      return;
    }
    auto& v = res.value();
    auto& kept = v.kept.mutable_records();
    auto same = [](const record& a, const record& b) {
      return a.seq == b.seq && a.ctx.origin == b.ctx.origin;
    };
    size_t k = 0, dropped = 0;
    std::vector<bool> failed_used(v.failed.size(), false);
    for (auto t : group) {
      auto& r = pending_.at(t);
      if (k < kept.size() && same(kept[k], r)) {
        r = std::move(kept[k++]);
        settle(t, fn_result::keep());
        continue;
      }
      auto f = std::find_if(v.failed.begin(), v.failed.end(),
                            [&](auto& x) { return same(x.rec, r); });
      if (f != v.failed.end() && !failed_used[f - v.failed.begin()]) {
        failed_used[f - v.failed.begin()] = true;
        r = f->rec; // with its error attributes and attempt
        settle(t, fn_result::fail(f->reason));
        continue;
      }
      ++dropped;
      settle(t, dropped <= v.dropped
                  ? fn_result::drop()
                  : fn_result::fail("pool: the function changed the records' "
                                    "seq; its result cannot be matched"));
    }
    pending_.flush(out);
    maybe_start(out);
  }

  // Completes a record without flushing (a group flushes once).
  void settle(ticket t, fn_result res) {
    if (auto p = permits_.find(t); p != permits_.end()) {
      limiter_->release(p->second);
      permits_.erase(p);
    }
    switch (res.what) {
      case fn_result::outcome::keep:
        pending_.complete(t, outcome::emit);
        break;
      case fn_result::outcome::drop:
        pending_.complete(t, outcome::drop);
        break;
      case fn_result::outcome::fail:
        pending_.fail(t, std::move(res.error));
        break;
    }
  }

  // The function's name is part of the key: maps with different functions
  // may share one cache without reading each other's results.
  std::string cache_key_of(const record& r) const {
    const auto& k = cache_by_key_ ? r.key : r.body;
    std::string out;
    out.reserve(fn_name_.size() + 1 + k.size());
    out.append(fn_name_).push_back('\0');
    out.append(k);
    return out;
  }

  // What the map caches is the function's outcome, not only a body: 'k'
  // and the new body for a kept record, 'd' for a dropped one (a filtering
  // function is memoised too). A failure is not cached (abandon): its
  // waiters get the error, and a later lookup computes again.
  void settle_lease(std::optional<uint64_t> lease, const std::string& key,
                    const record& r, const fn_result& res) {
    if (!lease)
      return;
    switch (res.what) {
      case fn_result::outcome::keep:
        cache_->fulfil(key, *lease, "k" + r.body);
        break;
      case fn_result::outcome::drop:
        cache_->fulfil(key, *lease, "d");
        break;
      case fn_result::outcome::fail:
        cache_->abandon(key, *lease, res.error);
        break;
    }
  }

  static fn_result from_cache(record& r, std::string value) {
    if (!value.empty() && value[0] == 'k') {
      r.body.assign(value, 1, std::string::npos);
      return fn_result::keep();
    }
    if (value == "d")
      return fn_result::drop();
    return fn_result::fail("cache: an entry this map did not write");
  }

  void done(ticket t, fn_result res, emitter& out) {
    settle(t, std::move(res));
    pending_.flush(out);
    maybe_start(out);
  }

  std::string fn_name_;
  uint32_t max_attempts_;
  size_t cap_;
  bool cache_by_key_;
  bool rate_by_key_;
  int priority_;
  record_fn fn_;
  limiter_client* limiter_ = nullptr;
  cache_client* cache_ = nullptr;
  pool_client* pool_ = nullptr;
  std::unordered_map<ticket, uint64_t> permits_;
};

} // namespace

bool map_waits(const node_spec& n) {
  for (auto slot : {"cache", "pool", "rate_limit"})
    if (n.resources.count(slot))
      return true;
  return false;
}

std::unique_ptr<node_logic> make_waiting_map(const node_context& ctx) {
  return std::make_unique<waiting_map>(ctx);
}

} // namespace troupe::actors
