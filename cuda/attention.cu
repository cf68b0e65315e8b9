// Causal grouped-query attention on the GPU, flash-style (no T x T buffer):
// bf16 tensors. CPU reference: cuda/attention_cpu.cpp. Query head h reads kv
// head h / (NH/NKV). Two implementations, chosen at run time
// (attention_cuda_simt(), GALORE_ATTENTION_SIMT=1 for the fallback):
//
// TENSOR CORES (default; "_tc_" kernels, bottom half of the file): WMMA
// 16x16x16, bf16 operands, fp32 accumulation; 128 threads = 4 warps, warp w
// owns 16 rows of the block's tile. Row-wise work never touches accumulator
// registers (their layout is unspecified): S/dP tiles are stored as fp32 to
// per-warp shared memory, lane l does row l/2, half l%2 of the columns
// (mask, online softmax, exp, dS) with SIMT code, and writes P/dS as bf16,
// which are loaded back as matrix_a fragments.
//   forward   grid (ceil(T/64), NH, B): 64 queries per block, steps of 32
//             keys 0..diagonal; Q fragments and O [16][D] per warp stay in
//             registers; O is rescaled through the per-warp fp32 tile only
//             when some row's max moved.
//   dq        grid (ceil(T/64), NH, B): 64 queries, steps of 32 keys; dQ in
//             accumulator fragments.
//   dk/dv     grid (ceil(T/64), NKV, B): 64 keys (16 per warp), steps of 32
//             queries from the diagonal to T, for each query head of the
//             group in order; Sᵀ = K Qᵀ and dPᵀ = V dOᵀ are computed directly
//             transposed, so Pᵀ, dSᵀ are a warp's own rows; dK, dV in
//             accumulator fragments. With a dS store lent by the caller it
//             also writes dSᵀ there, and dq is then dQ += dS K alone
//             (attention_backward_dq_from_ds_tc_kernel; 5 products, not 7).
//   Per-step tiles load with cp.async, into two stages (the next step's while
//   a step computes) in the forward, the dq from the dS store and dk/dv at
//   D >= 96 (TcGeom), into one in dk/dv at D <= 64 and the recompute dq.
//   Shared memory (bytes) per D = 16/32/64/96/128:
//     forward 20480/24576/32768/40960/49152, dq 28160/34304/46592/64000/76288,
//     dk/dv 27904/34048/46336/82432/98816, dq from the dS store
//     22528/24576/28672/32768/36864 (sm_89 allows 99 KB).
//   Deterministic: every output tile has one owner warp whose mma sequence
//   (loop orders) is fixed; no atomics.
//   Needs sm_80+ kernels and 16-byte aligned tensors, else SIMT runs.
//
// SIMT FALLBACK (the original kernels, fp32 math):
// Tiles: BQ = 32 queries x BK = 32 keys, 128 threads = 4 warps; warp w owns
// the 8 tile rows 8w..8w+7 and, when it computes scores, lane j owns key j of
// the tile. Every score row therefore lives in one warp, so row max/sum are
// warp shuffles, and a warp only reads the rows of P it wrote itself.
//
//   forward   grid (T/BQ, NH, B): a query tile walks the key tiles 0..diagonal
//             with an online softmax (running max m, sum l, rescaled
//             accumulator), then writes out = acc / l and lse = m + log(l).
//   backward  Dvec[b,h,t] = sum_d dout*out first (both paths); then
//             dk/dv: grid (T/BK, NKV, B). A key tile keeps dK, dV in registers
//               and walks, in a fixed order, the query heads of its group and
//               the query tiles from the diagonal down, recomputing
//               P = exp(S - lse) and dS = P * (dP - Dvec) * scale.
//             dq: grid (T/BQ, NH, B). A query tile walks key tiles 0..diagonal
//               recomputing dS, dq += dS K.
//             Every output element has one owner thread that sums in a fixed
//             order: no atomics, bit-reproducible. (The price: S and dP are
//             computed twice in the backward, 7 tile products instead of 5;
//             the same holds for the tensor-core path without the dS store.)
//
// Shared memory per block for D = 128: forward 53 KB, dk/dv 73 KB, dq 69 KB
// (above the 48 KB default, so the launchers raise the limit; sm_89 allows
// 99 KB, sm_90 227 KB).
#include "cuda/cuda_check.h"  // first: see the note there

#include <mma.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <type_traits>

#include "cuda/attention.h"

