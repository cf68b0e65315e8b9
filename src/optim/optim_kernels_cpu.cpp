// OptimKernels on the CPU: fp32 everywhere, and every op is a call to the
// function the reference optimizers (optim/basic.cpp, optim/adamw8bit.cpp,
// optim/galore.cpp) call, in the same order, so BackendAdamW on the CPU is bit
// for bit the reference (tests/test_backend_adamw.cpp checks it).
#include <algorithm>
#include <cstring>

#include "backend/backend.h"
#include "config/config.h"
#include "core/error.h"
#include "cuda/adam8bit.h"
#include "cuda/quant8.h"
#include "optim/adamw8bit.h"
#include "optim/basic.h"
#include "optim/optim_kernels.h"

namespace gt {

namespace {

float* f32_of(const Tensor& t, const char* what) {
  if (t.data && (t.dtype != DType::F32 || t.device != Device::CPU))
    fail("cpu optimizer kernels: {} must be an fp32 CPU tensor (got {})", what, dtype_name(t.dtype));
  return static_cast<float*>(t.data);
}

class CpuOptimKernels final : public OptimKernels {
 public:
  DType proj_dtype() const override { return DType::F32; }
  size_t workspace_bytes() const override { return 0; }

  void copy(const Tensor& dst, const Tensor& src) override {
    GT_ASSERT(dst.nbytes() == src.nbytes());
    if (dst.nbytes()) std::memcpy(dst.data, src.data, dst.nbytes());
  }

  void project(const ProjGeom& geo, const Tensor& A, const Tensor& B, const Tensor& g, const Tensor& R,
               bool accumulate) override {
    const float* a = f32_of(A, "A");
    const float* b = f32_of(B, "B");
    float* r = f32_of(R, "R");  // [rows, cols]
    GT_ASSERT(R.numel() == geo.numel() && g.numel() == geo.m * geo.n);
    if (!accumulate) return galore_project(geo, a, b, f32_of(g, "g"), r);
    tmp_.resize(size_t(geo.numel()));  // as the reference: project, then add
    galore_project(geo, a, b, f32_of(g, "g"), tmp_.data());
    for (int64_t i = 0; i < geo.numel(); ++i) r[i] += tmp_[size_t(i)];
  }

  void project_factors(const ProjGeom& geo, const Tensor& A, const Tensor& B, const Tensor& dy, const Tensor& x,
                       const Tensor& tmp, const Tensor& R, bool accumulate) override {
    const int64_t N = geo.m ? dy.numel() / geo.m : 0;
    GT_ASSERT(galore_factors_supported(geo) && dy.numel() == N * geo.m && x.numel() == N * geo.n);
    GT_ASSERT(R.numel() == geo.numel() && geo.r > 0 && tmp.numel() >= geo.r);
    galore_project_factors(geo, f32_of(A, "A"), f32_of(B, "B"), f32_of(dy, "dy"), f32_of(x, "x"), N,
                           f32_of(tmp, "tmp"), tmp.numel() / geo.r, f32_of(R, "R"), accumulate);
  }

  void project_back(const ProjGeom& geo, const Tensor& A, const Tensor& B, const Tensor& dir,
                    const Tensor& out) override {
    GT_ASSERT(dir.numel() == geo.numel() && out.numel() == geo.m * geo.n);
    galore_project_back(geo, f32_of(A, "A"), f32_of(B, "B"), f32_of(dir, "dir"), f32_of(out, "out"));
  }

  void accumulate(const Tensor& acc, const Tensor& g, bool first) override {
    GT_ASSERT(acc.numel() == g.numel());
    float* a = f32_of(acc, "acc");
    const float* x = f32_of(g, "g");
    const int64_t n = acc.numel();
    if (first)
      std::copy(x, x + n, a);
    else
      for (int64_t i = 0; i < n; ++i) a[i] += x[i];
  }

  void clip_and_stats(const Tensor& g, double clip_scale, double clip_norm) override {
    float* x = f32_of(g, "g");
    const int64_t n = g.numel();
    StepInfo s{};
    s.clip_scale = clip_scale;
    s.clip_norm = clip_norm;
    stats_.sq_norm += clip_gradient(x, n, s);
    for (int64_t i = 0; i < n; ++i) stats_.nonfinite += !finite_f32(x[i]);
  }

  GradStats take_stats() override {
    const GradStats s = stats_;
    stats_ = {};
    return s;
  }

  void adam_reset(const AdamState& st) override {
    if (st.q8) {
      std::fill_n(st.m.as<uint8_t>(), st.n, quant8_nearest(dynamic_map_signed(), 0.0f));
      std::fill_n(st.v.as<uint8_t>(), st.n, quant8_nearest(dynamic_map_unsigned(), 0.0f));
      std::fill_n(f32_of(st.absmax_m, "absmax"), st.absmax_m.numel(), 0.0f);
      std::fill_n(f32_of(st.absmax_v, "absmax"), st.absmax_v.numel(), 0.0f);
    } else {
      std::fill_n(f32_of(st.m, "m"), st.n, 0.0f);
      std::fill_n(f32_of(st.v, "v"), st.n, 0.0f);
    }
  }

