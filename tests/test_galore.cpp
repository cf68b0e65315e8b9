// GaLore AdamW: official-trajectory parity, accumulation, refresh variants,
// checkpoint round trip, memory accounting.
#include <gtest/gtest.h>

#include <cmath>
#include <unistd.h>
#include <limits>
#include <vector>

#include "backend/backend.h"
#include "config/config.h"
#include "core/error.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "optim/galore.h"
#include "optim/galore_fixture.h"
#include "optim/memory.h"

#include "test_util.h"

using namespace gt;

namespace {

using test::randn;

// A low-rank-ish gradient [m, n] that changes slowly with `step` (so that the
// top subspace is well defined and drifts), different per `seed`.
std::vector<float> grad_for(int64_t m, int64_t n, int step, uint64_t seed) {
  auto a = randn(size_t(m * 4), seed), b = randn(size_t(4 * n), seed + 1), noise = randn(size_t(m * n), seed * 31 + step);
  std::vector<float> g(size_t(m * n));
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      float s = 0;
      for (int k = 0; k < 4; ++k) s += a[size_t(i * 4 + k)] * b[size_t(k * n + j)] * float(4 - k) * (1.0f + 0.05f * step * k);
      g[size_t(i * n + j)] = 0.01f * s + 0.002f * noise[size_t(i * n + j)];
    }
  return g;
}

// A small model-like parameter list: GaLore targets and plain tensors.
std::vector<ParamInfo> model_params() {
  return {{"model.embed_tokens.weight", ParamKind::Embedding, 100, 48, false},
          {"model.layers.0.input_layernorm.weight", ParamKind::Norm, 48, 1, false},
          {"model.layers.0.self_attn.q_proj.weight", ParamKind::Linear, 48, 48, true},
          {"model.layers.0.mlp.up_proj.weight", ParamKind::Linear, 128, 48, true},
          {"model.layers.0.mlp.down_proj.weight", ParamKind::Linear, 48, 128, true},
          {"model.layers.0.mlp.big_proj.weight", ParamKind::Linear, 128, 512, true},  // projected >= 4096 elements
          {"lm_head.weight", ParamKind::LmHead, 100, 48, false}};
}

OptimizerConfig galore_cfg(bool eight_bit) {
  OptimizerConfig cfg;
  cfg.name = eight_bit ? "galore_adamw8bit" : "galore_adamw";
  cfg.lr = 1e-2;
  cfg.weight_decay = 0.1;
  cfg.eps = 1e-6;
  cfg.galore.rank = 8;
  cfg.galore.update_proj_gap = 3;
  cfg.galore.scale = 0.25;
  cfg.galore.projector = "svd";
  return cfg;
}

using Weights = std::vector<std::vector<float>>;

Weights init_weights(const std::vector<ParamInfo>& params) {
  Weights w;
  for (size_t k = 0; k < params.size(); ++k) w.push_back(randn(size_t(params[k].numel()), 500 + k, 0.1f));
  return w;
}

// Runs steps [from, to) with n_micro micro-batches, each given grad/n_micro.
void run(Optimizer& opt, const std::vector<ParamInfo>& params, Weights& w, int from, int to, int n_micro = 1,
         double clip_scale = 1.0, double clip_norm = 0.0) {
  for (int step = from; step < to; ++step)
    for (size_t k = 0; k < params.size(); ++k) {
      const auto g = grad_for(params[k].rows, params[k].cols, step, 1000 + 17 * k);
      Tensor W(w[k].data(), DType::F32, Device::CPU, {params[k].rows, params[k].cols});
      for (int micro = 0; micro < n_micro; ++micro) {
        std::vector<float> part(g.size());
        for (size_t i = 0; i < g.size(); ++i) part[i] = g[i] / float(n_micro);
        Tensor G(part.data(), DType::F32, Device::CPU, {params[k].rows, params[k].cols});
        opt.on_grad(int(k), W, G, StepInfo{step, 1e-2, clip_scale, clip_norm, micro, n_micro});
      }
    }
}

void expect_same(const Weights& a, const Weights& b, double tol = 0.0) {
  for (size_t k = 0; k < a.size(); ++k)
    for (size_t i = 0; i < a[k].size(); ++i) {
      if (tol == 0.0)
        ASSERT_EQ(a[k][i], b[k][i]) << "param " << k << " element " << i;
      else
        ASSERT_NEAR(a[k][i], b[k][i], tol) << "param " << k << " element " << i;
    }
}

}  // namespace

