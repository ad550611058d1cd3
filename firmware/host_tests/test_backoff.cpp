#include <gtest/gtest.h>

#include "ibp/backoff.h"

namespace {

TEST(Backoff, CeilingDoublesThenCaps) {
  ibp::BackoffConfig cfg{100, 5000};
  EXPECT_EQ(ibp::backoff_ceiling(cfg, 0), 100u);
  EXPECT_EQ(ibp::backoff_ceiling(cfg, 1), 200u);
  EXPECT_EQ(ibp::backoff_ceiling(cfg, 5), 3200u);
  EXPECT_EQ(ibp::backoff_ceiling(cfg, 6), 5000u);
  EXPECT_EQ(ibp::backoff_ceiling(cfg, 1000000), 5000u);  // no overflow for huge attempts
}

TEST(Backoff, FullJitterStaysWithinBoundsAndSpreads) {
  ibp::BackoffConfig cfg{100, 5000};
  ibp::Random rng(42);
  for (uint32_t attempt = 0; attempt < 20; ++attempt) {
    uint32_t ceiling = ibp::backoff_ceiling(cfg, attempt);
    uint32_t lo = ceiling, hi = 0;
    for (int i = 0; i < 2000; ++i) {
      uint32_t d = ibp::backoff_delay(cfg, attempt, rng);
      ASSERT_LE(d, ceiling);
      lo = d < lo ? d : lo;
      hi = d > hi ? d : hi;
    }
    // Full jitter: draws cover the whole range, from near 0 to near the ceiling.
    EXPECT_LE(lo, ceiling / 20) << "attempt " << attempt;
    EXPECT_GE(hi, ceiling - ceiling / 20) << "attempt " << attempt;
  }
}

}  // namespace
