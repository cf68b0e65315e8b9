// The memory plan: exact bytes of every arena (weights, gradients, optimizer
// state, activations) for a config, micro-batch and device. The trainer's
// allocations are sized by the same functions (llama_activation_specs,
// full_grad_specs, optimizer_state_bytes), so estimate == allocation.
#pragma once
#include <string>

#include "config/config.h"
#include "core/tensor.h"
#include "optim/memory.h"

namespace gt {

struct MemoryPlan {
  std::string config_name;
  Device device;
  DType dtype;             // weights and activations
  int micro_batch, seq_len, accum_steps;
  int64_t num_weights;
  size_t weights = 0;
  size_t grads = 0;        // full gradient arena, or the one reused buffer (per-layer updates)
  OptimStateBytes optim;
  size_t activations = 0;  // activation arena, logits workspace included
  size_t total() const { return weights + grads + optim.total() + activations; }
};

// For Device::CUDA the dtype is training.dtype (bf16 by default); the CPU is fp32.
MemoryPlan plan_memory(const Config& cfg, Device device);
std::string format_memory_table(const MemoryPlan& plan, double device_gib);

}  // namespace gt
