// CPU reference for causal GQA attention. Keeps only lse[B,NH,T]; backward
// recomputes the probabilities row by row (the same scheme as the kernel).
#include <cmath>
#include <vector>
#include "cuda/attention.h"

namespace gt {

namespace {
inline float dotd(const float* a, const float* b, int n) {
  float s = 0.0f;
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}
}  // namespace

void attention_forward_cpu(float* out, float* lse, const float* q, const float* k, const float* v,
                           int B, int T, int NH, int NKV, int D) {
  const float scale = 1.0f / std::sqrt(float(D));
  const int group = NH / NKV;
#pragma omp parallel
  {
    std::vector<float> p(T);
#pragma omp for collapse(2) schedule(static)
    for (int b = 0; b < B; ++b)
      for (int h = 0; h < NH; ++h) {
        const int kvh = h / group;
        for (int t = 0; t < T; ++t) {
          const float* qt = q + (((int64_t)b * T + t) * NH + h) * D;
          float mx = -INFINITY;
          for (int j = 0; j <= t; ++j) {
            p[j] = dotd(qt, k + (((int64_t)b * T + j) * NKV + kvh) * D, D) * scale;
            mx = p[j] > mx ? p[j] : mx;
          }
          double sum = 0.0;
          for (int j = 0; j <= t; ++j) sum += std::exp(double(p[j]) - mx);
          const double l = mx + std::log(sum);
          lse[((int64_t)b * NH + h) * T + t] = float(l);
          float* o = out + (((int64_t)b * T + t) * NH + h) * D;
          for (int d = 0; d < D; ++d) o[d] = 0.0f;
          for (int j = 0; j <= t; ++j) {
            const float pj = float(std::exp(double(p[j]) - l));
            const float* vj = v + (((int64_t)b * T + j) * NKV + kvh) * D;
            for (int d = 0; d < D; ++d) o[d] += pj * vj[d];
          }
        }
      }
  }
}

void attention_backward_cpu(float* dq, float* dk, float* dv, const float* dout, const float* q, const float* k,
                            const float* v, const float* out, const float* lse, int B, int T, int NH, int NKV,
                            int D) {
  const float scale = 1.0f / std::sqrt(float(D));
  const int group = NH / NKV;
  // One task per (batch, kv head): it owns dk/dv of that head and dq of the
  // query heads that read it, so every sum has a fixed order.
#pragma omp parallel for collapse(2) schedule(static)
  for (int b = 0; b < B; ++b)
    for (int kvh = 0; kvh < NKV; ++kvh) {
      for (int t = 0; t < T; ++t) {
        float* dkt = dk + (((int64_t)b * T + t) * NKV + kvh) * D;
        float* dvt = dv + (((int64_t)b * T + t) * NKV + kvh) * D;
        for (int d = 0; d < D; ++d) dkt[d] = dvt[d] = 0.0f;
      }
      for (int h = kvh * group; h < (kvh + 1) * group; ++h)
        for (int t = 0; t < T; ++t) {
          const int64_t row = ((int64_t)b * T + t) * NH + h;
          const float* qt = q + row * D;
          const float* dot_ = dout + row * D;
          const float l = lse[((int64_t)b * NH + h) * T + t];
          const float Di = dotd(dot_, out + row * D, D);  // sum_j p_j dp_j
          float* dqt = dq + row * D;
          for (int d = 0; d < D; ++d) dqt[d] = 0.0f;
          for (int j = 0; j <= t; ++j) {
            const int64_t kv = (((int64_t)b * T + j) * NKV + kvh) * D;
            const float s = dotd(qt, k + kv, D) * scale;
            const float p = std::exp(s - l);
            const float dp = dotd(dot_, v + kv, D);
            const float ds = p * (dp - Di) * scale;
            for (int d = 0; d < D; ++d) {
              dqt[d] += ds * k[kv + d];
              dk[kv + d] += ds * qt[d];
              dv[kv + d] += p * dot_[d];
            }
          }
        }
    }
}

}  // namespace gt
