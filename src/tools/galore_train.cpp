// galore-train: pretrain a LLaMA model from a JSON config.
//   galore-train --config configs/tiny.json [--set a.b=v ...] [--resume auto|<ckpt>]
//   galore-train --config configs/llama7b.json --estimate-memory
//   galore-train --config ... --print-config
//   galore-train --config ... --eval-only --resume <ckpt>
#include <CLI/CLI.hpp>
#include <iostream>
#include <spdlog/spdlog.h>

#include "config/config.h"
#include "core/error.h"
#include "core/openmp_env.h"
#include "train/memory_plan.h"
#include "train/trainer.h"

using namespace gt;

int main(int argc, char** argv) {
  gt::prefer_passive_openmp(argv);
  CLI::App app{"galore-train: pretrain LLaMA with GaLore (gradient low-rank projection)"};
  std::string config_path, resume, device_for_estimate = "cuda";
  std::vector<std::string> overrides;
  bool print_config = false, estimate = false, eval_only = false, synthetic = false;
  double device_gib = 24.0;
  app.add_option("--config", config_path, "JSON config (see docs/CONFIG.md)")->required();
  app.add_option("--set", overrides, "override a key: --set optimizer.lr=0.01 (repeatable)");
  app.add_flag("--print-config", print_config, "print the fully resolved config and exit");
  app.add_option("--resume", resume, "resume: 'auto' (newest complete checkpoint) or a checkpoint folder");
  app.add_flag("--estimate-memory", estimate, "print the device memory plan (bf16 weights on a GPU) and exit");
  app.add_option("--device-gib", device_gib, "device memory for --estimate-memory's fit check (GiB)");
  app.add_flag("--eval-only", eval_only, "report validation loss/perplexity of --resume's checkpoint and exit");
  app.add_flag("--synthetic-data", synthetic,
               "train on uniform random tokens instead of data.train_shards: checks the model, the memory plan and "
               "the speed before any data exists (no evaluation, no checkpoints)");
  CLI11_PARSE(app, argc, argv);

  try {
    Config cfg = load_config(config_path, overrides);
    if (print_config) {
      std::cout << cfg.to_json().dump(2) << std::endl;
      return 0;
    }
    if (estimate) {
      std::cout << format_memory_table(plan_memory(cfg, Device::CUDA), device_gib);
      const std::string why = memory_fit_error(cfg, size_t(device_gib * double(1ull << 30)));
      if (!why.empty()) std::cout << why << "\n";
      std::cout << std::flush;
      return 0;
    }
    if (synthetic && (eval_only || !resume.empty()))
      fail("--synthetic-data trains a fresh model on random tokens: it cannot be combined with --resume or --eval-only");
    TrainOptions opts;
    opts.resume = resume;
    opts.eval_only = eval_only;
    opts.synthetic_data = synthetic;
    opts.overrides = overrides;
    Trainer trainer(cfg, opts);
    return trainer.run();
  } catch (const Error& e) {
    spdlog::default_logger()->flush();
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  } catch (const std::exception& e) {  // library errors (JSON, filesystem) that were not wrapped
    spdlog::default_logger()->flush();
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
}
