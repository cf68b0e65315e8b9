// OptimKernels on the CUDA backend (the interface and the op order are in
// optim/optim_kernels.h; the CPU implementation, optim/optim_kernels_cpu.cpp,
// is the reference). Compute dtype bf16: weights, gradients, projectors A/B and
// the GaLore direction are bf16; the projected gradient R, accumulators and
// fp32 Adam states are fp32. Everything is queued on the backend's stream;
// nothing synchronizes with the host except take_stats().
//
// Per op:
//   copy               cudaMemcpyAsync
//   project            1 cuBLASLt GEMM (Left/Right), 2 for Both via a bf16 [r, n] intermediate
//   project_factors    per chunk of tokens (tmp's rows) 2 cuBLASLt GEMMs: T = dy·A (x·Bᵀ) in bf16 [chunk, r],
//                      then R (+)= Tᵀ·x (dyᵀ·T) in fp32 (no [m, n] gradient)
//   project_back       same as project
//   accumulate         1 elementwise kernel
//   clip_and_stats     3 kernels: per-block partial sums (fixed grid), 1-block fixed-order
//                      final sum (+= the running totals on the device), scale (reads ‖g‖² there)
//   clip_adam_step/update  the Adam kernel clips g in registers (g is not written). 8-bit
//                      states: it also writes the partial sums, then the final sum (2 kernels,
//                      one pass over g); with per-tensor clipping, or fp32 states, the partial
//                      and final sums come first (‖g‖ is needed before the step)
//   take_stats         1 copy to pinned memory, 1 memset, 1 stream sync
//   adam_reset         cudaMemsetAsync (the code of 0 is one byte value per map)
//   adam_step          cuda/galore_adam8bit.cu: adam8bit_step_cuda / adam32_step_cuda (bf16 dir)
//   adam_update        cuda/galore_adam8bit.cu: fused adam8bit_update_cuda / adam32_update_cuda
//   apply_update       cuda/galore_adam8bit.cu: apply_update_cuda
//   refresh_projector  CudaProjectorRefresh::refresh (cuda/projector.h: cuBLAS + cuSOLVER)
//   reproject_moments  8-bit: dequantize m, v into fp32 scratch, CudaProjectorRefresh::reproject_moments,
//                      requantize (one block per absmax block); fp32 states: in place
//
// Determinism (bit-exact resume): no float atomics anywhere; every reduction
// has a fixed shape and order for a given tensor size.
//
// Workspace: one cudaMalloc at construction (workspace_layout below):
//   maps        2 × 256 fp32 (dynamic_map_signed / dynamic_map_unsigned)
//   stats       DevStats (running ‖g‖², non-finite count, this tensor's ‖g‖²)
//   partials    kStatBlocks × (double + uint64) for clip_and_stats
//   proj_state  the projector's persistent state (kProjectorStateBytes), when there are GaLore targets
//   -- transient: used only inside one on_grad call (or from on_grad_factors to its on_grad) --
//   grad        bf16 [max GaLore numel], only when lending the gradient buffer (shapes.lend_grad_buffer)
//   full_tmp    bf16 [max r·n over proj_type full targets] (the Both intermediate)
//   reproject   2 × fp32 [max rows·cols over GaLore targets], only for moments_on_refresh=reproject
//   projector   CudaProjectorRefresh::workspace_bytes(cfg, GaLore geometries, external) — transient
//               regions only: its state is proj_state and its cuBLAS workspace the backend GEMM's —,
//               and over it the caller's step scratch (shapes.step_scratch_bytes; used after the refresh)
// each piece rounded up to 256 bytes. The lent gradient buffer [max_numel]
// starts at `grad` and may run past it over the rest of the transient part:
// a GaLore target's gradient fits below full_tmp, and a full-rank step uses
// no transient region. At 7B that overlay saves the 0.24 GiB buffer.
#include "cuda/cuda_check.h"  // first: see the note there

#include <algorithm>
#include <climits>
#include <cstring>

#include "backend/backend.h"
#include "backend/cuda_backend.h"
#include "config/config.h"
#include "cuda/adam8bit.h"
#include "cuda/matmul.h"
#include "cuda/projector.h"
#include "cuda/quant8.h"
#include "optim/optim_kernels.h"

