#include "optim/memory.h"

#include "config/config.h"
#include "core/error.h"
#include "cuda/quant8.h"
#include "optim/projector.h"

namespace gt {

namespace {
// Adam m and v of n elements (8-bit only when allowed and n >= kMin8bitNumel),
// as AdamMoments allocates them.
void add_adam_states(OptimStateBytes& b, int64_t n, bool eight_bit) {
  if (eight_bit && n >= kMin8bitNumel) {
    b.codes += 2 * size_t(n);
    b.absmax += 2 * size_t(quant8_blocks(n)) * sizeof(float);
  } else {
    b.fp32_states += 2 * size_t(n) * sizeof(float);
  }
}
}  // namespace

OptimStateBytes optimizer_state_bytes(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params, int n_micro,
                                      size_t weight_elem_size) {
  OptimStateBytes b;
  const bool accum = n_micro > 1;
  const std::string& name = cfg.name;
  const bool galore = optimizer_is_galore(name);
  const bool eight_bit = optimizer_is_8bit(name);
  if (name != "sgd" && name != "adamw" && !galore && !eight_bit)
    fail("optimizer.name '{}' is not one of sgd, adamw, adamw8bit, galore_adamw, galore_adamw8bit", name);
  if (galore) validate_galore_config(cfg.galore);
  for (const ParamInfo& p : params) {
    const int64_t n = p.numel();
    if (galore && p.galore) {
      const ProjGeom g = make_proj_geom(cfg.galore.proj_type, p.rows, p.cols, cfg.galore.rank);
      add_adam_states(b, g.numel(), eight_bit);
      b.projectors += size_t(g.a_numel() + g.b_numel()) * weight_elem_size;
      if (accum) b.accumulators += size_t(g.numel()) * sizeof(float);
      continue;
    }
    if (name == "sgd") {
      if (cfg.momentum != 0.0) b.fp32_states += size_t(n) * sizeof(float);
    } else {
      add_adam_states(b, n, eight_bit);
    }
    if (accum) b.accumulators += size_t(n) * sizeof(float);  // FullRankBase's full-size accumulator
  }
  return b;
}

}  // namespace gt
