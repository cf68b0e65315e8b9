// Where a training step's time goes (galore-bench --profile): forward, the
// model's backward, the optimizer's per-weight updates (inside backward with
// per-layer updates, after it otherwise), and the rest (data, the norm's sync).
// The optimizer's time is split further where it reports its parts
// (Optimizer::set_phase_marker): projector refresh, gradient projection,
// clipping + Adam, weight update; "optimizer" keeps the unreported rest.
// Marks are timestamps on the backend's stream (Backend::timer_record: CUDA
// events, no host sync). The time from one mark to the next is charged to the
// earlier mark's phase, so time the GPU waits for the host counts for the
// phase the host was in.
#pragma once
#include <array>
#include <vector>

#include "backend/backend.h"

namespace gt {

enum class StepPhase { Forward, Backward, Optimizer, Other, OptRefresh, OptProject, OptAdam, OptUpdate };
constexpr int kStepPhases = 8;
// "forward", "backward", "optimizer", "other", "opt_refresh", "opt_project", "opt_adam", "opt_update"
const char* step_phase_name(StepPhase p);
// Whether p is part of the optimizer's time (Optimizer or one of its parts).
inline bool is_optimizer_phase(StepPhase p) { return p == StepPhase::Optimizer || p >= StepPhase::OptRefresh; }

class StepProfile {
 public:
  // max_marks: the most marks the step will make (timer slots are reserved here, outside the step).
  StepProfile(Backend& be, int max_marks);
  void mark(StepPhase p);  // from now on, time is p's
  // Ends the last phase, synchronizes, and returns milliseconds per phase (indexed by StepPhase).
  std::array<double, kStepPhases> finish();

 private:
  Backend& be_;
  int max_marks_;
  std::vector<StepPhase> phases_;  // phase of the interval that starts at mark i
};

}  // namespace gt