TEST(GaloreParity, OfficialTrajectoryTinyLlama) {
  bool ok = false;
  const auto report = check_galore_fixture(std::string(GALORE_SOURCE_DIR) + "/tests/fixtures/tiny_llama", 1e-4, &ok);
  for (const auto& c : report["cases"]) {
    std::printf("%-6s %-12s side %-5s max %.3e  per step:", c["case"].get<std::string>().c_str(),
                c["proj_type"].get<std::string>().c_str(), c["side"].get<std::string>().c_str(),
                c["max_error"].get<double>());
    for (const auto& e : c["errors"]) std::printf(" %.2e", e.get<double>());
    std::printf("\n");
  }
  EXPECT_EQ(report["cases"].size(), 5u);
  for (const auto& c : report["cases"]) EXPECT_EQ(c["errors"].size(), 7u);
  EXPECT_TRUE(ok) << report.dump(1);
}

TEST(GaloreParity, MissingFixtureIsAnError) {
  bool ok = true;
  EXPECT_THROW(check_galore_fixture("/nonexistent/dir", 1e-4, &ok), Error);
}

TEST(Galore, ProjectedStateShapesAndSides) {
  const auto params = model_params();
  GaloreAdamW opt(galore_cfg(true), params, true);
  EXPECT_EQ(opt.geometry(0), nullptr);
  EXPECT_EQ(opt.geometry(2)->side, ProjSide::Right);  // 48x48: m >= n
  EXPECT_EQ(opt.geometry(3)->side, ProjSide::Right);  // 128x48
  EXPECT_EQ(opt.geometry(4)->side, ProjSide::Left);   // 48x128
  EXPECT_EQ(opt.geometry(5)->numel(), 8 * 512);
  EXPECT_EQ(opt.name(), "galore_adamw8bit");
}

TEST(Galore, AccumulationEquivalence) {
  // n_micro = 2 with half gradients == n_micro = 1 with the sum, on steps with
  // and without refresh (halving is exact, so the projectors agree too).
  for (bool eight_bit : {false, true}) {
    const auto params = model_params();
    auto cfg = galore_cfg(eight_bit);
    GaloreAdamW one(cfg, params, eight_bit), two(cfg, params, eight_bit);
    Weights w1 = init_weights(params), w2 = w1;
    for (int step = 0; step < 5; ++step) {
      run(one, params, w1, step, step + 1, 1);
      run(two, params, w2, step, step + 1, 2);
      EXPECT_EQ(one.take_grad_sq_norm(), two.take_grad_sq_norm());
    }
    expect_same(w1, w2);
  }
}

TEST(Galore, AccumulationOfUnequalMicroBatches) {
  // Different micro-batch gradients summing to G: equal up to float rounding.
  const auto params = model_params();
  auto cfg = galore_cfg(false);
  cfg.galore.update_proj_gap = 100;
  GaloreAdamW one(cfg, params, false), two(cfg, params, false);
  Weights w1 = init_weights(params), w2 = w1;
  run(one, params, w1, 0, 1);
  run(two, params, w2, 0, 1);  // same refresh at step 0
  for (int step = 1; step < 4; ++step)
    for (size_t k = 0; k < params.size(); ++k) {
      const auto g = grad_for(params[k].rows, params[k].cols, step, 7 + k);
      std::vector<float> a(g.size()), b(g.size());
      for (size_t i = 0; i < g.size(); ++i) {
        a[i] = 0.3f * g[i];
        b[i] = g[i] - a[i];
      }
      auto sum = g;
      const std::vector<int64_t> shape = {params[k].rows, params[k].cols};
      Tensor W1(w1[k].data(), DType::F32, Device::CPU, {shape[0], shape[1]});
      Tensor W2(w2[k].data(), DType::F32, Device::CPU, {shape[0], shape[1]});
      Tensor S(sum.data(), DType::F32, Device::CPU, {shape[0], shape[1]});
      Tensor A(a.data(), DType::F32, Device::CPU, {shape[0], shape[1]}), B(b.data(), DType::F32, Device::CPU, {shape[0], shape[1]});
      one.on_grad(int(k), W1, S, StepInfo{step, 1e-2, 1.0, 0.0, 0, 1});
      two.on_grad(int(k), W2, A, StepInfo{step, 1e-2, 1.0, 0.0, 0, 2});
      two.on_grad(int(k), W2, B, StepInfo{step, 1e-2, 1.0, 0.0, 1, 2});
    }
  expect_same(w1, w2, 1e-6);
}

