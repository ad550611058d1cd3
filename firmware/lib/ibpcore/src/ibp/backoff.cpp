#include "ibp/backoff.h"

namespace ibp {

uint32_t backoff_ceiling(const BackoffConfig& cfg, uint32_t attempt) {
  uint64_t value = cfg.base_ms;
  for (uint32_t i = 0; i < attempt && value < cfg.cap_ms; ++i) value <<= 1;
  return value < cfg.cap_ms ? uint32_t(value) : cfg.cap_ms;
}

uint32_t backoff_delay(const BackoffConfig& cfg, uint32_t attempt, Random& rng) {
  return rng.upto(backoff_ceiling(cfg, attempt));
}

}  // namespace ibp
