// Every CUDA kernel against its CPU reference (cuda/*_cpu.cpp, fp32) on the
// same bf16-rounded inputs, then the whole CUDA backend against the CPU
// backend op by op. Tolerance: ||out - ref|| / ||ref|| <= 1e-2 for bf16
// outputs, tighter for fp32 ones. Outputs are poisoned first (every element
// must be written), sizes are odd / not multiples of the tiles, and the
// backward ops are run twice and must agree bit for bit.
// Without a device every test skips and says why.
#include "tests/gpu/test_gpu_util.h"

#ifdef GALORE_WITH_CUDA

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>

#include "backend/backend.h"
#include "backend/cuda_backend.h"
#include "cuda/adam8bit.h"
#include "cuda/attention.h"
#include "cuda/crossentropy.h"
#include "cuda/embedding.h"
#include "cuda/matmul.h"
#include "cuda/residual.h"
#include "cuda/rmsnorm.h"
#include "cuda/rope.h"
#include "cuda/swiglu.h"

using namespace gt;
using namespace gt::test;

namespace {

constexpr double kBf16Tol = 1e-2;  // bf16 outputs
constexpr double kF32Tol = 1e-4;   // fp32 outputs computed from bf16 inputs (sum order only)

std::string tag(const char* name, std::initializer_list<long> dims) {
  std::string s = name;
  for (long d : dims) s += " " + std::to_string(d);
  return s;
}

}  // namespace

// ============================================================ embedding
TEST_F(GpuTest, EmbeddingForward) {
  for (int C : {67, 64, 8, 12}) {  // 12: rows only 8-byte aligned, so no 16-byte copies
    const int N = 37, V = 50;
    SCOPED_TRACE(tag("N C V", {N, C, V}));
    const auto tokens = rand_tokens(N, V);
    const auto wte = randn_bf16(size_t(V) * C);
    std::vector<float> ref(size_t(N) * C);
    embedding_forward_cpu(ref.data(), tokens.data(), wte.data(), N, C);
    DevBuf<int32_t> d_tok(N);
    d_tok.upload(tokens);
    Bf16Buf d_wte(wte), d_out(size_t(N) * C);
    d_out.poison();
    embedding_forward_cuda(d_out.p, d_tok.p, d_wte.p, N, C, stream);
    sync();
    expect_close("out", d_out.download_f32(), ref, 0.0);  // a gather: exact
  }
}

TEST_F(GpuTest, EmbeddingBackwardDeterministic) {
  for (int C : {67, 128}) {
    for (bool f32_grad : {true, false}) {
      const int N = 301, V = 13;  // many repeats per token
      SCOPED_TRACE(tag("N C V f32_grad", {N, C, V, f32_grad}));
      auto tokens = rand_tokens(N, V);
      for (auto& t : tokens) t = t == 5 ? 6 : t;  // token 5 never appears: its row must stay as it was
      const auto dout = randn_bf16(size_t(N) * C);
      const auto init = randn_bf16(size_t(V) * C, 0.1f);
      std::vector<float> ref = init;
      embedding_backward_cpu(ref.data(), dout.data(), tokens.data(), N, C);

      DevBuf<int32_t> d_tok(N);
      d_tok.upload(tokens);
      Bf16Buf d_dout(dout);
      const size_t ws_bytes = embedding_backward_cuda_workspace(N, V);
      DevBuf<char> ws(ws_bytes);
      if (f32_grad) {
        DevBuf<float> d_dwte(size_t(V) * C);
        std::vector<std::vector<float>> runs;
        for (int rep = 0; rep < 2; ++rep) {
          d_dwte.upload(init);
          ws.poison();
          embedding_backward_cuda(d_dwte.p, d_dout.p, d_tok.p, N, C, V, ws.p, ws_bytes, stream);
          sync();
          runs.push_back(d_dwte.download());
        }
        expect_close("dwte fp32", runs[0], ref, kF32Tol);
        EXPECT_TRUE(bitwise_equal(runs[0], runs[1])) << "embedding backward is not deterministic";
      } else {
        Bf16Buf d_dwte(size_t(V) * C);
        std::vector<std::vector<uint16_t>> runs;
        for (int rep = 0; rep < 2; ++rep) {
          d_dwte.upload_f32(init);
          ws.poison();
          embedding_backward_cuda(d_dwte.p, d_dout.p, d_tok.p, N, C, V, ws.p, ws_bytes, stream);
          sync();
          runs.push_back(d_dwte.download_bits());
        }
        expect_close("dwte bf16", d_dwte.download_f32(), ref, kBf16Tol);
        EXPECT_TRUE(bitwise_equal(runs[0], runs[1])) << "embedding backward is not deterministic";
      }
    }
  }
}

// ============================================================ rmsnorm
TEST_F(GpuTest, RmsnormForward) {
  for (int N : {37, 1}) {
    for (int C : {67, 256}) {
      SCOPED_TRACE(tag("N C", {N, C}));
      const float eps = 1e-6f;
      const auto inp = randn_bf16(size_t(N) * C);
      const auto w = randn_bf16(C, 0.1f, 1.0f);
      std::vector<float> ref(size_t(N) * C), ref_rstd(N);
      rmsnorm_forward_cpu(ref.data(), ref_rstd.data(), inp.data(), w.data(), N, C, eps);
      Bf16Buf d_inp(inp), d_w(w), d_out(size_t(N) * C);
      DevBuf<float> d_rstd(N);
      d_out.poison();
      d_rstd.poison();
      rmsnorm_forward_cuda(d_out.p, d_rstd.p, d_inp.p, d_w.p, N, C, eps, stream);
      sync();
      expect_close("out", d_out.download_f32(), ref, kBf16Tol);
      expect_close("rstd", d_rstd.download(), ref_rstd, kF32Tol);
    }
  }
}

TEST_F(GpuTest, RmsnormBackwardDeterministic) {
  for (int N : {37, 300}) {
    for (int C : {67, 256, 2056}) {  // 2056: the 8-channel loop wraps
      for (bool f32_grad : {true, false}) {
        SCOPED_TRACE(tag("N C f32_grad", {N, C, f32_grad}));
        const auto inp = randn_bf16(size_t(N) * C);
        const auto w = randn_bf16(C, 0.1f, 1.0f);
        const auto dout = randn_bf16(size_t(N) * C);
        const auto dinp0 = randn_bf16(size_t(N) * C, 0.1f);
        const auto dw0 = randn_bf16(C, 0.1f);
        std::vector<float> tmp(size_t(N) * C), rstd(N);
        rmsnorm_forward_cpu(tmp.data(), rstd.data(), inp.data(), w.data(), N, C, 1e-6f);
        std::vector<float> ref_dinp = dinp0, ref_dw = dw0;
        rmsnorm_backward_cpu(ref_dinp.data(), ref_dw.data(), dout.data(), inp.data(), w.data(), rstd.data(), N, C);

        Bf16Buf d_inp(inp), d_w(w), d_dout(dout), d_dinp(size_t(N) * C);
        DevBuf<float> d_rstd(N);
        d_rstd.upload(rstd);
        const size_t ws_bytes = rmsnorm_backward_cuda_workspace(N, C);
        DevBuf<char> ws(ws_bytes);
        std::vector<std::vector<uint16_t>> dinp_runs;
        std::vector<std::vector<float>> dw_runs;
        for (int rep = 0; rep < 2; ++rep) {
          d_dinp.upload_f32(dinp0);
          ws.poison();
          if (f32_grad) {
            DevBuf<float> d_dw(C);
            d_dw.upload(dw0);
            rmsnorm_backward_cuda(d_dinp.p, d_dw.p, d_dout.p, d_inp.p, d_w.p, d_rstd.p, N, C, ws.p, ws_bytes, stream);
            sync();
            dw_runs.push_back(d_dw.download());
          } else {
            Bf16Buf d_dw(dw0);
            rmsnorm_backward_cuda(d_dinp.p, d_dw.p, d_dout.p, d_inp.p, d_w.p, d_rstd.p, N, C, ws.p, ws_bytes, stream);
            sync();
            dw_runs.push_back(d_dw.download_f32());
          }
          dinp_runs.push_back(d_dinp.download_bits());
        }
        expect_close("dinp", d_dinp.download_f32(), ref_dinp, kBf16Tol);
        expect_close("dweight", dw_runs[0], ref_dw, f32_grad ? kF32Tol : kBf16Tol);
        EXPECT_TRUE(bitwise_equal(dinp_runs[0], dinp_runs[1])) << "rmsnorm dinp is not deterministic";
        EXPECT_TRUE(bitwise_equal(dw_runs[0], dw_runs[1])) << "rmsnorm dweight is not deterministic";
      }
    }
  }
}