namespace gt {

namespace {

constexpr int BQ = 32;                     // queries per tile
constexpr int BK = 32;                     // keys per tile (= warp size: lane j <-> key j)
constexpr int kThreads = 128;              // 4 warps
constexpr int RPW = BQ / (kThreads / 32);  // tile rows per warp
static_assert(BQ == BK, "the causal diagonal must fall on tile boundaries");
static_assert(RPW == 8, "the row loops below unpack 8 rows from two float4");

template <int D>
struct Geom {
  static_assert(D % 16 == 0 && D <= 128, "head dim");
  static constexpr int KS = D + 4;          // row stride (floats) of tiles read one row per lane: conflict-free float4
  static constexpr int DV = (D + 31) / 32;  // head dims per lane (lane owns d = lane + 32*dv)
  static constexpr size_t fwd_smem = sizeof(float) * (BQ * D + 2 * BK * KS + BQ * BK);
  static constexpr size_t dkdv_smem = sizeof(float) * (2 * BK * KS + 2 * BQ * D + 2 * BQ * BK + 2 * BQ);
  static constexpr size_t dq_smem = sizeof(float) * (2 * BQ * D + 2 * BK * KS + BQ * BK + 2 * BQ);
};

__device__ __forceinline__ float dot4(float4 a, float4 b) { return a.x * b.x + a.y * b.y + a.z * b.z + a.w * b.w; }
__device__ __forceinline__ float4 ld4(const float* p) { return *reinterpret_cast<const float4*>(p); }

// dst[r*stride + d] = scale * src[(t0 + r) * row_stride + d] for the 32 tile
// rows r, zero where t0 + r >= T. src points at position 0 of one head.
template <int D>
__device__ __forceinline__ void load_tile(float* dst, int stride, const bf16* src, int64_t row_stride, int t0, int T,
                                          float scale) {
  for (int e = threadIdx.x; e < 32 * D; e += kThreads) {
    const int r = e / D, d = e % D;
    const int t = t0 + r;
    dst[r * stride + d] = t < T ? to_f32(src[int64_t(t) * row_stride + d]) * scale : 0.0f;
  }
}

// Scores of the warp's 8 rows against key `lane` of the tile:
//   s[u] = A[(8w+u), :] . Bt[lane, :]   (A: [32][D] broadcast reads, Bt: [32][KS])
// and optionally dp[u] = A2[8w+u, :] . Bt2[lane, :].
template <int D>
__device__ __forceinline__ void tile_scores(float* s, const float* A, const float* Bt, int warp, int lane) {
  constexpr int KS = Geom<D>::KS;
  const float* br = Bt + lane * KS;
#pragma unroll
  for (int u = 0; u < RPW; ++u) s[u] = 0.0f;
#pragma unroll 4
  for (int d = 0; d < D; d += 4) {
    const float4 bb = ld4(br + d);
#pragma unroll
    for (int u = 0; u < RPW; ++u) s[u] += dot4(ld4(A + (warp * RPW + u) * D + d), bb);
  }
}

// acc[u][x] += sum_j W[8w+u][j] * X[j][lane + 32x], j in order: the warp's 8
// rows of W (its own rows: a __syncwarp after writing them suffices) times a
// tile. W [BQ][BK], X [BK][KS]; acc rows are query rows, columns head dims.
template <int D>
__device__ __forceinline__ void rows_times_tile(float (&acc)[RPW][Geom<D>::DV], const float* W, const float* X,
                                                int warp, int lane) {
  constexpr int KS = Geom<D>::KS, DV = Geom<D>::DV;
#pragma unroll 2
  for (int jj = 0; jj < BK; jj += 4) {
    float xv[4][DV];
#pragma unroll
    for (int x = 0; x < 4; ++x)
#pragma unroll
      for (int dv = 0; dv < DV; ++dv) {
        const int d = lane + 32 * dv;
        xv[x][dv] = d < D ? X[(jj + x) * KS + d] : 0.0f;
      }
#pragma unroll
    for (int u = 0; u < RPW; ++u) {
      const float4 w4 = ld4(W + (warp * RPW + u) * BK + jj);
#pragma unroll
      for (int dv = 0; dv < DV; ++dv)
        acc[u][dv] += w4.x * xv[0][dv] + w4.y * xv[1][dv] + w4.z * xv[2][dv] + w4.w * xv[3][dv];
    }
  }
}

// dst[lane + 32x] = a[x] * scale for the dims this lane owns (one row of D).
template <int D>
__device__ __forceinline__ void store_row(bf16* dst, const float (&a)[Geom<D>::DV], float scale, int lane) {
#pragma unroll
  for (int x = 0; x < Geom<D>::DV; ++x) {
    const int d = lane + 32 * x;
    if (d < D) dst[d] = from_f32<bf16>(a[x] * scale);
  }
}

// ---------------------------------------------------------------- forward
// out[B,T,NH,D], lse[B,NH,T]; q[B,T,NH,D], k/v[B,T,NKV,D]
template <int D>
__global__ void __launch_bounds__(kThreads)
    attention_forward_kernel(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int T, int NH,
                             int NKV, float scale) {
  constexpr int KS = Geom<D>::KS, DV = Geom<D>::DV;
  extern __shared__ __align__(128) float4 smem4[];  // WMMA tiles need 32-byte alignment
  float* Qs = reinterpret_cast<float*>(smem4);  // [BQ][D], pre-scaled by 1/sqrt(D)
  float* Ks = Qs + BQ * D;                       // [BK][KS]
  float* Vs = Ks + BK * KS;                      // [BK][KS]
  float* Ps = Vs + BK * KS;                      // [BQ][BK]
  const int qt = gridDim.x - 1 - blockIdx.x;     // longest (last) query tiles first
  const int h = blockIdx.y, b = blockIdx.z, kvh = h / (NH / NKV);
  const int q0 = qt * BQ;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const bf16* qb = q + (int64_t(b) * T * NH + h) * D;     // position 0 of head h
  const bf16* kb = k + (int64_t(b) * T * NKV + kvh) * D;  // position 0 of kv head
  const bf16* vb = v + (int64_t(b) * T * NKV + kvh) * D;

  load_tile<D>(Qs, D, qb, int64_t(NH) * D, q0, T, scale);
  float m[RPW], l[RPW], acc[RPW][DV];
#pragma unroll
  for (int u = 0; u < RPW; ++u) {
    m[u] = -INFINITY;
    l[u] = 0.0f;
#pragma unroll
    for (int dv = 0; dv < DV; ++dv) acc[u][dv] = 0.0f;
  }

  const int kend = min(T, q0 + BQ);  // keys [0, kend) can be seen by this tile
  for (int k0 = 0; k0 < kend; k0 += BK) {
    __syncthreads();  // the previous tile's K/V are no longer read (and Q is loaded)
    load_tile<D>(Ks, KS, kb, int64_t(NKV) * D, k0, T, 1.0f);
    load_tile<D>(Vs, KS, vb, int64_t(NKV) * D, k0, T, 1.0f);
    __syncthreads();

    float s[RPW];
    tile_scores<D>(s, Qs, Ks, warp, lane);
    const int j = k0 + lane;
#pragma unroll
    for (int u = 0; u < RPW; ++u) {
      const int i = q0 + warp * RPW + u;
      // Causal mask. Rows i >= T are padding; they are never written.
      const float sv = j <= i ? s[u] : -INFINITY;
      const float mn = fmaxf(m[u], warp_max(sv));
      // mn is finite from the first tile on for real rows (key 0 <= i); guard anyway.
      const float corr = mn == -INFINITY ? 1.0f : expf(m[u] - mn);
      const float p = sv == -INFINITY ? 0.0f : expf(sv - mn);
      l[u] = l[u] * corr + warp_sum(p);
      m[u] = mn;
      Ps[(warp * RPW + u) * BK + lane] = p;
#pragma unroll
      for (int dv = 0; dv < DV; ++dv) acc[u][dv] *= corr;
    }
    __syncwarp();  // the warp reads back only its own rows of P

    rows_times_tile<D>(acc, Ps, Vs, warp, lane);  // acc[u][d] += sum_j P[u][j] * V[j][d]
  }

#pragma unroll
  for (int u = 0; u < RPW; ++u) {
    const int i = q0 + warp * RPW + u;
    if (i >= T) continue;
    store_row<D>(out + ((int64_t(b) * T + i) * NH + h) * D, acc[u], 1.0f / l[u], lane);
    if (lane == 0) lse[(int64_t(b) * NH + h) * T + i] = m[u] + logf(l[u]);
  }
}

// ---------------------------------------------------------------- backward
// Dvec[b,h,t] = sum_d dout[b,t,h,d] * out[b,t,h,d]. One warp per (b,t,h).
__global__ void attention_dvec_kernel(float* Dvec, const bf16* dout, const bf16* out, int64_t rows, int T, int NH,
                                      int D) {
  const int64_t row = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;  // (b*T + t)*NH + h
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  float s = 0.0f;
  for (int d = lane; d < D; d += 32) s += to_f32(dout[row * D + d]) * to_f32(out[row * D + d]);
  s = warp_sum(s);
  if (lane == 0) {
    const int h = int(row % NH);
    const int64_t bt = row / NH;
    const int t = int(bt % T);
    const int64_t b = bt / T;
    Dvec[(b * NH + h) * T + t] = s;
  }
}

// P and dS of the warp's 8 query rows (tile rows r = 8w+u, positions q0 + r)
// against key k0 + lane. Qs/dOs [BQ][D], Ks/Vs [BK][KS], Ls/Ds [BQ].
template <int D>
__device__ __forceinline__ void tile_p_ds(float* p, float* ds, const float* Qs, const float* dOs, const float* Ks,
                                          const float* Vs, const float* Ls, const float* Ds, int q0, int k0, int T,
                                          float scale, int warp, int lane) {
  float s[RPW], dp[RPW];
  tile_scores<D>(s, Qs, Ks, warp, lane);
  tile_scores<D>(dp, dOs, Vs, warp, lane);
  const int j = k0 + lane;
#pragma unroll
  for (int u = 0; u < RPW; ++u) {
    const int r = warp * RPW + u, i = q0 + r;
    const bool valid = j <= i && i < T;  // implies j < T
    p[u] = valid ? expf(s[u] * scale - Ls[r]) : 0.0f;
    ds[u] = valid ? p[u] * (dp[u] - Ds[r]) * scale : 0.0f;
  }
}

// dk/dv[B,T,NKV,D]; grid (ceil(T/BK), NKV, B).
template <int D>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dkdv_kernel(bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                                   const float* lse, const float* Dvec, int T, int NH, int NKV, float scale) {
  constexpr int KS = Geom<D>::KS, DV = Geom<D>::DV;
  extern __shared__ __align__(128) float4 smem4[];  // WMMA tiles need 32-byte alignment
  float* Ks = reinterpret_cast<float*>(smem4);  // [BK][KS]
  float* Vs = Ks + BK * KS;                      // [BK][KS]
  float* Qs = Vs + BK * KS;                      // [BQ][D]
  float* dOs = Qs + BQ * D;                      // [BQ][D]
  float* Ps = dOs + BQ * D;                      // [BQ][BK]
  float* dSs = Ps + BQ * BK;                     // [BQ][BK]
  float* Ls = dSs + BQ * BK;                     // [BQ]
  float* Ds = Ls + BQ;                           // [BQ]
  const int kt = blockIdx.x;                     // tile 0 sees the most queries: it starts first
  const int kvh = blockIdx.y, b = blockIdx.z, group = NH / NKV;
  const int k0 = kt * BK;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;

  load_tile<D>(Ks, KS, k + (int64_t(b) * T * NKV + kvh) * D, int64_t(NKV) * D, k0, T, 1.0f);
  load_tile<D>(Vs, KS, v + (int64_t(b) * T * NKV + kvh) * D, int64_t(NKV) * D, k0, T, 1.0f);

  // This thread owns dK, dV of keys k0 + 8w + u, dims lane + 32*dv.
  float dka[RPW][DV], dva[RPW][DV];
#pragma unroll
  for (int u = 0; u < RPW; ++u)
#pragma unroll
    for (int x = 0; x < DV; ++x) dka[u][x] = dva[u][x] = 0.0f;

  for (int hh = 0; hh < group; ++hh) {
    const int h = kvh * group + hh;
    const bf16* qb = q + (int64_t(b) * T * NH + h) * D;
    const bf16* dob = dout + (int64_t(b) * T * NH + h) * D;
    const float* lseb = lse + (int64_t(b) * NH + h) * T;
    const float* Dvb = Dvec + (int64_t(b) * NH + h) * T;
    for (int q0 = k0; q0 < T; q0 += BQ) {  // queries before k0 cannot see these keys
      __syncthreads();                     // previous chunk's Q/dO/P/dS no longer read
      load_tile<D>(Qs, D, qb, int64_t(NH) * D, q0, T, 1.0f);
      load_tile<D>(dOs, D, dob, int64_t(NH) * D, q0, T, 1.0f);
      if (threadIdx.x < BQ) {
        const int t = q0 + threadIdx.x;
        Ls[threadIdx.x] = t < T ? lseb[t] : 0.0f;
        Ds[threadIdx.x] = t < T ? Dvb[t] : 0.0f;
      }
      __syncthreads();

      float p[RPW], ds[RPW];
      tile_p_ds<D>(p, ds, Qs, dOs, Ks, Vs, Ls, Ds, q0, k0, T, scale, warp, lane);
#pragma unroll
      for (int u = 0; u < RPW; ++u) {
        Ps[(warp * RPW + u) * BK + lane] = p[u];
        dSs[(warp * RPW + u) * BK + lane] = ds[u];
      }
      __syncthreads();  // the accumulation reads P/dS columns written by all warps

      // dV[j][d] += sum_r P[r][j] dO[r][d];  dK[j][d] += sum_r dS[r][j] Q[r][d]   (r in order)
      for (int r = 0; r < BQ; ++r) {
        const float4 pa = ld4(Ps + r * BK + warp * RPW), pb = ld4(Ps + r * BK + warp * RPW + 4);
        const float4 sa = ld4(dSs + r * BK + warp * RPW), sb = ld4(dSs + r * BK + warp * RPW + 4);
        const float pr[RPW] = {pa.x, pa.y, pa.z, pa.w, pb.x, pb.y, pb.z, pb.w};
        const float sr[RPW] = {sa.x, sa.y, sa.z, sa.w, sb.x, sb.y, sb.z, sb.w};
        float o[DV], qv[DV];
#pragma unroll
        for (int x = 0; x < DV; ++x) {
          const int d = lane + 32 * x;
          o[x] = d < D ? dOs[r * D + d] : 0.0f;
          qv[x] = d < D ? Qs[r * D + d] : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < RPW; ++u)
#pragma unroll
          for (int x = 0; x < DV; ++x) {
            dva[u][x] += pr[u] * o[x];
            dka[u][x] += sr[u] * qv[x];
          }
      }
    }
  }

#pragma unroll
  for (int u = 0; u < RPW; ++u) {
    const int j = k0 + warp * RPW + u;
    if (j >= T) continue;
    const int64_t base = ((int64_t(b) * T + j) * NKV + kvh) * D;
    store_row<D>(dk + base, dka[u], 1.0f, lane);
    store_row<D>(dv + base, dva[u], 1.0f, lane);
  }
}

// dq[B,T,NH,D]; grid (ceil(T/BQ), NH, B).
template <int D>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dq_kernel(bf16* dq, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                                 const float* lse, const float* Dvec, int T, int NH, int NKV, float scale) {
  constexpr int KS = Geom<D>::KS, DV = Geom<D>::DV;
  extern __shared__ __align__(128) float4 smem4[];  // WMMA tiles need 32-byte alignment
  float* Qs = reinterpret_cast<float*>(smem4);  // [BQ][D]
  float* dOs = Qs + BQ * D;                      // [BQ][D]
  float* Ks = dOs + BQ * D;                      // [BK][KS]
  float* Vs = Ks + BK * KS;                      // [BK][KS]
  float* dSs = Vs + BK * KS;                     // [BQ][BK]
  float* Ls = dSs + BQ * BK;                     // [BQ]
  float* Ds = Ls + BQ;                           // [BQ]
  const int qt = gridDim.x - 1 - blockIdx.x;     // longest query tiles first
  const int h = blockIdx.y, b = blockIdx.z, kvh = h / (NH / NKV);
  const int q0 = qt * BQ;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const bf16* kb = k + (int64_t(b) * T * NKV + kvh) * D;
  const bf16* vb = v + (int64_t(b) * T * NKV + kvh) * D;

  load_tile<D>(Qs, D, q + (int64_t(b) * T * NH + h) * D, int64_t(NH) * D, q0, T, 1.0f);
  load_tile<D>(dOs, D, dout + (int64_t(b) * T * NH + h) * D, int64_t(NH) * D, q0, T, 1.0f);
  if (threadIdx.x < BQ) {
    const int t = q0 + threadIdx.x;
    Ls[threadIdx.x] = t < T ? lse[(int64_t(b) * NH + h) * T + t] : 0.0f;
    Ds[threadIdx.x] = t < T ? Dvec[(int64_t(b) * NH + h) * T + t] : 0.0f;
  }

  float dqa[RPW][DV];  // rows q0 + 8w + u, dims lane + 32*dv
#pragma unroll
  for (int u = 0; u < RPW; ++u)
#pragma unroll
    for (int x = 0; x < DV; ++x) dqa[u][x] = 0.0f;

  const int kend = min(T, q0 + BQ);
  for (int k0 = 0; k0 < kend; k0 += BK) {
    __syncthreads();  // previous K/V no longer read (and Q/dO/L/D loaded)
    load_tile<D>(Ks, KS, kb, int64_t(NKV) * D, k0, T, 1.0f);
    load_tile<D>(Vs, KS, vb, int64_t(NKV) * D, k0, T, 1.0f);
    __syncthreads();

    float p[RPW], ds[RPW];
    tile_p_ds<D>(p, ds, Qs, dOs, Ks, Vs, Ls, Ds, q0, k0, T, scale, warp, lane);
#pragma unroll
    for (int u = 0; u < RPW; ++u) dSs[(warp * RPW + u) * BK + lane] = ds[u];
    __syncwarp();  // the warp reads back only its own rows of dS

    rows_times_tile<D>(dqa, dSs, Ks, warp, lane);  // dq[u][d] += sum_j dS[u][j] K[j][d]
  }

#pragma unroll
  for (int u = 0; u < RPW; ++u) {
    const int i = q0 + warp * RPW + u;
    if (i < T) store_row<D>(dq + ((int64_t(b) * T + i) * NH + h) * D, dqa[u], 1.0f, lane);
  }
}

// ================================================================ tensor-core path
// WMMA 16x16x16, bf16 operands, fp32 accumulators. Nothing depends on the
// accumulator's register layout: every row-wise step (mask, softmax, rescale,
// dS) goes through per-warp fp32 tiles in shared memory, done by SIMT code
// where lane l owns row l/2 and one half of its columns.
namespace wmma = nvcuda::wmma;
using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major>;
using FragBRow = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major>;  // B[k][n] = p[k*ld + n]
using FragBCol = wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major>;  // B[k][n] = p[n*ld + k]: Xᵀ of a row-major X
using FragACol = wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::col_major>;  // A[i][k] = p[k*ld + i]
using FragC = wmma::fragment<wmma::accumulator, 16, 16, 16, float>;

// bf16 WMMA needs sm_80+. A build for an older architecture (or its PTX,
// JIT-compiled for a newer card) gets kernels that trap; the launchers never
// run them there: tc_compiled() sees the kernels' PTX version and picks SIMT.
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
#define GT_ATTENTION_TC_BODY 0
#else
#define GT_ATTENTION_TC_BODY 1
#endif

constexpr int kTcThreads = 128;  // 4 warps; warp w owns the 16 tile rows 16w..16w+15
constexpr int TQ = 64;           // forward / dq: queries per block (4 warps x 16)
constexpr int TK = 32;           // forward / dq: keys per step
constexpr int UK = 64;           // dk/dv: keys per block (4 warps x 16)
constexpr int UQ = 32;           // dk/dv: queries per step
constexpr int SL = 36;           // row stride (floats) of a warp's fp32 score tile [16][32]
constexpr float kSoftmaxSlack = 8.0f;  // forward: how far (natural log) a row's max may pass its reference max
constexpr int PL = 40;           // row stride (bf16) of a warp's bf16 P / dS tile [16][32]
static_assert(TK == 32 && UQ == 32, "row work: lane l owns row l/2, columns 16*(l%2)..+15");
static_assert(TQ % TK == 0 && UK % UQ == 0, "the causal diagonal falls on step boundaries");

template <int D>
struct TcGeom {
  static_assert(D % 16 == 0 && D <= 128, "head dim");
  static constexpr int LD = D + 8;  // bf16 row stride of Q/K/V/dO tiles: 16-byte pad against bank conflicts
  static constexpr size_t tile(int rows) { return size_t(rows) * LD * sizeof(bf16); }
  static constexpr size_t S4 = 4 * 16 * SL * sizeof(float);  // 4 warps' fp32 [16][SL]
  static constexpr size_t P4 = 4 * 16 * PL * sizeof(bf16);   // 4 warps' bf16 [16][PL]
  // Backward at D <= 64: each warp's bf16 dS tile overlays its fp32 dP tile (and
  // Pᵀ, dSᵀ overlay Sᵀ, dPᵀ in dk/dv). At D = 64 that is 46.5 KB instead of
  // 51.7 / 56.6 KB per block: two blocks per SM on the RTX 4090 (100 KB per SM)
  // instead of one. At D = 96 / 128 it would not change the occupancy (one block
  // either way), so those keep separate tiles and their register budget.
  static constexpr bool overlay = D <= 64;
  static constexpr size_t P4_bwd = overlay ? 0 : P4;
  // Pipeline stages of the per-step tiles (cp.async: step s+1's tiles load
  // while step s computes; 1 = load, then compute). The forward and the dq from
  // the dS store always take 2; dk/dv only at D >= 96, where an RTX 4090 SM holds
  // one block either way (at D = 64 a second stage would cost its second block).
  static constexpr int fwd_stages = 2;  // the forward's prologue stages Q in stage 1 while step 0 loads
  static constexpr int dkdv_stages = D >= 96 ? 2 : 1;
  // Per stage K,V [TK][LD] each (before the loop stage 1's hold the Q tile [TQ][LD]), S, P
  static constexpr size_t fwd_smem = fwd_stages * 2 * tile(TK) + S4 + P4;
  // Q, dO [TQ][LD], K, V [TK][LD], S, dP, dS (unless overlaid), L, Dvec [TQ]
  static constexpr size_t dq_smem = 2 * tile(TQ) + 2 * tile(TK) + 2 * S4 + P4_bwd + 2 * TQ * sizeof(float);
  // K, V [UK][LD], per stage Q, dO [UQ][LD], Sᵀ, dPᵀ, Pᵀ, dSᵀ (unless overlaid), per stage L, Dvec [UQ]
  static constexpr size_t dkdv_smem =
      2 * tile(UK) + dkdv_stages * 2 * tile(UQ) + 2 * S4 + 2 * P4_bwd + dkdv_stages * 2 * UQ * sizeof(float);
  static_assert(16 * PL * sizeof(bf16) <= 16 * SL * sizeof(float), "a bf16 tile fits in its fp32 tile");
  static_assert(2 * tile(TK) == tile(TQ), "the forward stages Q in the K,V space");
  // Every region starts 32-byte aligned (WMMA pointers must be 256-bit aligned).
  static_assert(tile(TK) % 32 == 0 && S4 % 32 == 0 && P4 % 32 == 0, "32-byte aligned regions");
};

// dst[r*(D+8) + d] = src[(t0 + r) * row_stride + d] for the ROWS tile rows r
// (bf16, 16-byte cp.async copies: they land at the cp_async_wait that covers
// their group), zero where t0 + r >= T (nothing read). src points at position
// 0 of one head and is 16-byte aligned (checked by the launcher), D % 8 == 0.
template <int D, int ROWS>
__device__ __forceinline__ void tc_load_tile_async(bf16* dst, const bf16* src, int64_t row_stride, int t0, int T) {
  constexpr int LD = D + 8, CH = D / 8;  // 16-byte chunks per row
  for (int e = threadIdx.x; e < ROWS * CH; e += kTcThreads) {
    const int r = e / CH, c = (e % CH) * 8;
    const bool in = t0 + r < T;
    cp_async<16>(dst + r * LD + c, in ? src + int64_t(t0 + r) * row_stride + c : src, in ? 16 : 0);
  }
}

// The steps of an ST-stage (1 or 2) load pipeline: issue(s) copies step s's
// tiles into stage s % ST as one committed cp.async group; groups are issued in
// step order, step 0's before the loop. Begin: with 2 stages, issue step + 1
// first (into the stage step - 1 read, free since that step's closing barrier),
// then wait for step's group; the barrier after it: every thread's copies of
// step have landed. End: the barrier after which step's stage may be
// overwritten; with 1 stage, then issue step + 1.
template <int ST, typename Issue>
__device__ __forceinline__ void pipeline_step_begin(int step, int nsteps, Issue& issue) {
  if (ST == 2 && step + 1 < nsteps) {
    issue(step + 1);
    cp_async_wait<1>();
  } else {
    cp_async_wait<0>();
  }
  __syncthreads();
}
template <int ST, typename Issue>
__device__ __forceinline__ void pipeline_step_end(int step, int nsteps, Issue& issue) {
  __syncthreads();
  if (ST == 1 && step + 1 < nsteps) issue(step + 1);
}

// Writes the warp's 16 x D accumulator tiles acc[n] (rows row0 + r, columns
// 16n..16n+15) as bf16 to dst + row * row_stride, for rows < T, through the
// warp's fp32 staging tile stage [16][SL]. dst is 16-byte aligned.
template <int D>
__device__ __forceinline__ void tc_store_rows(bf16* dst, int64_t row_stride, const FragC* acc, float* stage,
                                              int row0, int T, float mul, int lane) {
  const int r = lane >> 1, c0 = (lane & 1) * 8;  // lane: row r, 8 columns
#pragma unroll
  for (int n = 0; n < D / 16; ++n) {
    __syncwarp();  // the staging tile is no longer read
    wmma::store_matrix_sync(stage, acc[n], SL, wmma::mem_row_major);
    __syncwarp();
    if (row0 + r < T) {
      float f[8];
#pragma unroll
      for (int c = 0; c < 8; ++c) f[c] = stage[r * SL + c0 + c] * mul;
      store_bf16x8(dst + int64_t(row0 + r) * row_stride + 16 * n + c0, f);
    }
  }
}

// C [16][N] (fp32, row stride SL, in the warp's tile) = A Bᵀ, with A the
// warp's 16 rows [16][D] and B [N][D] (bf16 tiles, row stride D+8).
template <int D, int N>
__device__ __forceinline__ void tc_tile_abt(float* C, const bf16* A, const bf16* B) {
  constexpr int LD = TcGeom<D>::LD;
  FragC acc[N / 16];
#pragma unroll
  for (int n = 0; n < N / 16; ++n) wmma::fill_fragment(acc[n], 0.0f);
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    FragA a;
    wmma::load_matrix_sync(a, A + kk * 16, LD);
#pragma unroll
    for (int n = 0; n < N / 16; ++n) {
      FragBCol bt;
      wmma::load_matrix_sync(bt, B + n * 16 * LD + kk * 16, LD);
      wmma::mma_sync(acc[n], a, bt, acc[n]);
    }
  }
#pragma unroll
  for (int n = 0; n < N / 16; ++n) wmma::store_matrix_sync(C + n * 16, acc[n], SL, wmma::mem_row_major);
}

// acc[n] (the warp's [16][D] accumulators, dims 16n..16n+15) += A B, with A
// the K/16 fragments a[kk] ([16][K], k-slice kk) and B [K][D] (bf16, row
// stride D+8); k in order.
template <int D, int K, typename FragAT>
__device__ __forceinline__ void tc_acc_frags(FragC* acc, const FragAT* a, const bf16* B) {
  constexpr int LD = TcGeom<D>::LD;
#pragma unroll
  for (int n = 0; n < D / 16; ++n)
#pragma unroll
    for (int kk = 0; kk < K / 16; ++kk) {
      FragBRow bf;
      wmma::load_matrix_sync(bf, B + kk * 16 * LD + n * 16, LD);
      wmma::mma_sync(acc[n], a[kk], bf, acc[n]);
    }
}

// acc += A B, with A [16][K] (bf16, row stride PL, the warp's P/dS tile).
template <int D, int K>
__device__ __forceinline__ void tc_acc_ab(FragC* acc, const bf16* A, const bf16* B) {
  FragA a[K / 16];
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) wmma::load_matrix_sync(a[kk], A + kk * 16, PL);
  tc_acc_frags<D, K>(acc, a, B);
}

