// Trainer-level equivalences on the sample shards (data/sample/shards, made
// by scripts/setup.sh / data_tools/prepare_sample.sh):
//  - per-layer updates == all-at-once steps, bit for bit (adamw, galore_adamw;
//    GaLore with the gradient formed, factored_projection=false)
//  - GaLore's factored projection == forming the gradient, to fp32 rounding
//  - gradient accumulation == one big micro-batch (per-layer adamw)
//  - the same seed and config give a bit-identical run
//  - gradient clipping is applied in both modes
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "config/config.h"
#include "optim/backend_adamw.h"
#include "train/trainer.h"

using namespace gt;

namespace {
Config small_config(std::vector<std::string> extra) {
  std::vector<std::string> o = {"model.hidden_size=64",       "model.intermediate_size=160", "model.num_layers=2",
                                "model.num_heads=4",          "model.num_kv_heads=2",        "model.max_seq_len=32",
                                "training.seq_len=32",        "training.micro_batch_size=4", "training.total_batch_size=4",
                                "training.grad_clip=0",       "training.device=cpu",         "schedule.warmup_steps=2",
                                "training.max_steps=20",      "logging.dir=/tmp/gt_trainer_test",
                                "optimizer.galore.rank=8",    "optimizer.galore.update_proj_gap=3",
                                "optimizer.galore.projector=svd"};
  o.insert(o.end(), extra.begin(), extra.end());
  if (!std::filesystem::exists("data/sample/shards/manifest.json"))
    throw std::runtime_error("sample shards missing: run bash data_tools/prepare_sample.sh build/bin");
  return load_config("configs/tiny.json", o);
}

std::vector<std::vector<float>> run_steps(const Config& cfg, int steps, std::vector<double>* losses = nullptr) {
  Trainer t(cfg, {});
  for (int i = 0; i < steps; ++i) {
    const double l = t.train_step();
    if (losses) losses->push_back(l);
  }
  std::vector<std::vector<float>> w;
  for (int p = 0; p < t.model().num_params(); ++p) w.push_back(t.model().get_weight(p));
  return w;
}

double max_rel_diff(const std::vector<std::vector<float>>& a, const std::vector<std::vector<float>>& b) {
  double worst = 0;
  for (size_t p = 0; p < a.size(); ++p) {
    double num = 0, den = 0;
    for (size_t i = 0; i < a[p].size(); ++i) {
      num += double(a[p][i] - b[p][i]) * (a[p][i] - b[p][i]);
      den += double(b[p][i]) * b[p][i];
    }
    worst = std::max(worst, std::sqrt(num / den));
  }
  return worst;
}
}  // namespace

class PerLayer : public ::testing::TestWithParam<std::string> {};

TEST_P(PerLayer, MatchesAllAtOnceBitForBit) {
  const std::string opt = "optimizer.name=" + GetParam();
  auto a = run_steps(small_config({opt, "optimizer.per_layer_updates=false"}), 5);
  auto b = run_steps(small_config({opt, "optimizer.per_layer_updates=true", "optimizer.galore.factored_projection=false"}), 5);
  ASSERT_EQ(a.size(), b.size());
  for (size_t p = 0; p < a.size(); ++p) ASSERT_EQ(a[p], b[p]) << "parameter " << p;
}
INSTANTIATE_TEST_SUITE_P(Optimizers, PerLayer, ::testing::Values("adamw", "galore_adamw", "adamw8bit",
                                                                  "galore_adamw8bit"));

// Per-layer GaLore between refreshes projects from the factors (dY, X) of each
// weight gradient: the same run as forming G, up to fp32 summation order, with
// refreshes (gap 3) and with 2 micro-batches per step.
TEST(Trainer, FactoredProjectionMatchesFormingTheGradient) {
  for (const char* opt : {"optimizer.name=galore_adamw", "optimizer.name=galore_adamw8bit"})
    for (const char* batch : {"training.total_batch_size=4", "training.total_batch_size=8"}) {
      SCOPED_TRACE(std::string(opt) + " " + batch);
      auto run = [&](bool factored, int64_t* calls) {
        Trainer t(small_config({opt, batch, "optimizer.per_layer_updates=true", "optimizer.weight_decay=0.1",
                                factored ? "optimizer.galore.factored_projection=true"
                                         : "optimizer.galore.factored_projection=false"}),
                  {});
        for (int i = 0; i < 7; ++i) t.train_step();
        *calls = dynamic_cast<const BackendAdamW&>(t.optimizer()).factored_projections();
        std::vector<std::vector<float>> w;
        for (int p = 0; p < t.model().num_params(); ++p) w.push_back(t.model().get_weight(p));
        return w;
      };
      int64_t calls_formed = -1, calls_factored = -1;
      const auto formed = run(false, &calls_formed);
      const auto factored = run(true, &calls_factored);
      EXPECT_EQ(calls_formed, 0);
      // 7 GaLore targets × 2 layers × micro-batches, except micro-batch 0 of the refresh steps 0, 3, 6
      const int64_t n_micro = std::string(batch).back() == '8' ? 2 : 1;
      EXPECT_EQ(calls_factored, 14 * (7 * n_micro - 3));
      const double d = max_rel_diff(factored, formed);
      EXPECT_LT(d, std::string(opt).find("8bit") != std::string::npos ? 1e-3 : 1e-5);
      if (std::getenv("GT_TEST_VERBOSE")) std::printf("    %s %s: max rel diff %.3e\n", opt, batch, d);
      EXPECT_GT(d, 0.0) << "identical bits: the factored path did not run";
    }
}

