#include "train/trainer.h"

#include <omp.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <spdlog/spdlog.h>

#include "checkpoint/checkpoint.h"
#include "config/schema.h"
#include "core/error.h"
#include "core/hex.h"
#include "core/rng.h"
#include "data/loader.h"
#include "data/tokenizer.h"
#include "model/hf_io.h"
#include "backend/cuda_backend.h"
#include "backend/device_plan.h"
#include "train/memory_plan.h"

namespace gt {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {
std::atomic<int> g_stop_signal{0};
std::atomic<int64_t> g_first_signal_ns{0};
// First SIGINT/SIGTERM: finish the step, checkpoint, exit. Another one more
// than 2 s later exits at once (safe: checkpoint writes are atomic). Within
// 2 s it is the same request arriving twice, not an impatient user: Ctrl-C
// and job schedulers signal the whole process group, and sweep_lr.sh passes
// the signal on to its runs as well.
constexpr int64_t kSameRequestNs = 2'000'000'000;
void on_signal(int sig) {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);  // async-signal-safe
  const int64_t now = int64_t(t.tv_sec) * 1'000'000'000 + t.tv_nsec;
  int64_t first = 0;
  if (g_first_signal_ns.compare_exchange_strong(first, now)) g_stop_signal = sig;  // the exit code names the first
  else if (now - first > kSameRequestNs) _exit(128 + sig);
}

double now_s() {
  using namespace std::chrono;
  return duration<double>(steady_clock::now().time_since_epoch()).count();
}

LoaderOptions loader_options(const Config& cfg, const std::vector<std::string>& shards) {
  LoaderOptions o;
  o.shards = shards;
  o.seq_len = cfg.training.seq_len;
  o.seed = cfg.training.seed;
  o.prefetch = cfg.data.prefetch;
  o.expected_vocab = cfg.model.vocab_size;
  if (!cfg.data.tokenizer.empty()) {
    if (!fs::exists(cfg.data.tokenizer))
      fail("data.tokenizer={}: file not found. Make the tokenizer and shards first: bash data_tools/prepare_sample.sh "
           "for the sample data, or bash data_tools/prepare_c4.sh <c4 json.gz dir> <tokenizer.model> for C4 "
           "(docs/DATA.md)",
           cfg.data.tokenizer);
    o.expected_tokenizer_hash = tokenizer_hash(cfg.data.tokenizer);
  }
  return o;
}

std::string fmt_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const int64_t t = int64_t(s);
  if (t >= 3600) return fmt::format("{}h{:02d}m", t / 3600, (t / 60) % 60);
  if (t >= 60) return fmt::format("{}m{:02d}s", t / 60, t % 60);
  return fmt::format("{}s", t);
}
}  // namespace

