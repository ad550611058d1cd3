// Persistent ring buffer of readings with a never-repeating sequence.
//
// Layout: a data file of `capacity` fixed-size slots (reading with sequence s lives in slot s % capacity,
// each record carrying its own CRC-32), and a metadata file holding two alternating copies of
// {generation, head, next} with a CRC. `head` is the oldest unacknowledged sequence, `next` the sequence
// the next reading gets; the readings stored are [head, next).
//
// Write order makes every power cut safe (docs/firmware.md walks through each boundary):
//   append: [if full and dropping oldest: commit head+1] -> write the record -> commit next+1
//   ack:    commit head = ack+1
// A commit writes the copy that is NOT the newest, so a torn commit leaves the previous one valid.
// On open, a complete record found at `next` (written, but its commit lost) is rolled forward, so the
// sequence never repeats and the reading in flight is kept when its bytes made it. A cut therefore
// loses at most the reading being written and never touches older ones.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ibp/filesystem.h"
#include "ibp/protocol.h"

namespace ibp {

enum class Overflow { kDropOldest, kRejectNew };

struct StoreConfig {
  uint32_t capacity = 1024;     // readings
  uint16_t max_payload = 200;   // bytes of JSON per reading
  Overflow overflow = Overflow::kDropOldest;
  std::string data_path = "ring.dat";
  std::string meta_path = "ring.meta";
};

struct StoreStats {
  uint64_t dropped_overflow = 0;  // oldest readings overwritten because the ring was full
  uint64_t rejected_full = 0;     // new readings refused because the ring was full (kRejectNew)
  uint64_t dropped_corrupt = 0;   // records whose CRC failed, skipped at the head
  uint64_t rolled_forward = 0;    // records recovered at open (written, commit lost)
  bool recovered_by_scan = false; // both metadata copies were unreadable; state rebuilt from records
  bool geometry_from_disk = false; // capacity/max_payload on disk differ from the config; disk wins
};

class RingStore {
 public:
  RingStore(FileSystem& fs, StoreConfig cfg);

  // Loads (or creates) the ring and recovers from an interrupted write. Must succeed before use.
  Result open();

  // Stores a reading (payload must be <= max_payload bytes); on success *seq_out is its sequence.
  // Fails with "full" (kRejectNew), "payload_too_large", "sequence_exhausted" or "io".
  Result append(uint64_t timestamp_ms, const uint8_t* payload, size_t len, uint32_t* seq_out);

  // Reads the stored reading with this sequence: "missing" outside [head, next), "corrupt" on a bad CRC.
  Result read(uint64_t seq, Reading& out);

  // Deletes every reading with sequence <= ack_seq (nothing when ack_seq < head). Returns how many.
  Result ack(uint64_t ack_seq, uint64_t* deleted = nullptr);

  // Skips the head reading (used when it is corrupt).
  Result drop_head();

  uint64_t head() const { return head_; }
  uint64_t next_seq() const { return next_; }
  uint64_t count() const { return next_ - head_; }
  uint32_t capacity() const { return cfg_.capacity; }
  uint16_t max_payload() const { return cfg_.max_payload; }
  const StoreStats& stats() const { return stats_; }

  static constexpr size_t kRecordHeader = 16;  // magic(2) len(2) seq(4) timestamp(8)
  static constexpr size_t kMetaSize = 36;

 private:
  size_t slot_size() const { return kRecordHeader + cfg_.max_payload + 4; }
  size_t slot_offset(uint64_t seq) const { return size_t(seq % cfg_.capacity) * slot_size(); }
  Result commit(uint64_t head, uint64_t next);
  bool load_meta(int copy, uint32_t& generation, uint64_t& head, uint64_t& next, uint32_t& capacity,
                 uint16_t& max_payload);
  Result read_slot(uint64_t seq, Reading& out);  // no range check
  void scan_records();

  FileSystem& fs_;
  StoreConfig cfg_;
  StoreStats stats_;
  uint64_t head_ = 0;
  uint64_t next_ = 0;
  uint32_t generation_ = 0;
  bool opened_ = false;
};

}  // namespace ibp
