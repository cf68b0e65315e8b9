// CPU reference for rotary embeddings (HF rotate-half).
#include <cmath>
#include "cuda/rope.h"

namespace gt {

namespace {
void rotate(float* x, int B, int T, int H, int D, float theta, float sign) {
  const int half = D / 2;
#pragma omp parallel for schedule(static)
  for (int t = 0; t < T; ++t) {
    for (int i = 0; i < half; ++i) {
      const double a = rope_angle(t, i, D, theta);
      const float c = float(std::cos(a)), s = sign * float(std::sin(a));
      for (int b = 0; b < B; ++b)
        for (int h = 0; h < H; ++h) {
          float* v = x + (((int64_t)b * T + t) * H + h) * D;
          const float x1 = v[i], x2 = v[i + half];
          v[i] = x1 * c - x2 * s;
          v[i + half] = x2 * c + x1 * s;
        }
    }
  }
}
}  // namespace

void rope_forward_cpu(float* x, int B, int T, int H, int D, float theta) { rotate(x, B, T, H, D, theta, 1.0f); }
// The rotation is orthogonal: its transpose is the rotation by -angle.
void rope_backward_cpu(float* dx, int B, int T, int H, int D, float theta) { rotate(dx, B, T, H, D, theta, -1.0f); }

}  // namespace gt
