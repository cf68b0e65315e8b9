// CPU reference for softmax cross-entropy.
#include <cmath>
#include "cuda/crossentropy.h"

namespace gt {

void crossentropy_forward_backward_cpu(float* losses, float* dlogits, const float* logits, const int32_t* targets,
                                       int N, int V, float dloss) {
#pragma omp parallel for schedule(static)
  for (int n = 0; n < N; ++n) {
    const float* z = logits + (int64_t)n * V;
    float mx = z[0];
    for (int v = 1; v < V; ++v) mx = z[v] > mx ? z[v] : mx;
    double sum = 0.0;
    for (int v = 0; v < V; ++v) sum += std::exp(double(z[v]) - mx);
    const double lse = mx + std::log(sum);
    const int y = targets[n];
    losses[n] = float(lse - z[y]);
    if (dlogits) {
      float* dz = dlogits + (int64_t)n * V;
      for (int v = 0; v < V; ++v) {
        const double p = std::exp(double(z[v]) - lse);
        dz[v] = float((p - (v == y ? 1.0 : 0.0)) * dloss);
      }
    }
  }
}

}  // namespace gt
