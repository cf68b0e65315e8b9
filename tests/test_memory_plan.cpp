// The GPU memory plan's fit check: a plan that does not fit is refused with a
// message that names settings which do fit (each of them checked to fit), and
// a plan that fits passes. Pure arithmetic: runs without a GPU.
#include <gtest/gtest.h>

#include <regex>

#include "config/config.h"
#include "core/error.h"
#include "train/memory_plan.h"

using namespace gt;

namespace {
Config config_7b(std::vector<std::string> sets) { return load_config("configs/llama7b.json", sets); }
constexpr size_t GiB = size_t(1) << 30;
}  // namespace

TEST(MemoryPlan, Llama7bRecipeFitsA24GBCard) {
  // An RTX 4090's 24 GB is 22.35 GiB; the plan keeps kDeviceReserveBytes free on top.
  EXPECT_EQ(memory_fit_error(config_7b({}), size_t(22.35 * double(GiB))), "");
}

TEST(MemoryPlan, Llama7bBenchmarkRunPlansAtMost20GiB) {
  // Issue #6's 7B benchmark (rank 1024, per-layer, 16x256, recompute) must
  // peak at <= 20 GiB on the GPU; the plan is what the arenas allocate. The
  // gradient buffer is the optimizer's (lent), not an arena of its own.
  const MemoryPlan plan = plan_memory(config_7b({}), Device::CUDA);
  EXPECT_TRUE(plan.grads_lent);
  EXPECT_EQ(plan.grads, 0u);
  EXPECT_LE(plan.total(), 20 * GiB) << double(plan.total()) / double(GiB) << " GiB";
  // On the CPU nothing is lent: the trainer allocates the buffer.
  EXPECT_FALSE(plan_memory(config_7b({}), Device::CPU).grads_lent);
}

TEST(MemoryPlan, Fp32OnCudaIsRefusedNotPlanned) {
  // The CUDA backend trains bf16 weights only: a plan for fp32 would describe
  // a run the trainer refuses, so planning refuses the same way.
  const Config cfg = config_7b({"training.dtype=fp32"});
  try {
    plan_memory(cfg, Device::CUDA);
    FAIL() << "expected a refusal";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("training.dtype=fp32"), std::string::npos) << e.what();
  }
  EXPECT_NO_THROW(plan_memory(cfg, Device::CPU));
}

TEST(MemoryPlan, FitsPassesSilently) {
  EXPECT_EQ(memory_fit_error(load_config("configs/llama7b_paper.json"), 80 * GiB), "");
}

TEST(MemoryPlan, RefusalNamesSettingsThatFit) {
  // 7B without recompute at micro-batch 16 does not fit 24 GB; the suggestions must.
  const Config cfg = config_7b({"training.recompute=false", "training.total_batch_size=16"});
  const size_t device = size_t(22.35 * double(GiB));
  const std::string why = memory_fit_error(cfg, device);
  ASSERT_NE(why, "");
  EXPECT_NE(why.find("GiB"), std::string::npos) << why;
  EXPECT_NE(why.find("settings that fit"), std::string::npos) << why;
  EXPECT_EQ(why.find('\n'), std::string::npos) << "one line: " << why;
  // Apply the first suggestion and check that it really fits.
  std::smatch m;
  const std::string first = why.substr(why.find("settings that fit: "));
  std::vector<std::string> sets;
  std::regex set_re("--set ([^ ]+)");
  const std::string upto = first.substr(0, first.find(" ("));
  for (std::sregex_iterator it(upto.begin(), upto.end(), set_re), end; it != end; ++it) sets.push_back((*it)[1]);
  ASSERT_FALSE(sets.empty()) << why;
  std::vector<std::string> all = {"training.recompute=false", "training.total_batch_size=16"};
  all.insert(all.end(), sets.begin(), sets.end());
  EXPECT_EQ(memory_fit_error(config_7b(all), device), "") << why;
}

TEST(MemoryPlan, NothingFitsSaysSo) {
  const Config cfg = config_7b({"training.total_batch_size=16"});
  const std::string why = memory_fit_error(cfg, 4 * GiB);
  EXPECT_NE(why.find("smaller model or a larger GPU"), std::string::npos) << why;
}

TEST(MemoryPlan, CudaPlanCountsDeviceOptimizerAndBackend) {
  const Config cfg = config_7b({"training.total_batch_size=16"});
  const MemoryPlan p = plan_memory(cfg, Device::CUDA);
  EXPECT_GT(p.optim.workspace, 0u);  // projected gradient, direction, back-projection scratch
  EXPECT_GT(p.optim.projectors, 0u);
  EXPECT_EQ(p.optim.accumulators, 0u);  // one micro-batch per step
  const MemoryPlan acc = plan_memory(load_config("configs/llama7b_paper.json"), Device::CUDA);  // 32 micro-batches
  EXPECT_GT(acc.optim.accumulators, 0u);
  EXPECT_GT(acc.total(), p.total());
}
