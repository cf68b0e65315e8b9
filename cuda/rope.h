// Rotary position embeddings, Hugging Face rotate-half convention:
// for i < D/2 with angle a = t * theta^(-2i/D):
//   y[i]       = x[i] cos a - x[i+D/2] sin a
//   y[i+D/2]   = x[i+D/2] cos a + x[i] sin a
#pragma once
#include <cmath>
#include "cuda/common.h"

namespace gt {
// The angle of pair i at position t, computed in double so fp32 matches a float64 reference.
GT_HD double rope_angle(int t, int i, int D, double theta) {
  return double(t) * pow(theta, -2.0 * double(i) / double(D));
}
// x[B,T,H,D] rotated in place, positions 0..T-1.
void rope_forward_cpu(float* x, int B, int T, int H, int D, float theta);
// dx[B,T,H,D] in place: the transpose rotation.
void rope_backward_cpu(float* dx, int B, int T, int H, int D, float theta);
}  // namespace gt

#ifdef GALORE_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime.h>
namespace gt {
// ---- CUDA (cuda/rope.cu) ----
// Host: the cos/sin table [T, D/2] (fp32) with exactly the CPU reference's
// formula, float(cos(rope_angle(t, i, D, theta))); upload it once and reuse.
void rope_table_host(float* cos_table, float* sin_table, int T, int D, float theta);
// x[B,T,H,D] (bf16) rotated in place; cos/sin [>=T, D/2] on the device.
void rope_forward_cuda(__nv_bfloat16* x, const float* cos_table, const float* sin_table, int B, int T, int H, int D,
                       cudaStream_t stream);
void rope_backward_cuda(__nv_bfloat16* dx, const float* cos_table, const float* sin_table, int B, int T, int H,
                        int D, cudaStream_t stream);
}  // namespace gt
#endif  // GALORE_WITH_CUDA
