// The training loop: data -> model forward/backward -> per-weight optimizer
// step, with gradient accumulation, clipping, evaluation, logging and
// checkpoints. Layers talk through small interfaces: TrainLoader (data),
// LlamaModel + GradSink (model), Optimizer (per weight), Backend (ops).
#pragma once
#include <array>
#include <memory>
#include <optional>
#include <string>

#include "backend/backend.h"
#include "backend/timed_backend.h"
#include "config/config.h"
#include "model/grads.h"
#include "model/llama.h"
#include "optim/optimizer.h"
#include "train/metrics.h"
#include "train/step_profile.h"

namespace gt {

class TrainLoader;
class ValLoader;

struct TrainOptions {
  std::string resume;            // "", "auto" or a checkpoint path
  bool eval_only = false;
  std::vector<std::string> overrides;  // --set values, logged when resuming
  bool synthetic_data = false;   // uniform random tokens instead of shards (benchmarks,
                                 // --synthetic-data): no validation, no checkpoints
  bool op_timing = false;        // the model runs on a TimedBackend (galore-bench --op-report)
};

// Counters that make a resume exact (saved in trainer_state.json).
struct TrainState {
  int64_t step = 0;              // optimizer steps done
  int64_t tokens = 0;            // training tokens consumed
  double prev_grad_norm = 0.0;   // for clip_mode=global under per-layer updates
  int64_t skipped_steps = 0;     // non-finite loss steps skipped
  double elapsed_s = 0.0;        // wall time of earlier segments
};

class Trainer {
 public:
  Trainer(const Config& cfg, const TrainOptions& opts);
  ~Trainer();
  // Runs to training.max_steps (or until SIGINT/SIGTERM); returns the exit code.
  int run();
  // Validation loss over eval.batches batches (mean over tokens).
  double evaluate();

  // Access for tests and tools.
  LlamaModel& model() { return *model_; }
  Optimizer& optimizer() { return *optimizer_; }
  const TrainState& state() const { return state_; }
  const Config& config() const { return cfg_; }
  size_t grad_bytes() const { return full_grads_ ? full_grads_->bytes() : shared_grad_->bytes(); }
  // One optimizer step; returns the mean training loss (NaN if skipped).
  double train_step();
  Backend& backend() { return *backend_; }
  // The model's backend wrapper when TrainOptions::op_timing (else null):
  // start() it before a step and finish() it after, for the time per op.
  TimedBackend* op_timer() { return op_timer_.get(); }
  void save_checkpoint(const std::string& reason);
  // Times the next train_step by phase (train/step_profile.h; its timer slots
  // are reserved here, outside the step); afterwards last_profile_ms() holds
  // its milliseconds per StepPhase. The step ends in one more synchronisation;
  // its result is unchanged.
  void profile_next_step();
  const std::array<double, kStepPhases>& last_profile_ms() const { return last_profile_ms_; }

 private:
  void resume_from(const std::string& path);
  void check_memory_plan();
  void log_step(double loss, double grad_norm, double step_seconds);
  void check_loss_spike(double loss);
  void autotune_gemms();  // training.gemm_autotune, once, after the first finite step
  void show_progress(double loss);
  void clear_progress();
  void mark(StepPhase p) {  // profiled steps only
    if (profile_) profile_->mark(p);
  }
  void end_profile() {
    if (!profile_) return;
    last_profile_ms_ = profile_->finish();
    profile_.reset();
  }

  Config cfg_;
  TrainOptions opts_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<TimedBackend> op_timer_;  // wraps backend_ for the model (op_timing); outlives model_
  std::unique_ptr<LlamaModel> model_;
  std::vector<ParamInfo> params_;  // with GaLore targets marked
  std::unique_ptr<Optimizer> optimizer_;
  std::unique_ptr<FullGradients> full_grads_;
  std::unique_ptr<SharedGradBuffer> shared_grad_;
  std::unique_ptr<TrainLoader> loader_;
  std::unique_ptr<ValLoader> val_loader_;
  std::vector<int32_t> batch_;  // [micro_batch, seq_len + 1]
  MetricsLog metrics_;
  TrainState state_;
  StepInfo current_{};
  int64_t inject_nan_step_ = -1;  // test hook (env GALORE_INJECT_NAN_STEP)
  std::vector<double> recent_losses_;  // loss-spike detection window
  bool progress_line_ = false;     // one updating terminal line (logging.progress)
  bool gemms_tuned_ = false;       // autotuned here, or the table came with the checkpoint
  double run_start_ = 0.0;
  int64_t steps_this_run_ = 0;
  double loss_accum_for_log_ = 0.0;
  int loss_count_for_log_ = 0;
  std::unique_ptr<StepProfile> profile_;  // from profile_next_step() to the end of that step
  std::array<double, kStepPhases> last_profile_ms_{};
};

}  // namespace gt
