#include "optim/galore.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/safetensors.h"
#include "cuda/quant8.h"

namespace gt {

uint64_t galore_name_hash(const std::string& name) {
  uint64_t h = 0xcbf29ce484222325ULL;  // FNV-1a: stable across runs and parameter orderings
  for (unsigned char c : name) h = (h ^ c) * 0x100000001b3ULL;
  return h;
}

uint64_t galore_sketch_seed(uint64_t base, int64_t refresh) {
  return base ^ (0x9e3779b97f4a7c15ULL * uint64_t(refresh + 1));  // Rng mixes it further (splitmix64)
}


GaloreAdamW::GaloreAdamW(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params, bool eight_bit)
    : FullRankBase(cfg, params),
      eight_bit_(eight_bit),
      slots_(params.size()),
      t_(params.size(), 0),
      steps_(params.size(), 0) {
  validate_galore_config(cfg.galore);
  for (size_t k = 0; k < params.size(); ++k) {
    const ParamInfo& p = params[k];
    Slot& S = slots_[k];
    if (p.galore) {
      S.on = true;
      S.geo = make_proj_geom(cfg.galore.proj_type, p.rows, p.cols, cfg.galore.rank);
      S.A.assign(size_t(S.geo.a_numel()), 0.0f);
      S.B.assign(size_t(S.geo.b_numel()), 0.0f);
      S.seed_base = galore_name_hash(p.name);
      moments_.emplace_back(S.geo.numel(), eight_bit);
    } else {
      moments_.emplace_back(p.numel(), eight_bit);
    }
  }
}

const ProjGeom* GaloreAdamW::geometry(int index) const {
  const Slot& S = slots_[size_t(index)];
  return S.on ? &S.geo : nullptr;
}

void GaloreAdamW::moments(int index, std::vector<float>* m, std::vector<float>* v) const {
  const AdamMoments& mo = moments_[size_t(index)];
  m->resize(size_t(mo.size()));
  v->resize(size_t(mo.size()));
  mo.get(m->data(), v->data());
}

void GaloreAdamW::on_grad(int index, const Tensor& weight, const Tensor& grad, const StepInfo& s) {
  const size_t k = size_t(index);
  Slot& S = slots_[k];
  if (!S.on) {
    FullRankBase::on_grad(index, weight, grad, s);
    return;
  }
  GT_ASSERT(weight.dtype == DType::F32 && grad.dtype == DType::F32 && weight.device == Device::CPU);
  GT_ASSERT(grad.numel() == S.geo.m * S.geo.n && weight.numel() == S.geo.m * S.geo.n);
  const float* g = grad.f32();  // [m, n]
  // The projector for the whole step comes from the first micro-batch's gradient.
  if (galore_refresh_due(cfg_.galore, steps_[k], s.micro, S.refreshes)) refresh(k, g);
  const int64_t pn = S.geo.numel();
  if (s.n_micro > 1) {
    if (S.acc.empty()) S.acc.assign(size_t(pn), 0.0f);
    if (s.micro == 0) {
      galore_project(S.geo, S.A.data(), S.B.data(), g, S.acc.data());
    } else {
      proj_.resize(size_t(pn));
      galore_project(S.geo, S.A.data(), S.B.data(), g, proj_.data());
      for (int64_t i = 0; i < pn; ++i) S.acc[size_t(i)] += proj_[size_t(i)];
    }
    if (!s.last_micro()) return;
    galore_step(k, weight.f32(), S.acc.data(), s);
  } else {
    proj_.resize(size_t(pn));
    galore_project(S.geo, S.A.data(), S.B.data(), g, proj_.data());
    galore_step(k, weight.f32(), proj_.data(), s);
  }
}

void GaloreAdamW::refresh(size_t k, const float* g) {
  Slot& S = slots_[k];
  const bool had = S.refreshes > 0;
  std::vector<float> A_old, B_old;  // previous projector [m, r] / [r, n]
  if (had) {
    A_old = S.A;
    B_old = S.B;
  }
  compute_projector(cfg_.galore, S.geo, g, galore_sketch_seed(S.seed_base, S.refreshes),
                    had && !A_old.empty() ? A_old.data() : nullptr, had && !B_old.empty() ? B_old.data() : nullptr,
                    S.A.data(), S.B.data());
  ++S.refreshes;
  if (!had) return;
  const std::string& mode = cfg_.galore.moments_on_refresh;
  if (mode == "reset") {
    moments_[k].reset();
    t_[k] = 0;  // bias correction restarts with the moments
  } else if (mode == "reproject") {
    std::vector<float> m, v;  // [rows, cols]
    moments(int(k), &m, &v);
    reproject_moments(S.geo, A_old.data(), B_old.data(), S.A.data(), S.B.data(), m.data(), v.data());
    moments_[k].set(m.data(), v.data());
  }
}

void GaloreAdamW::galore_step(size_t k, float* w, float* R, const StepInfo& s) {
  const Slot& S = slots_[k];
  const int64_t pn = S.geo.numel(), n = S.geo.m * S.geo.n;
  sq_norm_ += clip_gradient(R, pn, s);
  for (int64_t i = 0; i < pn; ++i) nonfinite_ += !finite_f32(R[i]);
  ++steps_[k];
  const int64_t t = ++t_[k];
  dir_.resize(size_t(pn));
  moments_[k].step(R, dir_.data(), float(cfg_.beta1), float(cfg_.beta2), float(cfg_.eps));
  full_.resize(static_cast<size_t>(n));
  galore_project_back(S.geo, S.A.data(), S.B.data(), dir_.data(), full_.data());  // [m, n]
  const float a = float(adam_step_size(s.lr, cfg_.beta1, cfg_.beta2, t) * cfg_.galore.scale);
  const float decay = float(s.lr * cfg_.weight_decay);
  for (int64_t i = 0; i < n; ++i) {
    w[i] -= a * full_[size_t(i)];
    w[i] -= decay * w[i];  // decoupled weight decay after the update (official GaLore AdamW)
  }
}

void GaloreAdamW::update(int index, float* w, const float* g, const StepInfo& s) {
  const size_t k = size_t(index);
  const int64_t n = params_[k].numel();
  ++steps_[k];
  const int64_t t = ++t_[k];
  dir_.resize(static_cast<size_t>(n));
  moments_[k].step(g, dir_.data(), float(cfg_.beta1), float(cfg_.beta2), float(cfg_.eps));
  apply_adamw_direction(w, dir_.data(), g, n, float(adam_step_size(s.lr, cfg_.beta1, cfg_.beta2, t)),
                        float(s.lr * cfg_.weight_decay));
}

OptimStateBytes GaloreAdamW::state_bytes_detail() const {
  OptimStateBytes b;
  for (auto& m : moments_) m.add_bytes(b);
  for (auto& S : slots_) {
    b.projectors += (S.A.size() + S.B.size()) * sizeof(float);
    b.accumulators += S.acc.size() * sizeof(float);
  }
  b.accumulators += accumulator_bytes();
  return b;
}

void GaloreAdamW::save_state(SafetensorsWriter& out) const {
  for (size_t k = 0; k < params_.size(); ++k) {
    const std::string& name = params_[k].name;
    moments_[k].save(out, name);
    out.add("adam.t." + name, StDType::I64, {1}, &t_[k], 8);
    const Slot& S = slots_[k];
    if (!S.on) continue;
    out.add("galore.step." + name, StDType::I64, {1}, &steps_[k], 8);
    out.add("galore.refreshes." + name, StDType::I64, {1}, &S.refreshes, 8);
    if (!S.A.empty()) out.add_f32("galore.A." + name, {S.geo.m, S.geo.r}, S.A.data());
    if (!S.B.empty()) out.add_f32("galore.B." + name, {S.geo.r, S.geo.n}, S.B.data());
  }
}

void GaloreAdamW::load_state(const SafetensorsFile& in) {
  for (size_t k = 0; k < params_.size(); ++k) {
    const std::string& name = params_[k].name;
    moments_[k].load(in, name);
    t_[k] = read_count(in, "adam.t." + name);
    steps_[k] = t_[k];
    Slot& S = slots_[k];
    if (!S.on) continue;
    if (!in.has("galore.step." + name))
      fail("{}: no GaLore state for {} (checkpoint written without GaLore on this parameter?)", in.path(), name);
    steps_[k] = read_count(in, "galore.step." + name);
    S.refreshes = read_count(in, "galore.refreshes." + name);
    if (!S.A.empty()) read_exact(in, "galore.A." + name, StDType::F32, S.A);
    if (!S.B.empty()) read_exact(in, "galore.B." + name, StDType::F32, S.B);
  }
}

}  // namespace gt
