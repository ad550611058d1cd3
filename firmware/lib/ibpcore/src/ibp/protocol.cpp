#include "ibp/protocol.h"

#include <cstring>

#include "ibp/json_check.h"

namespace ibp {
namespace {

void put_u16(Bytes& out, uint16_t v) {
  out.push_back(uint8_t(v >> 8));
  out.push_back(uint8_t(v));
}

void put_u32(Bytes& out, uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out.push_back(uint8_t(v >> shift));
}

void put_u64(Bytes& out, uint64_t v) {
  for (int shift = 56; shift >= 0; shift -= 8) out.push_back(uint8_t(v >> shift));
}

uint64_t get_be(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

void put_header(Bytes& out, uint8_t type) {
  out.push_back('I');
  out.push_back('B');
  out.push_back(kVersion);
  out.push_back(type);
}

void put_id(Bytes& out, const std::string& device_id) {
  out.push_back(uint8_t(device_id.size()));
  out.insert(out.end(), device_id.begin(), device_id.end());
}

void sign(const Identity& id, Bytes& out) {
  uint8_t tag[kTagLen];
  hmac_sha256(id.key.data(), id.key.size(), out.data(), out.size(), tag);
  out.insert(out.end(), tag, tag + kTagLen);
}

bool has_control(const uint8_t* p, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (p[i] < 0x20 || p[i] == 0x7F) return true;
  }
  return false;
}

// Header check shared by both directions; expected_type 0 accepts any type.
Result check_header(const uint8_t* d, size_t len, uint8_t expected_type) {
  if (len < kHeaderLen) return Result::fail("truncated");
  if (d[0] != 'I' || d[1] != 'B') return Result::fail("bad_magic");
  if (d[2] != kVersion) return Result::fail("bad_version");
  if (expected_type != 0 && d[3] != expected_type) return Result::fail("bad_type");
  return Result{};
}

Result read_id(const uint8_t* d, size_t len, size_t offset, std::string& id, size_t& end) {
  if (offset >= len) return Result::fail("truncated");
  size_t n = d[offset];
  if (n < 1 || n > kMaxIdLen) return Result::fail("bad_device_id");
  end = offset + 1 + n;
  if (end > len) return Result::fail("truncated");
  const uint8_t* raw = d + offset + 1;
  if (!is_valid_utf8(raw, n) || has_control(raw, n)) return Result::fail("bad_device_id");
  id.assign(reinterpret_cast<const char*>(raw), n);
  return Result{};
}

}  // namespace

bool valid_device_id(const std::string& device_id) {
  const auto* raw = reinterpret_cast<const uint8_t*>(device_id.data());
  return !device_id.empty() && device_id.size() <= kMaxIdLen && is_valid_utf8(raw, device_id.size()) &&
         !has_control(raw, device_id.size());
}

size_t data_overhead(const std::string& device_id) {
  return kHeaderLen + 1 + device_id.size() + 4 + 1 + kTagLen;
}

Result encode_data(const Identity& id, uint32_t first_seq, const std::vector<Reading>& readings, Bytes& out) {
  out.clear();
  if (readings.empty() || readings.size() > kMaxCount) return Result::fail("a batch holds 1..255 readings");
  if (uint64_t(first_seq) + readings.size() - 1 > kMaxSeq) return Result::fail("sequence out of u32 range");
  if (!valid_device_id(id.device_id)) return Result::fail("device_id must be 1..64 UTF-8 bytes, no controls");
  size_t total = data_overhead(id.device_id);
  for (const auto& r : readings) {
    if (r.payload.size() > 0xFFFF) return Result::fail("payload longer than 65535 bytes");
    total += kReadingOverhead + r.payload.size();
  }
  out.reserve(total);
  put_header(out, kTypeData);
  put_id(out, id.device_id);
  put_u32(out, first_seq);
  out.push_back(uint8_t(readings.size()));
  for (const auto& r : readings) {
    put_u64(out, r.timestamp_ms);
    put_u16(out, uint16_t(r.payload.size()));
    out.insert(out.end(), r.payload.begin(), r.payload.end());
  }
  sign(id, out);
  return Result{};
}

Result encode_ack(const Identity& id, uint32_t ack_seq, Bytes& out) {
  out.clear();
  if (!valid_device_id(id.device_id)) return Result::fail("device_id must be 1..64 UTF-8 bytes, no controls");
  put_header(out, kTypeAck);
  put_id(out, id.device_id);
  put_u32(out, ack_seq);
  sign(id, out);
  return Result{};
}

Result encode_busy(const Identity& id, uint16_t retry_after_ms, Bytes& out) {
  out.clear();
  if (!valid_device_id(id.device_id)) return Result::fail("device_id must be 1..64 UTF-8 bytes, no controls");
  put_header(out, kTypeBusy);
  put_id(out, id.device_id);
  put_u16(out, retry_after_ms);
  sign(id, out);
  return Result{};
}

Bytes auth_fail_datagram() { return Bytes{'I', 'B', kVersion, kTypeAuthFail}; }

void derive_device_key(const uint8_t* master_key, size_t master_len, const std::string& device_id,
                       uint8_t out[kKeyLen]) {
  static const char kLabel[] = "ibp1-device-key:";
  Bytes msg(kLabel, kLabel + sizeof(kLabel) - 1);
  msg.insert(msg.end(), device_id.begin(), device_id.end());
  hmac_sha256(master_key, master_len, msg.data(), msg.size(), out);
}

Result parse_response(const uint8_t* d, size_t len, const uint8_t* key, size_t key_len, Response& out) {
  Result r = check_header(d, len, 0);
  if (!r.ok) return r;
  uint8_t type = d[3];
  if (type == kTypeAuthFail) {
    if (len != kHeaderLen) return Result::fail("truncated");
    out = Response{};
    out.kind = Response::Kind::kAuthFail;
    return Result{};
  }
  if (type != kTypeAck && type != kTypeBusy) return Result::fail("bad_type");
  size_t off = 0;
  std::string id;
  r = read_id(d, len, kHeaderLen, id, off);
  if (!r.ok) return r;
  size_t field = type == kTypeAck ? 4 : 2;
  if (off + field + kTagLen != len) return Result::fail("truncated");
  if (key != nullptr) {
    uint8_t tag[kTagLen];
    hmac_sha256(key, key_len, d, off + field, tag);
    if (!constant_time_equal(tag, d + off + field, kTagLen)) return Result::fail("auth_failed");
  }
  out = Response{};
  out.device_id = id;
  if (type == kTypeAck) {
    out.kind = Response::Kind::kAck;
    out.ack_seq = uint32_t(get_be(d + off, 4));
  } else {
    out.kind = Response::Kind::kBusy;
    out.retry_after_ms = uint16_t(get_be(d + off, 2));
  }
  return Result{};
}

Result parse_data(const uint8_t* d, size_t len, DataBatch& out) {
  Result r = check_header(d, len, kTypeData);
  if (!r.ok) return r;
  out = DataBatch{};
  size_t off = 0;
  r = read_id(d, len, kHeaderLen, out.device_id, off);
  if (!r.ok) return r;
  if (off + 5 + kTagLen > len) return Result::fail("truncated");
  out.first_seq = uint32_t(get_be(d + off, 4));
  size_t count = d[off + 4];
  off += 5;
  if (count == 0) return Result::fail("invalid");
  if (uint64_t(out.first_seq) + count - 1 > kMaxSeq) return Result::fail("invalid");
  size_t end = len - kTagLen;
  for (size_t i = 0; i < count; ++i) {
    if (off + kReadingOverhead > end) return Result::fail("truncated");
    Reading reading;
    reading.seq = uint32_t(out.first_seq + i);
    reading.timestamp_ms = get_be(d + off, 8);
    size_t plen = size_t(get_be(d + off + 8, 2));
    off += kReadingOverhead;
    if (off + plen > end) return Result::fail("truncated");
    reading.payload.assign(d + off, d + off + plen);
    off += plen;
    out.readings.push_back(std::move(reading));
  }
  if (off != end) return Result::fail("truncated");
  return Result{};
}

Result verify_data(const uint8_t* d, size_t len, const uint8_t* key, size_t key_len) {
  if (len < kTagLen) return Result::fail("truncated");
  uint8_t tag[kTagLen];
  hmac_sha256(key, key_len, d, len - kTagLen, tag);
  if (!constant_time_equal(tag, d + len - kTagLen, kTagLen)) return Result::fail("auth_failed");
  return Result{};
}

Result accept_data(const uint8_t* d, size_t len, const uint8_t* key, size_t key_len, DataBatch& out) {
  Result r = parse_data(d, len, out);
  if (!r.ok) return r;
  r = verify_data(d, len, key, key_len);
  if (!r.ok) return r;
  for (const auto& reading : out.readings) {
    if (!is_json_object(reading.payload.data(), reading.payload.size())) return Result::fail("malformed_json");
  }
  return Result{};
}

bool from_hex(const std::string& hex, Bytes& out) {
  out.clear();
  if (hex.size() % 2 != 0) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
  };
  for (size_t i = 0; i < hex.size(); i += 2) {
    int hi = nibble(hex[i]), lo = nibble(hex[i + 1]);
    if (hi < 0 || lo < 0) return false;
    out.push_back(uint8_t(hi << 4 | lo));
  }
  return true;
}

std::string to_hex(const uint8_t* data, size_t len) {
  static const char kDigits[] = "0123456789abcdef";
  std::string s;
  s.reserve(len * 2);
  for (size_t i = 0; i < len; ++i) {
    s.push_back(kDigits[data[i] >> 4]);
    s.push_back(kDigits[data[i] & 0xF]);
  }
  return s;
}

}  // namespace ibp
