// The run configuration: JSON with sections model, optimizer, schedule,
// training, data, checkpoint, eval, logging. Every key has a default and a
// type in one schema table (config.cpp); unknown keys and wrong types are
// errors that name the key and suggest the closest valid one.
#pragma once
#include <cstdint>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

namespace gt {

struct ModelConfig {
  int vocab_size = 32000;
  int hidden_size = 512;
  int intermediate_size = 1376;
  int num_layers = 8;
  int num_heads = 8;
  int num_kv_heads = 0;        // 0 = same as num_heads (no GQA)
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  int max_seq_len = 256;
  double init_std = 0.02;
  std::string init_from;       // HF directory to start from ("" = random init)
  bool shape_from_init = false;  // take the shape from init_from's config.json
  int kv_heads() const { return num_kv_heads > 0 ? num_kv_heads : num_heads; }
  int head_dim() const { return hidden_size / num_heads; }
};

struct GaloreConfig {
  int rank = 128;
  int update_proj_gap = 200;
  double scale = 0.25;
  std::string proj_type = "std";           // std | reverse_std | left | right | full
  std::string projector = "randomized";    // svd | randomized
  int oversampling = 8;
  int power_iters = 1;
  bool warm_start = true;
  std::string moments_on_refresh = "keep"; // keep | reset | reproject
  // Per-layer updates between refreshes: R from the factors of G = dYᵀ·X
  // ((dY·A)ᵀ·X or dYᵀ·(X·Bᵀ)) without forming G (docs/OPTIMIZER.md).
  bool factored_projection = true;
  std::vector<std::string> targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
};

struct OptimizerConfig {
  std::string name = "adamw";  // sgd | adamw | adamw8bit | galore_adamw | galore_adamw8bit
  double lr = 1e-3;
  double weight_decay = 0.0;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  double momentum = 0.0;       // sgd only
  bool per_layer_updates = false;
  bool stochastic_rounding = false;  // bf16 weights: unbiased rounding of updates
  GaloreConfig galore;
};

struct ScheduleConfig {
  std::string type = "cosine";  // cosine | linear | constant
  int warmup_steps = 0;
  double min_lr_ratio = 0.1;
};

struct TrainingConfig {
  int max_steps = 1000;
  int seq_len = 256;
  int micro_batch_size = 8;
  int total_batch_size = 8;       // sequences per optimizer step (accumulation = total / micro)
  double grad_clip = 0.0;         // 0 = off
  std::string clip_mode = "global";  // global | per_tensor (see docs/OPTIMIZER.md)
  uint64_t seed = 42;
  std::string device = "auto";    // auto | cuda | cpu
  std::string dtype = "bf16";     // weight/activation dtype on the GPU (CPU is always fp32)
  bool recompute = false;         // per-layer activation recomputation (GPU)
  int gemm_autotune = 0;          // GPU: time this many cuBLASLt candidates per GEMM shape after step 1; 0 = off
  std::string nan_policy = "skip";  // skip | stop
  int threads = 0;                // CPU threads (0 = all cores)
};

struct DataConfig {
  std::vector<std::string> train_shards;  // globs or paths
  std::vector<std::string> val_shards;
  std::string tokenizer;                  // sentencepiece .model
  int prefetch = 4;                       // batches prefetched by the loader thread
};

struct CheckpointConfig {
  std::string dir;          // "" = <logging.dir>/checkpoints
  int every = 0;            // 0 = only at the end and on SIGINT/SIGTERM
  int keep_last = 3;        // 0 = keep all
  std::string on_write_error = "stop";  // stop | continue
};

struct EvalConfig {
  int every = 0;            // 0 = only at the end
  int batches = 8;          // validation batches of micro_batch_size sequences
};

struct LoggingConfig {
  std::string dir = "runs/default";  // metrics.jsonl and checkpoints go here
  int every = 10;
  std::string progress = "auto";     // auto | line | plain
};

struct Config {
  ModelConfig model;
  OptimizerConfig optimizer;
  ScheduleConfig schedule;
  TrainingConfig training;
  DataConfig data;
  CheckpointConfig checkpoint;
  EvalConfig eval;
  LoggingConfig logging;

  // The fully resolved config (every key, defaults filled in).
  nlohmann::ordered_json to_json() const;
  // Stable hash of to_json() (hex), recorded in checkpoints.
  std::string hash() const;
  std::string checkpoint_dir() const { return checkpoint.dir.empty() ? logging.dir + "/checkpoints" : checkpoint.dir; }
  int grad_accum_steps() const { return total_batch_size_ok() ? training.total_batch_size / training.micro_batch_size : 1; }
  bool total_batch_size_ok() const {
    return training.micro_batch_size > 0 && training.total_batch_size % training.micro_batch_size == 0;
  }
};

// Loads `path`, applies `overrides` ("a.b=value", value parsed as JSON when it
// parses, else taken as a string), validates every key and value, and
// cross-checks (e.g. hidden_size % num_heads). Errors are gt::Error naming
// the file and the key, with a "did you mean" for unknown keys.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from an in-memory JSON object (`origin` names it in errors).
Config config_from_json(const nlohmann::json& j, const std::string& origin,
                        const std::vector<std::string>& overrides = {});

}  // namespace gt
