// GaLore AdamW (official galore_torch/adamw.py semantics) with fp32 or
// blockwise 8-bit Adam states: galore_adamw / galore_adamw8bit.
//
// GaLore targets (ParamInfo.galore) run Adam on the projected gradient R
// (shape ProjGeom::rows() x cols()); every other parameter runs plain AdamW
// (8-bit states in the 8-bit variant for tensors of >= 4096 elements).
#pragma once
#include <string>
#include <vector>

#include "optim/adamw8bit.h"
#include "optim/memory.h"
#include "optim/projector.h"

namespace gt {

class GaloreAdamW final : public FullRankBase {
 public:
  GaloreAdamW(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params, bool eight_bit);

  void on_grad(int index, const Tensor& weight, const Tensor& grad, const StepInfo& s) override;
  void save_state(SafetensorsWriter& out) const override;
  void load_state(const SafetensorsFile& in) override;
  size_t state_bytes() const override { return state_bytes_detail().total(); }
  OptimStateBytes state_bytes_detail() const;
  std::string name() const override { return eight_bit_ ? "galore_adamw8bit" : "galore_adamw"; }

  // Introspection (tests, tools). geometry() is null for non-targets.
  const ProjGeom* geometry(int index) const;
  const std::vector<float>& projector_A(int index) const { return slots_[size_t(index)].A; }  // [m, r] or empty
  const std::vector<float>& projector_B(int index) const { return slots_[size_t(index)].B; }  // [r, n] or empty
  int64_t refreshes(int index) const { return slots_[size_t(index)].refreshes; }
  // fp32 copies of parameter index's moments, m/v [numel of the state].
  void moments(int index, std::vector<float>* m, std::vector<float>* v) const;

 protected:
  void update(int index, float* w, const float* g, const StepInfo& s) override;  // non-targets

 private:
  struct Slot {  // one GaLore target
    bool on = false;
    ProjGeom geo;
    std::vector<float> A;     // [m, r] (left, full)
    std::vector<float> B;     // [r, n] (right, full)
    std::vector<float> acc;   // [rows, cols] projected gradient summed over micro-batches (n_micro > 1)
    int64_t refreshes = 0;    // projectors computed so far (with the name, seeds the sketch)
    uint64_t seed_base = 0;   // hash of the parameter's name
  };
  void refresh(size_t k, const float* g);
  void galore_step(size_t k, float* w, float* R, const StepInfo& s);

  bool eight_bit_;
  std::vector<Slot> slots_;           // per param
  std::vector<AdamMoments> moments_;  // per param: [numel] (non-targets) or [rows*cols] (targets)
  std::vector<int64_t> t_;            // per param: Adam bias-correction step (restarts on a reset refresh)
  std::vector<int64_t> steps_;        // per param: updates taken (drives the refresh schedule)
  std::vector<float> proj_, dir_, full_;  // scratch: [rows*cols], [state numel], [m*n]
};

// Sketch seed for refresh number `refresh` of a parameter whose name hashes to `base`.
uint64_t galore_sketch_seed(uint64_t base, int64_t refresh);
uint64_t galore_name_hash(const std::string& name);

}  // namespace gt
