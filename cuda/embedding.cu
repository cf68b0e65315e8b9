// Token embedding on the GPU (bf16). CPU reference: cuda/embedding_cpu.cpp.
//
// Forward is a row gather. Backward must be deterministic, so it uses no
// atomics: a stable radix sort (CUB) of (token, position) pairs groups every
// token's positions in increasing order; then each run of equal tokens is
// summed by one thread per channel, in position order, in fp32, and added to
// dwte once. The result does not depend on scheduling.
#include "cuda/cuda_check.h"  // first: see the note there

#include <algorithm>
#include <cub/device/device_radix_sort.cuh>

#include "cuda/embedding.h"

namespace gt {

namespace {

// out[N,C] = wte[tokens[n], :]. One block per row n; 16-byte copies when
// `vec` (C % 8 == 0 and both base pointers 16-byte aligned).
__global__ void embedding_forward_kernel(bf16* out, const int32_t* tokens, const bf16* wte, int C, bool vec) {
  const int64_t n = blockIdx.x;
  const int64_t tok = tokens[n];
  const bf16* src = wte + tok * C;  // [C]
  bf16* dst = out + n * C;          // [C]
  if (vec) {
    const int4* s4 = reinterpret_cast<const int4*>(src);
    int4* d4 = reinterpret_cast<int4*>(dst);
    for (int i = threadIdx.x; i < C / 8; i += blockDim.x) d4[i] = s4[i];
  } else {
    for (int c = threadIdx.x; c < C; c += blockDim.x) dst[c] = src[c];
  }
}

// pos[n] = n
__global__ void iota_kernel(int32_t* pos, int N) {
  const int n = blockIdx.x * blockDim.x + threadIdx.x;
  if (n < N) pos[n] = n;
}

// sorted_tok[N], sorted_pos[N]: tokens sorted stably (equal tokens keep
// position order). Grid (G, ceil(C/blockDim)): blockIdx.y picks the channel,
// blockIdx.x strides over sorted indices i; the index that starts a run of one
// token owns that token: it sums dout rows of the run in order and adds the
// sum into dwte[tok, c]. Every (tok, c) is written by exactly one thread.
template <typename T>
__global__ void embedding_backward_kernel(T* dwte, const bf16* dout, const uint32_t* sorted_tok,
                                          const int32_t* sorted_pos, int N, int C) {
  const int c = blockIdx.y * blockDim.x + threadIdx.x;
  for (int i = blockIdx.x; i < N; i += gridDim.x) {
    const uint32_t tok = sorted_tok[i];
    if (i > 0 && sorted_tok[i - 1] == tok) continue;  // not the start of a run (block-uniform)
    if (c >= C) continue;
    float acc = 0.0f;
    for (int j = i; j < N && sorted_tok[j] == tok; ++j) acc += to_f32(dout[int64_t(sorted_pos[j]) * C + c]);
    T* w = dwte + int64_t(tok) * C + c;
    *w = from_f32<T>(to_f32(*w) + acc);
  }
}

int key_bits(int V) {
  int bits = 1;
  while (bits < 31 && (int64_t(1) << bits) < V) ++bits;
  return bits;
}

size_t align256(size_t x) { return (x + 255) / 256 * 256; }

size_t cub_sort_bytes(int N, int V) {
  size_t temp = 0;
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, temp, static_cast<const uint32_t*>(nullptr),
                                             static_cast<uint32_t*>(nullptr), static_cast<const int32_t*>(nullptr),
                                             static_cast<int32_t*>(nullptr), N, 0, key_bits(V)));
  return temp;
}

template <typename T>
void embedding_backward_impl(T* dwte, const bf16* dout, const int32_t* tokens, int N, int C, int V, void* workspace,
                             size_t workspace_bytes, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  GT_ASSERT(workspace_bytes >= embedding_backward_cuda_workspace(N, V));
  // workspace: pos[N] | sorted_tok[N] | sorted_pos[N] | CUB temp
  char* ws = static_cast<char*>(workspace);
  int32_t* pos = reinterpret_cast<int32_t*>(ws);
  uint32_t* sorted_tok = reinterpret_cast<uint32_t*>(ws + align256(sizeof(int32_t) * N));
  int32_t* sorted_pos = reinterpret_cast<int32_t*>(ws + 2 * align256(sizeof(int32_t) * N));
  void* temp = ws + 3 * align256(sizeof(int32_t) * N);
  size_t temp_bytes = cub_sort_bytes(N, V);

  iota_kernel<<<unsigned(ceil_div(N, 256)), 256, 0, stream>>>(pos, N);
  CUDA_CHECK_LAUNCH();
  // Valid tokens are non-negative, so sorting them as unsigned keeps their order.
  CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, reinterpret_cast<const uint32_t*>(tokens), sorted_tok,
                                             pos, sorted_pos, N, 0, key_bits(V), stream));
  const int threads = 256;
  const dim3 grid(unsigned(std::min(N, 1024)), unsigned(ceil_div(C, threads)));
  embedding_backward_kernel<T><<<grid, threads, 0, stream>>>(dwte, dout, sorted_tok, sorted_pos, N, C);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void embedding_forward_cuda(bf16* out, const int32_t* tokens, const bf16* wte, int N, int C, cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  const bool vec = C % 8 == 0 && aligned16(out) && aligned16(wte);
  const int threads = std::min(256, std::max(32, int(ceil_div(vec ? C / 8 : C, 32)) * 32));
  embedding_forward_kernel<<<unsigned(N), threads, 0, stream>>>(out, tokens, wte, C, vec);
  CUDA_CHECK_LAUNCH();
}

size_t embedding_backward_cuda_workspace(int N, int V) {
  if (N <= 0) return 0;
  return 3 * align256(sizeof(int32_t) * size_t(N)) + align256(cub_sort_bytes(N, V));
}

void embedding_backward_cuda(float* dwte, const bf16* dout, const int32_t* tokens, int N, int C, int V,
                             void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  embedding_backward_impl(dwte, dout, tokens, N, C, V, workspace, workspace_bytes, stream);
}
void embedding_backward_cuda(bf16* dwte, const bf16* dout, const int32_t* tokens, int N, int C, int V,
                             void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  embedding_backward_impl(dwte, dout, tokens, N, C, V, workspace, workspace_bytes, stream);
}

}  // namespace gt
