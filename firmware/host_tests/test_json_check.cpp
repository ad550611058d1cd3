#include <gtest/gtest.h>

#include <string>

#include "ibp/json_check.h"

namespace {

bool obj(const std::string& s) { return ibp::is_json_object(reinterpret_cast<const uint8_t*>(s.data()), s.size()); }

TEST(JsonCheck, AcceptsObjects) {
  EXPECT_TRUE(obj("{}"));
  EXPECT_TRUE(obj(" {\"t\":21.5,\"h\":-4e-2,\"a\":[1,true,null,{\"x\":\"\\u00e9\\n\"}]} "));
  EXPECT_TRUE(obj("{\"run\":\"r1\",\"v\":0}"));
  EXPECT_TRUE(obj("{\"caf\xc3\xa9\":1}"));
}

TEST(JsonCheck, RejectsEverythingElse) {
  for (const char* bad : {"", "[]", "1", "\"s\"", "{", "{\"a\":}", "{\"a\":1,}", "{a:1}", "{\"a\":01}",
                          "{\"a\":1} x", "{\"a\":tru}", "{\"a\":\"\\x\"}", "{\"a\":1.}", "{\"a\":\"\x01\"}"}) {
    EXPECT_FALSE(obj(bad)) << bad;
  }
  EXPECT_FALSE(obj("{\"a\":\"\xff\"}"));
  EXPECT_FALSE(obj(std::string(40, '[')));
}

TEST(Utf8, RejectsOverlongAndSurrogates) {
  auto u = [](const std::string& s) {
    return ibp::is_valid_utf8(reinterpret_cast<const uint8_t*>(s.data()), s.size());
  };
  EXPECT_TRUE(u("capteur-\xc3\xa9t\xc3\xa9"));
  EXPECT_FALSE(u("\xc0\xaf"));          // overlong '/'
  EXPECT_FALSE(u("\xed\xa0\x80"));      // surrogate
  EXPECT_FALSE(u("\xe2\x82"));          // truncated
  EXPECT_FALSE(u("\xf4\x90\x80\x80"));  // above U+10FFFF
}

}  // namespace
