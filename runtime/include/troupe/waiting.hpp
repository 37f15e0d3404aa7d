// Stages that wait, free of CAF: how a node_logic starts calls to services
// (a cache, a rate limiter, a worker pool, an HTTP client) and completes its
// records when the replies come, without blocking a scheduler thread.
//
// A logic finds the client of a resource slot in node_context::calls
// (`cache: memo` gives calls->client<cache_client>("cache")), starts a call
// with a completion, and keeps the records the call is about. The node actor
// runs every completion later on the node's own thread with the node's
// emitter, like consume(). Records a logic keeps while a call is outstanding
// count as held (buffered()/held()), so acknowledgement, redelivery after a
// crash (an incarnation's outstanding calls die with it; upstream delivers
// their records again) and finishing work as for synchronous stages.
// Every call ends: with the reply, or with an error at the latest after its
// finite timeout (runtime.request_timeout unless the client says less).
//
// pending_records (below) does the bookkeeping for the common shape: one
// call outcome per record, a cap on calls outstanding, and input order kept
// when the node is `ordered`.
//
// Example (a stage asking a service per record):
//   void consume(record_batch in, emitter& out) override {
//     for (auto& r : in.take()) pending_.hold(std::move(r));
//     start_calls();                          // up to the cap
//   }
//   void start_calls() {
//     while (auto t = pending_.next_to_start())
//       client_->lookup(pending_.at(*t).key,
//                       [this, t = *t](call_result<std::string> v, emitter& out) {
//                         if (v.ok()) pending_.at(t).body = v.value(),
//                                     pending_.complete(t, outcome::emit);
//                         else pending_.fail(t, v.error());
//                         pending_.flush(out);
//                         start_calls();
//                       });
//   }
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "troupe/node_logic.hpp"
#include "troupe/record.hpp"
#include "troupe/units.hpp"

namespace troupe {

// Why a call produced no value.
enum class call_status : uint8_t {
  ok,
  timeout,     // no reply within the call's timeout
  refused,     // the service said no: a limiter's max_wait, a full queue
  failed,      // the work itself failed (a computation threw, a task gave up)
  unavailable, // the service is gone (released, crashed) or not reachable
};

const char* to_string(call_status s);

// The outcome of a call: a value, or its status and a readable reason.
template <class T>
class call_result {
public:
  static call_result success(T value) {
    call_result r;
    r.value_ = std::move(value);
    return r;
  }
  static call_result failure(call_status status, std::string why) {
    call_result r;
    r.status_ = status == call_status::ok ? call_status::failed : status;
    r.error_ = std::move(why);
    return r;
  }
  bool ok() const {
    return status_ == call_status::ok;
  }
  call_status status() const {
    return status_;
  }
  T& value() {
    return *value_;
  }
  const T& value() const {
    return *value_;
  }
  const std::string& error() const {
    return error_;
  }

private:
  call_result() = default;
  call_status status_ = call_status::ok;
  std::optional<T> value_;
  std::string error_;
};

// What a completion gets: the node's emitter, valid during the call only.
template <class T>
using completion = std::function<void(call_result<T>, emitter&)>;

// The base of every service's client interface (cache_client, ...): a CAF-free
// object a logic calls; its implementation (in the service) talks to the
// service actor through the node (call_context.hpp). Tests give a logic fakes.
class slot_client {
public:
  virtual ~slot_client();
};

// A call that something outside the node completes: a library's own thread
// such as the HTTP engine's I/O loop. finish() may be called from any thread;
// the first call counts. Its `then` runs later on the node's thread with the
// node's emitter, like any completion; if the node's incarnation ended
// first, nothing runs (upstream redelivers the records it held).
class external_call {
public:
  virtual ~external_call();
  virtual void finish(std::function<void(emitter&)> then) = 0;
};

// What a waiting stage starts calls through: node_context::calls. Valid for
// the logic's incarnation; null for parallel workers (`workers: N`), which
// run synchronously.
class node_calls {
public:
  virtual ~node_calls();

