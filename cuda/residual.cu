// Residual add and the other elementwise helpers the CUDA backend needs
// (scale, sum of squares, dtype conversion). CPU reference for the add:
// cuda/residual_cpu.cpp.
#include "cuda/cuda_check.h"  // first: see the note there

#include <algorithm>

#include "cuda/residual.h"

namespace gt {

namespace {

constexpr int kThreads = 256;

// out[n] = a[n] + b[n]; 8 elements per thread (see swiglu.cu). out may alias
// a or b: every element is read before it is written, by the same thread.
__global__ void residual_add_kernel(bf16* out, const bf16* a, const bf16* b, int64_t n, bool vec) {
  const int64_t i0 = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * 8;
  if (i0 >= n) return;
  if (vec && i0 + 8 <= n) {
    float av[8], bv[8], o[8];
    load_bf16x8(a + i0, av);
    load_bf16x8(b + i0, bv);
#pragma unroll
    for (int e = 0; e < 8; ++e) o[e] = av[e] + bv[e];
    store_bf16x8(out + i0, o);
  } else {
    for (int64_t i = i0; i < n && i < i0 + 8; ++i) out[i] = from_f32<bf16>(to_f32(a[i]) + to_f32(b[i]));
  }
}

template <typename T>
__global__ void scale_kernel(T* t, float s, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    t[i] = from_f32<T>(to_f32(t[i]) * s);
}

// Fixed grid of kSumBlocks blocks; thread (b, tid) visits i = (b*kThreads + tid)
// + k * kSumBlocks*kThreads in order, accumulating in double. Each block
// reduces its threads in a fixed tree into partial[b]; a single-block kernel
// then sums partial[0..kSumBlocks) in a fixed tree. Same input, same bits.
constexpr int kSumBlocks = 512;

template <typename T>
__global__ void __launch_bounds__(kThreads) sum_squares_partial_kernel(double* partial, const T* t, int64_t n) {
  __shared__ double shared[kThreads];
  double acc = 0.0;
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < n; i += int64_t(kSumBlocks) * kThreads) {
    const double v = to_f32(t[i]);
    acc += v * v;
  }
  const double s = block_sum(acc, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void __launch_bounds__(kThreads)
    sum_squares_final_kernel(double* result, const double* partial, bool accumulate) {
  __shared__ double shared[kThreads];
  double acc = 0.0;
  for (int i = threadIdx.x; i < kSumBlocks; i += kThreads) acc += partial[i];
  const double s = block_sum(acc, shared);
  if (threadIdx.x == 0) *result = accumulate ? *result + s : s;
}

template <typename T>
void sum_squares_impl(double* result, const T* t, int64_t n, void* workspace, bool accumulate, cudaStream_t stream) {
  double* partial = static_cast<double*>(workspace);  // [kSumBlocks]
  sum_squares_partial_kernel<T><<<kSumBlocks, kThreads, 0, stream>>>(partial, t, n);
  CUDA_CHECK_LAUNCH();
  sum_squares_final_kernel<<<1, kThreads, 0, stream>>>(result, partial, accumulate);
  CUDA_CHECK_LAUNCH();
}

__global__ void f32_to_bf16_kernel(bf16* dst, const float* src, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = __float2bfloat16(src[i]);
}
__global__ void bf16_to_f32_kernel(float* dst, const bf16* src, int64_t n) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    dst[i] = __bfloat162float(src[i]);
}

unsigned grid_for(int64_t n) { return unsigned(std::min<int64_t>(ceil_div(n, kThreads), 65536)); }

}  // namespace

void residual_add_cuda(bf16* out, const bf16* a, const bf16* b, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  const bool vec = aligned16(out) && aligned16(a) && aligned16(b);
  residual_add_kernel<<<unsigned(ceil_div(ceil_div(n, 8), kThreads)), kThreads, 0, stream>>>(out, a, b, n, vec);
  CUDA_CHECK_LAUNCH();
}

void scale_cuda(float* t, float s, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  scale_kernel<float><<<grid_for(n), kThreads, 0, stream>>>(t, s, n);
  CUDA_CHECK_LAUNCH();
}
void scale_cuda(bf16* t, float s, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  scale_kernel<bf16><<<grid_for(n), kThreads, 0, stream>>>(t, s, n);
  CUDA_CHECK_LAUNCH();
}

size_t sum_squares_cuda_workspace() { return sizeof(double) * kSumBlocks; }

void sum_squares_cuda(double* result, const float* t, int64_t n, void* workspace, cudaStream_t stream,
                      bool accumulate) {
  sum_squares_impl(result, t, n, workspace, accumulate, stream);
}
void sum_squares_cuda(double* result, const bf16* t, int64_t n, void* workspace, cudaStream_t stream,
                      bool accumulate) {
  sum_squares_impl(result, t, n, workspace, accumulate, stream);
}

void convert_f32_to_bf16_cuda(bf16* dst, const float* src, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  f32_to_bf16_kernel<<<grid_for(n), kThreads, 0, stream>>>(dst, src, n);
  CUDA_CHECK_LAUNCH();
}
void convert_bf16_to_f32_cuda(float* dst, const bf16* src, int64_t n, cudaStream_t stream) {
  if (n <= 0) return;
  bf16_to_f32_kernel<<<grid_for(n), kThreads, 0, stream>>>(dst, src, n);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gt
