#include "optim/basic.h"

#include <cmath>

#include "core/error.h"
#include "core/safetensors.h"
#include "cuda/adam.h"

namespace gt {

double clip_gradient(float* g, int64_t n, const StepInfo& s) {
  double sq = 0.0;
  for (int64_t i = 0; i < n; ++i)
    if (std::isfinite(g[i])) sq += double(g[i]) * g[i];
  const float scale = clip_factor(sq, float(s.clip_scale), s.clip_norm);
  if (scale != 1.0f)
    for (int64_t i = 0; i < n; ++i) g[i] *= scale;
  return sq;
}

FullRankBase::FullRankBase(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params)
    : cfg_(cfg), params_(params), accum_(params.size()) {}

void FullRankBase::on_grad(int index, const Tensor& weight, const Tensor& grad, const StepInfo& s) {
  GT_ASSERT(weight.dtype == DType::F32 && grad.dtype == DType::F32 && weight.device == Device::CPU);
  const int64_t n = params_[size_t(index)].numel();
  float* g = grad.f32();
  if (s.n_micro > 1) {
    auto& acc = accum_[size_t(index)];
    if (acc.empty()) acc.assign(size_t(n), 0.0f);
    if (s.micro == 0)
      for (int64_t i = 0; i < n; ++i) acc[size_t(i)] = g[i];
    else
      for (int64_t i = 0; i < n; ++i) acc[size_t(i)] += g[i];
    if (!s.last_micro()) return;
    g = acc.data();
  }
  sq_norm_ += clip_gradient(g, n, s);
  for (int64_t i = 0; i < n; ++i) nonfinite_ += !std::isfinite(g[i]);
  update(index, weight.f32(), g, s);
}

double FullRankBase::take_grad_sq_norm() {
  double v = sq_norm_;
  sq_norm_ = 0.0;
  return v;
}
int64_t FullRankBase::take_nonfinite_count() {
  int64_t v = nonfinite_;
  nonfinite_ = 0;
  return v;
}

// ---------------- SGD ----------------
Sgd::Sgd(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params) : FullRankBase(cfg, params) {
  if (cfg.momentum != 0.0)
    for (auto& p : params) momentum_.emplace_back(size_t(p.numel()), 0.0f);
}

void Sgd::update(int index, float* w, const float* g, const StepInfo& s) {
  const int64_t n = params_[size_t(index)].numel();
  const float lr = float(s.lr), wd = float(cfg_.weight_decay), mu = float(cfg_.momentum);
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(g[i])) {
      if (mu != 0.0f) momentum_[size_t(index)][size_t(i)] = 0.0f;
      continue;
    }
    float d = g[i];
    if (mu != 0.0f) {
      float& b = momentum_[size_t(index)][size_t(i)];
      b = mu * b + d;
      d = b;
    }
    w[i] -= lr * d;
    w[i] -= lr * wd * w[i];
  }
}

void Sgd::save_state(SafetensorsWriter& out) const {
  for (size_t i = 0; i < momentum_.size(); ++i)
    out.add_f32("momentum." + params_[i].name, {params_[i].numel()}, momentum_[i].data());
}
void Sgd::load_state(const SafetensorsFile& in) {
  for (size_t i = 0; i < momentum_.size(); ++i)
    read_exact(in, "momentum." + params_[i].name, StDType::F32, momentum_[i]);
}
size_t Sgd::state_bytes() const {
  size_t b = accumulator_bytes();
  for (auto& m : momentum_) b += m.size() * 4;
  return b;
}

// ---------------- AdamW ----------------
AdamW::AdamW(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params)
    : FullRankBase(cfg, params), t_(params.size(), 0) {
  for (auto& p : params) {
    m_.emplace_back(size_t(p.numel()), 0.0f);
    v_.emplace_back(size_t(p.numel()), 0.0f);
  }
}

void AdamW::update(int index, float* w, const float* g, const StepInfo& s) {
  const size_t k = size_t(index);
  const int64_t n = params_[k].numel();
  const int64_t t = ++t_[k];
  const double bc1 = 1.0 - std::pow(cfg_.beta1, double(t)), bc2 = 1.0 - std::pow(cfg_.beta2, double(t));
  const float step_size = float(s.lr * std::sqrt(bc2) / bc1);
  const float decay = float(s.lr * cfg_.weight_decay);
  const float b1 = float(cfg_.beta1), b2 = float(cfg_.beta2), eps = float(cfg_.eps);
  float* m = m_[k].data();
  float* v = v_[k].data();
  for (int64_t i = 0; i < n; ++i) {
    if (!std::isfinite(g[i])) {  // leave the weight, forget this element's history
      m[i] = v[i] = 0.0f;
      continue;
    }
    w[i] -= step_size * adam_moments_update(g[i], &m[i], &v[i], b1, b2, eps);
    w[i] -= decay * w[i];  // decoupled weight decay after the update (as GaLore's AdamW)
  }
}

void AdamW::save_state(SafetensorsWriter& out) const {
  for (size_t i = 0; i < params_.size(); ++i) {
    out.add_f32("adam.m." + params_[i].name, {params_[i].numel()}, m_[i].data());
    out.add_f32("adam.v." + params_[i].name, {params_[i].numel()}, v_[i].data());
    out.add("adam.t." + params_[i].name, StDType::I64, {1}, &t_[i], 8);
  }
}
void AdamW::load_state(const SafetensorsFile& in) {
  for (size_t i = 0; i < params_.size(); ++i) {
    read_exact(in, "adam.m." + params_[i].name, StDType::F32, m_[i]);
    read_exact(in, "adam.v." + params_[i].name, StDType::F32, v_[i]);
    t_[i] = read_count(in, "adam.t." + params_[i].name);
  }
}
size_t AdamW::state_bytes() const {
  size_t b = accumulator_bytes();
  for (size_t i = 0; i < m_.size(); ++i) b += (m_[i].size() + v_[i].size()) * 4;
  return b;
}

}  // namespace gt
