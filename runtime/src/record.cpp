#include "troupe/record.hpp"

#include <algorithm>

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

batch_storage::~batch_storage() {
  // acq_rel: the last holder sees every other holder's reads before it frees.
  if (block_ && block_->refs.fetch_sub(1, std::memory_order_acq_rel) == 1)
    delete block_;
}

} // namespace detail

record_batch::record_batch(std::vector<record> records)
  : data_(std::move(records)) {
}

size_t record_batch::payload_bytes() const noexcept {
  size_t n = 0;
  for (auto& r : records())
    n += r.key.size() + r.body.size();
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
  std::vector<record> kept;
  for (size_t i = 0; i < rs.size(); ++i)
    if (i < keep.size() && keep[i])
      kept.push_back(rs[i]);
  if (kept.size() == rs.size())
    return *this;
  return record_batch{std::move(kept)};
}

std::vector<record>& record_batch::mutable_records() {
  if (!data_ || !owned()) {
    auto rs = records();
    data_ = detail::batch_storage{std::vector<record>(rs.begin(), rs.end())};
    offset_ = 0;
    size_ = whole;
  }
  return *data_;
}

std::vector<record> record_batch::take() {
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
