// galore-bench: training throughput on random tokens (no data, no
// checkpoints): the trainer's own step, timed after a warm-up.
//   galore-bench --config configs/llama1b.json --set training.total_batch_size=16 [--steps 10] [--warmup 3]
// Prints one markdown table row and one JSON line (--json FILE appends it):
// tokens/s (median step), model TFLOP/s (6*N + attention per token), MFU
// against the card's dense bf16 peak, executed TFLOP/s (the GEMMs and
// attention the step runs, train/step_flops.h: compare with the GEMM
// ceiling), the memory plan and the device memory in use. Each step ends in the optimizer's one host sync, so wall time
// around a step equals device time; the backend is synchronized before the
// clock starts. --profile runs one more step after the timed ones with
// stream-ordered timestamps (train/step_profile.h) and reports its
// milliseconds by phase: forward, backward, optimizer (and its parts), other.
// --gemm-report K (CUDA) runs one more step with every GEMM bracketed by
// events and reports the time per GEMM shape; K > 0 also times each shape
// alone with the algorithm in use and with the heuristic's first K candidates
// (is a better algorithm there?). --op-report runs one more step with the
// model's ops timed by name and shape (backend/timed_backend.h).
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include "backend/backend.h"
#include "backend/cuda_backend.h"
#include "backend/device_plan.h"
#include "backend/timed_backend.h"
#include "config/config.h"
#include "core/error.h"
#include "core/openmp_env.h"
#include "optim/projector.h"
#include "train/memory_plan.h"
#include "train/step_flops.h"
#include "train/trainer.h"
#ifdef GALORE_WITH_CUDA
#include "cuda/matmul.h"
#endif

using namespace gt;

namespace {
double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

// One more step with its GEMMs timed by shape (--gemm-report): prints a table
// and returns it as JSON (null without the CUDA backend).
nlohmann::json gemm_report(Trainer& trainer, int candidates) {
#ifdef GALORE_WITH_CUDA
  if (trainer.backend().device() != Device::CUDA) {
    spdlog::warn("--gemm-report needs the CUDA backend; skipped");
    return nullptr;
  }
  CudaGemm& gemm = *cuda_backend_handles(trainer.backend()).gemm;
  gemm.start_timing(1 << 14);  // a 7B step makes about 1,400 GEMM calls per micro-batch
  trainer.backend().synchronize();
  const double t0 = now_s();
  trainer.train_step();
  trainer.backend().synchronize();
  const double step_ms = 1000 * (now_s() - t0);
  std::vector<GemmTiming> rows = gemm.finish_timing();
  if (candidates > 0) gemm.time_candidates(rows, candidates, 5);
  nlohmann::json shapes = nlohmann::json::array();
  double total = 0;
  std::cout << "| GEMM m x n x k (column-major; T = transposed) | out | calls | ms in step | TFLOP/s in step | "
               "alone: in use | best of candidates (rank) |\n|---|---|---|---|---|---|---|\n";
  for (const GemmTiming& t : rows) {
    total += t.ms;
    const double tf = t.flops() / (t.ms * 1e-3) / 1e12, per_call = 2.0 * t.m * t.n * t.k * 1e-9;
    std::cout << fmt::format("| {}x{}x{} {}{}{} | {} | {} | {:.2f} | {:.1f} | {} | {} |\n", t.m, t.n, t.k,
                             t.trans_a ? "T" : "N", t.trans_b ? "T" : "N", t.beta ? " +C" : "", t.d_f32 ? "f32" : "bf16",
                             t.calls, t.ms, tf,
                             t.chosen_ms > 0 ? fmt::format("{:.1f} TFLOP/s", per_call / t.chosen_ms) : "-",
                             t.best_ms > 0 ? fmt::format("{:.1f} TFLOP/s ({})", per_call / t.best_ms, t.best_rank) : "-");
    shapes.push_back({{"m", t.m}, {"n", t.n}, {"k", t.k}, {"trans_a", t.trans_a}, {"trans_b", t.trans_b},
                      {"d_f32", t.d_f32}, {"beta", t.beta}, {"calls", t.calls}, {"ms", t.ms}, {"tflops", tf},
                      {"alone_ms", t.chosen_ms}, {"best_ms", t.best_ms}, {"best_rank", t.best_rank},
                      {"candidates", t.candidates}});
  }
  spdlog::info("GEMMs: {:.1f} ms of a {:.1f} ms step ({} shapes)", total, step_ms, rows.size());
  return {{"step_ms", step_ms}, {"gemm_ms", total}, {"shapes", shapes}};
#else
  (void)trainer, (void)candidates;
  spdlog::warn("--gemm-report needs a build with CUDA; skipped");
  return nullptr;
#endif
}
// One more step with the model's ops timed by name and shape (--op-report):
// prints a table and returns it as JSON.
nlohmann::json op_report(Trainer& trainer) {
  TimedBackend& timer = *trainer.op_timer();
  timer.start(1 << 14);  // a 7B micro-batch issues about 1,200 model ops
  trainer.backend().synchronize();
  const double t0 = now_s();
  trainer.train_step();
  trainer.backend().synchronize();
  const double step_ms = 1000 * (now_s() - t0);
  double span_ms = 0;
  const std::vector<OpTiming> rows = timer.finish(&span_ms);
  nlohmann::json ops = nlohmann::json::array();
  double total = 0;
  std::cout << "| model op | shape | calls | ms in step | % of step |\n|---|---|---|---|---|\n";
  for (const OpTiming& t : rows) {
    total += t.ms;
    std::cout << fmt::format("| {} | {} | {} | {:.2f} | {:.1f}% |\n", t.op, t.shape, t.calls, t.ms,
                             100 * t.ms / step_ms);
    ops.push_back({{"op", t.op}, {"shape", t.shape}, {"calls", t.calls}, {"ms", t.ms}});
  }
  spdlog::info("model ops: {:.1f} ms of a {:.1f} ms step; the rest ({:.1f} ms) is the optimizer's kernels and gaps",
               total, step_ms, step_ms - total);
  return {{"step_ms", step_ms}, {"ops_ms", total}, {"span_ms", span_ms}, {"ops", ops}};
}
}  // namespace

