// The Adam-family optimizers the trainer runs, on any backend: adamw,
// adamw8bit, galore_adamw, galore_adamw8bit. State lives on the backend's
// device in one arena; the math goes through OptimKernels (CPU: the reference
// functions; CUDA: fused kernels, cuBLASLt, cuSOLVER). On the CPU it is bit for
// bit the reference optimizers of optim/basic.h, optim/adamw8bit.h and
// optim/galore.h, and it writes and reads the same checkpoint tensors, so a
// run can move between CPU and GPU.
//
// Per weight (per-layer updates call this inside backward): gradient ->
// [accumulate over micro-batches] -> clip -> Adam -> update. No host
// synchronization per weight; take_grad_sq_norm() syncs once per step.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/arena.h"
#include "optim/memory.h"
#include "optim/optim_kernels.h"
#include "optim/optimizer.h"

namespace gt {

// Every buffer BackendAdamW allocates (its one arena), in allocation order.
// n_micro: micro-batches per optimizer step as the optimizer sees them (> 1
// allocates the accumulators); proj_dtype: the device's projector dtype.
// step_scratch_in_kernels: the per-step R/direction buffers overlay the
// kernels' refresh workspace instead (step_scratch_in_kernels(device)).
std::vector<BufferSpec> backend_adamw_specs(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params,
                                            int n_micro, DType proj_dtype, bool step_scratch_in_kernels = false);
// Its bytes by kind (the memory plan), kernels' workspace included.
OptimStateBytes backend_adamw_state_bytes(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params,
                                          int n_micro, Device device);
bool is_adam_family(const std::string& optimizer_name);
// Whether BackendAdamW lends the trainer its per-layer gradient buffer (from
// the kernels' transient workspace, counted in the optimizer's workspace):
// per-layer updates on CUDA. The memory plan then has no gradient arena.
inline bool backend_adamw_lends_grad_buffer(const OptimizerConfig& cfg, Device device) {
  return cfg.per_layer_updates && device == Device::CUDA;
}
// Whether the kernels hold BackendAdamW's per-step GaLore buffers over their
// refresh workspace (OptimKernels::step_scratch): CUDA.
inline bool step_scratch_in_kernels(Device device) { return device == Device::CUDA; }

class BackendAdamW final : public Optimizer {
 public:
  BackendAdamW(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params, Backend& backend, int n_micro);
  ~BackendAdamW() override;

  void on_grad(int index, const Tensor& weight, const Tensor& grad, const StepInfo& s) override;
  bool takes_grad_factors(int index, const StepInfo& s) const override;
  void on_grad_factors(int index, const Tensor& dy, const Tensor& x, const StepInfo& s) override;
  double take_grad_sq_norm() override;
  int64_t take_nonfinite_count() override;
  void save_state(SafetensorsWriter& out) const override;
  void load_state(const SafetensorsFile& in) override;
  size_t state_bytes() const override;
  Tensor lent_grad_buffer() override { return k_->lent_grad_buffer(); }
  std::string name() const override { return cfg_.name; }

  // Introspection (tests): fp32 host copies of parameter index's projector and moments.
  const ProjGeom* geometry(int index) const;
  std::vector<float> projector_A(int index) const;  // [m, r] or empty
  std::vector<float> projector_B(int index) const;  // [r, n] or empty
  void moments(int index, std::vector<float>* m, std::vector<float>* v) const;
  int64_t refreshes(int index) const { return slots_[size_t(index)].refreshes; }
  int64_t factored_projections() const { return factored_projections_; }  // on_grad_factors calls so far

 private:
  struct Slot {
    bool galore = false;
    ProjGeom geo;
    AdamState st;
    Tensor A, B;   // [m, r] / [r, n] (proj dtype); empty when unused
    Tensor acc;    // F32 [rows, cols] (targets) or [numel]; empty when n_micro == 1
    int64_t t = 0;          // Adam bias-correction step (restarts on a reset refresh)
    int64_t steps = 0;      // updates taken (drives the refresh schedule)
    int64_t refreshes = 0;  // projectors computed so far (with the name, seeds the sketch)
    uint64_t seed_base = 0; // hash of the parameter's name
    int factored_micro = -1;  // micro-batch whose projection came from on_grad_factors (-1: none pending)
  };
  Tensor projected_grad(const Slot& S, const StepInfo& s) const;
  // Micro-batches after the first add their projection to the accumulator.
  static bool adds_to_projected_grad(const StepInfo& s) { return s.n_micro > 1 && s.micro > 0; }
  void refresh(Slot& S, const Tensor& g);
  uint64_t rounding_seed(const Slot& S) const;
  std::vector<float> download(const Tensor& t) const;

  OptimizerConfig cfg_;
  std::vector<ParamInfo> params_;
  Backend& backend_;
  int n_micro_;
  std::unique_ptr<OptimKernels> k_;
  Arena arena_;
  std::vector<Slot> slots_;
  Tensor R_;            // F32 [max projected numel]: projected gradient when n_micro == 1
  Tensor dir_;          // proj dtype [max projected numel]: Adam direction of a target
  Tensor full_;         // F32 [max target numel]: back-projected direction (stochastic rounding only)
  Tensor factor_tmp_;   // proj dtype [kFactorChunkRows · max r]: on_grad_factors' dy·A / x·Bᵀ (empty: off)
  Tensor A_old_, B_old_;  // proj dtype: the previous projector during a refresh
  int64_t factored_projections_ = 0;
  int64_t pending_nonfinite_ = 0;  // read with the norm by take_grad_sq_norm, handed out by take_nonfinite_count
};

}  // namespace gt
