// The per-weight math of the Adam-family optimizers (adamw, adamw8bit,
// galore_adamw, galore_adamw8bit) as ops on tensors that live on one backend's
// device. BackendAdamW (optim/backend_adamw.h) drives them, one weight at a
// time, in the order of the CPU reference optimizers (optim/basic.cpp,
// optim/adamw8bit.cpp, optim/galore.cpp):
//
//   GaLore target W [m, n], gradient G [m, n]:
//     refresh_projector (every update_proj_gap steps, from micro-batch 0's G)
//     project            R [rows, cols] (=, or += over micro-batches)
//       or project_factors  the same R from G's factors dY, X (per-layer updates between refreshes)
//     clip_and_stats     R (global clip scale, per-tensor clip, ‖R‖², non-finite count)
//     adam_step          R -> dir [rows, cols]
//     (clip_adam_step does the last two, in one pass over R on the GPU with 8-bit states)
//     project_back       dir -> full [m, n]
//     apply_update       W = (W - step_size*full) * (1 - decay)
//     (project_back_update does the last two in one GEMM when no stochastic rounding is asked for)
//   other parameters: accumulate (n_micro > 1), clip_and_stats, adam_update (together: clip_adam_update).
//
// Implementations: CPU (optim/optim_kernels_cpu.cpp: fp32, calls the very
// functions the reference optimizers call, so results are bit-identical) and
// CUDA (src/backend/cuda_optim_kernels.cu: the kernels of
// cuda/galore_adam8bit.cu, cuBLASLt and cuSOLVER; compute dtype bf16). No op
// synchronizes with the host except take_stats(). No op allocates: the CUDA
// implementation sizes its workspace at construction from the largest shapes.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "optim/projector.h"

namespace gt {

class Backend;
struct GaloreConfig;

// One tensor's Adam moments: blockwise 8-bit (codes + absmax, as AdamMoments)
// or fp32.
struct AdamState {
  int64_t n = 0;
  bool q8 = false;
  Tensor m, v;                // q8: U8 codes [n]; else F32 [n]
  Tensor absmax_m, absmax_v;  // q8: F32 [quant8_blocks(n)]; else empty
};

struct GradStats {
  double sq_norm = 0.0;   // sum of squares of the finite elements, before clipping
  int64_t nonfinite = 0;  // non-finite elements
};

// The largest shapes the optimizer will hand to the kernels (sizes workspaces).
struct OptimShapes {
  int64_t max_numel = 0;          // largest parameter
  std::vector<ProjGeom> galore;   // every GaLore target's geometry
  // Per-layer updates: the trainer's one gradient buffer ([max_numel], compute
  // dtype) is lent by the kernels from their transient workspace (see
  // lent_grad_buffer). The largest GaLore gradient sits below the regions a
  // GaLore step uses; larger full-rank gradients overlay them.
  bool lend_grad_buffer = false;
  int64_t max_galore_numel = 0;   // largest GaLore target
  // The caller's per-step GaLore buffers (projected gradient, direction, ...),
  // used only after the step's refresh: kernels that can (CUDA) hold them over
  // the refresh workspace (see step_scratch).
  size_t step_scratch_bytes = 0;
};

class OptimKernels {
 public:
  virtual ~OptimKernels() = default;
  // dtype of projectors and of the GaLore update direction: the backend's compute dtype.
  virtual DType proj_dtype() const = 0;
  // Device bytes of the implementation's own workspace (part of the memory plan).
  virtual size_t workspace_bytes() const = 0;
  // The gradient buffer lent to the trainer when shapes.lend_grad_buffer
  // ([max_numel] in proj_dtype, inside workspace_bytes). Empty if the
  // implementation does not lend (CPU): the trainer then allocates its own.
  // Valid only as on_grad's input: a step overwrites the part of it above
  // the GaLore target's own gradient.
  virtual Tensor lent_grad_buffer() { return {}; }
  // shapes.step_scratch_bytes of device memory overlaying the refresh
  // workspace: valid from the end of a refresh_projector / reproject_moments
  // to the next one. Null if the implementation does not hold it (CPU).
  virtual char* step_scratch() { return nullptr; }

  // dst = src (same dtype and numel).
  virtual void copy(const Tensor& dst, const Tensor& src) = 0;
  // R [rows, cols] F32 = projection of g [m, n] (compute dtype or F32) with A [m, r] / B [r, n]
  // (proj dtype; the unused one is empty); R += projection when accumulate.
  virtual void project(const ProjGeom& geo, const Tensor& A, const Tensor& B, const Tensor& g, const Tensor& R,
                       bool accumulate) = 0;
  // R [rows, cols] F32 (=, or += when accumulate) = the same projection of g = dyᵀ·x without
  // forming g (galore_project_factors, optim/projector.h): dy [N, m] and x [N, n] in the compute
  // dtype (a linear layer's output gradient and input); tmp [chunk, r] (proj dtype) is scratch,
  // and the N tokens are taken chunk rows at a time. geo.side must not be Both.
  virtual void project_factors(const ProjGeom& geo, const Tensor& A, const Tensor& B, const Tensor& dy,
                               const Tensor& x, const Tensor& tmp, const Tensor& R, bool accumulate) = 0;
  // out [m, n] F32 = back-projection of dir [rows, cols] (proj dtype), without GaLore's scale.
  virtual void project_back(const ProjGeom& geo, const Tensor& A, const Tensor& B, const Tensor& dir,
                            const Tensor& out) = 0;
  // acc [n] F32 = g (first) or acc += g; g [n] compute dtype or F32.
  virtual void accumulate(const Tensor& acc, const Tensor& g, bool first) = 0;
  // The final gradient g [n] (F32 or compute dtype), in place, as clip_gradient (optim/basic.h):
  // adds the sum of squares of its finite elements (before clipping) and the number of its
  // non-finite elements to the running GradStats, then multiplies g by clip_scale, times
  // clip_norm/‖g‖ when clip_norm > 0 and ‖g‖ > clip_norm. On the GPU ‖g‖ stays on the device.
  virtual void clip_and_stats(const Tensor& g, double clip_scale, double clip_norm) = 0;
  // The running GradStats since the last call, then zeroes them. The one synchronizing op.
  virtual GradStats take_stats() = 0;

