#include "train/step_flops.h"

#include "config/config.h"
#include "model/llama.h"
#include "optim/optimizer.h"
#include "optim/projector.h"

namespace gt {

StepFlops step_flops(const Config& cfg, bool refresh) {
  const ModelConfig& mc = cfg.model;
  const OptimizerConfig& oc = cfg.optimizer;
  const bool galore = optimizer_is_galore(oc.name);
  const double B = cfg.training.micro_batch_size, T = cfg.training.seq_len, N = B * T;
  const int n_micro = cfg.grad_accum_steps();
  const bool recompute = cfg.training.recompute;
  StepFlops f;
  for (const ParamInfo& p : llama_params(mc, galore ? oc.galore.targets : std::vector<std::string>{})) {
    const double m = double(p.rows), n = double(p.cols);
    if (p.kind == ParamKind::LmHead) {  // the training forward's one pass: logits, then dX and dW
      f.forward += n_micro * 2 * N * m * n;
      f.backward += n_micro * 2 * 2 * N * m * n;
      continue;
    }
    if (p.kind != ParamKind::Linear) continue;
    const double gemm = 2 * N * m * n;  // one [N, ·] × W product
    f.forward += n_micro * gemm;
    if (recompute && p.name.find("down_proj") == std::string::npos) f.recompute += n_micro * gemm;
    f.backward += n_micro * gemm;  // dX
    if (!p.galore) {
      f.backward += n_micro * gemm;  // dW
      continue;
    }
    const ProjGeom g = make_proj_geom(oc.galore.proj_type, p.rows, p.cols, oc.galore.rank);
    const double r = double(g.r);
    const double project = g.side == ProjSide::Both ? 2 * r * m * n + 2 * r * r * n : 2 * r * m * n;
    const bool factors = oc.per_layer_updates && oc.galore.factored_projection && galore_factors_supported(g);
    for (int micro = 0; micro < n_micro; ++micro) {
      if (factors && !(refresh && micro == 0)) {
        f.backward += 2 * N * r * (m + n);  // (dY·A)ᵀ·X or dYᵀ·(X·Bᵀ)
      } else {
        f.backward += gemm;  // G
        // per-layer: each micro-batch's G is projected; all-at-once: the summed G once
        if (oc.per_layer_updates || micro == 0) f.galore += project;
      }
    }
    f.galore += project;  // back-projection (same FLOPs as the projection)
  }
  // attention per layer: S = QKᵀ and O = PV on the causal half; backward recomputes S, then dV, dP, dQ, dK
  const double attn_fwd = mc.num_layers * n_micro * 2.0 * B * mc.num_heads * T * T * mc.head_dim();
  f.forward += attn_fwd;
  if (recompute) f.recompute += attn_fwd;
  f.backward += 2.5 * attn_fwd;
  return f;
}

}  // namespace gt
