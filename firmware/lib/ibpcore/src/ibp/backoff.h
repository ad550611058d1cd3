// Capped exponential backoff with full jitter: sleep = random(0, min(cap, base * 2^attempt)).
#pragma once

#include <cstdint>

#include "ibp/random.h"

namespace ibp {

struct BackoffConfig {
  uint32_t base_ms = 250;
  uint32_t cap_ms = 30000;
};

// min(cap, base * 2^attempt), without overflow for any attempt.
uint32_t backoff_ceiling(const BackoffConfig& cfg, uint32_t attempt);
// A full-jitter delay in [0, backoff_ceiling(attempt)].
uint32_t backoff_delay(const BackoffConfig& cfg, uint32_t attempt, Random& rng);

}  // namespace ibp
