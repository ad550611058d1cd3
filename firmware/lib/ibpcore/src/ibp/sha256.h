// SHA-256 (FIPS 180-4) and HMAC-SHA256 (RFC 2104), portable and allocation-free.
// The board could use mbedTLS instead; this one keeps the core buildable and testable on the host.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace ibp {

constexpr size_t kDigestLen = 32;

class Sha256 {
 public:
  Sha256();
  void update(const uint8_t* data, size_t len);
  void finish(uint8_t out[kDigestLen]);

 private:
  void compress(const uint8_t block[64]);
  uint32_t state_[8];
  uint8_t buffer_[64];
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

class HmacSha256 {
 public:
  HmacSha256(const uint8_t* key, size_t key_len);
  void update(const uint8_t* data, size_t len) { inner_.update(data, len); }
  void finish(uint8_t out[kDigestLen]);

 private:
  Sha256 inner_;
  uint8_t outer_pad_[64];
};

void hmac_sha256(const uint8_t* key, size_t key_len, const uint8_t* data, size_t len, uint8_t out[kDigestLen]);

// Compares in time independent of where the buffers differ.
bool constant_time_equal(const uint8_t* a, const uint8_t* b, size_t len);

}  // namespace ibp