Trainer::Trainer(const Config& cfg, const TrainOptions& opts) : cfg_(cfg), opts_(opts) {
  if (const char* s = std::getenv("GALORE_INJECT_NAN_STEP")) inject_nan_step_ = std::atoll(s);
  if (cfg_.training.threads > 0) omp_set_num_threads(cfg_.training.threads);
  if (!cfg_.model.init_from.empty()) {
    if (cfg_.model.shape_from_init) {
      ModelConfig hf = model_config_from_hf(cfg_.model.init_from);
      hf.init_from = cfg_.model.init_from;
      hf.shape_from_init = true;
      hf.max_seq_len = std::max(hf.max_seq_len, cfg_.training.seq_len);
      cfg_.model = hf;
      // the model checks load_config skipped for these keys (an odd head dim, say)
      validate_config(cfg_, cfg_.model.init_from + "/config.json (model.shape_from_init)");
    } else {
      check_hf_shape(cfg_.model, cfg_.model.init_from);
    }
  }
  backend_ = make_backend(cfg_.training.device);
  check_cuda_dtype(cfg_, backend_->device());
  const int B = cfg_.training.micro_batch_size, T = cfg_.training.seq_len;
  check_memory_plan();
  if (opts_.op_timing) op_timer_ = std::make_unique<TimedBackend>(*backend_);
  Backend& model_backend = op_timer_ ? static_cast<Backend&>(*op_timer_) : *backend_;
  model_ = std::make_unique<LlamaModel>(cfg_.model, model_backend, B, T, logits_workspace_rows(B * T),
                                        cfg_.training.recompute);
  const bool galore = optimizer_is_galore(cfg_.optimizer.name);
  params_ = llama_params(cfg_.model, galore ? cfg_.optimizer.galore.targets : std::vector<std::string>{});
  // Per-layer updates hand the optimizer every micro-batch; all-at-once sums them first.
  const int optim_micro = cfg_.optimizer.per_layer_updates ? cfg_.grad_accum_steps() : 1;
  optimizer_ = make_train_optimizer(cfg_.optimizer, params_, *backend_, optim_micro);
  optimizer_->set_phase_marker([this](OptimPhase p) {  // the optimizer's parts, in profiled steps
    static constexpr StepPhase kPhase[] = {StepPhase::OptRefresh, StepPhase::OptProject, StepPhase::OptAdam,
                                           StepPhase::OptUpdate};
    mark(kPhase[int(p)]);
  });
  if (cfg_.optimizer.per_layer_updates) {
    shared_grad_ = std::make_unique<SharedGradBuffer>(*backend_, params_, optimizer_->lent_grad_buffer());
    shared_grad_->set_consumer([this](int p, const Tensor& g) {
      mark(StepPhase::Optimizer);
      optimizer_->on_grad(p, model_->weight(p), g, current_);
      mark(StepPhase::Backward);
    });
    shared_grad_->set_factor_consumer(
        [this](int p) { return optimizer_->takes_grad_factors(p, current_); },
        [this](int p, const Tensor& dy, const Tensor& x) {
          mark(StepPhase::Optimizer);
          optimizer_->on_grad_factors(p, dy, x, current_);
          mark(StepPhase::Backward);
        });
  } else {
    full_grads_ = std::make_unique<FullGradients>(*backend_, params_);
  }
  batch_.resize(size_t(B) * (T + 1));

  if (opts_.synthetic_data) {
    model_->init_random(cfg_.training.seed);
    return;  // no data, no checkpoints: train_step draws random tokens
  }
  if (cfg_.data.train_shards.empty()) fail("data.train_shards is empty: set it to the token shards (docs/DATA.md)");
  if (!opts_.eval_only) loader_ = std::make_unique<TrainLoader>(loader_options(cfg_, cfg_.data.train_shards));
  if (!cfg_.data.val_shards.empty())
    val_loader_ = std::make_unique<ValLoader>(loader_options(cfg_, cfg_.data.val_shards),
                                              int64_t(cfg_.eval.batches) * B);

  std::string resume = opts_.resume;
  if (resume == "auto") {
    auto latest = find_latest_checkpoint(cfg_.checkpoint_dir());
    if (latest) resume = *latest;
    else {
      spdlog::info("--resume auto: no complete checkpoint in {}, starting from scratch", cfg_.checkpoint_dir());
      resume.clear();
    }
  }
  if (!opts_.eval_only) {
    const std::string why = probe_checkpoint_dir(cfg_.checkpoint_dir());
    if (!why.empty()) {
      if (cfg_.checkpoint.on_write_error != "continue")
        fail("checkpoint.dir {} is not writable: {}; fix checkpoint.dir (or logging.dir), or set "
             "checkpoint.on_write_error=continue",
             cfg_.checkpoint_dir(), why);
      spdlog::error("checkpoint.dir {} is not writable: {}; training anyway (checkpoint.on_write_error=continue)",
                    cfg_.checkpoint_dir(), why);
    }
    if (resume.empty() && !list_checkpoints(cfg_.checkpoint_dir()).empty())
      fail("{} already holds checkpoints of an earlier run; continue it with --resume auto, or start a new run with "
           "another logging.dir (or checkpoint.dir)",
           cfg_.checkpoint_dir());
  }
  if (!resume.empty()) {
    resume_from(resume);
  } else if (opts_.eval_only) {
    if (opts_.resume == "auto") fail("--eval-only --resume auto: no complete checkpoint in {}", cfg_.checkpoint_dir());
    fail("--eval-only needs --resume <checkpoint> (or auto)");
  } else if (!cfg_.model.init_from.empty()) {
    load_hf_weights(*model_, cfg_.model.init_from);
    spdlog::info("initialised weights from {}", cfg_.model.init_from);
  } else {
    model_->init_random(cfg_.training.seed);
  }
}

