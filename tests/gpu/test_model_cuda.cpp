// Whole-model checks on the CUDA backend (label gpu), on a small LLaMA with
// GQA, a padded MLP width (I = 100 is held as 104) and an odd sequence length:
//   - recompute (training.recompute, the 7B recipe) gives the same loss and
//     bit-identical weight gradients as keeping every activation, also when
//     lm_head's backward runs inside forward and over two accumulated
//     micro-batches: the kernels' reductions are deterministic and every GEMM
//     sees the same shapes and 256-byte aligned arena pointers, so the CPU
//     test's bitwise claim (tests/test_model.cpp) must hold on the GPU too;
//   - the model's loss and every weight gradient match the CPU reference
//     (fp32) within bf16 tolerance, with recompute and a chunked logits
//     workspace;
//   - the backend's stream timestamps (galore-bench --profile) advance with the work.
#include "tests/gpu/test_gpu_util.h"

#ifdef GALORE_WITH_CUDA

#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>

#include "backend/backend.h"
#include "backend/cuda_backend.h"
#include "core/rng.h"
#include "model/grads.h"
#include "model/llama.h"

using namespace gt;
using namespace gt::test;

namespace {

ModelConfig small_cfg() {
  ModelConfig c;
  c.vocab_size = 37;
  c.hidden_size = 64;
  c.intermediate_size = 100;  // not a multiple of 8: padded in memory
  c.num_layers = 2;
  c.num_heads = 4;  // head dim 16
  c.num_kv_heads = 2;
  c.max_seq_len = 13;
  return c;
}
constexpr int kB = 2, kT = 13;
constexpr int kLogitsRows = 7;  // chunked: 26 rows in 4 chunks

std::vector<int32_t> tokens(uint64_t seed, int V) {
  Rng r(seed);
  std::vector<int32_t> t(size_t(kB) * (kT + 1));
  for (auto& x : t) x = int32_t(r.below(uint64_t(V)));
  return t;
}

std::vector<std::vector<float>> download_grads(Backend& be, FullGradients& g, int n) {
  std::vector<std::vector<float>> out;
  for (int p = 0; p < n; ++p) {
    std::vector<float> h(size_t(g.grad(p).numel()));
    be.download_f32(h.data(), g.grad(p));
    out.push_back(std::move(h));
  }
  return out;
}

// Two accumulated micro-batches (scale 0.5); head_in_forward runs lm_head's
// backward inside forward (the trainer's path). Returns the losses.
std::vector<double> two_micro_batches(LlamaModel& m, FullGradients& g, bool head_in_forward) {
  std::vector<double> losses;
  for (int micro = 0; micro < 2; ++micro) {
    const auto t = tokens(21 + uint64_t(micro), m.config().vocab_size);
    g.set_accumulate(micro > 0);
    losses.push_back(head_in_forward ? m.forward(t.data(), &g, 0.5f) : m.forward(t.data()));
    m.backward(g, 0.5f);
  }
  return losses;
}

}  // namespace

TEST(ModelCuda, RecomputeAndHeadInForwardAreBitIdentical) {
  GT_REQUIRE_GPU();
  auto be = make_cuda_backend_or_null();
  ASSERT_TRUE(be);
  const ModelConfig cfg = small_cfg();
  LlamaModel plain(cfg, *be, kB, kT, kLogitsRows, false), recompute(cfg, *be, kB, kT, kLogitsRows, true);
  plain.init_random(5);
  recompute.init_random(5);
  FullGradients ga(*be, plain.params()), gb(*be, recompute.params()), gc(*be, recompute.params());
  const auto la = two_micro_batches(plain, ga, false);
  const auto lb = two_micro_batches(recompute, gb, false);
  const auto lc = two_micro_batches(recompute, gc, true);
  EXPECT_EQ(la, lb) << "recompute changed the loss";
  EXPECT_EQ(la, lc) << "lm_head's backward inside forward changed the loss";
  const int n = plain.num_params();
  const auto a = download_grads(*be, ga, n), b = download_grads(*be, gb, n), c = download_grads(*be, gc, n);
  for (int p = 0; p < n; ++p) {
    size_t nonzero = 0;
    for (float x : a[size_t(p)]) nonzero += x != 0.0f && std::isfinite(x);
    EXPECT_GT(nonzero, 0u) << plain.params()[size_t(p)].name << ": no gradient reached it";
    EXPECT_TRUE(bitwise_equal(a[size_t(p)], b[size_t(p)])) << "recompute: " << plain.params()[size_t(p)].name;
    EXPECT_TRUE(bitwise_equal(a[size_t(p)], c[size_t(p)])) << "head in forward: " << plain.params()[size_t(p)].name;
  }
  EXPECT_LT(recompute.activation_bytes(), plain.activation_bytes());
}

