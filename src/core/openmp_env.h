// OpenMP's default wait policy lets idle threads spin. When two processes
// share the cores (parallel CPU runs of a sweep, a run beside a tokenizer),
// the spinning threads starve each other's work: two tiny.json runs side by
// side on 2 cores took 44 s instead of 8. libgomp reads OMP_WAIT_POLICY when it
// is loaded, before main(), so a tool that finds it unset sets PASSIVE and
// re-executes itself (same pid, arguments and descriptors). On an idle machine
// PASSIVE costs ~4% on tiny.json. An explicit OMP_WAIT_POLICY is kept.
#pragma once
#include <unistd.h>

#include <cstdlib>

namespace gt {

inline void prefer_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY")) return;
  ::setenv("OMP_WAIT_POLICY", "PASSIVE", 1);
  ::execv("/proc/self/exe", argv);  // returns only on failure: go on with the default policy
}

}  // namespace gt