// acc += A B, with A given transposed: At [K][lda] holds A[i][k] at At[k*lda + i].
template <int D, int K>
__device__ __forceinline__ void tc_acc_atb(FragC* acc, const bf16* At, int lda, const bf16* B) {
  FragACol a[K / 16];
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) wmma::load_matrix_sync(a[kk], At + kk * 16 * lda, lda);
  tc_acc_frags<D, K>(acc, a, B);
}

// ---- the dS store (attention_backward_cuda_ds_bytes) ----
// The dk/dv kernel computes every causal dS element once (as dSᵀ rows of its
// keys); storing it lets dq skip recomputing S, dP and P: dQ = dS K is one
// tile product per step instead of three. Per (b, h) the causal 32x32 tiles
// (query tile qt >= key tile kt) are packed row by row, tile (qt, kt) at index
// qt(qt+1)/2 + kt, each [32 keys][32 queries] bf16 (dSᵀ, scale included).
// Masked and padding entries are stored as 0; key rows >= T of the last key
// tile may be left unwritten (their warps skip), so dq zero-fills them.
constexpr int DST = 32;  // tile edge
static_assert(TK == DST && UQ == DST && TQ == 2 * DST && UK == 2 * DST,
              "dq steps and dk/dv steps are one store tile; their blocks two");
