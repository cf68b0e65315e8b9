// Naive column-major GEMM with cuBLAS semantics standing in for CudaGemm, plus
// the row-major wrappers copied verbatim from cuda/matmul.cu.
#include "emu_helpers.h"
#include "cuda/matmul.h"
#include <algorithm>
#include <cstdio>
#include <cstdlib>
namespace gt {
struct CudaGemm::Impl {
  cudaStream_t s;
  void* ws = nullptr;  // the cuBLASLt workspace: allocated (unused here) so the device footprint is the plan's
  size_t ws_bytes = 0;
  ~Impl() { if (ws) cudaFree(ws); }
};
CudaGemm::CudaGemm(cudaStream_t s, size_t workspace_bytes) : impl_(std::make_unique<Impl>()) {
  impl_->s = s;
  impl_->ws_bytes = workspace_bytes;
  if (workspace_bytes) CUDA_CHECK(cudaMalloc(&impl_->ws, workspace_bytes));
}
CudaGemm::~CudaGemm() = default;
cudaStream_t CudaGemm::stream() const { return impl_->s; }
void* CudaGemm::workspace() const { return impl_->ws; }
size_t CudaGemm::workspace_bytes() const { return impl_->ws_bytes; }
void CudaGemm::gemm(bool ta, bool tb, int m, int n, int k, const bf16* A, int lda, const bf16* B, int ldb, void* D,
                    bool d_f32, int ldd, float alpha, float beta) {
  if (m <= 0 || n <= 0) return;
  // cuBLAS(Lt)'s argument rules: a mapping mistake shows up here (a real GPU
  // would return CUBLAS_STATUS_INVALID_VALUE, or read out of bounds).
  if (k <= 0 || lda < std::max(1, ta ? k : m) || ldb < std::max(1, tb ? n : k) || ldd < std::max(1, m)) {
    std::fprintf(stderr, "emu gemm: bad leading dimension: ta=%d tb=%d m=%d n=%d k=%d lda=%d ldb=%d ldd=%d\n", ta, tb,
                 m, n, k, lda, ldb, ldd);
    std::abort();
  }
  // Every operand must be device memory of the size its shape and ld imply.
  const size_t es = sizeof(bf16), ds = d_f32 ? sizeof(float) : sizeof(bf16);
  const size_t a_cols = ta ? m : k, b_cols = tb ? k : n;
  if (k > 0) {
    emu_expect_device(A, (size_t(lda) * (a_cols - 1) + (ta ? k : m)) * es, "emu gemm: A is not device memory of its size");
    emu_expect_device(B, (size_t(ldb) * (b_cols - 1) + (tb ? n : k)) * es, "emu gemm: B is not device memory of its size");
  }
  emu_expect_device(D, (size_t(ldd) * (n - 1) + m) * ds, "emu gemm: D is not device memory of its size");
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      float acc = 0.0f;
      for (int p = 0; p < k; ++p) {
        const float a = __bfloat162float(ta ? A[p + int64_t(i) * lda] : A[i + int64_t(p) * lda]);
        const float b = __bfloat162float(tb ? B[j + int64_t(p) * ldb] : B[p + int64_t(j) * ldb]);
        acc += a * b;
      }
      const int64_t o = i + int64_t(j) * ldd;
      if (d_f32) {
        float* d = static_cast<float*>(D);
        d[o] = alpha * acc + (beta != 0.0f ? beta * d[o] : 0.0f);
      } else {
        bf16* d = static_cast<bf16*>(D);
        d[o] = __float2bfloat16(alpha * acc + (beta != 0.0f ? beta * __bfloat162float(d[o]) : 0.0f));
      }
    }
}
}  // namespace gt
namespace gt {
void matmul_forward_cuda(CudaGemm& g, bf16* out, const bf16* inp, const bf16* weight, int N, int C, int OC) {
  // out^T[OC,N] = W[OC,C] * inp^T[C,N]
  g.gemm(/*trans_a=*/true, /*trans_b=*/false, OC, N, C, weight, C, inp, C, out, false, OC, 1.0f, 0.0f);
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
