// device_plan.h for builds without CUDA.
#ifndef GALORE_WITH_CUDA
#include "backend/cuda_backend.h"
#include "backend/device_plan.h"

namespace gt {
size_t cuda_backend_workspace_bytes(const ModelConfig&, int, int) { return 0; }
size_t cuda_backend_scratch_bytes(const ModelConfig&, int, int) { return 0; }
bool cuda_memory_info(size_t*, size_t*) { return false; }
void cuda_backend_reserve_scratch(Backend&, size_t) {}
void cuda_backend_prepare_rope(Backend&, int, int, float) {}
double cuda_peak_bf16_flops() { return 0.0; }
std::string cuda_device_description() { return ""; }
GemmTuneResult cuda_backend_autotune_gemms(Backend&, void*, size_t, int) { return {}; }
std::vector<uint8_t> cuda_backend_export_gemm_algos(Backend&) { return {}; }
std::string cuda_backend_import_gemm_algos(Backend&, const std::vector<uint8_t>&) {
  return "this build has no CUDA backend";
}
}  // namespace gt
#endif