namespace gt {

namespace {

constexpr int kThreads = 256;
// Max blocks of the partial sums (clip_and_stats; the 8-bit kernels' statistics):
// enough loads in flight to stream g at memory speed.
constexpr int kStatBlocks = 1024;
static_assert(kStatBlocks >= kAdam8MaxCtas, "the 8-bit kernels' partial sums share the buffers");

// Device-side gradient statistics. The first two fields are what take_stats()
// copies out (and zeroes); sq_tensor is the last clip_and_stats tensor's ‖g‖².
struct DevStats {
  double sq_total;                 // running sum of squares of finite elements
  unsigned long long nonfinite;    // running count of non-finite elements
  double sq_tensor;                // this tensor's sum of squares (read by the scale kernel)
};
constexpr size_t kStatsCopyBytes = sizeof(double) + sizeof(unsigned long long);

size_t align256(size_t b) { return (b + 255) / 256 * 256; }

// Byte offsets of the workspace pieces (see the header comment).
struct WorkspaceLayout {
  size_t maps = 0, stats = 0, psq = 0, pnf = 0, proj_state = 0, grad = 0, full_tmp = 0, repro_m = 0, repro_v = 0,
         proj = 0, total = 0;
  int64_t lent_grad_elems = 0;  // the lent gradient buffer at `grad` (0: not lending)
  size_t proj_bytes = 0;  // CudaProjectorRefresh's workspace (0: no GaLore targets)
  int64_t full_tmp_elems = 0, repro_elems = 0;
};

WorkspaceLayout workspace_layout(const OptimShapes& shapes, const GaloreConfig& cfg) {
  WorkspaceLayout L;
  for (const ProjGeom& g : shapes.galore) {
    if (g.side == ProjSide::Both) L.full_tmp_elems = std::max(L.full_tmp_elems, g.r * g.n);
    if (cfg.moments_on_refresh == "reproject") L.repro_elems = std::max(L.repro_elems, g.numel());
  }
  size_t off = 0;
  auto take = [&](size_t bytes) {
    const size_t at = off;
    off += align256(bytes);
    return at;
  };
  L.maps = take(2 * 256 * sizeof(float));
  L.stats = take(sizeof(DevStats));
  L.psq = take(kStatBlocks * sizeof(double));
  L.pnf = take(kStatBlocks * sizeof(unsigned long long));
  L.proj_state = take(shapes.galore.empty() ? 0 : kProjectorStateBytes);
  // -- transient from here: the lent gradient buffer may overlay all of it --
  L.grad = take(shapes.lend_grad_buffer ? size_t(shapes.max_galore_numel) * sizeof(bf16) : 0);
  L.full_tmp = take(size_t(L.full_tmp_elems) * sizeof(bf16));
  L.repro_m = take(size_t(L.repro_elems) * sizeof(float));
  L.repro_v = take(size_t(L.repro_elems) * sizeof(float));
  // External: the refresh's cuBLAS handle shares the backend GEMM's workspace
  // (same stream) and its persistent state is proj_state above.
  L.proj_bytes = shapes.galore.empty() ? 0 : CudaProjectorRefresh::workspace_bytes(cfg, shapes.galore, true);
  L.proj = take(std::max(L.proj_bytes, shapes.step_scratch_bytes));  // 256-byte aligned, as CudaProjectorRefresh requires
  L.total = off;
  if (shapes.lend_grad_buffer) {
    L.lent_grad_elems = shapes.max_numel;
    L.total = std::max(L.total, L.grad + align256(size_t(shapes.max_numel) * sizeof(bf16)));
  }
  return L;
}

// ---- kernels: accumulation and gradient statistics ----

// acc[n] = g (first) or acc += g.
template <typename TG>
__global__ void accumulate_kernel(float* acc, const TG* g, int64_t n, bool first) {
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    acc[i] = first ? to_f32(g[i]) : acc[i] + to_f32(g[i]);
}

// Block b of gridDim.x sums the squares of the finite elements b*256 + t +
// k*gridDim.x*256 (double, in k order per thread, then a fixed tree) into
// psq[b], and counts the non-finite ones into pnf[b].
template <typename TG>
__global__ void __launch_bounds__(kThreads)
    grad_stats_partial_kernel(const TG* g, int64_t n, double* psq, unsigned long long* pnf) {
  __shared__ double sh_sq[kThreads];
  __shared__ unsigned long long sh_nf[kThreads];
  double sq = 0.0;
  unsigned long long nf = 0;
#pragma unroll 4
  for (int64_t i = int64_t(blockIdx.x) * kThreads + threadIdx.x; i < n; i += int64_t(gridDim.x) * kThreads) {
    const float x = to_f32(g[i]);
    if (finite_f32(x))
      sq += double(x) * double(x);
    else
      ++nf;
  }
  const double s = block_sum(sq, sh_sq);
  const unsigned long long c = block_sum(nf, sh_nf);
  if (threadIdx.x == 0) {
    psq[blockIdx.x] = s;
    pnf[blockIdx.x] = c;
  }
}

// One block: sums the nb partials in a fixed order, records this tensor's ‖g‖²
// and adds both to the running totals (a single thread: no atomics).
__global__ void __launch_bounds__(kThreads)
    grad_stats_final_kernel(const double* psq, const unsigned long long* pnf, int nb, DevStats* st) {
  __shared__ double sh_sq[kThreads];
  __shared__ unsigned long long sh_nf[kThreads];
  double sq = 0.0;
  unsigned long long nf = 0;
  for (int b = threadIdx.x; b < nb; b += kThreads) {
    sq += psq[b];
    nf += pnf[b];
  }
  const double s = block_sum(sq, sh_sq);
  const unsigned long long c = block_sum(nf, sh_nf);
  if (threadIdx.x == 0) {
    st->sq_tensor = s;
    st->sq_total += s;
    st->nonfinite += c;
  }
}

// g *= clip_factor(‖g‖², clip_scale, clip_norm) (cuda/adam.h, as clip_gradient),
// with ‖g‖² read from the device. Every thread computes the same factor.
template <typename TG>
__global__ void clip_scale_kernel(TG* g, int64_t n, const DevStats* st, float clip_scale, double clip_norm) {
  const float scale = clip_factor(st->sq_tensor, clip_scale, clip_norm);
  if (scale == 1.0f) return;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
    g[i] = from_f32<TG>(to_f32(g[i]) * scale);
}

unsigned grid_for(int64_t n) { return unsigned(std::min<int64_t>(ceil_div(n, kThreads), 65536)); }

// ---- tensor checks ----

void expect_cuda(const Tensor& t, DType want, const char* op, const char* what) {
  if (t.device != Device::CUDA || t.dtype != want || (!t.data && t.numel() > 0))
    fail("cuda optimizer kernels: {}: {} must be a {} CUDA tensor (got {} on {})", op, what, dtype_name(want),
         dtype_name(t.dtype), t.device == Device::CUDA ? "cuda" : "cpu");
}
void expect_float(const Tensor& t, const char* op, const char* what) {
  if (t.device != Device::CUDA || (t.dtype != DType::F32 && t.dtype != DType::BF16))
    fail("cuda optimizer kernels: {}: {} must be an fp32 or bf16 CUDA tensor (got {})", op, what,
         dtype_name(t.dtype));
}
void expect_numel(const Tensor& t, int64_t n, const char* op, const char* what) {
  if (t.numel() != n) fail("cuda optimizer kernels: {}: {} has {} elements, expected {}", op, what, t.numel(), n);
}
int as_int(int64_t v, const char* what) {
  if (v < 0 || v > INT_MAX) fail("cuda optimizer kernels: {} = {} does not fit a GEMM dimension", what, v);
  return int(v);
}
const bf16* bf(const Tensor& t) { return static_cast<const bf16*>(t.data); }

class CudaOptimKernels final : public OptimKernels {
 public:
  CudaOptimKernels(Backend& backend, const OptimShapes& shapes, const GaloreConfig& cfg)
      : layout_(workspace_layout(shapes, cfg)) {
    const CudaBackendHandles h = cuda_backend_handles(backend);
    stream_ = h.stream;
    gemm_ = h.gemm;
    try {
      CUDA_CHECK(cudaMalloc(&ws_, layout_.total));
      CUDA_CHECK(cudaMallocHost(&host_stats_, kStatsCopyBytes));
      // The maps, once; and zeroed counters.
      CUDA_CHECK(cudaMemcpyAsync(map_m(), dynamic_map_signed(), 256 * sizeof(float), cudaMemcpyHostToDevice, stream_));
      CUDA_CHECK(
          cudaMemcpyAsync(map_v(), dynamic_map_unsigned(), 256 * sizeof(float), cudaMemcpyHostToDevice, stream_));
      CUDA_CHECK(cudaMemsetAsync(stats(), 0, sizeof(DevStats), stream_));
      CUDA_CHECK(cudaStreamSynchronize(stream_));  // the host maps are pageable: finish before returning
      if (!shapes.galore.empty()) {
        CudaProjectorRefresh::External ext;
        ext.cublas_workspace = gemm_->workspace();
        ext.cublas_workspace_bytes = gemm_->workspace_bytes();
        ext.state = ws_ + layout_.proj_state;
        proj_ = std::make_unique<CudaProjectorRefresh>(stream_, cfg, shapes.galore, ws_ + layout_.proj,
                                                       layout_.proj_bytes, &ext);
      }
    } catch (...) {
      cleanup();
      throw;
    }
    code0_m_ = quant8_nearest(dynamic_map_signed(), 0.0f);
    code0_v_ = quant8_nearest(dynamic_map_unsigned(), 0.0f);
  }
  ~CudaOptimKernels() override { cleanup(); }
  CudaOptimKernels(const CudaOptimKernels&) = delete;
  CudaOptimKernels& operator=(const CudaOptimKernels&) = delete;