TEST(Trainer, AccumulationMatchesOneBigMicroBatch) {
  for (const char* per_layer : {"optimizer.per_layer_updates=true", "optimizer.per_layer_updates=false"}) {
    auto big = run_steps(small_config({per_layer, "training.micro_batch_size=8", "training.total_batch_size=8"}), 4);
    auto acc = run_steps(small_config({per_layer, "training.micro_batch_size=4", "training.total_batch_size=8"}), 4);
    // same data and math, different summation order: fp32 rounding only
    EXPECT_LT(max_rel_diff(acc, big), 1e-5) << per_layer;
  }
}

TEST(Trainer, SameSeedSameRunBitForBit) {
  std::vector<double> la, lb;
  auto a = run_steps(small_config({"optimizer.name=galore_adamw8bit", "optimizer.per_layer_updates=true",
                                   "training.total_batch_size=8"}),
                     4, &la);
  auto b = run_steps(small_config({"optimizer.name=galore_adamw8bit", "optimizer.per_layer_updates=true",
                                   "training.total_batch_size=8"}),
                     4, &lb);
  EXPECT_EQ(la, lb);
  for (size_t p = 0; p < a.size(); ++p) ASSERT_EQ(a[p], b[p]);
  auto c = run_steps(small_config({"training.seed=7"}), 1);
  auto d = run_steps(small_config({}), 1);
  EXPECT_NE(c[0], d[0]);  // a different seed is a different run
}

// galore-bench --profile: a profiled step is the same step (bit for bit), and
// its phases add up to about the step's wall time, the optimizer's included,
// with per-layer updates (inside backward, factored GaLore projections too)
// and all at once.
TEST(Trainer, ProfiledStepIsTheSameStepTimedByPhase) {
  for (const char* per_layer : {"true", "false"}) {
    SCOPED_TRACE(std::string("per_layer_updates=") + per_layer);
    const Config cfg = small_config({"optimizer.name=galore_adamw8bit", std::string("optimizer.per_layer_updates=") +
                                         per_layer, "training.total_batch_size=8"});
    std::vector<double> la;
    const auto a = run_steps(cfg, 3, &la);
    Trainer t(cfg, {});
    std::vector<double> lb;
    lb.push_back(t.train_step());
    t.profile_next_step();
    const auto t0 = std::chrono::steady_clock::now();
    lb.push_back(t.train_step());
    const double wall = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const auto ms = t.last_profile_ms();
    lb.push_back(t.train_step());
    EXPECT_EQ(la, lb);
    for (int p = 0; p < t.model().num_params(); ++p) ASSERT_EQ(a[size_t(p)], t.model().get_weight(p));
    double sum = 0;
    for (double x : ms) sum += x;
    EXPECT_GT(ms[size_t(StepPhase::Forward)], 0.0);
    EXPECT_GT(ms[size_t(StepPhase::Backward)], 0.0);
    // The optimizer's parts (BackendAdamW reports them; step 1 refreshes nothing,
    // update_proj_gap being larger).
    for (StepPhase p : {StepPhase::OptProject, StepPhase::OptAdam, StepPhase::OptUpdate})
      EXPECT_GT(ms[size_t(p)], 0.0) << step_phase_name(p);
    EXPECT_LE(sum, wall);
    EXPECT_GT(sum, 0.5 * wall);
  }
}

// training.gemm_autotune tunes cuBLASLt algorithms: on the CPU backend it
// does nothing, and the run is the same run.
TEST(Trainer, GemmAutotuneIsANoOpOnTheCpu) {
  std::vector<double> la, lb;
  const auto a = run_steps(small_config({"optimizer.name=galore_adamw8bit"}), 3, &la);
  const auto b = run_steps(small_config({"optimizer.name=galore_adamw8bit", "training.gemm_autotune=4"}), 3, &lb);
  EXPECT_EQ(la, lb);
  EXPECT_EQ(a, b);
}

