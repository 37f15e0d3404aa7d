// The tuned single-threaded C++ loop that does what config/etl.yaml does: the
// baseline of troupe-bench's etl group, called in-process by the bench and as
// a whole process by troupe-etl-loop (etl_loop_main.cpp).
//
// Body "raw_i", SHA-256 hex through OpenSSL's low-level SHA256_* calls (the
// fastest SHA-256 OpenSSL 3.0 offers here, and what troupe's sha256 uses:
// EVP allocates a context per digest and is ~30 % slower), one jsonl line
// per record exactly as troupe's file sink writes it
// ({"seq":N,"key":"","body":"<hex>","attrs":{}}), through a 1 MiB buffered
// FILE*. Throws std::runtime_error when OpenSSL or the file fails.
#pragma once

#define OPENSSL_SUPPRESS_DEPRECATED // SHA256_Init & co.
#include <openssl/sha.h>

#include <charconv>
#include <cstdint>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace troupe::bench {

inline void etl_cpp_loop(uint64_t n, const std::string& out_path) {
  FILE* f = std::fopen(out_path.c_str(), "wb");
  if (!f)
    throw std::runtime_error("C++ loop: cannot open " + out_path);
  std::vector<char> buf(1 << 20);
  std::setvbuf(f, buf.data(), _IOFBF, buf.size());
  static constexpr char hex[] = "0123456789abcdef";
  std::string body, line;
  unsigned char digest[SHA256_DIGEST_LENGTH];
  char num[24];
  for (uint64_t i = 0; i < n; ++i) {
    auto [nend, _] = std::to_chars(num, num + sizeof num, i);
    body.assign("raw_");
    body.append(num, nend);
    SHA256_CTX ctx;
    if (!SHA256_Init(&ctx) || !SHA256_Update(&ctx, body.data(), body.size())
        || !SHA256_Final(digest, &ctx))
      throw std::runtime_error("C++ loop: SHA256 failed");
    line.assign("{\"seq\":");
    line.append(num, nend);
    line.append(",\"key\":\"\",\"body\":\"");
    for (unsigned k = 0; k < SHA256_DIGEST_LENGTH; ++k) {
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
}

} // namespace troupe::bench
