// Helpers shared by the CPU tests.
#pragma once
#include <cstdint>
#include <vector>

#include "core/rng.h"

namespace gt::test {

// n normal(0, 1) values times scale, from the project's seeded Rng.
inline std::vector<float> randn(size_t n, uint64_t seed, float scale = 1.0f) {
  Rng rng(seed);
  std::vector<float> x(n);
  for (auto& v : x) v = scale * float(rng.normal());
  return x;
}

}  // namespace gt::test
