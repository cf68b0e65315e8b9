// Linear layers without bias: out = inp @ weight^T, weights stored [out, in]
// (PyTorch/HF layout). On the GPU these are cuBLAS(Lt) GEMMs.
#pragma once
#include "cuda/common.h"

namespace gt {
// out[N,OC] = inp[N,C] @ weight[OC,C]^T
void matmul_forward_cpu(float* out, const float* inp, const float* weight, int N, int C, int OC);
// dinp[N,C] (=, or += if accumulate_dinp) = dout[N,OC] @ weight[OC,C]
// dweight[OC,C] (=, or += if accumulate_dweight) = dout^T @ inp
// Either output may be null to skip it.
void matmul_backward_cpu(float* dinp, float* dweight, const float* dout, const float* inp, const float* weight,
                         int N, int C, int OC, bool accumulate_dinp, bool accumulate_dweight);

// What CudaGemm::autotune did. The times are per call on scratch, weighted
// by each shape's calls so far (after one training step: about that step's GEMM time).
struct GemmTuneResult {
  int shapes = 0;        // cuBLASLt shapes timed
  int changed = 0;       // shapes now on another algorithm than the heuristic's first
  int skipped = 0;       // shapes whose operands do not fit the scratch (they keep the heuristic's)
  double ms_before = 0;  // the timed shapes' calls with the algorithms they had
  double ms_after = 0;   // and with the ones they have now
};
}  // namespace gt

#ifdef GALORE_WITH_CUDA
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>
namespace gt {
// One GEMM shape's share of a timed stretch of work (CudaGemm::start_timing).
struct GemmTiming {
  int m = 0, n = 0, k = 0;           // column-major D[m,n] = op(A)[m,k] op(B)[k,n]
  bool trans_a = false, trans_b = false, d_f32 = false, beta = false;  // beta: some call read D
  int calls = 0;
  double ms = 0.0;                   // total over the calls
  double flops() const { return 2.0 * m * n * k * calls; }
  // From time_candidates (per call, on scratch buffers): the algorithm in use,
  // the fastest of the heuristic's first `candidates`, and its rank (0: the one in use).
  double chosen_ms = -1.0, best_ms = -1.0;
  int candidates = 0, best_rank = -1;
};

// ---- CUDA (cuda/matmul.cu): cuBLASLt GEMMs, bf16 inputs, fp32 compute ----
// Owns the cuBLASLt handle (plus a cuBLAS handle for the rare shape Lt has no
// algorithm for or refuses), a 32 MiB workspace and a per-shape algorithm cache. All work
// goes on the stream given at construction. Not thread-safe.
class CudaGemm {
 public:
  explicit CudaGemm(cudaStream_t stream, size_t workspace_bytes = size_t(32) << 20);
  ~CudaGemm();
  CudaGemm(const CudaGemm&) = delete;
  CudaGemm& operator=(const CudaGemm&) = delete;
  // Column-major D[m,n] = alpha * op(A)[m,k] op(B)[k,n] + beta * C, where C is D
  // itself, or the buffer `C` when given (same type and layout as D; it must not
  // overlap D). A, B bf16; D bf16 (d_f32 false) or fp32 (d_f32 true). beta == 0
  // never reads C.
  void gemm(bool trans_a, bool trans_b, int m, int n, int k, const __nv_bfloat16* A, int lda,
            const __nv_bfloat16* B, int ldb, void* D, bool d_f32, int ldd, float alpha, float beta,
            const void* C = nullptr);
  // false sends every GEMM through cublasGemmEx, the path taken for a shape
  // cuBLASLt has no algorithm for (or refuses at run time); tests use it to
  // check that path. Default true.
  void set_cublaslt(bool enabled);
  cudaStream_t stream() const;
  // Its cuBLAS(Lt) workspace: other cuBLAS handles on the same stream may share
  // it (calls on one stream never overlap), e.g. the projector refresh's.
  void* workspace() const;
  size_t workspace_bytes() const;

  // Diagnostics (galore-bench --gemm-report): from start_timing until
  // finish_timing, up to max_calls GEMMs are bracketed by CUDA events (no
  // host sync). start_timing allocates them, so call it outside a step.
  void start_timing(int max_calls);
  // Synchronizes the stream; the time per shape, largest total first.
  std::vector<GemmTiming> finish_timing();
  // For each shape, on scratch buffers of its size filled with random bf16:
  // the median time per call of the algorithm in use and of each of the
  // heuristic's first `candidates` algorithms (same constraints), `reps` runs each.
  void time_candidates(std::vector<GemmTiming>& shapes, int candidates, int reps);

  // Autotuning (training.gemm_autotune; cuda/matmul_autotune.cu). For every
  // shape run so far through cuBLASLt, time the heuristic's first
  // `candidates` algorithms (same constraints: workspace, no in-place split-K)
  // on operands carved from `scratch` (random bf16; it must hold nothing live)
  // and keep the fastest when it beats the current one by 2%. Synchronizes.
  // Shapes first seen later get the heuristic's choice, as before.
  GemmTuneResult autotune(void* scratch, size_t scratch_bytes, int candidates, int reps = 5);
  // The algorithm of every cached cuBLASLt shape as bytes (saved with
  // checkpoints: a bit-exact resume needs the same algorithm per shape), and
  // back. import_algos returns "" when the table was taken, else why not (another
  // device or cuBLASLt version, or an algorithm this library refuses); then
  // nothing changes.
  std::vector<uint8_t> export_algos() const;
  std::string import_algos(const std::vector<uint8_t>& table);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};
// out[N,OC] = inp[N,C] @ weight[OC,C]^T (+ residual[N,OC] when given: added in
// the GEMM's epilogue in fp32, one rounding; residual must not overlap out).
void matmul_forward_cuda(CudaGemm& g, __nv_bfloat16* out, const __nv_bfloat16* inp, const __nv_bfloat16* weight,
                         int N, int C, int OC, const __nv_bfloat16* residual = nullptr);
// dinp[N,C] (= or +=) dout[N,OC] @ weight[OC,C]; dweight[OC,C] (= or +=) dout^T @ inp.
// Either output may be null. dweight is fp32 when dweight_f32, else bf16.
// ld_dout is the row stride of dout in elements (OC for a dense tensor).
void matmul_backward_cuda(CudaGemm& g, __nv_bfloat16* dinp, void* dweight, bool dweight_f32,
                          const __nv_bfloat16* dout, const __nv_bfloat16* inp, const __nv_bfloat16* weight, int N,
                          int C, int OC, bool accumulate_dinp, bool accumulate_dweight, int ld_dout = -1);
}  // namespace gt
#endif  // GALORE_WITH_CUDA
