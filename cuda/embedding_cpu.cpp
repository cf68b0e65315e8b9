// CPU reference for the token embedding.
#include <cstring>
#include "cuda/embedding.h"

namespace gt {

void embedding_forward_cpu(float* out, const int32_t* tokens, const float* wte, int N, int C) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) std::memcpy(out + (int64_t)n * C, wte + (int64_t)tokens[n] * C, sizeof(float) * C);
}

void embedding_backward_cpu(float* dwte, const float* dout, const int32_t* tokens, int N, int C) {
  // Threads own channel ranges; tokens are visited in order, so repeated
  // tokens sum in a fixed order (deterministic).
#pragma omp parallel
  {
#pragma omp for schedule(static)
    for (int c = 0; c < C; ++c)
      for (int n = 0; n < N; ++n) dwte[(int64_t)tokens[n] * C + c] += dout[(int64_t)n * C + c];
  }
}

}  // namespace gt
