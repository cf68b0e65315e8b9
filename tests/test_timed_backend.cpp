// TimedBackend (galore-bench --op-report) on the CPU backend: it forwards
// every op unchanged, times only while open, groups calls by op and shape,
// counts ops past its reservation instead of timing them, and a trainer whose
// model runs on it takes the same steps, bit for bit.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <random>

#include "backend/timed_backend.h"
#include "config/config.h"
#include "train/trainer.h"

using namespace gt;

namespace {
struct Buf {  // an fp32 CPU tensor with its storage
  std::vector<float> v;
  Tensor t;
  Buf(int64_t rows, int64_t cols, uint32_t seed) {
    v.resize(size_t(rows * cols));
    std::mt19937 g(seed);
    std::normal_distribution<float> nd;
    for (float& x : v) x = nd(g);
    t = Tensor(v.data(), DType::F32, Device::CPU, {rows, cols});
  }
};

const OpTiming* find(const std::vector<OpTiming>& rows, const std::string& op) {
  auto it = std::find_if(rows.begin(), rows.end(), [&](const OpTiming& r) { return r.op == op; });
  return it == rows.end() ? nullptr : &*it;
}
}  // namespace

TEST(TimedBackend, ForwardsOpsAndTimesThemByOpAndShape) {
  auto cpu = make_cpu_backend();
  TimedBackend timed(*cpu);
  EXPECT_EQ(timed.device(), Device::CPU);
  EXPECT_EQ(timed.name(), cpu->name());

  Buf x(64, 48, 1), w(96, 48, 2), w2(32, 48, 3), out_a(64, 96, 4), out_b(64, 96, 5), out_c(64, 32, 6);
  // Untimed: forwarded, and nothing recorded.
  timed.matmul_forward(out_a.t, x.t, w.t);
  cpu->matmul_forward(out_b.t, x.t, w.t);
  EXPECT_EQ(out_a.v, out_b.v);
  EXPECT_FALSE(timed.timing());

  timed.start(16);
  EXPECT_TRUE(timed.timing());
  for (int i = 0; i < 3; ++i) timed.matmul_forward(out_a.t, x.t, w.t);
  timed.matmul_forward(out_c.t, x.t, w2.t);  // another shape: another row
  const double sq = timed.sum_squares(x.t);  // returns the inner op's value
  EXPECT_EQ(sq, cpu->sum_squares(x.t));
  timed.residual_add(out_a.t, out_a.t, out_b.t);
  double span = 0;
  const std::vector<OpTiming> rows = timed.finish(&span);
  EXPECT_FALSE(timed.timing());
  ASSERT_EQ(rows.size(), 4u);
  int matmuls = 0, calls = 0;
  double sum = 0;
  for (const OpTiming& r : rows) {
    EXPECT_GE(r.ms, 0.0) << r.op;
    calls += r.calls;
    sum += r.ms;
    if (r.op == "matmul_forward") {
      ++matmuls;
      EXPECT_EQ(r.calls, r.shape == "64x96 <- 64x48" ? 3 : 1) << r.shape;
      EXPECT_TRUE(r.shape == "64x96 <- 64x48" || r.shape == "64x32 <- 64x48") << r.shape;
    }
  }
  EXPECT_EQ(matmuls, 2);
  EXPECT_EQ(calls, 6);
  for (size_t i = 1; i < rows.size(); ++i) EXPECT_GE(rows[i - 1].ms, rows[i].ms);  // longest first
  EXPECT_GT(sum, 0.0);
  EXPECT_LE(sum, span + 1e-9);  // the ops lie inside the span from the first start to the last end
  ASSERT_NE(find(rows, "sum_squares"), nullptr);
  EXPECT_EQ(find(rows, "sum_squares")->shape, "64x48");

  // Reusable, and ops past the reservation run (untimed) rather than fail.
  std::vector<float> ref = out_a.v;
  for (int i = 0; i < 5; ++i)
    for (size_t j = 0; j < ref.size(); ++j) ref[j] += out_b.v[j];
  timed.start(2);
  for (int i = 0; i < 5; ++i) timed.residual_add(out_a.t, out_a.t, out_b.t);
  const std::vector<OpTiming> capped = timed.finish();
  ASSERT_EQ(capped.size(), 1u);
  EXPECT_EQ(capped[0].calls, 2);
  EXPECT_EQ(capped[0].op, "residual_add");
  EXPECT_EQ(out_a.v, ref);  // all 5 adds ran
}

