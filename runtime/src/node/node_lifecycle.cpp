#include "node_lifecycle.hpp"

namespace troupe::detail {

const char* to_string(node_phase p) {
  switch (p) {
    case node_phase::running:
      return "running";
    case node_phase::stopping:
      return "stopping";
    case node_phase::finishing:
      return "finishing";
    case node_phase::draining:
      return "draining";
    case node_phase::done:
      return "done";
  }
  return "?";
}

bool node_lifecycle::want_produce() {
  if (produce_pending_ || input_done())
    return false;
  produce_pending_ = true;
  return true;
}

node_lifecycle::produce_step node_lifecycle::begin_produce() {
  produce_pending_ = false;
  idle_ = false;
  if (input_done())
    return produce_step::skip;
  if (phase_ == node_phase::stopping) {
    phase_ = node_phase::draining;
    return produce_step::stop;
  }
  return produce_step::run;
}

uint64_t node_lifecycle::produce_later() {
  produce_pending_ = true;
  idle_ = true;
  return ++idle_gen_;
}

bool node_lifecycle::idle_ended(uint64_t n) const {
  return idle_ && n == idle_gen_;
}

bool node_lifecycle::wake() {
  if (!is_source_ || !idle_ || input_done())
    return false;
  idle_ = false; // the delayed produce on its way is stale now
  produce_pending_ = false;
  return want_produce();
}

void node_lifecycle::exhausted() {
  if (!input_done())
    phase_ = node_phase::draining;
}

bool node_lifecycle::stop() {
  if (!is_source_)
    return false;
  if (phase_ == node_phase::running)
    phase_ = node_phase::stopping;
  produce_pending_ = false; // a delayed produce may be pending: go now
  return want_produce();
}

bool node_lifecycle::reopen() {
  if (phase_ != node_phase::finishing && phase_ != node_phase::draining)
    return false;
  phase_ = node_phase::running;
  return true;
}

bool node_lifecycle::may_finish(bool inputs_ended, bool workers_idle) const {
  return !is_source_
         && (phase_ == node_phase::running || phase_ == node_phase::finishing)
         && inputs_ended && workers_idle;
}

bool node_lifecycle::begin_finish() {
  if (phase_ != node_phase::running)
    return false;
  phase_ = node_phase::finishing;
  return true;
}

void node_lifecycle::finished() {
  if (!input_done())
    phase_ = node_phase::draining;
}

bool node_lifecycle::arm_tick(bool has_interval) {
  if (!has_interval || tick_armed_ || input_done())
    return false;
  tick_armed_ = true;
  return true;
}

bool node_lifecycle::tick() {
  if (!tick_armed_)
    return false;
  tick_armed_ = false;
  return !input_done();
}

bool node_lifecycle::quit(bool drained) {
  if (phase_ != node_phase::draining || !drained)
    return false;
  phase_ = node_phase::done;
  return true;
}

} // namespace troupe::detail
