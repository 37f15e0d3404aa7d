// ask(): how troupe actors make requests of other actors.
//
// Every request in the runtime goes through here, so three rules hold in one
// place: the timeout is always finite and positive (a lost reply never blocks
// anything forever); the reply is handled asynchronously with
// `.then(on_reply, on_error)` (`.await` and a blocking `.receive` exist for
// code that must, but stall the actor: CAF #1584); and the deadlock detector
// sees the request as a wait from the caller on `dest` until its reply, error
// or timeout comes (deadlock_detector.hpp: a table entry, no message).
//
// The handle ask() returns takes both handlers (reply and error) so the wait
// always ends; a handler without the error one would leave it to the table's
// expiry.
//
// Example:
//   troupe::ask(self, counter, rt.request_timeout, troupe::get_atom_v)
//     .then([](int64_t n) { ... }, [](caf::error& e) { ... });
#pragma once

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include <caf/abstract_actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/atom.hpp>
#include <caf/detail/type_list.hpp>
#include <caf/detail/type_traits.hpp>
#include <caf/message.hpp>
#include <caf/timespan.hpp>

#include "troupe/deadlock_detector.hpp"
#include "troupe/units.hpp"

namespace troupe {

namespace detail {

// The message type a wait is labelled with: the first argument's atom text,
// else its type name (stable strings, computed once per type).
template <class T>
const char* message_label() {
  if constexpr (caf::is_atom_constant<T>::value) {
    static const std::string text = caf::to_string(T::value);
    return text.c_str();
  } else {
    static const std::string text = deadlock::type_label(typeid(T));
    return text.c_str();
  }
}

template <class... Ts>
const char* label_of_args(const Ts&... xs) {
  if constexpr (sizeof...(Ts) == 0) {
    return "";
  } else {
    using first = std::decay_t<caf::detail::tl_head_t<caf::detail::type_list<Ts...>>>;
    if constexpr (std::is_same_v<first, caf::message>)
      return deadlock::label_of(std::get<0>(std::forward_as_tuple(xs...)));
    else
      return message_label<first>();
  }
}

// `f` with the same signature that first ends the wait.
template <class F, class R, class... Args>
auto ending_wait(F f, deadlock::ticket t, caf::detail::type_list<Args...>) {
  return [f = std::move(f), t](Args... xs) mutable -> R {
    deadlock::end_wait(t);
    return f(std::forward<Args>(xs)...);
  };
}

template <class F>
auto ending_wait(F f, deadlock::ticket t) {
  using trait = caf::detail::get_callable_trait<F>;
  return ending_wait<F, typename trait::result_type>(
    std::move(f), t, typename trait::arg_types{});
}

} // namespace detail

// The response handle of ask(): CAF's, with the wait ended by the handlers.
template <class Handle>
class tracked_response {
public:
  tracked_response(Handle h, deadlock::ticket t)
    : h_(std::move(h)), ticket_(t) {
  }

  auto id() const noexcept {
    return h_.id();
  }

  template <class F, class OnError>
  void then(F f, OnError g) {
    h_.then(detail::ending_wait(std::move(f), ticket_),
            detail::ending_wait(std::move(g), ticket_));
  }

  template <class F, class OnError>
  void await(F f, OnError g) {
    deadlock::mark_blocking(ticket_);
    h_.await(detail::ending_wait(std::move(f), ticket_),
             detail::ending_wait(std::move(g), ticket_));
  }

  template <class F, class OnError>
  void receive(F f, OnError g) {
    deadlock::mark_blocking(ticket_);
    h_.receive(detail::ending_wait(std::move(f), ticket_),
               detail::ending_wait(std::move(g), ticket_));
  }

private:
  Handle h_;
  deadlock::ticket ticket_;
};

template <class Self, class Dest, class... Ts>
auto ask(Self* self, const Dest& dest, duration timeout, Ts&&... xs) {
  if (timeout <= duration{0})
    throw std::invalid_argument("troupe::ask: the timeout must be positive");
  // CAF adds the timeout to now(): duration::max() would overflow into an
  // instant timeout. Past ~31 years, "forever" is meant.
  timeout = std::min(timeout, duration{std::chrono::seconds(1'000'000'000)});
  auto* label = detail::label_of_args(xs...);
  auto h = self->request(dest, std::chrono::duration_cast<caf::timespan>(timeout),
                         std::forward<Ts>(xs)...);
  // A null handle: CAF answers with an error; actor_cast of it would
  // dereference a null control block.
  caf::abstract_actor* to = nullptr;
  if (dest)
    to = caf::actor_cast<caf::abstract_actor*>(dest);
  deadlock::ticket t;
  if (to)
    t = deadlock::begin_wait(self->home_system(), self->ctrl(), to->ctrl(),
                             label, timeout, h.id().integer_value());
  return tracked_response<decltype(h)>{std::move(h), t};
}

} // namespace troupe
