// 8-bit (and fp32-state) Adam steps and the AdamW weight update on the GPU,
// for the full-rank and GaLore optimizers. The per-element math is the one of
// cuda/adam8bit.h, cuda/quant8.h and cuda/adam.h, which the CPU reference
// (cuda/adam8bit_cpu.cpp, optim/adamw8bit.cpp) calls too.
//
// GaLore on the GPU is then: R = projection of G (cuBLASLt), adam8bit_step_cuda
// on R, the projection back (cuBLASLt), apply_update_cuda with step_size =
// lr * bias correction * scale. Full-rank AdamW fuses the moments and the
// weight update (adam8bit_update_cuda / adam32_update_cuda).
#include "cuda/cuda_check.h"  // first: see the note there

#include <algorithm>

#include "cuda/adam8bit.h"
#include "cuda/stochastic_round.h"

namespace gt {

namespace {

static_assert(kQuantBlock == 256, "one thread per element of an absmax block, one per map entry");
constexpr int kWarps = kQuantBlock / 32;

// The AdamW weight update of one element (apply_adamw_direction, optim/adamw8bit.cpp).
__device__ __forceinline__ float adamw_apply(float w, float d, float step_size, float decay) {
  w -= step_size * d;
  w -= decay * w;  // decoupled weight decay after the update
  return w;
}

// Stores an updated weight: fp32 as is; bf16 to nearest, or stochastically
// (unbiased, keyed by (seed, i)) when sr_seed != 0.
__device__ __forceinline__ void store_w(float* w, int64_t i, float x, uint64_t) { w[i] = x; }
__device__ __forceinline__ void store_w(bf16* w, int64_t i, float x, uint64_t sr_seed) {
  // round_bf16_stochastic returns a bf16 value: the conversion below is exact.
  w[i] = __float2bfloat16(sr_seed ? round_bf16_stochastic(x, sr_seed, uint64_t(i)) : x);
}

// Max over the 256 threads of a block (every thread gets it). max is exact
// and order-free, so the result is deterministic. red: shared [kWarps].
__device__ __forceinline__ float block_max256(float x, float* red) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const float w = warp_max(x);
  if (lane == 0) red[warp] = w;
  __syncthreads();
  float r = 0.0f;
#pragma unroll
  for (int k = 0; k < kWarps; ++k) r = fmaxf(r, red[k]);
  return r;
}

// One block per absmax block b, thread j <-> element i = b*256 + j. The three
// phases of adam8bit.h; the barrier between phases 1 and 3 also guarantees
// that every thread has read the old absmax before thread 0 replaces it.
// kUpdate false: out = dir [n] (TO float or bf16), m/(sqrt(v)+eps), 0 where g is
// not finite. kUpdate true: out = w [n], updated in place from the direction
// (fused AdamW; elements with a non-finite g are left alone).
template <bool kUpdate, typename TG, typename TO>
__global__ void __launch_bounds__(kQuantBlock)
    adam8bit_kernel(const TG* g, TO* out, uint8_t* cm, uint8_t* cv, float* am, float* av, int64_t n,
                    const float* map_m_global, const float* map_v_global, float beta1, float beta2, float eps,
                    float step_size, float decay, uint64_t sr_seed) {
  __shared__ float map_m[256], map_v[256];
  __shared__ float red_m[kWarps], red_v[kWarps];
  const int j = threadIdx.x;
  map_m[j] = map_m_global[j];
  map_v[j] = map_v_global[j];
  __syncthreads();

  const int64_t b = blockIdx.x;
  const int64_t i = b * kQuantBlock + j;
  const bool in = i < n;
  // 1) moments in fp32 (0 for elements past n and for non-finite gradients).
  float m = 0.0f, v = 0.0f;
  if (in) {
    const bool ok = adam8_moments(to_f32(g[i]), cm[i], cv[i], am[b], av[b], map_m, map_v, beta1, beta2, &m, &v);
    if constexpr (kUpdate) {
      if (ok) store_w(out, i, adamw_apply(to_f32(out[i]), adam8_direction(m, v, eps), step_size, decay), sr_seed);
    } else {
      out[i] = from_f32<TO>(ok ? adam8_direction(m, v, eps) : 0.0f);
    }
  }
  // 2) block absmax of |m| and v.
  const float amax_m = block_max256(fabsf(m), red_m);
  const float amax_v = block_max256(v, red_v);
  if (j == 0) {
    am[b] = amax_m;
    av[b] = amax_v;
  }
  // 3) requantize with the new absmax.
  if (in) {
    cm[i] = quant8(map_m, m, quant8_inv_absmax(amax_m));
    cv[i] = quant8(map_v, v, quant8_inv_absmax(amax_v));
  }
}

// fp32 states, grid-stride; out as adam8bit_kernel.
template <bool kUpdate, typename TG, typename TO>
__global__ void adam32_kernel(const TG* g, TO* out, float* m, float* v, int64_t n, float beta1, float beta2,
                              float eps, float step_size, float decay, uint64_t sr_seed) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float gi = to_f32(g[i]);
    if (!finite_f32(gi)) {  // drop this element's history; no update
      m[i] = v[i] = 0.0f;
      if constexpr (!kUpdate) out[i] = from_f32<TO>(0.0f);
      continue;
    }
    float mi = m[i], vi = v[i];
    const float d = adam_moments_update(gi, &mi, &vi, beta1, beta2, eps);
    m[i] = mi;
    v[i] = vi;
    if constexpr (kUpdate)
      store_w(out, i, adamw_apply(to_f32(out[i]), d, step_size, decay), sr_seed);
    else
      out[i] = from_f32<TO>(d);
  }
}

