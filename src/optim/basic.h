// Full-rank fp32 optimizers: SGD (with optional momentum) and AdamW.
#pragma once
#include <vector>

#include "config/config.h"
#include "optim/optimizer.h"

namespace gt {

// Shared bookkeeping for optimizers that accumulate full-size gradients over
// micro-batches (per-layer mode) and clip them.
class FullRankBase : public Optimizer {
 public:
  FullRankBase(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params);
  void on_grad(int index, const Tensor& weight, const Tensor& grad, const StepInfo& s) override;
  double take_grad_sq_norm() override;
  int64_t take_nonfinite_count() override;

 protected:
  // Apply the update for parameter `index` with the final (accumulated,
  // clipped) gradient g[numel]. w is fp32 on the CPU.
  virtual void update(int index, float* w, const float* g, const StepInfo& s) = 0;
  // Bytes of the per-layer accumulators allocated so far (part of state_bytes()).
  size_t accumulator_bytes() const {
    size_t b = 0;
    for (auto& a : accum_) b += a.size() * sizeof(float);
    return b;
  }
  OptimizerConfig cfg_;
  std::vector<ParamInfo> params_;
  std::vector<std::vector<float>> accum_;  // per param, allocated only when n_micro > 1
  double sq_norm_ = 0.0;
  int64_t nonfinite_ = 0;
};

class Sgd final : public FullRankBase {
 public:
  Sgd(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params);
  void save_state(SafetensorsWriter& out) const override;
  void load_state(const SafetensorsFile& in) override;
  size_t state_bytes() const override;
  std::string name() const override { return "sgd"; }

 protected:
  void update(int index, float* w, const float* g, const StepInfo& s) override;
  std::vector<std::vector<float>> momentum_;
};

class AdamW final : public FullRankBase {
 public:
  AdamW(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params);
  void save_state(SafetensorsWriter& out) const override;
  void load_state(const SafetensorsFile& in) override;
  size_t state_bytes() const override;
  std::string name() const override { return "adamw"; }

 protected:
  void update(int index, float* w, const float* g, const StepInfo& s) override;
  std::vector<std::vector<float>> m_, v_;
  std::vector<int64_t> t_;  // per-param step counter (bias correction)
};

// Clips g[n] in place according to s (global scale, then per-tensor norm);
// returns the pre-clip sum of squares.
double clip_gradient(float* g, int64_t n, const StepInfo& s);

}  // namespace gt
