// Blockwise 8-bit quantization (bitsandbytes dynamic map) and the 8-bit AdamW.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "config/config.h"
#include "core/rng.h"
#include "core/safetensors.h"
#include "cuda/adam8bit.h"
#include "cuda/quant8.h"
#include "optim/adamw8bit.h"
#include "optim/basic.h"
#include "optim/memory.h"

#include "test_util.h"

using namespace gt;

namespace {

using test::randn;

StepInfo step_info(int64_t step, double lr, int micro = 0, int n_micro = 1) {
  return StepInfo{step, lr, 1.0, 0.0, micro, n_micro};
}

}  // namespace

// ---------------- the maps ----------------

TEST(DynamicMap, SignedStructure) {
  const float* m = dynamic_map_signed();
  for (int i = 1; i < 256; ++i) EXPECT_LT(m[i - 1], m[i]) << i;  // sorted, no duplicates
  // 127 negatives, 0, 127 positives, 1.0 (the construction has no -1.0: the
  // most negative entry is the top mean of linspace(0.1, 1, 65)).
  EXPECT_EQ(m[127], 0.0f);
  EXPECT_EQ(m[255], 1.0f);
  EXPECT_NEAR(m[0], -0.99296875f, 1e-7f);
  EXPECT_NEAR(m[254], 0.99296875f, 1e-7f);
  for (int i = 0; i < 127; ++i) EXPECT_EQ(m[i], -m[254 - i]) << i;  // symmetric apart from 1.0
  // Smallest magnitudes: decade 1e-6 has one mean (0.55), decade 1e-5 two
  // (0.325, 0.775), decade 1e-4 four (0.2125, 0.4375, 0.6625, 0.8875).
  EXPECT_NEAR(m[128], 5.5e-7f, 1e-12f);
  EXPECT_NEAR(m[126], -5.5e-7f, 1e-12f);
  EXPECT_NEAR(m[129], 3.25e-6f, 1e-11f);
  EXPECT_NEAR(m[130], 7.75e-6f, 1e-11f);
  EXPECT_NEAR(m[131], 2.125e-5f, 1e-10f);
  EXPECT_NEAR(m[134], 8.875e-5f, 1e-10f);
  // The top decade has 64 entries per sign, spaced 0.9/64.
  EXPECT_NEAR(m[191], 0.1f + 0.9f / 128.0f, 1e-6f);
  EXPECT_NEAR(m[190], 0.1f * (1.0f - 0.9f / 64.0f), 1e-7f);
}

TEST(DynamicMap, UnsignedStructure) {
  const float* m = dynamic_map_unsigned();
  for (int i = 1; i < 256; ++i) EXPECT_LT(m[i - 1], m[i]) << i;
  EXPECT_EQ(m[0], 0.0f);
  EXPECT_EQ(m[255], 1.0f);
  // Twice the fraction items per decade: decade 1e-6 has (0.325, 0.775).
  EXPECT_NEAR(m[1], 3.25e-7f, 1e-12f);
  EXPECT_NEAR(m[2], 7.75e-7f, 1e-12f);
  EXPECT_NEAR(m[254], 1.0f - 0.9f / 256.0f, 1e-6f);  // top mean of linspace(0.1, 1, 129)
  EXPECT_NEAR(m[127], 0.1f + 0.9f / 256.0f, 1e-6f);  // first mean of the top decade (128 entries)
}

TEST(DynamicMap, CreateMatchesCachedAndIsDeterministic) {
  std::vector<float> a(256), b(256);
  create_dynamic_map(true, a.data());
  create_dynamic_map(true, b.data());
  for (int i = 0; i < 256; ++i) {
    EXPECT_EQ(a[i], b[i]);
    EXPECT_EQ(a[i], dynamic_map_signed()[i]);
  }
}

// ---------------- quantize / dequantize ----------------

TEST(Quant8, EveryCodeRoundTrips) {
  for (const float* map : {dynamic_map_signed(), dynamic_map_unsigned()})
    for (int c = 0; c < 256; ++c) EXPECT_EQ(quant8(map, map[c], 1.0f), c) << c;
}

