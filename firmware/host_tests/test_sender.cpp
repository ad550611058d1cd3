// The stop-and-wait sender against an in-process gateway model that parses and verifies with the same
// codec: draining, exact deletion on ACK, retransmission of the same bytes with bounded backoff,
// BUSY retry-after, AUTH_FAIL hold-off, forged answers, and the flush rate cap.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ibp/sender.h"
#include "memory_fs.h"

namespace {

using ibp::Bytes;

ibp::Identity make_id(uint8_t fill = 7) {
  ibp::Identity id;
  id.device_id = "dev-1";
  id.key.assign(ibp::kKeyLen, fill);
  return id;
}

struct Rig {
  ibp::MemoryFileSystem fs;
  ibp::RingStore store;
  ibp::Random rng{1};
  ibp::Identity id = make_id();
  ibp::Sender sender;
  uint64_t now = 1000;

  explicit Rig(ibp::SenderConfig cfg, uint32_t capacity = 512)
      : store(fs, [&] {
          ibp::StoreConfig s;
          s.capacity = capacity;
          s.max_payload = 64;
          return s;
        }()),
        sender(store, id, cfg, rng) {
    EXPECT_TRUE(store.open().ok);
  }

  void add(int n) {
    for (int i = 0; i < n; ++i) {
      std::string p = "{\"i\":" + std::to_string(store.next_seq()) + "}";
      ASSERT_TRUE(store.append(now, reinterpret_cast<const uint8_t*>(p.data()), p.size(), nullptr).ok);
    }
  }

  // Advances time until the sender has something to send (or the limit passes).
  bool next_send(Bytes& out, uint64_t limit_ms = 600000) {
    uint64_t end = now + limit_ms;
    while (now <= end) {
      if (sender.poll(now, out)) return true;
      uint64_t due = sender.next_due_ms(now);
      now = due > now ? due : now + 1;
    }
    return false;
  }

