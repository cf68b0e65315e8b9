// 8-bit (and fp32-state) Adam steps and the AdamW weight update on the GPU,
// for the full-rank and GaLore optimizers. The per-element math is the one of
// cuda/adam8bit.h, cuda/quant8.h and cuda/adam.h, which the CPU reference
// (cuda/adam8bit_cpu.cpp, optim/adamw8bit.cpp) calls too.
//
// GaLore on the GPU is then: R = projection of G (cuBLASLt), adam8bit_step_cuda
// on R (clipping and the gradient statistics folded in: AdamClip), the
// projection back with the weight update in its epilogue (cuBLASLt; or
// apply_update_cuda with stochastic rounding), step_size = lr * bias
// correction * scale. Full-rank AdamW fuses the moments and the weight update
// (adam8bit_update_cuda / adam32_update_cuda).
#include "cuda/cuda_check.h"  // first: see the note there

#include <algorithm>

#include "cuda/adam8bit.h"
#include "cuda/stochastic_round.h"

namespace gt {

namespace {

static_assert(kQuantBlock == 256, "one thread per element of an absmax block, one per map entry");
static_assert(kAdam8Threads == 256, "the map load and block_max256 take one thread per entry");
constexpr int kWarps = kAdam8Threads / 32;

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

// ---- 8 consecutive elements per lane: one 16- or 32-byte access when `vec`
// (every pointer 16-byte aligned and the 8 elements inside [0, n)), else one
// element at a time. Elements past n read as 0 and are not written.
__device__ __forceinline__ void load8(const float* p, int64_t i, int64_t n, bool vec, float* out) {
  if (vec) {
    const float4 a = *reinterpret_cast<const float4*>(p + i), b = *reinterpret_cast<const float4*>(p + i + 4);
    out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w, out[4] = b.x, out[5] = b.y, out[6] = b.z, out[7] = b.w;
    return;
  }
#pragma unroll
  for (int k = 0; k < 8; ++k) out[k] = i + k < n ? p[i + k] : 0.0f;
}
__device__ __forceinline__ void load8(const bf16* p, int64_t i, int64_t n, bool vec, float* out) {
  if (vec) return load_bf16x8(p + i, out);
#pragma unroll
  for (int k = 0; k < 8; ++k) out[k] = i + k < n ? to_f32(p[i + k]) : 0.0f;
}
__device__ __forceinline__ void load8(const uint8_t* p, int64_t i, int64_t n, bool vec, uint8_t* out) {
  if (vec) {
    const uint2 raw = *reinterpret_cast<const uint2*>(p + i);
    const uint8_t* b = reinterpret_cast<const uint8_t*>(&raw);
#pragma unroll
    for (int k = 0; k < 8; ++k) out[k] = b[k];
    return;
  }
#pragma unroll
  for (int k = 0; k < 8; ++k) out[k] = i + k < n ? p[i + k] : uint8_t(0);
}
__device__ __forceinline__ void store8(float* p, int64_t i, int64_t n, bool vec, const float* v) {
  if (vec) {
    *reinterpret_cast<float4*>(p + i) = make_float4(v[0], v[1], v[2], v[3]);
    *reinterpret_cast<float4*>(p + i + 4) = make_float4(v[4], v[5], v[6], v[7]);
    return;
  }
#pragma unroll
  for (int k = 0; k < 8; ++k)
    if (i + k < n) p[i + k] = v[k];
}
__device__ __forceinline__ void store8(bf16* p, int64_t i, int64_t n, bool vec, const float* v) {  // to nearest
  if (vec) return store_bf16x8(p + i, v);
#pragma unroll
  for (int k = 0; k < 8; ++k)
    if (i + k < n) p[i + k] = __float2bfloat16(v[k]);
}
__device__ __forceinline__ void store8(uint8_t* p, int64_t i, int64_t n, bool vec, const uint8_t* c) {
  if (vec) {
    uint2 raw;
    uint8_t* b = reinterpret_cast<uint8_t*>(&raw);
#pragma unroll
    for (int k = 0; k < 8; ++k) b[k] = c[k];
    *reinterpret_cast<uint2*>(p + i) = raw;
    return;
  }
#pragma unroll
  for (int k = 0; k < 8; ++k)
    if (i + k < n) p[i + k] = c[k];
}

// The value a weight element is stored as: itself (fp32), or the bf16 it
// rounds to stochastically when sr_seed != 0 (exact in bf16, so store8's
// round to nearest keeps it); to nearest otherwise.
__device__ __forceinline__ float rounded_w(float, float x, int64_t, uint64_t) { return x; }
__device__ __forceinline__ float rounded_w(bf16, float x, int64_t i, uint64_t sr_seed) {
  return sr_seed ? round_bf16_stochastic(x, sr_seed, uint64_t(i)) : x;
}

__device__ __forceinline__ double warp_sum_f64(double v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}
__device__ __forceinline__ unsigned long long warp_sum_u64(unsigned long long v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// The 8-bit step, one warp per absmax block (256 elements, 8 consecutive per
// lane, in registers from load to requantization): the three phases of
// adam8bit.h with the block absmax as a warp max (order-free: deterministic).
// Warps stride over the absmax blocks: warp w of CTA c takes blocks
// c*8 + w + k*gridDim.x*8. Each element's gradient is first multiplied by the
// clip factor (clip_factor of cuda/adam.h, with ‖g‖² from clip.tensor_sq when
// it is given); with clip.psq, CTA c also writes the sum of squares of the
// finite raw gradients it read to psq[c] and their non-finite count to pnf[c]
// (per lane in k order, then fixed trees: a fixed grid gives fixed bits).
// kUpdate false: out = dir [n] (TO float or bf16), m/(sqrt(v)+eps), 0 where g is
// not finite. kUpdate true: out = w [n], updated in place from the direction
// (fused AdamW; elements with a non-finite g are left alone).
template <bool kUpdate, typename TG, typename TO>
__global__ void __launch_bounds__(kAdam8Threads, 4)
    adam8bit_kernel(const TG* g, TO* out, uint8_t* cm, uint8_t* cv, float* am, float* av, int64_t n,
                    const float* map_m_global, const float* map_v_global, float beta1, float beta2, float eps,
                    float step_size, float decay, uint64_t sr_seed, AdamClip clip, bool vec_ok) {
  __shared__ float map_m[256], map_v[256];
  __shared__ double red_sq[kWarps];
  __shared__ unsigned long long red_nf[kWarps];
  for (int j = threadIdx.x; j < 256; j += blockDim.x) {
    map_m[j] = map_m_global[j];
    map_v[j] = map_v_global[j];
  }
  __syncthreads();
  const float scale = clip_factor(clip.tensor_sq ? *clip.tensor_sq : 0.0, clip.clip_scale, clip.clip_norm);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t nqb = quant8_blocks(n);
  double sq = 0.0;
  unsigned long long nonfinite = 0;
  for (int64_t b = int64_t(blockIdx.x) * kWarps + warp; b < nqb; b += int64_t(gridDim.x) * kWarps) {
    const int64_t i0 = b * kQuantBlock + lane * 8;
    const bool vec = vec_ok && i0 + 8 <= n;
    float gv[8], m[8], v[8], o[8];
    uint8_t c_m[8], c_v[8];
    load8(g, i0, n, vec, gv);
    load8(cm, i0, n, vec, c_m);
    load8(cv, i0, n, vec, c_v);
    if constexpr (kUpdate) load8(out, i0, n, vec, o);
    const float amax_m_old = am[b], amax_v_old = av[b];
    // 1) moments in fp32 (0 for elements past n and for non-finite gradients).
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      m[k] = v[k] = 0.0f;
      if (i0 + k >= n) continue;
      if (finite_f32(gv[k]))
        sq += double(gv[k]) * double(gv[k]);
      else
        ++nonfinite;
      const bool ok = adam8_moments(gv[k] * scale, c_m[k], c_v[k], amax_m_old, amax_v_old, map_m, map_v, beta1,
                                    beta2, &m[k], &v[k]);
      if constexpr (kUpdate)
        o[k] = ok ? rounded_w(TO{}, adamw_apply(o[k], adam8_direction(m[k], v[k], eps), step_size, decay), i0 + k,
                              sr_seed)
                  : o[k];
      else
        o[k] = ok ? adam8_direction(m[k], v[k], eps) : 0.0f;
    }
    store8(out, i0, n, vec, o);
    // 2) block absmax of |m| and v; every lane has read the old absmax
    //    (__syncwarp: shuffles are no memory ordering) before lane 0 replaces it.
    float amax_m = 0.0f, amax_v = 0.0f;
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      amax_m = fmaxf(amax_m, fabsf(m[k]));
      amax_v = fmaxf(amax_v, v[k]);
    }
    amax_m = warp_max(amax_m);
    amax_v = warp_max(amax_v);
    __syncwarp();
    if (lane == 0) {
      am[b] = amax_m;
      av[b] = amax_v;
    }
    // 3) requantize with the new absmax.
    const float inv_m = quant8_inv_absmax(amax_m), inv_v = quant8_inv_absmax(amax_v);
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      c_m[k] = quant8(map_m, m[k], inv_m);
      c_v[k] = quant8(map_v, v[k], inv_v);
    }
    store8(cm, i0, n, vec, c_m);
    store8(cv, i0, n, vec, c_v);
  }
  if (!clip.psq) return;  // (uniform over the CTA)
  sq = warp_sum_f64(sq);
  nonfinite = warp_sum_u64(nonfinite);
  if (lane == 0) {
    red_sq[warp] = sq;
    red_nf[warp] = nonfinite;
  }
  __syncthreads();
  if (threadIdx.x == 0) {
    double s = 0.0;
    unsigned long long c = 0;
    for (int w = 0; w < kWarps; ++w) s += red_sq[w], c += red_nf[w];
    clip.psq[blockIdx.x] = s;
    clip.pnf[blockIdx.x] = c;
  }
}