TEST(Galore, ClippingAndGradNorm) {
  const std::vector<ParamInfo> params = {{"w", ParamKind::Linear, 40, 24, true}};
  auto cfg = galore_cfg(false);
  GaloreAdamW a(cfg, params, false), b(cfg, params, false);
  Weights wa = init_weights(params), wb = wa;
  run(a, params, wa, 0, 1);
  const double sq = a.take_grad_sq_norm();
  // The reported norm is of the projected gradient: |G·Bᵀ|² <= |G|².
  const auto g = grad_for(40, 24, 0, 1000);
  double full = 0;
  for (float x : g) full += double(x) * x;
  EXPECT_GT(sq, 0.5 * full);
  EXPECT_LE(sq, full * (1 + 1e-6));
  // A per-tensor clip far below the norm changes the update (Adam is scale
  // invariant only up to eps; with eps = 1e-6 and a 1e-6 clip it differs).
  run(b, params, wb, 0, 1, 1, 1.0, 1e-7);
  EXPECT_NEAR(b.take_grad_sq_norm(), sq, 1e-9 * sq);  // pre-clip norm reported
  bool differs = false;
  for (size_t i = 0; i < wa[0].size(); ++i) differs |= wa[0][i] != wb[0][i];
  EXPECT_TRUE(differs);
}

TEST(Galore, NonFiniteGradient) {
  const std::vector<ParamInfo> params = {{"w", ParamKind::Linear, 40, 24, true}, {"n", ParamKind::Norm, 24, 1, false}};
  for (bool eight_bit : {false, true}) {
    GaloreAdamW opt(galore_cfg(eight_bit), params, eight_bit);
    Weights w = init_weights(params);
    run(opt, params, w, 0, 2);
    auto g = grad_for(40, 24, 2, 5);
    g[10] = std::numeric_limits<float>::quiet_NaN();  // row 0: poisons row 0 of R = G·Bᵀ
    Tensor W(w[0].data(), DType::F32, Device::CPU, {40, 24}), G(g.data(), DType::F32, Device::CPU, {40, 24});
    const auto before = w[0];
    opt.on_grad(0, W, G, StepInfo{2, 1e-2, 1.0, 0.0, 0, 1});
    EXPECT_EQ(opt.take_nonfinite_count(), 8);  // the r = 8 entries of R's row 0
    for (float x : w[0]) ASSERT_TRUE(std::isfinite(x));
    std::vector<float> m, v;
    opt.moments(0, &m, &v);
    for (int j = 0; j < 8; ++j) EXPECT_EQ(m[size_t(j)], 0.0f);
    for (float x : m) ASSERT_TRUE(std::isfinite(x));
    // Row 0 of W only decays (its update direction is 0).
    for (int j = 0; j < 24; ++j) EXPECT_FLOAT_EQ(w[0][size_t(j)], before[size_t(j)] * float(1 - 1e-2 * 0.1));
  }
}

TEST(Galore, MomentsResetOnRefresh) {
  // With reset, the step after a refresh equals a fresh optimizer's first step
  // on the same gradient: moments zeroed and bias correction restarted.
  const std::vector<ParamInfo> params = {{"w", ParamKind::Linear, 40, 24, true}};
  auto cfg = galore_cfg(false);
  cfg.weight_decay = 0.0;
  cfg.galore.update_proj_gap = 2;
  cfg.galore.moments_on_refresh = "reset";
  GaloreAdamW x(cfg, params, false), y(cfg, params, false);
  Weights wx = init_weights(params), wy = wx;
  run(x, params, wx, 0, 2);
  const auto before = wx[0];
  const auto g2 = grad_for(40, 24, 2, 1000);
  auto gx = g2, gy = g2;
  Tensor WX(wx[0].data(), DType::F32, Device::CPU, {40, 24}), GX(gx.data(), DType::F32, Device::CPU, {40, 24});
  Tensor WY(wy[0].data(), DType::F32, Device::CPU, {40, 24}), GY(gy.data(), DType::F32, Device::CPU, {40, 24});
  x.on_grad(0, WX, GX, StepInfo{2, 1e-2, 1.0, 0.0, 0, 1});
  y.on_grad(0, WY, GY, StepInfo{0, 1e-2, 1.0, 0.0, 0, 1});
  EXPECT_EQ(x.refreshes(0), 2);
  EXPECT_EQ(x.projector_B(0), y.projector_B(0));
  std::vector<float> mx, vx, my, vy;
  x.moments(0, &mx, &vx);
  y.moments(0, &my, &vy);
  EXPECT_EQ(mx, my);
  EXPECT_EQ(vx, vy);
  const auto w0 = init_weights(params)[0];
  for (size_t i = 0; i < wx[0].size(); ++i) EXPECT_NEAR(wx[0][i] - before[i], wy[0][i] - w0[i], 1e-7);
}