Trainer::~Trainer() = default;

// On the GPU: refuse a plan that cannot fit before allocating anything, and
// reserve the backend's op scratch at its planned size and build the RoPE
// tables (no allocation in the step).
void Trainer::check_memory_plan() {
  if (backend_->device() != Device::CUDA) return;
  const MemoryPlan plan = plan_memory(cfg_, Device::CUDA);
  size_t free_b = 0, total_b = 0;
  if (cuda_memory_info(&free_b, &total_b)) {
    const std::string why = memory_fit_error(cfg_, free_b);
    if (!why.empty()) fail("{}: {}", cfg_.logging.dir, why);
    spdlog::info("memory plan: {:.2f} GiB of {:.2f} GiB free on the GPU", double(plan.total()) / (1ull << 30),
                 double(free_b) / (1ull << 30));
  }
  cuda_backend_reserve_scratch(*backend_, cuda_backend_scratch_bytes(cfg_.model, cfg_.training.micro_batch_size,
                                                                     cfg_.training.seq_len));
  cuda_backend_prepare_rope(*backend_, cfg_.training.seq_len, cfg_.model.head_dim(), float(cfg_.model.rope_theta));
}

void Trainer::resume_from(const std::string& path) {
  const std::string why = verify_checkpoint(path);
  if (!why.empty()) fail("--resume {}: {}; pick another checkpoint or use --resume auto", path, why);
  json st = read_trainer_state(path);
  // The model shape and optimizer must match; lr, steps and intervals may change.
  const json& old_cfg = st.at("config");
  const json new_cfg = cfg_.to_json();
  // read_trainer_state checked that both sections are objects; a missing key reads as null.
  auto model_key = [](const json& cfg, const std::string& key) {
    const json& model = cfg["model"];
    if (key == "num_kv_heads" && model.value(key, json()) == 0) return model.value("num_heads", json());  // 0 = num_heads
    return model.value(key, json());
  };
  for (const char* key : {"vocab_size", "hidden_size", "intermediate_size", "num_layers", "num_heads", "num_kv_heads",
                          "rms_norm_eps", "rope_theta"})
    if (model_key(old_cfg, key) != model_key(new_cfg, key))
      fail("--resume {}: model.{} is {} in the checkpoint but {} in the config; resume with the same model shape and settings",
           path, key, model_key(old_cfg, key).dump(), model_key(new_cfg, key).dump());
  for (const char* key : {"name", "per_layer_updates"})
    if (old_cfg["optimizer"].value(key, json()) != new_cfg["optimizer"][key])
      fail("--resume {}: optimizer.{} is {} in the checkpoint but {} in the config; resume with the same optimizer",
           path, key, old_cfg["optimizer"].value(key, json()).dump(), new_cfg["optimizer"][key].dump());
  for (auto& [section, keys] : new_cfg.items())
    for (auto& [key, value] : keys.items())
      if (old_cfg.contains(section) && old_cfg[section].contains(key) && old_cfg[section][key] != value)
        spdlog::info("resume: {}.{} changed from {} to {}", section, key, old_cfg[section][key].dump(), value.dump());
  load_checkpoint_weights(*model_, path);
  load_checkpoint_optimizer(*optimizer_, path);
  state_.step = st.at("step").get<int64_t>();
  state_.tokens = st.at("tokens").get<int64_t>();
  state_.prev_grad_norm = st.at("prev_grad_norm").get<double>();
  state_.skipped_steps = st.value("skipped_steps", int64_t(0));
  state_.elapsed_s = st.value("elapsed_s", 0.0);
  loss_accum_for_log_ = st.value("log_loss_sum", 0.0);  // the logging window in progress
  loss_count_for_log_ = st.value("log_loss_count", 0);
  if (loader_) {
    try {
      loader_->restore(st.at("data_position"));
    } catch (const Error& e) {
      fail("--resume {}: trainer_state.json: {}", path, e.what());
    }
  }
  if (cfg_.training.gemm_autotune > 0 && st.contains("gemm_algos") && backend_->device() == Device::CUDA) {
    std::vector<uint8_t> table;
    std::string why = st["gemm_algos"].is_string() && hex_decode(st["gemm_algos"].get<std::string>(), &table)
                          ? cuda_backend_import_gemm_algos(*backend_, table)
                          : "trainer_state.json's gemm_algos is not a hex string";
    if (why.empty()) {
      gemms_tuned_ = true;
      spdlog::info("resume: the GEMM algorithms autotuned by the original run ({} bytes)", table.size());
    } else {
      spdlog::warn("resume: {}: the checkpoint's GEMM algorithm table is not used ({}); they are tuned again after "
                   "the next step, so this run is not bit-exact with the original",
                   path, why);
    }
  }
  spdlog::info("resumed from {} at step {}", path, state_.step);
}