__host__ __device__ inline int64_t ds_tiles_per_head(int T) {
  const int64_t nt = (T + DST - 1) / DST;
  return nt * (nt + 1) / 2;
}
__device__ __forceinline__ int64_t ds_tile_offset(int b, int h, int NH, int T, int qt, int kt) {
  return ((int64_t(b) * NH + h) * ds_tiles_per_head(T) + int64_t(qt) * (qt + 1) / 2 + kt) * (DST * DST);
}

// ---------------------------------------------------------------- TC forward
// out[B,T,NH,D], lse[B,NH,T]; q[B,T,NH,D], k/v[B,T,NKV,D]; grid (ceil(T/TQ), NH, B).
// Warp w keeps its 16 query rows' Q fragments and the output accumulator O
// [16][D] in registers; per key step of TK=32 keys it computes S = Q Kᵀ,
// stores it to its fp32 tile, does the online softmax there (running max m,
// sum l per row, held by the row's two lanes), writes P (bf16), rescales O
// through the staging tile when some row's max moved, then O += P V. The next
// step's K, V tiles load (cp.async) while a step computes.
template <int D>
__global__ void __launch_bounds__(kTcThreads)
    attention_forward_tc_kernel(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int T, int NH,
                                int NKV, float scale) {
#if !GT_ATTENTION_TC_BODY
  __trap();
#else
  constexpr int LD = TcGeom<D>::LD, ND = D / 16, ST = TcGeom<D>::fwd_stages;
  extern __shared__ __align__(128) float4 smem4[];  // WMMA tiles need 32-byte alignment
  bf16* KV = reinterpret_cast<bf16*>(smem4);               // per stage K, V [TK][LD]; stage 1's: Q first
  float* Sw = reinterpret_cast<float*>(KV + ST * 2 * TK * LD);  // this warp's S / staging tile [16][SL] (set below)
  bf16* Pw = reinterpret_cast<bf16*>(Sw + 4 * 16 * SL);    // this warp's P [16][PL] (set below)
  const int qt = gridDim.x - 1 - blockIdx.x;               // longest (last) query tiles first
  const int h = blockIdx.y, b = blockIdx.z, kvh = h / (NH / NKV);
  const int q0 = qt * TQ;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  Sw += warp * 16 * SL;
  Pw += warp * 16 * PL;
  const int r = lane >> 1, c0 = (lane & 1) * 16;  // row work: lane owns row r, columns c0..c0+15
  const int row0 = q0 + warp * 16, i = row0 + r;  // the warp's first query, this lane's query
  const bf16* kb = k + (int64_t(b) * T * NKV + kvh) * D;  // position 0 of the kv head
  const bf16* vb = v + (int64_t(b) * T * NKV + kvh) * D;
  const int kend = min(T, q0 + TQ);  // keys [0, kend) can be seen by this tile
  const int nsteps = (kend + TK - 1) / TK;
  auto issue = [&](int step) {  // K, V of key step `step` into its stage
    bf16* Ks = KV + (step % ST) * 2 * TK * LD;
    tc_load_tile_async<D, TK>(Ks, kb, int64_t(NKV) * D, step * TK, T);
    tc_load_tile_async<D, TK>(Ks + TK * LD, vb, int64_t(NKV) * D, step * TK, T);
    cp_async_commit();
  };

  static_assert(ST == 2, "Q is staged in stage 1 while step 0 loads into stage 0");
  tc_load_tile_async<D, TQ>(KV + 2 * TK * LD, q + (int64_t(b) * T * NH + h) * D, int64_t(NH) * D, q0, T);
  cp_async_commit();
  issue(0);
  cp_async_wait<1>();  // Q has landed
  __syncthreads();
  FragA qf[ND];  // Q rows row0..row0+15, dims 16kk..16kk+15
#pragma unroll
  for (int kk = 0; kk < ND; ++kk)
    wmma::load_matrix_sync(qf[kk], KV + 2 * TK * LD + warp * 16 * LD + kk * 16, LD);
  FragC of[ND];  // O rows row0..row0+15, dims 16n..16n+15 (unnormalized)
#pragma unroll
  for (int n = 0; n < ND; ++n) wmma::fill_fragment(of[n], 0.0f);
  float m = -INFINITY, l = 0.0f;  // row i's running max and sum (same in both lanes of the row)
  __syncthreads();  // the Q tile is no longer read: step 1 may load into its stage

  for (int step = 0; step < nsteps; ++step) {
    pipeline_step_begin<ST>(step, nsteps, issue);  // this step's K, V have landed for every thread
    const int k0 = step * TK;
    const bf16* Ks = KV + (step % ST) * 2 * TK * LD;
    const bf16* Vs = Ks + TK * LD;
    if (k0 <= row0 + 15) {  // else every key is after every query of this warp (warp-uniform)
      // S = Q Kᵀ [16][TK]
      FragC sf[TK / 16];
#pragma unroll
      for (int n = 0; n < TK / 16; ++n) wmma::fill_fragment(sf[n], 0.0f);
#pragma unroll
      for (int kk = 0; kk < ND; ++kk)
#pragma unroll
        for (int n = 0; n < TK / 16; ++n) {
          FragBCol kf;
          wmma::load_matrix_sync(kf, Ks + n * 16 * LD + kk * 16, LD);
          wmma::mma_sync(sf[n], qf[kk], kf, sf[n]);
        }
#pragma unroll
      for (int n = 0; n < TK / 16; ++n) wmma::store_matrix_sync(Sw + n * 16, sf[n], SL, wmma::mem_row_major);
      __syncwarp();

      // Online softmax of row i over keys k0 + c0 .. k0 + c0 + 15 (causal mask;
      // rows i >= T are padding: finite, never written).
      float s[16], mx = -INFINITY;
#pragma unroll
      for (int c = 0; c < 16; ++c) {
        const int j = k0 + c0 + c;
        s[c] = j <= i ? Sw[r * SL + c0 + c] * scale : -INFINITY;
        mx = fmaxf(mx, s[c]);
      }
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      // The reference max moves only when the step's max exceeds it by more than
      // kSoftmaxSlack (P <= e^slack: no overflow, and bf16 P keeps its relative
      // precision); lse = m + log l holds for any m. Moving it on every new max made
      // nearly every step rescale O through the staging tile (one of the warp's 16
      // rows almost always sees a new max), as many shared-memory round trips as
      // the step's tile products. m = -inf (no key yet): O and l are 0, nothing to rescale.
      const float mn = mx > m + kSoftmaxSlack ? mx : m;  // finite from the first step on (key 0 <= i)
      const float corr = m == -INFINITY || mn == m ? 1.0f : expf(m - mn);
      float ps = 0.0f;
#pragma unroll
      for (int c = 0; c < 16; ++c) {
        const float p = s[c] == -INFINITY ? 0.0f : expf(s[c] - mn);
        ps += p;
        Pw[r * PL + c0 + c] = from_f32<bf16>(p);
      }
      ps += __shfl_xor_sync(0xffffffffu, ps, 1);
      l = l * corr + ps;
      m = mn;

      // O rows *= corr, through the staging tile (Sw), when some row's max moved.
      if (warp_max(corr != 1.0f ? 1.0f : 0.0f) != 0.0f) {
#pragma unroll
        for (int n = 0; n < ND; ++n) {
          __syncwarp();  // Sw is no longer read
          wmma::store_matrix_sync(Sw, of[n], SL, wmma::mem_row_major);
          __syncwarp();
#pragma unroll
          for (int c = 0; c < 8; ++c) Sw[r * SL + (lane & 1) * 8 + c] *= corr;
          __syncwarp();
          wmma::load_matrix_sync(of[n], Sw, SL, wmma::mem_row_major);
        }
      }
      __syncwarp();  // P is written by all lanes

      // O += P V: P [16][TK] (bf16), V [TK][D]
      tc_acc_ab<D, TK>(of, Pw, Vs);
    }
    pipeline_step_end<ST>(step, nsteps, issue);
  }

  // out = O / l (bf16), lse = m + log(l)
  tc_store_rows<D>(out + (int64_t(b) * T * NH + h) * D, int64_t(NH) * D, of, Sw, row0, T, 1.0f / l, lane);
  if (i < T && (lane & 1) == 0) lse[(int64_t(b) * NH + h) * T + i] = m + logf(l);
#endif  // GT_ATTENTION_TC_BODY
}