  DType proj_dtype() const override { return DType::BF16; }
  size_t workspace_bytes() const override { return layout_.total; }
  char* step_scratch() override { return ws_ + layout_.proj; }
  Tensor lent_grad_buffer() override {
    if (!layout_.lent_grad_elems) return {};
    return Tensor(ws_ + layout_.grad, DType::BF16, Device::CUDA, {layout_.lent_grad_elems});
  }

  void copy(const Tensor& dst, const Tensor& src) override {
    if (dst.dtype != src.dtype || dst.numel() != src.numel() || dst.device != Device::CUDA ||
        src.device != Device::CUDA)
      fail("cuda optimizer kernels: copy: {} [{}] <- {} [{}] (same dtype and size on the device required)",
           dtype_name(dst.dtype), dst.numel(), dtype_name(src.dtype), src.numel());
    if (dst.nbytes()) CUDA_CHECK(cudaMemcpyAsync(dst.data, src.data, dst.nbytes(), cudaMemcpyDeviceToDevice, stream_));
  }

  // Row-major C[M,N] (=, or += when beta 1) = op(X)[M,K] · op(Y)[K,N]: X is stored
  // row-major as [M,K] (tx false) or [K,M] (tx true), Y as [K,N] or [N,K]. A
  // row-major matrix is its transpose in column-major, so this is the
  // column-major Cᵀ[N,M] = op(Y)ᵀ · op(X)ᵀ on the same buffers.
  void rm_gemm(bool tx, bool ty, int64_t M, int64_t N, int64_t K, const bf16* X, const bf16* Y, void* C, bool c_f32,
               float beta, float alpha = 1.0f) {
    const int m = as_int(N, "N"), n = as_int(M, "M"), k = as_int(K, "K");
    gemm_->gemm(ty, tx, m, n, k, Y, ty ? k : m, X, tx ? n : k, C, c_f32, m, alpha, beta);
  }