// ============================================================ matmul
struct MatShape {
  int N, C, OC;
};
const MatShape kMatShapes[] = {{37, 67, 45}, {64, 128, 96}, {1, 64, 33}, {130, 72, 8}};

// Both GEMM paths: cuBLASLt (the default) and cublasGemmEx (shapes Lt has no
// algorithm for, or refuses).
// With a residual, it is the GEMM's C operand (out of place; on the cublasGemmEx
// path copied into out first).
TEST_F(GpuTest, MatmulForward) {
  CudaGemm g(stream);
  for (bool lt : {true, false})
  for (bool with_residual : {false, true})
  for (const auto& s : kMatShapes) {
    g.set_cublaslt(lt);
    SCOPED_TRACE(tag("N C OC cublaslt residual", {s.N, s.C, s.OC, lt, with_residual}));
    const auto inp = randn_bf16(size_t(s.N) * s.C);
    const auto w = randn_bf16(size_t(s.OC) * s.C, 0.1f);
    const auto res = randn_bf16(size_t(s.N) * s.OC);
    std::vector<float> ref(size_t(s.N) * s.OC);
    matmul_forward_cpu(ref.data(), inp.data(), w.data(), s.N, s.C, s.OC);
    if (with_residual)
      for (size_t i = 0; i < ref.size(); ++i) ref[i] += res[i];
    Bf16Buf d_inp(inp), d_w(w), d_out(size_t(s.N) * s.OC), d_res(res);
    d_out.poison();
    matmul_forward_cuda(g, d_out.p, d_inp.p, d_w.p, s.N, s.C, s.OC, with_residual ? d_res.p : nullptr);
    sync();
    expect_close("out", d_out.download_f32(), ref, kBf16Tol);
    if (with_residual) expect_close("residual untouched", d_res.download_f32(), res, 0.0);
  }
}

// galore-bench --gemm-report's timing: calls grouped by shape, results
// unchanged by the events around them, and each shape timed alone.
TEST_F(GpuTest, GemmTimingGroupsCallsByShape) {
  CudaGemm g(stream);
  const int N = 64, C = 96, OC = 40;
  const auto inp = randn_bf16(size_t(N) * C), w = randn_bf16(size_t(OC) * C, 0.1f);
  std::vector<float> ref(size_t(N) * OC);
  matmul_forward_cpu(ref.data(), inp.data(), w.data(), N, C, OC);
  Bf16Buf d_inp(inp), d_w(w), d_out(size_t(N) * OC), d_dinp(size_t(N) * C);
  g.start_timing(8);
  d_out.poison();
  matmul_forward_cuda(g, d_out.p, d_inp.p, d_w.p, N, C, OC);
  matmul_forward_cuda(g, d_out.p, d_inp.p, d_w.p, N, C, OC);
  matmul_backward_cuda(g, d_dinp.p, nullptr, false, d_out.p, d_inp.p, d_w.p, N, C, OC, false, false);
  std::vector<GemmTiming> rows = g.finish_timing();
  expect_close("out", d_out.download_f32(), ref, kBf16Tol);
  ASSERT_EQ(rows.size(), 2u);
  int calls = 0;
  for (const GemmTiming& t : rows) {
    calls += t.calls;
    EXPECT_GE(t.ms, 0.0);
    EXPECT_FALSE(t.beta);
    if (t.calls == 2) {  // the forward: out^T[OC, N] = W[OC, C] (stored transposed) * inp^T
      EXPECT_EQ(t.m, OC);
      EXPECT_EQ(t.n, N);
      EXPECT_EQ(t.k, C);
      EXPECT_TRUE(t.trans_a);
    }
  }
  EXPECT_EQ(calls, 3);
  EXPECT_GE(rows[0].ms, rows[1].ms) << "largest total first";
  g.time_candidates(rows, 4, 2);
  for (const GemmTiming& t : rows) {
    EXPECT_GE(t.chosen_ms, 0.0);
    EXPECT_GE(t.candidates, 1);
    EXPECT_GE(t.best_rank, 0);
    EXPECT_LT(t.best_rank, t.candidates);
  }
  // Timing is off again: later calls are not recorded.
  matmul_forward_cuda(g, d_out.p, d_inp.p, d_w.p, N, C, OC);
  EXPECT_TRUE(g.finish_timing().empty());
}

// training.gemm_autotune (cuda/matmul_autotune.cu): after autotuning, the
// GEMMs still match the CPU reference; the exported table, imported into a
// fresh CudaGemm, gives bit-identical results (the same algorithms); a
// corrupt, truncated or foreign table is refused and changes nothing; shapes
// too large for the scratch are skipped. On the emulator's two_algos mode the
// heuristic's first algorithm is the slow one, so the tuner must switch both
// shapes (and their results change in the last bits: another sum order).
TEST_F(GpuTest, GemmAutotuneKeepsResultsAndRoundTripsItsTable) {
  const int N = 64, C = 96, OC = 40;
  const auto inp = randn_bf16(size_t(N) * C), w = randn_bf16(size_t(OC) * C, 0.1f);
  const auto dout = randn_bf16(size_t(N) * OC);
  std::vector<float> ref_out(size_t(N) * OC), ref_dinp(size_t(N) * C);
  matmul_forward_cpu(ref_out.data(), inp.data(), w.data(), N, C, OC);
  matmul_backward_cpu(ref_dinp.data(), nullptr, dout.data(), inp.data(), w.data(), N, C, OC, false, false);
  Bf16Buf d_inp(inp), d_w(w), d_dout(dout), d_out(size_t(N) * OC), d_dinp(size_t(N) * C);
  // Both GEMMs through gg; their outputs' bits.
  auto run = [&](CudaGemm& gg) {
    d_out.poison();
    d_dinp.poison();
    matmul_forward_cuda(gg, d_out.p, d_inp.p, d_w.p, N, C, OC);
    matmul_backward_cuda(gg, d_dinp.p, nullptr, false, d_dout.p, d_inp.p, d_w.p, N, C, OC, false, false);
    GT_CUDA_OK(cudaStreamSynchronize(stream));
    expect_close("out", d_out.download_f32(), ref_out, kBf16Tol);
    expect_close("dinp", d_dinp.download_f32(), ref_dinp, kBf16Tol);
    return std::make_pair(d_out.download_bits(), d_dinp.download_bits());
  };
  CudaGemm g(stream);
  const auto heuristic = run(g);
  DevBuf<char> scratch(size_t(1) << 20);
  const GemmTuneResult r = g.autotune(scratch.p, scratch.bytes(), 4, 2);
  EXPECT_EQ(r.shapes, 2);
  EXPECT_EQ(r.skipped, 0);
  EXPECT_GT(r.ms_before, 0.0);
  EXPECT_GT(r.ms_after, 0.0);
  EXPECT_LE(r.ms_after, r.ms_before);
  const auto tuned = run(g);
  const char* emu = std::getenv("EMU_CUBLASLT");
  if (emu && std::string(emu) == "two_algos") {
    EXPECT_EQ(r.changed, 2);
    EXPECT_LT(r.ms_after, 0.5 * r.ms_before);  // the first algorithm sleeps 2 ms a call
    EXPECT_NE(tuned, heuristic);
  }
  const std::vector<uint8_t> table = g.export_algos();
  ASSERT_FALSE(table.empty());

  CudaGemm same(stream);
  EXPECT_EQ(same.import_algos(table), "");
  EXPECT_EQ(run(same), tuned);  // bit for bit: the algorithms came with the table

  CudaGemm fresh(stream);
  std::vector<uint8_t> bad = table;
  bad[0] ^= 1;  // the magic
  EXPECT_NE(fresh.import_algos(bad), "");
  bad = table;
  bad.pop_back();
  EXPECT_NE(fresh.import_algos(bad), "");
  bad = table;
  bad[8] ^= 0x20;  // the device name's first letter: another device
  const std::string why = fresh.import_algos(bad);
  EXPECT_NE(why.find("made on"), std::string::npos) << why;
  EXPECT_EQ(run(fresh), heuristic);  // nothing was taken: the heuristic's algorithms

  CudaGemm small(stream);
  run(small);
  const GemmTuneResult none = small.autotune(scratch.p, 256, 4, 2);
  EXPECT_EQ(none.shapes, 0);
  EXPECT_EQ(none.skipped, 2);
  EXPECT_EQ(run(small), heuristic);
}

