#include "ibp/hmac_sha256.h"

#include <cstdlib>

#include "mbedtls/md.h"

namespace ibp {

void hmac_sha256(const uint8_t* key, size_t key_len, const uint8_t* data, size_t len, uint8_t out[kDigestLen]) {
  const mbedtls_md_info_t* info = mbedtls_md_info_from_type(MBEDTLS_MD_SHA256);
  // Fail closed: an uncomputed tag must never reach a signer or a verifier.
  if (info == nullptr || mbedtls_md_hmac(info, key, key_len, data, len, out) != 0) std::abort();
}

bool constant_time_equal(const uint8_t* a, const uint8_t* b, size_t len) {
  uint8_t diff = 0;
  for (size_t i = 0; i < len; ++i) diff |= uint8_t(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace ibp
