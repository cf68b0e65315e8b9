#include "train/memory_plan.h"

#include <sstream>

#include "core/arena.h"
#include "model/grads.h"
#include "model/llama.h"
#include "backend/device_plan.h"
#include "optim/backend_adamw.h"

namespace gt {

void check_cuda_dtype(const Config& cfg, Device device) {
  if (device == Device::CUDA && cfg.training.dtype != "bf16")
    fail("training.dtype={}: the CUDA backend trains bf16 weights (fp32 master weights are not implemented); set "
         "training.dtype=bf16, or training.device=cpu for fp32",
         cfg.training.dtype);
}

MemoryPlan plan_memory(const Config& cfg, Device device) {
  MemoryPlan p;
  p.config_name = cfg.logging.dir;
  p.device = device;
  check_cuda_dtype(cfg, device);
  p.dtype = device == Device::CPU ? DType::F32 : DType::BF16;
  p.micro_batch = cfg.training.micro_batch_size;
  p.seq_len = cfg.training.seq_len;
  p.accum_steps = cfg.grad_accum_steps();
  const bool galore = optimizer_is_galore(cfg.optimizer.name);
  const auto params = llama_params(cfg.model, galore ? cfg.optimizer.galore.targets : std::vector<std::string>{});
  std::vector<BufferSpec> wspecs;
  p.num_weights = 0;
  for (auto& prm : params) {
    wspecs.push_back({prm.name, p.dtype, {prm.numel()}});
    p.num_weights += prm.hf_numel();  // the model size; the arena holds the padded shapes
  }
  p.weights = arena_bytes(wspecs);
  if (cfg.optimizer.per_layer_updates && is_adam_family(cfg.optimizer.name) &&
      backend_adamw_lends_grad_buffer(cfg.optimizer, device))
    p.grads_lent = true;  // inside the optimizer's workspace (BackendAdamW lends it)
  else if (cfg.optimizer.per_layer_updates)
    p.grads = arena_bytes({{"grad.shared", p.dtype, {largest_param(params)}}});
  else
    p.grads = arena_bytes(full_grad_specs(params, p.dtype));
  const int n_micro_seen = cfg.optimizer.per_layer_updates ? cfg.grad_accum_steps() : 1;
  p.optim = is_adam_family(cfg.optimizer.name)
               ? backend_adamw_state_bytes(cfg.optimizer, params, n_micro_seen, device)
               : optimizer_state_bytes(cfg.optimizer, params, n_micro_seen, dtype_size(p.dtype));
  if (device == Device::CUDA) p.backend = cuda_backend_workspace_bytes(cfg.model, p.micro_batch, p.seq_len);
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
  row(p.grads_lent ? "gradients (in optimizer workspace)" : "gradients", p.grads);
  row("optimizer: 8-bit codes", p.optim.codes);
  row("optimizer: absmax", p.optim.absmax);
  row("optimizer: fp32 states", p.optim.fp32_states);
  row("optimizer: projectors", p.optim.projectors);
  row("optimizer: accumulators", p.optim.accumulators);
  row("optimizer: workspace", p.optim.workspace);
  row("activations (+ logits workspace)", p.activations);
  if (p.device == Device::CUDA) row("CUDA backend scratch", p.backend);
  row("total", p.total());
  const bool fits = gib(p.total() + kDeviceReserveBytes) <= device_gib;
  o << fmt::format("{} a {:g} GiB device (with {:.2f} GiB kept free for the CUDA context and libraries)\n",
                   fits ? "fits" : "does NOT fit", device_gib, gib(kDeviceReserveBytes));
  return o.str();
}

std::string memory_fit_error(const Config& cfg, size_t device_bytes) {
  auto need = [](const Config& c) { return plan_memory(c, Device::CUDA).total() + kDeviceReserveBytes; };
  auto gib = [](size_t b) { return double(b) / double(1ull << 30); };
  const size_t total = need(cfg);
  if (total <= device_bytes) return "";
  // Variations, cheapest in speed first; each adds to the one before.
  std::vector<std::pair<std::string, Config>> tries;
  Config c = cfg;
  std::string sets;
  auto add = [&](const std::string& set) {
    if (!sets.empty()) sets += ' ';
    sets += "--set ";
    sets += set;
    tries.push_back({sets, c});
  };
  if (!c.training.recompute) c.training.recompute = true, add("training.recompute=true");
  if (!c.optimizer.per_layer_updates) c.optimizer.per_layer_updates = true, add("optimizer.per_layer_updates=true");
  if (c.optimizer.name == "adamw" || c.optimizer.name == "galore_adamw") {
    c.optimizer.name += "8bit";
    add("optimizer.name=" + c.optimizer.name);
  }
  const std::string base_sets = sets;
  const Config base = c;
  for (int mb = c.training.micro_batch_size / 2; mb >= 1; mb /= 2) {
    if (c.training.total_batch_size % mb) continue;
    c = base;
    c.training.micro_batch_size = mb;
    sets = base_sets;
    add("training.micro_batch_size=" + std::to_string(mb));
  }
  // Last resort: no gradient accumulation (accumulators gone; a smaller batch per
  // step), the configured micro-batch first.
  if (cfg.grad_accum_steps() > 1) {
    std::vector<std::pair<std::string, Config>> no_accum = {{"", cfg}};
    no_accum.insert(no_accum.end(), tries.begin(), tries.end());
    for (auto& [s0, t] : no_accum) {
      t.training.total_batch_size = t.training.micro_batch_size;
      tries.push_back({s0 + (s0.empty() ? "" : " ") + "--set training.total_batch_size=" +
                           std::to_string(t.training.micro_batch_size) + " (no accumulation: a smaller batch)",
                       t});
    }
  }
  std::vector<std::string> fits;
  for (auto& [s, t] : tries) {
    const size_t n = need(t);
    if (n <= device_bytes && fits.size() < 3) fits.push_back(fmt::format("{} ({:.1f} GiB)", s, gib(n)));
  }
  std::string msg = fmt::format(
      "the memory plan needs {:.2f} GiB (galore-train --estimate-memory shows it) but the GPU has {:.2f} GiB free",
      gib(total), gib(device_bytes));
  if (fits.empty()) return msg + "; no combination of recompute, per-layer updates, 8-bit states and smaller "
                                 "micro-batches fits: use a smaller model or a larger GPU";
  msg += "; settings that fit: ";
  for (size_t i = 0; i < fits.size(); ++i) msg += (i ? " | " : "") + fits[i];
  return msg;
}

}  // namespace gt