TEST_F(GpuTest, MatmulBackwardDeterministic) {
  CudaGemm g(stream);
  for (bool lt : {true, false})
  for (const auto& s : kMatShapes) {
    g.set_cublaslt(lt);
    for (bool acc : {false, true}) {
      for (bool f32_grad : {true, false}) {
        SCOPED_TRACE(tag("N C OC accumulate f32_grad cublaslt", {s.N, s.C, s.OC, acc, f32_grad, lt}));
        const auto inp = randn_bf16(size_t(s.N) * s.C);
        const auto w = randn_bf16(size_t(s.OC) * s.C, 0.1f);
        const auto dout = randn_bf16(size_t(s.N) * s.OC);
        const auto dinp0 = randn_bf16(size_t(s.N) * s.C, 0.1f);
        const auto dw0 = randn_bf16(size_t(s.OC) * s.C, 0.1f);
        std::vector<float> ref_dinp = dinp0, ref_dw = dw0;
        matmul_backward_cpu(ref_dinp.data(), ref_dw.data(), dout.data(), inp.data(), w.data(), s.N, s.C, s.OC, acc,
                            acc);
        Bf16Buf d_inp(inp), d_w(w), d_dout(dout), d_dinp(size_t(s.N) * s.C), d_dw16(size_t(s.OC) * s.C);
        DevBuf<float> d_dw32(size_t(s.OC) * s.C);
        std::vector<std::vector<uint16_t>> dinp_runs;
        std::vector<std::vector<float>> dw_runs;
        for (int rep = 0; rep < 2; ++rep) {
          if (acc) {
            d_dinp.upload_f32(dinp0);
            d_dw16.upload_f32(dw0);
            d_dw32.upload(dw0);
          } else {
            d_dinp.poison();
            d_dw16.poison();
            d_dw32.poison();
          }
          void* dw = f32_grad ? static_cast<void*>(d_dw32.p) : static_cast<void*>(d_dw16.p);
          matmul_backward_cuda(g, d_dinp.p, dw, f32_grad, d_dout.p, d_inp.p, d_w.p, s.N, s.C, s.OC, acc, acc);
          sync();
          dinp_runs.push_back(d_dinp.download_bits());
          dw_runs.push_back(f32_grad ? d_dw32.download() : d_dw16.download_f32());
        }
        expect_close("dinp", d_dinp.download_f32(), ref_dinp, kBf16Tol);
        expect_close("dweight", dw_runs[0], ref_dw, f32_grad ? 1e-3 : kBf16Tol);
        EXPECT_TRUE(bitwise_equal(dinp_runs[0], dinp_runs[1])) << "matmul dinp is not deterministic";
        EXPECT_TRUE(bitwise_equal(dw_runs[0], dw_runs[1])) << "matmul dweight is not deterministic";
      }
    }
  }
  // Only one of the two outputs.
  const MatShape s = kMatShapes[0];
  const auto inp = randn_bf16(size_t(s.N) * s.C);
  const auto w = randn_bf16(size_t(s.OC) * s.C, 0.1f);
  const auto dout = randn_bf16(size_t(s.N) * s.OC);
  std::vector<float> ref_dinp(size_t(s.N) * s.C), ref_dw(size_t(s.OC) * s.C);
  matmul_backward_cpu(ref_dinp.data(), ref_dw.data(), dout.data(), inp.data(), w.data(), s.N, s.C, s.OC, false, false);
  Bf16Buf d_inp(inp), d_w(w), d_dout(dout), d_dinp(size_t(s.N) * s.C);
  DevBuf<float> d_dw(size_t(s.OC) * s.C);
  d_dinp.poison();
  matmul_backward_cuda(g, d_dinp.p, nullptr, true, d_dout.p, d_inp.p, d_w.p, s.N, s.C, s.OC, false, false);
  d_dw.poison();
  matmul_backward_cuda(g, nullptr, d_dw.p, true, d_dout.p, d_inp.p, d_w.p, s.N, s.C, s.OC, false, false);
  sync();
  expect_close("dinp only", d_dinp.download_f32(), ref_dinp, kBf16Tol);
  expect_close("dweight only", d_dw.download(), ref_dw, 1e-3);
}

// ============================================================ rope
TEST_F(GpuTest, Rope) {
  for (int D : {16, 64, 128, 6}) {  // 6: the per-pair kernel; the others 8 pairs per thread
    const int B = 2, T = 37, H = 3;
    const float theta = 10000.0f;
    SCOPED_TRACE(tag("B T H D", {B, T, H, D}));
    const size_t n = size_t(B) * T * H * D;
    const auto x = randn_bf16(n);
    std::vector<float> cos_t(size_t(T) * D / 2), sin_t(size_t(T) * D / 2);
    rope_table_host(cos_t.data(), sin_t.data(), T, D, theta);
    DevBuf<float> d_cos(cos_t.size()), d_sin(sin_t.size());
    d_cos.upload(cos_t);
    d_sin.upload(sin_t);
    for (bool fwd : {true, false}) {
      std::vector<float> ref = x;
      if (fwd)
        rope_forward_cpu(ref.data(), B, T, H, D, theta);
      else
        rope_backward_cpu(ref.data(), B, T, H, D, theta);
      Bf16Buf d_x(x);
      if (fwd)
        rope_forward_cuda(d_x.p, d_cos.p, d_sin.p, B, T, H, D, stream);
      else
        rope_backward_cuda(d_x.p, d_cos.p, d_sin.p, B, T, H, D, stream);
      sync();
      expect_close(fwd ? "forward" : "backward", d_x.download_f32(), ref, kBf16Tol);
    }
  }
}