// ---------------------------------------------------------------- TC backward
// dq[B,T,NH,D]; grid (ceil(T/TQ), NH, B). Warp w owns query rows 16w..16w+15
// of the block's tile and their dQ [16][D] in accumulator fragments; per key
// step (keys 0..diagonal, in order) it computes S = Q Kᵀ and dP = dO Vᵀ into its
// fp32 tiles, dS = P (dP - Dvec) scale (bf16) with P = exp(S scale - lse), and
// dQ += dS K. Fixed order, one owner per output: deterministic.
template <int D>
__global__ void __launch_bounds__(kTcThreads)
    attention_backward_dq_tc_kernel(bf16* dq, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                                    const float* lse, const float* Dvec, int T, int NH, int NKV, float scale) {
#if !GT_ATTENTION_TC_BODY
  __trap();
#else
  constexpr int LD = TcGeom<D>::LD, ND = D / 16;
  extern __shared__ __align__(128) float4 smem4[];  // WMMA tiles need 32-byte alignment
  bf16* Qs = reinterpret_cast<bf16*>(smem4);                  // [TQ][LD]
  bf16* dOs = Qs + TQ * LD;                                   // [TQ][LD]
  bf16* Ks = dOs + TQ * LD;                                   // [TK][LD]
  bf16* Vs = Ks + TK * LD;                                    // [TK][LD]
  float* Sall = reinterpret_cast<float*>(Vs + TK * LD);       // [4 warps][16][SL]
  float* dPall = Sall + 4 * 16 * SL;                          // [4 warps][16][SL]
  constexpr bool overlay = TcGeom<D>::overlay;
  // [4 warps][16][PL]: its own region, or each warp's in its dP tile
  bf16* dSall = reinterpret_cast<bf16*>(dPall + 4 * 16 * SL);
  float* Ls = reinterpret_cast<float*>(dSall + (overlay ? 0 : 4 * 16 * PL));  // [TQ]
  float* Ds = Ls + TQ;                                                        // [TQ]
  const int qt = gridDim.x - 1 - blockIdx.x;                  // longest query tiles first
  const int h = blockIdx.y, b = blockIdx.z, kvh = h / (NH / NKV);
  const int q0 = qt * TQ;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* Sw = Sall + warp * 16 * SL;
  float* dPw = dPall + warp * 16 * SL;
  bf16* dSw = overlay ? reinterpret_cast<bf16*>(dPw) : dSall + warp * 16 * PL;
  const int r = lane >> 1, c0 = (lane & 1) * 16;  // row work: lane owns row r, columns c0..c0+15
  const int row0 = q0 + warp * 16, i = row0 + r;
  const bf16* kb = k + (int64_t(b) * T * NKV + kvh) * D;
  const bf16* vb = v + (int64_t(b) * T * NKV + kvh) * D;

  tc_load_tile_async<D, TQ>(Qs, q + (int64_t(b) * T * NH + h) * D, int64_t(NH) * D, q0, T);
  tc_load_tile_async<D, TQ>(dOs, dout + (int64_t(b) * T * NH + h) * D, int64_t(NH) * D, q0, T);
  cp_async_commit();  // waited for with the first K, V
  if (threadIdx.x < TQ) {
    const int t = q0 + threadIdx.x;
    Ls[threadIdx.x] = t < T ? lse[(int64_t(b) * NH + h) * T + t] : 0.0f;
    Ds[threadIdx.x] = t < T ? Dvec[(int64_t(b) * NH + h) * T + t] : 0.0f;
  }
  FragC dqf[ND];  // dQ rows row0..row0+15, dims 16n..16n+15
#pragma unroll
  for (int n = 0; n < ND; ++n) wmma::fill_fragment(dqf[n], 0.0f);

  const int kend = min(T, q0 + TQ);
  for (int k0 = 0; k0 < kend; k0 += TK) {
    __syncthreads();  // the previous K,V are no longer read (and Q, dO, L, Dvec are loaded)
    tc_load_tile_async<D, TK>(Ks, kb, int64_t(NKV) * D, k0, T);
    tc_load_tile_async<D, TK>(Vs, vb, int64_t(NKV) * D, k0, T);
    cp_async_commit();
    cp_async_wait<0>();  // one stage: load, then compute (this kernel runs only without the dS store)
    __syncthreads();
    if (k0 > row0 + 15) continue;  // fully masked for this warp (warp-uniform)

    // S = Q Kᵀ, then dP = dO Vᵀ  [16][TK]
    tc_tile_abt<D, TK>(Sw, Qs + warp * 16 * LD, Ks);
    tc_tile_abt<D, TK>(dPw, dOs + warp * 16 * LD, Vs);
    __syncwarp();

    // dS = P (dP - Dvec) scale, P = exp(S scale - lse); zero where masked or i >= T
    // (in registers first: with the overlay, dS overwrites dP that other lanes still read)
    const float Lr = Ls[warp * 16 + r], Dr = Ds[warp * 16 + r];
    float ds[16];
#pragma unroll
    for (int c = 0; c < 16; ++c) {
      const int j = k0 + c0 + c;
      const bool valid = j <= i && i < T;
      const float p = valid ? expf(Sw[r * SL + c0 + c] * scale - Lr) : 0.0f;
      ds[c] = valid ? p * (dPw[r * SL + c0 + c] - Dr) * scale : 0.0f;
    }
    const int4 ds_lo = pack_bf16x8(ds), ds_hi = pack_bf16x8(ds + 8);
    if (overlay) __syncwarp();  // every lane has read its dP
    *reinterpret_cast<int4*>(dSw + r * PL + c0) = ds_lo;
    *reinterpret_cast<int4*>(dSw + r * PL + c0 + 8) = ds_hi;
    __syncwarp();

    // dQ += dS K: dS [16][TK] (bf16), K [TK][D]
    tc_acc_ab<D, TK>(dqf, dSw, Ks);
  }

  tc_store_rows<D>(dq + (int64_t(b) * T * NH + h) * D, int64_t(NH) * D, dqf, Sw, row0, T, 1.0f, lane);
#endif  // GT_ATTENTION_TC_BODY
}

