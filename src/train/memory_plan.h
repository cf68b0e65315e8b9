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
  bool grads_lent = false; // per-layer on CUDA: the buffer is in the optimizer's workspace (grads == 0)
  OptimStateBytes optim;
  size_t activations = 0;  // activation arena, logits workspace included
  size_t backend = 0;      // the CUDA backend's own buffers (op scratch, staging, cuBLASLt workspace)
  size_t total() const { return weights + grads + optim.total() + activations + backend; }
};

// Memory the CUDA context, cuBLAS and cuSOLVER take outside our arenas (not
// planned byte by byte; kept free by the fit check).
constexpr size_t kDeviceReserveBytes = size_t(768) << 20;

// Fails (one line, names training.dtype) when the device cannot train cfg's
// dtype: CUDA trains bf16 weights only (no fp32 master weights yet).
void check_cuda_dtype(const Config& cfg, Device device);

// For Device::CUDA the dtype is bf16 (check_cuda_dtype refuses fp32); the CPU is fp32.
MemoryPlan plan_memory(const Config& cfg, Device device);
std::string format_memory_table(const MemoryPlan& plan, double device_gib);

// "" when cfg's plan (plus kDeviceReserveBytes) fits in device_bytes;
// otherwise a one-line refusal with the plan's total and up to three
// variations of the config that would fit, as --set options (recompute,
// smaller micro-batches with the same total batch, per-layer updates, 8-bit
// states).
std::string memory_fit_error(const Config& cfg, size_t device_bytes);

}  // namespace gt