// ============================================================ attention
// Every attention test runs twice: on the tensor-core kernels (the default)
// and on the SIMT fallback (GALORE_ATTENTION_SIMT=1), chosen through
// attention_cuda_set_simt; the guard restores the tensor-core default.
struct AttShape {
  int B, T, NH, NKV, D;
};
const AttShape kAttShapes[] = {
    {2, 37, 8, 2, 64},   // GQA, T not a multiple of any tile (32, 64)
    {1, 1, 4, 4, 16},    // T = 1
    {2, 64, 4, 1, 128},  // multi-query, two full 32-tiles = one full 64-tile
    {1, 100, 2, 2, 32},  // 64-tiles: one full, one partial
    {1, 45, 6, 3, 96},
    {1, 129, 2, 1, 16},  // one row past two 64-tiles
    {1, 256, 2, 1, 128}, // the benchmarks' sequence length, largest head dim
    {1, 130, 2, 1, 64},  // head dim 64 (backward tiles overlaid) over several tiles and steps
};
namespace {
struct AttPath {
  explicit AttPath(bool simt) { attention_cuda_set_simt(simt); }
  ~AttPath() { attention_cuda_set_simt(false); }
};

void att_sync(cudaStream_t stream) {
  GT_CUDA_OK(cudaStreamSynchronize(stream));
  GT_CUDA_OK(cudaGetLastError());
}

// qk_std: q and k drawn with this deviation. At 1 the scaled scores are about
// N(0, 1), so a row's max rarely moves by more than the tensor-core forward's
// slack (kSoftmaxSlack) after the first key step; at 8 they are about
// N(0, 4096): the max moves often and far (past exp's fp32 range, 88, so a
// reference max that never moved would overflow), and the output goes
// through the rescale path.
void attention_forward_test(cudaStream_t stream, bool simt, float qk_std = 1.0f) {
  const AttPath path(simt);
  ASSERT_EQ(attention_cuda_simt(), simt);
  for (const auto& s : kAttShapes) {
    SCOPED_TRACE(tag(simt ? "SIMT: B T NH NKV D" : "tensor cores: B T NH NKV D", {s.B, s.T, s.NH, s.NKV, s.D}));
    const size_t nq = size_t(s.B) * s.T * s.NH * s.D, nkv = size_t(s.B) * s.T * s.NKV * s.D;
    const auto q = randn_bf16(nq, qk_std), k = randn_bf16(nkv, qk_std), v = randn_bf16(nkv);
    std::vector<float> ref(nq), ref_lse(size_t(s.B) * s.NH * s.T);
    attention_forward_cpu(ref.data(), ref_lse.data(), q.data(), k.data(), v.data(), s.B, s.T, s.NH, s.NKV, s.D);
    Bf16Buf d_q(q), d_k(k), d_v(v), d_out(nq);
    DevBuf<float> d_lse(ref_lse.size());
    d_out.poison();
    d_lse.poison();
    attention_forward_cuda(d_out.p, d_lse.p, d_q.p, d_k.p, d_v.p, s.B, s.T, s.NH, s.NKV, s.D, stream);
    att_sync(stream);
    expect_close("out", d_out.download_f32(), ref, kBf16Tol);
    expect_close("lse", d_lse.download(), ref_lse, kF32Tol);
  }
}

// ds_store: also lend the dS store (the tensor-core path then computes dq from
// it; SIMT ignores it). Both runs must match the reference and repeat bit for bit.
void attention_backward_test(cudaStream_t stream, bool simt, bool ds_store) {
  const AttPath path(simt);
  ASSERT_EQ(attention_cuda_simt(), simt);
  if (ds_store) ASSERT_TRUE(attention_cuda_ds_store_enabled()) << "GALORE_ATTENTION_DS=0 is set";
  for (const auto& s : kAttShapes) {
    SCOPED_TRACE(tag(simt ? "SIMT: B T NH NKV D" : "tensor cores: B T NH NKV D", {s.B, s.T, s.NH, s.NKV, s.D}));
    const size_t nq = size_t(s.B) * s.T * s.NH * s.D, nkv = size_t(s.B) * s.T * s.NKV * s.D;
    const auto q = randn_bf16(nq), k = randn_bf16(nkv), v = randn_bf16(nkv), dout = randn_bf16(nq);
    std::vector<float> out(nq), lse(size_t(s.B) * s.NH * s.T);
    attention_forward_cpu(out.data(), lse.data(), q.data(), k.data(), v.data(), s.B, s.T, s.NH, s.NKV, s.D);
    out = round_bf16(out);  // the kernel gets a bf16 `out`: give the reference the same
    std::vector<float> ref_dq(nq), ref_dk(nkv), ref_dv(nkv);
    attention_backward_cpu(ref_dq.data(), ref_dk.data(), ref_dv.data(), dout.data(), q.data(), k.data(), v.data(),
                           out.data(), lse.data(), s.B, s.T, s.NH, s.NKV, s.D);
    Bf16Buf d_q(q), d_k(k), d_v(v), d_dout(dout), d_out(out), d_dq(nq), d_dk(nkv), d_dv(nkv);
    DevBuf<float> d_lse(lse.size());
    d_lse.upload(lse);
    const size_t ws_bytes = attention_backward_cuda_workspace(s.B, s.T, s.NH);
    DevBuf<char> ws(ws_bytes);
    const size_t ds_bytes = ds_store ? attention_backward_cuda_ds_bytes(s.B, s.T, s.NH) : 0;
    DevBuf<char> ds(std::max<size_t>(ds_bytes, 1));
    std::vector<uint16_t> first[3];
    for (int rep = 0; rep < 2; ++rep) {
      d_dq.poison();
      d_dk.poison();
      d_dv.poison();
      ws.poison();
      ds.poison();  // entries dq reads must all be written (or zero-filled) by the kernels
      const bool used = attention_backward_cuda(d_dq.p, d_dk.p, d_dv.p, d_dout.p, d_q.p, d_k.p, d_v.p, d_out.p, d_lse.p,
                                                s.B, s.T, s.NH, s.NKV, s.D, ws.p, ws_bytes, ds_store ? ds.p : nullptr,
                                                ds_bytes, stream);
      EXPECT_EQ(used, ds_store && !simt) << "the dS store is used exactly when lent on the tensor-core path";
      att_sync(stream);
      if (rep == 0) {
        first[0] = d_dq.download_bits();
        first[1] = d_dk.download_bits();
        first[2] = d_dv.download_bits();
      } else {
        EXPECT_TRUE(bitwise_equal(first[0], d_dq.download_bits())) << "dq is not deterministic";
        EXPECT_TRUE(bitwise_equal(first[1], d_dk.download_bits())) << "dk is not deterministic";
        EXPECT_TRUE(bitwise_equal(first[2], d_dv.download_bits())) << "dv is not deterministic";
      }
    }
    expect_close("dq", d_dq.download_f32(), ref_dq, kBf16Tol);
    expect_close("dk", d_dk.download_f32(), ref_dk, kBf16Tol);
    expect_close("dv", d_dv.download_f32(), ref_dv, kBf16Tol);
    if (ds_store && !simt) {
      // The store was used (written over its poison), and one element too small is ignored.
      std::vector<uint8_t> h(ds_bytes);
      GT_CUDA_OK(cudaMemcpy(h.data(), ds.p, ds_bytes, cudaMemcpyDeviceToHost));
      EXPECT_LT(std::count(h.begin(), h.end(), uint8_t(0xFF)), int64_t(ds_bytes)) << "dS store not written";
      ds.poison();
      EXPECT_FALSE(attention_backward_cuda(d_dq.p, d_dk.p, d_dv.p, d_dout.p, d_q.p, d_k.p, d_v.p, d_out.p, d_lse.p, s.B,
                                           s.T, s.NH, s.NKV, s.D, ws.p, ws_bytes, ds.p, ds_bytes - 2, stream));
      att_sync(stream);
      GT_CUDA_OK(cudaMemcpy(h.data(), ds.p, ds_bytes, cudaMemcpyDeviceToHost));
      EXPECT_EQ(std::count(h.begin(), h.end(), uint8_t(0xFF)), int64_t(ds_bytes)) << "a too-small store was used";
      expect_close("dq (store too small)", d_dq.download_f32(), ref_dq, kBf16Tol);
    }
  }
}

}  // namespace

