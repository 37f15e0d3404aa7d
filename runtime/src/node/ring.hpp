// A FIFO queue in one growable circular buffer (internal, CAF-free).
//
// For the ledger's per-batch queues: std::deque frees and allocates a chunk
// every few hundred bytes of elements pushed through it, so a queue that
// stays short still allocates on the record path. A ring allocates only
// when it grows past its largest size so far.
//
// Example:
//   ring<int> q;
//   q.push_back(1);
//   q.push_back(2);
//   q.front();     // 1
//   q.pop_front(); // q[0] == 2
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

namespace troupe::detail {

template <class T>
class ring {
public:
  bool empty() const noexcept {
    return size_ == 0;
  }
  size_t size() const noexcept {
    return size_;
  }
  T& front() noexcept {
    return slots_[head_];
  }
  T& operator[](size_t i) noexcept {
    return slots_[(head_ + i) & (slots_.size() - 1)];
  }
  const T& operator[](size_t i) const noexcept {
    return slots_[(head_ + i) & (slots_.size() - 1)];
  }
  void push_back(T x) {
    if (size_ == slots_.size())
      grow();
    slots_[(head_ + size_) & (slots_.size() - 1)] = std::move(x);
    ++size_;
  }
  // The element is reset to T{}, so what it owned is let go now.
  void pop_front() {
    slots_[head_] = T{};
    head_ = (head_ + 1) & (slots_.size() - 1);
    --size_;
  }
  void clear() {
    while (!empty())
      pop_front();
  }

private:
  void grow() {
    std::vector<T> bigger(slots_.empty() ? 8 : slots_.size() * 2);
    for (size_t i = 0; i < size_; ++i)
      bigger[i] = std::move((*this)[i]);
    slots_ = std::move(bigger);
    head_ = 0;
  }

  std::vector<T> slots_; // a power of two long
  size_t head_ = 0;
  size_t size_ = 0;
};

} // namespace troupe::detail
