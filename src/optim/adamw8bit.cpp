#include "optim/adamw8bit.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/safetensors.h"
#include "cuda/adam8bit.h"

namespace gt {

// ---------------- AdamMoments ----------------
AdamMoments::AdamMoments(int64_t n, bool eight_bit) : n_(n), q8_(eight_bit && n >= kMin8bitNumel) {
  if (q8_) {
    cm_.resize(static_cast<size_t>(n));
    cv_.resize(static_cast<size_t>(n));
    am_.resize(static_cast<size_t>(quant8_blocks(n)));
    av_.resize(static_cast<size_t>(quant8_blocks(n)));
  } else {
    m_.resize(static_cast<size_t>(n));
    v_.resize(static_cast<size_t>(n));
  }
  reset();
}

void AdamMoments::reset() {
  if (q8_) {
    // The code of 0 in each map (absmax 0 already dequantizes to 0; this keeps
    // the codes canonical so checkpoints of fresh states compare equal).
    std::fill(cm_.begin(), cm_.end(), quant8_nearest(dynamic_map_signed(), 0.0f));
    std::fill(cv_.begin(), cv_.end(), quant8_nearest(dynamic_map_unsigned(), 0.0f));
    std::fill(am_.begin(), am_.end(), 0.0f);
    std::fill(av_.begin(), av_.end(), 0.0f);
  } else {
    std::fill(m_.begin(), m_.end(), 0.0f);
    std::fill(v_.begin(), v_.end(), 0.0f);
  }
}

void AdamMoments::step(const float* g, float* dir, float beta1, float beta2, float eps) {
  if (q8_)
    adam8bit_step_cpu(g, dir, cm_.data(), cv_.data(), am_.data(), av_.data(), n_, dynamic_map_signed(),
                      dynamic_map_unsigned(), beta1, beta2, eps);
  else
    adam32_step_cpu(g, dir, m_.data(), v_.data(), n_, beta1, beta2, eps);
}

void AdamMoments::get(float* m, float* v) const {
  if (q8_) {
    dequantize_blockwise_cpu(dynamic_map_signed(), cm_.data(), am_.data(), n_, m);
    dequantize_blockwise_cpu(dynamic_map_unsigned(), cv_.data(), av_.data(), n_, v);
  } else {
    std::copy(m_.begin(), m_.end(), m);
    std::copy(v_.begin(), v_.end(), v);
  }
}

void AdamMoments::set(const float* m, const float* v) {
  if (q8_) {
    quantize_blockwise_cpu(dynamic_map_signed(), m, n_, cm_.data(), am_.data());
    quantize_blockwise_cpu(dynamic_map_unsigned(), v, n_, cv_.data(), av_.data());
  } else {
    std::copy(m, m + n_, m_.begin());
    std::copy(v, v + n_, v_.begin());
  }
}

void AdamMoments::add_bytes(OptimStateBytes& b) const {
  b.codes += cm_.size() + cv_.size();
  b.absmax += (am_.size() + av_.size()) * sizeof(float);
  b.fp32_states += (m_.size() + v_.size()) * sizeof(float);
}

void AdamMoments::save(SafetensorsWriter& out, const std::string& name) const {
  if (q8_) {
    out.add("adam8.m.codes." + name, StDType::U8, {n_}, cm_.data(), cm_.size());
    out.add("adam8.v.codes." + name, StDType::U8, {n_}, cv_.data(), cv_.size());
    out.add_f32("adam8.m.absmax." + name, {int64_t(am_.size())}, am_.data());
    out.add_f32("adam8.v.absmax." + name, {int64_t(av_.size())}, av_.data());
  } else {
    out.add_f32("adam.m." + name, {n_}, m_.data());
    out.add_f32("adam.v." + name, {n_}, v_.data());
  }
}

void AdamMoments::load(const SafetensorsFile& in, const std::string& name) {
  if (q8_) {
    if (!in.has("adam8.m.codes." + name))
      fail("{}: no 8-bit optimizer state for {} (checkpoint written by a different optimizer?)", in.path(), name);
    read_exact(in, "adam8.m.codes." + name, StDType::U8, cm_);
    read_exact(in, "adam8.v.codes." + name, StDType::U8, cv_);
    read_exact(in, "adam8.m.absmax." + name, StDType::F32, am_);
    read_exact(in, "adam8.v.absmax." + name, StDType::F32, av_);
  } else {
    if (!in.has("adam.m." + name))
      fail("{}: no fp32 optimizer state for {} (checkpoint written by a different optimizer?)", in.path(), name);
    read_exact(in, "adam.m." + name, StDType::F32, m_);
    read_exact(in, "adam.v." + name, StDType::F32, v_);
  }
}

// ---------------- helpers ----------------
void apply_adamw_direction(float* w, const float* dir, const float* g, int64_t n, float step_size, float decay) {
  for (int64_t i = 0; i < n; ++i) {
    if (!finite_f32(g[i])) continue;
    w[i] -= step_size * dir[i];
    w[i] -= decay * w[i];  // decoupled weight decay after the update (as GaLore's AdamW)
  }
}

double adam_step_size(double lr, double beta1, double beta2, int64_t t) {
  const double bc1 = 1.0 - std::pow(beta1, double(t)), bc2 = 1.0 - std::pow(beta2, double(t));
  return lr * std::sqrt(bc2) / bc1;
}

// ---------------- AdamW8bit ----------------
AdamW8bit::AdamW8bit(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params)
    : FullRankBase(cfg, params), t_(params.size(), 0) {
  for (auto& p : params) moments_.emplace_back(p.numel(), true);
}

void AdamW8bit::update(int index, float* w, const float* g, const StepInfo& s) {
  const size_t k = size_t(index);
  const int64_t n = params_[k].numel();
  const int64_t t = ++t_[k];
  dir_.resize(static_cast<size_t>(n));
  moments_[k].step(g, dir_.data(), float(cfg_.beta1), float(cfg_.beta2), float(cfg_.eps));
  apply_adamw_direction(w, dir_.data(), g, n, float(adam_step_size(s.lr, cfg_.beta1, cfg_.beta2, t)),
                        float(s.lr * cfg_.weight_decay));
}

OptimStateBytes AdamW8bit::state_bytes_detail() const {
  OptimStateBytes b;
  for (auto& m : moments_) m.add_bytes(b);
  b.accumulators += accumulator_bytes();
  return b;
}

void AdamW8bit::save_state(SafetensorsWriter& out) const {
  for (size_t i = 0; i < params_.size(); ++i) {
    moments_[i].save(out, params_[i].name);
    out.add("adam.t." + params_[i].name, StDType::I64, {1}, &t_[i], 8);
  }
}

void AdamW8bit::load_state(const SafetensorsFile& in) {
  for (size_t i = 0; i < params_.size(); ++i) {
    moments_[i].load(in, params_[i].name);
    t_[i] = read_count(in, "adam.t." + params_[i].name);
  }
}

}  // namespace gt