TEST_F(GpuTest, AttentionForward) { attention_forward_test(stream, false); }
TEST_F(GpuTest, AttentionForwardSimt) { attention_forward_test(stream, true); }
TEST_F(GpuTest, AttentionForwardLargeScores) { attention_forward_test(stream, false, 8.0f); }
TEST_F(GpuTest, AttentionBackwardDeterministic) { attention_backward_test(stream, false, false); }
TEST_F(GpuTest, AttentionBackwardDsStoreDeterministic) { attention_backward_test(stream, false, true); }
TEST_F(GpuTest, AttentionBackwardDeterministicSimt) { attention_backward_test(stream, true, false); }

TEST_F(GpuTest, AttentionRejectsUnsupportedHeadDim) {
  EXPECT_FALSE(attention_cuda_supports_head_dim(48));
  EXPECT_THROW(attention_forward_cuda(nullptr, nullptr, nullptr, nullptr, nullptr, 1, 4, 2, 2, 48, stream),
               std::exception);
}

// ============================================================ swiglu, residual
TEST_F(GpuTest, Swiglu) {
  for (int64_t n : {int64_t(1001), int64_t(4096), int64_t(7)}) {
    for (int offset : {0, 1}) {  // offset 1: views not 16-byte aligned (scalar path)
      SCOPED_TRACE(tag("n offset", {long(n), offset}));
      const auto gate = randn_bf16(size_t(n + offset), 2.0f), up = randn_bf16(static_cast<size_t>(n + offset));
      const auto dout = randn_bf16(static_cast<size_t>(n + offset));
      std::vector<float> ref(static_cast<size_t>(n)), ref_dg(static_cast<size_t>(n)), ref_du(static_cast<size_t>(n));
      swiglu_forward_cpu(ref.data(), gate.data() + offset, up.data() + offset, n);
      swiglu_backward_cpu(ref_dg.data(), ref_du.data(), dout.data() + offset, gate.data() + offset,
                          up.data() + offset, n);
      Bf16Buf d_gate(gate), d_up(up), d_dout(dout), d_out(static_cast<size_t>(n + offset)), d_dg(static_cast<size_t>(n + offset)),
          d_du(static_cast<size_t>(n + offset));
      d_out.poison();
      d_dg.poison();
      d_du.poison();
      swiglu_forward_cuda(d_out.p + offset, d_gate.p + offset, d_up.p + offset, n, stream);
      swiglu_backward_cuda(d_dg.p + offset, d_du.p + offset, d_dout.p + offset, d_gate.p + offset, d_up.p + offset, n,
                           stream);
      sync();
      auto strip = [&](std::vector<float> v) { return std::vector<float>(v.begin() + offset, v.end()); };
      expect_close("out", strip(d_out.download_f32()), ref, kBf16Tol);
      expect_close("dgate", strip(d_dg.download_f32()), ref_dg, kBf16Tol);
      expect_close("dup", strip(d_du.download_f32()), ref_du, kBf16Tol);
      // In place, as the model calls it (dgate/dup over gate/up): the same bits.
      const auto dg_out = d_dg.download_f32(), du_out = d_du.download_f32();
      swiglu_backward_cuda(d_gate.p + offset, d_up.p + offset, d_dout.p + offset, d_gate.p + offset, d_up.p + offset,
                           n, stream);
      sync();
      EXPECT_EQ(strip(d_gate.download_f32()), strip(dg_out));
      EXPECT_EQ(strip(d_up.download_f32()), strip(du_out));
    }
  }
}

TEST_F(GpuTest, ResidualAdd) {
  for (int64_t n : {int64_t(1001), int64_t(4096)}) {
    SCOPED_TRACE(tag("n", {long(n)}));
    const auto a = randn_bf16(static_cast<size_t>(n)), b = randn_bf16(static_cast<size_t>(n));
    std::vector<float> ref(static_cast<size_t>(n));
    residual_add_cpu(ref.data(), a.data(), b.data(), n);
    Bf16Buf d_a(a), d_b(b), d_out(static_cast<size_t>(n));
    d_out.poison();
    residual_add_cuda(d_out.p, d_a.p, d_b.p, n, stream);
    residual_add_cuda(d_a.p, d_a.p, d_b.p, n, stream);  // in place: out aliases a
    sync();
    expect_close("out", d_out.download_f32(), ref, kBf16Tol);
    expect_close("in place", d_a.download_f32(), ref, kBf16Tol);
  }
}

TEST_F(GpuTest, SumSquaresScaleConvert) {
  const int64_t n = 100003;
  const auto x = randn_bf16(static_cast<size_t>(n));
  double ref = 0.0;
  for (float v : x) ref += double(v) * v;
  Bf16Buf d_x(x);
  DevBuf<float> d_x32(static_cast<size_t>(n));
  d_x32.upload(x);
  DevBuf<double> d_res(2);
  DevBuf<char> ws(sum_squares_cuda_workspace());
  sum_squares_cuda(d_res.p, d_x.p, n, ws.p, stream);
  sum_squares_cuda(d_res.p + 1, d_x32.p, n, ws.p, stream);
  sync();
  auto res = d_res.download();
  EXPECT_NEAR(res[0], ref, 1e-9 * ref);
  EXPECT_NEAR(res[1], ref, 1e-9 * ref);
  sum_squares_cuda(d_res.p, d_x.p, n, ws.p, stream);
  sync();
  EXPECT_EQ(d_res.download()[0], res[0]) << "sum_squares is not deterministic";
  // accumulate: one double add onto the result, in stream order
  sum_squares_cuda(d_res.p + 1, d_x.p, n, ws.p, stream, /*accumulate=*/true);
  sync();
  EXPECT_EQ(d_res.download()[1], res[1] + res[0]) << "accumulate must add exactly the tensor's sum";

  scale_cuda(d_x.p, 0.5f, n, stream);
  scale_cuda(d_x32.p, 0.5f, n, stream);
  DevBuf<float> d_back(static_cast<size_t>(n));
  d_back.poison();
  convert_bf16_to_f32_cuda(d_back.p, d_x.p, n, stream);
  Bf16Buf d_conv(static_cast<size_t>(n));
  d_conv.poison();
  convert_f32_to_bf16_cuda(d_conv.p, d_x32.p, n, stream);
  sync();
  std::vector<float> half(x.size());
  for (size_t i = 0; i < x.size(); ++i) half[i] = x[i] * 0.5f;  // exact in bf16
  expect_close("scale bf16 + convert", d_back.download(), half, 0.0);
  expect_close("scale fp32 + convert", d_conv.download_f32(), half, 0.0);
}