TEST(Trainer, ClippingChangesTheUpdateInBothModes) {
  // grad_clip tiny: every step is clipped, so the weights differ from an unclipped run.
  for (const char* per_layer : {"optimizer.per_layer_updates=true", "optimizer.per_layer_updates=false"}) {
    auto base = run_steps(small_config({per_layer, "optimizer.name=sgd", "optimizer.lr=0.5"}), 3);
    auto clip = run_steps(small_config({per_layer, "optimizer.name=sgd", "optimizer.lr=0.5", "training.grad_clip=1e-3"}), 3);
    EXPECT_GT(max_rel_diff(clip, base), 1e-4) << per_layer;
    auto tensor = run_steps(small_config({per_layer, "optimizer.name=sgd", "optimizer.lr=0.5", "training.grad_clip=1e-3",
                                          "training.clip_mode=per_tensor"}),
                            3);
    EXPECT_GT(max_rel_diff(tensor, base), 1e-4) << per_layer;
  }
}

TEST(Trainer, GlobalClipUnderPerLayerUsesThePreviousStepsNorm) {
  // Step 0 has no previous norm: per-layer + global clip equals the unclipped step 0.
  auto base = run_steps(small_config({"optimizer.per_layer_updates=true", "optimizer.name=sgd"}), 1);
  auto clip = run_steps(small_config({"optimizer.per_layer_updates=true", "optimizer.name=sgd", "training.grad_clip=1e-3"}), 1);
  for (size_t p = 0; p < base.size(); ++p) ASSERT_EQ(base[p], clip[p]);
  // ... and from step 1 on it scales by clip / previous norm
  auto base2 = run_steps(small_config({"optimizer.per_layer_updates=true", "optimizer.name=sgd"}), 2);
  auto clip2 = run_steps(small_config({"optimizer.per_layer_updates=true", "optimizer.name=sgd", "training.grad_clip=1e-3"}), 2);
  EXPECT_GT(max_rel_diff(clip2, base2), 1e-6);
}

#include "train/memory_plan.h"

TEST(Trainer, MemoryPlanEqualsWhatIsAllocated) {
  for (auto extra : std::vector<std::vector<std::string>>{
           {"optimizer.name=adamw"},
           {"optimizer.name=galore_adamw8bit", "optimizer.per_layer_updates=true", "training.total_batch_size=8"},
           {"optimizer.name=adamw8bit", "training.recompute=true"}}) {
    Config cfg = small_config(extra);
    Trainer t(cfg, {});
    t.train_step();  // accumulators are allocated on first use
    const MemoryPlan plan = plan_memory(cfg, Device::CPU);
    EXPECT_EQ(plan.weights, t.model().weight_bytes());
    EXPECT_EQ(plan.activations, t.model().activation_bytes());
    EXPECT_EQ(plan.grads, t.grad_bytes());
    EXPECT_EQ(plan.optim.total(), t.optimizer().state_bytes());
  }
}

// intermediate_size 157 is stored as 160 (llama_ffn_width): after training
// steps with projector refreshes, the padding of gate/up/down is still
// exactly zero, and what leaves the model has the unpadded shape.
TEST(Trainer, FfnPaddingStaysZero) {
  for (const char* opt : {"optimizer.name=galore_adamw8bit", "optimizer.name=galore_adamw", "optimizer.name=adamw8bit"}) {
    Config cfg = small_config({opt, "model.intermediate_size=157", "optimizer.per_layer_updates=true",
                               "training.total_batch_size=8", "optimizer.weight_decay=0.1"});
    Trainer t(cfg, {});
    for (int i = 0; i < 5; ++i) t.train_step();
    int padded_params = 0;
    for (int i = 0; i < t.model().num_params(); ++i) {
      const ParamInfo& p = t.model().params()[size_t(i)];
      ASSERT_EQ(t.model().get_weight(i).size(), size_t(p.hf_numel())) << p.name;
      if (p.numel() == p.hf_numel()) continue;
      ++padded_params;
      EXPECT_EQ(p.rows * p.cols, (p.name.find("down") != std::string::npos ? 64 * 160 : 160 * 64)) << p.name;
      std::vector<float> raw(size_t(p.numel()));
      t.backend().download_f32(raw.data(), t.model().weight(i));
      EXPECT_EQ(padding_abs_sum(p, raw.data()), 0.0) << opt << " " << p.name;
      double real_abs = 0;
      for (float x : t.model().get_weight(i)) real_abs += std::abs(x);
      EXPECT_GT(real_abs, 0.0) << p.name;
    }
    EXPECT_EQ(padded_params, 3 * 2) << "gate, up and down of both layers";
  }
}
