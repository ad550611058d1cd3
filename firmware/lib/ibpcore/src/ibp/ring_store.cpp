#include "ibp/ring_store.h"

#include <cstring>

#include "ibp/crc32.h"

namespace ibp {
namespace {

constexpr uint8_t kMetaMagic[4] = {'I', 'B', 'R', 'M'};
constexpr uint8_t kMetaVersion = 1;
constexpr uint8_t kRecMagic0 = 'R';
constexpr uint8_t kRecMagic1 = 'D';

void be_put(uint8_t* p, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; --i) {
    p[i] = uint8_t(v);
    v >>= 8;
  }
}

uint64_t be_get(const uint8_t* p, int n) {
  uint64_t v = 0;
  for (int i = 0; i < n; ++i) v = (v << 8) | p[i];
  return v;
}

}  // namespace

RingStore::RingStore(FileSystem& fs, StoreConfig cfg) : fs_(fs), cfg_(std::move(cfg)) {}

bool RingStore::load_meta(int copy, uint32_t& generation, uint64_t& head, uint64_t& next, uint32_t& capacity,
                          uint16_t& max_payload) {
  uint8_t m[kMetaSize];
  if (!fs_.read_at(cfg_.meta_path, size_t(copy) * kMetaSize, m, kMetaSize)) return false;
  if (std::memcmp(m, kMetaMagic, 4) != 0 || m[4] != kMetaVersion) return false;
  if (uint32_t(be_get(m + 32, 4)) != crc32(m, 32)) return false;
  max_payload = uint16_t(be_get(m + 6, 2));
  capacity = uint32_t(be_get(m + 8, 4));
  generation = uint32_t(be_get(m + 12, 4));
  head = be_get(m + 16, 8);
  next = be_get(m + 24, 8);
  return capacity > 0 && head <= next && next - head <= capacity && next <= kMaxSeq + 1;
}

Result RingStore::commit(uint64_t head, uint64_t next) {
  uint32_t generation = generation_ + 1;
  uint8_t m[kMetaSize] = {0};
  std::memcpy(m, kMetaMagic, 4);
  m[4] = kMetaVersion;
  be_put(m + 6, cfg_.max_payload, 2);
  be_put(m + 8, cfg_.capacity, 4);
  be_put(m + 12, generation, 4);
  be_put(m + 16, head, 8);
  be_put(m + 24, next, 8);
  be_put(m + 32, crc32(m, 32), 4);
  if (!fs_.write_at(cfg_.meta_path, size_t(generation % 2) * kMetaSize, m, kMetaSize)) {
    return Result::fail("io");
  }
  generation_ = generation;
  head_ = head;
  next_ = next;
  return Result{};
}

Result RingStore::open() {
  if (cfg_.capacity == 0) return Result::fail("capacity must be at least 1");
  uint32_t gen[2] = {0, 0}, cap[2] = {0, 0};
  uint64_t head[2] = {0, 0}, next[2] = {0, 0};
  uint16_t maxp[2] = {0, 0};
  bool ok[2];
  for (int c = 0; c < 2; ++c) ok[c] = load_meta(c, gen[c], head[c], next[c], cap[c], maxp[c]);
  int best = -1;
  if (ok[0] && ok[1]) {
    best = int32_t(gen[1] - gen[0]) > 0 ? 1 : 0;
  } else if (ok[0] || ok[1]) {
    best = ok[0] ? 0 : 1;
  }
  if (best >= 0) {
    if (cap[best] != cfg_.capacity || maxp[best] != cfg_.max_payload) {
      cfg_.capacity = cap[best];
      cfg_.max_payload = maxp[best];
      stats_.geometry_from_disk = true;
    }
    generation_ = gen[best];
    head_ = head[best];
    next_ = next[best];
  } else {
    size_t ignored = 0;
    bool leftovers = fs_.size(cfg_.meta_path, ignored) || fs_.size(cfg_.data_path, ignored);
    generation_ = 0;
    head_ = next_ = 0;
    if (leftovers) scan_records();
  }
  opened_ = true;
  // Roll forward a record written completely whose commit was lost.
  uint64_t rolled = 0;
  Reading probe;
  while (next_ <= kMaxSeq && next_ - head_ < cfg_.capacity && read_slot(next_, probe).ok) {
    ++next_;
    ++rolled;
  }
  stats_.rolled_forward += rolled;
  if (best < 0 || rolled > 0) return commit(head_, next_);
  return Result{};
}

