// Where a node is in its life, and its two self-timers (internal, CAF-free).
//
//   running ──stop (source)──▶ stopping ──next produce──▶ draining ──▶ done
//      │ └──produce: done (source)──────────────────────────▲           ▲
//      └──all inputs ended, workers idle (stage)──▶ finishing ┘           │
//   finishing/draining ──a batch arrives (a producer replays)──▶ running  │
//   draining ──everything acknowledged, every eof sent──────────────────-─┘
//
// running:   a source produces, a stage consumes.
// stopping:  a source was told to stop; it ends at its next produce.
// finishing: a stage's inputs all ended and its logic's finish() ran; its
//            ticks drain what the logic still holds.
// draining:  nothing more will be made ("input done"): each consumer gets
//            eof once its queue is empty; the node waits for the acks.
// done:      the node quits.
//
// Besides the phase it keeps whether a produce message (sources) or a
// tick (logic with a tick interval) is pending, so neither is sent twice.
//
// Not thread-safe: one node actor owns it. Every transition returns what
// the node actor must do (send itself produce or tick, run the logic's
// finish or tick, quit).
#pragma once

#include <cstdint>

namespace troupe::detail {

enum class node_phase : uint8_t { running, stopping, finishing, draining, done };

const char* to_string(node_phase p);

class node_lifecycle {
public:
  node_lifecycle() = default;
  explicit node_lifecycle(bool is_source) : is_source_(is_source) {
  }

  node_phase phase() const noexcept {
    return phase_;
  }
  bool is_source() const noexcept {
    return is_source_;
  }
  // Nothing more will be made: eof goes out as queues empty.
  bool input_done() const noexcept {
    return phase_ >= node_phase::draining;
  }

  // -- sources -----------------------------------------------------------------

  // True: send a produce message now (none is pending, still producing).
  bool want_produce();
  enum class produce_step {
    skip, // input done: nothing to do
    stop, // the stop request takes effect: now draining, flush
    run,  // produce what credit allows
  };
  // A produce message arrived.
  produce_step begin_produce();
  // The logic is idle: a delayed produce is pending. Returns the number to
  // send with it (produce(n)): a wait cut short by wake() makes it stale.
  uint64_t produce_later();
  // A delayed produce(n) arrived. True: it is still the pending one, run it;
  // false: wake() cut its wait short and a produce already ran.
  bool idle_ended(uint64_t n) const;
  // A source's call (a pop from a queue) ended while the source was idle:
  // its records may let it go on at once. True: send a produce message now.
  bool wake();
  // The logic has nothing more: draining.
  void exhausted();
  // stop: a source ends at its next produce, sent now (it also cuts short
  // an idle wait). True: send a produce message now. Stages ignore it.
  bool stop();

  // -- stages ------------------------------------------------------------------

  // A batch arrived. True when the node had finished (finishing or
  // draining): it runs again, and its consumers get another eof later.
  bool reopen();
  // All inputs ended and the workers are idle: whether the node should go
  // on to finish (a running or finishing stage).
  bool may_finish(bool inputs_ended, bool workers_idle) const;
  // True once: the logic's finish() must run now (running -> finishing).
  bool begin_finish();
  // The logic holds nothing more: draining.
  void finished();

  // -- ticks -------------------------------------------------------------------

  // True: start the tick timer now (the logic has an interval, none is
  // pending, and the node is not done).
  bool arm_tick(bool has_interval);
  // The tick timer (or the first self-tick) fired. True: run the logic's
  // tick (the timer was armed and input is not done).
  bool tick();

  // -- the end -----------------------------------------------------------------

  // True once: draining and `drained` (everything sent and acknowledged,
  // every eof sent): quit now.
  bool quit(bool drained);

private:
  node_phase phase_ = node_phase::running;
  bool is_source_ = false;
  bool produce_pending_ = false;
  bool tick_armed_ = false;
  bool idle_ = false;      // the pending produce is a delayed one
  uint64_t idle_gen_ = 0;  // its number
};

} // namespace troupe::detail
