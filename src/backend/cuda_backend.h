// The CUDA backend (src/backend/cuda_backend.cu): bf16 weights and
// activations, fp32 accumulation, one stream. Declared here for tests and for
// code that needs the CUDA-only extras; the rest of the program goes through
// make_backend() in backend.h.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "cuda/matmul.h"

namespace gt {

// The backend, or nullptr in a build without CUDA. Throws gt::Error when the
// device cannot be initialized.
std::unique_ptr<Backend> make_cuda_backend_or_null();

// CUDA-only: grow the backend's scratch buffer up front to `bytes`, so that no
// op allocates (ops otherwise grow it on first use, which synchronizes once).
// `backend` must come from make_cuda_backend_or_null(); no-op for others.
void cuda_backend_reserve_scratch(Backend& backend, size_t bytes);
// CUDA-only: build RoPE's cos/sin tables for sequences up to T, head dim D and
// theta up front, so that the first RoPE op does not allocate them (with a
// sync) inside a step. No-op for other backends.
void cuda_backend_prepare_rope(Backend& backend, int T, int D, float theta);

// CUDA-only GEMM autotuning (training.gemm_autotune; CudaGemm::autotune in
// cuda/matmul_autotune.cu): time the GEMM shapes run so far against the
// heuristic's first `candidates` algorithms on `scratch` (device memory that
// holds nothing live) and keep the fastest. The table of choices goes into
// checkpoints (export) and comes back on resume (import: "" when taken, else
// why not). Other backends: a zero result, an empty table, and import says why.
GemmTuneResult cuda_backend_autotune_gemms(Backend& backend, void* scratch, size_t scratch_bytes, int candidates);
std::vector<uint8_t> cuda_backend_export_gemm_algos(Backend& backend);
std::string cuda_backend_import_gemm_algos(Backend& backend, const std::vector<uint8_t>& table);

}  // namespace gt

#ifdef GALORE_WITH_CUDA
#include <cuda_runtime.h>
namespace gt {
class CudaGemm;  // cuda/matmul.h
// CUDA-only: the backend's stream and GEMM, for code that queues its own
// kernels behind the backend's ops (the optimizer kernels). `backend` must be
// the CUDA backend (gt::Error otherwise).
struct CudaBackendHandles {
  cudaStream_t stream = nullptr;
  CudaGemm* gemm = nullptr;
};
CudaBackendHandles cuda_backend_handles(Backend& backend);
}  // namespace gt
#endif  // GALORE_WITH_CUDA
