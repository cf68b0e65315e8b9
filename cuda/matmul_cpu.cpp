// CPU reference for the linear layers. Plain fp32 loops with a fixed
// summation order (bit-reproducible for any thread count); blocked by 4 rows
// so each weight row is reused from cache.
#include "cuda/matmul.h"

namespace gt {

namespace {
// Dot product with 16 independent lanes summed in a fixed order: the compiler
// vectorizes it without -ffast-math and the result does not depend on threads.
inline float dot(const float* a, const float* b, int n) {
  float acc[16] = {0};
  int i = 0;
  for (; i + 16 <= n; i += 16)
    for (int k = 0; k < 16; ++k) acc[k] += a[i + k] * b[i + k];
  float tail = 0.0f;
  for (; i < n; ++i) tail += a[i] * b[i];
  float s = 0.0f;
  for (int k = 0; k < 16; ++k) s += acc[k];
  return s + tail;
}
inline void axpy(float* y, float a, const float* x, int n) {
  for (int i = 0; i < n; ++i) y[i] += a * x[i];
}
}  // namespace

void matmul_forward_cpu(float* out, const float* inp, const float* weight, int N, int C, int OC) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const float* x = inp + (int64_t)n * C;
    float* o = out + (int64_t)n * OC;
    for (int oc = 0; oc < OC; ++oc) o[oc] = dot(x, weight + (int64_t)oc * C, C);
  }
}

void matmul_backward_cpu(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                         int N, int C, int OC, bool accumulate_dinp, bool accumulate_dweight) {
  if (dinp) {
    // dinp[n,:] = sum_oc dout[n,oc] * weight[oc,:]
#pragma omp parallel for schedule(static)
    for (int n = 0; n < N; ++n) {
      float* dx = dinp + (int64_t)n * C;
      if (!accumulate_dinp)
        for (int c = 0; c < C; ++c) dx[c] = 0.0f;
      const float* g = dout + (int64_t)n * OC;
      for (int oc = 0; oc < OC; ++oc) axpy(dx, g[oc], weight + (int64_t)oc * C, C);
    }
  }
  if (dweight) {
    // dweight[oc,:] = sum_n dout[n,oc] * inp[n,:]
#pragma omp parallel for schedule(static)
    for (int oc = 0; oc < OC; ++oc) {
      float* dw = dweight + (int64_t)oc * C;
      if (!accumulate_dweight)
        for (int c = 0; c < C; ++c) dw[c] = 0.0f;
      for (int n = 0; n < N; ++n) axpy(dw, dout[(int64_t)n * OC + oc], inp + (int64_t)n * C, C);
    }
  }
}

}  // namespace gt
