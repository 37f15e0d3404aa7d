// Record functions: the smallest way to extend troupe (extension level 1).
//
// A record_fn transforms one record in place and says whether to keep it, drop
// it, or fail it. Register it by name and use it from YAML as
// `{ type: map, fn: NAME }` or `{ type: filter, fn: NAME }`; the runtime wraps
// it into a stage with credit, batching, workers, metrics and supervision.
//
// Functions are created once per worker by a factory, so a function may keep
// private state (a hash context, a compiled regex) without locks.
//
// Example:
//   reg.add_function("reverse", "reverses the body", [] {
//     return [](troupe::record& r) {
//       std::reverse(r.body.begin(), r.body.end());
//       return troupe::fn_result::keep();
//     };
//   });
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "troupe/record.hpp"

namespace troupe {

struct fn_result {
  enum class outcome { keep, drop, fail };
  outcome what = outcome::keep;
  std::string error; // for fail

  static fn_result keep() {
    return {};
  }
  static fn_result drop() {
    return {outcome::drop, {}};
  }
  static fn_result fail(std::string why) {
    return {outcome::fail, std::move(why)};
  }
};

using record_fn = std::function<fn_result(record&)>;
using record_fn_factory = std::function<record_fn()>;

// Runs `fn` on `r`, treating an exception as a failure of this record only:
// the record is tried again in place (its ctx.attempt counts the tries) until
// it succeeds or reaches `max_attempts`, then the result is fail(reason).
// A record failure never restarts the node, so a poison record cannot burn a
// node's restart budget. A function that throws should leave the record as
// it found it: the retry sees whatever it changed.
fn_result apply_with_retries(const record_fn& fn, record& r,
                             uint32_t max_attempts);

// Applies `fn` (with retries) to every record of `batch` in place and returns
// the kept ones; dropped ones are counted on `out`, failed ones go to its
// errors output. What a map-like stage does with a batch before emitting it.
class emitter;
record_batch apply_to_batch(const record_fn& fn, record_batch batch,
                            uint32_t max_attempts, emitter& out);

} // namespace troupe
