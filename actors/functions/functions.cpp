// Built-in record functions for map and filter.
#include <openssl/evp.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cmath>
#include <memory>
#include <stdexcept>

#include "troupe/actors/builtin_types.hpp"
#include "troupe/loader.hpp"

namespace troupe::actors {

namespace {

// SHA-256 with the digest fetched once and one context reused per worker:
// ~3x cheaper than the one-shot SHA256() on these machines.
class sha256_hex {
public:
  sha256_hex()
    : md_(EVP_MD_fetch(nullptr, "SHA256", nullptr)), ctx_(EVP_MD_CTX_new()) {
    if (!md_ || !ctx_)
      throw std::runtime_error("OpenSSL: SHA256 unavailable");
  }
  ~sha256_hex() {
    EVP_MD_CTX_free(ctx_);
    EVP_MD_free(md_);
  }
  sha256_hex(const sha256_hex&) = delete;
  sha256_hex& operator=(const sha256_hex&) = delete;

  void operator()(std::string& body) {
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    if (!EVP_DigestInit_ex(ctx_, md_, nullptr)
        || !EVP_DigestUpdate(ctx_, body.data(), body.size())
        || !EVP_DigestFinal_ex(ctx_, digest, &len))
      throw std::runtime_error("OpenSSL: SHA256 failed");
    static constexpr char hex[] = "0123456789abcdef";
    body.resize(len * 2);
    for (unsigned i = 0; i < len; ++i) {
      body[2 * i] = hex[digest[i] >> 4];
      body[2 * i + 1] = hex[digest[i] & 0xF];
    }
  }

private:
  EVP_MD* md_;
  EVP_MD_CTX* ctx_;
};

template <class F>
record_fn_factory stateless(F f) {
  return [f] { return record_fn{f}; };
}

} // namespace

void check_function_name(const param_value& fn, const registry& reg,
                         std::vector<diagnostic>& errors) {
  if (reg.find_function(fn.text))
    return;
  auto msg = "unknown function '" + fn.text + "'";
  auto guess = did_you_mean(fn.text, reg.function_names());
  if (!guess.empty())
    msg += " (did you mean '" + guess + "'?)";
  errors.push_back({fn.where, msg + "; `troupe types map` lists them"});
}

void register_functions(registry& reg) {
  reg.add_function("sha256", "body := lowercase hex SHA-256 of the body", [] {
    auto h = std::make_shared<sha256_hex>();
    return record_fn{[h](record& r) {
      (*h)(r.body);
      return fn_result::keep();
    }};
  });
  reg.add_function("identity", "passes records unchanged (no copy)",
                   stateless([](record&) { return fn_result::keep(); }));
  reg.add_function("upper", "body := upper-case ASCII",
                   stateless([](record& r) {
                     for (auto& c : r.body)
                       c = static_cast<char>(
                         std::toupper(static_cast<unsigned char>(c)));
                     return fn_result::keep();
                   }));
  reg.add_function("lower", "body := lower-case ASCII",
                   stateless([](record& r) {
                     for (auto& c : r.body)
                       c = static_cast<char>(
                         std::tolower(static_cast<unsigned char>(c)));
                     return fn_result::keep();
                   }));
  reg.add_function("trim", "strips leading and trailing whitespace",
                   stateless([](record& r) {
                     auto sp = [](unsigned char c) { return std::isspace(c); };
                     auto b = std::find_if_not(r.body.begin(), r.body.end(), sp);
                     auto e = std::find_if_not(r.body.rbegin(), r.body.rend(), sp)
                                .base();
                     r.body = b < e ? std::string(b, e) : std::string{};
                     return fn_result::keep();
                   }));
  reg.add_function("square", "body := body * body (integers); fails otherwise",
                   stateless([](record& r) {
                     char* end = nullptr;
                     errno = 0;
                     auto v = std::strtoll(r.body.c_str(), &end, 10);
                     if (r.body.empty() || *end || errno
                         || std::llabs(v) > 3037000499LL)
                       return fn_result::fail("square: not an integer in "
                                              "range: '"
                                              + r.body.substr(0, 40) + "'");
                     r.body = std::to_string(v * v);
                     return fn_result::keep();
                   }));
  reg.add_function("even", "keeps records whose body is an even integer",
                   stateless([](record& r) {
                     char* end = nullptr;
                     auto v = std::strtoll(r.body.c_str(), &end, 10);
                     if (r.body.empty() || *end)
                       return fn_result::drop();
                     return v % 2 == 0 ? fn_result::keep() : fn_result::drop();
                   }));
}

} // namespace troupe::actors
