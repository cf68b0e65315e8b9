// RMSNorm on the GPU (bf16 tensors, fp32 statistics). CPU reference:
// cuda/rmsnorm_cpu.cpp (y = w * (x * rstd), rstd = 1/sqrt(mean(x^2) + eps)).
//
// Forward: one warp per row. Backward: block b owns a fixed range of rows; its
// warps write dinp row by row, then its threads sum dweight over the block's
// rows (channel per thread, rows in order) into partial[b, :]; a second kernel
// adds the partials in block order. No atomics: bit-reproducible.
#include "cuda/cuda_check.h"  // first: see the note there

#include <algorithm>

#include "cuda/rmsnorm.h"

namespace gt {

namespace {

constexpr int kThreads = 256;  // 8 warps
constexpr int kWarps = kThreads / 32;

// out[N,C], rstd[N], inp[N,C], weight[C]. Warp per row. VEC: C % 8 == 0 and
// 16-byte aligned pointers, 8 channels per access.
template <bool VEC>
__global__ void __launch_bounds__(kThreads) rmsnorm_forward_kernel(bf16* out, float* rstd, const bf16* inp,
                                                                   const bf16* weight, int N, int C, float eps) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t n = int64_t(blockIdx.x) * kWarps + warp;
  if (n >= N) return;
  const bf16* x = inp + n * C;  // [C]
  bf16* o = out + n * C;        // [C]
  float ss = 0.0f;
  if (VEC) {
    for (int c = lane * 8; c < C; c += 32 * 8) {
      float xv[8];
      load_bf16x8(x + c, xv);
#pragma unroll
      for (int e = 0; e < 8; ++e) ss += xv[e] * xv[e];
    }
  } else {
    for (int c = lane; c < C; c += 32) {
      const float xv = to_f32(x[c]);
      ss += xv * xv;
    }
  }
  ss = warp_sum(ss);
  const float r = rsqrtf(ss / float(C) + eps);
  if (lane == 0) rstd[n] = r;
  if (VEC) {
    for (int c = lane * 8; c < C; c += 32 * 8) {
      float xv[8], wv[8], ov[8];
      load_bf16x8(x + c, xv);
      load_bf16x8(weight + c, wv);
#pragma unroll
      for (int e = 0; e < 8; ++e) ov[e] = wv[e] * (xv[e] * r);
      store_bf16x8(o + c, ov);
    }
  } else {
    for (int c = lane; c < C; c += 32) o[c] = from_f32<bf16>(to_f32(weight[c]) * (to_f32(x[c]) * r));
  }
}

// dinp[N,C] += dx; partial[gridDim.x, C] = per-block sums of dy * x * rstd.
// Block b owns rows [b*rows_per_block, min(N, (b+1)*rows_per_block)).
template <bool VEC>
__global__ void __launch_bounds__(kThreads)
    rmsnorm_backward_kernel(bf16* dinp, float* partial, const bf16* dout, const bf16* inp, const bf16* weight,
                            const float* rstd, int N, int C, int rows_per_block) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int row0 = blockIdx.x * rows_per_block;
  const int row1 = min(N, row0 + rows_per_block);
  // 1) dx = r * (w*dy) - x * (r^3 / C) * sum_c(w*dy*x), one warp per row.
  for (int n = row0 + warp; n < row1; n += kWarps) {
    const bf16* x = inp + int64_t(n) * C;
    const bf16* dy = dout + int64_t(n) * C;
    bf16* dx = dinp + int64_t(n) * C;
    const float r = rstd[n];
    float dot = 0.0f;
    if (VEC) {
      for (int c = lane * 8; c < C; c += 32 * 8) {
        float xv[8], dyv[8], wv[8];
        load_bf16x8(x + c, xv);
        load_bf16x8(dy + c, dyv);
        load_bf16x8(weight + c, wv);
#pragma unroll
        for (int e = 0; e < 8; ++e) dot += wv[e] * dyv[e] * xv[e];
      }
    } else {
      for (int c = lane; c < C; c += 32) dot += to_f32(weight[c]) * to_f32(dy[c]) * to_f32(x[c]);
    }
    dot = warp_sum(dot);
    const float k = dot * r * r * r / float(C);
    if (VEC) {
      for (int c = lane * 8; c < C; c += 32 * 8) {
        float xv[8], dyv[8], wv[8], dxv[8];
        load_bf16x8(x + c, xv);
        load_bf16x8(dy + c, dyv);
        load_bf16x8(weight + c, wv);
        load_bf16x8(dx + c, dxv);
#pragma unroll
        for (int e = 0; e < 8; ++e) dxv[e] += r * wv[e] * dyv[e] - xv[e] * k;
        store_bf16x8(dx + c, dxv);
      }
    } else {
      for (int c = lane; c < C; c += 32)
        dx[c] = from_f32<bf16>(to_f32(dx[c]) + (r * to_f32(weight[c]) * to_f32(dy[c]) - to_f32(x[c]) * k));
    }
  }
  // 2) partial dweight over this block's rows: channel per thread (8 channels
  //    per 16-byte load with VEC), rows in order, so both paths sum in the
  //    same order. (Reads dout/inp only, so it needs no barrier after step 1.)
  if (VEC) {
    for (int c = threadIdx.x * 8; c < C; c += kThreads * 8) {
      float acc[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll 4
      for (int n = row0; n < row1; ++n) {
        float dyv[8], xv[8];
        load_bf16x8(dout + int64_t(n) * C + c, dyv);
        load_bf16x8(inp + int64_t(n) * C + c, xv);
        const float r = rstd[n];
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[e] += dyv[e] * xv[e] * r;
      }
      float* out = partial + int64_t(blockIdx.x) * C + c;
#pragma unroll
      for (int e = 0; e < 8; ++e) out[e] = acc[e];
    }
  } else {
    for (int c = threadIdx.x; c < C; c += kThreads) {
      float acc = 0.0f;
      for (int n = row0; n < row1; ++n)
        acc += to_f32(dout[int64_t(n) * C + c]) * to_f32(inp[int64_t(n) * C + c]) * rstd[n];
      partial[int64_t(blockIdx.x) * C + c] = acc;
    }
  }
}

// dweight[C] += sum_b partial[b, :], b in order.
template <typename T>
__global__ void rmsnorm_dweight_reduce_kernel(T* dweight, const float* partial, int G, int C) {
  const int c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= C) return;
  float acc = 0.0f;
#pragma unroll 8
  for (int g = 0; g < G; ++g) acc += partial[int64_t(g) * C + c];
  dweight[c] = from_f32<T>(to_f32(dweight[c]) + acc);
}