  void project(const ProjGeom& geo, const Tensor& A, const Tensor& B, const Tensor& g, const Tensor& R,
               bool accumulate) override {
    const char* op = "project";
    if (g.dtype != DType::BF16)
      fail("cuda optimizer kernels: project: g must be the bf16 gradient (got {}; an fp32 gradient would need an "
           "[m, n] bf16 copy, which the workspace does not plan for)",
           dtype_name(g.dtype));
    expect_cuda(g, DType::BF16, op, "g");
    expect_cuda(R, DType::F32, op, "R");
    expect_numel(g, geo.m * geo.n, op, "g");
    expect_numel(R, geo.numel(), op, "R");
    check_projector(geo, A, B, op);
    const float beta = accumulate ? 1.0f : 0.0f;
    switch (geo.side) {
      case ProjSide::Left:  // R [r, n] = Aᵀ [r, m] · G [m, n]
        rm_gemm(true, false, geo.r, geo.n, geo.m, bf(A), bf(g), R.data, true, beta);
        break;
      case ProjSide::Right:  // R [m, r] = G [m, n] · Bᵀ [n, r]
        rm_gemm(false, true, geo.m, geo.r, geo.n, bf(g), bf(B), R.data, true, beta);
        break;
      case ProjSide::Both: {  // T [r, n] = Aᵀ · G (bf16), then R [r, r] = T · Bᵀ
        bf16* T = full_tmp(geo);
        rm_gemm(true, false, geo.r, geo.n, geo.m, bf(A), bf(g), T, false, 0.0f);
        rm_gemm(false, true, geo.r, geo.r, geo.n, T, bf(B), R.data, true, beta);
        break;
      }
    }
  }

  // Per chunk of `chunk` tokens: T = dy_c·A (or x_c·Bᵀ) in bf16, then R += Tᵀ·x_c (or dy_cᵀ·T), fp32.
  void project_factors(const ProjGeom& geo, const Tensor& A, const Tensor& B, const Tensor& dy, const Tensor& x,
                       const Tensor& tmp, const Tensor& R, bool accumulate) override {
    const char* op = "project_factors";
    if (!galore_factors_supported(geo)) fail("cuda optimizer kernels: project_factors: proj_type full is not supported");
    expect_cuda(dy, DType::BF16, op, "dy");
    expect_cuda(x, DType::BF16, op, "x");
    expect_cuda(tmp, DType::BF16, op, "tmp");
    expect_cuda(R, DType::F32, op, "R");
    const int64_t N = geo.m ? dy.numel() / geo.m : 0;
    expect_numel(dy, N * geo.m, op, "dy");
    expect_numel(x, N * geo.n, op, "x");
    expect_numel(R, geo.numel(), op, "R");
    check_projector(geo, A, B, op);
    const int64_t chunk = geo.r ? tmp.numel() / geo.r : 0;
    if (chunk <= 0) fail("cuda optimizer kernels: project_factors: tmp [{}] holds no row of rank {}", tmp.numel(), geo.r);
    bf16* T = static_cast<bf16*>(tmp.data);  // [rows, r]
    if (N == 0 && !accumulate) CUDA_CHECK(cudaMemsetAsync(R.data, 0, size_t(geo.numel()) * sizeof(float), stream_));
    for (int64_t c0 = 0; c0 < N; c0 += chunk) {
      const int64_t rows = std::min(chunk, N - c0);
      const bf16* dy_c = bf(dy) + c0 * geo.m;  // [rows, m]
      const bf16* x_c = bf(x) + c0 * geo.n;    // [rows, n]
      const float beta = accumulate || c0 > 0 ? 1.0f : 0.0f;
      if (geo.side == ProjSide::Left) {
        rm_gemm(false, false, rows, geo.r, geo.m, dy_c, bf(A), T, false, 0.0f);  // T [rows, r] = dy_c · A
        rm_gemm(true, false, geo.r, geo.n, rows, T, x_c, R.data, true, beta);     // R [r, n] (+)= Tᵀ · x_c
      } else {
        rm_gemm(false, true, rows, geo.r, geo.n, x_c, bf(B), T, false, 0.0f);     // T [rows, r] = x_c · Bᵀ
        rm_gemm(true, false, geo.m, geo.r, rows, dy_c, T, R.data, true, beta);    // R [m, r] (+)= dy_cᵀ · T
      }
    }
  }

