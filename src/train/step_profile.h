// Where a training step's time goes (galore-bench --profile): forward, the
// model's backward, the optimizer's per-weight updates (inside backward with
// per-layer updates, after it otherwise), and the rest (data, the norm's sync).
// Marks are timestamps on the backend's stream (Backend::timer_record: CUDA
// events, no host sync). The time from one mark to the next is charged to the
// earlier mark's phase, so time the GPU waits for the host counts for the
// phase the host was in.
#pragma once
#include <array>
#include <vector>

#include "backend/backend.h"

namespace gt {

enum class StepPhase { Forward, Backward, Optimizer, Other };
constexpr int kStepPhases = 4;
const char* step_phase_name(StepPhase p);  // "forward", "backward", "optimizer", "other"

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
