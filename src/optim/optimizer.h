// The optimizer layer. The trainer hands it one weight's gradient at a time
// (per-weight step: gradient -> optional communication -> update), so it works
// both with per-layer updates inside backward and with a full-gradient step.
#pragma once
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace gt {

class Backend;
struct OptimizerConfig;
class SafetensorsWriter;
class SafetensorsFile;

enum class ParamKind { Embedding, Norm, Linear, LmHead };

struct ParamInfo {
  std::string name;   // Hugging Face name, e.g. model.layers.0.self_attn.q_proj.weight
  ParamKind kind;
  int64_t rows;       // out_features (or numel for 1-D)
  int64_t cols;       // in_features (1 for 1-D)
  bool galore;        // a GaLore target (Linear and matched by optimizer.galore.targets)
  // Alignment padding: the last pad_rows rows / pad_cols columns of the
  // in-memory [rows, cols] are zeros that stay zero (their gradients and
  // optimizer states are zero too). Files and HF hold the unpadded shape.
  int64_t pad_rows = 0, pad_cols = 0;
  int64_t numel() const { return rows * cols; }
  int64_t hf_rows() const { return rows - pad_rows; }
  int64_t hf_cols() const { return cols - pad_cols; }
  int64_t hf_numel() const { return hf_rows() * hf_cols(); }
  // The Hugging Face shape: [rows] for 1-D, else [rows, cols], unpadded.
  std::vector<int64_t> hf_shape() const {
    return cols == 1 ? std::vector<int64_t>{hf_rows()} : std::vector<int64_t>{hf_rows(), hf_cols()};
  }
};

// Copies between the unpadded (HF) row-major layout and the padded in-memory
// one, for elements of elem_bytes bytes (fp32 values or raw bf16 bits alike).
// The padding is written as zero bytes (0.0 in fp32 and bf16).
inline void pad_param(const ParamInfo& p, size_t elem_bytes, const void* hf, void* padded) {
  const size_t hf_row = size_t(p.hf_cols()) * elem_bytes, row = size_t(p.cols) * elem_bytes;
  std::memset(padded, 0, size_t(p.numel()) * elem_bytes);
  for (int64_t r = 0; r < p.hf_rows(); ++r)
    std::memcpy(static_cast<char*>(padded) + size_t(r) * row, static_cast<const char*>(hf) + size_t(r) * hf_row,
                hf_row);
}
inline void unpad_param(const ParamInfo& p, size_t elem_bytes, const void* padded, void* hf) {
  const size_t hf_row = size_t(p.hf_cols()) * elem_bytes, row = size_t(p.cols) * elem_bytes;
  for (int64_t r = 0; r < p.hf_rows(); ++r)
    std::memcpy(static_cast<char*>(hf) + size_t(r) * hf_row, static_cast<const char*>(padded) + size_t(r) * row,
                hf_row);
}
// Σ|x| over the padding of a padded fp32 [rows, cols] (0 exactly when every
// padding element is 0; NaN if one is NaN): the check that padding stays zero.
inline double padding_abs_sum(const ParamInfo& p, const float* padded) {
  double sum = 0;
  for (int64_t r = 0; r < p.rows; ++r)
    for (int64_t c = 0; c < p.cols; ++c)
      if (r >= p.hf_rows() || c >= p.hf_cols()) sum += std::fabs(double(padded[r * p.cols + c]));
  return sum;
}

struct StepInfo {
  int64_t step;        // optimizer step about to be taken, counted from 0
  double lr;           // learning rate for this step (schedule applied)
  double clip_scale;   // multiply the (accumulated) gradient by this before use (1 = no clip)
  double clip_norm;    // per_tensor clip mode: clip each tensor's gradient to this norm (0 = off)
  int micro;           // micro-batch index within the step
  int n_micro;         // micro-batches per step
  bool last_micro() const { return micro == n_micro - 1; }
};

// The parts of a per-weight step, for profiling (galore-bench --profile):
// projector refresh, projection of the gradient (R = PᵀG or from the factors),
// clipping + Adam, and the weight update (back-projection).
enum class OptimPhase { Refresh, Project, Adam, Update };
using OptimPhaseMarker = std::function<void(OptimPhase)>;

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // Called, when set, as each part of a per-weight step begins (the trainer
  // turns the calls into profile marks). BackendAdamW reports its parts; the
  // reference optimizers report none.
  void set_phase_marker(OptimPhaseMarker m) { phase_marker_ = std::move(m); }
  // Consume micro-batch `s.micro`'s gradient of parameter `index` (already
  // scaled by 1/n_micro). Accumulates internally when n_micro > 1 and updates
  // `weight` on the last micro-batch. `grad` is scratch: it may be overwritten.
  // Empty when the gradient came as factors (on_grad_factors) this micro-batch.
  virtual void on_grad(int index, const Tensor& weight, const Tensor& grad, const StepInfo& s) = 0;
  // Per-layer updates of a linear weight W [rows, cols], whose gradient is G = dyᵀ·x: true
  // when the optimizer needs only a projection of G for micro-batch s (a GaLore target between
  // refreshes, optimizer.galore.factored_projection). The trainer then hands it dy [N, rows]
  // and x [N, cols] through on_grad_factors instead of forming G, and later calls on_grad with
  // an empty grad, where the update happens as usual.
  virtual bool takes_grad_factors(int /*index*/, const StepInfo& /*s*/) const { return false; }
  virtual void on_grad_factors(int index, const Tensor& dy, const Tensor& x, const StepInfo& s);
  // Sum of squares of the gradients used by updates since the last call
  // (before clipping; for GaLore targets the projected gradient). Resets it.
  virtual double take_grad_sq_norm() = 0;
  // Number of non-finite gradient elements seen since the last call. Resets it.
  virtual int64_t take_nonfinite_count() { return 0; }  // BackendAdamW: counted by take_grad_sq_norm
  // Checkpoint state: every tensor and counter needed for an exact resume.
  virtual void save_state(SafetensorsWriter& out) const = 0;
  virtual void load_state(const SafetensorsFile& in) = 0;
  // Bytes of optimizer state actually held (for the memory table).
  virtual size_t state_bytes() const = 0;
  // Per-layer updates: device memory the optimizer lends for the trainer's one
  // gradient buffer ([largest numel] in the compute dtype), overlaying scratch
  // it uses only inside on_grad. Empty: the trainer allocates its own.
  virtual Tensor lent_grad_buffer() { return {}; }
  virtual std::string name() const = 0;

 protected:
  void phase(OptimPhase p) const {
    if (phase_marker_) phase_marker_(p);
  }

 private:
  OptimPhaseMarker phase_marker_;
};

// What an optimizer.name means (validated by the config schema).
inline bool optimizer_is_galore(const std::string& name) {
  return name == "galore_adamw" || name == "galore_adamw8bit";
}
inline bool optimizer_is_8bit(const std::string& name) { return name == "adamw8bit" || name == "galore_adamw8bit"; }

// The CPU reference optimizer named by cfg.name (host fp32 weights; the
// oracle the tests compare the trained optimizer against).
std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params,
                                          Backend& backend);
// The optimizer the trainer runs on `backend`: the Adam family as BackendAdamW
// (state on the device; bit-identical to the reference on the CPU), sgd as the
// reference (CPU only). n_micro: micro-batches per step as the optimizer sees
// them (1 when the trainer sums full gradients itself).
std::unique_ptr<Optimizer> make_train_optimizer(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params,
                                                Backend& backend, int n_micro);

// Learning rate at optimizer step `step` (0-based) of `max_steps`.
struct ScheduleConfig;
double lr_at(const ScheduleConfig& sched, double base_lr, int64_t step, int64_t max_steps);

}  // namespace gt
