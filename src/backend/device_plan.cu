// Sizes of the CUDA backend's own buffers (see device_plan.h), from the same
// constants and workspace functions the backend allocates with.
#include "cuda/cuda_check.h"  // first: see the note there

#include <algorithm>

#include "backend/device_plan.h"
#include "core/arena.h"
#include "cuda/attention.h"
#include "cuda/embedding.h"
#include "cuda/residual.h"
#include "cuda/rmsnorm.h"

namespace gt {

size_t cuda_backend_scratch_bytes(const ModelConfig& m, int B, int T) {
  const int N = B * T;
  size_t s = std::max({attention_backward_cuda_workspace(B, T, m.num_heads), rmsnorm_backward_cuda_workspace(N, m.hidden_size),
                       sum_squares_cuda_workspace()});
  // CUB's sort size query needs no device; fall back to a bound if the runtime refuses.
  try {
    s = std::max(s, embedding_backward_cuda_workspace(N, m.vocab_size));
  } catch (const Error&) {
    s = std::max(s, 3 * align_up(sizeof(int32_t) * size_t(N)) + 4 * align_up(sizeof(int32_t) * size_t(N)) + (size_t(1) << 20));
  }
  return s;
}

size_t cuda_backend_workspace_bytes(const ModelConfig& m, int B, int T) {
  const size_t rope = 2 * align_up(sizeof(float) * size_t(T) * size_t(m.head_dim() / 2));
  return cuda_backend_scratch_bytes(m, B, T) + sizeof(float) * size_t(kCudaStagingElems) + kCudaGemmWorkspaceBytes +
         rope + align_up(sizeof(double));
}

bool cuda_memory_info(size_t* free_bytes, size_t* total_bytes) {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess || n == 0) {
    (void)cudaGetLastError();
    return false;
  }
  return cudaMemGetInfo(free_bytes, total_bytes) == cudaSuccess;
}

double cuda_peak_bf16_flops() {
  cudaDeviceProp prop{};
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0.0;
  }
  const std::string name = prop.name;
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (has("H100") && has("PCIe")) return 756e12;
  if (has("H100") || has("H200") || has("GH200")) return 989.4e12;
  if (has("A100")) return 312e12;
  if (has("4090")) return 165.2e12;
  if (has("L40S")) return 362e12;
  return 0.0;
}

std::string cuda_device_description() {
  cudaDeviceProp prop{};
  int dev = 0;
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
    (void)cudaGetLastError();
    return "";
  }
  return std::string(prop.name) + " (sm_" + std::to_string(prop.major) + std::to_string(prop.minor) + ")";
}

}  // namespace gt
