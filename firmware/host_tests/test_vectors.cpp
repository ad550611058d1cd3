// The C++ codec against the shared IBP/1 vectors (tests/vectors/ibp1.json), generated from the Python
// reference codec: every data/ack/busy/auth_fail/derive_key vector byte for byte, every reject vector
// rejected with the gateway's reason.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <string>

#include "ibp/protocol.h"

namespace {

using nlohmann::json;

const json& vectors() {
  static const json doc = [] {
    std::ifstream in(IBP_VECTORS_PATH);
    if (!in) throw std::runtime_error(std::string("cannot open vectors file ") + IBP_VECTORS_PATH);
    return json::parse(in);
  }();
  return doc;
}

ibp::Bytes hex(const std::string& s) {
  ibp::Bytes out;
  if (!ibp::from_hex(s, out)) throw std::runtime_error("bad hex in vectors: " + s);
  return out;
}

ibp::Identity identity(const json& v) {
  ibp::Identity id;
  id.device_id = v.value("device_id", "");
  id.key = hex(v.at("key_hex").get<std::string>());
  return id;
}

TEST(Vectors, FileHasEveryKind) {
  std::set<std::string> kinds;
  for (const auto& v : vectors().at("vectors")) kinds.insert(v.at("kind").get<std::string>());
  for (const char* k : {"data", "ack", "busy", "auth_fail", "derive_key", "reject"}) {
    EXPECT_TRUE(kinds.count(k)) << "no '" << k << "' vector in " << IBP_VECTORS_PATH;
  }
}

TEST(Vectors, DataEncodesByteForByte) {
  int n = 0;
  for (const auto& v : vectors().at("vectors")) {
    if (v.at("kind") != "data") continue;
    ibp::Identity id = identity(v);
    std::vector<ibp::Reading> readings;
    for (const auto& r : v.at("readings")) {
      ibp::Reading reading;
      reading.timestamp_ms = r.at("timestamp_ms").get<uint64_t>();
      std::string p = r.at("payload").get<std::string>();
      reading.payload.assign(p.begin(), p.end());
      readings.push_back(reading);
    }
    ibp::Bytes out;
    auto res = ibp::encode_data(id, v.at("first_seq").get<uint32_t>(), readings, out);
    ASSERT_TRUE(res.ok) << v.at("name") << ": " << res.reason;
    EXPECT_EQ(ibp::to_hex(out.data(), out.size()), v.at("datagram_hex").get<std::string>()) << v.at("name");
    // And the gateway-side parser accepts it back, reading for reading.
    ibp::DataBatch batch;
    auto back = ibp::accept_data(out.data(), out.size(), id.key.data(), id.key.size(), batch);
    ASSERT_TRUE(back.ok) << v.at("name") << ": " << back.reason;
    EXPECT_EQ(batch.device_id, id.device_id);
    ASSERT_EQ(batch.readings.size(), readings.size());
    for (size_t i = 0; i < readings.size(); ++i) {
      EXPECT_EQ(batch.readings[i].payload, readings[i].payload);
      EXPECT_EQ(batch.readings[i].timestamp_ms, readings[i].timestamp_ms);
    }
    ++n;
  }
  EXPECT_GE(n, 1);
}

TEST(Vectors, AckAndBusyEncodeAndDecode) {
  int n = 0;
  for (const auto& v : vectors().at("vectors")) {
    std::string kind = v.at("kind");
    if (kind != "ack" && kind != "busy") continue;
    ibp::Identity id = identity(v);
    ibp::Bytes out;
    if (kind == "ack") {
      ASSERT_TRUE(ibp::encode_ack(id, v.at("ack_seq").get<uint32_t>(), out).ok);
    } else {
      ASSERT_TRUE(ibp::encode_busy(id, v.at("retry_after_ms").get<uint16_t>(), out).ok);
    }
    ibp::Bytes expected = hex(v.at("datagram_hex"));
    EXPECT_EQ(out, expected) << v.at("name");
    ibp::Response resp;
    auto res = ibp::parse_response(expected.data(), expected.size(), id.key.data(), id.key.size(), resp);
    ASSERT_TRUE(res.ok) << res.reason;
    EXPECT_EQ(resp.device_id, id.device_id);
    if (kind == "ack") {
      EXPECT_EQ(resp.kind, ibp::Response::Kind::kAck);
      EXPECT_EQ(resp.ack_seq, v.at("ack_seq").get<uint32_t>());
    } else {
      EXPECT_EQ(resp.kind, ibp::Response::Kind::kBusy);
      EXPECT_EQ(resp.retry_after_ms, v.at("retry_after_ms").get<uint16_t>());
    }
    // A flipped tag bit must not verify: devices ignore forged answers.
    expected.back() ^= 1;
    EXPECT_EQ(ibp::parse_response(expected.data(), expected.size(), id.key.data(), id.key.size(), resp).reason, "auth_failed");
    ++n;
  }
  EXPECT_GE(n, 2);
}

TEST(Vectors, AuthFail) {
  for (const auto& v : vectors().at("vectors")) {
    if (v.at("kind") != "auth_fail") continue;
    ibp::Bytes expected = hex(v.at("datagram_hex"));
    EXPECT_EQ(ibp::auth_fail_datagram(), expected);
    ibp::Response resp;
    ASSERT_TRUE(ibp::parse_response(expected.data(), expected.size(), nullptr, 0, resp).ok);
    EXPECT_EQ(resp.kind, ibp::Response::Kind::kAuthFail);
  }
}

TEST(Vectors, DeriveKey) {
  int n = 0;
  for (const auto& v : vectors().at("vectors")) {
    if (v.at("kind") != "derive_key") continue;
    ibp::Bytes master = hex(v.at("master_key_hex"));
    uint8_t key[32];
    ibp::derive_device_key(master.data(), master.size(), v.at("device_id"), key);
    EXPECT_EQ(ibp::to_hex(key, 32), v.at("key_hex").get<std::string>());
    ++n;
  }
  EXPECT_GE(n, 1);
}

TEST(Vectors, RejectsWithTheGatewaysReason) {
  int n = 0;
  for (const auto& v : vectors().at("vectors")) {
    if (v.at("kind") != "reject") continue;
    ibp::Bytes d = hex(v.at("datagram_hex"));
    ibp::Bytes key = hex(v.at("key_hex"));
    ibp::DataBatch batch;
    auto res = ibp::accept_data(d.data(), d.size(), key.data(), key.size(), batch);
    EXPECT_FALSE(res.ok) << v.at("name");
    EXPECT_EQ(res.reason, v.at("reason").get<std::string>()) << v.at("name");
    ++n;
  }
  EXPECT_GE(n, 5);
}

TEST(Encoder, RefusesWhatTheGatewayWouldReject) {
  ibp::Identity id;
  id.device_id = "dev";
  ibp::Bytes out;
  std::vector<ibp::Reading> none;
  EXPECT_FALSE(ibp::encode_data(id, 1, none, out).ok);
  std::vector<ibp::Reading> two(2);
  EXPECT_FALSE(ibp::encode_data(id, 0xFFFFFFFFu, two, out).ok);
  id.device_id = std::string("a\x01", 2);
  EXPECT_FALSE(ibp::encode_data(id, 1, two, out).ok);
  id.device_id = std::string(65, 'x');
  EXPECT_FALSE(ibp::encode_data(id, 1, two, out).ok);
}

}  // namespace
