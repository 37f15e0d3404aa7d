// For service implementers: how a slot client (waiting.hpp) talks to its
// service actor from inside a node. The node actor implements call_context:
// it sends each request from itself under a finite timeout, counts it as
// outstanding, and runs exactly one of its continuations on the node's own
// thread, with the node's emitter, when the reply (or the error) comes.
//
// A service registers its client with typed_client<Handle>(ops, make) in
// service.hpp; `make(handle, ctx)` returns the client a node's logic sees.
//
// Example (a client for a service answering get(key) -> std::string):
//   class kv_client_impl : public kv_client {
//   public:
//     kv_client_impl(kv_actor h, troupe::call_context& ctx) : h_(h), ctx_(ctx) {}
//     void get(std::string key, troupe::completion<std::string> done) override {
//       using result = troupe::call_result<std::string>;
//       troupe::typed_call<std::string>(
//         ctx_, h_, ctx_.timeout(),
//         [done](std::string& v, troupe::emitter& out) {
//           done(result::success(std::move(v)), out);
//         },
//         [done](troupe::call_status s, const std::string& why, troupe::emitter& out) {
//           done(result::failure(s, why), out);
//         },
//         troupe::get_atom_v, std::move(key));
//     }
//   };
#pragma once

#include <functional>
#include <string>
#include <utility>

#include <caf/actor_cast.hpp>
#include <caf/actor_control_block.hpp>
#include <caf/error.hpp>
#include <caf/fwd.hpp>
#include <caf/behavior.hpp>
#include <caf/make_message.hpp>
#include <caf/message.hpp>

#include "troupe/errors.hpp"
#include "troupe/waiting.hpp"

namespace troupe {

class call_context {
public:
  virtual ~call_context();

  virtual caf::actor_system& system() = 0;

  // The node's default call timeout (runtime.request_timeout).
  virtual duration timeout() const = 0;

  // Sends `msg` to `to` as a request from the node actor, under `timeout`
  // (finite, positive), and counts it as outstanding. `handlers` gets the
  // reply or the error (a timeout, a dead or null `to`, an error reply, a
  // reply of another shape as caf::sec::unexpected_response) and must end
  // the call with complete() exactly once. Nothing runs if the node's
  // incarnation ended first (upstream then redelivers its records).
  // typed_call (below) builds the handlers; use it.
  virtual void request(const caf::strong_actor_ptr& to, caf::message msg,
                       duration timeout, caf::behavior handlers)
    = 0;

  // Ends one outstanding call: runs `then` with the node's emitter on the
  // node's thread, then lets the node release, send and finish what follows.
  virtual void complete(const std::function<void(emitter&)>& then) = 0;

  // Runs `then` on the node's thread after `delay`; counts as outstanding.
  virtual uint64_t after(duration delay, std::function<void(emitter&)> then)
    = 0;
};

// What a CAF error means to a waiting stage.
call_status classify(const caf::error& err);

// A request whose reply is the values Rs...: `ok(Rs&..., emitter&)` gets them,
// `failed(call_status, reason, emitter&)` gets a timeout, an error reply, a
// dead service or a reply of another shape. Exactly one runs, once.
template <class... Rs, class Handle, class Ok, class Failed, class... Ts>
void typed_call(call_context& ctx, const Handle& to, duration timeout, Ok ok,
                Failed failed, Ts&&... xs) {
  static_assert(sizeof...(Rs) > 0, "typed_call<Reply...>: name the reply");
  auto* c = &ctx; // the node owns ctx for longer than any of its calls
  caf::behavior handlers{
    [c, ok = std::move(ok)](Rs&... vs) mutable {
      c->complete([&](emitter& out) { ok(vs..., out); });
    },
    [c, failed = std::move(failed)](caf::error& err) mutable {
      auto why = render(err);
      c->complete([&](emitter& out) { failed(classify(err), why, out); });
    },
  };
  ctx.request(caf::actor_cast<caf::strong_actor_ptr>(to),
              caf::make_message(std::forward<Ts>(xs)...), timeout,
              std::move(handlers));
}

} // namespace troupe