TEST(Galore, MomentsReprojectWithUnchangedSubspace) {
  // Gradients c_t·G with c_t > 0 (powers of two: exact) share G's singular
  // vectors, so P_new == P_old: reproject must leave the moments as keep does.
  const std::vector<ParamInfo> params = {{"w", ParamKind::Linear, 40, 24, true}, {"l", ParamKind::Linear, 24, 40, true}};
  auto keep = galore_cfg(false), repro = keep;
  keep.galore.update_proj_gap = 1;
  repro.galore.update_proj_gap = 1;
  repro.galore.moments_on_refresh = "reproject";
  for (bool eight_bit : {false, true}) {
    GaloreAdamW a(keep, params, eight_bit), b(repro, params, eight_bit);
    Weights wa = init_weights(params), wb = wa;
    for (int step = 0; step < 4; ++step)
      for (size_t k = 0; k < params.size(); ++k) {
        auto g = grad_for(params[k].rows, params[k].cols, 0, 3 + k);
        for (auto& x : g) x *= float(1 << step);
        auto g2 = g;
        Tensor WA(wa[k].data(), DType::F32, Device::CPU, {params[k].rows, params[k].cols});
        Tensor WB(wb[k].data(), DType::F32, Device::CPU, {params[k].rows, params[k].cols});
        Tensor GA(g.data(), DType::F32, Device::CPU, {params[k].rows, params[k].cols});
        Tensor GB(g2.data(), DType::F32, Device::CPU, {params[k].rows, params[k].cols});
        a.on_grad(int(k), WA, GA, StepInfo{step, 1e-2, 1.0, 0.0, 0, 1});
        b.on_grad(int(k), WB, GB, StepInfo{step, 1e-2, 1.0, 0.0, 0, 1});
      }
    EXPECT_EQ(b.refreshes(0), 4);
    // fp32: equal up to the rounding of M = P_newᵀ·P_old ≈ I; 8-bit: requantization also.
    expect_same(wa, wb, eight_bit ? 2e-4 : 1e-6);
  }
}

TEST(Galore, MomentsReprojectKeepsNonNegativeV) {
  const std::vector<ParamInfo> params = {{"w", ParamKind::Linear, 64, 40, true}};
  auto cfg = galore_cfg(false);
  cfg.galore.update_proj_gap = 2;
  cfg.galore.moments_on_refresh = "reproject";
  cfg.galore.projector = "randomized";
  GaloreAdamW opt(cfg, params, false);
  Weights w = init_weights(params);
  run(opt, params, w, 0, 7);
  std::vector<float> m, v;
  opt.moments(0, &m, &v);
  for (float x : v) EXPECT_GE(x, 0.0f);
  for (float x : w[0]) EXPECT_TRUE(std::isfinite(x));
}