void Trainer::save_checkpoint(const std::string& reason) {
  json st = {{"step", state_.step},
             {"tokens", state_.tokens},
             {"prev_grad_norm", state_.prev_grad_norm},
             {"skipped_steps", state_.skipped_steps},
             {"log_loss_sum", loss_accum_for_log_},
             {"log_loss_count", loss_count_for_log_},
             {"elapsed_s", state_.elapsed_s + (now_s() - run_start_)},
             {"data_position", loader_ ? loader_->position() : json()},
             {"config", cfg_.to_json()},
             {"config_hash", cfg_.hash()},
             {"version", GALORE_VERSION},
             {"reason", reason}};
  if (gemms_tuned_ && backend_->device() == Device::CUDA) {  // the autotuned algorithms: a resume runs the same ones
    const std::vector<uint8_t> table = cuda_backend_export_gemm_algos(*backend_);
    st["gemm_algos"] = hex_encode(table.data(), table.size());
  }
  try {
    // large models take seconds to download and write: say so first
    if (model_->num_weights() >= (int64_t(1) << 30))
      spdlog::info("writing checkpoint {} ({})...", checkpoint_name(state_.step), reason);
    const std::string path = write_checkpoint(cfg_.checkpoint_dir(), state_.step, *model_, *optimizer_, st);
    spdlog::info("checkpoint {} ({})", path, reason);
    prune_checkpoints(cfg_.checkpoint_dir(), cfg_.checkpoint.keep_last);
  } catch (const Error& e) {
    if (cfg_.checkpoint.on_write_error == "continue") {
      spdlog::error("checkpoint at step {} failed: {}; continuing (checkpoint.on_write_error=continue)", state_.step,
                    e.what());
      return;
    }
    throw Error(fmt::format("checkpoint at step {} failed: {}; earlier checkpoints are intact. Set "
                            "checkpoint.on_write_error=continue to keep training anyway",
                            state_.step, e.what()));
  }
}

void Trainer::profile_next_step() {
  // Marks: 3 per micro-batch; with per-layer updates, per weight and
  // micro-batch 2 around its update, 2 more when it comes as factors first;
  // 2 around the all-at-once updates; 1 at the start; inside each update and
  // factored projection the optimizer's parts (OptimPhase: at most 5 in all).
  const int n_micro = cfg_.grad_accum_steps();
  const int handed_on = model_->num_params() * (shared_grad_ ? n_micro : 1);
  profile_ = std::make_unique<StepProfile>(*backend_, 3 + 3 * n_micro + 2 + 9 * handed_on);
}