int main(int argc, char** argv) {
  gt::prefer_passive_openmp(argv);
  CLI::App app{"galore-bench: training throughput on random tokens"};
  std::string config_path, json_path, label;
  std::vector<std::string> overrides;
  int steps = 10, warmup = 3;
  app.add_option("--config", config_path, "JSON config (see docs/CONFIG.md)")->required();
  app.add_option("--set", overrides, "override a key (repeatable)");
  app.add_option("--steps", steps, "timed optimizer steps")->check(CLI::PositiveNumber);
  app.add_option("--warmup", warmup, "untimed steps first")->check(CLI::NonNegativeNumber);
  app.add_option("--json", json_path, "append the result as one JSON line to this file");
  app.add_option("--label", label, "name of this run in the output");
  bool profile = false;
  app.add_flag("--profile", profile, "after the timed steps, time one more step by phase (forward, backward, optimizer, other)");
  int gemm_candidates = -1;
  app.add_option("--gemm-report", gemm_candidates,
                 "CUDA: one more step with the time per GEMM shape; K > 0 also times each shape alone with the "
                 "heuristic's first K algorithms (up to 16; allocates scratch of each shape's size)")
      ->check(CLI::Range(0, 16));
  bool op_report_on = false;
  app.add_flag("--op-report", op_report_on,
               "one more step with the time per model op and shape (the optimizer's kernels are the rest)");
  CLI11_PARSE(app, argc, argv);
  try {
    Config cfg = load_config(config_path, overrides);
    cfg.training.max_steps =
        std::max(cfg.training.max_steps, warmup + steps + (profile ? 1 : 0) + (gemm_candidates >= 0 ? 1 : 0) +
                                                     (op_report_on ? 1 : 0));
    cfg.logging.progress = "plain";
    if (label.empty()) label = config_path;
    TrainOptions opts;
    opts.synthetic_data = true;
    opts.op_timing = op_report_on;
    size_t free0 = 0, total = 0;
    const bool gpu = cuda_memory_info(&free0, &total);
    const double t_init = now_s();
    Trainer trainer(cfg, opts);
    const double init_s = now_s() - t_init;
    const Device dev = trainer.backend().device();
    const MemoryPlan plan = plan_memory(cfg, dev);
    std::vector<double> times;
    double loss = 0.0;
    for (int i = 0; i < warmup + steps; ++i) {
      trainer.backend().synchronize();
      const double t0 = now_s();
      loss = trainer.train_step();
      trainer.backend().synchronize();
      const double dt = now_s() - t0;
      if (i >= warmup) times.push_back(dt);
      spdlog::info("{} step {}/{}: {:.3f} s, loss {:.4f}{}", label, i + 1, warmup + steps, dt, loss,
                   i < warmup ? " (warm-up)" : "");
    }
    size_t free1 = 0;
    if (gpu) cuda_memory_info(&free1, &total);
    nlohmann::json profile_ms = nullptr;
    if (profile) {  // one more step, not among the timed ones
      trainer.profile_next_step();
      trainer.train_step();
      profile_ms = nlohmann::json::object();
      std::string line;
      for (int p = 0; p < kStepPhases; ++p) {
        const double ms = trainer.last_profile_ms()[size_t(p)];
        profile_ms[step_phase_name(StepPhase(p))] = ms;
        line += fmt::format("{}{} {:.1f} ms", p ? ", " : "", step_phase_name(StepPhase(p)), ms);
      }
      spdlog::info("{} profile of one step: {}", label, line);
    }
    const nlohmann::json gemms = gemm_candidates >= 0 ? gemm_report(trainer, gemm_candidates) : nullptr;
    const nlohmann::json ops = op_report_on ? op_report(trainer) : nullptr;
    const double step_s = median(times);
    const double tokens = double(cfg.training.total_batch_size) * cfg.training.seq_len;
    const double tps = tokens / step_s;
    const double flops =
        tps * llama_flops_per_token(cfg.model, cfg.training.seq_len, trainer.model().num_weights());
    // executed FLOPs (train/step_flops.h), averaged over the timed steps (step i > 0 follows a refresh)
    double executed = 0;
    for (int i = warmup; i < warmup + steps; ++i)
      executed += step_flops(cfg, galore_refresh_due(cfg.optimizer.galore, i, 0, i)).total() / steps;
    const double executed_per_s = executed / step_s;
    const double peak = dev == Device::CUDA ? cuda_peak_bf16_flops() : 0.0;
    const double gib = double(1ull << 30);
    const double used = gpu && dev == Device::CUDA ? double(free0 - free1) / gib : 0.0;
    nlohmann::json j = {{"label", label},
                        {"device", dev == Device::CUDA ? cuda_device_description() : std::string("cpu")},
                        {"params", trainer.model().num_weights()},
                        {"optimizer", cfg.optimizer.name},
                        {"micro_batch", cfg.training.micro_batch_size},
                        {"seq_len", cfg.training.seq_len},
                        {"accum", cfg.grad_accum_steps()},
                        {"recompute", cfg.training.recompute},
                        {"step_s_median", step_s},
                        {"step_s_min", *std::min_element(times.begin(), times.end())},
                        {"tokens_per_s", tps},
                        {"model_tflops", flops / 1e12},
                        {"mfu", peak > 0 ? nlohmann::json(flops / peak) : nlohmann::json(nullptr)},
                        {"executed_tflop_per_step", executed / 1e12},
                        {"executed_tflops", executed_per_s / 1e12},
                        {"plan_gib", double(plan.total()) / gib},
                        {"device_used_gib", used},
                        {"init_s", init_s},
                        {"profile_ms", profile_ms},
                        {"gemms", gemms},
                        {"ops", ops},
                        {"final_loss", loss}};
    std::cout << fmt::format("| {} | {} | {:.0f} | {:.1f} | {} | {:.1f} | {:.2f} | {:.2f} |\n", label,
                             cfg.optimizer.name, tps, flops / 1e12,
                             peak > 0 ? fmt::format("{:.1f}%", 100 * flops / peak) : "n/a", executed_per_s / 1e12,
                             double(plan.total()) / gib, used);
    std::cout << j.dump() << std::endl;
    if (!json_path.empty()) {
      std::ofstream out(json_path, std::ios::app);
      out << j.dump() << "\n";
      if (!out) fail("--json {}: cannot write", json_path);
    }
    return 0;
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
}
