// Several batches for one consumer in one message (internal, CAF-free).
//
// A stage that emits many small batches per input (a batch stage cutting
// 256 records into groups of 50) would otherwise send one message, and get
// one scheduling, per group. The node actor sends the batches it has for
// the same consumer at once as a train (node_actor.cpp, carry_out_all); the
// consumer takes each as if it came alone. Fixed capacity, no heap: the
// train lives inside the message.
#pragma once

#include <array>
#include <cstdint>

#include "troupe/record.hpp"

namespace troupe {

struct batch_train {
  static constexpr uint32_t capacity = 8;
  uint32_t size = 0;
  bool redelivery = false;
  std::array<uint64_t, capacity> ids{};
  std::array<record_batch, capacity> batches;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, batch_train& x) {
  return f(x.size, x.redelivery, x.ids, x.batches);
}

} // namespace troupe