// ============================================================ classifier
TEST_F(GpuTest, ClassifierChunkedDeterministic) {
  CudaGemm g(stream);
  const int N = 37, C = 64, V = 301;
  auto cpu = make_cpu_backend();
  for (int R : {16, 37}) {
    for (bool logits_f32 : {true, false}) {
      for (bool acc : {false, true}) {
        SCOPED_TRACE(tag("R logits_f32 accumulate", {R, logits_f32, acc}));
        const auto x = randn_bf16(size_t(N) * C, 0.5f);
        const auto w = randn_bf16(size_t(V) * C, 0.1f);
        const auto targets = rand_tokens(N, V);
        const auto dw0 = randn_bf16(size_t(V) * C, 0.01f);
        const float dloss = 1.0f / N;
        // Reference: the CPU backend's classifier (fp32 logits).
        std::vector<float> ref_loss(N), ref_dx(size_t(N) * C), ref_dw = dw0, ref_logits(size_t(R) * V);
        std::vector<float> xc = x, wc = w;
        std::vector<int32_t> tc = targets;
        auto T = [](void* p, std::initializer_list<int64_t> d, DType t = DType::F32) {
          return Tensor(p, t, Device::CPU, d);
        };
        cpu->classifier(T(ref_loss.data(), {N}), T(ref_dx.data(), {N, C}), T(ref_dw.data(), {V, C}),
                        T(xc.data(), {N, C}), T(wc.data(), {V, C}), T(tc.data(), {N}, DType::I32), dloss, acc,
                        T(ref_logits.data(), {R, V}));

        Bf16Buf d_x(x), d_w(w), d_dx(size_t(N) * C);
        DevBuf<int32_t> d_t(N);
        d_t.upload(targets);
        DevBuf<float> d_loss(N), d_dw(size_t(V) * C);
        DevBuf<char> d_logits(size_t(R) * V * (logits_f32 ? 4 : 2));
        std::vector<float> first_loss, first_dw;
        std::vector<uint16_t> first_dx;
        for (int rep = 0; rep < 2; ++rep) {
          d_loss.poison();
          d_dx.poison();
          d_logits.poison();
          if (acc)
            d_dw.upload(dw0);
          else
            d_dw.poison();
          classifier_cuda(g, d_loss.p, d_dx.p, d_dw.p, true, d_x.p, d_w.p, d_t.p, N, C, V, dloss, acc, d_logits.p,
                          logits_f32, R);
          sync();
          if (rep == 0) {
            first_loss = d_loss.download();
            first_dw = d_dw.download();
            first_dx = d_dx.download_bits();
          } else {
            EXPECT_TRUE(bitwise_equal(first_loss, d_loss.download())) << "losses not deterministic";
            EXPECT_TRUE(bitwise_equal(first_dw, d_dw.download())) << "dweight not deterministic";
            EXPECT_TRUE(bitwise_equal(first_dx, d_dx.download_bits())) << "dx not deterministic";
          }
        }
        expect_close("losses", first_loss, ref_loss, logits_f32 ? 1e-4 : kBf16Tol);
        expect_close("dx", d_dx.download_f32(), ref_dx, kBf16Tol);
        expect_close("dweight", first_dw, ref_dw, kBf16Tol);
      }
    }
  }
  // Forward only with R == N: fp32 logits stay in the workspace; losses alone.
  {
    const auto x = randn_bf16(size_t(N) * C, 0.5f);
    const auto w = randn_bf16(size_t(V) * C, 0.1f);
    const auto targets = rand_tokens(N, V);
    std::vector<float> ref_logits(size_t(N) * V), ref_loss(N);
    matmul_forward_cpu(ref_logits.data(), x.data(), w.data(), N, C, V);
    crossentropy_forward_backward_cpu(ref_loss.data(), nullptr, ref_logits.data(), targets.data(), N, V, 1.0f);
    Bf16Buf d_x(x), d_w(w);
    DevBuf<int32_t> d_t(N);
    d_t.upload(targets);
    DevBuf<float> d_loss(N), d_logits(size_t(N) * V);
    d_loss.poison();
    d_logits.poison();
    classifier_cuda(g, d_loss.p, nullptr, nullptr, true, d_x.p, d_w.p, d_t.p, N, C, V, 1.0f, false, d_logits.p, true,
                    N);
    sync();
    expect_close("forward-only losses", d_loss.download(), ref_loss, 1e-4);
    expect_close("forward-only logits", d_logits.download(), ref_logits, 1e-4);
  }
}

// ============================================================ optimizer steps
TEST_F(GpuTest, Adam8bitStep) {
  const int64_t n = 5000;  // not a multiple of the 256-element absmax block
  const int64_t nb = quant8_blocks(n);
  const float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-6f;
  const float* map_m = dynamic_map_signed();
  const float* map_v = dynamic_map_unsigned();
  // Initial states: quantized random moments.
  auto m0 = randn_bf16(size_t(n), 0.01f);
  auto v0 = randn_bf16(size_t(n), 1e-4f);
  for (float& x : v0) x = x * x;
  std::vector<uint8_t> cm(static_cast<size_t>(n)), cv(static_cast<size_t>(n));
  std::vector<float> am(static_cast<size_t>(nb)), av(static_cast<size_t>(nb));
  quantize_blockwise_cpu(map_m, m0.data(), n, cm.data(), am.data());
  quantize_blockwise_cpu(map_v, v0.data(), n, cv.data(), av.data());
  DevBuf<uint8_t> d_cm(static_cast<size_t>(n)), d_cv(static_cast<size_t>(n));
  DevBuf<float> d_am(static_cast<size_t>(nb)), d_av(static_cast<size_t>(nb)), d_g(static_cast<size_t>(n)),
      d_dir(static_cast<size_t>(n)), d_map_m(256), d_map_v(256);
  d_cm.upload(cm);
  d_cv.upload(cv);
  d_am.upload(am);
  d_av.upload(av);
  d_map_m.upload(std::vector<float>(map_m, map_m + 256));
  d_map_v.upload(std::vector<float>(map_v, map_v + 256));
  for (int step = 0; step < 3; ++step) {
    SCOPED_TRACE(tag("step", {step}));
    auto g = randn_bf16(size_t(n), 0.01f);
    g[17] = NAN;
    g[4000] = INFINITY;
    std::vector<float> dir(static_cast<size_t>(n));
    adam8bit_step_cpu(g.data(), dir.data(), cm.data(), cv.data(), am.data(), av.data(), n, map_m, map_v, beta1, beta2,
                      eps);
    d_g.upload(g);
    d_dir.poison();
    adam8bit_step_cuda(d_g.p, d_dir.p, d_cm.p, d_cv.p, d_am.p, d_av.p, n, d_map_m.p, d_map_v.p, beta1, beta2, eps,
                       stream);
    sync();
    const auto gdir = d_dir.download();
    expect_close("dir", gdir, dir, 1e-3);
    EXPECT_EQ(gdir[17], 0.0f);
    EXPECT_EQ(gdir[4000], 0.0f);
    expect_close("absmax m", d_am.download(), am, 1e-3);
    expect_close("absmax v", d_av.download(), av, 1e-3);
    const auto gcm = d_cm.download(), gcv = d_cv.download();
    int64_t same = 0;
    for (int64_t i = 0; i < n; ++i) same += (gcm[size_t(i)] == cm[size_t(i)]) + (gcv[size_t(i)] == cv[size_t(i)]);
    EXPECT_GE(double(same) / double(2 * n), 0.995) << "8-bit codes differ from the CPU reference";
    // Keep both sides on the same state: continue from the GPU's codes.
    cm = gcm;
    cv = gcv;
    am = d_am.download();
    av = d_av.download();
  }
}

