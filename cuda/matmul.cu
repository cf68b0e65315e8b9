// Linear layers on the GPU through cuBLASLt: bf16 A/B, fp32 accumulation
// (CUBLAS_COMPUTE_32F), bf16 or fp32 output, accumulation via beta = 1.
// CPU reference: cuda/matmul_cpu.cpp.
//
// Row-major tensors are column-major transposes, so with weights stored
// [OC, C] (PyTorch layout):
//   out[N,OC]   = inp @ W^T   <=>  out^T (OC x N) = W (OC x C, from W^T stored C x OC, op T) * inp^T (C x N)
//   dinp[N,C]   = dout @ W    <=>  dinp^T (C x N) = W^T (C x OC, op N) * dout^T (OC x N)
//   dW[OC,C]    = dout^T @ inp <=> dW^T (C x OC)   = inp^T (C x N, op N) * dout (N x OC, dout^T stored OC x N, op T)
//
// Determinism: the algorithm chosen for a shape is cached, and reduction
// schemes that accumulate split-K partials in place are excluded, so the same
// shape gives bit-identical results on the same GPU and library version.
#include "cuda/cuda_check.h"  // first: see the note there

#include <cstdio>

#include "cuda/matmul.h"
#include "cuda/matmul_impl.cuh"

namespace gt {

CudaGemm::CudaGemm(cudaStream_t stream, size_t workspace_bytes) : impl_(std::make_unique<Impl>()) {
  impl_->stream = stream;
  impl_->workspace_bytes = workspace_bytes;
  CUBLAS_CHECK(cublasLtCreate(&impl_->lt));
  CUBLAS_CHECK(cublasCreate(&impl_->blas));
  CUBLAS_CHECK(cublasSetStream(impl_->blas, stream));
  // Deterministic results: never let cuBLAS pick algorithms that use atomics.
  CUBLAS_CHECK(cublasSetAtomicsMode(impl_->blas, CUBLAS_ATOMICS_NOT_ALLOWED));
  if (workspace_bytes) CUDA_CHECK(cudaMalloc(&impl_->workspace, workspace_bytes));
  CUBLAS_CHECK(cublasSetWorkspace(impl_->blas, impl_->workspace, impl_->workspace_bytes));
}

CudaGemm::~CudaGemm() = default;

cudaStream_t CudaGemm::stream() const { return impl_->stream; }
void CudaGemm::set_cublaslt(bool enabled) {
  if (enabled == impl_->lt_enabled) return;
  impl_->lt_enabled = enabled;
  impl_->clear_plans();  // they were made for the other path
}
void* CudaGemm::workspace() const { return impl_->workspace; }
size_t CudaGemm::workspace_bytes() const { return impl_->workspace_bytes; }

void CudaGemm::gemm(bool trans_a, bool trans_b, int m, int n, int k, const bf16* A, int lda, const bf16* B, int ldb,
                    void* D, bool d_f32, int ldd, float alpha, float beta, const void* C) {
  if (m <= 0 || n <= 0) return;
  if (C == D) C = nullptr;
  GT_ASSERT(k > 0);
  GemmKey key;
  key.m = m, key.n = n, key.k = k, key.lda = lda, key.ldb = ldb, key.ldd = ldd;
  key.ta = trans_a, key.tb = trans_b, key.d_f32 = d_f32;
  key.align_a = pointer_alignment(A), key.align_b = pointer_alignment(B);
  key.align_d = C ? std::min(pointer_alignment(D), pointer_alignment(C)) : pointer_alignment(D);  // C's and D's
  const bool timed = impl_->timing && 2 * impl_->timed.size() < impl_->events.size();
  if (impl_->timing && !timed) ++impl_->untimed;
  if (timed) CUDA_CHECK(cudaEventRecord(impl_->events[2 * impl_->timed.size()], impl_->stream));
  impl_->run(key, A, B, D, alpha, beta, C);
  if (timed) {
    CUDA_CHECK(cudaEventRecord(impl_->events[2 * impl_->timed.size() + 1], impl_->stream));
    impl_->timed.push_back(Impl::TimedCall{key, beta != 0.0f});
  }
}

void matmul_forward_cuda(CudaGemm& g, bf16* out, const bf16* inp, const bf16* weight, int N, int C, int OC,
                         const bf16* residual) {
  // out^T[OC,N] = W[OC,C] * inp^T[C,N] (+ residual^T[OC,N])
  g.gemm(/*trans_a=*/true, /*trans_b=*/false, OC, N, C, weight, C, inp, C, out, false, OC, 1.0f,
         residual ? 1.0f : 0.0f, residual);
}

void matmul_backward_cuda(CudaGemm& g, bf16* dinp, void* dweight, bool dweight_f32, const bf16* dout,
                          const bf16* inp, const bf16* weight, int N, int C, int OC, bool accumulate_dinp,
                          bool accumulate_dweight, int ld_dout) {
  if (ld_dout < 0) ld_dout = OC;
  // dinp^T[C,N] = W^T[C,OC] * dout^T[OC,N]
  if (dinp)
    g.gemm(false, false, C, N, OC, weight, C, dout, ld_dout, dinp, false, C, 1.0f, accumulate_dinp ? 1.0f : 0.0f);
  // dW^T[C,OC] = inp^T[C,N] * dout[N,OC]
  if (dweight)
    g.gemm(false, true, C, OC, N, inp, C, dout, ld_dout, dweight, dweight_f32, C, 1.0f,
           accumulate_dweight ? 1.0f : 0.0f);
}

}  // namespace gt
