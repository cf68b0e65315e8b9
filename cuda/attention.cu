// Causal grouped-query attention on the GPU, flash-style (no T x T buffer):
// bf16 tensors, fp32 math in shared memory and registers. CPU reference:
// cuda/attention_cpu.cpp. Query head h reads kv head h / (NH/NKV).
//
// Tiles: BQ = 32 queries x BK = 32 keys, 128 threads = 4 warps; warp w owns
// the 8 tile rows 8w..8w+7 and, when it computes scores, lane j owns key j of
// the tile. Every score row therefore lives in one warp, so row max/sum are
// warp shuffles, and a warp only reads the rows of P it wrote itself.
//
//   forward   grid (T/BQ, NH, B): a query tile walks the key tiles 0..diagonal
//             with an online softmax (running max m, sum l, rescaled
//             accumulator), then writes out = acc / l and lse = m + log(l).
//   backward  Dvec[b,h,t] = sum_d dout*out first; then
//             dk/dv: grid (T/BK, NKV, B). A key tile keeps dK, dV in registers
//               and walks, in a fixed order, the query heads of its group and
//               the query tiles from the diagonal down, recomputing
//               P = exp(S - lse) and dS = P * (dP - Dvec) * scale.
//             dq: grid (T/BQ, NH, B). A query tile walks key tiles 0..diagonal
//               recomputing dS, dq += dS K.
//             Every output element has one owner thread that sums in a fixed
//             order: no atomics, bit-reproducible. (The price: S and dP are
//             computed twice in the backward, 7 tile products instead of 5.)
//
// Shared memory per block for D = 128: forward 53 KB, dk/dv 73 KB, dq 69 KB
// (above the 48 KB default, so the launchers raise the limit; sm_89 allows
// 99 KB, sm_90 227 KB).
#include "cuda/cuda_check.h"  // first: see the note there

#include <cmath>

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

// ---------------------------------------------------------------- forward
// out[B,T,NH,D], lse[B,NH,T]; q[B,T,NH,D], k/v[B,T,NKV,D]
template <int D>
__global__ void __launch_bounds__(kThreads)
    attention_forward_kernel(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int T, int NH,
                             int NKV, float scale) {
  constexpr int KS = Geom<D>::KS, DV = Geom<D>::DV;
  extern __shared__ float4 smem4[];
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

    // acc[u][d] += sum_j P[u][j] * V[j][d]
#pragma unroll 2
    for (int jj = 0; jj < BK; jj += 4) {
      float vv[4][DV];
#pragma unroll
      for (int x = 0; x < 4; ++x)
#pragma unroll
        for (int dv = 0; dv < DV; ++dv) {
          const int d = lane + 32 * dv;
          vv[x][dv] = d < D ? Vs[(jj + x) * KS + d] : 0.0f;
        }
#pragma unroll
      for (int u = 0; u < RPW; ++u) {
        const float4 p4 = ld4(Ps + (warp * RPW + u) * BK + jj);
#pragma unroll
        for (int dv = 0; dv < DV; ++dv)
          acc[u][dv] += p4.x * vv[0][dv] + p4.y * vv[1][dv] + p4.z * vv[2][dv] + p4.w * vv[3][dv];
      }
    }
  }

#pragma unroll
  for (int u = 0; u < RPW; ++u) {
    const int i = q0 + warp * RPW + u;
    if (i >= T) continue;
    const float inv = 1.0f / l[u];
    bf16* o = out + ((int64_t(b) * T + i) * NH + h) * D;
#pragma unroll
    for (int dv = 0; dv < DV; ++dv) {
      const int d = lane + 32 * dv;
      if (d < D) o[d] = from_f32<bf16>(acc[u][dv] * inv);
    }
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
  extern __shared__ float4 smem4[];
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
#pragma unroll
    for (int x = 0; x < DV; ++x) {
      const int d = lane + 32 * x;
      if (d < D) {
        dk[base + d] = from_f32<bf16>(dka[u][x]);
        dv[base + d] = from_f32<bf16>(dva[u][x]);
      }
    }
  }
}

// dq[B,T,NH,D]; grid (ceil(T/BQ), NH, B).
template <int D>
__global__ void __launch_bounds__(kThreads)
    attention_backward_dq_kernel(bf16* dq, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                                 const float* lse, const float* Dvec, int T, int NH, int NKV, float scale) {
  constexpr int KS = Geom<D>::KS, DV = Geom<D>::DV;
  extern __shared__ float4 smem4[];
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

    // dq[u][d] += sum_j dS[u][j] K[j][d]   (j in order)
#pragma unroll 2
    for (int jj = 0; jj < BK; jj += 4) {
      float kv[4][DV];
#pragma unroll
      for (int x = 0; x < 4; ++x)
#pragma unroll
        for (int dv = 0; dv < DV; ++dv) {
          const int d = lane + 32 * dv;
          kv[x][dv] = d < D ? Ks[(jj + x) * KS + d] : 0.0f;
        }
#pragma unroll
      for (int u = 0; u < RPW; ++u) {
        const float4 s4 = ld4(dSs + (warp * RPW + u) * BK + jj);
#pragma unroll
        for (int dv = 0; dv < DV; ++dv)
          dqa[u][dv] += s4.x * kv[0][dv] + s4.y * kv[1][dv] + s4.z * kv[2][dv] + s4.w * kv[3][dv];
      }
    }
  }