TEST(Quant8, NearestCode) {
  const float* m = dynamic_map_signed();
  EXPECT_EQ(quant8_nearest(m, 0.0f), 127);
  EXPECT_EQ(quant8_nearest(m, 1.0f), 255);
  EXPECT_EQ(quant8_nearest(m, -1.0f), 0);  // clamps to the most negative entry
  EXPECT_EQ(quant8_nearest(m, 2.0f), 255);
  EXPECT_EQ(quant8_nearest(m, 1e-9f), 127);
  // Halfway between two codes goes low; a hair above goes high.
  const float mid = 0.5f * (m[200] + m[201]);
  EXPECT_EQ(quant8_nearest(m, mid), 200);
  EXPECT_EQ(quant8_nearest(m, std::nextafter(mid, 1.0f)), 201);
  // Brute force agreement with an exhaustive nearest search.
  Rng rng(3);
  for (int i = 0; i < 20000; ++i) {
    const float x = float(2.0 * rng.uniform() - 1.0) * float(std::pow(10.0, -7.0 * rng.uniform()));
    int best = 0;
    for (int c = 1; c < 256; ++c)
      if (std::fabs(x - m[c]) < std::fabs(x - m[best])) best = c;
    EXPECT_EQ(std::fabs(x - m[quant8_nearest(m, x)]), std::fabs(x - m[best])) << x;
  }
}

TEST(Quant8, BlockwiseRoundTripErrorBounds) {
  const int64_t n = 3 * kQuantBlock + 17;  // a partial last block
  auto x = randn(size_t(n), 11);
  x[5] = 40.0f;  // one block with a large outlier
  std::vector<uint8_t> codes(static_cast<size_t>(n));
  std::vector<float> absmax(static_cast<size_t>(quant8_blocks(n))), y(static_cast<size_t>(n));
  quantize_blockwise_cpu(dynamic_map_signed(), x.data(), n, codes.data(), absmax.data());
  dequantize_blockwise_cpu(dynamic_map_signed(), codes.data(), absmax.data(), n, y.data());
  ASSERT_EQ(absmax.size(), 4u);
  EXPECT_EQ(absmax[0], 40.0f);
  for (int64_t i = 0; i < n; ++i) {
    const float a = absmax[size_t(i / kQuantBlock)];
    // The widest gap of the signed map is in the top decade (0.9/64): half of it.
    EXPECT_LE(std::fabs(x[size_t(i)] - y[size_t(i)]), 0.00704f * a) << i;
    if (std::fabs(x[size_t(i)]) >= 0.1f * a) EXPECT_LE(std::fabs(x[size_t(i)] - y[size_t(i)]), 0.0704f * std::fabs(x[size_t(i)]));
  }
  // Unsigned map on non-negative data (second moments): half of 0.9/128.
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[size_t(i)] = x[size_t(i)] * x[size_t(i)];
  quantize_blockwise_cpu(dynamic_map_unsigned(), v.data(), n, codes.data(), absmax.data());
  dequantize_blockwise_cpu(dynamic_map_unsigned(), codes.data(), absmax.data(), n, y.data());
  for (int64_t i = 0; i < n; ++i)
    EXPECT_LE(std::fabs(v[size_t(i)] - y[size_t(i)]), 0.00352f * absmax[size_t(i / kQuantBlock)]) << i;
}

TEST(Quant8, AllZeroBlock) {
  std::vector<float> x(300, 0.0f), y(300, 1.0f);
  std::vector<uint8_t> codes(300);
  std::vector<float> absmax(2);
  quantize_blockwise_cpu(dynamic_map_signed(), x.data(), 300, codes.data(), absmax.data());
  dequantize_blockwise_cpu(dynamic_map_signed(), codes.data(), absmax.data(), 300, y.data());
  for (int i = 0; i < 300; ++i) {
    EXPECT_EQ(codes[size_t(i)], 127);
    EXPECT_EQ(y[size_t(i)], 0.0f);
  }
}

// ---------------- the 8-bit Adam step ----------------

