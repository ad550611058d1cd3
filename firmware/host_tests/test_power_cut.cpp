// Power cut at EVERY write boundary. A workload (appends that wrap and overflow, acks) runs on a
// FaultFileSystem that cuts the power during write k, leaving nothing, half, all but one byte, or all
// of that write. The ring is then reopened (also with a second cut during recovery) and must:
// open; hold every reading whose append returned, byte for byte; lose at most the reading being
// written; never move head beyond what was acknowledged; and continue the sequence without repeating.
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "ibp/ring_store.h"
#include "memory_fs.h"

namespace {

using ibp::Overflow;
using ibp::RingStore;
using ibp::StoreConfig;
using ibp::Tear;

struct Op {
  bool append;
  uint64_t ack_seq;
};

struct Model {
  std::map<uint64_t, std::string> committed;  // appends that returned success
  uint64_t head = 0;
  uint64_t next = 0;
  bool opened = false;
  // The operation in progress when the power went.
  enum class Pending { kNone, kOpen, kAppend, kAck } pending = Pending::kNone;
  std::string pending_payload;
  uint64_t pending_ack = 0;
  bool pending_drops_oldest = false;
};

StoreConfig config(Overflow overflow) {
  StoreConfig cfg;
  cfg.capacity = 6;
  cfg.max_payload = 40;
  cfg.overflow = overflow;
  return cfg;
}

std::vector<Op> workload() {
  std::vector<Op> ops;
  auto appends = [&](int n) {
    for (int i = 0; i < n; ++i) ops.push_back({true, 0});
  };
  appends(8);  // fills and overflows the ring (or is refused, with kRejectNew)
  ops.push_back({false, 3});
  appends(5);
  ops.push_back({false, 9});
  appends(4);
  ops.push_back({false, 1});  // an old ACK
  ops.push_back({false, 100});
  appends(3);
  return ops;
}

std::string payload(uint64_t i) { return "{\"reading\":" + std::to_string(i) + ",\"pad\":\"" + std::string(i % 7, 'x') + "\"}"; }

// Runs until the power cut (or the end). Returns the model of what the caller was told.
Model run(ibp::FileSystem& fs, const StoreConfig& cfg) {
  Model m;
  RingStore s(fs, cfg);
  m.pending = Model::Pending::kOpen;
  if (!s.open().ok) return m;
  m.opened = true;
  m.pending = Model::Pending::kNone;
  uint64_t made = 0;
  for (const Op& op : workload()) {
    if (op.append) {
      std::string p = payload(made++);
      m.pending = Model::Pending::kAppend;
      m.pending_payload = p;
      m.pending_drops_oldest = cfg.overflow == Overflow::kDropOldest && m.next - m.head >= cfg.capacity;
      uint32_t seq = 0;
      auto r = s.append(made, reinterpret_cast<const uint8_t*>(p.data()), p.size(), &seq);
      if (!r.ok && r.reason == "full") {
        m.pending = Model::Pending::kNone;
        continue;
      }
      if (!r.ok) return m;
      EXPECT_EQ(seq, m.next);
      m.committed[seq] = p;
      m.next = seq + 1;
      if (m.pending_drops_oldest) ++m.head;
    } else {
      m.pending = Model::Pending::kAck;
      m.pending_ack = op.ack_seq;
      if (!s.ack(op.ack_seq).ok) return m;
      uint64_t target = op.ack_seq + 1 < m.next ? op.ack_seq + 1 : m.next;
      if (target > m.head) m.head = target;
    }
    m.pending = Model::Pending::kNone;
  }
  return m;
}

// Checks a reopened ring against the model; returns a description of the first violation, or "".
std::string check(ibp::FileSystem& fs, const StoreConfig& cfg, const Model& m) {
  RingStore s(fs, cfg);
  auto r = s.open();
  if (!r.ok) return "reopen failed: " + r.reason;
  uint64_t head_min = m.head, head_max = m.head, next_max = m.next;
  if (m.pending == Model::Pending::kAppend) {
    next_max = m.next + 1;
    if (m.pending_drops_oldest) head_max = m.head + 1;
  } else if (m.pending == Model::Pending::kAck) {
    uint64_t target = m.pending_ack + 1 < m.next ? m.pending_ack + 1 : m.next;
    if (target > head_max) head_max = target;
  }
  if (s.next_seq() < m.next || s.next_seq() > next_max) {
    return "next=" + std::to_string(s.next_seq()) + " expected " + std::to_string(m.next) + ".." +
           std::to_string(next_max);
  }
  if (s.head() < head_min || s.head() > head_max) {
    return "head=" + std::to_string(s.head()) + " expected " + std::to_string(head_min) + ".." +
           std::to_string(head_max);
  }
  for (uint64_t seq = s.head(); seq < s.next_seq(); ++seq) {
    ibp::Reading rd;
    auto res = s.read(seq, rd);
    if (!res.ok) return "seq " + std::to_string(seq) + " unreadable: " + res.reason;
    std::string got(rd.payload.begin(), rd.payload.end());
    std::string want = seq < m.next ? m.committed.at(seq) : m.pending_payload;
    if (got != want) return "seq " + std::to_string(seq) + " holds " + got + " instead of " + want;
  }
  // The sequence continues: the next reading never reuses a sequence the caller was given.
  std::string p = "{\"after\":1}";
  uint32_t seq = 0;
  auto a = s.append(1, reinterpret_cast<const uint8_t*>(p.data()), p.size(), &seq);
  if (!a.ok && a.reason != "full") return "append after reopen failed: " + a.reason;
  if (a.ok && seq != s.next_seq() - 1) return "append after reopen got seq " + std::to_string(seq);
  if (a.ok && seq < m.next) return "sequence " + std::to_string(seq) + " repeated";
  return "";
}

class PowerCut : public ::testing::TestWithParam<Overflow> {};

TEST_P(PowerCut, EveryWriteBoundaryEveryTear) {
  StoreConfig cfg = config(GetParam());
  long total_writes = 0;
  {
    ibp::MemoryFileSystem mem;
    ibp::FaultFileSystem counting(mem, -1, Tear::kNothing);
    Model full = run(counting, cfg);
    ASSERT_EQ(full.pending, Model::Pending::kNone);
    ASSERT_EQ(check(mem, cfg, full), "");
    total_writes = counting.writes();
  }
  ASSERT_GT(total_writes, 20);
  int cases = 0;
  for (long k = 0; k < total_writes; ++k) {
    for (Tear tear : {Tear::kNothing, Tear::kHalf, Tear::kAllButLast, Tear::kAll}) {
      ibp::MemoryFileSystem mem;
      ibp::FaultFileSystem faulty(mem, k, tear);
      Model m = run(faulty, cfg);
      ASSERT_TRUE(faulty.dead()) << "write " << k << " was never reached";
      // A second cut during recovery, then a clean reopen: still consistent.
      for (Tear second : {Tear::kNothing, Tear::kHalf, Tear::kAll}) {
        ibp::MemoryFileSystem copy = mem;
        ibp::FaultFileSystem recovery(copy, 0, second);
        RingStore interrupted(recovery, cfg);
        (void)interrupted.open();
        std::string err = check(copy, cfg, m);
        ASSERT_EQ(err, "") << "cut at write " << k << " tear " << int(tear) << ", recovery cut " << int(second);
      }
      std::string err = check(mem, cfg, m);
      ASSERT_EQ(err, "") << "cut at write " << k << " tear " << int(tear);
      ++cases;
    }
  }
  RecordProperty("power_cut_cases", cases);
  std::printf("power cut: %ld write boundaries x 4 tears = %d cases (plus 3 recovery cuts each)\n", total_writes,
              cases);
}

INSTANTIATE_TEST_SUITE_P(Overflow, PowerCut, ::testing::Values(Overflow::kDropOldest, Overflow::kRejectNew),
                         [](const auto& info) {
                           return info.param == Overflow::kDropOldest ? std::string("DropOldest")
                                                                      : std::string("RejectNew");
                         });

}  // namespace
