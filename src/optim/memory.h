// Optimizer state accounting: the exact bytes each optimizer allocates for a
// given config and parameter list (the memory table and --estimate-memory use
// it; tests check it equals the state_bytes() of constructed optimizers).
#pragma once
#include <cstddef>
#include <vector>

#include "optim/optimizer.h"

namespace gt {

struct OptimizerConfig;

struct OptimStateBytes {
  size_t codes = 0;         // 8-bit moment codes (1 byte per element, m and v)
  size_t absmax = 0;        // fp32 absmax per 256-element block, m and v
  size_t fp32_states = 0;   // fp32 moments (AdamW, SGD momentum, small tensors of the 8-bit variants)
  size_t projectors = 0;    // GaLore projectors A [m, r] / B [r, n]
  size_t accumulators = 0;  // gradient accumulators held by the optimizer (n_micro > 1)
  size_t workspace = 0;     // scratch of the device optimizer (projected gradient, direction, kernels)
  size_t total() const { return codes + absmax + fp32_states + projectors + accumulators + workspace; }
};

// Exact bytes for any optimizer config. n_micro: micro-batches per step as the
// optimizer sees them (1 in all-at-once mode, where the trainer sums the full
// gradients; accumulators exist only for n_micro > 1: fp32, full size for
// non-GaLore tensors, projected size for GaLore targets).
// weight_elem_size: bytes per projector element on the device (4 on the CPU).
OptimStateBytes optimizer_state_bytes(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params, int n_micro,
                                      size_t weight_elem_size);

}  // namespace gt
