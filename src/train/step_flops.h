// The FLOPs one optimizer step executes, as the trainer runs it (a diagnostic
// for galore-bench: how close the step runs to the GEMM ceiling). Counted:
// every GEMM (forward, the recompute forward, dX, dW or the factored GaLore
// projection, the projection of a formed G, the back-projection, the
// classifier's three lm_head products) and attention's causal products (the
// flash kernels skip the blocks above the diagonal). Not counted: elementwise
// kernels, the 8-bit Adam step, the projector refresh itself.
//
// The "model" FLOPs of MFU (llama_flops_per_token: 6·N per token + attention)
// are a convention; these are what the kernels are asked to do.
#pragma once
#include <cstdint>

namespace gt {

struct Config;

struct StepFlops {
  double forward = 0;     // forward GEMMs + attention (incl. the classifier's loss GEMM)
  double recompute = 0;   // training.recompute: the layer forward again in backward (not down_proj)
  double backward = 0;    // dX, dW (or the factored projection), the classifier's dX and dW, attention
  double galore = 0;      // projections of formed gradients + back-projections
  double total() const { return forward + recompute + backward + galore; }
};

// One step of cfg (all its micro-batches). refresh: the GaLore targets refresh
// in this step (micro-batch 0 forms G even with optimizer.galore.factored_projection).
StepFlops step_flops(const Config& cfg, bool refresh);

}  // namespace gt
