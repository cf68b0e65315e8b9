#include "train/memory_plan.h"

#include <sstream>

#include "core/arena.h"
#include "model/grads.h"
#include "model/llama.h"

namespace gt {

MemoryPlan plan_memory(const Config& cfg, Device device) {
  MemoryPlan p;
  p.config_name = cfg.logging.dir;
  p.device = device;
  p.dtype = device == Device::CPU || cfg.training.dtype == "fp32" ? DType::F32 : DType::BF16;
  p.micro_batch = cfg.training.micro_batch_size;
  p.seq_len = cfg.training.seq_len;
  p.accum_steps = cfg.grad_accum_steps();
  const bool galore = cfg.optimizer.name.rfind("galore", 0) == 0;
  const auto params = llama_params(cfg.model, galore ? cfg.optimizer.galore.targets : std::vector<std::string>{});
  std::vector<BufferSpec> wspecs;
  p.num_weights = 0;
  for (auto& prm : params) {
    wspecs.push_back({prm.name, p.dtype, {prm.numel()}});
    p.num_weights += prm.numel();
  }
  p.weights = arena_bytes(wspecs);
  if (cfg.optimizer.per_layer_updates)
    p.grads = arena_bytes({{"grad.shared", p.dtype, {largest_param(params)}}});
  else
    p.grads = arena_bytes(full_grad_specs(params, p.dtype));
  const int n_micro_seen = cfg.optimizer.per_layer_updates ? cfg.grad_accum_steps() : 1;
  p.optim = optimizer_state_bytes(cfg.optimizer, params, n_micro_seen, dtype_size(p.dtype));
  const int N = p.micro_batch * p.seq_len;
  p.activations = arena_bytes(
      llama_activation_specs(cfg.model, p.micro_batch, p.seq_len, p.dtype, logits_workspace_rows(N), cfg.training.recompute));
  return p;
}

std::string format_memory_table(const MemoryPlan& p, double device_gib) {
  auto gib = [](size_t b) { return double(b) / double(1ull << 30); };
  std::ostringstream o;
  o << fmt::format("memory plan: {:.2f}B parameters, {} {} weights, micro-batch {}x{}, {} micro-batches per step\n",
                   double(p.num_weights) / 1e9, p.device == Device::CUDA ? "GPU" : "CPU", dtype_name(p.dtype),
                   p.micro_batch, p.seq_len, p.accum_steps);
  o << fmt::format("| {:<34} | {:>10} |\n|{:-<36}|{:->12}|\n", "arena", "GiB", "", "");
  auto row = [&](const std::string& name, size_t b) { o << fmt::format("| {:<34} | {:>10.3f} |\n", name, gib(b)); };
  row("weights", p.weights);
  row("gradients", p.grads);
  row("optimizer: 8-bit codes", p.optim.codes);
  row("optimizer: absmax", p.optim.absmax);
  row("optimizer: fp32 states", p.optim.fp32_states);
  row("optimizer: projectors", p.optim.projectors);
  row("optimizer: accumulators", p.optim.accumulators);
  row("activations (+ logits workspace)", p.activations);
  row("total", p.total());
  const bool fits = gib(p.total()) <= device_gib;
  o << fmt::format("{} a {:.0f} GiB device\n", fits ? "fits" : "does NOT fit", device_gib);
  return o.str();
}

}  // namespace gt
