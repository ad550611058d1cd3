// Small deterministic PRNG (SplitMix64) for jitter. Seed it from a hardware source on the board
// (esp_random) and from the OS on the host; tests seed it explicitly.
#pragma once

#include <cstdint>

namespace ibp {

class Random {
 public:
  explicit Random(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, bound] inclusive.
  uint32_t upto(uint32_t bound) { return uint32_t(next() % (uint64_t(bound) + 1)); }

 private:
  uint64_t state_;
};

}  // namespace ibp