void RingStore::scan_records() {
  // Both metadata copies are unreadable: rebuild [head, next) from the records themselves so that the
  // sequence continues after the highest one ever stored.
  bool any = false;
  uint64_t lo = 0, hi = 0;
  std::vector<uint8_t> buf(slot_size());
  for (uint32_t slot = 0; slot < cfg_.capacity; ++slot) {
    if (!fs_.read_at(cfg_.data_path, size_t(slot) * slot_size(), buf.data(), kRecordHeader)) continue;
    uint64_t seq = be_get(buf.data() + 4, 4);
    Reading r;
    if (seq % cfg_.capacity != slot || !read_slot(seq, r).ok) continue;
    if (!any || seq < lo) lo = seq;
    if (!any || seq > hi) hi = seq;
    any = true;
  }
  stats_.recovered_by_scan = true;
  if (!any) {
    head_ = next_ = 0;
    return;
  }
  next_ = hi + 1;
  head_ = next_ - lo > cfg_.capacity ? next_ - cfg_.capacity : lo;
}

Result RingStore::read(uint64_t seq, Reading& out) {
  if (!opened_) return Result::fail("not open");
  if (seq < head_ || seq >= next_) return Result::fail("missing");
  return read_slot(seq, out);
}

Result RingStore::read_slot(uint64_t seq, Reading& out) {
  std::vector<uint8_t> buf(slot_size());
  size_t off = slot_offset(seq);
  if (!fs_.read_at(cfg_.data_path, off, buf.data(), kRecordHeader)) return Result::fail("corrupt");
  if (buf[0] != kRecMagic0 || buf[1] != kRecMagic1) return Result::fail("corrupt");
  size_t len = size_t(be_get(buf.data() + 2, 2));
  if (len > cfg_.max_payload) return Result::fail("corrupt");
  if (!fs_.read_at(cfg_.data_path, off + kRecordHeader, buf.data() + kRecordHeader, len + 4)) {
    return Result::fail("corrupt");
  }
  if (uint32_t(be_get(buf.data() + kRecordHeader + len, 4)) != crc32(buf.data(), kRecordHeader + len)) {
    return Result::fail("corrupt");
  }
  if (be_get(buf.data() + 4, 4) != (seq & 0xFFFFFFFFull)) return Result::fail("corrupt");
  out.seq = uint32_t(seq);
  out.timestamp_ms = be_get(buf.data() + 8, 8);
  out.payload.assign(buf.begin() + kRecordHeader, buf.begin() + kRecordHeader + long(len));
  return Result{};
}

Result RingStore::append(uint64_t timestamp_ms, const uint8_t* payload, size_t len, uint32_t* seq_out) {
  if (!opened_) return Result::fail("not open");
  if (len > cfg_.max_payload) return Result::fail("payload_too_large");
  if (next_ > kMaxSeq) return Result::fail("sequence_exhausted");
  if (count() >= cfg_.capacity) {
    if (cfg_.overflow == Overflow::kRejectNew) {
      ++stats_.rejected_full;
      return Result::fail("full");
    }
    Result r = commit(head_ + 1, next_);  // give up the oldest before its slot is overwritten
    if (!r.ok) return r;
    ++stats_.dropped_overflow;
  }
  uint64_t seq = next_;
  std::vector<uint8_t> rec(kRecordHeader + len + 4);
  rec[0] = kRecMagic0;
  rec[1] = kRecMagic1;
  be_put(rec.data() + 2, len, 2);
  be_put(rec.data() + 4, seq, 4);
  be_put(rec.data() + 8, timestamp_ms, 8);
  if (len > 0) std::memcpy(rec.data() + kRecordHeader, payload, len);
  be_put(rec.data() + kRecordHeader + len, crc32(rec.data(), kRecordHeader + len), 4);
  if (!fs_.write_at(cfg_.data_path, slot_offset(seq), rec.data(), rec.size())) return Result::fail("io");
  Result r = commit(head_, seq + 1);
  if (!r.ok) return r;
  if (seq_out != nullptr) *seq_out = uint32_t(seq);
  return Result{};
}

Result RingStore::ack(uint64_t ack_seq, uint64_t* deleted) {
  if (deleted != nullptr) *deleted = 0;
  if (!opened_) return Result::fail("not open");
  if (ack_seq < head_ || count() == 0) return Result{};
  uint64_t new_head = ack_seq + 1 < next_ ? ack_seq + 1 : next_;
  uint64_t n = new_head - head_;
  Result r = commit(new_head, next_);
  if (r.ok && deleted != nullptr) *deleted = n;
  return r;
}

Result RingStore::drop_head() {
  if (!opened_) return Result::fail("not open");
  if (count() == 0) return Result::fail("missing");
  Result r = commit(head_ + 1, next_);
  if (r.ok) ++stats_.dropped_corrupt;
  return r;
}

}  // namespace ibp