  void answer(const Bytes& d) { sender.on_datagram(d.data(), d.size(), now); }
};

ibp::DataBatch parse(const Bytes& d, const ibp::Identity& id) {
  ibp::DataBatch b;
  auto r = ibp::accept_data(d.data(), d.size(), id.key.data(), id.key.size(), b);
  EXPECT_TRUE(r.ok) << r.reason;
  return b;
}

Bytes ack(const ibp::Identity& id, uint32_t seq) {
  Bytes out;
  EXPECT_TRUE(ibp::encode_ack(id, seq, out).ok);
  return out;
}

TEST(Sender, DrainsInOrderAndDeletesExactlyWhatIsAcked) {
  ibp::SenderConfig cfg;
  cfg.max_batch_readings = 10;
  cfg.rate_cap_per_s = 0;
  Rig rig(cfg);
  rig.add(95);
  std::vector<uint32_t> seen;
  Bytes d;
  while (rig.store.count() > 0) {
    ASSERT_TRUE(rig.next_send(d));
    auto b = parse(d, rig.id);
    ASSERT_LE(b.readings.size(), 10u);
    EXPECT_EQ(b.first_seq, rig.store.head());  // always the oldest unacked readings
    for (auto& r : b.readings) seen.push_back(r.seq);
    // Ack only the first half of the batch: exactly those are deleted.
    uint32_t upto = b.first_seq + uint32_t(b.readings.size() / 2);
    rig.answer(ack(rig.id, upto));
    EXPECT_EQ(rig.store.head(), uint64_t(upto) + 1);
  }
  EXPECT_EQ(rig.sender.stats().readings_acked, 95u);
  EXPECT_FALSE(rig.next_send(d, 5000));
  // Every sequence was sent, in order, starting at 0.
  std::vector<uint32_t> unique;
  for (uint32_t s : seen)
    if (unique.empty() || s > unique.back()) unique.push_back(s);
  ASSERT_EQ(unique.size(), 95u);
  EXPECT_EQ(unique.front(), 0u);
  EXPECT_EQ(unique.back(), 94u);
}

TEST(Sender, RetransmitsTheSameBytesWithBoundedFullJitterBackoff) {
  ibp::SenderConfig cfg;
  cfg.ack_timeout_ms = 500;
  cfg.backoff = {100, 2000};
  cfg.rate_cap_per_s = 0;
  Rig rig(cfg);
  rig.add(3);
  Bytes first, again;
  ASSERT_TRUE(rig.next_send(first));
  uint64_t last = rig.now;
  for (uint32_t attempt = 0; attempt < 10; ++attempt) {
    ASSERT_TRUE(rig.next_send(again));
    EXPECT_EQ(again, first) << "a retransmission must be the same batch";
    uint64_t gap = rig.now - last;
    EXPECT_GE(gap, cfg.ack_timeout_ms);
    EXPECT_LE(gap, cfg.ack_timeout_ms + ibp::backoff_ceiling(cfg.backoff, attempt)) << "attempt " << attempt;
    last = rig.now;
  }
  EXPECT_EQ(rig.sender.stats().retransmits, 10u);
  rig.add(2);  // new readings do not change the batch in flight
  ASSERT_TRUE(rig.next_send(again));
  EXPECT_EQ(again, first);
  rig.answer(ack(rig.id, 2));
  EXPECT_EQ(rig.store.count(), 2u);
  ASSERT_TRUE(rig.next_send(again));
  EXPECT_EQ(parse(again, rig.id).first_seq, 3u);
}

TEST(Sender, BusyWaitsAtLeastRetryAfter) {
  ibp::SenderConfig cfg;
  cfg.rate_cap_per_s = 0;
  Rig rig(cfg);
  rig.add(1);
  Bytes d, busy;
  ASSERT_TRUE(rig.next_send(d));
  ASSERT_TRUE(ibp::encode_busy(rig.id, 800, busy).ok);
  uint64_t t0 = rig.now;
  rig.answer(busy);
  EXPECT_FALSE(rig.sender.in_flight());
  ASSERT_TRUE(rig.next_send(d));
  EXPECT_GE(rig.now - t0, 800u);
  EXPECT_LE(rig.now - t0, 1600u);
  EXPECT_EQ(rig.store.count(), 1u);  // BUSY never deletes anything
}

TEST(Sender, AuthFailHoldsOff) {
  ibp::SenderConfig cfg;
  cfg.auth_fail_backoff_ms = 30000;
  Rig rig(cfg);
  rig.add(1);
  Bytes d;
  ASSERT_TRUE(rig.next_send(d));
  uint64_t t0 = rig.now;
  rig.answer(ibp::auth_fail_datagram());
  ASSERT_TRUE(rig.next_send(d));
  EXPECT_GE(rig.now - t0, 30000u);
  EXPECT_EQ(rig.sender.stats().auth_fail, 1u);
}

TEST(Sender, IgnoresForgedAndForeignAnswers) {
  Rig rig(ibp::SenderConfig{});
  rig.add(4);
  Bytes d;
  ASSERT_TRUE(rig.next_send(d));
  rig.answer(ack(make_id(9), 3));  // wrong key
  ibp::Identity other = make_id();
  other.device_id = "dev-2";
  rig.answer(ack(other, 3));       // another device's (valid) answer
  Bytes junk = {'I', 'B', 1, 0x81, 0};
  rig.answer(junk);
  EXPECT_EQ(rig.store.count(), 4u);
  EXPECT_EQ(rig.sender.stats().bad_answers, 3u);
  EXPECT_TRUE(rig.sender.in_flight());
}

TEST(Sender, RateCapSpacesDatagrams) {
  ibp::SenderConfig cfg;
  cfg.max_batch_readings = 1;
  cfg.rate_cap_per_s = 20;  // at most one datagram every 50 ms
  Rig rig(cfg);
  rig.add(30);
  Bytes d;
  uint64_t prev = 0;
  for (int i = 0; i < 30; ++i) {
    ASSERT_TRUE(rig.next_send(d));
    if (i > 0) {
      EXPECT_GE(rig.now - prev, 50u);
    }
    prev = rig.now;
    rig.answer(ack(rig.id, parse(d, rig.id).first_seq));
  }
  EXPECT_EQ(rig.store.count(), 0u);
}

TEST(Sender, BatchesStayWithinTheDatagramLimit) {
  ibp::SenderConfig cfg;
  cfg.max_batch_readings = 255;
  cfg.max_datagram_bytes = 400;
  cfg.rate_cap_per_s = 0;
  Rig rig(cfg);
  rig.add(100);
  Bytes d;
  while (rig.store.count() > 0) {
    ASSERT_TRUE(rig.next_send(d));
    EXPECT_LE(d.size(), 400u);
    auto b = parse(d, rig.id);
    rig.answer(ack(rig.id, b.first_seq + uint32_t(b.readings.size()) - 1));
  }
}

TEST(Sender, SkipsACorruptHeadRecord) {
  ibp::SenderConfig cfg;
  cfg.rate_cap_per_s = 0;
  Rig rig(cfg);
  rig.add(5);
  size_t slot = ibp::RingStore::kRecordHeader + 64 + 4;
  rig.fs.raw("ring.dat")[0 * slot + ibp::RingStore::kRecordHeader] ^= 1;  // record 0 rots
  rig.fs.raw("ring.dat")[3 * slot + ibp::RingStore::kRecordHeader] ^= 1;  // record 3 rots
  Bytes d;
  ASSERT_TRUE(rig.next_send(d));
  auto b = parse(d, rig.id);
  EXPECT_EQ(b.first_seq, 1u);           // 0 was dropped (counted), not sent as garbage
  EXPECT_EQ(b.readings.size(), 2u);     // the batch stops before 3
  EXPECT_EQ(rig.store.stats().dropped_corrupt, 1u);
}

TEST(Sender, ConfigErrorsNameWhatToFix) {
  ibp::SenderConfig cfg;
  cfg.max_datagram_bytes = 100;
  std::string err = ibp::Sender::check_config(cfg, make_id(), 200);
  EXPECT_NE(err.find("max_datagram_bytes"), std::string::npos) << err;
  cfg = ibp::SenderConfig{};
  EXPECT_EQ(ibp::Sender::check_config(cfg, make_id(), 200), "");
  cfg.max_batch_readings = 0;
  EXPECT_NE(ibp::Sender::check_config(cfg, make_id(), 200), "");
}

}  // namespace