  void project_back(const ProjGeom& geo, const Tensor& A, const Tensor& B, const Tensor& dir,
                    const Tensor& out) override {
    expect_cuda(out, DType::F32, "project_back", "out");
    back_project(geo, A, B, dir, out, 1.0f, 0.0f, "project_back");
  }

  // W = (1 - decay)·W - step_size·(1 - decay)·P·N: the GaLore update in the GEMM's epilogue
  // (cuBLASLt reads W as C and writes it as D, bf16, in place; fp32 accumulation).
  void project_back_update(const ProjGeom& geo, const Tensor& A, const Tensor& B, const Tensor& dir, const Tensor& w,
                           float step_size, float decay) override {
    expect_cuda(w, DType::BF16, "project_back_update", "w");
    const float beta = 1.0f - decay;
    back_project(geo, A, B, dir, w, -step_size * beta, beta, "project_back_update");
  }

  // out [m, n] (fp32 or bf16) = alpha · back-projection of dir [rows, cols] + beta · out.
  void back_project(const ProjGeom& geo, const Tensor& A, const Tensor& B, const Tensor& dir, const Tensor& out,
                    float alpha, float beta, const char* op) {
    expect_cuda(dir, DType::BF16, op, "dir");
    expect_numel(dir, geo.numel(), op, "dir");
    expect_numel(out, geo.m * geo.n, op, "out");
    check_projector(geo, A, B, op);
    const bool out_f32 = out.dtype == DType::F32;
    switch (geo.side) {
      case ProjSide::Left:  // out [m, n] = A [m, r] · dir [r, n]
        rm_gemm(false, false, geo.m, geo.n, geo.r, bf(A), bf(dir), out.data, out_f32, beta, alpha);
        break;
      case ProjSide::Right:  // out [m, n] = dir [m, r] · B [r, n]
        rm_gemm(false, false, geo.m, geo.n, geo.r, bf(dir), bf(B), out.data, out_f32, beta, alpha);
        break;
      case ProjSide::Both: {  // T [r, n] = dir [r, r] · B (bf16), then out = A · T (as galore_project_back)
        bf16* T = full_tmp(geo);
        rm_gemm(false, false, geo.r, geo.n, geo.r, bf(dir), bf(B), T, false, 0.0f);
        rm_gemm(false, false, geo.m, geo.n, geo.r, bf(A), T, out.data, out_f32, beta, alpha);
        break;
      }
    }
  }

  void accumulate(const Tensor& acc, const Tensor& g, bool first) override {
    expect_cuda(acc, DType::F32, "accumulate", "acc");
    expect_float(g, "accumulate", "g");
    expect_numel(g, acc.numel(), "accumulate", "g");
    const int64_t n = acc.numel();
    if (n <= 0) return;
    if (g.dtype == DType::F32)
      accumulate_kernel<float><<<grid_for(n), kThreads, 0, stream_>>>(acc.f32(), g.f32(), n, first);
    else
      accumulate_kernel<bf16><<<grid_for(n), kThreads, 0, stream_>>>(acc.f32(), g.as<const bf16>(), n, first);
    CUDA_CHECK_LAUNCH();
  }

  void clip_and_stats(const Tensor& g, double clip_scale, double clip_norm) override {
    expect_float(g, "clip_and_stats", "g");
    const int64_t n = g.numel();
    if (n <= 0) return;
    if (g.dtype == DType::F32)
      clip_impl(g.f32(), n, clip_scale, clip_norm);
    else
      clip_impl(g.as<bf16>(), n, clip_scale, clip_norm);
  }

  GradStats take_stats() override {
    CUDA_CHECK(cudaMemcpyAsync(host_stats_, stats(), kStatsCopyBytes, cudaMemcpyDeviceToHost, stream_));
    CUDA_CHECK(cudaMemsetAsync(stats(), 0, kStatsCopyBytes, stream_));
    CUDA_CHECK(cudaStreamSynchronize(stream_));  // the one synchronizing op
    GradStats s;
    std::memcpy(&s.sq_norm, host_stats_, sizeof(double));
    unsigned long long nf = 0;
    std::memcpy(&nf, host_stats_ + sizeof(double), sizeof(nf));
    s.nonfinite = int64_t(nf);
    return s;
  }

  void adam_reset(const AdamState& st) override {
    check_state(st, "adam_reset");
    if (st.n <= 0) return;
    if (st.q8) {
      // Every element takes the map's code of 0 (a single byte value); absmax 0.
      CUDA_CHECK(cudaMemsetAsync(st.m.data, code0_m_, size_t(st.n), stream_));
      CUDA_CHECK(cudaMemsetAsync(st.v.data, code0_v_, size_t(st.n), stream_));
      CUDA_CHECK(cudaMemsetAsync(st.absmax_m.data, 0, st.absmax_m.nbytes(), stream_));
      CUDA_CHECK(cudaMemsetAsync(st.absmax_v.data, 0, st.absmax_v.nbytes(), stream_));
    } else {
      CUDA_CHECK(cudaMemsetAsync(st.m.data, 0, st.m.nbytes(), stream_));
      CUDA_CHECK(cudaMemsetAsync(st.v.data, 0, st.v.nbytes(), stream_));
    }
  }