#pragma unroll
  for (int u = 0; u < RPW; ++u) {
    const int i = q0 + warp * RPW + u;
    if (i >= T) continue;
    bf16* o = dq + ((int64_t(b) * T + i) * NH + h) * D;
#pragma unroll
    for (int dv = 0; dv < DV; ++dv) {
      const int d = lane + 32 * dv;
      if (d < D) o[d] = from_f32<bf16>(dqa[u][dv]);
    }
  }
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

template <int D>
void forward_launch(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int B, int T, int NH, int NKV,
                    cudaStream_t stream) {
  constexpr size_t smem = Geom<D>::fwd_smem;
  static const bool once = (allow_smem(attention_forward_kernel<D>, smem), true);
  (void)once;
  const dim3 grid(unsigned(ceil_div(T, BQ)), unsigned(NH), unsigned(B));
  attention_forward_kernel<D><<<grid, kThreads, smem, stream>>>(out, lse, q, k, v, T, NH, NKV,
                                                                1.0f / std::sqrt(float(D)));
  CUDA_CHECK_LAUNCH();
}

template <int D>
void backward_launch(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k, const bf16* v,
                     const float* lse, const float* Dvec, int B, int T, int NH, int NKV, cudaStream_t stream) {
  constexpr size_t smem_kv = Geom<D>::dkdv_smem, smem_q = Geom<D>::dq_smem;
  static const bool once = (allow_smem(attention_backward_dkdv_kernel<D>, smem_kv),
                            allow_smem(attention_backward_dq_kernel<D>, smem_q), true);
  (void)once;
  const float scale = 1.0f / std::sqrt(float(D));
  const dim3 grid_kv(unsigned(ceil_div(T, BK)), unsigned(NKV), unsigned(B));
  attention_backward_dkdv_kernel<D><<<grid_kv, kThreads, smem_kv, stream>>>(dk, dv, dout, q, k, v, lse, Dvec, T, NH,
                                                                             NKV, scale);
  CUDA_CHECK_LAUNCH();
  const dim3 grid_q(unsigned(ceil_div(T, BQ)), unsigned(NH), unsigned(B));
  attention_backward_dq_kernel<D><<<grid_q, kThreads, smem_q, stream>>>(dq, dout, q, k, v, lse, Dvec, T, NH, NKV,
                                                                         scale);
  CUDA_CHECK_LAUNCH();
}

}  // namespace

bool attention_cuda_supports_head_dim(int D) { return D == 16 || D == 32 || D == 64 || D == 96 || D == 128; }

void attention_forward_cuda(bf16* out, float* lse, const bf16* q, const bf16* k, const bf16* v, int B, int T, int NH,
                            int NKV, int D, cudaStream_t stream) {
  check_dims(B, T, NH, NKV, D);
  if (B <= 0 || T <= 0 || NH <= 0) return;
  switch (D) {
    case 16: forward_launch<16>(out, lse, q, k, v, B, T, NH, NKV, stream); break;
    case 32: forward_launch<32>(out, lse, q, k, v, B, T, NH, NKV, stream); break;
    case 64: forward_launch<64>(out, lse, q, k, v, B, T, NH, NKV, stream); break;
    case 96: forward_launch<96>(out, lse, q, k, v, B, T, NH, NKV, stream); break;
    case 128: forward_launch<128>(out, lse, q, k, v, B, T, NH, NKV, stream); break;
  }
}

size_t attention_backward_cuda_workspace(int B, int T, int NH) { return sizeof(float) * size_t(B) * T * NH; }

void attention_backward_cuda(bf16* dq, bf16* dk, bf16* dv, const bf16* dout, const bf16* q, const bf16* k,
                             const bf16* v, const bf16* out, const float* lse, int B, int T, int NH, int NKV, int D,
                             void* workspace, size_t workspace_bytes, cudaStream_t stream) {
  check_dims(B, T, NH, NKV, D);
  if (B <= 0 || T <= 0 || NH <= 0) return;
  GT_ASSERT(workspace_bytes >= attention_backward_cuda_workspace(B, T, NH));
  float* Dvec = static_cast<float*>(workspace);  // [B,NH,T]
  const int64_t rows = int64_t(B) * T * NH;
  attention_dvec_kernel<<<unsigned(ceil_div(rows, 8)), 256, 0, stream>>>(Dvec, dout, out, rows, T, NH, D);
  CUDA_CHECK_LAUNCH();
  switch (D) {
    case 16: backward_launch<16>(dq, dk, dv, dout, q, k, v, lse, Dvec, B, T, NH, NKV, stream); break;
    case 32: backward_launch<32>(dq, dk, dv, dout, q, k, v, lse, Dvec, B, T, NH, NKV, stream); break;
    case 64: backward_launch<64>(dq, dk, dv, dout, q, k, v, lse, Dvec, B, T, NH, NKV, stream); break;
    case 96: backward_launch<96>(dq, dk, dv, dout, q, k, v, lse, Dvec, B, T, NH, NKV, stream); break;
    case 128: backward_launch<128>(dq, dk, dv, dout, q, k, v, lse, Dvec, B, T, NH, NKV, stream); break;
  }
}

}  // namespace gt