// w -= step_size * dir; w -= decay * w. g (may be null): skip elements whose g is not finite.
template <typename TW>
__global__ void apply_kernel(TW* w, const float* dir, const float* g, int64_t n, float step_size, float decay,
                             uint64_t sr_seed) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    if (g && !finite_f32(g[i])) continue;
    store_w(w, i, adamw_apply(to_f32(w[i]), dir[i], step_size, decay), sr_seed);
  }
}

// One block per absmax block: block max of |x|, then the codes (quantize_blockwise_cpu).
__global__ void __launch_bounds__(kQuantBlock)
    quantize_blockwise_kernel(const float* map_global, const float* x, int64_t n, uint8_t* codes, float* absmax) {
  __shared__ float map[256];
  __shared__ float red[kWarps];
  const int j = threadIdx.x;
  map[j] = map_global[j];
  const int64_t b = blockIdx.x, i = b * kQuantBlock + j;
  const float xi = i < n ? x[i] : 0.0f;
  const float amax = block_max256(fabsf(xi), red);  // its barrier also publishes map[]
  if (j == 0) absmax[b] = amax;
  if (i < n) codes[i] = quant8(map, xi, quant8_inv_absmax(amax));
}

__global__ void dequantize_blockwise_kernel(const float* map, const uint8_t* codes, const float* absmax, int64_t n,
                                            float* x) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    x[i] = dequant8(map, codes[i], absmax[i / kQuantBlock]);
}

unsigned grid_for(int64_t n) { return unsigned(std::min<int64_t>(ceil_div(n, 256), 65536)); }

unsigned absmax_grid(int64_t n) {
  const int64_t blocks = quant8_blocks(n);
  GT_ASSERT(blocks <= INT32_MAX);
  return unsigned(blocks);
}

template <bool kUpdate, typename TG, typename TO>
void adam8bit_launch(const TG* g, TO* out, uint8_t* cm, uint8_t* cv, float* am, float* av, int64_t n,
                     const float* map_m, const float* map_v, float beta1, float beta2, float eps, float step_size,
                     float decay, uint64_t sr_seed, cudaStream_t stream) {
  if (n <= 0) return;
  adam8bit_kernel<kUpdate, TG, TO><<<absmax_grid(n), kQuantBlock, 0, stream>>>(
      g, out, cm, cv, am, av, n, map_m, map_v, beta1, beta2, eps, step_size, decay, sr_seed);
  CUDA_CHECK_LAUNCH();
}

template <bool kUpdate, typename TG, typename TO>
void adam32_launch(const TG* g, TO* out, float* m, float* v, int64_t n, float beta1, float beta2, float eps,
                   float step_size, float decay, uint64_t sr_seed, cudaStream_t stream) {
  if (n <= 0) return;
  adam32_kernel<kUpdate, TG, TO><<<grid_for(n), 256, 0, stream>>>(g, out, m, v, n, beta1, beta2, eps, step_size,
                                                                   decay, sr_seed);
  CUDA_CHECK_LAUNCH();
}

