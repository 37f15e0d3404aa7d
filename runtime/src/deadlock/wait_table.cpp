#include "wait_table.hpp"

#include <atomic>
#include <cstdlib>
#include <cxxabi.h>
#include <set>

#include <caf/abstract_actor.hpp>
#include <caf/actor_cast.hpp>
#include <caf/actor_clock.hpp>
#include <caf/actor_system.hpp>
#include <caf/atom.hpp>
#include <caf/message.hpp>

#include "troupe/deadlock_detector.hpp"

namespace troupe::deadlock {

namespace {

constexpr uint64_t shard_bits = 4;
constexpr uint64_t slot_bits = 24;
static_assert((uint64_t{1} << shard_bits) == wait_table::shards);

size_t my_shard() noexcept {
  static std::atomic<size_t> next{0};
  thread_local size_t mine = next.fetch_add(1) % wait_table::shards;
  return mine;
}

uint64_t slot_of(uint64_t id) noexcept {
  return (id >> shard_bits) & ((uint64_t{1} << slot_bits) - 1);
}

// The directory: which actor system has which table. A handful of runtimes
// per process at most; ask() scans it with atomic loads, no lock.
constexpr size_t directory_size = 32;
std::atomic<const caf::actor_system*> dir_sys[directory_size];
std::atomic<wait_table*> dir_table[directory_size];
std::mutex dir_write; // install/uninstall only

} // namespace

void wait_table::shard::pin(caf::actor_control_block* a) {
  if (!a)
    return;
  auto& r = refs[a->id()];
  if (!r.ptr)
    r.ptr = a; // the only reference count this actor pays, once
  ++r.uses;
}

void wait_table::shard::unpin(uint64_t actor) {
  if (auto i = refs.find(actor); i != refs.end() && i->second.uses > 0)
    --i->second.uses;
}

wait_table::entry wait_table::shard::view(const stored& s) const {
  entry e;
  e.id = s.id;
  e.waiter_id = s.waiter_id;
  e.holder_id = s.holder_id;
  if (auto i = refs.find(s.waiter_id); i != refs.end())
    e.waiter = i->second.ptr;
  if (auto i = refs.find(s.holder_id); i != refs.end())
    e.holder = i->second.ptr;
  e.type = s.type;
  e.since = s.since;
  e.deadline = s.deadline;
  e.response_id = s.response_id;
  e.blocking = s.blocking;
  return e;
}

uint64_t wait_table::add(caf::actor_control_block* waiter,
                         caf::actor_control_block* holder, const char* type,
                         clock::time_point now, clock::time_point deadline,
                         uint64_t response_id, bool blocking) {
  auto s = my_shard();
  auto& sh = shards_[s];
  std::lock_guard<std::mutex> guard{sh.mtx};
  uint32_t slot;
  if (!sh.free.empty()) {
    slot = sh.free.back();
    sh.free.pop_back();
  } else {
    if (sh.slots.size() >= max_slots)
      return 0;
    slot = static_cast<uint32_t>(sh.slots.size());
    sh.slots.emplace_back();
  }
  auto id = (sh.next_seq++ << (shard_bits + slot_bits))
            | (uint64_t{slot} << shard_bits) | s;
  auto& e = sh.slots[slot];
  e.id = id;
  e.waiter_id = waiter ? waiter->id() : 0;
  e.holder_id = holder ? holder->id() : 0;
  sh.pin(waiter);
  sh.pin(holder);
  e.type = type;
  e.since = now;
  e.deadline = deadline;
  e.response_id = response_id;
  e.blocking = blocking;
  ++sh.used;
  return id;
}

void wait_table::remove(uint64_t id) noexcept {
  if (id == 0)
    return;
  auto& sh = shards_[id % shards];
  auto slot = slot_of(id);
  std::lock_guard<std::mutex> guard{sh.mtx};
  if (slot >= sh.slots.size() || sh.slots[slot].id != id)
    return;
  auto& e = sh.slots[slot];
  e.id = 0;
  sh.unpin(e.waiter_id);
  sh.unpin(e.holder_id);
  sh.free.push_back(static_cast<uint32_t>(slot));
  --sh.used;
}

void wait_table::mark_blocking(uint64_t id) noexcept {
  if (id == 0)
    return;
  auto& sh = shards_[id % shards];
  auto slot = slot_of(id);
  std::lock_guard<std::mutex> guard{sh.mtx};
  if (slot < sh.slots.size() && sh.slots[slot].id == id)
    sh.slots[slot].blocking = true;
}

void wait_table::collect(clock::time_point mature, clock::time_point stale,
                         std::vector<entry>& out, uint64_t& expired) {
  for (auto& sh : shards_) {
    // Unused references die outside the lock (a last weak reference frees
    // a control block).
    std::vector<caf::weak_actor_ptr> dropped;
    std::lock_guard<std::mutex> guard{sh.mtx};
    for (size_t i = 0; i < sh.slots.size(); ++i) {
      auto& e = sh.slots[i];
      if (e.id == 0)
        continue;
      if (e.deadline < stale) {
        // Its requester died before its reply or timeout came.
        e.id = 0;
        sh.unpin(e.waiter_id);
        sh.unpin(e.holder_id);
        sh.free.push_back(static_cast<uint32_t>(i));
        --sh.used;
        ++expired;
        continue;
      }
      if (e.since <= mature)
        out.push_back(sh.view(e));
    }
    for (auto i = sh.refs.begin(); i != sh.refs.end();) {
      if (i->second.uses == 0) {
        dropped.push_back(std::move(i->second.ptr));
        i = sh.refs.erase(i);
      } else {
        ++i;
      }
    }
  }
}

void wait_table::collect_all(std::vector<entry>& out) const {
  for (auto& sh : shards_) {
    std::lock_guard<std::mutex> guard{sh.mtx};
    for (auto& e : sh.slots)
      if (e.id != 0)
        out.push_back(sh.view(e));
  }
}

bool wait_table::take(uint64_t id, entry& out) {
  auto& sh = shards_[id % shards];
  auto slot = slot_of(id);
  std::lock_guard<std::mutex> guard{sh.mtx};
  if (slot >= sh.slots.size() || sh.slots[slot].id != id)
    return false;
  auto& e = sh.slots[slot];
  out = sh.view(e);
  e.id = 0;
  sh.unpin(e.waiter_id);
  sh.unpin(e.holder_id);
  sh.free.push_back(static_cast<uint32_t>(slot));
  --sh.used;
  return true;
}

void wait_table::take_all(std::vector<entry>& out) {
  for (auto& sh : shards_) {
    std::lock_guard<std::mutex> guard{sh.mtx};
    for (size_t i = 0; i < sh.slots.size(); ++i) {
      auto& e = sh.slots[i];
      if (e.id == 0)
        continue;
      out.push_back(sh.view(e));
      e.id = 0;
      sh.unpin(e.waiter_id);
      sh.unpin(e.holder_id);
      sh.free.push_back(static_cast<uint32_t>(i));
      --sh.used;
    }
  }
}

void wait_table::set_name(uint64_t actor, std::string name, bool restartable) {
  std::lock_guard<std::mutex> guard{names_mtx_};
  names_[actor] = name_entry{std::move(name), restartable};
}

void wait_table::forget_name(uint64_t actor) {
  std::lock_guard<std::mutex> guard{names_mtx_};
  auto i = names_.find(actor);
  if (i == names_.end())
    return;
  // Kept a while for reports on waits that still name it (a dead holder's
  // wait enters the graph after the death); no longer restartable.
  dead_names_[actor] = std::move(i->second.name);
  dead_order_.push_back(actor);
  if (dead_order_.size() > max_dead_names) {
    dead_names_.erase(dead_order_.front());
    dead_order_.pop_front();
  }
  names_.erase(i);
}

bool wait_table::name_of(uint64_t actor, name_entry& out) const {
  std::lock_guard<std::mutex> guard{names_mtx_};
  if (auto i = names_.find(actor); i != names_.end()) {
    out = i->second;
    return true;
  }
  if (auto d = dead_names_.find(actor); d != dead_names_.end()) {
    out = name_entry{d->second, false};
    return true;
  }
  return false;
}

size_t wait_table::size() const {
  size_t n = 0;
  for (auto& sh : shards_) {
    std::lock_guard<std::mutex> guard{sh.mtx};
    n += sh.used;
  }
  return n;
}

wait_table* table_for(const caf::actor_system* sys) noexcept {
  for (size_t i = 0; i < directory_size; ++i)
    if (dir_sys[i].load(std::memory_order_acquire) == sys)
      return dir_table[i].load(std::memory_order_acquire);
  return nullptr;
}

bool install_table(const caf::actor_system* sys, wait_table* t) noexcept {
  std::lock_guard<std::mutex> guard{dir_write};
  for (size_t i = 0; i < directory_size; ++i)
    if (dir_sys[i].load(std::memory_order_relaxed) == nullptr) {
      dir_table[i].store(t, std::memory_order_release);
      dir_sys[i].store(sys, std::memory_order_release);
      return true;
    }
  return false;
}

void uninstall_table(const caf::actor_system* sys) noexcept {
  std::lock_guard<std::mutex> guard{dir_write};
  for (size_t i = 0; i < directory_size; ++i)
    if (dir_sys[i].load(std::memory_order_relaxed) == sys) {
      dir_sys[i].store(nullptr, std::memory_order_release);
      dir_table[i].store(nullptr, std::memory_order_release);
    }
}

ticket begin_wait(caf::actor_system& sys, caf::actor_control_block* waiter,
                  caf::actor_control_block* holder, const char* type,
                  duration timeout, uint64_t response_id) {
  auto* t = table_for(&sys);
  // Actor ids are unique within one actor system only: a request to an
  // actor of another runtime is not this detector's to judge.
  if (!t || !waiter || !holder || waiter->home_system != &sys
      || holder->home_system != &sys)
    return {};
  // The actor clock: virtual time on the test coordinator, like the
  // detector's probes.
  auto now = sys.clock().now();
  auto id = t->add(waiter, holder, type, now, now + timeout, response_id);
  return {id ? t : nullptr, id};
}

void mark_blocking(const ticket& t) noexcept {
  if (t.table)
    static_cast<wait_table*>(t.table)->mark_blocking(t.id);
}

void end_wait(const ticket& t) noexcept {
  if (t.table)
    static_cast<wait_table*>(t.table)->remove(t.id);
}

std::string type_label(const std::type_info& t) {
  int status = 0;
  std::unique_ptr<char, void (*)(void*)> name{
    abi::__cxa_demangle(t.name(), nullptr, nullptr, &status), std::free};
  std::string text = status == 0 && name ? name.get() : t.name();
  // The usual spelling of the one type everyone sends.
  const std::string long_string = "std::__cxx11::basic_string<char, "
                                  "std::char_traits<char>, "
                                  "std::allocator<char> >";
  if (text == long_string)
    text = "std::string";
  return text;
}

const char* label_of(const caf::message& msg) {
  if (msg.empty() || !msg.match_element<caf::atom_value>(0))
    return "message";
  auto atom = msg.get_as<caf::atom_value>(0);
  // A per-thread cache in front of the interned texts (a label must outlive
  // its waits). Atoms are few; past a cap they share one label.
  thread_local std::unordered_map<caf::atom_value, const char*> cache;
  if (auto i = cache.find(atom); i != cache.end())
    return i->second;
  static std::mutex mtx;
  static std::set<std::string> labels;
  auto text = caf::to_string(atom);
  const char* label = "message";
  {
    std::lock_guard<std::mutex> guard{mtx};
    if (labels.size() < 4096 || labels.count(text) > 0)
      label = labels.insert(std::move(text)).first->c_str();
  }
  if (cache.size() < 4096)
    cache.emplace(atom, label);
  return label;
}

void name_actor(caf::actor_system& sys, caf::actor_control_block* who,
                std::string name, bool restartable) {
  auto* t = table_for(&sys);
  if (!t || !who)
    return;
  auto id = who->id();
  t->set_name(id, std::move(name), restartable);
  // Forgotten when it ends: names stay as many as live actors.
  std::weak_ptr<wait_table> weak = t->shared_from_this();
  who->get()->attach_functor([weak, id] {
    if (auto p = weak.lock())
      p->forget_name(id);
  });
}

} // namespace troupe::deadlock
