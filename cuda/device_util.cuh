// Small helpers shared by the kernels: bf16 <-> fp32, warp and block reductions,
// 16-byte bf16 loads. Device code only (included by cuda/cuda_check.h under
// nvcc, and by tools/cuda_emu for the CPU emulation of the kernels).
#pragma once
#include <cstdint>
#include <cuda_bf16.h>

namespace gt {

using bf16 = __nv_bfloat16;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15u) == 0; }

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(bf16 x) { return __bfloat162float(x); }
template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ bf16 from_f32<bf16>(float x) { return __float2bfloat16(x); }  // RNE

// Butterfly reductions: every lane ends with the same value (fp add and max
// are commutative, so all lanes evaluate the same tree).
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  return v;
}

// Sum over the block's threads by a fixed tree (blockDim.x a power of two;
// shared holds blockDim.x values): the same inputs give the same bits. Every
// thread gets the sum, and shared may be reused as soon as it returns.
template <typename T>
__device__ __forceinline__ T block_sum(T v, T* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int s = blockDim.x / 2; s > 0; s >>= 1) {
    if (threadIdx.x < s) shared[threadIdx.x] += shared[threadIdx.x + s];
    __syncthreads();
  }
  const T out = shared[0];
  __syncthreads();
  return out;
}

// Asynchronous global -> shared copies (cp.async, sm_80+: RTX 4090 and H100
// alike): cp_async<BYTES>(smem, gmem, src_bytes), BYTES 16 (cached in L2 only)
// or 4, copies src_bytes (0 .. BYTES) of gmem to smem and zero-fills the rest;
// src_bytes 0 reads nothing (gmem may then be any pointer). Copies issued since
// the last cp_async_commit() form a group; cp_async_wait<N>() waits until at
// most N committed groups are pending. Other threads' copies are visible after
// the __syncthreads that follows their wait. smem and gmem must be aligned to
// BYTES. Builds for < sm_80 (never running the kernels that use these) copy
// synchronously; the emulator (tools/cuda_emu, GT_CUDA_EMU) defers each copy
// to the wait that covers it.
template <int BYTES>
__device__ __forceinline__ void cp_async(void* smem, const void* gmem, int src_bytes) {
  static_assert(BYTES == 16 || BYTES == 4, "cp.async sizes used here: 16 (.cg) and 4 (.ca)");
#if defined(GT_CUDA_EMU)
  emu_cp_async(smem, gmem, BYTES, src_bytes);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  if constexpr (BYTES == 16)
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes) : "memory");
  else
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes) : "memory");
#else
  unsigned char* d = static_cast<unsigned char*>(smem);
  for (int i = 0; i < BYTES; ++i) d[i] = i < src_bytes ? static_cast<const unsigned char*>(gmem)[i] : 0;
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#if defined(GT_CUDA_EMU)
  emu_cp_async_commit();
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if defined(GT_CUDA_EMU)
  emu_cp_async_wait(N);
#elif defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

// 8 bf16 <-> 8 floats through one 16-byte access (p must be 16-byte aligned).
__device__ __forceinline__ void load_bf16x8(const bf16* p, float* f) {
  const int4 raw = *reinterpret_cast<const int4*>(p);
  const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    const float2 v = __bfloat1622float2(h[k]);
    f[2 * k] = v.x;
    f[2 * k + 1] = v.y;
  }
}
// 8 floats rounded to bf16 (round to nearest even) in one 16-byte register value.
__device__ __forceinline__ int4 pack_bf16x8(const float* f) {
  int4 raw;
  __nv_bfloat162* h = reinterpret_cast<__nv_bfloat162*>(&raw);
#pragma unroll
  for (int k = 0; k < 4; ++k) h[k] = __floats2bfloat162_rn(f[2 * k], f[2 * k + 1]);
  return raw;
}
__device__ __forceinline__ void store_bf16x8(bf16* p, const float* f) {
  *reinterpret_cast<int4*>(p) = pack_bf16x8(f);
}

}  // namespace gt
