// step_flops (src/train/step_flops.h) against sums written out from the
// shapes: the plain step, recompute, GaLore formed vs factored, refresh steps,
// all-at-once, and the 7B benchmark run's per-token count.
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "config/config.h"
#include "model/llama.h"
#include "train/step_flops.h"

using namespace gt;

namespace {
Config small(std::vector<std::string> extra) {
  std::vector<std::string> o = {"model.vocab_size=97",         "model.hidden_size=64",     "model.intermediate_size=157",
                                "model.num_layers=2",          "model.num_heads=4",        "model.num_kv_heads=2",
                                "model.max_seq_len=32",        "training.seq_len=32",      "training.micro_batch_size=3",
                                "training.total_batch_size=6", "optimizer.galore.rank=8",  "schedule.warmup_steps=1",
                                "training.max_steps=10"};
  o.insert(o.end(), extra.begin(), extra.end());
  return load_config("configs/tiny.json", o);
}
struct Sums {
  double lin = 0, lin_no_down = 0, head = 0;  // Σ m·n
};
Sums sums(const Config& c) {
  Sums s;
  for (const ParamInfo& p : llama_params(c.model, {})) {
    if (p.kind == ParamKind::LmHead) s.head += double(p.rows) * p.cols;
    if (p.kind != ParamKind::Linear) continue;
    s.lin += double(p.rows) * p.cols;
    if (p.name.find("down_proj") == std::string::npos) s.lin_no_down += double(p.rows) * p.cols;
  }
  return s;
}
}  // namespace

TEST(StepFlops, PlainStepAndRecompute) {
  const Config c = small({"optimizer.name=adamw"});
  const Sums s = sums(c);
  const double N = 3 * 32, n_micro = 2;
  // attention: 2 layers · 2 (QKᵀ, PV) · B·H·T²·D on the causal half
  const double attn = 2 * n_micro * 2.0 * 3 * 4 * 32 * 32 * 16;
  const StepFlops f = step_flops(c, false);
  EXPECT_DOUBLE_EQ(f.forward, n_micro * 2 * N * (s.lin + s.head) + attn);
  EXPECT_DOUBLE_EQ(f.backward, n_micro * (4 * N * s.lin + 4 * N * s.head) + 2.5 * attn);
  EXPECT_EQ(f.recompute, 0.0);
  EXPECT_EQ(f.galore, 0.0);
  const StepFlops r = step_flops(small({"optimizer.name=adamw", "training.recompute=true"}), false);
  EXPECT_DOUBLE_EQ(r.recompute, n_micro * 2 * N * s.lin_no_down + attn);
  EXPECT_DOUBLE_EQ(r.total() - r.recompute, f.total());
}

TEST(StepFlops, GaloreFormedFactoredRefreshAndAllAtOnce) {
  const std::vector<std::string> base = {"optimizer.name=galore_adamw8bit", "optimizer.per_layer_updates=true"};
  auto with = [&](std::vector<std::string> more) {
    more.insert(more.begin(), base.begin(), base.end());
    return small(more);
  };
  const Config factored = with({});
  const Config formed = with({"optimizer.galore.factored_projection=false"});
  const double N = 3 * 32, n_micro = 2, r = 8;
  double saving = 0, project = 0;  // per micro-batch: formed − factored; one projection of every target
  for (const ParamInfo& p : llama_params(factored.model, factored.optimizer.galore.targets)) {
    if (!p.galore) continue;
    const double m = double(p.rows), n = double(p.cols);
    saving += 2 * N * m * n + 2 * r * m * n - 2 * N * r * (m + n);
    project += 2 * r * m * n;
  }
  ASSERT_GT(saving, 0);
  const StepFlops a = step_flops(formed, false), b = step_flops(factored, false), c = step_flops(factored, true);
  EXPECT_NEAR(a.total() - b.total(), n_micro * saving, 1e-6 * a.total());
  EXPECT_NEAR(c.total() - b.total(), saving, 1e-6 * a.total()) << "a refresh forms G in micro-batch 0 only";
  EXPECT_DOUBLE_EQ(step_flops(formed, true).total(), a.total()) << "formed: refresh or not, the same GEMMs";
  EXPECT_DOUBLE_EQ(b.galore, project) << "factored: only the back-projection";
  EXPECT_DOUBLE_EQ(a.galore, (n_micro + 1) * project) << "formed per-layer: a projection per micro-batch";
  const StepFlops all = step_flops(with({"optimizer.per_layer_updates=false"}), false);
  EXPECT_DOUBLE_EQ(all.galore, 2 * project) << "all-at-once: the summed G projected once";
  EXPECT_DOUBLE_EQ(all.total(), a.total() - (n_micro - 1) * project);
}

// The numbers docs/PERFORMANCE.md plans with: llama7b, rank 1024, 16×256,
// recompute, per-layer, factored: 45.1 GFLOP per token without attention
// (GT_TEST_VERBOSE=1 prints the bench runs' counts).
TEST(StepFlops, Llama7bBenchmarkRun) {
  if (std::getenv("GT_TEST_VERBOSE"))
    for (const char* model : {"configs/llama1b.json", "configs/llama7b.json"})
      for (const char* fact : {"true", "false"}) {
        const bool is7b = std::string(model).find("7b") != std::string::npos;
        const Config v = load_config(
            model, {"training.micro_batch_size=16", "training.total_batch_size=16", "training.seq_len=256",
                    "optimizer.name=galore_adamw8bit", is7b ? "optimizer.galore.rank=1024" : "optimizer.galore.rank=512",
                    "optimizer.per_layer_updates=true", is7b ? "training.recompute=true" : "training.recompute=false",
                    std::string("optimizer.galore.factored_projection=") + fact});
        const StepFlops a = step_flops(v, false), b = step_flops(v, true);
        std::printf("    %s factored=%s: %.1f TFLOP/step (fwd %.1f, recompute %.1f, bwd %.1f, galore %.1f); "
                    "refresh step %.1f; %.2f GFLOP/token\n",
                    model, fact, a.total() / 1e12, a.forward / 1e12, a.recompute / 1e12, a.backward / 1e12,
                    a.galore / 1e12, b.total() / 1e12, a.total() / 4096 / 1e9);
      }
  const Config c = load_config("configs/llama7b.json",
                               {"training.micro_batch_size=16", "training.total_batch_size=16", "training.seq_len=256",
                                "optimizer.name=galore_adamw8bit", "optimizer.galore.rank=1024",
                                "optimizer.per_layer_updates=true", "training.recompute=true"});
  const StepFlops f = step_flops(c, false);
  const double tokens = 16 * 256;
  const double attn_per_token = (1 + 1 + 2.5) * 32 * 2.0 * 16 * 32 * 256 * 256 * 128 / tokens;
  EXPECT_NEAR((f.total() / tokens - attn_per_token) / 1e9, 45.1, 0.1);
  // a refresh step forms every G: 66.3 instead of 21.0 TFLOP for the weight gradients + projections
  EXPECT_NEAR((step_flops(c, true).total() - f.total()) / 1e12, 66.3 - 21.0, 0.1);
}
