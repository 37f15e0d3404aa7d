// Built-in record functions for map and filter.
#define OPENSSL_SUPPRESS_DEPRECATED // SHA256_Init & co.: see sha256_hex
#include <openssl/sha.h>

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

// SHA-256 through OpenSSL's low-level interface, on a context on the stack:
// OpenSSL 3.0's EVP_DigestInit_ex allocates a provider context for every
// digest (measured: one malloc per record), and the low-level call is ~30 %
// faster here for short bodies. Deprecated in 3.0, still part of it.
void sha256_hex(std::string& body) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256_CTX ctx;
  if (!SHA256_Init(&ctx) || !SHA256_Update(&ctx, body.data(), body.size())
      || !SHA256_Final(digest, &ctx))
    throw std::runtime_error("OpenSSL: SHA256 failed");
  static constexpr char hex[] = "0123456789abcdef";
  body.resize(2 * SHA256_DIGEST_LENGTH);
  for (size_t i = 0; i < SHA256_DIGEST_LENGTH; ++i) {
    body[2 * i] = hex[digest[i] >> 4];
    body[2 * i + 1] = hex[digest[i] & 0xF];
  }
}

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
  reg.add_function("sha256", "body := lowercase hex SHA-256 of the body",
                   stateless([](record& r) {
                     sha256_hex(r.body);
                     return fn_result::keep();
                   }));
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