// dk/dv[B,T,NKV,D]; grid (ceil(T/UK), NKV, B). Warp w owns keys 16w..16w+15 of
// the block's key tile and their dK, dV [16][D] in accumulator fragments. The
// block walks, in a fixed order, the query heads of the group and their query
// steps of UQ=32 from the diagonal to T; per step a warp computes the
// transposed tiles Sᵀ = K Qᵀ and dPᵀ = V dOᵀ [16 keys][UQ queries] into its
// fp32 tiles, Pᵀ and dSᵀ (bf16), then dV += Pᵀ dO and dK += dSᵀ Q. With
// dkdv_stages = 2 the next step's Q, dO, lse, Dvec load (cp.async) while a
// step computes. ds_store (may be null): the dS store, written as computed.
template <int D>
__global__ void __launch_bounds__(kTcThreads)
    attention_backward_dkdv_tc_kernel(bf16* dk, bf16* dv, bf16* ds_store, const bf16* dout, const bf16* q,
                                      const bf16* k, const bf16* v, const float* lse, const float* Dvec, int T, int NH,
                                      int NKV, float scale) {
#if !GT_ATTENTION_TC_BODY
  __trap();
#else
  constexpr int LD = TcGeom<D>::LD, ND = D / 16, ST = TcGeom<D>::dkdv_stages;
  extern __shared__ __align__(128) float4 smem4[];  // WMMA tiles need 32-byte alignment
  bf16* Ks = reinterpret_cast<bf16*>(smem4);                   // [UK][LD]
  bf16* Vs = Ks + UK * LD;                                     // [UK][LD]
  bf16* QdO = Vs + UK * LD;                                    // per stage Q, dO [UQ][LD]
  float* STall = reinterpret_cast<float*>(QdO + ST * 2 * UQ * LD);  // [4 warps][16][SL]  Sᵀ
  float* dPTall = STall + 4 * 16 * SL;                         // [4 warps][16][SL]  dPᵀ
  constexpr bool overlay = TcGeom<D>::overlay;
  // Pᵀ, dSᵀ [4 warps][16][PL] each: their own regions, or each warp's in its Sᵀ, dPᵀ tiles
  bf16* PTall = reinterpret_cast<bf16*>(dPTall + 4 * 16 * SL);
  bf16* dSTall = PTall + 4 * 16 * PL;
  float* lse_dvec = reinterpret_cast<float*>(overlay ? PTall : dSTall + 4 * 16 * PL);  // per stage L, Dvec [UQ]
  const int kt = blockIdx.x;                                   // tile 0 sees the most queries: it starts first
  const int kvh = blockIdx.y, b = blockIdx.z, group = NH / NKV;
  const int k0 = kt * UK;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  float* STw = STall + warp * 16 * SL;
  float* dPTw = dPTall + warp * 16 * SL;
  bf16* PTw = overlay ? reinterpret_cast<bf16*>(STw) : PTall + warp * 16 * PL;
  bf16* dSTw = overlay ? reinterpret_cast<bf16*>(dPTw) : dSTall + warp * 16 * PL;
  const int r = lane >> 1, c0 = (lane & 1) * 16;  // row work: lane owns key row r, query columns c0..c0+15
  const int row0 = k0 + warp * 16, j = row0 + r;  // the warp's first key, this lane's key
  // Steps: query head hh = step / nq of the group, queries q0 = k0 + (step % nq) UQ
  // (queries before k0 cannot see these keys).
  const int nq = (T - k0 + UQ - 1) / UQ, nsteps = group * nq;
  auto issue = [&](int step) {  // Q, dO, lse, Dvec of `step` into its stage
    const int h = kvh * group + step / nq, q0 = k0 + (step % nq) * UQ;
    bf16* Qs = QdO + (step % ST) * 2 * UQ * LD;
    tc_load_tile_async<D, UQ>(Qs, q + (int64_t(b) * T * NH + h) * D, int64_t(NH) * D, q0, T);
    tc_load_tile_async<D, UQ>(Qs + UQ * LD, dout + (int64_t(b) * T * NH + h) * D, int64_t(NH) * D, q0, T);
    if (threadIdx.x < 2 * UQ) {  // threads 0..31: lse, 32..63: Dvec (0 past T)
      const int c = threadIdx.x % UQ;
      const float* src = (threadIdx.x < UQ ? lse : Dvec) + (int64_t(b) * NH + h) * T;
      const bool in = q0 + c < T;
      cp_async<4>(lse_dvec + (step % ST) * 2 * UQ + threadIdx.x, in ? src + q0 + c : src, in ? 4 : 0);
    }
    cp_async_commit();
  };

  tc_load_tile_async<D, UK>(Ks, k + (int64_t(b) * T * NKV + kvh) * D, int64_t(NKV) * D, k0, T);
  tc_load_tile_async<D, UK>(Vs, v + (int64_t(b) * T * NKV + kvh) * D, int64_t(NKV) * D, k0, T);
  issue(0);  // one group with K, V (nsteps >= 1: k0 < T)
  FragC dkf[ND], dvf[ND];  // dK, dV rows row0..row0+15, dims 16n..16n+15
#pragma unroll
  for (int n = 0; n < ND; ++n) {
    wmma::fill_fragment(dkf[n], 0.0f);
    wmma::fill_fragment(dvf[n], 0.0f);
  }

  for (int step = 0; step < nsteps; ++step) {
    pipeline_step_begin<ST>(step, nsteps, issue);  // step's Q, dO, L, Dvec (at step 0 also K, V) have landed
    const int h = kvh * group + step / nq, q0 = k0 + (step % nq) * UQ;
    const bf16* Qs = QdO + (step % ST) * 2 * UQ * LD;
    const bf16* dOs = Qs + UQ * LD;
    const float* Ls = lse_dvec + (step % ST) * 2 * UQ;
    const float* Ds = Ls + UQ;
    if (q0 + UQ - 1 >= row0 && row0 < T) {  // else no query here sees a key of this warp (warp-uniform)
      // Sᵀ = K Qᵀ, then dPᵀ = V dOᵀ  [16 keys][UQ queries], one after the other
      // (fewer live fragments: dK and dV already hold 2 D/16 accumulators).
      tc_tile_abt<D, UQ>(STw, Ks + warp * 16 * LD, Qs);
      tc_tile_abt<D, UQ>(dPTw, Vs + warp * 16 * LD, dOs);
      __syncwarp();

      // Pᵀ = exp(Sᵀ scale - lse[query]), dSᵀ = Pᵀ (dPᵀ - Dvec[query]) scale; zero
      // where masked or the query is padding (j <= i < T also means j < T).
      // (in registers first: with the overlay, Pᵀ and dSᵀ overwrite tiles other lanes still read)
      int4 pt_bf16[2], dst_bf16[2];
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        float p8[8], ds8[8];  // fully unrolled: registers, not local memory
#pragma unroll
        for (int c = 0; c < 8; ++c) {
          const int qc = c0 + 8 * half + c, i = q0 + qc;
          const bool valid = j <= i && i < T;
          p8[c] = valid ? expf(STw[r * SL + qc] * scale - Ls[qc]) : 0.0f;
          ds8[c] = valid ? p8[c] * (dPTw[r * SL + qc] - Ds[qc]) * scale : 0.0f;
        }
        pt_bf16[half] = pack_bf16x8(p8);
        dst_bf16[half] = pack_bf16x8(ds8);
      }
      if (overlay) __syncwarp();  // every lane has read its Sᵀ and dPᵀ
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        *reinterpret_cast<int4*>(PTw + r * PL + c0 + 8 * half) = pt_bf16[half];
        *reinterpret_cast<int4*>(dSTw + r * PL + c0 + 8 * half) = dst_bf16[half];
      }
      if (ds_store) {  // this warp's 16 key rows: one half of store tile (q0/32, row0/32)
        bf16* t = ds_store + ds_tile_offset(b, h, NH, T, q0 / DST, row0 / DST) + (row0 % DST + r) * DST + c0;
        *reinterpret_cast<int4*>(t) = dst_bf16[0];
        *reinterpret_cast<int4*>(t + 8) = dst_bf16[1];
      }
      __syncwarp();

      // dV += Pᵀ dO, then dK += dSᵀ Q: Pᵀ, dSᵀ [16][UQ] (bf16), dO, Q [UQ][D]
      tc_acc_ab<D, UQ>(dvf, PTw, dOs);
      tc_acc_ab<D, UQ>(dkf, dSTw, Qs);
    }
    pipeline_step_end<ST>(step, nsteps, issue);
  }

  const int64_t base = (int64_t(b) * T * NKV + kvh) * D;  // position 0 of the kv head
  tc_store_rows<D>(dk + base, int64_t(NKV) * D, dkf, STw, row0, T, 1.0f, lane);
  tc_store_rows<D>(dv + base, int64_t(NKV) * D, dvf, STw, row0, T, 1.0f, lane);
