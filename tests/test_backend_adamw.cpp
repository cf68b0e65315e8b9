// BackendAdamW (the optimizer the trainer runs, state on the backend's device)
// on the CPU backend against the reference optimizers (optim/basic.h,
// optim/adamw8bit.h, optim/galore.h): bit-identical weights and checkpoint
// tensors over steps with accumulation, clipping, refreshes (every moments
// mode, every projection side), non-finite gradients, and save/load across
// the two implementations. The same BackendAdamW drives the CUDA kernels.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <unistd.h>
#include <vector>

#include "backend/backend.h"
#include "config/config.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "optim/backend_adamw.h"
#include "optim/optimizer.h"

#include "test_util.h"

using namespace gt;

namespace {

using test::randn;

std::vector<ParamInfo> params_for(bool galore) {
  return {{"model.embed_tokens.weight", ParamKind::Embedding, 100, 48, false},
          {"model.layers.0.input_layernorm.weight", ParamKind::Norm, 48, 1, false},
          {"model.layers.0.self_attn.q_proj.weight", ParamKind::Linear, 48, 48, galore},
          {"model.layers.0.mlp.up_proj.weight", ParamKind::Linear, 128, 48, galore},
          {"model.layers.0.mlp.down_proj.weight", ParamKind::Linear, 48, 130, galore},
          {"model.layers.0.mlp.big_proj.weight", ParamKind::Linear, 128, 512, galore},
          {"lm_head.weight", ParamKind::LmHead, 100, 48, false}};
}

OptimizerConfig cfg_for(const std::string& name) {
  OptimizerConfig c;
  c.name = name;
  c.lr = 1e-2;
  c.weight_decay = 0.1;
  c.eps = 1e-6;
  c.galore.rank = 8;
  c.galore.update_proj_gap = 2;
  return c;
}

// Low-rank-plus-noise gradient for (param k, step, micro), with a NaN planted
// in one step when `nan_step` matches.
std::vector<float> grad_for(const ParamInfo& p, size_t k, int step, int micro, int nan_step) {
  const int64_t m = p.rows, n = p.cols;
  auto a = randn(size_t(m * 3), 11 + k), b = randn(size_t(3 * n), 13 + k);
  auto noise = randn(size_t(m * n), 1000 * k + 10 * step + micro + 7);
  std::vector<float> g(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float s = 0;
      for (int r = 0; r < 3; ++r) s += a[size_t(i * 3 + r)] * b[size_t(r * n + j)] * float(3 - r);
      g[size_t(i * n + j)] = 0.01f * s * (1.0f + 0.1f * float(step)) + 0.003f * noise[size_t(i * n + j)];
    }
  if (step == nan_step) g[g.size() / 2] = NAN;
  return g;
}

struct RunOpts {
  int n_micro = 1;
  double clip_scale = 1.0, clip_norm = 0.0;
  int nan_step = -1;
};

using Weights = std::vector<std::vector<float>>;

// Steps [from, to) on host weights; returns the per-step grad norms.
std::vector<double> run(Optimizer& opt, const std::vector<ParamInfo>& params, Weights& w, int from, int to,
                        const RunOpts& r) {
  std::vector<double> norms;
  for (int step = from; step < to; ++step) {
    StepInfo s{step, 1e-2 * (1.0 + 0.1 * step), r.clip_scale, r.clip_norm, 0, r.n_micro};
    for (int micro = 0; micro < r.n_micro; ++micro) {
      s.micro = micro;
      for (size_t k = 0; k < params.size(); ++k) {
        auto g = grad_for(params[k], k, step, micro, r.nan_step);
        for (float& x : g) x /= float(r.n_micro);
        Tensor wt(w[k].data(), DType::F32, Device::CPU, {params[k].numel()});
        Tensor gt(g.data(), DType::F32, Device::CPU, {params[k].numel()});
        opt.on_grad(int(k), wt, gt, s);
      }
    }
    norms.push_back(opt.take_grad_sq_norm());
    opt.take_nonfinite_count();
  }
  return norms;
}

Weights init(const std::vector<ParamInfo>& params) {
  Weights w;
  for (size_t k = 0; k < params.size(); ++k) w.push_back(randn(size_t(params[k].numel()), 500 + k, 0.1f));
  return w;
}

using test::state_of;

std::string tmp_path(const std::string& name) {
  // The pid keeps tests that ctest runs in parallel processes off each other's files.
  return (std::filesystem::temp_directory_path() /
          ("gt_backend_adamw_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

void expect_same_run(const OptimizerConfig& cfg, const RunOpts& r, int steps = 5) {
  SCOPED_TRACE(cfg.name + " n_micro=" + std::to_string(r.n_micro) + " proj_type=" + cfg.galore.proj_type +
               " moments=" + cfg.galore.moments_on_refresh + " projector=" + cfg.galore.projector);
  const bool galore = cfg.name.rfind("galore", 0) == 0;
  const auto params = params_for(galore);
  auto be = make_cpu_backend();
  auto ref = make_optimizer(cfg, params, *be);
  BackendAdamW opt(cfg, params, *be, r.n_micro);
  Weights w_ref = init(params), w = init(params);
  const auto n_ref = run(*ref, params, w_ref, 0, steps, r);
  const auto n = run(opt, params, w, 0, steps, r);
  for (size_t k = 0; k < params.size(); ++k)
    ASSERT_EQ(0, std::memcmp(w_ref[k].data(), w[k].data(), w[k].size() * 4)) << params[k].name;
  EXPECT_EQ(n_ref, n);
  EXPECT_EQ(state_of(*ref, tmp_path("ref.st")), state_of(opt, tmp_path("opt.st")));
}

}  // namespace

TEST(BackendAdamW, BitIdenticalToReferenceFullRank) {
  for (const char* name : {"adamw", "adamw8bit"})
    for (int n_micro : {1, 3}) {
      RunOpts r;
      r.n_micro = n_micro;
      r.clip_scale = 0.5;
      expect_same_run(cfg_for(name), r);
    }
}

TEST(BackendAdamW, BitIdenticalToReferenceGalore) {
  for (const char* name : {"galore_adamw", "galore_adamw8bit"})
    for (const char* projector : {"svd", "randomized"})
      for (int n_micro : {1, 2}) {
        OptimizerConfig c = cfg_for(name);
        c.galore.projector = projector;
        RunOpts r;
        r.n_micro = n_micro;
        expect_same_run(c, r);
      }
}

TEST(BackendAdamW, BitIdenticalAcrossRefreshModesAndSides) {
  for (const char* mode : {"keep", "reset", "reproject"})
    for (const char* side : {"std", "reverse_std", "left", "right", "full"}) {
      OptimizerConfig c = cfg_for("galore_adamw8bit");
      c.galore.moments_on_refresh = mode;
      c.galore.proj_type = side;
      expect_same_run(c, RunOpts{}, 5);
    }
}

TEST(BackendAdamW, BitIdenticalWithClippingAndNonFinite) {
  for (const char* name : {"adamw8bit", "galore_adamw8bit"}) {
    RunOpts r;
    r.clip_norm = 0.05;  // per-tensor clipping active
    r.clip_scale = 0.7;
    expect_same_run(cfg_for(name), r);
    r.clip_norm = 0.0;
    r.nan_step = 2;
    expect_same_run(cfg_for(name), r);
  }
}

TEST(BackendAdamW, BitIdenticalWithStochasticRoundingPath) {
  // stochastic_rounding keeps the fp32 [m, n] back-projection buffer (the GPU rounds there); on
  // fp32 CPU weights the rounding is to nearest, so the result is still the reference's.
  OptimizerConfig c = cfg_for("galore_adamw8bit");
  c.stochastic_rounding = true;
  expect_same_run(c, RunOpts{});
  c.galore.proj_type = "full";
  expect_same_run(c, RunOpts{});
}

TEST(BackendAdamW, CheckpointsMoveBetweenImplementations) {
  // Reference state -> BackendAdamW and back: both continue identically.
  const OptimizerConfig cfg = cfg_for("galore_adamw8bit");
  const auto params = params_for(true);
  auto be = make_cpu_backend();
  auto ref = make_optimizer(cfg, params, *be);
  Weights w = init(params);
  run(*ref, params, w, 0, 3, RunOpts{});
  const std::string path = tmp_path("move.st");
  {
    SafetensorsWriter out;
    ref->save_state(out);
    out.write(path);
  }
  BackendAdamW opt(cfg, params, *be, 1);
  opt.load_state(SafetensorsFile::open(path));
  Weights w2 = w;
  run(*ref, params, w, 3, 6, RunOpts{});
  run(opt, params, w2, 3, 6, RunOpts{});
  for (size_t k = 0; k < params.size(); ++k) ASSERT_EQ(w[k], w2[k]) << params[k].name;
}

TEST(BackendAdamW, MemoryPlanEqualsAllocation) {
  auto be = make_cpu_backend();
  for (const char* name : {"adamw", "adamw8bit", "galore_adamw", "galore_adamw8bit"})
    for (int n_micro : {1, 4}) {
      const OptimizerConfig cfg = cfg_for(name);
      const auto params = params_for(std::string(name).rfind("galore", 0) == 0);
      BackendAdamW opt(cfg, params, *be, n_micro);
      EXPECT_EQ(backend_adamw_state_bytes(cfg, params, n_micro, Device::CPU).total(), opt.state_bytes()) << name;
    }
}

TEST(BackendAdamW, RejectsMismatchedCheckpointAndMicroBatches) {
  auto be = make_cpu_backend();
  const auto params = params_for(true);
  BackendAdamW a(cfg_for("galore_adamw8bit"), params, *be, 1);
  const std::string path = tmp_path("mismatch.st");
  {
    SafetensorsWriter out;
    a.save_state(out);
    out.write(path);
  }
  OptimizerConfig other = cfg_for("galore_adamw8bit");
  other.galore.rank = 4;
  BackendAdamW b(other, params, *be, 1);
  EXPECT_THROW(b.load_state(SafetensorsFile::open(path)), Error);
  BackendAdamW c(cfg_for("adamw"), params_for(false), *be, 1);
  EXPECT_THROW(c.load_state(SafetensorsFile::open(path)), Error);
  // Built for one micro-batch per step, handed several: an error, not silent garbage.
  std::vector<float> w(size_t(params[0].numel()), 0.1f), g(w.size(), 0.01f);
  Tensor wt(w.data(), DType::F32, Device::CPU, {params[0].numel()}), gt(g.data(), DType::F32, Device::CPU, {params[0].numel()});
  EXPECT_THROW(a.on_grad(0, wt, gt, StepInfo{0, 1e-3, 1.0, 0.0, 0, 2}), Error);
}
