// gather: N requests at once under one deadline, from inside any actor
// (asyncio.gather / Promise.all, and gather(return_exceptions=True) /
// Promise.allSettled), and the ask_item both gather and race are given.
//
// Non-blocking: every request is a CAF request with the deadline as its
// timeout, and the result is handed to a callback that runs on the calling
// actor, like any `.then` (reply to your own caller from it through a
// response promise). No lock, no wait in a handler; the calling actor keeps
// handling other messages meanwhile. Each reply must be one value of type T;
// a reply of another shape is that item's error (caf::sec::unexpected_response).
//
//   gather_all<T>: results in the order of the requests, or the first error
//     (fail fast): `failed(index, error)` runs at the first failure (a
//     timeout is errc::timeout) and nothing else runs afterwards; the other
//     replies are ignored when they come.
//   gather_settled<T>: one settled<T> per request, in order, once every
//     request answered or the deadline passed (a late one is errc::timeout).
//
// Example (an actor answering its caller with three lookups, by typed handle):
//   auto rp = self->make_response_promise<std::string>();
//   troupe::gather_all<int64_t>(self,
//     {troupe::make_ask(counter_a, troupe::get_atom_v),
//      troupe::make_ask(counter_b, troupe::get_atom_v)}, 2s,
//     [rp](std::vector<int64_t>& totals) mutable { rp.deliver(...); },
//     [rp](size_t i, const caf::error& e) mutable { rp.deliver(e); });
//   return rp;
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <caf/actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/error.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>
#include <caf/sec.hpp>

#include "troupe/ask.hpp"
#include "troupe/errors.hpp"
#include "troupe/units.hpp"

namespace troupe {

// One request: whom to ask (any handle, typed or not) and what to send.
// `cancellable`: the callee speaks (cancel_atom, uint64_t request_id), see
// race.hpp; gather never cancels.
struct ask_item {
  caf::actor to;
  caf::message msg;
  bool cancellable = false;
};

template <class Handle, class... Ts>
ask_item make_ask(const Handle& to, Ts&&... xs) {
  return ask_item{caf::actor_cast<caf::actor>(to),
                  caf::make_message(std::forward<Ts>(xs)...), false};
}

// The outcome of one request of gather_settled: a value or an error.
template <class T>
class settled {
public:
  static settled success(T v) {
    settled s;
    s.value_ = std::move(v);
    return s;
  }
  static settled failure(caf::error e) {
    settled s;
    s.error_ = std::move(e);
    return s;
  }
  bool ok() const {
    return value_.has_value();
  }
  T& value() {
    return *value_;
  }
  const T& value() const {
    return *value_;
  }
  const caf::error& error() const {
    return error_;
  }

private:
  std::optional<T> value_;
  caf::error error_;
};

namespace detail {

// A request's error as the caller should see it: CAF's timeout becomes
// troupe's errc::timeout naming the item and the deadline.
caf::error gather_error(const char* who, size_t index, duration deadline,
                        caf::error err);

inline void check_deadline(const char* who, duration deadline) {
  if (deadline <= duration{0})
    throw std::invalid_argument(std::string{who}
                                + ": the deadline must be positive");
}

} // namespace detail

// Results in request order, or the first error. `done(std::vector<T>&)`
// or `failed(size_t index, const caf::error&)` runs exactly once, on `self`.
// An empty `items` calls done at once.
template <class T, class Self, class Done, class Failed>
void gather_all(Self* self, std::vector<ask_item> items, duration deadline,
                Done done, Failed failed) {
  detail::check_deadline("gather_all", deadline);
  struct state {
    std::vector<std::optional<T>> results;
    size_t left;
    bool over = false;
    Done done;
    Failed failed;
  };
  auto st = std::make_shared<state>(
    state{std::vector<std::optional<T>>(items.size()), items.size(), false,
          std::move(done), std::move(failed)});
  if (items.empty()) {
    std::vector<T> none;
    st->done(none);
    return;
  }
  for (size_t i = 0; i < items.size(); ++i) {
    ask(self, items[i].to, deadline, std::move(items[i].msg))
      .then(
        [st, i](T& v) {
          if (st->over)
            return;
          st->results[i] = std::move(v);
          if (--st->left > 0)
            return;
          st->over = true;
          std::vector<T> out;
          out.reserve(st->results.size());
          for (auto& r : st->results)
            out.push_back(std::move(*r));
          st->done(out);
        },
        [st, i, deadline](caf::error& e) {
          if (st->over)
            return;
          st->over = true; // fail fast: later replies are ignored
          st->failed(i, detail::gather_error("gather_all", i, deadline,
                                             std::move(e)));
        });
  }
}

// One settled<T> per request, in request order, once all answered or the
// deadline passed. `done(std::vector<settled<T>>&)` runs exactly once.
template <class T, class Self, class Done>
void gather_settled(Self* self, std::vector<ask_item> items, duration deadline,
                    Done done) {
  detail::check_deadline("gather_settled", deadline);
  struct state {
    std::vector<std::optional<settled<T>>> results;
    size_t left;
    Done done;
    void settle(size_t i, settled<T> s) {
      results[i] = std::move(s);
      if (--left > 0)
        return;
      std::vector<settled<T>> out;
      out.reserve(results.size());
      for (auto& r : results)
        out.push_back(std::move(*r));
      done(out);
    }
  };
  auto st = std::make_shared<state>(
    state{std::vector<std::optional<settled<T>>>(items.size()), items.size(),
          std::move(done)});
  if (items.empty()) {
    std::vector<settled<T>> none;
    st->done(none);
    return;
  }
  for (size_t i = 0; i < items.size(); ++i) {
    ask(self, items[i].to, deadline, std::move(items[i].msg))
      .then([st, i](T& v) { st->settle(i, settled<T>::success(std::move(v))); },
            [st, i, deadline](caf::error& e) {
              st->settle(i, settled<T>::failure(detail::gather_error(
                              "gather_settled", i, deadline, std::move(e))));
            });
  }
}

} // namespace troupe