#endif  // GT_ATTENTION_TC_BODY
}

// dq[B,T,NH,D] from the dS store the dk/dv kernel wrote; grid (ceil(T/TQ), NH, B).
// Warp w owns query rows 16w..16w+15 of the block's tile and their dQ [16][D]
// in accumulator fragments; per key step (keys 0..diagonal, in order) it
// reads dS [16][TK] from the store tile (as a col_major matrix_a of dSᵀ) and
// adds dS K. One tile product per step: the step's loads dominate, so the next
// step's K and dS tiles load (cp.async) while a step computes. Fixed order,
// one owner per output: deterministic.
template <int D>
struct DqFromDsGeom {
  static constexpr int LD = TcGeom<D>::LD, stages = 2;
  static constexpr size_t k_tile = size_t(TK) * LD * sizeof(bf16), ds_tiles = 2 * DST * PL * sizeof(bf16);
  // per stage K [TK][LD] and dSᵀ of the block's two query tiles [2][DST keys][PL]; the warps' staging tiles
  static constexpr size_t smem = stages * (k_tile + ds_tiles) + TcGeom<D>::S4;
  static_assert(k_tile % 32 == 0 && ds_tiles % 32 == 0, "32-byte aligned regions");
};

template <int D>
__global__ void __launch_bounds__(kTcThreads)
    attention_backward_dq_from_ds_tc_kernel(bf16* dq, const bf16* ds_store, const bf16* k, int T, int NH, int NKV) {
#if !GT_ATTENTION_TC_BODY
  __trap();
#else
  using G = DqFromDsGeom<D>;
  constexpr int LD = G::LD, ND = D / 16, ST = G::stages;
  constexpr size_t stage_elems = (G::k_tile + G::ds_tiles) / sizeof(bf16);
  extern __shared__ __align__(128) float4 smem4[];  // WMMA tiles need 32-byte alignment
  bf16* stages = reinterpret_cast<bf16*>(smem4);          // per stage: K [TK][LD], then dSᵀ [2][DST][PL]
  float* Sw = reinterpret_cast<float*>(stages + ST * stage_elems);  // this warp's staging tile [16][SL] (set below)
  const int qt = gridDim.x - 1 - blockIdx.x;              // longest query tiles first
  const int h = blockIdx.y, b = blockIdx.z, kvh = h / (NH / NKV);
  const int q0 = qt * TQ;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  Sw += warp * 16 * SL;
  const int row0 = q0 + warp * 16;
  const bf16* kb = k + (int64_t(b) * T * NKV + kvh) * D;
  const int kend = min(T, q0 + TQ), nsteps = (kend + TK - 1) / TK;
  // K and the dSᵀ tiles (query tile q0/32 + half, key tile k0/32) of `step` into its
  // stage; tiles above the diagonal or past T are not read, key rows >= T are zeros.
  auto issue = [&](int step) {
    bf16* Ks = stages + (step % ST) * stage_elems;
    bf16* dSs = Ks + TK * LD;
    const int k0 = step * TK, kt = k0 / DST;
    tc_load_tile_async<D, TK>(Ks, kb, int64_t(NKV) * D, k0, T);
    for (int e = threadIdx.x; e < 2 * DST * (DST / 8); e += kTcThreads) {
      const int half = e / (DST * DST / 8), row = (e / (DST / 8)) % DST, c = (e % (DST / 8)) * 8;
      const int qtile = q0 / DST + half;
      if (qtile * DST >= T || kt > qtile) continue;
      const bf16* src = ds_store + ds_tile_offset(b, h, NH, T, qtile, kt) + row * DST + c;
      cp_async<16>(dSs + (half * DST + row) * PL + c, src, k0 + row < T ? 16 : 0);
    }
    cp_async_commit();
  };
  FragC dqf[ND];  // dQ rows row0..row0+15, dims 16n..16n+15
#pragma unroll
  for (int n = 0; n < ND; ++n) wmma::fill_fragment(dqf[n], 0.0f);

  issue(0);  // nsteps >= 1: q0 < T
  for (int step = 0; step < nsteps; ++step) {
    pipeline_step_begin<ST>(step, nsteps, issue);  // this step's tiles have landed for every thread
    const int k0 = step * TK;
    const bf16* Ks = stages + (step % ST) * stage_elems;
    const bf16* dSs = Ks + TK * LD;
    // dQ += dS K (unless fully masked, or padding rows: warp-uniform):
    // A[i][j] = dS(query row0 + i, key k0 + j) = dSᵀ tile [j][16 (warp % 2) + i]
    if (k0 <= row0 + 15 && row0 < T) tc_acc_atb<D, TK>(dqf, dSs + (warp / 2) * DST * PL + (warp % 2) * 16, PL, Ks);
    pipeline_step_end<ST>(step, nsteps, issue);
  }

  tc_store_rows<D>(dq + (int64_t(b) * T * NH + h) * D, int64_t(NH) * D, dqf, Sw, row0, T, 1.0f, lane);
#endif  // GT_ATTENTION_TC_BODY
}

// ---------------------------------------------------------------- launchers

// Raises a kernel's dynamic shared-memory limit once (thread-safe static init).
template <typename Kernel>
void allow_smem(Kernel kernel, size_t bytes) {
  CUDA_CHECK(cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), cudaFuncAttributeMaxDynamicSharedMemorySize,
                                  int(bytes)));
}

void check_dims(int B, int T, int NH, int NKV, int D) {
  if (!attention_cuda_supports_head_dim(D))
    fail("attention (CUDA): head dim {} is not supported (supported: 16, 32, 64, 96, 128)", D);
  if (NKV <= 0 || NH % NKV != 0) fail("attention (CUDA): {} query heads is not a multiple of {} kv heads", NH, NKV);
  if (B > 65535 || NH > 65535) fail("attention (CUDA): B={} or NH={} exceeds the grid limit 65535", B, NH);
}

// The two kernel sets behind one pair of launchers: SIMT (TC = false) and
// tensor cores (TC = true), each with its shared memory, its query tile (forward,
// dq) and key tile (dkdv).
template <int D, bool TC>
struct AttKernels;
template <int D>
struct AttKernels<D, false> {
  static constexpr auto fwd = attention_forward_kernel<D>;
  static constexpr auto dkdv = attention_backward_dkdv_kernel<D>;
  static constexpr auto dq = attention_backward_dq_kernel<D>;
  static constexpr size_t fwd_smem = Geom<D>::fwd_smem, dkdv_smem = Geom<D>::dkdv_smem, dq_smem = Geom<D>::dq_smem;
  static constexpr int q_tile = BQ, k_tile = BK, threads = kThreads;
};
template <int D>
struct AttKernels<D, true> {
  static constexpr auto fwd = attention_forward_tc_kernel<D>;
  static constexpr auto dkdv = attention_backward_dkdv_tc_kernel<D>;
  static constexpr auto dq = attention_backward_dq_tc_kernel<D>;
  static constexpr size_t fwd_smem = TcGeom<D>::fwd_smem, dkdv_smem = TcGeom<D>::dkdv_smem,
                          dq_smem = TcGeom<D>::dq_smem;
  static constexpr int q_tile = TQ, k_tile = UK, threads = kTcThreads;
};

