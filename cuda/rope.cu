// Rotary position embeddings on the GPU (HF rotate-half). CPU reference:
// cuda/rope_cpu.cpp. The angles come from a cos/sin table built on the host
// with the reference's own formula (rope_angle in double, then float), so the
// rotation coefficients are bit-identical to the CPU's.
#include "cuda/cuda_check.h"  // first: see the note there

#include <cmath>

#include "cuda/rope.h"

namespace gt {

namespace {

// x[B,T,H,D] in place; cos/sin [T, D/2]. One thread per (b, t, h, i < D/2).
// sign = +1 forward, -1 backward (the transpose rotation).
__global__ void rope_kernel(bf16* x, const float* cos_table, const float* sin_table, int64_t pairs, int T, int H,
                            int D, float sign) {
  const int64_t idx = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= pairs) return;
  const int half = D / 2;
  const int i = int(idx % half);
  const int64_t row = idx / half;  // (b*T + t)*H + h
  const int t = int((row / H) % T);
  bf16* v = x + row * D;  // [D]
  const float c = cos_table[int64_t(t) * half + i];
  const float s = sign * sin_table[int64_t(t) * half + i];
  const float x1 = to_f32(v[i]), x2 = to_f32(v[i + half]);
  v[i] = from_f32<bf16>(x1 * c - x2 * s);
  v[i + half] = from_f32<bf16>(x2 * c + x1 * s);
}

void rope_launch(bf16* x, const float* cos_table, const float* sin_table, int B, int T, int H, int D, float sign,
                 cudaStream_t stream) {
  GT_ASSERT(D % 2 == 0);
  const int64_t pairs = int64_t(B) * T * H * (D / 2);
  if (pairs <= 0) return;
  rope_kernel<<<unsigned(ceil_div(pairs, 256)), 256, 0, stream>>>(x, cos_table, sin_table, pairs, T, H, D, sign);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void rope_table_host(float* cos_table, float* sin_table, int T, int D, float theta) {
  const int half = D / 2;
  for (int t = 0; t < T; ++t)
    for (int i = 0; i < half; ++i) {
      const double a = rope_angle(t, i, D, theta);
      cos_table[int64_t(t) * half + i] = float(std::cos(a));
      sin_table[int64_t(t) * half + i] = float(std::sin(a));
    }
}

void rope_forward_cuda(bf16* x, const float* cos_table, const float* sin_table, int B, int T, int H, int D,
                       cudaStream_t stream) {
  rope_launch(x, cos_table, sin_table, B, T, H, D, 1.0f, stream);
}

void rope_backward_cuda(bf16* dx, const float* cos_table, const float* sin_table, int B, int T, int H, int D,
                        cudaStream_t stream) {
  rope_launch(dx, cos_table, sin_table, B, T, H, D, -1.0f, stream);
}

}  // namespace gt