template <typename TW>
void apply_launch(TW* w, const float* dir, const float* g, int64_t n, float step_size, float decay,
                  uint64_t sr_seed, cudaStream_t stream) {
  if (n <= 0) return;
  apply_kernel<TW><<<grid_for(n), 256, 0, stream>>>(w, dir, g, n, step_size, decay, sr_seed);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void adam8bit_step_cuda(const float* g, float* dir, uint8_t* cm, uint8_t* cv, float* am, float* av, int64_t n,
                        const float* map_m, const float* map_v, float beta1, float beta2, float eps,
                        cudaStream_t stream) {
  adam8bit_launch<false>(g, dir, cm, cv, am, av, n, map_m, map_v, beta1, beta2, eps, 0.0f, 0.0f, 0, stream);
}
void adam8bit_step_cuda(const float* g, bf16* dir, uint8_t* cm, uint8_t* cv, float* am, float* av, int64_t n,
                        const float* map_m, const float* map_v, float beta1, float beta2, float eps,
                        cudaStream_t stream) {
  adam8bit_launch<false>(g, dir, cm, cv, am, av, n, map_m, map_v, beta1, beta2, eps, 0.0f, 0.0f, 0, stream);
}

void adam32_step_cuda(const float* g, float* dir, float* m, float* v, int64_t n, float beta1, float beta2, float eps,
                      cudaStream_t stream) {
  adam32_launch<false>(g, dir, m, v, n, beta1, beta2, eps, 0.0f, 0.0f, 0, stream);
}
void adam32_step_cuda(const float* g, bf16* dir, float* m, float* v, int64_t n, float beta1, float beta2, float eps,
                      cudaStream_t stream) {
  adam32_launch<false>(g, dir, m, v, n, beta1, beta2, eps, 0.0f, 0.0f, 0, stream);
}

void apply_adamw_direction_cuda(float* w, const float* dir, const float* g, int64_t n, float step_size, float decay,
                                cudaStream_t stream) {
  apply_launch(w, dir, g, n, step_size, decay, 0, stream);
}
void apply_adamw_direction_cuda(bf16* w, const float* dir, const float* g, int64_t n, float step_size, float decay,
                                cudaStream_t stream) {
  apply_launch(w, dir, g, n, step_size, decay, 0, stream);
}

template <typename TG, typename TW>
void adam8bit_update_cuda(const TG* g, TW* w, uint8_t* cm, uint8_t* cv, float* am, float* av, int64_t n,
                          const float* map_m, const float* map_v, float beta1, float beta2, float eps, float step_size,
                          float decay, uint64_t sr_seed, cudaStream_t stream) {
  adam8bit_launch<true>(g, w, cm, cv, am, av, n, map_m, map_v, beta1, beta2, eps, step_size, decay, sr_seed, stream);
}

template <typename TG, typename TW>
void adam32_update_cuda(const TG* g, TW* w, float* m, float* v, int64_t n, float beta1, float beta2, float eps,
                        float step_size, float decay, uint64_t sr_seed, cudaStream_t stream) {
  adam32_launch<true>(g, w, m, v, n, beta1, beta2, eps, step_size, decay, sr_seed, stream);
}

template <typename TW>
void apply_update_cuda(TW* w, const float* d, int64_t n, float step_size, float decay, uint64_t sr_seed,
                       cudaStream_t stream) {
  apply_launch(w, d, static_cast<const float*>(nullptr), n, step_size, decay, sr_seed, stream);
}

#define GT_INSTANTIATE_UPDATE(TG, TW)                                                                               \
  template void adam8bit_update_cuda<TG, TW>(const TG*, TW*, uint8_t*, uint8_t*, float*, float*, int64_t,           \
                                             const float*, const float*, float, float, float, float, float, uint64_t, \
                                             cudaStream_t);                                                          \
  template void adam32_update_cuda<TG, TW>(const TG*, TW*, float*, float*, int64_t, float, float, float, float,     \
                                           float, uint64_t, cudaStream_t);
GT_INSTANTIATE_UPDATE(float, float)
GT_INSTANTIATE_UPDATE(float, bf16)
GT_INSTANTIATE_UPDATE(bf16, float)
GT_INSTANTIATE_UPDATE(bf16, bf16)
#undef GT_INSTANTIATE_UPDATE
template void apply_update_cuda<float>(float*, const float*, int64_t, float, float, uint64_t, cudaStream_t);
template void apply_update_cuda<bf16>(bf16*, const float*, int64_t, float, float, uint64_t, cudaStream_t);

void quantize_blockwise_cuda(const float* map, const float* x, int64_t n, uint8_t* codes, float* absmax,
                             cudaStream_t stream) {
  if (n <= 0) return;
  quantize_blockwise_kernel<<<absmax_grid(n), kQuantBlock, 0, stream>>>(map, x, n, codes, absmax);
  CUDA_CHECK_LAUNCH();
}

void dequantize_blockwise_cuda(const float* map, const uint8_t* codes, const float* absmax, int64_t n, float* x,
                               cudaStream_t stream) {
  if (n <= 0) return;
  dequantize_blockwise_kernel<<<grid_for(n), 256, 0, stream>>>(map, codes, absmax, n, x);
  CUDA_CHECK_LAUNCH();
}

}  // namespace gt
