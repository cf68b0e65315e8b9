// CPU reference for RMSNorm (statistics in double: cheap, and keeps fp32
// parity with a float64 reference at ~1e-7).
#include <cmath>
#include "cuda/rmsnorm.h"

namespace gt {

void rmsnorm_forward_cpu(float* out, float* rstd, const float* inp, const float* weight, int N, int C, float eps) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const float* x = inp + (int64_t)n * C;
    double ss = 0.0;
    for (int c = 0; c < C; ++c) ss += double(x[c]) * x[c];
    const float r = float(1.0 / std::sqrt(ss / C + double(eps)));
    rstd[n] = r;
    float* o = out + (int64_t)n * C;
    for (int c = 0; c < C; ++c) o[c] = weight[c] * (x[c] * r);
  }
}

void rmsnorm_backward_cpu(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                          const float* rstd, int N, int C) {
  // y = w * x * r, r = (mean(x^2)+eps)^-1/2
  // dx = r * (w*dy) - x * r^3 / C * sum_c(w*dy*x)
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const float* x = inp + (int64_t)n * C;
    const float* dy = dout + (int64_t)n * C;
    const double r = rstd[n];
    double dot = 0.0;
    for (int c = 0; c < C; ++c) dot += double(weight[c]) * dy[c] * x[c];
    const double k = dot * r * r * r / C;
    float* dx = dinp + (int64_t)n * C;
    for (int c = 0; c < C; ++c) dx[c] += float(r * weight[c] * dy[c] - x[c] * k);
  }
  // dw[c] = sum_n dy * x * r, each channel summed in token order.
#pragma omp parallel for schedule(static)
  for (int c = 0; c < C; ++c) {
    double acc = 0.0;
    for (int n = 0; n < N; ++n) acc += double(dout[(int64_t)n * C + c]) * inp[(int64_t)n * C + c] * rstd[n];
    dweight[c] += float(acc);
  }
}

}  // namespace gt