TEST(Adam8bit, FirstStepEqualsFp32) {
  // From zero states the fresh moments are exact, so the direction matches fp32 Adam bit for bit.
  const int64_t n = 5000;
  auto g = randn(size_t(n), 21, 0.01f);
  std::vector<float> d8(static_cast<size_t>(n)), d32(static_cast<size_t>(n)), m(size_t(n), 0.0f), v(size_t(n), 0.0f);
  AdamMoments q(n, true);
  ASSERT_TRUE(q.quantized());
  q.step(g.data(), d8.data(), 0.9f, 0.999f, 1e-8f);
  adam32_step_cpu(g.data(), d32.data(), m.data(), v.data(), n, 0.9f, 0.999f, 1e-8f);
  for (int64_t i = 0; i < n; ++i) EXPECT_EQ(d8[size_t(i)], d32[size_t(i)]);
  // The stored states dequantize close to the fp32 ones.
  std::vector<float> mq(static_cast<size_t>(n)), vq(static_cast<size_t>(n));
  q.get(mq.data(), vq.data());
  float am = 0, av = 0;
  for (int64_t i = 0; i < n; ++i) am = std::max(am, std::fabs(m[size_t(i)])), av = std::max(av, v[size_t(i)]);
  for (int64_t i = 0; i < n; ++i) {
    EXPECT_LE(std::fabs(mq[size_t(i)] - m[size_t(i)]), 0.00704f * am);
    EXPECT_LE(std::fabs(vq[size_t(i)] - v[size_t(i)]), 0.00352f * av);
  }
}

TEST(Adam8bit, UnderflowedSecondMomentGivesNoStep) {
  // One block of 256 (4096 elements in all, so the states are 8-bit): element 1 once
  // gets a gradient 1e5 times smaller than its block's largest, so its v (1e10 times
  // smaller) quantizes to 0 while its m does not. A later step with g = 0 there must
  // not divide m by eps (bitsandbytes would step by ~100 here). The others keep Adam's
  // raw m/sqrt(v) of step 2 with g = 1: 0.19/sqrt(0.001999) = 4.25.
  const int64_t n = 4096;
  AdamMoments q(n, true);
  ASSERT_TRUE(q.quantized());
  std::vector<float> g(static_cast<size_t>(n), 1.0f), dir(static_cast<size_t>(n));
  g[1] = 1e-5f;
  q.step(g.data(), dir.data(), 0.9f, 0.999f, 1e-8f);
  std::vector<float> m(static_cast<size_t>(n)), v(static_cast<size_t>(n));
  q.get(m.data(), v.data());
  ASSERT_EQ(v[1], 0.0f) << "the test needs v to underflow";
  ASSERT_NE(m[1], 0.0f) << "the test needs m to survive";
  g[1] = 0.0f;
  q.step(g.data(), dir.data(), 0.9f, 0.999f, 1e-8f);
  EXPECT_EQ(dir[1], 0.0f);
  float worst = 0.0f;
  for (int64_t i = 0; i < n; ++i) worst = std::max(worst, std::fabs(dir[size_t(i)]));
  EXPECT_LT(worst, 4.5f);
}