  void adam_step(const AdamState& st, const Tensor& g, const Tensor& dir, float beta1, float beta2,
                 float eps) override {
    GT_ASSERT(g.numel() == st.n && dir.numel() >= st.n);
    if (st.q8)
      adam8bit_step_cpu(f32_of(g, "g"), f32_of(dir, "dir"), st.m.as<uint8_t>(), st.v.as<uint8_t>(),
                        f32_of(st.absmax_m, "absmax"), f32_of(st.absmax_v, "absmax"), st.n, dynamic_map_signed(),
                        dynamic_map_unsigned(), beta1, beta2, eps);
    else
      adam32_step_cpu(f32_of(g, "g"), f32_of(dir, "dir"), f32_of(st.m, "m"), f32_of(st.v, "v"), st.n, beta1, beta2,
                      eps);
  }

  void adam_update(const AdamState& st, const Tensor& g, const Tensor& w, float beta1, float beta2, float eps,
                   float step_size, float decay, uint64_t /*sr_seed: fp32 weights round to nearest*/) override {
    GT_ASSERT(g.numel() == st.n && w.numel() == st.n);
    dir_.resize(size_t(st.n));
    Tensor dir(dir_.data(), DType::F32, Device::CPU, {st.n});
    adam_step(st, g, dir, beta1, beta2, eps);
    apply_adamw_direction(f32_of(w, "w"), dir_.data(), f32_of(g, "g"), st.n, step_size, decay);
  }

  void apply_update(const Tensor& w, const Tensor& d, float step_size, float decay, uint64_t) override {
    GT_ASSERT(w.numel() == d.numel());
    float* x = f32_of(w, "w");
    const float* f = f32_of(d, "d");
    for (int64_t i = 0; i < w.numel(); ++i) {
      x[i] -= step_size * f[i];
      x[i] -= decay * x[i];  // decoupled weight decay after the update (official GaLore AdamW)
    }
  }

  void project_back_update(const ProjGeom& geo, const Tensor& A, const Tensor& B, const Tensor& dir, const Tensor& w,
                           float step_size, float decay) override {
    full_.resize(size_t(geo.m * geo.n));  // [m, n]: the reference's order, so bits match
    Tensor full(full_.data(), DType::F32, Device::CPU, {geo.m * geo.n});
    project_back(geo, A, B, dir, full);
    apply_update(w, full, step_size, decay, 0);
  }

  void refresh_projector(const GaloreConfig& cfg, const ProjGeom& geo, const Tensor& g, uint64_t seed,
                         const Tensor& A_old, const Tensor& B_old, const Tensor& A, const Tensor& B) override {
    compute_projector(cfg, geo, f32_of(g, "g"), seed, A_old.data ? f32_of(A_old, "A_old") : nullptr,
                      B_old.data ? f32_of(B_old, "B_old") : nullptr, f32_of(A, "A"), f32_of(B, "B"));
  }

  void reproject_moments(const ProjGeom& geo, const Tensor& A_old, const Tensor& B_old, const Tensor& A,
                         const Tensor& B, const AdamState& st) override {
    std::vector<float> m(size_t(st.n)), v(size_t(st.n));  // [rows, cols] fp32 copies, as AdamMoments::get/set
    if (st.q8) {
      dequantize_blockwise_cpu(dynamic_map_signed(), st.m.as<uint8_t>(), f32_of(st.absmax_m, "absmax"), st.n,
                               m.data());
      dequantize_blockwise_cpu(dynamic_map_unsigned(), st.v.as<uint8_t>(), f32_of(st.absmax_v, "absmax"), st.n,
                               v.data());
    } else {
      std::copy_n(f32_of(st.m, "m"), st.n, m.data());
      std::copy_n(f32_of(st.v, "v"), st.n, v.data());
    }
    gt::reproject_moments(geo, f32_of(A_old, "A_old"), f32_of(B_old, "B_old"), f32_of(A, "A"), f32_of(B, "B"),
                          m.data(), v.data());
    if (st.q8) {
      quantize_blockwise_cpu(dynamic_map_signed(), m.data(), st.n, st.m.as<uint8_t>(), f32_of(st.absmax_m, "absmax"));
      quantize_blockwise_cpu(dynamic_map_unsigned(), v.data(), st.n, st.v.as<uint8_t>(),
                             f32_of(st.absmax_v, "absmax"));
    } else {
      std::copy(m.begin(), m.end(), f32_of(st.m, "m"));
      std::copy(v.begin(), v.end(), f32_of(st.v, "v"));
    }
  }

 private:
  GradStats stats_;
  std::vector<float> tmp_, dir_, full_;  // host scratch (the CPU plan does not count host heap)
};

}  // namespace

std::unique_ptr<OptimKernels> make_optim_kernels(Backend& backend, const OptimShapes& shapes, const GaloreConfig& cfg) {
  if (backend.device() == Device::CPU) return std::make_unique<CpuOptimKernels>();
#ifdef GALORE_WITH_CUDA
  return make_cuda_optim_kernels(backend, shapes, cfg);
#else
  (void)shapes, (void)cfg;
  fail("optimizer kernels: no implementation for backend {}", backend.name());
#endif
}

size_t optim_kernels_workspace_bytes(Device device, const OptimShapes& shapes, const GaloreConfig& cfg) {
  if (device == Device::CPU) return 0;
#ifdef GALORE_WITH_CUDA
  return cuda_optim_kernels_workspace_bytes(shapes, cfg);
#else
  (void)shapes, (void)cfg;
  return 0;  // a CPU-only build plans a CUDA run without the kernels' workspace (noted in the table)
#endif
}

}  // namespace gt