// fp32 states, grid-stride; out and the clip factor as adam8bit_kernel (no
// statistics: clip.psq must be null).
template <bool kUpdate, typename TG, typename TO>
__global__ void adam32_kernel(const TG* g, TO* out, float* m, float* v, int64_t n, float beta1, float beta2,
                              float eps, float step_size, float decay, uint64_t sr_seed, AdamClip clip) {
  const float scale = clip_factor(clip.tensor_sq ? *clip.tensor_sq : 0.0, clip.clip_scale, clip.clip_norm);
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
    const float gi = to_f32(g[i]) * scale;
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
                     float decay, uint64_t sr_seed, const AdamClip& clip, cudaStream_t stream) {
  if (n <= 0) return;
  const bool vec = aligned16(g) && aligned16(out) && aligned16(cm) && aligned16(cv);
  adam8bit_kernel<kUpdate, TG, TO><<<adam8bit_ctas(n), kAdam8Threads, 0, stream>>>(
      g, out, cm, cv, am, av, n, map_m, map_v, beta1, beta2, eps, step_size, decay, sr_seed, clip, vec);
  CUDA_CHECK_LAUNCH();
}

template <bool kUpdate, typename TG, typename TO>
void adam32_launch(const TG* g, TO* out, float* m, float* v, int64_t n, float beta1, float beta2, float eps,
                   float step_size, float decay, uint64_t sr_seed, const AdamClip& clip, cudaStream_t stream) {
  if (n <= 0) return;
  GT_ASSERT(!clip.psq && !clip.pnf);  // the fp32 kernels leave the statistics to a separate pass
  adam32_kernel<kUpdate, TG, TO><<<grid_for(n), 256, 0, stream>>>(g, out, m, v, n, beta1, beta2, eps, step_size,
                                                                   decay, sr_seed, clip);
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

int adam8bit_ctas(int64_t n) {
  return int(std::max<int64_t>(1, std::min<int64_t>(kAdam8MaxCtas, ceil_div(quant8_blocks(n), kWarps))));
}

void adam8bit_step_cuda(const float* g, float* dir, uint8_t* cm, uint8_t* cv, float* am, float* av, int64_t n,
                        const float* map_m, const float* map_v, float beta1, float beta2, float eps,
                        cudaStream_t stream, const AdamClip& clip) {
  adam8bit_launch<false>(g, dir, cm, cv, am, av, n, map_m, map_v, beta1, beta2, eps, 0.0f, 0.0f, 0, clip, stream);
}
void adam8bit_step_cuda(const float* g, bf16* dir, uint8_t* cm, uint8_t* cv, float* am, float* av, int64_t n,
                        const float* map_m, const float* map_v, float beta1, float beta2, float eps,
                        cudaStream_t stream, const AdamClip& clip) {
  adam8bit_launch<false>(g, dir, cm, cv, am, av, n, map_m, map_v, beta1, beta2, eps, 0.0f, 0.0f, 0, clip, stream);
}

void adam32_step_cuda(const float* g, float* dir, float* m, float* v, int64_t n, float beta1, float beta2, float eps,
                      cudaStream_t stream, const AdamClip& clip) {
  adam32_launch<false>(g, dir, m, v, n, beta1, beta2, eps, 0.0f, 0.0f, 0, clip, stream);
}
void adam32_step_cuda(const float* g, bf16* dir, float* m, float* v, int64_t n, float beta1, float beta2, float eps,
                      cudaStream_t stream, const AdamClip& clip) {
  adam32_launch<false>(g, dir, m, v, n, beta1, beta2, eps, 0.0f, 0.0f, 0, clip, stream);
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
                          float decay, uint64_t sr_seed, cudaStream_t stream, const AdamClip& clip) {
  adam8bit_launch<true>(g, w, cm, cv, am, av, n, map_m, map_v, beta1, beta2, eps, step_size, decay, sr_seed, clip,
                        stream);
}

template <typename TG, typename TW>
void adam32_update_cuda(const TG* g, TW* w, float* m, float* v, int64_t n, float beta1, float beta2, float eps,
                        float step_size, float decay, uint64_t sr_seed, cudaStream_t stream, const AdamClip& clip) {
  adam32_launch<true>(g, w, m, v, n, beta1, beta2, eps, step_size, decay, sr_seed, clip, stream);
}

template <typename TW>
void apply_update_cuda(TW* w, const float* d, int64_t n, float step_size, float decay, uint64_t sr_seed,
                       cudaStream_t stream) {
  apply_launch(w, d, static_cast<const float*>(nullptr), n, step_size, decay, sr_seed, stream);
}

#define GT_INSTANTIATE_UPDATE(TG, TW)                                                                               \
  template void adam8bit_update_cuda<TG, TW>(const TG*, TW*, uint8_t*, uint8_t*, float*, float*, int64_t,           \
                                             const float*, const float*, float, float, float, float, float, uint64_t, \
                                             cudaStream_t, const AdamClip&);                                        \
  template void adam32_update_cuda<TG, TW>(const TG*, TW*, float*, float*, int64_t, float, float, float, float,     \
                                           float, uint64_t, cudaStream_t, const AdamClip&);
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