TEST(Adam8bit, NonFiniteGradientZeroesStateAndLeavesWeight) {
  OptimizerConfig cfg;
  cfg.name = "adamw8bit";
  cfg.weight_decay = 0.1;
  const int64_t n = 4096;
  std::vector<ParamInfo> params = {{"w", ParamKind::Linear, 64, 64, false}};
  AdamW8bit opt(cfg, params);
  auto w = randn(size_t(n), 1);
  for (int step = 0; step < 3; ++step) {
    auto g = randn(size_t(n), 100 + uint64_t(step));
    if (step == 2) {
      g[7] = std::numeric_limits<float>::quiet_NaN();
      g[300] = std::numeric_limits<float>::infinity();
      g[301] = -std::numeric_limits<float>::infinity();
    }
    const auto before = w;
    Tensor W(w.data(), DType::F32, Device::CPU, {64, 64}), G(g.data(), DType::F32, Device::CPU, {64, 64});
    opt.on_grad(0, W, G, step_info(step, 1e-2));
    if (step == 2) {
      for (int i : {7, 300, 301}) EXPECT_EQ(w[size_t(i)], before[size_t(i)]) << i;
      EXPECT_NE(w[8], before[8]);
      for (float x : w) EXPECT_TRUE(std::isfinite(x));
    }
  }
  EXPECT_EQ(opt.take_nonfinite_count(), 3);
  // The zeroed elements dequantize to exactly 0 (the code of 0 in each map).
  SafetensorsWriter out;
  opt.save_state(out);
  const std::string path = ::testing::TempDir() + "/adam8_nan.safetensors";
  out.write(path);
  auto f = SafetensorsFile::open(path);
  const auto& cm = f.get("adam8.m.codes.w");
  const auto& cv = f.get("adam8.v.codes.w");
  for (int i : {7, 300, 301}) {
    EXPECT_EQ(dynamic_map_signed()[cm.data[i]], 0.0f);
    EXPECT_EQ(dynamic_map_unsigned()[cv.data[i]], 0.0f);
  }
}

TEST(Adam8bit, Fp32StatesBelowThreshold) {
  OptimizerConfig cfg;
  cfg.name = "adamw8bit";
  std::vector<ParamInfo> params = {{"small", ParamKind::Linear, 4095, 1, false},
                                   {"big", ParamKind::Linear, 4096, 1, false},
                                   {"odd", ParamKind::Linear, 4097, 1, false}};
  AdamW8bit opt(cfg, params);
  const auto b = opt.state_bytes_detail();
  EXPECT_EQ(b.fp32_states, 2u * 4095u * 4u);
  EXPECT_EQ(b.codes, 2u * (4096u + 4097u));
  EXPECT_EQ(b.absmax, 2u * (16u + 17u) * 4u);
  EXPECT_EQ(opt.state_bytes(), b.total());
  EXPECT_EQ(optimizer_state_bytes(cfg, params, 1, 4).total(), opt.state_bytes());
}

TEST(Adam8bit, TracksFp32AdamW) {
  // Minimize 0.5*|w - target|^2 with both; the 8-bit trajectory stays close.
  OptimizerConfig cfg;
  cfg.weight_decay = 0.01;
  const int64_t n = 8192;
  std::vector<ParamInfo> params = {{"w", ParamKind::Linear, 128, 64, false}};
  AdamW ref(cfg, params);
  AdamW8bit q8(cfg, params);
  auto w32 = randn(size_t(n), 5), w8 = w32, target = randn(size_t(n), 6);
  const auto w0 = w32;
  for (int step = 0; step < 50; ++step) {
    std::vector<float> g32(static_cast<size_t>(n)), g8(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      g32[size_t(i)] = w32[size_t(i)] - target[size_t(i)];
      g8[size_t(i)] = w8[size_t(i)] - target[size_t(i)];
    }
    Tensor W32(w32.data(), DType::F32, Device::CPU, {128, 64}), G32(g32.data(), DType::F32, Device::CPU, {128, 64});
    Tensor W8(w8.data(), DType::F32, Device::CPU, {128, 64}), G8(g8.data(), DType::F32, Device::CPU, {128, 64});
    ref.on_grad(0, W32, G32, step_info(step, 1e-2));
    q8.on_grad(0, W8, G8, step_info(step, 1e-2));
  }
  double diff = 0, moved = 0, loss32 = 0, loss8 = 0, loss0 = 0;
  for (int64_t i = 0; i < n; ++i) {
    diff += std::pow(double(w8[size_t(i)]) - w32[size_t(i)], 2);
    moved += std::pow(double(w32[size_t(i)]) - w0[size_t(i)], 2);
    loss0 += std::pow(double(w0[size_t(i)]) - target[size_t(i)], 2);
    loss32 += std::pow(double(w32[size_t(i)]) - target[size_t(i)], 2);
    loss8 += std::pow(double(w8[size_t(i)]) - target[size_t(i)], 2);
  }
  std::printf("8-bit vs fp32 AdamW after 50 steps: trajectory rel diff %.4f, loss %.4f vs %.4f (start %.4f)\n",
              std::sqrt(diff / moved), loss8, loss32, loss0);
  EXPECT_LT(std::sqrt(diff / moved), 0.06);
  EXPECT_LT(std::fabs(loss8 - loss32), 0.02 * (loss0 - loss32));
}