TEST_F(GpuTest, Adam32StepAndApply) {
  const int64_t n = 3001;
  const float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-6f;
  auto g = randn_bf16(size_t(n), 0.01f);
  g[5] = NAN;
  auto m = randn_bf16(size_t(n), 0.01f), v = randn_bf16(size_t(n), 1e-4f);
  for (float& x : v) x = x * x;
  DevBuf<float> d_g(static_cast<size_t>(n)), d_dir(static_cast<size_t>(n)), d_m(static_cast<size_t>(n)),
      d_v(static_cast<size_t>(n));
  d_g.upload(g);
  d_m.upload(m);
  d_v.upload(v);
  d_dir.poison();
  std::vector<float> dir(static_cast<size_t>(n));
  adam32_step_cpu(g.data(), dir.data(), m.data(), v.data(), n, beta1, beta2, eps);
  adam32_step_cuda(d_g.p, d_dir.p, d_m.p, d_v.p, n, beta1, beta2, eps, stream);
  sync();
  expect_close("dir", d_dir.download(), dir, 1e-5);
  expect_close("m", d_m.download(), m, 1e-5);
  expect_close("v", d_v.download(), v, 1e-5);

  // The AdamW update (reference: optim/adamw8bit.cpp apply_adamw_direction).
  const float step_size = 1e-3f, decay = 1e-4f;
  const auto w0 = randn_bf16(size_t(n));
  std::vector<float> ref = w0, ref_nog = w0;
  for (int64_t i = 0; i < n; ++i) {
    ref_nog[size_t(i)] -= step_size * dir[size_t(i)];
    ref_nog[size_t(i)] -= decay * ref_nog[size_t(i)];
    if (!std::isfinite(g[size_t(i)])) continue;
    ref[size_t(i)] = ref_nog[size_t(i)];
  }
  DevBuf<float> d_w(static_cast<size_t>(n));
  Bf16Buf d_w16(w0);
  d_w.upload(w0);
  d_dir.upload(dir);
  apply_adamw_direction_cuda(d_w.p, d_dir.p, d_g.p, n, step_size, decay, stream);
  apply_adamw_direction_cuda(d_w16.p, d_dir.p, nullptr, n, step_size, decay, stream);
  sync();
  const auto w = d_w.download();
  expect_close("apply fp32", w, ref, 1e-6);
  EXPECT_EQ(w[5], w0[5]) << "a weight with a non-finite gradient must stay as it was";
  expect_close("apply bf16 (no gating)", d_w16.download_f32(), round_bf16(ref_nog), 1e-2);
}

// ============================================================ the backend
// The CUDA backend through the Backend interface against the CPU backend, op
// by op, on a small LLaMA-shaped problem with odd sizes.
namespace {

// Tensors of one backend, freed at the end.
struct Arena {
  Backend* be;
  std::vector<void*> ptrs;
  explicit Arena(Backend* b) : be(b) {}
  ~Arena() {
    for (void* p : ptrs) be->release(p);
  }
  Tensor make(std::initializer_list<int64_t> dims, DType t) {
    Tensor x(nullptr, t, be->device(), dims);
    x.data = be->alloc(std::max<size_t>(x.nbytes(), 16));
    ptrs.push_back(x.data);
    return x;
  }
};

// A CPU (fp32) and a CUDA (bf16 unless told) tensor holding the same values.
struct Pair {
  Tensor c, g;
};

class BackendPair {
 public:
  BackendPair() : cpu_(make_cpu_backend()), gpu_(make_cuda_backend_or_null()), ca_(cpu_.get()), ga_(gpu_.get()) {}
  Backend& cpu() { return *cpu_; }
  Backend& gpu() { return *gpu_; }
  // Random bf16-rounded values in both.
  Pair rand(std::initializer_list<int64_t> dims, float stddev = 1.0f, float mean = 0.0f, DType gdt = DType::BF16) {
    Pair p{ca_.make(dims, DType::F32), ga_.make(dims, gdt)};
    const auto h = randn_bf16(size_t(p.c.numel()), stddev, mean);
    std::copy(h.begin(), h.end(), p.c.f32());
    gpu_->upload_f32(p.g, h.data());
    return p;
  }
  // Outputs: CPU zero, CUDA poisoned (NaN bytes).
  Pair out(std::initializer_list<int64_t> dims, DType gdt = DType::BF16) {
    Pair p{ca_.make(dims, DType::F32), ga_.make(dims, gdt)};
    std::fill(p.c.f32(), p.c.f32() + p.c.numel(), 0.0f);
    GT_CUDA_OK(cudaMemset(p.g.data, 0xFF, p.g.nbytes()));
    GT_CUDA_OK(cudaDeviceSynchronize());  // the backend's stream does not wait for the legacy stream
    return p;
  }
  Pair tokens(std::initializer_list<int64_t> dims, int V) {
    Pair p{ca_.make(dims, DType::I32), ga_.make(dims, DType::I32)};
    const auto h = rand_tokens(size_t(p.c.numel()), V);
    std::copy(h.begin(), h.end(), p.c.as<int32_t>());
    gpu_->upload(p.g.data, h.data(), p.g.nbytes());
    return p;
  }
  std::vector<float> host(const Tensor& g) {
    std::vector<float> h(size_t(g.numel()));
    gpu_->download_f32(h.data(), g);
    return h;
  }
  void expect(const char* what, const Pair& p, double tol) {
    expect_close(what, host(p.g), std::vector<float>(p.c.f32(), p.c.f32() + p.c.numel()), tol);
  }

 private:
  std::unique_ptr<Backend> cpu_, gpu_;
  Arena ca_, ga_;
};

}  // namespace

