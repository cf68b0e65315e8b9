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

// The same rotation, 8 pairs per thread: x[i0..i0+8) and x[i0+D/2..), and
// their table entries, in 16-byte accesses, with 32-bit index arithmetic (the
// per-pair 64-bit divisions made the kernel above compute-bound). Needs D % 16
// == 0, 16-byte aligned x and tables, and fewer than 2^31 groups.
__global__ void rope8_kernel(bf16* x, const float* cos_table, const float* sin_table, uint32_t groups, int T, int H,
                             int D, float sign) {
  const uint32_t idx = blockIdx.x * blockDim.x + threadIdx.x;
  if (idx >= groups) return;
  const uint32_t half = uint32_t(D) / 2, per_row = half / 8;
  const uint32_t row = idx / per_row, i0 = (idx - row * per_row) * 8;  // row = (b*T + t)*H + h
  const uint32_t t = (row / uint32_t(H)) % uint32_t(T);
  bf16* v = x + int64_t(row) * D;
  float x1[8], x2[8], c[8], sn[8], y1[8], y2[8];
  load_bf16x8(v + i0, x1);
  load_bf16x8(v + i0 + half, x2);
  const float4* cp = reinterpret_cast<const float4*>(cos_table + int64_t(t) * half + i0);
  const float4* sp = reinterpret_cast<const float4*>(sin_table + int64_t(t) * half + i0);
  const float4 c0 = cp[0], c1 = cp[1], s0 = sp[0], s1 = sp[1];
  c[0] = c0.x, c[1] = c0.y, c[2] = c0.z, c[3] = c0.w, c[4] = c1.x, c[5] = c1.y, c[6] = c1.z, c[7] = c1.w;
  sn[0] = s0.x, sn[1] = s0.y, sn[2] = s0.z, sn[3] = s0.w, sn[4] = s1.x, sn[5] = s1.y, sn[6] = s1.z, sn[7] = s1.w;
#pragma unroll
  for (int k = 0; k < 8; ++k) {
    const float s = sign * sn[k];
    y1[k] = x1[k] * c[k] - x2[k] * s;
    y2[k] = x2[k] * c[k] + x1[k] * s;
  }
  store_bf16x8(v + i0, y1);
  store_bf16x8(v + i0 + half, y2);
}

void rope_launch(bf16* x, const float* cos_table, const float* sin_table, int B, int T, int H, int D, float sign,
                 cudaStream_t stream) {
  GT_ASSERT(D % 2 == 0);
  const int64_t pairs = int64_t(B) * T * H * (D / 2);
  if (pairs <= 0) return;
  if (D % 16 == 0 && pairs / 8 < (int64_t(1) << 31) && aligned16(x) && aligned16(cos_table) && aligned16(sin_table)) {
    const int64_t groups = pairs / 8;
    rope8_kernel<<<unsigned(ceil_div(groups, 256)), 256, 0, stream>>>(x, cos_table, sin_table, uint32_t(groups), T,
                                                                      H, D, sign);
  } else {
    rope_kernel<<<unsigned(ceil_div(pairs, 256)), 256, 0, stream>>>(x, cos_table, sin_table, pairs, T, H, D, sign);
  }
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