TEST(Adam8bit, AccumulationEquivalence) {
  // n_micro = 2 with half gradients == n_micro = 1 with the sum (exact: halving is exact).
  OptimizerConfig cfg;
  cfg.weight_decay = 0.1;
  std::vector<ParamInfo> params = {{"a", ParamKind::Linear, 64, 80, false}, {"b", ParamKind::Norm, 64, 1, false}};
  AdamW8bit one(cfg, params), two(cfg, params);
  std::vector<std::vector<float>> w1 = {randn(64 * 80, 1), randn(64, 2)}, w2 = w1;
  for (int step = 0; step < 4; ++step) {
    for (int p = 0; p < 2; ++p) {
      const int64_t r = params[size_t(p)].rows, c = params[size_t(p)].cols;
      auto g = randn(size_t(r * c), 1000 + uint64_t(step * 2 + p));
      Tensor W1(w1[size_t(p)].data(), DType::F32, Device::CPU, {r, c}), G(g.data(), DType::F32, Device::CPU, {r, c});
      std::vector<float> gsum = g;
      Tensor Gs(gsum.data(), DType::F32, Device::CPU, {r, c});
      one.on_grad(p, W1, Gs, step_info(step, 1e-2));
      Tensor W2(w2[size_t(p)].data(), DType::F32, Device::CPU, {r, c});
      for (int micro = 0; micro < 2; ++micro) {
        std::vector<float> half(g.size());
        for (size_t i = 0; i < g.size(); ++i) half[i] = 0.5f * g[i];
        Tensor H(half.data(), DType::F32, Device::CPU, {r, c});
        two.on_grad(p, W2, H, step_info(step, 1e-2, micro, 2));
      }
    }
    EXPECT_EQ(one.take_grad_sq_norm(), two.take_grad_sq_norm());
  }
  for (int p = 0; p < 2; ++p)
    for (size_t i = 0; i < w1[size_t(p)].size(); ++i) ASSERT_EQ(w1[size_t(p)][i], w2[size_t(p)][i]);
}

TEST(Adam8bit, SaveLoadContinuesIdentically) {
  OptimizerConfig cfg;
  cfg.weight_decay = 0.05;
  std::vector<ParamInfo> params = {{"big", ParamKind::Linear, 100, 50, false}, {"small", ParamKind::Norm, 50, 1, false}};
  AdamW8bit a(cfg, params);
  std::vector<std::vector<float>> wa = {randn(5000, 1), randn(50, 2)};
  auto run = [&](AdamW8bit& opt, std::vector<std::vector<float>>& w, int from, int to) {
    for (int step = from; step < to; ++step)
      for (int p = 0; p < 2; ++p) {
        auto g = randn(w[size_t(p)].size(), 50 + uint64_t(step * 2 + p));
        Tensor W(w[size_t(p)].data(), DType::F32, Device::CPU, {int64_t(w[size_t(p)].size())});
        Tensor G(g.data(), DType::F32, Device::CPU, {int64_t(g.size())});
        opt.on_grad(p, W, G, step_info(step, 1e-2));
      }
  };
  run(a, wa, 0, 3);
  SafetensorsWriter out;
  a.save_state(out);
  const std::string path = ::testing::TempDir() + "/adam8_state.safetensors";
  out.write(path);
  AdamW8bit b(cfg, params);
  b.load_state(SafetensorsFile::open(path));
  auto wb = wa;
  run(a, wa, 3, 6);
  run(b, wb, 3, 6);
  for (int p = 0; p < 2; ++p)
    for (size_t i = 0; i < wa[size_t(p)].size(); ++i) ASSERT_EQ(wa[size_t(p)][i], wb[size_t(p)][i]);
}
