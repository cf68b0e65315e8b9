// optimizer.name -> optimizer.
#include "config/config.h"
#include "core/error.h"
#include "backend/backend.h"
#include "optim/adamw8bit.h"
#include "optim/backend_adamw.h"
#include "optim/basic.h"
#include "optim/galore.h"

namespace gt {

void Optimizer::on_grad_factors(int index, const Tensor&, const Tensor&, const StepInfo&) {
  fail("optimizer {}: parameter {} cannot take its gradient as factors (takes_grad_factors is false)", name(), index);
}

std::unique_ptr<Optimizer> make_optimizer(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params,
                                          Backend& backend) {
  if (cfg.name == "sgd") return std::make_unique<Sgd>(cfg, params);
  if (cfg.name == "adamw") return std::make_unique<AdamW>(cfg, params);
  if (cfg.name == "adamw8bit") return std::make_unique<AdamW8bit>(cfg, params);
  if (cfg.name == "galore_adamw") return std::make_unique<GaloreAdamW>(cfg, params, false);
  if (cfg.name == "galore_adamw8bit") return std::make_unique<GaloreAdamW>(cfg, params, true);
  fail("optimizer.name '{}' is not one of sgd, adamw, adamw8bit, galore_adamw, galore_adamw8bit", cfg.name);
}

std::unique_ptr<Optimizer> make_train_optimizer(const OptimizerConfig& cfg, const std::vector<ParamInfo>& params,
                                                Backend& backend, int n_micro) {
  if (is_adam_family(cfg.name)) return std::make_unique<BackendAdamW>(cfg, params, backend, n_micro);
  if (cfg.name == "sgd" && backend.device() != Device::CPU)
    fail("optimizer.name=sgd runs on the CPU only; use adamw (or another Adam variant) on the GPU, or "
         "training.device=cpu");
  return make_optimizer(cfg, params, backend);
}

}  // namespace gt