  // Zero the moments (8-bit: the map's code of 0, absmax 0; as AdamMoments::reset).
  virtual void adam_reset(const AdamState& st) = 0;
  // Moments update from g [n] (F32) into dir [n] (proj dtype): dir = m/(sqrt(v)+eps), 0 and moments
  // zeroed where g is not finite (AdamMoments::step).
  virtual void adam_step(const AdamState& st, const Tensor& g, const Tensor& dir, float beta1, float beta2,
                         float eps) = 0;
  // Full-rank AdamW for one weight w [n] (compute dtype) with g [n] (F32 or compute dtype):
  // moments update, then w -= step_size * m/(sqrt(v)+eps); w -= decay * w; elements whose g is
  // not finite are left alone (AdamMoments::step + apply_adamw_direction). `sr_seed` != 0 rounds
  // a bf16 w stochastically (no effect on fp32).
  virtual void adam_update(const AdamState& st, const Tensor& g, const Tensor& w, float beta1, float beta2, float eps,
                           float step_size, float decay, uint64_t sr_seed) = 0;
  // clip_and_stats(g, clip_scale, clip_norm), then adam_step / adam_update with the clipped g.
  // g's contents afterwards are unspecified (the CUDA kernels read it once, with 8-bit states,
  // and multiply by the clip factor in registers). These defaults run the two ops.
  virtual void clip_adam_step(const AdamState& st, const Tensor& g, const Tensor& dir, double clip_scale,
                              double clip_norm, float beta1, float beta2, float eps) {
    clip_and_stats(g, clip_scale, clip_norm);
    adam_step(st, g, dir, beta1, beta2, eps);
  }
  virtual void clip_adam_update(const AdamState& st, const Tensor& g, const Tensor& w, double clip_scale,
                                double clip_norm, float beta1, float beta2, float eps, float step_size, float decay,
                                uint64_t sr_seed) {
    clip_and_stats(g, clip_scale, clip_norm);
    adam_update(st, g, w, beta1, beta2, eps, step_size, decay, sr_seed);
  }
  // w [n] (compute dtype) -= step_size * d [n] (F32); then w -= decay * w (GaLore's update with the
  // back-projected direction). `sr_seed` as adam_update.
  virtual void apply_update(const Tensor& w, const Tensor& d, float step_size, float decay, uint64_t sr_seed) = 0;
  // project_back + apply_update (round to nearest) without the fp32 [m, n] buffer: w [m, n] (compute
  // dtype) = (w - step_size * back-projection of dir) * (1 - decay). On the GPU one GEMM with the
  // update in its epilogue (alpha = -step_size*(1-decay), beta = 1-decay, w read and written in place).
  virtual void project_back_update(const ProjGeom& geo, const Tensor& A, const Tensor& B, const Tensor& dir,
                                   const Tensor& w, float step_size, float decay) = 0;

  // New projector of geometry geo from g [m, n] (compute dtype) into A [m, r] / B [r, n] (proj
  // dtype; per side, the unused one empty), as compute_projector (optim/projector.h): A_old/B_old
  // hold the previous projector, or are empty on the first refresh.
  virtual void refresh_projector(const GaloreConfig& cfg, const ProjGeom& geo, const Tensor& g, uint64_t seed,
                                 const Tensor& A_old, const Tensor& B_old, const Tensor& A, const Tensor& B) = 0;
  // Rotates the moments st [rows, cols] from the old projector's basis into the new one's
  // (moments_on_refresh = reproject), as reproject_moments (optim/projector.h).
  virtual void reproject_moments(const ProjGeom& geo, const Tensor& A_old, const Tensor& B_old, const Tensor& A,
                                 const Tensor& B, const AdamState& st) = 0;
};

// The kernels for `backend`'s device, with workspaces sized for `shapes` and `cfg`'s projector.
std::unique_ptr<OptimKernels> make_optim_kernels(Backend& backend, const OptimShapes& shapes,
                                                 const GaloreConfig& cfg);
// Their workspace bytes without building them (the memory plan).
size_t optim_kernels_workspace_bytes(Device device, const OptimShapes& shapes, const GaloreConfig& cfg);

#ifdef GALORE_WITH_CUDA
// CUDA implementation (src/backend/cuda_optim_kernels.cu); backend must be the CUDA backend.
std::unique_ptr<OptimKernels> make_cuda_optim_kernels(Backend& backend, const OptimShapes& shapes,
                                                      const GaloreConfig& cfg);
size_t cuda_optim_kernels_workspace_bytes(const OptimShapes& shapes, const GaloreConfig& cfg);
#endif

}  // namespace gt