double Trainer::train_step() {
  const int n_micro = cfg_.grad_accum_steps();
  const int64_t step = state_.step;
  const double lr = lr_at(cfg_.schedule, cfg_.optimizer.lr, step, cfg_.training.max_steps);
  const double clip = cfg_.training.grad_clip;
  const bool per_tensor = clip > 0 && cfg_.training.clip_mode == "per_tensor";
  current_ = StepInfo{step, lr, 1.0, per_tensor ? clip : 0.0, 0, n_micro};
  if (cfg_.optimizer.per_layer_updates && clip > 0 && !per_tensor && state_.prev_grad_norm > clip)
    current_.clip_scale = clip / state_.prev_grad_norm;  // per-layer: the previous step's global norm

  mark(StepPhase::Other);
  double loss_sum = 0.0;
  bool finite = true;
  for (int micro = 0; micro < n_micro && finite; ++micro) {
    if (loader_) {
      loader_->next_batch(cfg_.training.micro_batch_size, batch_.data());
    } else {  // synthetic data (benchmarks)
      Rng rng(cfg_.training.seed ^ (uint64_t(step) << 20) ^ uint64_t(micro));
      for (auto& t : batch_) t = int32_t(rng.next_u64() % uint64_t(cfg_.model.vocab_size));
    }
    // The lm_head backward runs inside forward (one pass over the logits); its
    // gradient is handed on only by backward, which a non-finite loss skips.
    if (full_grads_) full_grads_->set_accumulate(micro > 0);
    GradSink& sink = shared_grad_ ? static_cast<GradSink&>(*shared_grad_) : *full_grads_;
    mark(StepPhase::Forward);
    double loss = model_->forward(batch_.data(), &sink, 1.0f / float(n_micro));
    if (step == inject_nan_step_) loss = NAN;  // test hook: GALORE_INJECT_NAN_STEP
    if (!std::isfinite(loss)) {
      finite = false;
      break;
    }
    loss_sum += loss;
    current_.micro = micro;
    mark(StepPhase::Backward);
    model_->backward(sink, 1.0f / float(n_micro));
    mark(StepPhase::Other);
  }
  if (!finite && cfg_.training.nan_policy == "stop") {
    // The weights are untouched by this step (updates happen after backward,
    // which did not run), so a checkpoint now holds the last good state; its
    // data position is past the bad batch, so a resume does not replay it.
    metrics_.write({{"step", step}, {"event", "nan_stop"}});
    save_checkpoint("non-finite loss");
    fail("non-finite loss at step {}; stopped (training.nan_policy=stop). The checkpoint {}/{} holds the last good "
         "state",
         step, cfg_.checkpoint_dir(), checkpoint_name(state_.step));
  }
  state_.tokens += int64_t(n_micro) * cfg_.training.micro_batch_size * cfg_.training.seq_len;
  if (!finite) {
    state_.skipped_steps++;
    metrics_.write({{"step", step}, {"event", "nan_skip"}, {"skipped_steps", state_.skipped_steps}});
    spdlog::warn("non-finite loss at step {}: step skipped ({} so far)", step, state_.skipped_steps);
    optimizer_->take_grad_sq_norm();
    state_.step++;
    end_profile();
    return NAN;
  }
  if (full_grads_) {
    // All-at-once: exact global norm, then one per-weight step each.
    const double norm = std::sqrt(backend_->sum_squares_total(full_grads_->all()));  // one host sync, not one per weight
    if (clip > 0 && !per_tensor && norm > clip) current_.clip_scale = clip / norm;
    current_.micro = 0;
    current_.n_micro = 1;
    mark(StepPhase::Optimizer);
    for (int p = 0; p < model_->num_params(); ++p)
      optimizer_->on_grad(p, model_->weight(p), full_grads_->grad(p), current_);
    mark(StepPhase::Other);
  }
  state_.prev_grad_norm = std::sqrt(optimizer_->take_grad_sq_norm());
  const int64_t bad = optimizer_->take_nonfinite_count();
  if (bad) spdlog::warn("step {}: {} non-finite gradient elements were skipped", step, bad);
  state_.step++;
  end_profile();
  if (cfg_.training.gemm_autotune > 0 && !gemms_tuned_) autotune_gemms();
  return loss_sum / n_micro;
}

// After the first step every GEMM shape of a step has run once (a refresh
// step's too: the first step refreshes), so one pass tunes them all. The
// activation arena is dead between steps and holds the scratch operands.
void Trainer::autotune_gemms() {
  gemms_tuned_ = true;
  if (backend_->device() != Device::CUDA) return;
  const double t0 = now_s();
  const GemmTuneResult r = cuda_backend_autotune_gemms(*backend_, model_->activation_scratch(),
                                                       model_->activation_bytes(), cfg_.training.gemm_autotune);
  spdlog::info("GEMM autotune ({} candidates): {} shapes timed in {:.1f} s, {} changed algorithm, {} too large for the "
               "{:.0f} MiB scratch (heuristic's); step 1's calls of the timed shapes, each timed alone: {:.1f} ms "
               "before, {:.1f} ms now",
               cfg_.training.gemm_autotune, r.shapes, now_s() - t0, r.changed, r.skipped,
               double(model_->activation_bytes()) / double(1 << 20), r.ms_before, r.ms_after);
  metrics_.write({{"step", state_.step}, {"event", "gemm_autotune"}, {"shapes", r.shapes}, {"changed", r.changed},
                  {"skipped", r.skipped}, {"ms_before", r.ms_before}, {"ms_after", r.ms_after}});
}

