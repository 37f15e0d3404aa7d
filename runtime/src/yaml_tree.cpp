#include "yaml_tree.hpp"

#include <cctype>
#include <map>
#include <sstream>

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

namespace troupe::detail {

const yaml_node* yaml_node::find(const std::string& key) const {
  for (auto& [k, v] : entries)
    if (k.what == kind::scalar && k.value == key)
      return &v;
  return nullptr;
}

yaml_node* yaml_node::find(const std::string& key) {
  return const_cast<yaml_node*>(std::as_const(*this).find(key));
}

const char* yaml_node::kind_name() const {
  switch (what) {
    case kind::null:
      return "null";
    case kind::scalar:
      return "a scalar";
    case kind::sequence:
      return "a list";
    default:
      return "a map";
  }
}

namespace {

// yaml-cpp counts columns in bytes; editors count characters. Recount the
// UTF-8 characters between the line start and the mark when the text is at
// hand (it always is, except for the text-less fallback).
source_location at(const std::string& file, const YAML::Mark& m,
                   const std::string* text = nullptr) {
  int column = m.column + 1;
  if (text && m.pos >= 0 && static_cast<size_t>(m.pos) <= text->size()) {
    auto pos = static_cast<size_t>(m.pos);
    auto line_start = text->rfind('\n', pos == 0 ? 0 : pos - 1);
    line_start = line_start == std::string::npos ? 0 : line_start + 1;
    if (pos < line_start) // the mark sits on a newline itself
      line_start = pos;
    column = 1;
    for (auto k = line_start; k < pos; ++k)
      column += (static_cast<unsigned char>((*text)[k]) >> 6) != 0x2;
  }
  return {file, m.line + 1, column};
}

// Returns the position of the first byte that is not valid UTF-8.
std::optional<source_location> find_invalid_utf8(const std::string& text,
                                                 const std::string& file) {
  int line = 1, col = 1;
  size_t i = 0;
  auto n = text.size();
  while (i < n) {
    auto c = static_cast<unsigned char>(text[i]);
    size_t len = c < 0x80 ? 1
                 : (c >> 5) == 0x6 ? 2
                 : (c >> 4) == 0xE ? 3
                 : (c >> 3) == 0x1E ? 4
                                   : 0;
    bool ok = len > 0 && i + len <= n;
    for (size_t k = 1; ok && k < len; ++k)
      ok = (static_cast<unsigned char>(text[i + k]) >> 6) == 0x2;
    if (!ok)
      return source_location{file, line, col};
    if (c == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
    i += len;
  }
  return std::nullopt;
}

// yaml-cpp recurses once per nested flow collection; a line of ten thousand
// '[' overflows its stack before any event reaches us. Scan for that first.
std::optional<source_location> find_deep_flow(const std::string& text,
                                              const std::string& file) {
  int line = 1, col = 1;
  size_t depth = 0;
  char quote = 0;
  bool comment = false;
  for (char c : text) {
    if (c == '\n') {
      ++line;
      col = 1;
      comment = false;
      continue;
    }
    if (!comment) {
      if (quote) {
        if (c == quote)
          quote = 0;
      } else if (c == '"' || c == '\'') {
        quote = c;
      } else if (c == '#') {
        comment = true;
      } else if (c == '[' || c == '{') {
        if (++depth > max_config_depth)
          return source_location{file, line, col};
      } else if ((c == ']' || c == '}') && depth > 0) {
        --depth;
      }
    }
    ++col;
  }
  return std::nullopt;
}

class tree_builder : public YAML::EventHandler {
public:
  tree_builder(std::string file, const std::string& text,
               std::vector<diagnostic>& errors)
    : file_(std::move(file)), text_(text), errors_(errors) {
  }

  std::optional<yaml_node> root;
  bool too_deep = false;

  void OnDocumentStart(const YAML::Mark&) override {
  }
  void OnDocumentEnd() override {
  }

  void OnNull(const YAML::Mark& m, YAML::anchor_t a) override {
    yaml_node n;
    n.where = at(file_, m, &text_);
    // A plain `null` is a word to us (the null sink): keep it as a scalar.
    // `~` and an empty value stay null.
    if (is_word_at(m, "null")) {
      n.what = yaml_node::kind::scalar;
      n.value = "null";
    } else if (!is_word_at(m, "~") && !stack_.empty()
               && stack_.back().pending_key) {
      // An empty value: yaml-cpp marks the next token, possibly lines
      // later. The key it belongs to is where the reader should look.
      n.where = stack_.back().pending_key->where;
    }
    check_anchor(a, m);
    add(std::move(n));
  }

  void OnAlias(const YAML::Mark& m, YAML::anchor_t) override {
    error(at(file_, m, &text_), "aliases (*name) are not supported; write the value "
                        "out, or use a resource and reference it by name");
    yaml_node n;
    n.where = at(file_, m, &text_);
    add(std::move(n));
  }

  void OnScalar(const YAML::Mark& m, const std::string& tag, YAML::anchor_t a,
                const std::string& value) override {
    check_anchor(a, m);
    yaml_node n;
    n.what = yaml_node::kind::scalar;
    n.value = value;
    n.quoted = tag == "!";
    n.where = at(file_, m, &text_);
    add(std::move(n));
  }

  void OnSequenceStart(const YAML::Mark& m, const std::string&,
                       YAML::anchor_t a, YAML::EmitterStyle::value) override {
    check_anchor(a, m);
    open(yaml_node::kind::sequence, m);
  }
  void OnSequenceEnd() override {
    close();
  }

  void OnMapStart(const YAML::Mark& m, const std::string&, YAML::anchor_t a,
                  YAML::EmitterStyle::value) override {
    check_anchor(a, m);
    open(yaml_node::kind::map, m);
  }
  void OnMapEnd() override {
    close();
  }

  void OnAnchor(const YAML::Mark& m, const std::string& name) override {
    error(at(file_, m, &text_), "anchors (&" + name
                          + ") are not supported; write the value out, or use "
                            "a resource and reference it by name");
    anchor_reported_ = true;
  }

private:
  // `word` stands at the mark and is not the start of a longer word.
  bool is_word_at(const YAML::Mark& m, const char* word) const {
    if (m.pos < 0)
      return false;
    auto pos = static_cast<size_t>(m.pos);
    std::string w{word};
    if (text_.compare(pos, w.size(), w) != 0)
      return false;
    auto next = pos + w.size();
    if (next >= text_.size())
      return true;
    auto c = static_cast<unsigned char>(text_[next]);
    return !(std::isalnum(c) || c == '_' || c == '-' || c >= 0x80);
  }

  struct frame {
    yaml_node node;
    std::optional<yaml_node> pending_key;
    std::map<std::string, int> key_lines;
  };

  void check_anchor(YAML::anchor_t a, const YAML::Mark& m) {
    if (a != YAML::NullAnchor && !anchor_reported_)
      error(at(file_, m, &text_), "anchors are not supported");
    anchor_reported_ = false;
  }

  void open(yaml_node::kind k, const YAML::Mark& m) {
    if (stack_.size() >= max_config_depth && !too_deep) {
      too_deep = true;
      error(at(file_, m, &text_), "nesting deeper than "
                            + std::to_string(max_config_depth) + " levels");
    }
    frame f;
    f.node.what = k;
    f.node.where = at(file_, m, &text_);
    stack_.push_back(std::move(f));
  }

  void close() {
    auto n = std::move(stack_.back().node);
    stack_.pop_back();
    add(std::move(n));
  }

  void add(yaml_node n) {
    if (stack_.empty()) {
      root = std::move(n);
      return;
    }
    auto& top = stack_.back();
    if (top.node.what == yaml_node::kind::sequence) {
      top.node.items.push_back(std::move(n));
    } else if (!top.pending_key) {
      if (n.what == yaml_node::kind::scalar) {
        auto [it, fresh] = top.key_lines.emplace(n.value, n.where.line);
        if (!fresh)
          error(n.where, "duplicate key '" + n.value
                           + "' (first defined on line "
                           + std::to_string(it->second) + ")");
      } else {
        error(n.where, "map keys must be plain strings");
      }
      top.pending_key = std::move(n);
    } else {
      top.node.entries.emplace_back(std::move(*top.pending_key), std::move(n));
      top.pending_key.reset();
    }
  }

  void error(source_location where, std::string msg) {
    errors_.push_back({std::move(where), std::move(msg)});
  }

  std::string file_;
  const std::string& text_;
  std::vector<diagnostic>& errors_;
  std::vector<frame> stack_;
  bool anchor_reported_ = false;
};

} // namespace

std::optional<yaml_node> parse_yaml(const std::string& text,
                                    const std::string& file,
                                    std::vector<diagnostic>& errors) {
  // A UTF-8 byte order mark (editors on Windows write one) is not content:
  // left in, yaml-cpp skips it but counts it in positions, so columns and
  // the `null` word check would be off by its three bytes.
  static const std::string bom = "\xEF\xBB\xBF";
  if (text.compare(0, bom.size(), bom) == 0)
    return parse_yaml(text.substr(bom.size()), file, errors);
  auto errors_before = errors.size();
  if (text.size() > max_config_bytes) {
    errors.push_back({{file, 1, 1},
                      "file is " + std::to_string(text.size())
                        + " bytes; configuration files are limited to 1 MiB"});
    return std::nullopt;
  }
  if (auto bad = find_invalid_utf8(text, file)) {
    errors.push_back({*bad, "invalid UTF-8; configuration files must be UTF-8"});
    return std::nullopt;
  }
  if (auto deep = find_deep_flow(text, file)) {
    errors.push_back({*deep, "nesting deeper than "
                               + std::to_string(max_config_depth) + " levels"});
    return std::nullopt;
  }
  std::istringstream in(text);
  tree_builder builder(file, text, errors);
  try {
    YAML::Parser parser(in);
    if (!parser.HandleNextDocument(builder) || !builder.root) {
      errors.push_back({{file, 1, 1}, "empty configuration"});
      return std::nullopt;
    }
    tree_builder extra(file, text, errors);
    if (parser.HandleNextDocument(extra)) {
      auto where = extra.root ? extra.root->where : source_location{file, 1, 1};
      errors.push_back({where, "more than one YAML document; troupe reads "
                               "exactly one graph per file"});
    }
  } catch (const YAML::Exception& e) {
    errors.push_back({at(file, e.mark, &text), "malformed YAML: " + e.msg});
    return std::nullopt;
  }
  if (builder.too_deep || errors.size() > errors_before)
    return std::nullopt;
  return std::move(builder.root);
}

} // namespace troupe::detail