TEST(Galore, SaveLoadContinuesIdentically) {
  for (bool eight_bit : {false, true})
    for (const char* projector : {"svd", "randomized"}) {
      const auto params = model_params();
      auto cfg = galore_cfg(eight_bit);
      cfg.galore.projector = projector;
      cfg.galore.proj_type = "std";
      GaloreAdamW a(cfg, params, eight_bit);
      Weights wa = init_weights(params);
      run(a, params, wa, 0, 4);  // refreshes at 0 and 3; the next one (6) happens after the resume
      SafetensorsWriter out;
      a.save_state(out);
      const std::string path = ::testing::TempDir() + "/galore_state_" + std::to_string(::getpid()) + ".safetensors";
      out.write(path);
      GaloreAdamW b(cfg, params, eight_bit);
      b.load_state(SafetensorsFile::open(path));
      Weights wb = wa;
      run(a, params, wa, 4, 8);
      run(b, params, wb, 4, 8);
      expect_same(wa, wb);
      // The state is named by parameter.
      auto f = SafetensorsFile::open(path);
      EXPECT_TRUE(f.has("galore.B.model.layers.0.self_attn.q_proj.weight"));
      EXPECT_TRUE(f.has("galore.A.model.layers.0.mlp.down_proj.weight"));
      EXPECT_TRUE(f.has("adam.t.lm_head.weight"));
      EXPECT_EQ(f.has("adam8.m.codes.model.layers.0.mlp.big_proj.weight"), eight_bit);
    }
}

TEST(Galore, LoadRejectsMismatchedState) {
  const auto params = model_params();
  GaloreAdamW a(galore_cfg(false), params, false);
  SafetensorsWriter out;
  a.save_state(out);
  const std::string path = ::testing::TempDir() + "/galore_state_r8_" + std::to_string(::getpid()) + ".safetensors";
  out.write(path);
  auto cfg = galore_cfg(false);
  cfg.galore.rank = 4;
  GaloreAdamW b(cfg, params, false);
  EXPECT_THROW(b.load_state(SafetensorsFile::open(path)), Error);
}

TEST(Galore, MemoryAccountingEqualsAllocation) {
  const auto params = model_params();
  auto backend = make_cpu_backend();
  for (const char* name : {"sgd", "adamw", "adamw8bit", "galore_adamw", "galore_adamw8bit"})
    for (const char* proj_type : {"std", "reverse_std", "left", "right", "full"})
      for (int n_micro : {1, 3}) {
        auto cfg = galore_cfg(false);
        cfg.name = name;
        cfg.momentum = 0.9;
        cfg.galore.proj_type = proj_type;
        auto opt = make_optimizer(cfg, params, *backend);
        Weights w = init_weights(params);
        run(*opt, params, w, 0, 1, n_micro);  // accumulators are allocated on first use
        const OptimStateBytes b = optimizer_state_bytes(cfg, params, n_micro, 4);
        const std::string what = std::string(name) + " " + proj_type + " n_micro " + std::to_string(n_micro);
        EXPECT_EQ(opt->state_bytes(), b.total()) << what;
        if (auto* g = dynamic_cast<GaloreAdamW*>(opt.get())) {
          const auto d = g->state_bytes_detail();
          EXPECT_EQ(d.codes, b.codes) << what;
          EXPECT_EQ(d.absmax, b.absmax) << what;
          EXPECT_EQ(d.fp32_states, b.fp32_states) << what;
          EXPECT_EQ(d.projectors, b.projectors) << what;
          EXPECT_EQ(d.accumulators, b.accumulators) << what;
        }
      }
  // Projectors on a bf16 device: half the bytes.
  auto cfg = galore_cfg(true);
  EXPECT_EQ(optimizer_state_bytes(cfg, params, 1, 2).projectors * 2, optimizer_state_bytes(cfg, params, 1, 4).projectors);
}

TEST(Galore, FactoryAndConfigErrors) {
  const auto params = model_params();
  auto backend = make_cpu_backend();
  auto cfg = galore_cfg(false);
  EXPECT_EQ(make_optimizer(cfg, params, *backend)->name(), "galore_adamw");
  cfg.name = "adamw8bit";
  EXPECT_EQ(make_optimizer(cfg, params, *backend)->name(), "adamw8bit");
  cfg.name = "galore_adamw";
  cfg.galore.proj_type = "diagonal";
  EXPECT_THROW(make_optimizer(cfg, params, *backend), Error);
  cfg = galore_cfg(false);
  cfg.galore.moments_on_refresh = "forget";
  EXPECT_THROW(make_optimizer(cfg, params, *backend), Error);
  cfg = galore_cfg(false);
  cfg.galore.projector = "qr";
  EXPECT_THROW(make_optimizer(cfg, params, *backend), Error);
  cfg = galore_cfg(false);
  cfg.name = "lion";
  EXPECT_THROW(make_optimizer(cfg, params, *backend), Error);
}