double Trainer::evaluate() {
  if (!val_loader_) return NAN;
  const int B = cfg_.training.micro_batch_size;
  double sum = 0.0;
  int n = 0;
  for (int64_t first = 0; first + B <= val_loader_->num_windows(); first += B) {
    val_loader_->window_batch(first, B, batch_.data());
    sum += model_->forward(batch_.data());
    ++n;
  }
  if (n == 0) fail("validation shards hold fewer than {} windows of {} tokens; add data or lower micro_batch_size", B,
                   cfg_.training.seq_len + 1);
  return sum / n;
}

void Trainer::check_loss_spike(double loss) {
  // A z-score over the last kWindow step losses; spikes are logged, not acted on.
  constexpr size_t kWindow = 50;
  constexpr double kZ = 4.0;
  if (!std::isfinite(loss)) return;
  if (recent_losses_.size() >= 10) {
    double mean = 0.0, var = 0.0;
    for (double x : recent_losses_) mean += x;
    mean /= double(recent_losses_.size());
    for (double x : recent_losses_) var += (x - mean) * (x - mean);
    const double sd = std::sqrt(var / double(recent_losses_.size()));
    const double z = sd > 0 ? (loss - mean) / sd : 0.0;
    if (z > kZ) {
      clear_progress();
      spdlog::warn("loss spike at step {}: {:.4f} is {:.1f} standard deviations above the mean of the last {} steps",
                   state_.step, loss, z, recent_losses_.size());
      metrics_.write({{"step", state_.step}, {"event", "loss_spike"}, {"loss", loss}, {"z", z}});
    }
  }
  recent_losses_.push_back(loss);
  if (recent_losses_.size() > kWindow) recent_losses_.erase(recent_losses_.begin());
}

void Trainer::clear_progress() {
  if (progress_line_) {
    std::fputs("\r\033[K", stdout);
    std::fflush(stdout);
  }
}

void Trainer::show_progress(double loss) {
  // One updating line on a terminal: step/total, loss, tokens/s, MFU, memory, ETA.
  if (!progress_line_) return;
  const double elapsed = now_s() - run_start_;
  const int64_t tokens_per_step = int64_t(cfg_.training.total_batch_size) * cfg_.training.seq_len;
  const double tps = double(steps_this_run_ * tokens_per_step) / std::max(elapsed, 1e-9);
  const double peak = backend_->peak_flops();
  const std::string mfu =
      peak > 0 ? fmt::format("{:.1f}%", 100.0 * tps * llama_flops_per_token(cfg_.model, cfg_.training.seq_len,
                                                                       model_->num_weights()) / peak)
               : "n/a";
  const double eta = elapsed / double(steps_this_run_) * double(cfg_.training.max_steps - state_.step);
  std::fprintf(stdout, "\r\033[Kstep %lld/%d | loss %.4f | %.0f tok/s | MFU %s | mem %.2f GiB | ETA %s",
               (long long)state_.step, cfg_.training.max_steps, loss, tps, mfu.c_str(),
               double(backend_->memory_in_use()) / double(1ull << 30), fmt_duration(eta).c_str());
  std::fflush(stdout);
}

void Trainer::log_step(double loss, double grad_norm, double step_seconds) {
  clear_progress();
  const double elapsed = now_s() - run_start_;
  const int64_t tokens_per_step =
      int64_t(cfg_.training.total_batch_size) * cfg_.training.seq_len;
  const double tps = steps_this_run_ > 0 ? double(steps_this_run_ * tokens_per_step) / elapsed : 0.0;
  const double eta = steps_this_run_ > 0
                         ? elapsed / double(steps_this_run_) * double(cfg_.training.max_steps - state_.step)
                         : NAN;
  const double lr = current_.lr;
  spdlog::info("step {:>6}/{} | loss {:.4f} | lr {:.3e} | grad norm {:.3f} | {:.0f} tok/s | {} elapsed | eta {}",
               state_.step, cfg_.training.max_steps, loss, lr, grad_norm, tps, fmt_duration(elapsed + state_.elapsed_s),
               fmt_duration(eta));
  metrics_.write({{"step", state_.step},
                  {"loss", loss},
                  {"lr", lr},
                  {"grad_norm", grad_norm},
                  {"tokens", state_.tokens},
                  {"tokens_per_s", tps},
                  {"step_s", step_seconds},
                  {"elapsed_s", elapsed + state_.elapsed_s},
                  {"eta_s", std::isfinite(eta) ? json(eta) : json(nullptr)},
                  {"skipped_steps", state_.skipped_steps}});
}