  void adam_step(const AdamState& st, const Tensor& g, const Tensor& dir, float beta1, float beta2,
                 float eps) override {
    run_step("adam_step", st, g, dir, beta1, beta2, eps, nullptr);
  }

  void adam_update(const AdamState& st, const Tensor& g, const Tensor& w, float beta1, float beta2, float eps,
                   float step_size, float decay, uint64_t sr_seed) override {
    run_update("adam_update", st, g, w, beta1, beta2, eps, step_size, decay, sr_seed, nullptr);
  }

  // The Adam kernel multiplies g by the clip factor in registers (g is not
  // written). 8-bit states: one pass over g, the kernel also writing the
  // statistics' partial sums; two with per-tensor clipping, whose factor needs
  // ‖g‖ first. fp32 states: a statistics pass, then the step.
  void clip_adam_step(const AdamState& st, const Tensor& g, const Tensor& dir, double clip_scale, double clip_norm,
                      float beta1, float beta2, float eps) override {
    const ClipArgs clip{clip_scale, clip_norm};
    run_step("clip_adam_step", st, g, dir, beta1, beta2, eps, &clip);
  }

  void clip_adam_update(const AdamState& st, const Tensor& g, const Tensor& w, double clip_scale, double clip_norm,
                        float beta1, float beta2, float eps, float step_size, float decay, uint64_t sr_seed) override {
    const ClipArgs clip{clip_scale, clip_norm};
    run_update("clip_adam_update", st, g, w, beta1, beta2, eps, step_size, decay, sr_seed, &clip);
  }

  void apply_update(const Tensor& w, const Tensor& d, float step_size, float decay, uint64_t sr_seed) override {
    expect_float(w, "apply_update", "w");
    expect_cuda(d, DType::F32, "apply_update", "d");
    expect_numel(d, w.numel(), "apply_update", "d");
    if (w.dtype == DType::F32)
      apply_update_cuda(w.f32(), d.f32(), w.numel(), step_size, decay, sr_seed, stream_);
    else
      apply_update_cuda(w.as<bf16>(), d.f32(), w.numel(), step_size, decay, sr_seed, stream_);
  }

  void refresh_projector(const GaloreConfig& cfg, const ProjGeom& geo, const Tensor& g, uint64_t seed,
                         const Tensor& A_old, const Tensor& B_old, const Tensor& A, const Tensor& B) override {
    const char* op = "refresh_projector";
    expect_cuda(g, DType::BF16, op, "g");
    expect_numel(g, geo.m * geo.n, op, "g");
    check_projector(geo, A, B, op);
    const bool first = !A_old.data && !B_old.data;
    if (!first) check_projector(geo, A_old, B_old, op);
    if ((A.data && A.data == A_old.data) || (B.data && B.data == B_old.data))
      fail("cuda optimizer kernels: refresh_projector: the new projector may not alias the old one");
    projector(op).refresh(cfg, geo, bf(g), seed, side_ptr(geo, A_old, true), side_ptr(geo, B_old, false),
                          mut_side_ptr(geo, A, true), mut_side_ptr(geo, B, false));
  }

  void reproject_moments(const ProjGeom& geo, const Tensor& A_old, const Tensor& B_old, const Tensor& A,
                         const Tensor& B, const AdamState& st) override {
    const char* op = "reproject_moments";
    check_state(st, op);
    expect_numel(st.m, geo.numel(), op, "m");
    if (st.q8 && st.n > layout_.repro_elems)
      fail("cuda optimizer kernels: reproject_moments: {} elements but the workspace holds {} (built without "
           "moments_on_refresh=reproject?)",
           st.n, layout_.repro_elems);
    check_projector(geo, A_old, B_old, op);
    check_projector(geo, A, B, op);
    CudaProjectorRefresh& proj = projector(op);  // (all checks before any write)
    // fp32 moments [rows, cols]: 8-bit states are dequantized into the workspace
    // first and requantized afterwards (as AdamMoments::get/set).
    float* m = st.q8 ? ws_f32(layout_.repro_m) : st.m.f32();
    float* v = st.q8 ? ws_f32(layout_.repro_v) : st.v.f32();
    if (st.q8) {
      dequantize_blockwise_cuda(map_m(), st.m.as<const uint8_t>(), st.absmax_m.f32(), st.n, m, stream_);
      dequantize_blockwise_cuda(map_v(), st.v.as<const uint8_t>(), st.absmax_v.f32(), st.n, v, stream_);
    }
    proj.reproject_moments(geo, side_ptr(geo, A_old, true), side_ptr(geo, B_old, false), side_ptr(geo, A, true),
                           side_ptr(geo, B, false), m, v);
    if (st.q8) {
      quantize_blockwise_cuda(map_m(), m, st.n, st.m.as<uint8_t>(), st.absmax_m.f32(), stream_);
      quantize_blockwise_cuda(map_v(), v, st.n, st.v.as<uint8_t>(), st.absmax_v.f32(), stream_);
    }
  }

