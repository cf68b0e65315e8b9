// Learning-rate schedules: linear warmup, then cosine / linear decay to
// min_lr_ratio * lr (reached exactly at the last step), or constant.
#include <cmath>

#include "config/config.h"
#include "core/error.h"
#include "optim/optimizer.h"

namespace gt {

double lr_at(const ScheduleConfig& sched, double base_lr, int64_t step, int64_t max_steps) {
  const int64_t warmup = sched.warmup_steps;
  if (step < warmup) return base_lr * double(step + 1) / double(warmup);
  if (sched.type == "constant") return base_lr;
  const double min_lr = base_lr * sched.min_lr_ratio;
  const int64_t decay_steps = max_steps - 1 - warmup;  // the last step is max_steps - 1
  if (decay_steps <= 0) return base_lr;
  const double progress = std::min(1.0, double(step - warmup) / double(decay_steps));
  if (sched.type == "linear") return base_lr + (min_lr - base_lr) * progress;
  if (sched.type == "cosine") return min_lr + 0.5 * (base_lr - min_lr) * (1.0 + std::cos(M_PI * progress));
  fail("schedule.type must be cosine, linear or constant (got '{}')", sched.type);
}

}  // namespace gt