int Trainer::run() {
  run_start_ = now_s();
  std::error_code ec;
  fs::create_directories(cfg_.logging.dir, ec);
  if (ec) fail("logging.dir={}: cannot create it: {}", cfg_.logging.dir, ec.message());
  // --eval-only appends after everything (its record is at the checkpoint's step).
  metrics_.open(cfg_.logging.dir + "/metrics.jsonl", opts_.eval_only ? INT64_MAX : state_.step);
  spdlog::info("backend {} | model {:.2f}M params | {} | micro-batch {}x{} | accumulation {} | {} steps",
               backend_->name(), double(model_->num_weights()) / 1e6, optimizer_->name(),
               cfg_.training.micro_batch_size, cfg_.training.seq_len, cfg_.grad_accum_steps(),
               cfg_.training.max_steps);

  if (opts_.eval_only) {
    if (!val_loader_) fail("--eval-only: data.val_shards is empty; set it to the validation shards (docs/DATA.md)");
    const double vl = evaluate();
    spdlog::info("eval at step {}: val loss {:.4f} | val ppl {:.2f}", state_.step, vl, std::exp(vl));
    metrics_.write({{"step", state_.step}, {"val_loss", vl}, {"val_ppl", std::exp(vl)}, {"eval_only", true}});
    return 0;
  }

  progress_line_ = cfg_.logging.progress == "line" || (cfg_.logging.progress == "auto" && ::isatty(STDOUT_FILENO));
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  const int64_t every = cfg_.logging.every > 0 ? cfg_.logging.every : 1;
  while (state_.step < cfg_.training.max_steps) {
    const double t0 = now_s();
    const double loss = train_step();
    ++steps_this_run_;
    check_loss_spike(loss);
    show_progress(loss);
    if (std::isfinite(loss)) {
      loss_accum_for_log_ += loss;
      loss_count_for_log_++;
    }
    const bool last = state_.step == cfg_.training.max_steps;
    if (state_.step % every == 0 || last || state_.step == 1) {
      log_step(loss_count_for_log_ ? loss_accum_for_log_ / loss_count_for_log_ : NAN, state_.prev_grad_norm,
               now_s() - t0);
      loss_accum_for_log_ = 0.0;
      loss_count_for_log_ = 0;
    }
    if (val_loader_ && ((cfg_.eval.every > 0 && state_.step % cfg_.eval.every == 0) || last)) {
      const double vl = evaluate();
      clear_progress();
      spdlog::info("eval at step {}: val loss {:.4f} | val ppl {:.2f}", state_.step, vl, std::exp(vl));
      metrics_.write({{"step", state_.step}, {"tokens", state_.tokens}, {"val_loss", vl}, {"val_ppl", std::exp(vl)}});
    }
    const bool stop = g_stop_signal != 0;
    const bool checkpoints = !opts_.synthetic_data;  // random tokens: nothing worth resuming
    if (checkpoints && ((cfg_.checkpoint.every > 0 && state_.step % cfg_.checkpoint.every == 0) || last || stop))
      save_checkpoint(stop ? "signal" : (last ? "final" : "periodic"));
    if (stop) {
      clear_progress();
      spdlog::warn("stopped by signal {} after step {}{}", int(g_stop_signal), state_.step,
                   checkpoints ? "; resume with --resume auto" : "");
      return 128 + g_stop_signal;
    }
  }
  clear_progress();
  spdlog::info("done: {} steps, {} tokens, {} skipped steps", state_.step, state_.tokens, state_.skipped_steps);
  return 0;
}

}  // namespace gt
