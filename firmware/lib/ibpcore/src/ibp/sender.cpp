#include "ibp/sender.h"

#include <string>

namespace ibp {

Sender::Sender(RingStore& store, const Identity& identity, SenderConfig cfg, Random& rng)
    : store_(store), id_(identity), cfg_(cfg), rng_(rng) {}

std::string Sender::check_config(const SenderConfig& cfg, const Identity& identity, uint16_t max_payload) {
  if (!valid_device_id(identity.device_id)) return "device id must be 1..64 UTF-8 bytes without controls";
  if (identity.key.size() != kKeyLen) return "the device key must be 32 bytes (64 hex digits)";
  if (cfg.max_batch_readings < 1 || cfg.max_batch_readings > kMaxCount) return "max batch must be 1..255";
  if (cfg.ack_timeout_ms == 0) return "ack timeout must be > 0 ms";
  if (cfg.backoff.base_ms == 0 || cfg.backoff.cap_ms < cfg.backoff.base_ms) {
    return "backoff base must be > 0 and <= cap";
  }
  size_t one = data_overhead(identity.device_id) + kReadingOverhead + max_payload;
  if (one > cfg.max_datagram_bytes) {
    return "max_datagram_bytes " + std::to_string(cfg.max_datagram_bytes) + " cannot hold one reading of " +
           std::to_string(max_payload) + " bytes (needs " + std::to_string(one) + "): lower max payload";
  }
  return "";
}

uint64_t Sender::earliest_send() const {
  uint64_t t = not_before_;
  if (cfg_.rate_cap_per_s > 0 && sent_once_) {
    uint64_t gap = (1000 + cfg_.rate_cap_per_s - 1) / cfg_.rate_cap_per_s;
    if (last_send_ + gap > t) t = last_send_ + gap;
  }
  return t;
}

uint64_t Sender::next_due_ms(uint64_t now_ms) const {
  if (in_flight_) return sent_at_ + cfg_.ack_timeout_ms;
  if (batch_.empty() && store_.count() == 0) return now_ms + 1000;  // nothing to send: check again later
  uint64_t t = earliest_send();
  return t > now_ms ? t : now_ms;
}

bool Sender::build_batch() {
  batch_.clear();
  std::vector<Reading> readings;
  size_t size = data_overhead(id_.device_id);
  while (store_.count() > 0 && readings.empty()) {
    Reading r;
    Result res = store_.read(store_.head(), r);
    if (res.ok) {
      size += kReadingOverhead + r.payload.size();
      readings.push_back(std::move(r));
      break;
    }
    if (!store_.drop_head().ok) return false;  // an unreadable head is skipped (counted by the store)
  }
  if (readings.empty()) return false;
  uint64_t seq = store_.head() + 1;
  while (readings.size() < cfg_.max_batch_readings && seq < store_.next_seq()) {
    Reading r;
    if (!store_.read(seq, r).ok) break;  // stop before a damaged record; it is dropped when it is the head
    if (size + kReadingOverhead + r.payload.size() > cfg_.max_datagram_bytes) break;
    size += kReadingOverhead + r.payload.size();
    readings.push_back(std::move(r));
    ++seq;
  }
  batch_first_ = readings.front().seq;
  batch_last_ = readings.back().seq;
  if (!encode_data(id_, uint32_t(batch_first_), readings, batch_).ok) {
    batch_.clear();
    return false;
  }
  attempt_ = 0;
  return true;
}

bool Sender::poll(uint64_t now_ms, Bytes& datagram) {
  if (in_flight_) {
    if (now_ms < sent_at_ + cfg_.ack_timeout_ms) return false;
    in_flight_ = false;
    ++stats_.timeouts;
    not_before_ = now_ms + backoff_delay(cfg_.backoff, attempt_, rng_);
    ++attempt_;
  }
  if (now_ms < earliest_send()) return false;
  bool retransmit = !batch_.empty();
  if (batch_.empty() && !build_batch()) return false;
  datagram = batch_;
  in_flight_ = true;
  sent_at_ = now_ms;
  last_send_ = now_ms;
  sent_once_ = true;
  ++stats_.datagrams_sent;
  if (retransmit) ++stats_.retransmits;
  return true;
}

void Sender::on_datagram(const uint8_t* data, size_t len, uint64_t now_ms) {
  Response resp;
  if (!parse_response(data, len, id_.key.data(), id_.key.size(), resp).ok) {
    ++stats_.bad_answers;
    return;
  }
  if (resp.kind == Response::Kind::kAuthFail) {
    ++stats_.auth_fail;
    in_flight_ = false;
    not_before_ = now_ms + cfg_.auth_fail_backoff_ms;
    return;
  }
  if (resp.device_id != id_.device_id) {
    ++stats_.bad_answers;
    return;
  }
  if (resp.kind == Response::Kind::kBusy) {
    ++stats_.busy;
    in_flight_ = false;
    uint32_t wait = resp.retry_after_ms;
    not_before_ = now_ms + wait + rng_.upto(wait > 0 ? wait : 1);
    return;
  }
  ++stats_.acks;
  if (batch_.empty() || resp.ack_seq < batch_first_) {
    // Older than what is in flight (a late answer to an earlier transmission): nothing to do.
    uint64_t deleted = 0;
    if (store_.ack(resp.ack_seq, &deleted).ok && deleted > 0) stats_.readings_acked += deleted;
    else ++stats_.stale_acks;
    return;
  }
  uint64_t deleted = 0;
  if (!store_.ack(resp.ack_seq, &deleted).ok) return;  // storage failed: keep the batch, retry later
  stats_.readings_acked += deleted;
  batch_.clear();
  in_flight_ = false;
  attempt_ = 0;
  not_before_ = now_ms;
}

}  // namespace ibp
