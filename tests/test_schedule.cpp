// Learning-rate schedule values at known steps.
#include <gtest/gtest.h>

#include "config/config.h"
#include "optim/optimizer.h"

using namespace gt;

TEST(Schedule, CosineWarmupThenDecayToMinExactlyAtTheLastStep) {
  ScheduleConfig s;
  s.type = "cosine";
  s.warmup_steps = 10;
  s.min_lr_ratio = 0.1;
  const int64_t max_steps = 110;
  EXPECT_DOUBLE_EQ(lr_at(s, 1.0, 0, max_steps), 0.1);   // warmup: (step+1)/warmup
  EXPECT_DOUBLE_EQ(lr_at(s, 1.0, 4, max_steps), 0.5);
  EXPECT_DOUBLE_EQ(lr_at(s, 1.0, 9, max_steps), 1.0);
  EXPECT_DOUBLE_EQ(lr_at(s, 1.0, 10, max_steps), 1.0);  // decay starts at the peak
  // halfway through the decay (steps 10..109): cos(pi/2) -> midpoint
  const double mid = lr_at(s, 1.0, 59, max_steps);
  EXPECT_NEAR(mid, 0.1 + 0.45 * (1 + std::cos(M_PI * 49.0 / 99.0)), 1e-12);
  EXPECT_DOUBLE_EQ(lr_at(s, 1.0, 109, max_steps), 0.1);  // exactly the minimum at the last step
  // not cyclic: monotone after warmup
  for (int64_t t = 10; t < 109; ++t) EXPECT_GE(lr_at(s, 1.0, t, max_steps), lr_at(s, 1.0, t + 1, max_steps));
}

TEST(Schedule, LinearAndConstant) {
  ScheduleConfig s;
  s.type = "linear";
  s.warmup_steps = 0;
  s.min_lr_ratio = 0.0;
  EXPECT_DOUBLE_EQ(lr_at(s, 2.0, 0, 11), 2.0);
  EXPECT_DOUBLE_EQ(lr_at(s, 2.0, 5, 11), 1.0);
  EXPECT_DOUBLE_EQ(lr_at(s, 2.0, 10, 11), 0.0);
  s.type = "constant";
  s.warmup_steps = 4;
  EXPECT_DOUBLE_EQ(lr_at(s, 2.0, 1, 11), 1.0);
  EXPECT_DOUBLE_EQ(lr_at(s, 2.0, 10, 11), 2.0);
}
