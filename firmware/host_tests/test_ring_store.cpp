// The persistent ring: wrap, full buffer (both overflow policies), corrupt records, sequence
// persistence across reopen, and the same on real POSIX files.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "ibp/ring_store.h"
#include "memory_fs.h"
#include "posix_fs.h"

namespace {

using ibp::Overflow;
using ibp::RingStore;
using ibp::StoreConfig;

StoreConfig small(uint32_t capacity, Overflow overflow = Overflow::kDropOldest) {
  StoreConfig cfg;
  cfg.capacity = capacity;
  cfg.max_payload = 32;
  cfg.overflow = overflow;
  return cfg;
}

std::string payload_for(uint64_t i) { return "{\"n\":" + std::to_string(i) + "}"; }

uint32_t put(RingStore& s, uint64_t i) {
  std::string p = payload_for(i);
  uint32_t seq = 0;
  auto r = s.append(1000 + i, reinterpret_cast<const uint8_t*>(p.data()), p.size(), &seq);
  EXPECT_TRUE(r.ok) << r.reason;
  return seq;
}

std::string read_payload(RingStore& s, uint64_t seq) {
  ibp::Reading r;
  auto res = s.read(seq, r);
  if (!res.ok) return "<" + res.reason + ">";
  return std::string(r.payload.begin(), r.payload.end());
}

TEST(RingStore, AppendReadAck) {
  ibp::MemoryFileSystem fs;
  RingStore s(fs, small(8));
  ASSERT_TRUE(s.open().ok);
  EXPECT_EQ(s.count(), 0u);
  for (int i = 0; i < 5; ++i) EXPECT_EQ(put(s, i), uint32_t(i));
  EXPECT_EQ(s.count(), 5u);
  EXPECT_EQ(read_payload(s, 3), payload_for(3));
  ibp::Reading r;
  ASSERT_TRUE(s.read(2, r).ok);
  EXPECT_EQ(r.timestamp_ms, 1002u);
  uint64_t deleted = 0;
  ASSERT_TRUE(s.ack(2, &deleted).ok);
  EXPECT_EQ(deleted, 3u);
  EXPECT_EQ(s.head(), 3u);
  EXPECT_EQ(read_payload(s, 2), "<missing>");
  // An old ACK deletes nothing; an ACK beyond what exists deletes only what exists.
  ASSERT_TRUE(s.ack(1, &deleted).ok);
  EXPECT_EQ(deleted, 0u);
  ASSERT_TRUE(s.ack(1000, &deleted).ok);
  EXPECT_EQ(deleted, 2u);
  EXPECT_EQ(s.count(), 0u);
  EXPECT_EQ(s.next_seq(), 5u);
}

TEST(RingStore, WrapsAroundManyTimes) {
  ibp::MemoryFileSystem fs;
  RingStore s(fs, small(5));
  ASSERT_TRUE(s.open().ok);
  for (uint64_t i = 0; i < 53; ++i) {
    put(s, i);
    if (i % 3 == 2) {  // leave one behind each time
      ASSERT_TRUE(s.ack(i - 1).ok);
    }
  }
  EXPECT_EQ(s.next_seq(), 53u);
  for (uint64_t seq = s.head(); seq < s.next_seq(); ++seq) EXPECT_EQ(read_payload(s, seq), payload_for(seq));
  size_t size = 0;
  ASSERT_TRUE(fs.size("ring.dat", size));
  EXPECT_LE(size, 5 * (RingStore::kRecordHeader + 32 + 4));  // the file never grows past capacity slots
}

TEST(RingStore, FullDropOldestKeepsTheNewest) {
  ibp::MemoryFileSystem fs;
  RingStore s(fs, small(4, Overflow::kDropOldest));
  ASSERT_TRUE(s.open().ok);
  for (int i = 0; i < 10; ++i) put(s, i);
  EXPECT_EQ(s.count(), 4u);
  EXPECT_EQ(s.head(), 6u);
  EXPECT_EQ(s.stats().dropped_overflow, 6u);
  for (uint64_t seq = 6; seq < 10; ++seq) EXPECT_EQ(read_payload(s, seq), payload_for(seq));
}

TEST(RingStore, FullRejectNewKeepsTheOldest) {
  ibp::MemoryFileSystem fs;
  RingStore s(fs, small(4, Overflow::kRejectNew));
  ASSERT_TRUE(s.open().ok);
  for (int i = 0; i < 4; ++i) put(s, i);
  std::string p = "{}";
  auto r = s.append(1, reinterpret_cast<const uint8_t*>(p.data()), p.size(), nullptr);
  EXPECT_FALSE(r.ok);
  EXPECT_EQ(r.reason, "full");
  EXPECT_EQ(s.stats().rejected_full, 1u);
  EXPECT_EQ(s.head(), 0u);
  EXPECT_EQ(s.next_seq(), 4u);
  ASSERT_TRUE(s.ack(0).ok);
  EXPECT_EQ(put(s, 4), 4u);  // room again; the sequence continues without a gap
}

TEST(RingStore, RefusesOversizedPayload) {
  ibp::MemoryFileSystem fs;
  RingStore s(fs, small(4));
  ASSERT_TRUE(s.open().ok);
  std::string p(33, 'x');
  EXPECT_EQ(s.append(1, reinterpret_cast<const uint8_t*>(p.data()), p.size(), nullptr).reason,
            "payload_too_large");
  EXPECT_EQ(s.next_seq(), 0u);
}

TEST(RingStore, CorruptRecordIsDetectedAndOthersSurvive) {
  ibp::MemoryFileSystem fs;
  {
    RingStore s(fs, small(8));
    ASSERT_TRUE(s.open().ok);
    for (int i = 0; i < 6; ++i) put(s, i);
  }
  size_t slot = RingStore::kRecordHeader + 32 + 4;
  fs.raw("ring.dat")[3 * slot + RingStore::kRecordHeader + 2] ^= 0x40;  // a bit flips in record 3's payload
  RingStore s(fs, small(8));
  ASSERT_TRUE(s.open().ok);
  EXPECT_EQ(s.count(), 6u);
  EXPECT_EQ(read_payload(s, 3), "<corrupt>");
  for (uint64_t seq : {0, 1, 2, 4, 5}) EXPECT_EQ(read_payload(s, seq), payload_for(seq));
  ASSERT_TRUE(s.ack(2).ok);
  ASSERT_TRUE(s.drop_head().ok);
  EXPECT_EQ(s.stats().dropped_corrupt, 1u);
  EXPECT_EQ(read_payload(s, s.head()), payload_for(4));
}

TEST(RingStore, SequencePersistsAcrossReopenAndNeverRepeats) {
  ibp::MemoryFileSystem fs;
  uint32_t last = 0;
  for (int boot = 0; boot < 5; ++boot) {
    RingStore s(fs, small(4));
    ASSERT_TRUE(s.open().ok);
    for (int i = 0; i < 3; ++i) {
      uint32_t seq = put(s, i);
      if (boot > 0 || i > 0) {
        EXPECT_EQ(seq, last + 1);
      }
      last = seq;
    }
    ASSERT_TRUE(s.ack(s.next_seq() - 1).ok);  // everything acked: the ring is empty, the sequence is not reset
  }
  EXPECT_EQ(last, 14u);
}

TEST(RingStore, EitherCorruptMetadataCopyFallsBackToTheOther) {
  for (size_t copy = 0; copy < 2; ++copy) {
    ibp::MemoryFileSystem fs;
    {
      RingStore s(fs, small(8));
      ASSERT_TRUE(s.open().ok);
      for (int i = 0; i < 5; ++i) put(s, i);
    }
    auto& meta = fs.raw("ring.meta");
    for (size_t i = 0; i < RingStore::kMetaSize; ++i) meta[copy * RingStore::kMetaSize + i] ^= 0x5A;
    // Losing the newest copy falls back to next=4, and the complete record 4 is rolled forward.
    RingStore s(fs, small(8));
    ASSERT_TRUE(s.open().ok) << "copy " << copy;
    EXPECT_EQ(s.next_seq(), 5u) << "copy " << copy;
    for (uint64_t seq = 0; seq < 5; ++seq) EXPECT_EQ(read_payload(s, seq), payload_for(seq));
  }
}

TEST(RingStore, BothMetadataCopiesLostRebuildsFromRecords) {
  ibp::MemoryFileSystem fs;
  {
    RingStore s(fs, small(4));
    ASSERT_TRUE(s.open().ok);
    for (int i = 0; i < 11; ++i) put(s, i);
  }
  for (auto& b : fs.raw("ring.meta")) b = 0;
  RingStore s(fs, small(4));
  ASSERT_TRUE(s.open().ok);
  EXPECT_TRUE(s.stats().recovered_by_scan);
  EXPECT_EQ(s.next_seq(), 11u);  // the sequence continues after the highest record: no repeat
  EXPECT_EQ(s.head(), 7u);
  EXPECT_EQ(put(s, 11), 11u);
}

TEST(RingStore, GeometryOnDiskWins) {
  ibp::MemoryFileSystem fs;
  {
    RingStore s(fs, small(4));
    ASSERT_TRUE(s.open().ok);
    put(s, 0);
  }
  RingStore s(fs, small(16));
  ASSERT_TRUE(s.open().ok);
  EXPECT_TRUE(s.stats().geometry_from_disk);
  EXPECT_EQ(s.capacity(), 4u);
  EXPECT_EQ(read_payload(s, 0), payload_for(0));
}

TEST(RingStore, PosixFilesSurviveReopen) {
  char tmpl[] = "/tmp/ibp-ring-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dir = std::string(tmpl) + "/state/dev";
  {
    ibp::PosixFileSystem fs(dir);
    ASSERT_EQ(fs.prepare(), "");
    RingStore s(fs, small(8));
    ASSERT_TRUE(s.open().ok);
    for (int i = 0; i < 12; ++i) put(s, i);
    ASSERT_TRUE(s.ack(5).ok);
  }
  {
    ibp::PosixFileSystem fs(dir);
    ASSERT_EQ(fs.prepare(), "");
    RingStore s(fs, small(8));
    ASSERT_TRUE(s.open().ok);
    EXPECT_EQ(s.head(), 6u);
    EXPECT_EQ(s.next_seq(), 12u);
    for (uint64_t seq = 6; seq < 12; ++seq) EXPECT_EQ(read_payload(s, seq), payload_for(seq));
  }
  std::string cmd = std::string("rm -rf ") + tmpl;
  ASSERT_EQ(std::system(cmd.c_str()), 0);
}

}  // namespace
