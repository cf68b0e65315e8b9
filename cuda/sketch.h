// The random sketch of the GaLore projector's range finder, written once for
// the CPU reference (optim/projector.cpp) and the CUDA refresh
// (cuda/projector.cu), so both draw bit-identical Ω.
//
// Counter-based: element idx of the sketch for `seed` is a pure function of
// (seed, idx), so any thread can draw any element, in any order. The value is
// an Irwin-Hall(4) variate: the sum of four 16-bit uniforms from one 64-bit
// hash, centred and scaled to unit variance. Only integer arithmetic and one
// float multiply (exactly rounded on host and device), so no libm function
// whose last bit differs between glibc and CUDA. The range finder's guarantees
// hold for any isotropic sub-Gaussian sketch; this one has mean 0, variance 1,
// excess kurtosis -0.3 and |x| <= 3.47.
#pragma once
#include <cstdint>

#include "cuda/common.h"

namespace gt {

// Standardized Irwin-Hall(4): sum of four uniform integers in [0, 65535],
// mean 131070, variance 4·(65536²−1)/12; the sum fits a float exactly.
GT_HD float sketch_normal(uint64_t seed, uint64_t idx) {
  const uint64_t h = counter_random64(seed, idx);
  const int32_t s = int32_t(h & 0xffffu) + int32_t((h >> 16) & 0xffffu) + int32_t((h >> 32) & 0xffffu) +
                    int32_t(h >> 48);
  return float(s - 131070) * 2.6428998e-05f;  // 1 / sqrt(4·(65536²−1)/12)
}

// Seed of the second (right) refresh of a `full` projection, so A's and B's
// sketches are independent.
GT_HD uint64_t sketch_seed_right(uint64_t seed) { return splitmix64_mix(seed ^ 0x5bd1e9955bd1e995ULL); }

}  // namespace gt
