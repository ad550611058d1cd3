// HMAC-SHA256 (RFC 2104) facade over mbedTLS: libmbedcrypto on the host (Debian libmbedtls-dev), the
// ESP-IDF copy bundled with the ESP32 Arduino core on the board (SHA-256 hardware-accelerated there).
// Only this header is seen by callers; mbedTLS stays an implementation detail of hmac_sha256.cpp.
#pragma once

#include <cstddef>
#include <cstdint>

namespace ibp {

constexpr size_t kDigestLen = 32;

// Never fails silently: if mbedTLS cannot compute the MAC (it allocates a small context on the heap),
// the process aborts rather than hand back a tag that could be compared against.
void hmac_sha256(const uint8_t* key, size_t key_len, const uint8_t* data, size_t len, uint8_t out[kDigestLen]);

// Compares in time independent of where the buffers differ.
bool constant_time_equal(const uint8_t* a, const uint8_t* b, size_t len);

}  // namespace ibp
