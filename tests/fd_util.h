// Finite-difference helpers for gradient checks of the CPU reference.
#pragma once
#include <cmath>
#include <functional>
#include <vector>

#include "test_util.h"  // randn

namespace gt::test {

// Relative error between the analytic gradient and central differences of
// `loss` (evaluated in double) over up to `samples` coordinates of x.
inline double fd_rel_error(const std::function<double()>& loss, float* x, size_t n, const float* analytic,
                           int samples = 24, float h = 1e-2f, uint64_t seed = 7) {
  Rng r(seed);
  double num = 0.0, den = 0.0;
  const int count = int(std::min<size_t>(n, size_t(samples)));
  for (int s = 0; s < count; ++s) {
    const size_t i = n <= size_t(samples) ? size_t(s) : size_t(r.below(n));
    const float saved = x[i];
    x[i] = saved + h;
    const double lp = loss();
    x[i] = saved - h;
    const double lm = loss();
    x[i] = saved;
    const double fd = (lp - lm) / (2.0 * double(h));
    num += (fd - analytic[i]) * (fd - analytic[i]);
    den += fd * fd;
  }
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-12);
}

inline double dot(const std::vector<float>& a, const std::vector<float>& b) {
  double s = 0.0;
  for (size_t i = 0; i < a.size(); ++i) s += double(a[i]) * b[i];
  return s;
}

}  // namespace gt::test