TEST(TimedBackend, MatmulForwardAddIsOneOpOfTheInnerBackend) {
  auto cpu = make_cpu_backend();
  TimedBackend timed(*cpu);
  Buf x(16, 8, 1), w(12, 8, 2), res(16, 12, 3), out_a(16, 12, 4), out_b(16, 12, 5);
  timed.start(8);
  timed.matmul_forward_add(out_a.t, x.t, w.t, res.t);
  const auto rows = timed.finish();
  cpu->matmul_forward_add(out_b.t, x.t, w.t, res.t);
  EXPECT_EQ(out_a.v, out_b.v);
  ASSERT_EQ(rows.size(), 1u);  // not matmul_forward + residual_add through the wrapper
  EXPECT_EQ(rows[0].op, "matmul_forward_add");
}

// A trainer with TrainOptions::op_timing: the model's ops go through the
// wrapper, a timed step is the same step, and the report holds the model's
// ops with the counts the model issues.
TEST(TimedBackend, TrainerStepOnTheWrapperIsTheSameStep) {
  ASSERT_TRUE(std::filesystem::exists("data/sample/shards/manifest.json"))
      << "sample shards missing: run bash data_tools/prepare_sample.sh build/bin";
  const Config cfg = load_config(
      "configs/tiny.json",
      {"model.hidden_size=64", "model.intermediate_size=160", "model.num_layers=2", "model.num_heads=4",
       "model.num_kv_heads=2", "model.max_seq_len=32", "training.seq_len=32", "training.micro_batch_size=4",
       "training.total_batch_size=8", "training.device=cpu", "training.max_steps=20", "schedule.warmup_steps=2", "training.recompute=true",
       "logging.dir=/tmp/gt_timed_backend_test", "optimizer.name=galore_adamw8bit", "optimizer.per_layer_updates=true",
       "optimizer.galore.rank=8", "optimizer.galore.update_proj_gap=3", "optimizer.galore.projector=svd"});
  Trainer plain(cfg, {});
  TrainOptions opts;
  opts.op_timing = true;
  Trainer timed(cfg, opts);
  ASSERT_EQ(plain.op_timer(), nullptr);
  ASSERT_NE(timed.op_timer(), nullptr);
  for (int s = 0; s < 3; ++s) {
    if (s == 1) timed.op_timer()->start(4096);
    EXPECT_EQ(plain.train_step(), timed.train_step()) << "step " << s;
    if (s != 1) continue;
    const std::vector<OpTiming> rows = timed.op_timer()->finish();
    const int layers = cfg.model.num_layers, micro = cfg.grad_accum_steps();
    ASSERT_EQ(micro, 2);
    // Recompute: each layer's attention runs forward twice per micro-batch, backward once.
    ASSERT_NE(find(rows, "attention_forward"), nullptr);
    EXPECT_EQ(find(rows, "attention_forward")->calls, 2 * layers * micro);
    ASSERT_NE(find(rows, "attention_backward"), nullptr);
    EXPECT_EQ(find(rows, "attention_backward")->calls, layers * micro);
    EXPECT_EQ(find(rows, "attention_backward")->shape, "4x32x4x16");
    ASSERT_NE(find(rows, "embedding_forward"), nullptr);
    EXPECT_EQ(find(rows, "embedding_forward")->calls, micro);
  }
  for (int p = 0; p < plain.model().num_params(); ++p)
    ASSERT_EQ(plain.model().get_weight(p), timed.model().get_weight(p)) << p;
}