TEST(GpuBackend, MatchesCpuBackendOpByOp) {
  GT_REQUIRE_GPU();
  ASSERT_TRUE(cuda_device_available());
  BackendPair bp;
  Backend& cpu = bp.cpu();
  Backend& gpu = bp.gpu();
  EXPECT_EQ(gpu.device(), Device::CUDA);
  EXPECT_EQ(gpu.compute_dtype(), DType::BF16);
  const int B = 2, T = 19, C = 64, NH = 4, NKV = 2, D = C / NH, I = 88, V = 97, N = B * T;
  const float eps = 1e-6f, theta = 10000.0f;

  {  // upload_f32 / download_f32 round trip (values are bf16 already: exact), zero
    auto a = bp.rand({N, C});
    bp.expect("upload/download round trip", a, 0.0);
    Pair z = bp.rand({N, C});
    cpu.zero(z.c);
    gpu.zero(z.g);
    bp.expect("zero", z, 0.0);
    auto f = bp.rand({7, 5}, 1.0f, 0.0f, DType::F32);
    bp.expect("fp32 tensor round trip", f, 0.0);
  }
  {
    SCOPED_TRACE("embedding");
    auto tok = bp.tokens({B, T}, V);
    auto wte = bp.rand({V, C});
    auto out = bp.out({B, T, C});
    cpu.embedding_forward(out.c, tok.c, wte.c);
    gpu.embedding_forward(out.g, tok.g, wte.g);
    bp.expect("embedding_forward", out, 0.0);
    for (DType gd : {DType::F32, DType::BF16}) {
      auto dwte = bp.rand({V, C}, 0.1f, 0.0f, gd);
      auto dout = bp.rand({B, T, C});
      cpu.embedding_backward(dwte.c, dout.c, tok.c);
      gpu.embedding_backward(dwte.g, dout.g, tok.g);
      bp.expect("embedding_backward", dwte, gd == DType::F32 ? kF32Tol : kBf16Tol);
    }
  }
  {
    SCOPED_TRACE("rmsnorm");
    auto inp = bp.rand({B, T, C});
    auto w = bp.rand({C}, 0.1f, 1.0f);
    auto out = bp.out({B, T, C});
    auto rstd = bp.out({B, T}, DType::F32);
    cpu.rmsnorm_forward(out.c, rstd.c, inp.c, w.c, eps);
    gpu.rmsnorm_forward(out.g, rstd.g, inp.g, w.g, eps);
    bp.expect("rmsnorm out", out, kBf16Tol);
    bp.expect("rmsnorm rstd", rstd, kF32Tol);
    auto dinp = bp.rand({B, T, C}, 0.1f);
    auto dw = bp.rand({C}, 0.1f, 0.0f, DType::F32);
    auto dout = bp.rand({B, T, C});
    cpu.rmsnorm_backward(dinp.c, dw.c, dout.c, inp.c, w.c, rstd.c);
    gpu.rmsnorm_backward(dinp.g, dw.g, dout.g, inp.g, w.g, rstd.g);
    bp.expect("rmsnorm dinp", dinp, kBf16Tol);
    bp.expect("rmsnorm dweight", dw, 1e-3);
  }
  {
    SCOPED_TRACE("matmul");
    auto inp = bp.rand({B, T, C});
    auto w = bp.rand({I, C}, 0.1f);
    auto out = bp.out({B, T, I});
    cpu.matmul_forward(out.c, inp.c, w.c);
    gpu.matmul_forward(out.g, inp.g, w.g);
    bp.expect("matmul out", out, kBf16Tol);
    auto res = bp.rand({B, T, I});
    auto out2 = bp.out({B, T, I});
    cpu.matmul_forward_add(out2.c, inp.c, w.c, res.c);
    gpu.matmul_forward_add(out2.g, inp.g, w.g, res.g);
    bp.expect("matmul out + residual", out2, kBf16Tol);
    auto dout = bp.rand({B, T, I});
    auto dinp = bp.out({B, T, C});
    auto dw = bp.rand({I, C}, 0.1f, 0.0f, DType::F32);
    cpu.matmul_backward(dinp.c, dw.c, dout.c, inp.c, w.c, false, true);
    gpu.matmul_backward(dinp.g, dw.g, dout.g, inp.g, w.g, false, true);
    bp.expect("matmul dinp", dinp, kBf16Tol);
    bp.expect("matmul dweight (+=)", dw, 1e-3);
    auto dinp2 = bp.rand({B, T, C}, 0.1f);
    cpu.matmul_backward(dinp2.c, Tensor(), dout.c, inp.c, w.c, true, false);
    gpu.matmul_backward(dinp2.g, Tensor(), dout.g, inp.g, w.g, true, false);
    bp.expect("matmul dinp (+=, no dweight)", dinp2, kBf16Tol);
  }
  {
    SCOPED_TRACE("rope");
    auto x = bp.rand({B, T, NH, D});
    cpu.rope_forward(x.c, theta);
    gpu.rope_forward(x.g, theta);
    bp.expect("rope forward", x, kBf16Tol);
    cpu.rope_backward(x.c, theta);
    gpu.rope_backward(x.g, theta);
    bp.expect("rope backward", x, kBf16Tol);
  }
  {
    SCOPED_TRACE("attention");
    auto q = bp.rand({B, T, NH, D}), k = bp.rand({B, T, NKV, D}), v = bp.rand({B, T, NKV, D});
    auto out = bp.out({B, T, NH, D});
    auto lse = bp.out({B, NH, T}, DType::F32);
    cpu.attention_forward(out.c, lse.c, q.c, k.c, v.c);
    gpu.attention_forward(out.g, lse.g, q.g, k.g, v.g);
    bp.expect("attention out", out, kBf16Tol);
    bp.expect("attention lse", lse, kF32Tol);
    auto dout = bp.rand({B, T, NH, D});
    auto dq = bp.out({B, T, NH, D}), dk = bp.out({B, T, NKV, D}), dv = bp.out({B, T, NKV, D});
    // Each side uses its own forward's out/lse (the GPU's out is bf16). The
    // spare buffer is large enough for the dS store (the model lends its h).
    auto spare = bp.out({int64_t(attention_backward_cuda_ds_bytes(B, T, NH) / 2)});
    cpu.attention_backward(dq.c, dk.c, dv.c, dout.c, q.c, k.c, v.c, out.c, lse.c, spare.c);
    gpu.attention_backward(dq.g, dk.g, dv.g, dout.g, q.g, k.g, v.g, out.g, lse.g, spare.g);
    bp.expect("attention dq", dq, 2e-2);
    bp.expect("attention dk", dk, 2e-2);
    bp.expect("attention dv", dv, kBf16Tol);
  }
  {
    SCOPED_TRACE("swiglu");
    auto gate = bp.rand({B, T, I}, 2.0f), up = bp.rand({B, T, I});
    auto out = bp.out({B, T, I});
    cpu.swiglu_forward(out.c, gate.c, up.c);
    gpu.swiglu_forward(out.g, gate.g, up.g);
    bp.expect("swiglu out", out, kBf16Tol);
    auto dout = bp.rand({B, T, I});
    auto dg = bp.out({B, T, I}), du = bp.out({B, T, I});
    cpu.swiglu_backward(dg.c, du.c, dout.c, gate.c, up.c);
    gpu.swiglu_backward(dg.g, du.g, dout.g, gate.g, up.g);
    bp.expect("swiglu dgate", dg, kBf16Tol);
    bp.expect("swiglu dup", du, kBf16Tol);
  }
  {
    SCOPED_TRACE("classifier");
    auto x = bp.rand({B, T, C}, 0.5f);
    auto w = bp.rand({V, C}, 0.1f);
    auto tg = bp.tokens({B, T}, V);
    const int R = 16;
    for (DType ldt : {DType::F32, DType::BF16}) {
      auto losses = bp.out({B, T}, DType::F32);
      auto dx = bp.out({B, T, C});
      auto dw = bp.out({V, C}, DType::F32);
      auto logits = bp.out({R, V}, ldt);
      cpu.classifier(losses.c, dx.c, dw.c, x.c, w.c, tg.c, 1.0f / N, false, logits.c);
      gpu.classifier(losses.g, dx.g, dw.g, x.g, w.g, tg.g, 1.0f / N, false, logits.g);
      bp.expect("classifier losses", losses, ldt == DType::F32 ? 1e-4 : kBf16Tol);
      bp.expect("classifier dx", dx, kBf16Tol);
      bp.expect("classifier dweight", dw, kBf16Tol);
    }
  }
  {
    SCOPED_TRACE("residual, scale, sum_squares");
    auto a = bp.rand({B, T, C}), b = bp.rand({B, T, C});
    cpu.residual_add(a.c, a.c, b.c);
    gpu.residual_add(a.g, a.g, b.g);
    bp.expect("residual_add (in place)", a, kBf16Tol);
    const double sc = cpu.sum_squares(b.c), sg = gpu.sum_squares(b.g);
    EXPECT_NEAR(sg, sc, 1e-6 * sc);
    cpu.scale(b.c, 0.25f);
    gpu.scale(b.g, 0.25f);
    bp.expect("scale", b, 0.0);
    auto f = bp.rand({3, 7}, 1.0f, 0.0f, DType::F32);
    EXPECT_NEAR(gpu.sum_squares(f.g), cpu.sum_squares(f.c), 1e-9 * cpu.sum_squares(f.c));
    // the total over several tensors: one sync, the same double additions in order
    const double sb = gpu.sum_squares(b.g), sf = gpu.sum_squares(f.g), sa = gpu.sum_squares(a.g);
    EXPECT_EQ(gpu.sum_squares_total({b.g, f.g, a.g}), (sb + sf) + sa);
    EXPECT_EQ(gpu.sum_squares_total({}), 0.0);
    const double tc = cpu.sum_squares_total({b.c, f.c});  // (a differs by the GPU's bf16 rounding of the add)
    EXPECT_NEAR(gpu.sum_squares_total({b.g, f.g}), tc, 1e-6 * tc);
  }
  gpu.synchronize();
}

#else  // !GALORE_WITH_CUDA

TEST(GpuTest, Skipped) { GT_SKIP_OR_FAIL_WITHOUT_GPU("this build has no CUDA backend (GALORE_WITH_CUDA unset)"); }

#endif
