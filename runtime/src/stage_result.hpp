// What a map worker hands back to its node for one batch (internal, CAF-free:
// the worker dispatch holds it). Registered in troupe/type_ids.hpp and
// inspectable, so it could cross to a remote worker.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "troupe/record.hpp"

namespace troupe {

struct stage_result {
  // What the logic emitted, in order: the first batch inline (a map emits
  // one per input, which then costs no allocation), any others after it.
  record_batch first; // empty: nothing emitted
  std::vector<record_batch> more;
  std::vector<record> failed;       // each with attributes error/stage/attempt
  std::vector<std::string> reasons; // parallel to `failed`
  uint64_t dropped = 0;
  uint64_t created = 0;
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, stage_result& x) {
  return f(x.first, x.more, x.failed, x.reasons, x.dropped, x.created);
}

} // namespace troupe
