// The wait table: every outstanding request between troupe actors of one
// runtime, written by the requesting actors (begin_wait/end_wait in
// deadlock_detector.hpp) and read by the detector once per probe interval.
//
// Why a table and not messages to the detector: two messages per request
// would double the cost of a request round trip and make one actor the
// bottleneck of every request in the runtime. An entry costs one
// uncontended lock of the caller's shard and a slot from its free list (no
// allocation once the shard has grown), so request paths keep ~0.9 or more of
// their throughput. The table is the detector's inbox, not state shared
// between actors: actors only add and remove their own entries.
//
// References: an entry names its waiter and holder by id. The shard keeps
// one weak reference per actor its entries name, with a use count, and drops
// the unused ones once per probe. Taking a weak reference per request would
// write to the holder's control block from the caller's thread on every
// request, a cache line the holder's own thread writes too: that cost ~10 %
// of a request round trip at 64 requests in flight.
//
// Ids: shard in the low 4 bits, slot index in the next 24, a per-shard
// sequence above; end() of a stale id (its slot reused) does nothing.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include <caf/actor_addr.hpp>
#include <caf/actor_control_block.hpp>
#include <caf/weak_intrusive_ptr.hpp>

namespace troupe::deadlock {

class wait_table : public std::enable_shared_from_this<wait_table> {
public:
  using clock = std::chrono::steady_clock;

  struct entry {
    uint64_t id = 0; // 0: free slot
    caf::weak_actor_ptr waiter;
    caf::weak_actor_ptr holder;
    uint64_t waiter_id = 0;
    uint64_t holder_id = 0;
    const char* type = "";
    clock::time_point since;
    clock::time_point deadline;
    uint64_t response_id = 0; // 0: nobody can be answered for the waiter
    // The waiter cannot do anything else until the reply (.await, a
    // blocking receive, or a wait registered by message). Only cycles with
    // such a wait, and such waits on themselves or on the dead, are
    // deadlocks: an actor waiting with .then goes on working, and its reply
    // may come from elsewhere (a promise handed on, a timer).
    bool blocking = false;
  };

  struct name_entry {
    std::string name;
    bool restartable = false;
  };

  static constexpr size_t shards = 16;
  static constexpr size_t max_slots = size_t{1} << 24;

  // Returns 0 when the shard is full (the wait is then not tracked).
  uint64_t add(caf::actor_control_block* waiter,
               caf::actor_control_block* holder, const char* type,
               clock::time_point now, clock::time_point deadline,
               uint64_t response_id, bool blocking = false);
  void remove(uint64_t id) noexcept;
  void mark_blocking(uint64_t id) noexcept;

  // Copies the entries added at or before `mature` into `out`; drops (and
  // counts) those whose deadline passed before `stale`.
  void collect(clock::time_point mature, clock::time_point stale,
               std::vector<entry>& out, uint64_t& expired);
  // Every entry (for queries).
  void collect_all(std::vector<entry>& out) const;
  // Takes the entry out (a resolution answered it); false when gone.
  bool take(uint64_t id, entry& out);
  // Takes every entry out (the runtime is shutting down).
  void take_all(std::vector<entry>& out);

  void set_name(uint64_t actor, std::string name, bool restartable);
  void forget_name(uint64_t actor);
  bool name_of(uint64_t actor, name_entry& out) const;

  size_t size() const;

private:
  struct stored {
    uint64_t id = 0; // 0: free slot
    uint64_t waiter_id = 0;
    uint64_t holder_id = 0;
    const char* type = "";
    clock::time_point since;
    clock::time_point deadline;
    uint64_t response_id = 0;
    bool blocking = false;
  };
  struct ref {
    caf::weak_actor_ptr ptr;
    size_t uses = 0;
  };
  struct shard {
    mutable std::mutex mtx;
    std::vector<stored> slots;
    std::unordered_map<uint64_t, ref> refs; // by actor id
    void pin(caf::actor_control_block* a);
    void unpin(uint64_t actor);
    entry view(const stored& s) const;
    std::vector<uint32_t> free;
    uint64_t next_seq = 1;
    size_t used = 0;
  };
  std::array<shard, shards> shards_;
  static constexpr size_t max_dead_names = 4096;
  mutable std::mutex names_mtx_;
  std::unordered_map<uint64_t, name_entry> names_;
  // Names of actors that ended, the last max_dead_names, oldest first out.
  std::unordered_map<uint64_t, std::string> dead_names_;
  std::deque<uint64_t> dead_order_;
};

// The table of the detector watching `sys`, or nullptr. Lock-free reads.
wait_table* table_for(const caf::actor_system* sys) noexcept;
// Installs/removes the table of `sys` (the runtime, around its detector's
// life). False when every directory slot is taken (the detector then runs
// without tracked waits and says so).
bool install_table(const caf::actor_system* sys, wait_table* t) noexcept;
void uninstall_table(const caf::actor_system* sys) noexcept;

} // namespace troupe::deadlock
