// The tuned single-threaded C++ loop that does what config/etl.yaml does: the
// baseline of troupe-bench's etl group, called in-process by the bench and as
// a whole process by troupe-etl-loop (etl_loop_main.cpp).
//
// Body "raw_i", SHA-256 hex with a reused context and a pre-fetched digest,
// one jsonl line per record exactly as troupe's file sink writes it
// ({"seq":N,"key":"","body":"<hex>","attrs":{}}), through a 1 MiB buffered
// FILE*. Throws std::runtime_error when OpenSSL or the file fails.
#pragma once

#include <openssl/evp.h>

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace troupe::bench {

inline void etl_cpp_loop(uint64_t n, const std::string& out_path) {
  EVP_MD* md = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  FILE* f = std::fopen(out_path.c_str(), "wb");
  if (!md || !ctx || !f)
    throw std::runtime_error("C++ loop: setup failed");
  std::vector<char> buf(1 << 20);
  std::setvbuf(f, buf.data(), _IOFBF, buf.size());
  static constexpr char hex[] = "0123456789abcdef";
  std::string body, line;
  unsigned char digest[EVP_MAX_MD_SIZE];
  char num[24];
  for (uint64_t i = 0; i < n; ++i) {
    auto [nend, _] = std::to_chars(num, num + sizeof num, i);
    body.assign("raw_");
    body.append(num, nend);
    unsigned len = 0;
    if (!EVP_DigestInit_ex(ctx, md, nullptr)
        || !EVP_DigestUpdate(ctx, body.data(), body.size())
        || !EVP_DigestFinal_ex(ctx, digest, &len))
      throw std::runtime_error("C++ loop: SHA256 failed");
    line.assign("{\"seq\":");
    line.append(num, nend);
    line.append(",\"key\":\"\",\"body\":\"");
    for (unsigned k = 0; k < len; ++k) {
      line += hex[digest[k] >> 4];
      line += hex[digest[k] & 0xF];
    }
    line.append("\",\"attrs\":{}}\n");
    std::fwrite(line.data(), 1, line.size(), f);
  }
  // fclose flushes: a full disk shows here, not as a short file.
  bool write_failed = std::ferror(f) != 0;
  if (std::fclose(f) != 0 || write_failed)
    throw std::runtime_error("C++ loop: writing " + out_path + " failed");
  EVP_MD_CTX_free(ctx);
  EVP_MD_free(md);
}

} // namespace troupe::bench
