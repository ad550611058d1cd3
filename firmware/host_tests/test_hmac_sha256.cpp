// The hmac_sha256 facade (mbedTLS underneath) against RFC 4231 test cases 1-4, 6, 7.
#include <gtest/gtest.h>

#include <string>

#include "ibp/hmac_sha256.h"
#include "ibp/protocol.h"

namespace {

std::string hmac_hex(const std::string& key, const std::string& msg) {
  uint8_t out[32];
  ibp::hmac_sha256(reinterpret_cast<const uint8_t*>(key.data()), key.size(),
                   reinterpret_cast<const uint8_t*>(msg.data()), msg.size(), out);
  return ibp::to_hex(out, 32);
}

TEST(HmacSha256, Rfc4231) {
  EXPECT_EQ(hmac_hex(std::string(20, '\x0b'), "Hi There"),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  EXPECT_EQ(hmac_hex("Jefe", "what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  EXPECT_EQ(hmac_hex(std::string(20, '\xaa'), std::string(50, '\xdd')),
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe");
  std::string key4;
  for (int i = 1; i <= 25; ++i) key4.push_back(char(i));
  EXPECT_EQ(hmac_hex(key4, std::string(50, '\xcd')),
            "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b");
  std::string big(131, '\xaa');
  EXPECT_EQ(hmac_hex(big, "Test Using Larger Than Block-Size Key - Hash Key First"),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
  EXPECT_EQ(hmac_hex(big,
                     "This is a test using a larger than block-size key and a larger than block-size data. "
                     "The key needs to be hashed before being used by the HMAC algorithm."),
            "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2");
}

TEST(ConstantTimeEqual, DetectsAnyDifference) {
  uint8_t a[32] = {0}, b[32] = {0};
  EXPECT_TRUE(ibp::constant_time_equal(a, b, 32));
  b[31] = 1;
  EXPECT_FALSE(ibp::constant_time_equal(a, b, 32));
}

}  // namespace
