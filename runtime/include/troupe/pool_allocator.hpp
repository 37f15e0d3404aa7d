// Recycled memory for containers that keep an entry per batch (CAF-free).
//
// The runtime's delivery ledger and a source's replay log keep an entry per
// batch in flight (a map node, a lineage vector): with the standard
// allocator every batch costs a few mallocs and frees. pool_allocator hands
// freed blocks of up to 256 bytes to the next allocation of the same size
// class instead. A pool belongs to one actor's containers and is used from
// one thread at a time (the actor's own: not thread-safe); its free lists
// are bounded, the rest goes back to the heap.
//
// Example:
//   std::unordered_map<uint64_t, entry, std::hash<uint64_t>,
//                      std::equal_to<uint64_t>,
//                      pool_allocator<std::pair<const uint64_t, entry>>> m;
//   m.emplace(1, entry{}); // a new node
//   m.erase(1);            // the node's block is kept
//   m.emplace(2, entry{}); // ... and used again: no malloc
#pragma once

#include <array>
#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <vector>

namespace troupe {

class node_pool {
public:
  node_pool() = default;
  node_pool(const node_pool&) = delete;
  node_pool& operator=(const node_pool&) = delete;
  ~node_pool() {
    for (auto& list : free_)
      for (auto* p : list)
        ::operator delete(p);
  }

  void* get(size_t bytes) {
    auto c = class_of(bytes);
    if (c >= classes)
      return ::operator new(bytes);
    auto& list = free_[c];
    if (list.empty())
      return ::operator new((c + 1) * granule); // any block of the class fits
    auto* p = list.back();
    list.pop_back();
    return p;
  }

  void put(void* p, size_t bytes) noexcept {
    auto c = class_of(bytes);
    if (c < classes && free_[c].size() < max_free) {
      try {
        free_[c].push_back(p);
        return;
      } catch (...) {
        // no room to remember it: free it
      }
    }
    ::operator delete(p);
  }

private:
  static constexpr size_t granule = 16; // operator new's alignment here
  static constexpr size_t classes = 16; // blocks up to 256 bytes
  static constexpr size_t max_free = 4096;

  static size_t class_of(size_t bytes) noexcept {
    return bytes == 0 ? 0 : (bytes - 1) / granule;
  }

  std::array<std::vector<void*>, classes> free_;
};

// A std allocator over a shared node_pool. A default-constructed allocator
// makes a pool of its own; copies and rebinds share it, and it moves with
// its container.
template <class T>
class pool_allocator {
public:
  static_assert(alignof(T) <= 16, "node_pool blocks are 16-byte aligned");
  using value_type = T;
  using propagate_on_container_copy_assignment = std::true_type;
  using propagate_on_container_move_assignment = std::true_type;
  using propagate_on_container_swap = std::true_type;

  pool_allocator() : pool_(std::make_shared<node_pool>()) {
  }
  // Copied, never moved: a moved-from container must still allocate.
  pool_allocator(const pool_allocator&) noexcept = default;
  pool_allocator& operator=(const pool_allocator&) noexcept = default;
  template <class U>
  pool_allocator(const pool_allocator<U>& other) noexcept
    : pool_(other.pool_) {
  }

  T* allocate(size_t n) {
    return static_cast<T*>(pool_->get(n * sizeof(T)));
  }
  void deallocate(T* p, size_t n) noexcept {
    pool_->put(p, n * sizeof(T));
  }

  template <class U>
  bool operator==(const pool_allocator<U>& other) const noexcept {
    return pool_ == other.pool_;
  }
  template <class U>
  bool operator!=(const pool_allocator<U>& other) const noexcept {
    return pool_ != other.pool_;
  }

private:
  template <class U>
  friend class pool_allocator;
  std::shared_ptr<node_pool> pool_;
};

} // namespace troupe
