// optimizer.name -> optimizer.
#include "config/config.h"
#include "core/error.h"
#include "optim/basic.h"

namespace gt {

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params,
                                          Backend& backend) {
  if (cfg.name == "sgd") return std::make_unique<Sgd>(cfg, params);
  if (cfg.name == "adamw") return std::make_unique<AdamW>(cfg, params);
  fail("optimizer.name '{}' is not available yet; use sgd or adamw", cfg.name);
}

}  // namespace gt
