// 8-bit AdamW states (bitsandbytes blockwise layout) on top of the fp32 math
// of cuda/adam.h. One block of kQuantBlock elements is updated in three
// phases, because the new absmax is a reduction over the block:
//   1. adam8_moments: dequantize m, v with the old absmax, update them with g
//      (kept in fp32 registers);
//   2. block absmax of |m| and v (a reduction; warp shuffle on the GPU);
//   3. adam8_direction + quant8: the update direction m/(sqrt(v)+eps) from the
//      fresh fp32 moments (as bitsandbytes: not from the requantized ones),
//      then requantize m, v with the new absmax.
#pragma once
#include "cuda/adam.h"
#include "cuda/quant8.h"

namespace gt {

// Phase 1. A non-finite g zeroes this element's moments (its history is
// dropped) and returns false: the caller leaves the weight element alone.
GT_HD bool adam8_moments(float g, uint8_t cm, uint8_t cv, float absmax_m, float absmax_v, const float* map_m,
                         const float* map_v, float beta1, float beta2, float* m, float* v) {
  if (!finite_f32(g)) {
    *m = 0.0f;
    *v = 0.0f;
    return false;
  }
  *m = beta1 * dequant8(map_m, cm, absmax_m) + (1.0f - beta1) * g;
  *v = beta2 * dequant8(map_v, cv, absmax_v) + (1.0f - beta2) * g * g;
  return true;
}

// Phase 3: normalized update (GaLore / HF AdamW eps placement, as cuda/adam.h).
// v == 0 with m != 0 happens only when v's 8-bit code underflowed to 0 (v spans
// about the square of m's range, so within a block it underflows first) and
// this step's gradient is 0; bitsandbytes then steps by m/eps, thousands of
// times the learning rate. That element gets no update instead.
GT_HD float adam8_direction(float m, float v, float eps) { return v > 0.0f ? m / (sqrtf(v) + eps) : 0.0f; }

// CPU reference of one full 8-bit Adam step on n elements: for every block,
// phases 1-3. g[n] gradient, dir[n] out: m/(sqrt(v)+eps) (0 where g is not
// finite), cm/cv[n] codes and am/av[quant8_blocks(n)] absmax, updated in place.
void adam8bit_step_cpu(const float* g, float* dir, uint8_t* cm, uint8_t* cv, float* am, float* av, int64_t n,
                       const float* map_m, const float* map_v, float beta1, float beta2, float eps);

// fp32-state counterpart (tensors under kMin8bitNumel): same contract, m/v[n].
void adam32_step_cpu(const float* g, float* dir, float* m, float* v, int64_t n, float beta1, float beta2, float eps);

}  // namespace gt