  // The client of the resource named in this node's `slot` field, or
  // nullptr when the node has no such slot or its service has no client of
  // type Client.
  template <class Client>
  Client* client(const std::string& slot) {
    return dynamic_cast<Client*>(find_client(slot));
  }

  // Calls started through this node's clients (and after()) not ended yet.
  virtual size_t outstanding() const = 0;

  // Runs `then` on the node's thread after `delay` (a retry's backoff, in
  // virtual time under the test coordinator). Counts as outstanding until
  // it ran or was cancelled. Returns an id for cancel_after().
  virtual uint64_t after(duration delay, std::function<void(emitter&)> then)
    = 0;
  // Drops a timer that has not run: `then` never runs and the node no
  // longer waits for it (a race's loser backing off before its retry).
  virtual void cancel_after(uint64_t id) = 0;

  // Starts a call that another thread completes (external_call::finish).
  // Counts as outstanding until its `then` ran: a call that is never
  // finished keeps the node from finishing, so whoever holds it must finish
  // it (an HTTP transfer always ends: its deadlines are finite).
  virtual std::shared_ptr<external_call> external() = 0;

protected:
  virtual slot_client* find_client(const std::string& slot) = 0;
};

// The records a waiting stage holds while their calls run: admitted in input
// order, each completed once (emit, drop or fail), released in input order
// when `ordered` (a later reply waits for the earlier ones) or as they
// complete otherwise. At most `max_in_flight` are started and not complete;
// the rest wait in admission order. buffered() and held() are exact, so the
// node acknowledges nothing a call still needs.
class pending_records {
public:
  using ticket = uint64_t;

  enum class outcome : uint8_t { emit, drop, fail };

  explicit pending_records(bool ordered = true, size_t max_in_flight = 64);

  // Admits a consumed record (every consumed record, even one completed at
  // once, so input order and buffered() stay exact).
  ticket hold(record r);
  // The oldest admitted record whose call was not started yet, if the cap
  // allows one more; marks it started.
  std::optional<ticket> next_to_start();
  // The record of a ticket admitted and not released yet.
  record& at(ticket t);
  // Decides a record's outcome; it leaves at the next flush().
  void complete(ticket t, outcome what);
  void fail(ticket t, std::string reason);
  // Lets go what is complete (in order when ordered): emitted records as one
  // batch, dropped ones counted, failed ones to errors.
  void flush(emitter& out);

  size_t started() const {
    return started_;
  }
  size_t held() const {
    return held_;
  }
  // From the oldest record held to the newest admitted.
  size_t buffered() const;

private:
  enum class state : uint8_t { waiting, started, done, released };
  struct entry {
    record rec;
    state st = state::waiting;
    outcome what = outcome::emit;
    std::string reason;
  };
  entry* find(ticket t);
  void release(entry& e, std::vector<record>& ready, size_t& dropped,
               emitter& out);

  bool ordered_;
  size_t max_in_flight_;
  std::deque<entry> entries_; // tickets first_ .. first_ + size - 1
  ticket first_ = 0;          // ticket of entries_.front()
  ticket next_ = 0;           // next ticket to admit
  ticket next_start_ = 0;     // scan position for next_to_start()
  size_t started_ = 0;        // started, not complete
  size_t held_ = 0;           // admitted, not released
};

// A stage whose records wait in pending_records, one outcome each: consume()
// admits every record and calls start(), which begins what the cap allows;
// buffered() and held() are the pending records' own, so exact.
class waiting_stage : public node_logic {
public:
  waiting_stage(bool ordered, size_t max_in_flight)
    : pending_(ordered, max_in_flight) {
  }
  void consume(record_batch batch, emitter& out) override {
    for (auto& r : batch.take())
      pending_.hold(std::move(r));
    start(out);
  }
  size_t buffered() const override {
    return pending_.buffered();
  }
  size_t held() const override {
    return pending_.held();
  }

protected:
  // Begins the calls of admitted records, up to the cap.
  virtual void start(emitter& out) = 0;

  pending_records pending_;
};

} // namespace troupe