 private:
  CudaProjectorRefresh& projector(const char* op) {
    if (!proj_) fail("cuda optimizer kernels: {}: built without GaLore targets (OptimShapes::galore empty)", op);
    return *proj_;
  }
  // A (left) or B (right) of a projector as a device pointer, null for the unused side.
  static const bf16* side_ptr(const ProjGeom& geo, const Tensor& t, bool a_side) {
    const bool used = a_side ? geo.side != ProjSide::Right : geo.side != ProjSide::Left;
    return used ? static_cast<const bf16*>(t.data) : nullptr;
  }
  static bf16* mut_side_ptr(const ProjGeom& geo, const Tensor& t, bool a_side) {
    return const_cast<bf16*>(side_ptr(geo, t, a_side));
  }

  // ‖g‖² and the non-finite count of g into the device statistics (sq_tensor, and the running totals).
  template <typename TG>
  void stats_impl(const TG* g, int64_t n) {
    // Fixed grid for a given n (so the partial sums, and their order, are too).
    const int nb = int(std::min<int64_t>(kStatBlocks, ceil_div(n, kThreads)));
    grad_stats_partial_kernel<TG><<<nb, kThreads, 0, stream_>>>(g, n, psq(), pnf());
    CUDA_CHECK_LAUNCH();
    finish_stats(nb);
  }
  // Sums nb partials (psq, pnf) into the device statistics.
  void finish_stats(int nb) {
    grad_stats_final_kernel<<<1, kThreads, 0, stream_>>>(psq(), pnf(), nb, stats());
    CUDA_CHECK_LAUNCH();
  }

  template <typename TG>
  void clip_impl(TG* g, int64_t n, float clip_scale, double clip_norm) {
    stats_impl(g, n);
    if (clip_scale == 1.0f && !(clip_norm > 0.0)) return;  // the factor is 1 whatever ‖g‖ is
    clip_scale_kernel<TG><<<grid_for(n), kThreads, 0, stream_>>>(g, n, stats(), clip_scale, clip_norm);
    CUDA_CHECK_LAUNCH();
  }

  struct ClipArgs {
    double scale, norm;  // clip_scale, clip_norm of clip_and_stats
  };
  // adam_step / clip_adam_step: checks, then the step on g [n] F32 into dir (bf16 or F32);
  // clip null: no clipping and no statistics.
  void run_step(const char* op, const AdamState& st, const Tensor& g, const Tensor& dir, float beta1, float beta2,
                float eps, const ClipArgs* clip) {
    check_state(st, op);
    expect_cuda(g, DType::F32, op, "g");
    expect_float(dir, op, "dir");
    expect_numel(g, st.n, op, "g");
    if (dir.numel() < st.n) fail("cuda optimizer kernels: {}: dir has {} < {} elements", op, dir.numel(), st.n);
    if (st.n <= 0) return;
    const AdamClip c = clip ? fused_clip(g.f32(), st, *clip) : AdamClip{};
    if (dir.dtype == DType::BF16)
      step_impl(st, g.f32(), dir.as<bf16>(), beta1, beta2, eps, c);
    else
      step_impl(st, g.f32(), dir.f32(), beta1, beta2, eps, c);
    if (c.psq) finish_stats(adam8bit_ctas(st.n));
  }

  // adam_update / clip_adam_update: as run_step, for every dtype pair of g and w.
  void run_update(const char* op, const AdamState& st, const Tensor& g, const Tensor& w, float beta1, float beta2,
                  float eps, float step_size, float decay, uint64_t sr_seed, const ClipArgs* clip) {
    check_state(st, op);
    expect_float(g, op, "g");
    expect_float(w, op, "w");
    expect_numel(g, st.n, op, "g");
    expect_numel(w, st.n, op, "w");
    if (st.n <= 0) return;
    const bool g32 = g.dtype == DType::F32, w32 = w.dtype == DType::F32;
    AdamClip c;
    if (clip)
      c = g32 ? fused_clip(g.f32(), st, *clip) : fused_clip(g.as<const bf16>(), st, *clip);
    if (g32 && w32)
      update_impl(st, g.f32(), w.f32(), beta1, beta2, eps, step_size, decay, sr_seed, c);
    else if (g32)
      update_impl(st, g.f32(), w.as<bf16>(), beta1, beta2, eps, step_size, decay, sr_seed, c);
    else if (w32)
      update_impl(st, g.as<const bf16>(), w.f32(), beta1, beta2, eps, step_size, decay, sr_seed, c);
    else
      update_impl(st, g.as<const bf16>(), w.as<bf16>(), beta1, beta2, eps, step_size, decay, sr_seed, c);
    if (c.psq) finish_stats(adam8bit_ctas(st.n));
  }

  // The clipping of an Adam kernel's pass: a statistics pass first with
  // per-tensor clipping (the kernel reads ‖g‖² on the device) or fp32 states;
  // otherwise the 8-bit kernel writes the statistics' partials itself.
  template <typename TG>
  AdamClip fused_clip(const TG* g, const AdamState& st, const ClipArgs& clip) {
    AdamClip c;
    c.clip_scale = float(clip.scale);
    c.clip_norm = clip.norm;
    if (clip.norm > 0.0 || !st.q8) {
      stats_impl(g, st.n);
      c.tensor_sq = &stats()->sq_tensor;
    } else {
      c.psq = psq();
      c.pnf = pnf();
    }
    return c;
  }

