// IBP/1 wire format (docs/protocol.md): DATA encoder, ACK/BUSY/AUTH_FAIL decoder, and the gateway-side
// DATA parser (used by the tests and the virtual device's self-checks). Byte-identical to
// gateway/protocol.py, held so by tests/vectors/ibp1.json.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ibp/hmac_sha256.h"

namespace ibp {

using Bytes = std::vector<uint8_t>;

constexpr uint8_t kVersion = 1;
constexpr uint8_t kTypeData = 0x01;
constexpr uint8_t kTypeAck = 0x81;
constexpr uint8_t kTypeBusy = 0x82;
constexpr uint8_t kTypeAuthFail = 0x83;
constexpr size_t kTagLen = 32;
constexpr size_t kKeyLen = 32;
constexpr size_t kMaxIdLen = 64;
constexpr size_t kMaxCount = 255;
constexpr uint64_t kMaxSeq = 0xFFFFFFFFull;
constexpr size_t kHeaderLen = 4;
constexpr size_t kReadingOverhead = 10;  // timestamp_ms (8) + payload_len (2)

struct Reading {
  uint32_t seq = 0;
  uint64_t timestamp_ms = 0;
  Bytes payload;  // UTF-8 JSON object text
};

// Device identity: id and HMAC key (32 bytes in deployments; HMAC itself takes any length, and the
// shared vectors include a 31-byte key).
struct Identity {
  std::string device_id;
  Bytes key;
};

// Every function reports failure through a reason string; the names match the gateway's metric labels.
struct Result {
  bool ok = true;
  std::string reason;  // "truncated", "bad_magic", "bad_version", "bad_type", "bad_device_id", "invalid",
                       // "auth_failed", "malformed_json", or an encoder error
  static Result fail(const char* why) { return Result{false, why}; }
};

// True when the id is 1..64 bytes of UTF-8 without control characters.
bool valid_device_id(const std::string& device_id);

// Size of a DATA datagram for this id and these payload sizes (to keep within the MTU before encoding).
size_t data_overhead(const std::string& device_id);

// DATA datagram for consecutive readings starting at first_seq (readings[i].seq is ignored).
Result encode_data(const Identity& id, uint32_t first_seq, const std::vector<Reading>& readings, Bytes& out);
Result encode_ack(const Identity& id, uint32_t ack_seq, Bytes& out);
Result encode_busy(const Identity& id, uint16_t retry_after_ms, Bytes& out);
Bytes auth_fail_datagram();

// Fleet key derivation: HMAC-SHA256(master_key, "ibp1-device-key:" + device_id).
void derive_device_key(const uint8_t* master_key, size_t master_len, const std::string& device_id,
                       uint8_t out[kKeyLen]);

// A gateway answer, decoded and (for ACK/BUSY) verified under the device key.
struct Response {
  enum class Kind { kAck, kBusy, kAuthFail } kind = Kind::kAck;
  std::string device_id;
  uint32_t ack_seq = 0;
  uint16_t retry_after_ms = 0;
};

// With key == nullptr the ACK/BUSY tag is not verified (tests only; devices always pass their key).
Result parse_response(const uint8_t* data, size_t len, const uint8_t* key, size_t key_len, Response& out);

// Gateway-side view of a DATA datagram: parse, then verify the tag, then check every payload,
// in the gateway's order (so a reject vector yields the same reason).
struct DataBatch {
  std::string device_id;
  uint32_t first_seq = 0;
  std::vector<Reading> readings;
};
Result parse_data(const uint8_t* data, size_t len, DataBatch& out);
Result verify_data(const uint8_t* data, size_t len, const uint8_t* key, size_t key_len);
Result accept_data(const uint8_t* data, size_t len, const uint8_t* key, size_t key_len, DataBatch& out);

// Hex helpers for configuration and tests. from_hex returns false on odd length or non-hex digits.
bool from_hex(const std::string& hex, Bytes& out);
std::string to_hex(const uint8_t* data, size_t len);

}  // namespace ibp
