// AdamW with blockwise 8-bit states (bitsandbytes' AdamW8bit layout), and the
// moment storage shared with GaLore (which runs the same Adam on the
// projected gradient).
#pragma once
#include <string>
#include <vector>

#include "optim/basic.h"
#include "optim/memory.h"

namespace gt {

// Adam first/second moments of one tensor of n elements. fp32 states, or
// blockwise 8-bit ones (signed dynamic map for m, unsigned for v, one fp32
// absmax per 256 elements) when eight_bit and n >= kMin8bitNumel.
class AdamMoments {
 public:
  AdamMoments() = default;
  AdamMoments(int64_t n, bool eight_bit);

  int64_t size() const { return n_; }
  bool quantized() const { return q8_; }
  // Moment update with g[n]; writes dir[n] = m / (sqrt(v) + eps) (0 where g is
  // not finite; that element's moments are zeroed).
  void step(const float* g, float* dir, float beta1, float beta2, float eps);
  // Zero both moments.
  void reset();
  // fp32 copies m[n], v[n] (dequantized), and the inverse (requantizes).
  void get(float* m, float* v) const;
  void set(const float* m, const float* v);

  // Bytes held, by kind (codes, absmax, fp32_states filled).
  void add_bytes(OptimStateBytes& b) const;
  // Tensors adam.{m,v}.<name> (fp32) or adam8.{m,v}.{codes,absmax}.<name>.
  void save(SafetensorsWriter& out, const std::string& name) const;
  void load(const SafetensorsFile& in, const std::string& name);

 private:
  int64_t n_ = 0;
  bool q8_ = false;
  std::vector<float> m_, v_;      // [n] fp32 states (when !q8_)
  std::vector<uint8_t> cm_, cv_;  // [n] codes (when q8_)
  std::vector<float> am_, av_;    // [quant8_blocks(n)] absmax (when q8_)
};

// AdamW with 8-bit states for tensors of at least kMin8bitNumel elements
// (fp32 below). Same update as AdamW: W -= lr*sqrt(1-b2^t)/(1-b1^t) * m/(sqrt(v)+eps),
// then W -= lr*wd*W; a non-finite gradient element leaves its weight alone.
class AdamW8bit final : public FullRankBase {
 public:
  AdamW8bit(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params);
  void save_state(SafetensorsWriter& out) const override;
  void load_state(const SafetensorsFile& in) override;
  size_t state_bytes() const override { return state_bytes_detail().total(); }
  OptimStateBytes state_bytes_detail() const;
  std::string name() const override { return "adamw8bit"; }

 protected:
  void update(int index, float* w, const float* g, const StepInfo& s) override;

 private:
  std::vector<AdamMoments> moments_;  // per param, [numel]
  std::vector<int64_t> t_;            // per-param step counter (bias correction)
  std::vector<float> dir_;            // scratch [numel] of the current param
};

// Applies one AdamW step to w[n] given the direction dir[n]: w -= step_size*dir,
// then w -= decay*w; elements whose gradient g is not finite are left alone.
void apply_adamw_direction(float* w, const float* dir, const float* g, int64_t n, float step_size, float decay);
// lr*sqrt(1-b2^t)/(1-b1^t) for step t (counted from 1).
double adam_step_size(double lr, double beta1, double beta2, int64_t t);

}  // namespace gt
