#include "troupe/record.hpp"

#include <algorithm>
#include <array>
#include <mutex>

namespace troupe {

const std::string* record::attr(const std::string& name) const {
  for (auto& kv : attrs)
    if (kv.first == name)
      return &kv.second;
  return nullptr;
}

void record::set_attr(std::string name, std::string value) {
  for (auto& kv : attrs)
    if (kv.first == name) {
      kv.second = std::move(value);
      return;
    }
  attrs.emplace_back(std::move(name), std::move(value));
}

namespace detail {

batch_storage::batch_storage(std::vector<record> records)
  : block_(new block{{1}, std::move(records)}) {
}

batch_storage::batch_storage(const batch_storage& other) noexcept
  : block_(other.block_) {
  if (block_)
    block_->refs.fetch_add(1, std::memory_order_relaxed);
}

batch_storage::batch_storage(batch_storage&& other) noexcept
  : block_(other.block_) {
  other.block_ = nullptr;
}

batch_storage& batch_storage::operator=(batch_storage other) noexcept {
  std::swap(block_, other.block_);
  return *this;
}

// The shelf: blocks whose last holder let go, kept by record count for the
// next batch of that count. A pipeline makes batches of a few sizes over and
// over (a source's batch_size, a batch stage's size), so a handful of
// classes catch nearly all of them. Everything is bounded: what does not fit
// is freed, and so are strings grown unusually large, so a burst of big
// records does not stay resident.
class shelf {
public:
  using block = batch_storage::block;

  static shelf& instance() {
    // Never destroyed: batches may be let go during static destruction.
    static shelf* s = new shelf;
    return *s;
  }

  block* take(size_t n, bool roomy) {
    std::lock_guard<std::mutex> guard{mu_};
    for (auto& c : classes_) {
      if (c.n != n)
        continue;
      auto& first = roomy ? c.roomy : c.tight;
      auto& second = roomy ? c.tight : c.roomy;
      auto& from = first.empty() ? second : first;
      if (from.empty())
        return nullptr;
      auto* b = from.back();
      from.pop_back();
      records_ -= n;
      bytes_ -= b->shelf_bytes;
      return b;
    }
    return nullptr;
  }

  void put(block* b) {
    auto n = b->records.size();
    if (n == 0 || n > max_block_records) {
      delete b;
      return;
    }
    // Scrubbed and measured outside the lock (the last holder's thread).
    size_t least = SIZE_MAX;
    size_t bytes = n * sizeof(record);
    for (auto& r : b->records) {
      bytes += trim(r.key) + trim(r.body);
      if (r.attrs.capacity() > max_attrs)
        std::vector<std::pair<std::string, std::string>>{}.swap(r.attrs);
      for (auto& [k, v] : r.attrs)
        bytes += trim(k) + trim(v);
      least = std::min(least, r.body.capacity());
    }
    b->refs.store(1, std::memory_order_relaxed);
    b->shelf_bytes = bytes;
    bool roomy = least > std::string{}.capacity();
    {
      std::lock_guard<std::mutex> guard{mu_};
      if (records_ + n <= max_records && bytes_ + bytes <= max_bytes)
        if (auto* c = class_of(n)) {
          auto& to = roomy ? c->roomy : c->tight;
          if (to.size() < max_per_class) {
            to.push_back(b);
            records_ += n;
            bytes_ += bytes;
            return;
          }
        }
    }
    delete b;
  }

private:
  static constexpr size_t max_block_records = 8192;
  static constexpr size_t max_records = 262144;
  static constexpr size_t max_per_class = 1024;
  static constexpr size_t max_string = 4096;
  static constexpr size_t max_attrs = 16;
  static constexpr size_t max_bytes = size_t{64} << 20;

  struct size_class {
    size_t n = 0; // 0: unused
    std::vector<block*> roomy, tight;
  };

  // Frees an unusually large string; returns the heap bytes it keeps.
  static size_t trim(std::string& s) {
    if (s.capacity() > max_string)
      std::string{}.swap(s);
    return s.capacity() > std::string{}.capacity() ? s.capacity() + 1 : 0;
  }

  // Caller holds mu_.
  size_class* class_of(size_t n) {
    size_class* unused = nullptr;
    for (auto& c : classes_) {
      if (c.n == n)
        return &c;
      if (c.n == 0 && !unused)
        unused = &c;
    }
    // A class of another size with nothing on it is handed over, so the
    // first sizes seen do not keep the classes for good.
    for (auto& c : classes_)
      if (!unused && c.roomy.empty() && c.tight.empty())
        unused = &c;
    if (unused) {
      unused->n = n;
      unused->roomy.reserve(max_per_class);
      unused->tight.reserve(max_per_class);
    }
    return unused;
  }

