// What the CUDA backend itself allocates, for the memory plan, and the
// device's memory. Plain C++: CPU-only builds get zeros / "unknown".
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "config/config.h"

namespace gt {

// Fixed buffers of the CUDA backend (cuda_backend.cu allocates them with these sizes).
constexpr int64_t kCudaStagingElems = int64_t(4) << 20;        // fp32 host<->device staging: 16 MiB
constexpr size_t kCudaGemmWorkspaceBytes = size_t(32) << 20;   // cuBLASLt workspace

// Device bytes the CUDA backend holds for a model at micro-batch B x T: the
// op scratch buffer (reserved up front at that size, so no op grows it in
// the step), the fp32 staging buffer, cuBLASLt's workspace, the RoPE tables
// and the norm result. 0 in a build without CUDA.
size_t cuda_backend_workspace_bytes(const ModelConfig& m, int B, int T);
// The scratch part alone (cuda_backend_reserve_scratch's argument).
size_t cuda_backend_scratch_bytes(const ModelConfig& m, int B, int T);

// Free and total memory of the current CUDA device; false when there is none.
bool cuda_memory_info(size_t* free_bytes, size_t* total_bytes);

// Dense bf16 tensor-core peak (fp32 accumulation) of the current device in
// FLOP/s, from its name (H100 SXM 989e12, H100 PCIe 756e12, H200 989e12,
// A100 312e12, RTX 4090 165e12, L40S 362e12); 0 when unknown (MFU "n/a").
double cuda_peak_bf16_flops();
// "NVIDIA H100 80GB HBM3 (sm_90)", or "" without a device.
std::string cuda_device_description();

}  // namespace gt
