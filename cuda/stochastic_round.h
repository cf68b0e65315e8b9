// Stochastic rounding of fp32 to bf16, written once for the CPU (tests) and
// the kernels. A bf16 is the top 16 bits of an fp32; adding 16 uniform random
// bits to the low half before truncating carries into the kept half with
// probability low/2^16, i.e. the value rounds up (in magnitude) with
// probability equal to its distance from the truncated value in ulps: the
// rounding is unbiased, E[round(x)] = x. Small updates (|step| < ulp/2) that
// round-to-nearest would drop entirely survive on average, which is why
// bf16 weights are updated this way.
//
// The random bits come from a counter-based hash of (seed, element index), so
// a kernel needs no RNG state, any thread order gives the same bits, and a run
// is reproducible for a seed. Callers derive a fresh seed per step and tensor;
// seed 0 is reserved for "round to nearest" by the callers (not here).
#pragma once
#include <cstdint>
#include <cstring>

#include "cuda/common.h"

namespace gt {

GT_HD uint32_t sr_f32_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  uint32_t u;
  std::memcpy(&u, &x, 4);
  return u;
#endif
}

GT_HD float sr_bits_f32(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float x;
  std::memcpy(&x, &u, 4);
  return x;
#endif
}

// 16 uniform random bits for element `index` under `seed` (counter_random64's top bits).
GT_HD uint32_t sr_random16(uint64_t seed, uint64_t index) { return uint32_t(counter_random64(seed, index) >> 48); }

// bf16 bits of x rounded stochastically with 16 random bits `r`. NaN stays a
// (quiet) NaN, +-inf and values already representable in bf16 are unchanged
// (their low half is 0, so no carry is possible). A finite x above bf16's
// largest finite value may round to inf, as round-to-nearest does.
GT_HD uint16_t bf16_bits_stochastic(float x, uint32_t r) {
  const uint32_t u = sr_f32_bits(x);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40u);  // NaN
  if ((u & 0x7f800000u) == 0x7f800000u) return uint16_t(u >> 16);           // +-inf
  // The sign bit is untouched: the carry stops at the exponent's top (the
  // largest finite exponent plus one is inf's), so the magnitude rounds.
  return uint16_t((u + (r & 0xffffu)) >> 16);
}

// x rounded stochastically to a bf16 value (returned as the fp32 it equals).
GT_HD float round_bf16_stochastic(float x, uint64_t seed, uint64_t index) {
  return sr_bits_f32(uint32_t(bf16_bits_stochastic(x, sr_random16(seed, index))) << 16);
}

}  // namespace gt
