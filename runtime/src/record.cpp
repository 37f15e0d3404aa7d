#include "troupe/record.hpp"

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

record_batch::record_batch() : data_(std::make_shared<std::vector<record>>()) {
}

record_batch::record_batch(std::vector<record> records)
  : data_(std::make_shared<std::vector<record>>(std::move(records))) {
}

std::vector<record>& record_batch::mutable_records() {
  if (data_.use_count() > 1)
    data_ = std::make_shared<std::vector<record>>(*data_);
  return *data_;
}

std::vector<record> record_batch::take() {
  if (data_.use_count() > 1)
    return *data_;
  auto result = std::move(*data_);
  data_->clear();
  return result;
}

} // namespace troupe
