// Stop-and-wait sender (docs/protocol.md "Device rules"): one batch of the oldest unacknowledged
// readings in flight; delete exactly what an authenticated ACK covers; on silence retransmit the same
// batch after a capped exponential backoff with full jitter; on BUSY wait retry_after (plus jitter);
// on AUTH_FAIL back off long. A rate cap bounds datagrams per second during a flush.
// Time is passed in (monotonic milliseconds), so the same code runs on the board, on the host and
// in tests without clocks or threads.
#pragma once

#include <cstdint>

#include "ibp/backoff.h"
#include "ibp/protocol.h"
#include "ibp/random.h"
#include "ibp/ring_store.h"

namespace ibp {

struct SenderConfig {
  uint32_t ack_timeout_ms = 1000;
  BackoffConfig backoff;
  uint32_t auth_fail_backoff_ms = 60000;
  uint32_t max_batch_readings = 32;     // 1..255
  uint32_t max_datagram_bytes = 1472;   // one Ethernet MTU of UDP payload
  uint32_t rate_cap_per_s = 50;         // datagrams per second; 0 = no cap
};

struct SenderStats {
  uint64_t datagrams_sent = 0;
  uint64_t retransmits = 0;
  uint64_t timeouts = 0;
  uint64_t acks = 0;
  uint64_t stale_acks = 0;
  uint64_t busy = 0;
  uint64_t auth_fail = 0;
  uint64_t bad_answers = 0;   // undecodable, wrong tag, or another device's answer
  uint64_t readings_acked = 0;
};

class Sender {
 public:
  Sender(RingStore& store, const Identity& identity, SenderConfig cfg, Random& rng);

  // "" when the configuration is usable, else what to fix.
  static std::string check_config(const SenderConfig& cfg, const Identity& identity, uint16_t max_payload);

  // Fills `datagram` and returns true when something must be sent now.
  bool poll(uint64_t now_ms, Bytes& datagram);
  // Handles one datagram received from the gateway.
  void on_datagram(const uint8_t* data, size_t len, uint64_t now_ms);
  // The earliest time poll() can have work (for sleeping); now_ms when work is due.
  uint64_t next_due_ms(uint64_t now_ms) const;

  bool in_flight() const { return in_flight_; }
  uint32_t attempt() const { return attempt_; }
  const SenderStats& stats() const { return stats_; }

 private:
  bool build_batch();
  uint64_t earliest_send() const;

  RingStore& store_;
  Identity id_;
  SenderConfig cfg_;
  Random& rng_;
  SenderStats stats_;
  Bytes batch_;             // cached datagram: a retransmission is the same bytes
  uint64_t batch_first_ = 0;
  uint64_t batch_last_ = 0;
  bool in_flight_ = false;
  uint64_t sent_at_ = 0;
  uint32_t attempt_ = 0;    // timeouts of the current batch
  uint64_t not_before_ = 0; // backoff / BUSY / AUTH_FAIL hold-off
  uint64_t last_send_ = 0;
  bool sent_once_ = false;
};

}  // namespace ibp