  template <typename TD>
  void step_impl(const AdamState& st, const float* g, TD* dir, float beta1, float beta2, float eps,
                 const AdamClip& clip) {
    if (st.q8)
      adam8bit_step_cuda(g, dir, st.m.as<uint8_t>(), st.v.as<uint8_t>(), st.absmax_m.f32(), st.absmax_v.f32(), st.n,
                         map_m(), map_v(), beta1, beta2, eps, stream_, clip);
    else
      adam32_step_cuda(g, dir, st.m.f32(), st.v.f32(), st.n, beta1, beta2, eps, stream_, clip);
  }

  template <typename TG, typename TW>
  void update_impl(const AdamState& st, const TG* g, TW* w, float beta1, float beta2, float eps, float step_size,
                   float decay, uint64_t sr_seed, const AdamClip& clip) {
    if (st.q8)
      adam8bit_update_cuda(g, w, st.m.as<uint8_t>(), st.v.as<uint8_t>(), st.absmax_m.f32(), st.absmax_v.f32(), st.n,
                           map_m(), map_v(), beta1, beta2, eps, step_size, decay, sr_seed, stream_, clip);
    else
      adam32_update_cuda(g, w, st.m.f32(), st.v.f32(), st.n, beta1, beta2, eps, step_size, decay, sr_seed, stream_,
                         clip);
  }

  void check_state(const AdamState& st, const char* op) {
    if (st.q8) {
      expect_cuda(st.m, DType::U8, op, "m codes");
      expect_cuda(st.v, DType::U8, op, "v codes");
      expect_cuda(st.absmax_m, DType::F32, op, "m absmax");
      expect_cuda(st.absmax_v, DType::F32, op, "v absmax");
      expect_numel(st.absmax_m, quant8_blocks(st.n), op, "m absmax");
      expect_numel(st.absmax_v, quant8_blocks(st.n), op, "v absmax");
    } else {
      expect_cuda(st.m, DType::F32, op, "m");
      expect_cuda(st.v, DType::F32, op, "v");
    }
    expect_numel(st.m, st.n, op, "m");
    expect_numel(st.v, st.n, op, "v");
  }

  void check_projector(const ProjGeom& geo, const Tensor& A, const Tensor& B, const char* op) {
    if (geo.side != ProjSide::Right) {
      expect_cuda(A, DType::BF16, op, "A");
      expect_numel(A, geo.a_numel(), op, "A");
    }
    if (geo.side != ProjSide::Left) {
      expect_cuda(B, DType::BF16, op, "B");
      expect_numel(B, geo.b_numel(), op, "B");
    }
  }

  bf16* full_tmp(const ProjGeom& geo) {
    if (geo.r * geo.n > layout_.full_tmp_elems)
      fail("cuda optimizer kernels: proj_type full target [{}, {}] rank {} (side {}) is larger than the planned "
           "intermediate ({} elements)",
           geo.m, geo.n, geo.r, proj_side_name(geo.side), layout_.full_tmp_elems);
    return reinterpret_cast<bf16*>(ws_ + layout_.full_tmp);
  }

  float* ws_f32(size_t off) { return reinterpret_cast<float*>(ws_ + off); }
  float* map_m() { return ws_f32(layout_.maps); }
  float* map_v() { return ws_f32(layout_.maps) + 256; }
  DevStats* stats() { return reinterpret_cast<DevStats*>(ws_ + layout_.stats); }
  double* psq() { return reinterpret_cast<double*>(ws_ + layout_.psq); }
  unsigned long long* pnf() { return reinterpret_cast<unsigned long long*>(ws_ + layout_.pnf); }

  void cleanup() {
    if (stream_) cudaStreamSynchronize(stream_);  // queued kernels may still use the workspace
    proj_.reset();  // before its workspace goes
    if (ws_) cudaFree(ws_);
    if (host_stats_) cudaFreeHost(host_stats_);
    ws_ = nullptr;
    host_stats_ = nullptr;
  }

  WorkspaceLayout layout_;
  cudaStream_t stream_ = nullptr;
  CudaGemm* gemm_ = nullptr;
  char* ws_ = nullptr;           // [layout_.total] device bytes
  char* host_stats_ = nullptr;   // [kStatsCopyBytes] pinned
  std::unique_ptr<CudaProjectorRefresh> proj_;  // on ws_ + layout_.proj; null without GaLore targets
  uint8_t code0_m_ = 0, code0_v_ = 0;
};

}  // namespace

std::unique_ptr<OptimKernels> make_cuda_optim_kernels(Backend& backend, const OptimShapes& shapes,
                                                      const GaloreConfig& cfg) {
  return std::make_unique<CudaOptimKernels>(backend, shapes, cfg);
}

size_t cuda_optim_kernels_workspace_bytes(const OptimShapes& shapes, const GaloreConfig& cfg) {
  return workspace_layout(shapes, cfg).total;
}

}  // namespace gt