template <int D, bool TC>
void forward_launch(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int B, int T, int NH, int NKV,
                    cudaStream_t stream) {
  using K = AttKernels<D, TC>;
  static const bool once = (allow_smem(K::fwd, K::fwd_smem), true);
  (void)once;
  const dim3 grid(unsigned(ceil_div(T, K::q_tile)), unsigned(NH), unsigned(B));
  K::fwd<<<grid, K::threads, K::fwd_smem, stream>>>(out, lse, q, k, v, T, NH, NKV, 1.0f / std::sqrt(float(D)));
  CUDA_CHECK_LAUNCH();
}

// ds_store (tensor cores only; null: dq recomputes S and dP): the dk/dv
// kernel also writes dS there and dq reads it.
template <int D, bool TC>
void backward_launch(bf16* dq, bf16* dk, bf16* dv, bf16* ds_store, const bf16* dout, const bf16* q, const bf16* k,
                     const bf16* v, const float* lse, const float* Dvec, int B, int T, int NH, int NKV,
                     cudaStream_t stream) {
  using K = AttKernels<D, TC>;
  static const bool once = (allow_smem(K::dkdv, K::dkdv_smem), allow_smem(K::dq, K::dq_smem), true);
  (void)once;
  const float scale = 1.0f / std::sqrt(float(D));
  const dim3 grid_kv(unsigned(ceil_div(T, K::k_tile)), unsigned(NKV), unsigned(B));
  const dim3 grid_q(unsigned(ceil_div(T, K::q_tile)), unsigned(NH), unsigned(B));
  if constexpr (TC) {
    K::dkdv<<<grid_kv, K::threads, K::dkdv_smem, stream>>>(dk, dv, ds_store, dout, q, k, v, lse, Dvec, T, NH, NKV,
                                                           scale);
    CUDA_CHECK_LAUNCH();
    if (ds_store) {
      constexpr auto dq_ds = attention_backward_dq_from_ds_tc_kernel<D>;
      static const bool once_ds = (allow_smem(dq_ds, DqFromDsGeom<D>::smem), true);
      (void)once_ds;
      dq_ds<<<grid_q, kTcThreads, DqFromDsGeom<D>::smem, stream>>>(dq, ds_store, k, T, NH, NKV);
      CUDA_CHECK_LAUNCH();
      return;
    }
  } else {
    GT_ASSERT(ds_store == nullptr);
    K::dkdv<<<grid_kv, K::threads, K::dkdv_smem, stream>>>(dk, dv, dout, q, k, v, lse, Dvec, T, NH, NKV, scale);
    CUDA_CHECK_LAUNCH();
  }
  K::dq<<<grid_q, K::threads, K::dq_smem, stream>>>(dq, dout, q, k, v, lse, Dvec, T, NH, NKV, scale);
  CUDA_CHECK_LAUNCH();
}

// Largest dynamic shared memory any attention kernel asks for (D = 128):
// must stay within sm_89's 99 KB opt-in limit.
static_assert(TcGeom<128>::fwd_smem <= 99 * 1024 && TcGeom<128>::dq_smem <= 99 * 1024 &&
                  TcGeom<128>::dkdv_smem <= 99 * 1024 && DqFromDsGeom<128>::smem <= 99 * 1024 &&
                  Geom<128>::dkdv_smem <= 99 * 1024,
              "attention shared memory exceeds sm_89's 99 KB per block");
// The point of the backward overlay: at head dim 64 (every shipped model but 7B)
// two backward blocks fit in an sm_89 SM (100 KB, 1 KB reserved per block).
static_assert(2 * (TcGeom<64>::dq_smem + 1024) <= 100 * 1024 && 2 * (TcGeom<64>::dkdv_smem + 1024) <= 100 * 1024,
              "attention backward at D=64 no longer fits two blocks per sm_89 SM");

// Kernel choice: -1 = not decided yet (read GALORE_ATTENTION_SIMT at the first
// call), 0 = tensor cores, 1 = SIMT fallback.
std::atomic<int> g_attention_simt{-1};

// The tensor-core kernels copy rows with 16-byte accesses: every tensor must
// be 16-byte aligned (cudaMalloc'd tensors and the backend's arena are), else
// the SIMT kernels run.
// Whether the tensor-core kernels were compiled for sm_80+ for the current
// device (checked once, on one of them: all share the build's architectures).
bool tc_compiled() {
  static const bool ok = [] {
    cudaFuncAttributes attr{};
    CUDA_CHECK(cudaFuncGetAttributes(&attr, reinterpret_cast<const void*>(attention_forward_tc_kernel<16>)));
    return attr.ptxVersion >= 80;
  }();
  return ok;
}

// f(std::integral_constant<int, D>{}) for a head dim D the kernels are
// instantiated for (check_dims has refused the others).
template <typename F>
void with_head_dim(int D, F&& f) {
  switch (D) {
    case 16: return f(std::integral_constant<int, 16>{});
    case 32: return f(std::integral_constant<int, 32>{});
    case 64: return f(std::integral_constant<int, 64>{});
    case 96: return f(std::integral_constant<int, 96>{});
    case 128: return f(std::integral_constant<int, 128>{});
  }
  GT_ASSERT(false);
}

bool tc_aligned(std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (!aligned16(p)) return false;
  return true;
}

}  // namespace

bool attention_cuda_supports_head_dim(int D) { return D == 16 || D == 32 || D == 64 || D == 96 || D == 128; }

bool attention_cuda_simt() {
  int s = g_attention_simt.load();
  if (s < 0) {
    const char* e = std::getenv("GALORE_ATTENTION_SIMT");
    int expected = -1;
    g_attention_simt.compare_exchange_strong(expected, e != nullptr && std::strcmp(e, "1") == 0 ? 1 : 0);
    s = g_attention_simt.load();
  }
  return s == 1;
}

void attention_cuda_set_simt(bool simt) { g_attention_simt.store(simt ? 1 : 0); }

void attention_forward_cuda(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int B, int T, int NH,
                            int NKV, int D, cudaStream_t stream) {
  check_dims(B, T, NH, NKV, D);
  if (B <= 0 || T <= 0 || NH <= 0) return;
  const bool tc = !attention_cuda_simt() && tc_compiled() && tc_aligned({out, q, k, v});
  with_head_dim(D, [&](auto d) {
    constexpr int HD = decltype(d)::value;
    if (tc)
      forward_launch<HD, true>(out, lse, q, k, v, B, T, NH, NKV, stream);
    else
      forward_launch<HD, false>(out, lse, q, k, v, B, T, NH, NKV, stream);
  });
}

size_t attention_backward_cuda_workspace(int B, int T, int NH) { return sizeof(float) * size_t(B) * T * NH; }

size_t attention_backward_cuda_ds_bytes(int B, int T, int NH) {
  if (B <= 0 || T <= 0 || NH <= 0) return 0;
  return sizeof(bf16) * size_t(B) * size_t(NH) * size_t(ds_tiles_per_head(T)) * DST * DST;
}

bool attention_cuda_ds_store_enabled() {
  static const bool on = [] {
    const char* e = std::getenv("GALORE_ATTENTION_DS");
    return !(e != nullptr && std::strcmp(e, "0") == 0);
  }();
  return on;
}

bool attention_backward_cuda(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k,
                             const bf16* v, const bf16* out, const float* lse, int B, int T, int NH, int NKV, int D,
                             void* workspace, size_t workspace_bytes, void* ds_store, size_t ds_store_bytes,
                             cudaStream_t stream) {
  check_dims(B, T, NH, NKV, D);
  if (B <= 0 || T <= 0 || NH <= 0) return false;
  GT_ASSERT(workspace_bytes >= attention_backward_cuda_workspace(B, T, NH));
  float* Dvec = static_cast<float*>(workspace);  // [B,NH,T]
  const int64_t rows = int64_t(B) * T * NH;
  attention_dvec_kernel<<<unsigned(ceil_div(rows, 8)), 256, 0, stream>>>(Dvec, dout, out, rows, T, NH, D);
  CUDA_CHECK_LAUNCH();
  const bool tc = !attention_cuda_simt() && tc_compiled() && tc_aligned({dq, dk, dv, dout, q, k, v});
  // The dS store when the caller lent enough (16-byte aligned) memory for it.
  bf16* ds = tc && ds_store && ds_store_bytes >= attention_backward_cuda_ds_bytes(B, T, NH) &&
                     aligned16(ds_store) && attention_cuda_ds_store_enabled()
                 ? static_cast<bf16*>(ds_store)
                 : nullptr;
  with_head_dim(D, [&](auto d) {
    constexpr int HD = decltype(d)::value;
    if (tc)
      backward_launch<HD, true>(dq, dk, dv, ds, dout, q, k, v, lse, Dvec, B, T, NH, NKV, stream);
    else
      backward_launch<HD, false>(dq, dk, dv, nullptr, dout, q, k, v, lse, Dvec, B, T, NH, NKV, stream);
  });
  return ds != nullptr;
}

}  // namespace gt
