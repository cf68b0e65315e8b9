#include "train/step_profile.h"

#include "core/error.h"

namespace gt {

const char* step_phase_name(StepPhase p) {
  switch (p) {
    case StepPhase::Forward: return "forward";
    case StepPhase::Backward: return "backward";
    case StepPhase::Optimizer: return "optimizer";
    case StepPhase::Other: return "other";
    case StepPhase::OptRefresh: return "opt_refresh";
    case StepPhase::OptProject: return "opt_project";
    case StepPhase::OptAdam: return "opt_adam";
    case StepPhase::OptUpdate: return "opt_update";
  }
  return "?";
}

StepProfile::StepProfile(Backend& be, int max_marks) : be_(be), max_marks_(max_marks + 1) {
  be_.timer_reserve(max_marks_);  // + the closing stamp of finish()
  phases_.reserve(size_t(max_marks_));
}

void StepProfile::mark(StepPhase p) {
  GT_ASSERT(int(phases_.size()) + 1 < max_marks_);
  be_.timer_record(int(phases_.size()));
  phases_.push_back(p);
}

std::array<double, kStepPhases> StepProfile::finish() {
  std::array<double, kStepPhases> ms{};
  if (phases_.empty()) return ms;
  const int end = int(phases_.size());
  be_.timer_record(end);
  be_.synchronize();
  double prev = 0.0;  // timer_ms(0) == 0
  for (int i = 1; i <= end; ++i) {
    const double t = be_.timer_ms(i);
    ms[size_t(phases_[size_t(i - 1)])] += t - prev;
    prev = t;
  }
  phases_.clear();
  return ms;
}

}  // namespace gt
