// The unit of pipeline data, and the batches records travel in.
//
// A record is plain data: it is copied or moved between actors, never shared
// mutably. A record_batch is a copy-on-write view of records: handing a batch
// to the next stage, keeping it for redelivery, or cutting it into slices
// (slice()) only bumps a reference count; the first writer to a shared batch
// gets its own copy of just its records.
//
// Example:
//   troupe::record r;
//   r.seq = 7;
//   r.body = "raw_7";
//   r.set_attr("source", "generate");
//   troupe::record_batch b{std::vector<troupe::record>{r}};
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace troupe {

// Travels with a record through every stage: where it was made and how many
// times delivery was attempted (redelivery after a crash increments it).
struct record_context {
  uint32_t attempt = 1;
  // The source node that made the record (its graph index + 1; 0: not made
  // by a source of this run). With `seq` it names a record uniquely, which
  // lets a stage recognise a redelivered duplicate.
  uint32_t origin = 0;
};

struct record {
  uint64_t seq = 0;  // assigned by the source, unique per source
  std::string key;   // routing/grouping key; may be empty
  std::string body;  // payload bytes
  std::vector<std::pair<std::string, std::string>> attrs; // small, ordered
  record_context ctx;

  // Returns the attribute value or nullptr.
  const std::string* attr(const std::string& name) const;
  // Sets (or replaces) an attribute.
  void set_attr(std::string name, std::string value);
};

// Read-only view of contiguous records.
class record_span {
public:
  record_span(const record* first, size_t n) : first_(first), size_(n) {
  }
  const record* begin() const noexcept {
    return first_;
  }
  const record* end() const noexcept {
    return first_ + size_;
  }
  size_t size() const noexcept {
    return size_;
  }
  bool empty() const noexcept {
    return size_ == 0;
  }
  const record& operator[](size_t i) const noexcept {
    return first_[i];
  }

private:
  const record* first_;
  size_t size_;
};

class record_batch {
public:
  record_batch();
  explicit record_batch(std::vector<record> records);

  size_t size() const noexcept {
    return size_ == whole ? data_->size() : size_;
  }
  bool empty() const noexcept {
    return size() == 0;
  }
  record_span records() const noexcept {
    return {data_->data() + offset_, size()};
  }
  // Records [from, from + n) sharing this batch's storage (no copy).
  record_batch slice(size_t from, size_t n) const;
  // The records whose `keep` flag is set: this very batch (no copy) when all
  // are, a new batch with copies otherwise.
  record_batch select(const std::vector<bool>& keep) const;
  // Copies the records first when another holder shares them (or when this
  // batch is a slice of a larger one).
  std::vector<record>& mutable_records();
  // Moves the records out when unshared, copies them otherwise.
  std::vector<record> take();
  // Key and body bytes of the records: what credit counts besides records.
  size_t payload_bytes() const noexcept;

private:
  static constexpr size_t whole = static_cast<size_t>(-1);

  std::shared_ptr<std::vector<record>> data_;
  size_t offset_ = 0;
  size_t size_ = whole; // `whole`: all of *data_, which may grow or shrink
};

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, record_context& x) {
  return f(x.attempt, x.origin);
}

template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, record& x) {
  return f(x.seq, x.key, x.body, x.attrs, x.ctx);
}

// Serialising or rendering a shared batch detaches it first; that costs a copy
// only on the remote path, never between local actors.
template <class Inspector>
typename Inspector::result_type inspect(Inspector& f, record_batch& x) {
  return f(x.mutable_records());
}

} // namespace troupe