  std::mutex mu_;
  std::array<size_class, 8> classes_;
  size_t records_ = 0; // on the shelf
  size_t bytes_ = 0;   // what they keep (records and strings)
};

batch_storage batch_storage::recycled(size_t n, bool roomy) {
  if (auto* b = shelf::instance().take(n, roomy))
    return batch_storage{b};
  return batch_storage{new block{{1}, std::vector<record>(n)}};
}

batch_storage::~batch_storage() {
  // acq_rel: the last holder sees every other holder's reads before it
  // recycles.
  if (block_ && block_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1)
    shelf::instance().put(block_);
}

} // namespace detail

record_batch::record_batch(std::vector<record> records)
  : data_(std::move(records)) {
}

namespace {

// `to = from`, skipping the calls for what is empty on both sides (keys and
// attributes usually are): copying into recycled records is on every hop.
void assign(record& to, const record& from) {
  to.seq = from.seq;
  if (!to.key.empty() || !from.key.empty())
    to.key = from.key;
  to.body = from.body;
  if (!to.attrs.empty() || !from.attrs.empty())
    to.attrs = from.attrs;
  to.ctx = from.ctx;
}

template <class It>
It assign_all(record_span from, It to) {
  for (auto& r : from)
    assign(*to++, r);
  return to;
}

} // namespace

record_batch record_batch::make(size_t n) {
  record_batch result;
  if (n == 0)
    return result;
  result.data_ = detail::batch_storage::recycled(n, false);
  for (auto& r : *result.data_) {
    r.seq = 0;
    r.key.clear();
    r.body.clear();
    r.attrs.clear();
    r.ctx = record_context{};
  }
  return result;
}

record_batch record_batch::copy_of(record_span rs) {
  record_batch result;
  if (rs.empty())
    return result;
  result.data_ = detail::batch_storage::recycled(rs.size(), true);
  assign_all(rs, result.data_->begin());
  return result;
}

record_batch record_batch::concat(const std::vector<record_batch>& parts) {
  if (parts.size() == 1)
    return parts.front();
  size_t n = 0;
  for (auto& p : parts)
    n += p.size();
  record_batch result;
  if (n == 0)
    return result;
  result.data_ = detail::batch_storage::recycled(n, true);
  auto to = result.data_->begin();
  for (auto& p : parts)
    to = assign_all(p.records(), to);
  return result;
}

size_t record_batch::payload_bytes() const noexcept {
  if (bytes_ != unknown)
    return bytes_;
  size_t n = 0;
  for (auto& r : records())
    n += r.key.size() + r.body.size();
  bytes_ = n;
  return n;
}

record_batch record_batch::slice(size_t from, size_t n) const {
  record_batch result;
  auto total = size();
  if (from >= total || n == 0)
    return result;
  result.data_ = data_;
  result.offset_ = offset_ + from;
  result.size_ = std::min(n, total - from);
  return result;
}

record_batch record_batch::select(const std::vector<bool>& keep) const {
  auto rs = records();
  size_t n = 0;
  for (size_t i = 0; i < rs.size() && i < keep.size(); ++i)
    n += keep[i] ? 1 : 0;
  if (n == rs.size())
    return *this;
  if (n == 0)
    return {};
  // Copies: roomy recycled storage, overwritten whole by assign().
  record_batch result;
  result.data_ = detail::batch_storage::recycled(n, true);
  auto out = result.data_->begin();
  for (size_t i = 0; i < rs.size() && i < keep.size(); ++i)
    if (keep[i])
      assign(*out++, rs[i]);
  return result;
}

std::vector<record>& record_batch::mutable_records() {
  bytes_ = unknown;
  if (!data_) {
    data_ = detail::batch_storage{std::vector<record>{}};
  } else if (!owned()) {
    *this = copy_of(records());
  }
  return *data_;
}

std::vector<record> record_batch::take() {
  bytes_ = unknown;
  if (!data_)
    return {};
  if (!owned()) {
    auto rs = records();
    return std::vector<record>(rs.begin(), rs.end());
  }
  auto result = std::move(*data_);
  data_->clear();
  return result;
}

} // namespace troupe