TEST(ModelCuda, RecomputeGradientsMatchCpu) {
  GT_REQUIRE_GPU();
  auto gpu = make_cuda_backend_or_null();
  ASSERT_TRUE(gpu);
  auto cpu = make_cpu_backend();
  const ModelConfig cfg = small_cfg();
  LlamaModel mg(cfg, *gpu, kB, kT, kLogitsRows, true), mc(cfg, *cpu, kB, kT, kLogitsRows, false);
  mg.init_random(9);  // the same fp32 draw; the GPU holds it in bf16
  mc.init_random(9);
  FullGradients gg(*gpu, mg.params()), gc(*cpu, mc.params());
  const auto lg = two_micro_batches(mg, gg, true), lc = two_micro_batches(mc, gc, true);
  for (size_t i = 0; i < lg.size(); ++i) EXPECT_LT(std::fabs(lg[i] - lc[i]) / lc[i], 1e-2) << "micro-batch " << i;
  const int n = mg.num_params();
  const auto a = download_grads(*gpu, gg, n), ref = download_grads(*cpu, gc, n);
  double worst = 0;
  std::string worst_name;
  for (int p = 0; p < n; ++p) {
    const std::string& name = mg.params()[size_t(p)].name;
    SCOPED_TRACE(name);
    ASSERT_EQ(a[size_t(p)].size(), ref[size_t(p)].size());
    EXPECT_EQ(count_nonfinite(a[size_t(p)]), 0u);
    // bf16 weights and activations against fp32: the tolerance of the
    // whole-model gradient check (gpu_parity.sh, docs/CUDA.md).
    const double e = rel_err(a[size_t(p)], ref[size_t(p)]);
    EXPECT_LT(e, 5e-2);
    if (e > worst) worst = e, worst_name = name;
  }
  std::printf("[ worst    ] gradient rel err %.2e (%s); losses gpu %.6f %.6f cpu %.6f %.6f\n", worst,
              worst_name.c_str(), lg[0], lg[1], lc[0], lc[1]);
}

// The backend's stream timestamps (galore-bench --profile): stamps are taken
// in stream order without a host sync; after one, later stamps read later.
TEST(ModelCuda, TimerStampsFollowTheStream) {
  GT_REQUIRE_GPU();
  auto be = make_cuda_backend_or_null();
  ASSERT_TRUE(be);
  const ModelConfig cfg = small_cfg();
  LlamaModel m(cfg, *be, kB, kT, kLogitsRows, false);
  m.init_random(3);
  const auto t = tokens(5, cfg.vocab_size);
  be->timer_reserve(3);
  be->synchronize();
  be->timer_record(0);
  m.forward(t.data());
  be->timer_record(1);
  for (int i = 0; i < 3; ++i) m.forward(t.data());
  be->timer_record(2);
  be->synchronize();
  EXPECT_EQ(be->timer_ms(0), 0.0);
  EXPECT_GT(be->timer_ms(1), 0.0);
  EXPECT_GT(be->timer_ms(2), be->timer_ms(1));
}

#else  // !GALORE_WITH_CUDA
TEST(ModelCuda, Skipped) { GT_SKIP_OR_FAIL_WITHOUT_GPU("this build has no CUDA backend (GALORE_WITH_CUDA unset)"); }
#endif
