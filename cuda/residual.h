// Elementwise adds for the residual stream.
#pragma once
#include "cuda/common.h"

namespace gt {
// out[n] = a[n] + b[n]; out may alias a.
void residual_add_cpu(float* out, const float* a, const float* b, int64_t n);
}  // namespace gt

#ifdef GALORE_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime.h>
namespace gt {
// ---- CUDA (cuda/residual.cu): residual add and the other elementwise helpers ----
// out[n] = a[n] + b[n] (bf16; out may alias a or b)
void residual_add_cuda(__nv_bfloat16* out, const __nv_bfloat16* a, const __nv_bfloat16* b, int64_t n,
                       cudaStream_t stream);
// t[n] *= s
void scale_cuda(float* t, float s, int64_t n, cudaStream_t stream);
void scale_cuda(__nv_bfloat16* t, float s, int64_t n, cudaStream_t stream);
// Sum of squares, deterministic (fixed grid, fixed-order reduce), written to
// *result (a device double), or added to it (one double add, in stream order)
// when accumulate. Needs sum_squares_cuda_workspace() bytes.
size_t sum_squares_cuda_workspace();
void sum_squares_cuda(double* result, const float* t, int64_t n, void* workspace, cudaStream_t stream,
                      bool accumulate = false);
void sum_squares_cuda(double* result, const __nv_bfloat16* t, int64_t n, void* workspace, cudaStream_t stream,
                      bool accumulate = false);
// dtype conversions on the device (round to nearest even)
void convert_f32_to_bf16_cuda(__nv_bfloat16* dst, const float* src, int64_t n, cudaStream_t stream);
void convert_bf16_to_f32_cuda(float* dst, const __nv_bfloat16* src, int64_t n, cudaStream_t stream);
}  // namespace gt
#endif  // GALORE_WITH_CUDA
