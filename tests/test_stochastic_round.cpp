// Stochastic rounding fp32 -> bf16 (cuda/stochastic_round.h), the very
// function the CUDA weight-update kernels call: unbiased, deterministic for a
// seed, exact values and non-finite values unchanged, never more than one bf16
// ulp away from the input, and always one of the two neighbours.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "cuda/stochastic_round.h"

using namespace gt;

namespace {

float bf16_bits_to_f32(uint16_t h) {
  const uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// x truncated toward zero to bf16, and the next bf16 away from zero.
float trunc_bf16(float x) { return bf16_bits_to_f32(uint16_t(sr_f32_bits(x) >> 16)); }
float next_bf16(float x) { return bf16_bits_to_f32(uint16_t((sr_f32_bits(x) >> 16) + 1)); }

}  // namespace

TEST(StochasticRound, UnbiasedMean) {
  // Values at fixed fractions of an ulp, and random ones, in several binades and both signs.
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<float> frac(0.0f, 1.0f);
  std::vector<float> xs = {1.0f + 0.25f / 128, -1.0f - 0.75f / 128, 3.0e-3f, 1.7e5f, -2.2e-20f, 1.0f + 1.0f / 4096};
  for (int k = 0; k < 6; ++k) xs.push_back((frac(rng) - 0.5f) * std::ldexp(1.0f, k * 7 - 20));
  const int N = 200000;
  for (float x : xs) {
    SCOPED_TRACE(x);
    double sum = 0.0;
    for (int i = 0; i < N; ++i) sum += round_bf16_stochastic(x, 12345, uint64_t(i));
    const double mean = sum / N;
    // One rounding is a Bernoulli choice between two neighbours one ulp apart:
    // the mean's standard deviation is at most ulp/(2 sqrt(N)); allow 5 sigma.
    const double ulp = std::fabs(double(next_bf16(x)) - double(trunc_bf16(x)));
    EXPECT_NEAR(mean, double(x), 5.0 * ulp / (2.0 * std::sqrt(double(N))) + 1e-12 * std::fabs(x));
  }
}

TEST(StochasticRound, ProbabilityMatchesFraction) {
  // x = t + p ulp: rounds up with probability p.
  const float t = 1.5f, ulp = 1.0f / 128;  // bf16 ulp in [1, 2)
  for (float p : {0.0625f, 0.5f, 0.9f}) {
    const float x = t + p * ulp;
    int up = 0;
    const int N = 100000;
    for (int i = 0; i < N; ++i) up += round_bf16_stochastic(x, 99, uint64_t(i)) > t;
    EXPECT_NEAR(double(up) / N, double(p), 5.0 * std::sqrt(p * (1.0 - p) / N)) << "p=" << p;
  }
}

TEST(StochasticRound, DeterministicForSeed) {
  std::mt19937_64 rng(3);
  std::normal_distribution<float> d(0.0f, 1.0f);
  int differ = 0;
  for (uint64_t i = 0; i < 10000; ++i) {
    const float x = d(rng);
    EXPECT_EQ(sr_f32_bits(round_bf16_stochastic(x, 42, i)), sr_f32_bits(round_bf16_stochastic(x, 42, i)));
    differ += round_bf16_stochastic(x, 42, i) != round_bf16_stochastic(x, 43, i);
  }
  EXPECT_GT(differ, 1000) << "another seed should give other roundings";
}

TEST(StochasticRound, ExactAndNonFinitePassThrough) {
  const float inf = std::numeric_limits<float>::infinity();
  for (float x : {0.0f, -0.0f, 1.0f, -2.5f, 0.0078125f, 3.0e38f, inf, -inf, bf16_bits_to_f32(0x0001)}) {
    const float e = trunc_bf16(x);  // x itself when representable
    for (uint64_t i = 0; i < 1000; ++i) {
      const float y = round_bf16_stochastic(e, 5, i);
      EXPECT_EQ(sr_f32_bits(y), sr_f32_bits(e)) << x;
    }
  }
  for (uint64_t i = 0; i < 100; ++i) EXPECT_TRUE(std::isnan(round_bf16_stochastic(NAN, 5, i)));
  // Random bits of all ones on a representable value: still unchanged.
  EXPECT_EQ(bf16_bits_stochastic(1.0f, 0xffffu), 0x3f80u);
  // The largest finite fp32 is beyond bf16's largest finite value: inf or 0x7f7f.
  const uint16_t top = bf16_bits_stochastic(std::numeric_limits<float>::max(), 0xffffu);
  EXPECT_EQ(top, 0x7f80u);
  EXPECT_EQ(bf16_bits_stochastic(std::numeric_limits<float>::max(), 0u), 0x7f7fu);
}

TEST(StochasticRound, OneOfTheTwoNeighbours) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (uint64_t i = 0; i < 100000; ++i) {
    const float x = u(rng) * std::ldexp(1.0f, int(i % 60) - 30);
    const float y = round_bf16_stochastic(x, 77, i);
    const float lo = trunc_bf16(x), hi = next_bf16(x);
    ASSERT_TRUE(y == lo || y == hi) << x << " -> " << y;
    // Never off by more than one ulp, and never flips the sign.
    ASSERT_LE(std::fabs(double(y) - double(x)), std::fabs(double(hi) - double(lo))) << x;
    ASSERT_EQ(std::signbit(y), std::signbit(x));
  }
}

TEST(StochasticRound, RandomBitsLookUniform) {
  // Each of the 16 bits is set about half the time over consecutive indices.
  int ones[16] = {};
  const int N = 1 << 16;
  for (int i = 0; i < N; ++i) {
    const uint32_t r = sr_random16(2024, uint64_t(i));
    for (int b = 0; b < 16; ++b) ones[b] += (r >> b) & 1u;
  }
  for (int b = 0; b < 16; ++b) EXPECT_NEAR(double(ones[b]) / N, 0.5, 0.01) << "bit " << b;
}
