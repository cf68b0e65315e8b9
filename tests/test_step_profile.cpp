// StepProfile (galore-bench --profile) on the CPU backend: time between marks
// goes to the earlier mark's phase, phases that never start get zero, a
// profile can be reused, and more marks than reserved is an error.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "backend/backend.h"
#include "core/error.h"
#include "train/step_profile.h"

using namespace gt;

namespace {
void wait_ms(double ms) {  // sleeps at least ms (it may overshoot: the checks are lower bounds)
  std::this_thread::sleep_for(std::chrono::duration<double, std::milli>(ms));
}
double at(const std::array<double, kStepPhases>& a, StepPhase p) { return a[size_t(p)]; }
}  // namespace

TEST(StepProfile, ChargesEachIntervalToTheEarlierMarksPhase) {
  auto be = make_cpu_backend();
  StepProfile prof(*be, 8);
  const auto t0 = std::chrono::steady_clock::now();
  prof.mark(StepPhase::Forward);
  wait_ms(30);
  prof.mark(StepPhase::Optimizer);
  wait_ms(15);
  prof.mark(StepPhase::Forward);
  wait_ms(10);
  const auto ms = prof.finish();
  const double wall = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(at(ms, StepPhase::Forward), 40.0);
  EXPECT_GE(at(ms, StepPhase::Optimizer), 15.0);
  EXPECT_LT(at(ms, StepPhase::Optimizer), at(ms, StepPhase::Forward));
  EXPECT_EQ(at(ms, StepPhase::Backward), 0.0);
  EXPECT_EQ(at(ms, StepPhase::Other), 0.0);
  double sum = 0;
  for (double x : ms) sum += x;
  EXPECT_LE(sum, wall);  // the marks lie inside the wall-clock interval

  // Reusable: a second step starts from zero.
  prof.mark(StepPhase::Backward);
  wait_ms(5);
  const auto again = prof.finish();
  EXPECT_GE(at(again, StepPhase::Backward), 5.0);
  EXPECT_EQ(at(again, StepPhase::Forward), 0.0);
  EXPECT_EQ(prof.finish()[size_t(StepPhase::Backward)], 0.0);  // no marks: all zero
}

TEST(StepProfile, MoreMarksThanReservedIsAnError) {
  auto be = make_cpu_backend();
  StepProfile prof(*be, 2);
  prof.mark(StepPhase::Forward);
  prof.mark(StepPhase::Backward);
  EXPECT_THROW(prof.mark(StepPhase::Other), Error);
}

TEST(StepProfile, PhaseNames) {
  EXPECT_STREQ(step_phase_name(StepPhase::Forward), "forward");
  EXPECT_STREQ(step_phase_name(StepPhase::Backward), "backward");
  EXPECT_STREQ(step_phase_name(StepPhase::Optimizer), "optimizer");
  EXPECT_STREQ(step_phase_name(StepPhase::Other), "other");
  EXPECT_STREQ(step_phase_name(StepPhase::OptRefresh), "opt_refresh");
  EXPECT_STREQ(step_phase_name(StepPhase::OptUpdate), "opt_update");
  EXPECT_TRUE(is_optimizer_phase(StepPhase::OptAdam));
  EXPECT_TRUE(is_optimizer_phase(StepPhase::Optimizer));
  EXPECT_FALSE(is_optimizer_phase(StepPhase::Other));
}
