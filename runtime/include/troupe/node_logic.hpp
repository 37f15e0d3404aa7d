// The logic of one pipeline node, free of CAF.
//
// troupe runs every source, stage and sink inside the same node actor, which
// owns credit-based flow control, acknowledgements, redelivery after a crash,
// batching, metrics and supervision. A node type only supplies this logic:
// plain C++ that is easy to test and cannot block the runtime by mistake.
//
// Contract: the node actor calls a logic object from one thread at a time and
// never concurrently. A logic object may throw; the node then crashes, its
// supervisor restarts it with a fresh logic object, and its upstream delivers
// the unacknowledged records again. Records the logic holds (buffered()) are
// not acknowledged upstream until they were emitted and acknowledged
// downstream, so a crash loses none of them.
//
// Example (a stage that drops empty bodies):
//   class drop_empty : public troupe::node_logic {
//   public:
//     void consume(troupe::record_batch in, troupe::emitter& out) override {
//       auto& rs = in.mutable_records();
//       auto n = rs.size();
//       rs.erase(std::remove_if(rs.begin(), rs.end(),
//                               [](auto& r) { return r.body.empty(); }),
//                rs.end());
//       out.drop(n - rs.size());
//       out.emit(std::move(in));
//     }
//   };
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <stdexcept>
#include <string>

#include "troupe/record.hpp"
#include "troupe/units.hpp"

namespace troupe {

// Where a logic object sends its results. Every record a node receives must be
// accounted for by exactly one of emit (passed on; a sink emits what it wrote,
// which the report counts as sink_records), drop (filtered out or folded into
// an aggregate), fail (to the node's errors output), or stay buffered;
// records a node makes itself are announced with create().
class emitter {
public:
  virtual ~emitter();
  // Passes a batch downstream as one unit (batch boundaries are kept).
  virtual void emit(record_batch batch) = 0;
  // Sends one record to the node's `errors` output with the reason.
  virtual void fail(record rec, std::string reason) = 0;
  // Counts records consumed without output (filtered, deduplicated, folded).
  // Not for a sink's written records: those are emitted.
  virtual void drop(size_t n) = 0;
  // Counts records this node made (a source's records, a reduce's results).
  virtual void create(size_t n) = 0;
  // The node's clock: virtual time under CAF's test coordinator, so timeouts
  // are testable without sleeping.
  virtual std::chrono::steady_clock::time_point now() const;
};

// Thrown by a logic for a failure that a restart cannot fix (disk full, an
// output path that is a directory, a closed pipe): the supervisor fails the
// run at once with this reason instead of burning its restart budget.
class unrecoverable_error : public std::runtime_error {
public:
  using std::runtime_error::runtime_error;
};

// What a node keeps across its incarnations: the supervisor holds it while
// a crashed node is restarted and hands the same object to the replacement
// (e.g. a source's acknowledged position, or input it read but that was not
// acknowledged yet). Incarnations never overlap, so no lock is needed.
class node_memory {
public:
  virtual ~node_memory();
};

enum class produce_status {
  more, // call produce() again when credit allows
  idle, // nothing now (rate limit, no input yet): call again after idle_delay()
  done, // exhausted: the node finishes
};

class node_logic {
public:
  virtual ~node_logic();

  // -- sources ---------------------------------------------------------------

  // Makes up to `max` records and emits them.
  virtual produce_status produce(size_t max, emitter& out);
  virtual duration idle_delay() const;
  // A batch this source emitted is acknowledged by every consumer: all that
  // derives from it was written by the sinks. Where to advance a checkpoint.
  virtual void acknowledged(const record_batch& batch);
  // How far the source is, in its own unit (records made, bytes read), and
  // where it ends when it knows: the progress line's ETA. total 0: unknown
  // (the default).
  struct progress_mark {
    uint64_t done = 0, total = 0;
  };
  virtual progress_mark progress() const;

  // -- stages and sinks ------------------------------------------------------

  // Handles one input batch.
  virtual void consume(record_batch batch, emitter& out);
  // How many of the most recently consumed records may still be held: count
  // from the oldest record the logic still holds to the newest consumed, so
  // records consumed after it (even failed or dropped ones) are included.
  // Inputs older than that are acknowledged upstream.
  virtual size_t buffered() const;
  // Exactly how many consumed records the logic holds (not emitted, dropped
  // or failed yet). The report checks the counters against it, so a record
  // a logic forgets is found. Default: buffered(), exact when the held
  // records are the newest consumed; override when they are not.
  virtual size_t held() const;
  // The node holds a whole credit window of unacknowledged input: upstream
  // can send nothing more until some of it is released. A logic that waits
  // for more input before it emits (a batch filling up) must emit what it
  // holds now, or the graph stalls. Default: nothing.
  virtual void starved(emitter& out);
  // When non-zero, tick() runs this often (e.g. a batch timeout).
  virtual duration tick_interval() const;
  virtual void tick(emitter& out);
  // All inputs ended: flush what is buffered.
  virtual void finish(emitter& out);
};

} // namespace troupe
