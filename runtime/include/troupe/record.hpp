// The unit of pipeline data, and the batches records travel in.
//
// A record is plain data: it is copied or moved between actors, never shared
// mutably. A record_batch is a copy-on-write view of records: handing a batch
// to the next stage, keeping it for redelivery, or cutting it into slices
// (slice()) only bumps a reference count; the first writer to a shared batch
// gets its own copy of just its records.
//
// Storage is recycled: when the last holder lets go of a batch, its records
// (with their strings' capacity) go to a bounded process-wide shelf, and
// record_batch::make / copy_of and copy-on-write take them from there. A
// warm pipeline therefore fills records without allocating.
//
// Example:
//   troupe::record r;
//   r.seq = 7;
//   r.body = "raw_7";
//   r.set_attr("source", "generate");
//   troupe::record_batch b{std::vector<troupe::record>{r}};
#pragma once

#include <atomic>
#include <cstdint>
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

namespace detail {

// The shared storage of a record_batch, reference counted by hand: whether a
// batch may be written in place is decided by an *acquire* load of the count,
// which synchronises with the release of every other holder (a consumer on
// another thread that read the records, then dropped its reference). A
// std::shared_ptr offers only use_count(), a relaxed load: writing after it
// raced with those readers (ThreadSanitizer, with a TSan-built CAF).
class batch_storage {
public:
  batch_storage() noexcept = default;
  explicit batch_storage(std::vector<record> records);
  // `n` records from the shelf (or new ones). `roomy`: prefer records whose
  // strings have room (they will be overwritten by copies), otherwise the
  // tight ones (they will be filled from scratch).
  static batch_storage recycled(size_t n, bool roomy);
  batch_storage(const batch_storage& other) noexcept;
  batch_storage(batch_storage&& other) noexcept;
  batch_storage& operator=(batch_storage other) noexcept;
  ~batch_storage();

  explicit operator bool() const noexcept {
    return block_ != nullptr;
  }
  std::vector<record>& operator*() const noexcept {
    return block_->records;
  }
  std::vector<record>* operator->() const noexcept {
    return &block_->records;
  }
  // True when no other batch shares the storage: this holder may write.
  bool unique() const noexcept {
    return block_->refs.load(std::memory_order_acquire) == 1;
  }

private:
  struct block {
    std::atomic<size_t> refs{1};
    std::vector<record> records;
    size_t shelf_bytes = 0; // while on the shelf: the memory it keeps
  };
  friend class shelf;
  explicit batch_storage(block* b) noexcept : block_(b) {
  }
  block* block_ = nullptr;
};

} // namespace detail

class record_batch {
public:
  record_batch() = default; // empty, allocates nothing
  record_batch(const record_batch&) = default;
  record_batch& operator=(const record_batch&) = default;
  // A moved-from batch is empty: no records, no payload bytes.
  record_batch(record_batch&& other) noexcept
    : data_(std::move(other.data_)),
      offset_(other.offset_),
      size_(other.size_),
      bytes_(other.bytes_) {
    other.forget();
  }
  record_batch& operator=(record_batch&& other) noexcept {
    if (this != &other) {
      data_ = std::move(other.data_);
      offset_ = other.offset_;
      size_ = other.size_;
      bytes_ = other.bytes_;
      other.forget();
    }
    return *this;
  }
  explicit record_batch(std::vector<record> records);
  // `n` default records (seq 0, empty strings and attributes) in recycled
  // storage: filling them allocates nothing once the process is warm.
  static record_batch make(size_t n);
  // Copies of `rs` in recycled storage (no allocation once warm, when the
  // copies fit the strings' kept capacity).
  static record_batch copy_of(record_span rs);
  // The records of `parts`, in order, as one batch: the one part itself when
  // there is only one (no copy), else copies in recycled storage.
  static record_batch concat(const std::vector<record_batch>& parts);

  size_t size() const noexcept {
    if (size_ != whole)
      return size_;
    return data_ ? data_->size() : 0;
  }
  bool empty() const noexcept {
    return size() == 0;
  }
  record_span records() const noexcept {
    return data_ ? record_span{data_->data() + offset_, size()}
                 : record_span{nullptr, 0};
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
  // Counted once and remembered by this batch (and copies of it) until
  // mutable_records() or take(). Like every member, not for two threads
  // on one record_batch object at once (copies are independent).
  size_t payload_bytes() const noexcept;

private:
  static constexpr size_t whole = static_cast<size_t>(-1);

  void forget() noexcept {
    offset_ = 0;
    size_ = whole;
    bytes_ = unknown;
  }

  // Writable in place: unshared and not a slice.
  bool owned() const noexcept {
    return size_ == whole && data_.unique();
  }

  detail::batch_storage data_; // empty: no records
  size_t offset_ = 0;
  size_t size_ = whole; // `whole`: all of *data_, which may grow or shrink
  mutable size_t bytes_ = unknown; // payload_bytes(), once counted
  static constexpr size_t unknown = static_cast<size_t>(-1);
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
