#include "fetcher.hpp"

#include "troupe/actors/rate_limiter.hpp"

namespace troupe::http {

std::string millis(duration d) {
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  auto frac = std::to_string(us % 1000);
  return std::to_string(us / 1000) + '.' + std::string(3 - frac.size(), '0')
         + frac;
}

bool succeeded(const fetch_outcome& o, const std::vector<std::string>& accept) {
  return o.refused.empty() && o.res.transferred()
         && accepted(o.res.status, accept);
}

std::string failure_reason(const fetch_outcome& o) {
  if (o.summary)
    return o.refused;
  std::string why;
  if (!o.refused.empty())
    why = o.refused;
  else if (!o.res.transferred())
    why = std::string{to_string(o.res.error)} + ": " + o.res.error_text;
  else
    why = "HTTP " + std::to_string(o.res.status);
  why += " (" + o.res.url + ", " + std::to_string(o.attempts)
         + (o.attempts == 1 ? " attempt)" : " attempts)");
  if (!o.note.empty())
    why += "; " + o.note;
  return why;
}

const char* failure_kind(const fetch_outcome& o) {
  if (o.summary)
    return "mirrors";
  if (!o.refused.empty())
    return "refused";
  if (!o.res.transferred())
    return to_string(o.res.error);
  return "status";
}

void set_outcome_attrs(record& r, const fetch_outcome& o, bool ok) {
  r.set_attr("http_url", o.res.url);
  r.set_attr("http_attempts", std::to_string(o.attempts));
  r.set_attr("http_elapsed_ms", millis(o.elapsed));
  if (o.res.total > duration{0})
    r.set_attr("http_transfer_ms", millis(o.res.total));
  if (o.res.status != 0)
    r.set_attr("http_status", std::to_string(o.res.status));
  if (!ok)
    r.set_attr("http_error", failure_kind(o));
}

fetcher::fetcher(const fetch_settings& s, node_calls& calls,
                 limiter_client* limiter, uint64_t seed)
  : calls_(calls),
    limiter_(limiter),
    retry_(s.retry, seed),
    breaker_(s.breaker.failures, s.breaker.cooldown),
    engine_(s.transport) {
}

uint64_t fetcher::fetch(request req, std::string limit_key, done_fn done,
                        emitter& out) {
  auto j = std::make_shared<job>();
  j->handle = next_handle_++;
  j->host = host_of(req.url);
  j->req = std::move(req);
  j->limit_key = std::move(limit_key);
  j->done = std::move(done);
  j->began = out.now();
  jobs_.emplace(j->handle, j);
  attempt(j, out);
  return j->handle;
}

void fetcher::cancel(uint64_t handle, emitter& out) {
  auto i = jobs_.find(handle);
  if (i == jobs_.end())
    return;
  auto j = i->second;
  j->cancelled = true;
  if (j->transfer) {
    engine_.cancel(*j->transfer); // its completion finishes the job
  } else if (j->timer) {
    // Backing off: the retry will not run; the node stops waiting for it.
    calls_.cancel_after(*j->timer);
    j->timer.reset();
    attempt(j, out); // finishes it as cancelled
  }
  // Else it waits for a permit: the grant finds it cancelled.
}

void fetcher::attempt(const job_ptr& j, emitter& out) {
  if (j->cancelled) {
    fetch_outcome o;
    o.res.url = j->req.url;
    o.res.error = failure::cancelled;
    o.res.error_text = "cancelled";
    o.refused = "cancelled";
    finish(j, std::move(o), out);
    return;
  }
  auto verdict = breaker_.admit(j->host, out.now());
  j->probe = verdict == circuit_breaker::verdict::probe;
  if (verdict == circuit_breaker::verdict::refuse) {
    fetch_outcome o;
    o.res.url = j->req.url;
    o.refused = "circuit open for " + j->host + " (failing fast after "
                "repeated failures)";
    if (j->last) { // this record's own failures opened it: say what they were
      fetch_outcome before;
      before.res = *j->last;
      o.refused += "; its last attempt: " + std::string{failure_kind(before)}
                   + (j->last->transferred()
                        ? " " + std::to_string(j->last->status)
                        : ": " + j->last->error_text);
    }
    finish(j, std::move(o), out);
    return;
  }
  if (limiter_ == nullptr) {
    transfer(j, std::nullopt);
    return;
  }
  limiter_->acquire(j->limit_key, [this, j](call_result<uint64_t> p,
                                           emitter& later) {
    if (!p.ok()) {
      fetch_outcome o;
      o.res.url = j->req.url;
      o.refused = std::string{"rate_limit: "} + to_string(p.status()) + ": "
                  + p.error();
      // A probe that never ran proves nothing: the next request probes.
      if (j->probe)
        breaker_.abandon(j->host);
      finish(j, std::move(o), later);
      return;
    }
    if (j->cancelled) {
      limiter_->release(p.value());
      attempt(j, later);
      return;
    }
    transfer(j, p.value());
  });
}

void fetcher::transfer(const job_ptr& j, std::optional<uint64_t> permit) {
  ++j->attempts;
  ++transfers_;
  {
    std::lock_guard<std::mutex> guard{inbox_->mtx};
    if (!inbox_->armed && inbox_->items.empty()) // idle: nothing fired
      inbox_->armed = calls_.external();
  }
  // The engine calls back on its I/O thread; the drain runs on the node's
  // thread, and only while this incarnation (and `this`) lives.
  j->transfer = engine_.submit(
    j->req, [this, box = inbox_, j, permit](response res) {
      std::shared_ptr<external_call> fire;
      {
        std::lock_guard<std::mutex> guard{box->mtx};
        box->items.emplace_back(j, permit, std::move(res));
        fire = std::move(box->armed);
      }
      if (fire)
        fire->finish([this](emitter& out) { drain(out); });
    });
}

void fetcher::drain(emitter& out) {
  std::vector<std::tuple<job_ptr, std::optional<uint64_t>, response>> got;
  {
    std::lock_guard<std::mutex> guard{inbox_->mtx};
    got.swap(inbox_->items);
    transfers_ -= got.size();
    if (transfers_ > 0)
      inbox_->armed = calls_.external(); // for the next that finishes
  }
  for (auto& [j, permit, res] : got)
    on_response(j, permit, std::move(res), out);
}

void fetcher::on_response(const job_ptr& j, std::optional<uint64_t> permit,
                          response res, emitter& out) {
  j->transfer.reset();
  if (permit && limiter_ != nullptr)
    limiter_->release(*permit);
  if (res.error == failure::cancelled) {
    if (j->probe)
      breaker_.abandon(j->host);
  } else {
    // Only what says something about the host counts against it: not our
    // own limits (too_large, forbidden_*, a bad URL, a redirect loop).
    bool failed = res.status >= 500 || res.error == failure::connect
                  || res.error == failure::timeout
                  || res.error == failure::low_speed
                  || res.error == failure::reset || res.error == failure::tls
                  || res.error == failure::other;
    if (failed)
      breaker_.failure(j->host, out.now());
    else
      breaker_.success(j->host);
    if (observer_)
      observer_(res);
  }
  fetch_outcome o;
  if (!j->cancelled && res.error != failure::cancelled) {
    auto wall = std::chrono::system_clock::now();
    if (auto delay = retry_.next(j->req, res, j->attempts, wall)) {
      j->last = std::move(res);
      j->timer = calls_.after(*delay, [this, j](emitter& later) {
        j->timer.reset();
        attempt(j, later);
      });
      return;
    }
    // Say why a retryable outcome was not retried, when it was the cap.
    auto& opts = retry_.options();
    if (retry_.retryable(j->req, res) && j->attempts < opts.max_attempts)
      if (auto ra = res.header("retry-after"); !ra.empty())
        if (auto d = parse_retry_after(ra, wall); d && *d > opts.retry_after_cap)
          o.note = "Retry-After " + ra + " is above retry_after_cap";
  }
  o.res = std::move(res);
  finish(j, std::move(o), out);
}

void fetcher::finish(const job_ptr& j, fetch_outcome o, emitter& out) {
  o.attempts = j->attempts;
  o.elapsed = out.now() - j->began;
  if (o.res.url.empty())
    o.res.url = j->req.url;
  jobs_.erase(j->handle);
  auto done = std::move(j->done);
  done(std::move(o), out);
}

} // namespace troupe::http