// The row partition depends only on N, so results are reproducible.
void backward_partition(int N, int* G, int* rows_per_block) {
  const int g = int(std::min<int64_t>(ceil_div(N, 32), 512));
  *rows_per_block = int(ceil_div(N, g));
  *G = int(ceil_div(N, *rows_per_block));
}

template <typename T>
void rmsnorm_backward_impl(bf16* dinp, T* dweight, const bf16* dout, const bf16* inp, const bf16* weight,
                           const float* rstd, int N, int C, void* workspace, size_t workspace_bytes,
                           cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  GT_ASSERT(workspace_bytes >= rmsnorm_backward_cuda_workspace(N, C));
  int G = 0, rpb = 0;
  backward_partition(N, &G, &rpb);
  float* partial = static_cast<float*>(workspace);  // [G, C]
  const bool vec = C % 8 == 0 && aligned16(dinp) && aligned16(dout) && aligned16(inp) && aligned16(weight);
  if (vec)
    rmsnorm_backward_kernel<true><<<G, kThreads, 0, stream>>>(dinp, partial, dout, inp, weight, rstd, N, C, rpb);
  else
    rmsnorm_backward_kernel<false><<<G, kThreads, 0, stream>>>(dinp, partial, dout, inp, weight, rstd, N, C, rpb);
  CUDA_CHECK_LAUNCH();
  rmsnorm_dweight_reduce_kernel<T><<<unsigned(ceil_div(C, 256)), 256, 0, stream>>>(dweight, partial, G, C);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

void rmsnorm_forward_cuda(bf16* out, float* rstd, const bf16* inp, const bf16* weight, int N, int C, float eps,
                          cudaStream_t stream) {
  if (N <= 0 || C <= 0) return;
  const unsigned grid = unsigned(ceil_div(N, kWarps));
  if (C % 8 == 0 && aligned16(out) && aligned16(inp) && aligned16(weight))
    rmsnorm_forward_kernel<true><<<grid, kThreads, 0, stream>>>(out, rstd, inp, weight, N, C, eps);
  else
    rmsnorm_forward_kernel<false><<<grid, kThreads, 0, stream>>>(out, rstd, inp, weight, N, C, eps);
  CUDA_CHECK_LAUNCH();
}

size_t rmsnorm_backward_cuda_workspace(int N, int C) {
  if (N <= 0 || C <= 0) return 0;
  int G = 0, rpb = 0;
  backward_partition(N, &G, &rpb);
  return sizeof(float) * size_t(G) * size_t(C);
}

void rmsnorm_backward_cuda(bf16* dinp, float* dweight, const bf16* dout, const bf16* inp, const bf16* weight,
                           const float* rstd, int N, int C, void* workspace, size_t workspace_bytes,
                           cudaStream_t stream) {
  rmsnorm_backward_impl(dinp, dweight, dout, inp, weight, rstd, N, C, workspace, workspace_bytes, stream);
}
void rmsnorm_backward_cuda(bf16* dinp, bf16* dweight, const bf16* dout, const bf16* inp, const bf16* weight,
                           const float* rstd, int N, int C, void* workspace, size_t workspace_bytes,
                           cudaStream_t stream) {
  rmsnorm_backward_impl(dinp, dweight, dout, inp, weight, rstd, N, C, workspace, workspace_bytes, stream);
}

}  // namespace gt
