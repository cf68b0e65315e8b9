#include "optim/backend_adamw.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "core/safetensors.h"
#include "cuda/quant8.h"
#include "optim/adamw8bit.h"
#include "optim/galore.h"

namespace gt {

bool is_adam_family(const std::string& n) {
  return n == "adamw" || n == "adamw8bit" || n == "galore_adamw" || n == "galore_adamw8bit";
}

namespace {

// Geometry of parameter p's GaLore projection, or null if it is not a target.
bool target_geom(const OptimizerConfig& cfg, const ParamInfo& p, ProjGeom* geo) {
  if (!optimizer_is_galore(cfg.name) || !p.galore) return false;
  *geo = make_proj_geom(cfg.galore.proj_type, p.rows, p.cols, cfg.galore.rank);
  return true;
}

// Tokens per chunk of on_grad_factors: its scratch is [kFactorChunkRows, r]
// (8 MiB in bf16 at rank 1024), and 4096 tokens keep both GEMMs large.
constexpr int64_t kFactorChunkRows = 4096;

// Whether target p's gradient may come as factors (per-layer updates only).
bool factored(const OptimizerConfig& cfg, const ProjGeom& g) {
  return cfg.per_layer_updates && cfg.galore.factored_projection && galore_factors_supported(g);
}

// Sizes of the scratch buffers shared by all parameters.
struct Scratch {
  int64_t proj = 0, full = 0, a = 0, b = 0;  // max projected numel, max target numel, max A, max B
  int64_t factor_r = 0;                      // max rank of the targets whose gradient may come as factors
};
Scratch scratch_sizes(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params) {
  Scratch s;
  for (const ParamInfo& p : params) {
    ProjGeom g;
    if (!target_geom(cfg, p, &g)) continue;
    s.proj = std::max(s.proj, g.numel());
    s.full = std::max(s.full, g.m * g.n);
    s.a = std::max(s.a, g.a_numel());
    s.b = std::max(s.b, g.b_numel());
    if (factored(cfg, g)) s.factor_r = std::max(s.factor_r, g.r);
  }
  return s;
}

// The per-step GaLore buffers, used only after the step's refresh: projected
// gradient R, Adam direction, and with stochastic rounding the fp32 P·N.
std::vector<BufferSpec> step_scratch_specs(const OptimizerConfig& cfg, const Scratch& s, DType proj_dtype) {
  if (!s.proj) return {};
  std::vector<BufferSpec> specs = {{"scratch.R", DType::F32, {s.proj}}, {"scratch.dir", proj_dtype, {s.proj}}};
  if (cfg.stochastic_rounding) specs.push_back({"scratch.full", DType::F32, {s.full}});  // else a GEMM epilogue
  if (s.factor_r) specs.push_back({"scratch.factors", proj_dtype, {kFactorChunkRows * s.factor_r}});
  return specs;
}

OptimShapes optim_shapes(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params, Device device,
                         DType proj_dtype) {
  OptimShapes sh;
  sh.step_scratch_bytes = arena_bytes(step_scratch_specs(cfg, scratch_sizes(cfg, params), proj_dtype));
  sh.lend_grad_buffer = backend_adamw_lends_grad_buffer(cfg, device);
  for (const ParamInfo& p : params) {
    sh.max_numel = std::max(sh.max_numel, p.numel());
    ProjGeom g;
    if (target_geom(cfg, p, &g)) {
      sh.galore.push_back(g);
      sh.max_galore_numel = std::max(sh.max_galore_numel, p.numel());
    }
  }
  return sh;
}

}  // namespace

std::vector<BufferSpec> backend_adamw_specs(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params,
                                            int n_micro, DType proj_dtype, bool step_scratch_in_kernels) {
  if (!is_adam_family(cfg.name))
    fail("optimizer.name '{}' is not one of adamw, adamw8bit, galore_adamw, galore_adamw8bit", cfg.name);
  if (optimizer_is_galore(cfg.name)) validate_galore_config(cfg.galore);
  std::vector<BufferSpec> specs;
  for (const ParamInfo& p : params) {
    ProjGeom g;
    const bool target = target_geom(cfg, p, &g);
    const int64_t n = target ? g.numel() : p.numel();  // elements of the Adam state
    if (optimizer_is_8bit(cfg.name) && n >= kMin8bitNumel) {
      specs.push_back({"adam8.m.codes." + p.name, DType::U8, {n}});
      specs.push_back({"adam8.v.codes." + p.name, DType::U8, {n}});
      specs.push_back({"adam8.m.absmax." + p.name, DType::F32, {quant8_blocks(n)}});
      specs.push_back({"adam8.v.absmax." + p.name, DType::F32, {quant8_blocks(n)}});
    } else {
      specs.push_back({"adam.m." + p.name, DType::F32, {n}});
      specs.push_back({"adam.v." + p.name, DType::F32, {n}});
    }
    if (target && g.a_numel()) specs.push_back({"galore.A." + p.name, proj_dtype, {g.m, g.r}});
    if (target && g.b_numel()) specs.push_back({"galore.B." + p.name, proj_dtype, {g.r, g.n}});
    if (n_micro > 1) specs.push_back({"accum." + p.name, DType::F32, {n}});
  }
  const Scratch s = scratch_sizes(cfg, params);
  if (!step_scratch_in_kernels)
    for (const BufferSpec& b : step_scratch_specs(cfg, s, proj_dtype)) specs.push_back(b);
  if (s.proj) {
    if (s.a) specs.push_back({"scratch.A_old", proj_dtype, {s.a}});
    if (s.b) specs.push_back({"scratch.B_old", proj_dtype, {s.b}});
  }
  return specs;
}

OptimStateBytes backend_adamw_state_bytes(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params,
                                          int n_micro, Device device) {
  const DType pd = device == Device::CPU ? DType::F32 : DType::BF16;
  OptimStateBytes b;
  for (const BufferSpec& s : backend_adamw_specs(cfg, params, n_micro, pd, step_scratch_in_kernels(device))) {
    const size_t bytes = align_up(s.bytes());
    const std::string& n = s.name;
    if (n.rfind("adam8.", 0) == 0)
      (n.find(".codes.") != std::string::npos ? b.codes : b.absmax) += bytes;
    else if (n.rfind("adam.", 0) == 0)
      b.fp32_states += bytes;
    else if (n.rfind("galore.", 0) == 0)
      b.projectors += bytes;
    else if (n.rfind("accum.", 0) == 0)
      b.accumulators += bytes;
    else
      b.workspace += bytes;
  }
  b.workspace += optim_kernels_workspace_bytes(device, optim_shapes(cfg, params, device, pd), cfg.galore);
  return b;
}

BackendAdamW::BackendAdamW(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params, Backend& backend,
                           int n_micro)
    : cfg_(cfg),
      params_(params),
      backend_(backend),
      n_micro_(n_micro),
      slots_(params.size()) {
  const bool scratch_in_kernels = step_scratch_in_kernels(backend.device());
  const auto specs = backend_adamw_specs(cfg, params, n_micro, backend.compute_dtype(), scratch_in_kernels);
  k_ = make_optim_kernels(backend, optim_shapes(cfg, params, backend.device(), backend.compute_dtype()), cfg.galore);
  GT_ASSERT(k_->proj_dtype() == backend.compute_dtype());
  const std::vector<Tensor> views = arena_.allocate(backend, specs);
  size_t i = 0;  // walks the views in spec order
  for (size_t k = 0; k < params.size(); ++k) {
    const ParamInfo& p = params[k];
    Slot& S = slots_[k];
    S.galore = target_geom(cfg, p, &S.geo);
    S.seed_base = galore_name_hash(p.name);
    S.st.n = S.galore ? S.geo.numel() : p.numel();
    S.st.q8 = optimizer_is_8bit(cfg.name) && S.st.n >= kMin8bitNumel;  // as the specs
    S.st.m = views[i++];
    S.st.v = views[i++];
    if (S.st.q8) {
      S.st.absmax_m = views[i++];
      S.st.absmax_v = views[i++];
    }
    if (S.galore && S.geo.a_numel()) S.A = views[i++];
    if (S.galore && S.geo.b_numel()) S.B = views[i++];
    if (n_micro > 1) S.acc = views[i++];
    k_->adam_reset(S.st);
  }
  const Scratch s = scratch_sizes(cfg, params);
  if (s.proj) {
    // R, dir (, full): in the arena, or over the kernels' refresh workspace.
    const auto step_specs = step_scratch_specs(cfg, s, backend.compute_dtype());
    std::vector<Tensor> step_views;
    if (scratch_in_kernels) {
      GT_ASSERT(k_->step_scratch() != nullptr);
      step_views = carve_views(k_->step_scratch(), backend.device(), step_specs);
    } else {
      step_views.assign(views.begin() + ptrdiff_t(i), views.begin() + ptrdiff_t(i + step_specs.size()));
      i += step_specs.size();
    }
    size_t v = 0;
    R_ = step_views[v++];
    dir_ = step_views[v++];
    if (cfg.stochastic_rounding) full_ = step_views[v++];
    if (s.factor_r) factor_tmp_ = step_views[v++];
    GT_ASSERT(v == step_views.size());
    if (s.a) A_old_ = views[i++];
    if (s.b) B_old_ = views[i++];
  }
  GT_ASSERT(i == views.size());
}

BackendAdamW::~BackendAdamW() = default;

const ProjGeom* BackendAdamW::geometry(int index) const {
  const Slot& S = slots_[size_t(index)];
  return S.galore ? &S.geo : nullptr;
}

uint64_t BackendAdamW::rounding_seed(const Slot& S) const {
  if (!cfg_.stochastic_rounding) return 0;
  return (S.seed_base ^ (0x9e3779b97f4a7c15ULL * uint64_t(S.steps + 1))) | 1;  // nonzero; new per update
}

// A view of t's first n elements with shape dims.
static Tensor view(const Tensor& t, std::initializer_list<int64_t> dims) {
  Tensor v = reshape(t, dims);
  GT_ASSERT(v.numel() <= t.numel() || t.ndim == 0);
  return v;
}

// R [rows, cols] of a GaLore target: its accumulator over micro-batches, or the shared R_.
Tensor BackendAdamW::projected_grad(const Slot& S, const StepInfo& s) const {
  return view(s.n_micro > 1 ? S.acc : R_, {S.geo.rows(), S.geo.cols()});
}

static void check_micro(const OptimizerConfig& cfg, int n_micro, const StepInfo& s) {
  if (s.n_micro > 1 && n_micro <= 1)
    fail("optimizer {}: built for 1 micro-batch per step but handed micro-batch {} of {}", cfg.name, s.micro,
         s.n_micro);
}

bool BackendAdamW::takes_grad_factors(int index, const StepInfo& s) const {
  const Slot& S = slots_[size_t(index)];
  return factor_tmp_.data && S.galore && factored(cfg_, S.geo) &&
         !galore_refresh_due(cfg_.galore, S.steps, s.micro, S.refreshes);
}

// R (or the accumulator) from the factors: the first half of a GaLore step
// that on_grad (with an empty grad) completes.
void BackendAdamW::on_grad_factors(int index, const Tensor& dy, const Tensor& x, const StepInfo& s) {
  Slot& S = slots_[size_t(index)];
  GT_ASSERT(takes_grad_factors(index, s) && S.factored_micro < 0);
  check_micro(cfg_, n_micro_, s);
  const int64_t chunk = factor_tmp_.numel() / S.geo.r;
  phase(OptimPhase::Project);
  k_->project_factors(S.geo, S.A, S.B, dy, x, view(factor_tmp_, {chunk, S.geo.r}), projected_grad(S, s),
                      adds_to_projected_grad(s));
  S.factored_micro = s.micro;
  ++factored_projections_;
}

void BackendAdamW::on_grad(int index, const Tensor& weight, const Tensor& grad, const StepInfo& s) {
  Slot& S = slots_[size_t(index)];
  const ParamInfo& p = params_[size_t(index)];
  const bool from_factors = grad.data == nullptr;  // R already projected by on_grad_factors
  GT_ASSERT(weight.numel() == p.numel() && (from_factors || grad.numel() == p.numel()));
  GT_ASSERT(from_factors == (S.factored_micro == s.micro));
  S.factored_micro = -1;
  check_micro(cfg_, n_micro_, s);
  const float b1 = float(cfg_.beta1), b2 = float(cfg_.beta2), eps = float(cfg_.eps);
  const float decay = float(s.lr * cfg_.weight_decay);
  const Tensor w = view(weight, {p.numel()});
  if (!S.galore) {
    Tensor gf = view(grad, {p.numel()});  // [numel]: the final gradient
    if (s.n_micro > 1) {
      k_->accumulate(S.acc, gf, s.micro == 0);
      if (!s.last_micro()) return;
      gf = S.acc;
    }
    phase(OptimPhase::Adam);
    ++S.steps;
    const int64_t t = ++S.t;
    k_->clip_adam_update(S.st, gf, w, s.clip_scale, s.clip_norm, b1, b2, eps,
                         float(adam_step_size(s.lr, cfg_.beta1, cfg_.beta2, t)), decay, rounding_seed(S));
    return;
  }
  // GaLore target: the projector for the whole step comes from micro-batch 0's gradient.
  const Tensor R = projected_grad(S, s);
  if (!from_factors) {
    const Tensor G = view(grad, {S.geo.m, S.geo.n});
    if (galore_refresh_due(cfg_.galore, S.steps, s.micro, S.refreshes)) {
      phase(OptimPhase::Refresh);
      refresh(S, G);
    }
    phase(OptimPhase::Project);
    k_->project(S.geo, S.A, S.B, G, R, adds_to_projected_grad(s));
  }
  if (s.n_micro > 1 && !s.last_micro()) return;
  phase(OptimPhase::Adam);
  ++S.steps;
  const int64_t t = ++S.t;
  const Tensor dir = view(dir_, {S.geo.rows(), S.geo.cols()});
  k_->clip_adam_step(S.st, R, dir, s.clip_scale, s.clip_norm, b1, b2, eps);
  const float a = float(adam_step_size(s.lr, cfg_.beta1, cfg_.beta2, t) * cfg_.galore.scale);
  phase(OptimPhase::Update);
  if (!cfg_.stochastic_rounding) {  // the update in the back-projection GEMM's epilogue: no [m, n] buffer
    k_->project_back_update(S.geo, S.A, S.B, dir, view(weight, {S.geo.m, S.geo.n}), a, decay);
    return;
  }
  const Tensor full = view(full_, {S.geo.m, S.geo.n});
  k_->project_back(S.geo, S.A, S.B, dir, full);
  k_->apply_update(w, view(full_, {p.numel()}), a, decay, rounding_seed(S));
}

void BackendAdamW::refresh(Slot& S, const Tensor& G) {
  const bool had = S.refreshes > 0;
  Tensor A_old, B_old;  // views of the previous projector (empty on the first refresh)
  if (had) {
    if (S.A.data) A_old = view(A_old_, {S.geo.m, S.geo.r}), k_->copy(A_old, S.A);
    if (S.B.data) B_old = view(B_old_, {S.geo.r, S.geo.n}), k_->copy(B_old, S.B);
  }
  k_->refresh_projector(cfg_.galore, S.geo, G, galore_sketch_seed(S.seed_base, S.refreshes), A_old, B_old, S.A, S.B);
  ++S.refreshes;
  if (!had) return;
  const std::string& mode = cfg_.galore.moments_on_refresh;
  if (mode == "reset") {
    k_->adam_reset(S.st);
    S.t = 0;  // bias correction restarts with the moments
  } else if (mode == "reproject") {
    k_->reproject_moments(S.geo, A_old, B_old, S.A, S.B, S.st);
  }
}

double BackendAdamW::take_grad_sq_norm() {
  const GradStats st = k_->take_stats();
  pending_nonfinite_ += st.nonfinite;
  return st.sq_norm;
}

// The count came with take_grad_sq_norm's one read of the device statistics.
int64_t BackendAdamW::take_nonfinite_count() {
  const int64_t v = pending_nonfinite_;
  pending_nonfinite_ = 0;
  return v;
}

size_t BackendAdamW::state_bytes() const { return arena_.bytes() + k_->workspace_bytes(); }

std::vector<float> BackendAdamW::download(const Tensor& t) const {
  std::vector<float> h(size_t(t.numel()));
  if (t.numel()) backend_.download_f32(h.data(), t);
  return h;
}

std::vector<float> BackendAdamW::projector_A(int index) const {
  const Slot& S = slots_[size_t(index)];
  return S.A.data ? download(S.A) : std::vector<float>{};
}
std::vector<float> BackendAdamW::projector_B(int index) const {
  const Slot& S = slots_[size_t(index)];
  return S.B.data ? download(S.B) : std::vector<float>{};
}

void BackendAdamW::moments(int index, std::vector<float>* m, std::vector<float>* v) const {
  const AdamState& st = slots_[size_t(index)].st;
  if (!st.q8) {
    *m = download(st.m);
    *v = download(st.v);
    return;
  }
  std::vector<uint8_t> cm(size_t(st.n)), cv(size_t(st.n));
  backend_.download(cm.data(), st.m.data, cm.size());
  backend_.download(cv.data(), st.v.data, cv.size());
  const std::vector<float> am = download(st.absmax_m), av = download(st.absmax_v);
  m->resize(size_t(st.n));
  v->resize(size_t(st.n));
  dequantize_blockwise_cpu(dynamic_map_signed(), cm.data(), am.data(), st.n, m->data());
  dequantize_blockwise_cpu(dynamic_map_unsigned(), cv.data(), av.data(), st.n, v->data());
}

// ---- checkpoints: the reference optimizers' tensor names and layouts ----

// Deferred (SafetensorsWriter::add_deferred): each state tensor is downloaded
// while the file is written, so a checkpoint holds one in host memory at a time.
void BackendAdamW::save_state(SafetensorsWriter& out) const {
  auto raw = [&](const std::string& key, const Tensor& t, StDType dt) {
    const size_t n = t.nbytes();
    out.add_deferred(key, dt, {t.numel()}, n, [this, t, n](void* dst) { backend_.download(dst, t.data, n); });
  };
  auto f32 = [&](const std::string& key, const Tensor& t, std::vector<int64_t> shape) {
    out.add_deferred(key, StDType::F32, std::move(shape), size_t(t.numel()) * 4,
                     [this, t](void* dst) { backend_.download_f32(static_cast<float*>(dst), t); });
  };
  for (size_t k = 0; k < params_.size(); ++k) {
    const std::string& name = params_[k].name;
    const Slot& S = slots_[k];
    const AdamState& st = S.st;
    if (st.q8) {
      raw("adam8.m.codes." + name, st.m, StDType::U8);
      raw("adam8.v.codes." + name, st.v, StDType::U8);
      f32("adam8.m.absmax." + name, st.absmax_m, {st.absmax_m.numel()});
      f32("adam8.v.absmax." + name, st.absmax_v, {st.absmax_v.numel()});
    } else {
      f32("adam.m." + name, st.m, {st.n});
      f32("adam.v." + name, st.v, {st.n});
    }
    out.add("adam.t." + name, StDType::I64, {1}, &S.t, 8);
    if (!S.galore) continue;
    out.add("galore.step." + name, StDType::I64, {1}, &S.steps, 8);
    out.add("galore.refreshes." + name, StDType::I64, {1}, &S.refreshes, 8);
    if (S.A.data) f32("galore.A." + name, S.A, {S.geo.m, S.geo.r});
    if (S.B.data) f32("galore.B." + name, S.B, {S.geo.r, S.geo.n});
  }
}


void BackendAdamW::load_state(const SafetensorsFile& in) {
  auto load_f32 = [&](const std::string& key, const Tensor& dst) {
    const StTensor& t = get_exact(in, key, StDType::F32, size_t(dst.numel()) * 4);
    backend_.upload_f32(dst, static_cast<const float*>(static_cast<const void*>(t.data)));
  };
  for (size_t k = 0; k < params_.size(); ++k) {
    const std::string& name = params_[k].name;
    Slot& S = slots_[k];
    const AdamState& st = S.st;
    if (st.q8) {
      if (!in.has("adam8.m.codes." + name))
        fail("{}: no 8-bit optimizer state for {} (checkpoint written by a different optimizer?)", in.path(), name);
      for (const char* mv : {"m", "v"}) {
        const Tensor& codes = mv[0] == 'm' ? st.m : st.v;
        const StTensor& t = get_exact(in, std::string("adam8.") + mv + ".codes." + name, StDType::U8, size_t(st.n));
        backend_.upload(codes.data, t.data, size_t(st.n));
        load_f32(std::string("adam8.") + mv + ".absmax." + name, mv[0] == 'm' ? st.absmax_m : st.absmax_v);
      }
    } else {
      if (!in.has("adam.m." + name))
        fail("{}: no fp32 optimizer state for {} (checkpoint written by a different optimizer?)", in.path(), name);
      load_f32("adam.m." + name, st.m);
      load_f32("adam.v." + name, st.v);
    }
    S.t = read_count(in, "adam.t." + name);
    S.steps = S.t;
    if (!S.galore) continue;
    if (!in.has("galore.step." + name))
      fail("{}: no GaLore state for {} (checkpoint written without GaLore on this parameter?)", in.path(), name);
    S.steps = read_count(in, "galore.step." + name);
    S.refreshes = read_count(in, "galore.refreshes." + name);
    if (S.A.data) load_f32("galore.A." + name, S.A);
    if (S.B.data) load_f32("galore.B." + name, S.B);
  }
}

}  // namespace gt