#ifdef GALORE_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime.h>
namespace gt {
// ---- CUDA (cuda/galore_adam8bit.cu): the same steps on device arrays ----
constexpr int kAdam8Threads = 256;   // 8 warps per CTA, one warp per absmax block at a time
constexpr int kAdam8MaxCtas = 1024;  // grid cap: the grid, and so the partial sums, are fixed for a given n

// Gradient clipping (and, 8-bit only, statistics) folded into the Adam kernels' one pass over g:
//   every element is used as g * clip_factor(‖g‖², clip_scale, clip_norm) (cuda/adam.h),
//   with ‖g‖² read from the device at tensor_sq (computed beforehand; only needed when
//   clip_norm > 0);
//   8-bit kernels with psq/pnf (device [adam8bit_ctas(n)]): CTA c writes the sum of squares
//   (double) of the finite raw gradients it read to psq[c] and their non-finite count to
//   pnf[c]: clip_gradient's statistics, before clipping, for a fixed-order final sum.
// g itself is not written. The default is no clipping and no statistics.
struct AdamClip {
  float clip_scale = 1.0f;
  double clip_norm = 0.0;
  const double* tensor_sq = nullptr;
  double* psq = nullptr;
  unsigned long long* pnf = nullptr;
};
// CTAs of an 8-bit launch over n elements (<= kAdam8MaxCtas).
int adam8bit_ctas(int64_t n);

// adam8bit_step_cpu on the device: one warp per absmax block (8 elements per
// lane), the block absmax by a warp max (order-free, so deterministic).
// map_m/map_v are device copies of dynamic_map_signed()/dynamic_map_unsigned() [256].
void adam8bit_step_cuda(const float* g, float* dir, uint8_t* cm, uint8_t* cv, float* am, float* av, int64_t n,
                        const float* map_m, const float* map_v, float beta1, float beta2, float eps,
                        cudaStream_t stream, const AdamClip& clip = {});
// adam32_step_cpu on the device.
void adam32_step_cuda(const float* g, float* dir, float* m, float* v, int64_t n, float beta1, float beta2, float eps,
                      cudaStream_t stream, const AdamClip& clip = {});
// w[n] -= step_size * dir[n]; then w -= decay * w (decoupled weight decay), as
// apply_adamw_direction (optim/adamw8bit.cpp). Elements whose g is not finite
// are left alone; g may be null (GaLore: the caller passes the projected-back
// direction and step_size = lr*bias_correction*scale). w fp32 or bf16.
void apply_adamw_direction_cuda(float* w, const float* dir, const float* g, int64_t n, float step_size, float decay,
                                cudaStream_t stream);
void apply_adamw_direction_cuda(__nv_bfloat16* w, const float* dir, const float* g, int64_t n, float step_size,
                                float decay, cudaStream_t stream);

// ---- the kernels behind OptimKernels (src/backend/cuda_optim_kernels.cu) ----
// The steps above with a bf16 direction dir[n] (GaLore: it feeds a bf16 GEMM).
void adam8bit_step_cuda(const float* g, __nv_bfloat16* dir, uint8_t* cm, uint8_t* cv, float* am, float* av, int64_t n,
                        const float* map_m, const float* map_v, float beta1, float beta2, float eps,
                        cudaStream_t stream, const AdamClip& clip = {});
void adam32_step_cuda(const float* g, __nv_bfloat16* dir, float* m, float* v, int64_t n, float beta1, float beta2,
                      float eps, cudaStream_t stream, const AdamClip& clip = {});
// Full-rank AdamW fused: the moment update of adam8bit_step_cuda / adam32_step_cuda, then at once, without a dir buffer,
// w[n] -= step_size * m/(sqrt(v)+eps); w -= decay * w, skipping elements whose
// g is not finite (AdamMoments::step + apply_adamw_direction). TG, TW: float or
// __nv_bfloat16. sr_seed != 0 rounds a bf16 w stochastically (cuda/stochastic_round.h,
// keyed by the element index); fp32 w ignores it.
template <typename TG, typename TW>
void adam8bit_update_cuda(const TG* g, TW* w, uint8_t* cm, uint8_t* cv, float* am, float* av, int64_t n,
                          const float* map_m, const float* map_v, float beta1, float beta2, float eps, float step_size,
                          float decay, uint64_t sr_seed, cudaStream_t stream, const AdamClip& clip = {});
template <typename TG, typename TW>
void adam32_update_cuda(const TG* g, TW* w, float* m, float* v, int64_t n, float beta1, float beta2, float eps,
                        float step_size, float decay, uint64_t sr_seed, cudaStream_t stream,
                        const AdamClip& clip = {});
// w[n] -= step_size * d[n]; w -= decay * w, on every element (GaLore's update with
// the back-projected direction). TW float or __nv_bfloat16; sr_seed as above.
template <typename TW>
void apply_update_cuda(TW* w, const float* d, int64_t n, float step_size, float decay, uint64_t sr_seed,
                       cudaStream_t stream);
// quantize_blockwise_cpu / dequantize_blockwise_cpu on the device (map: device [256]).
// Quantize: one 256-thread block per absmax block (block max, then codes).
void quantize_blockwise_cuda(const float* map, const float* x, int64_t n, uint8_t* codes, float* absmax,
                             cudaStream_t stream);
void dequantize_blockwise_cuda(const float* map, const uint8_t* codes, const float* absmax, int64_t n, float* x,
                               cudaStream_t stream);
}  // namespace gt
#endif  // GALORE_WITH_CUDA
