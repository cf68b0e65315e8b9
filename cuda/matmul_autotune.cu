// CudaGemm's autotuning (training.gemm_autotune): time the heuristic's first
// candidates per shape on scratch operands and keep the fastest; export and
// import the choices, so that a resumed run uses the algorithms the original
// run used (bit-exact resume: another algorithm may sum in another order).
#include "cuda/cuda_check.h"  // first: see the note there

#include <cstring>

#include "cuda/matmul.h"
#include "cuda/matmul_impl.cuh"

namespace gt {

namespace {
// Each algorithm must beat the one in use by this factor to replace it (timing noise).
constexpr double kMinGain = 0.98;

size_t round_up(size_t x) { return (x + 255) / 256 * 256; }

// Bytes of a column-major operand with `cols` columns of leading dimension ld.
size_t operand_bytes(int ld, int cols, size_t elem) { return size_t(ld) * size_t(cols) * elem; }

// The export format: a header, then (GemmKey, algorithm) records.
struct TableHeader {
  char magic[8];         // "GTGEMM1"
  char device[64];       // cudaDeviceProp::name, truncated
  int32_t sm;            // major * 10 + minor
  int32_t count;         // records that follow
  uint64_t lt_version;   // cublasLtGetVersion()
};
struct TableRecord {
  GemmKey key;
  cublasLtMatmulAlgo_t algo;
};
constexpr char kMagic[8] = "GTGEMM1";

TableHeader this_device_header() {
  TableHeader h{};
  std::memcpy(h.magic, kMagic, sizeof(kMagic));
  int dev = 0;
  cudaDeviceProp prop{};
  CUDA_CHECK(cudaGetDevice(&dev));
  CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  std::strncpy(h.device, prop.name, sizeof(h.device) - 1);
  h.sm = prop.major * 10 + prop.minor;
  h.lt_version = uint64_t(cublasLtGetVersion());
  return h;
}
}  // namespace

GemmTuneResult CudaGemm::autotune(void* scratch, size_t scratch_bytes, int candidates, int reps) {
  Impl& I = *impl_;
  GemmTuneResult res;
  if (!I.lt_enabled) return res;
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  CUDA_CHECK(cudaEventCreate(&e0));
  CUDA_CHECK(cudaEventCreate(&e1));
  char* base = static_cast<char*>(scratch);
  for (auto& [key, p] : I.plans) {
    if (!p.use_lt) continue;
    const size_t elem_d = key.d_f32 ? 4 : 2;
    const size_t na = round_up(operand_bytes(key.lda, key.ta ? key.m : key.k, 2));
    const size_t nb = round_up(operand_bytes(key.ldb, key.tb ? key.k : key.n, 2));
    const size_t nd = round_up(operand_bytes(key.ldd, key.n, elem_d));
    if (na + nb + nd > scratch_bytes) {
      ++res.skipped;
      continue;
    }
    // 256-byte aligned slices: they meet any alignment the key's heuristic was asked for.
    bf16* A = reinterpret_cast<bf16*>(base);
    bf16* B = reinterpret_cast<bf16*>(base + na);
    void* D = base + na + nb;
    fill_random_bf16(A, int64_t(na / 2), 1, I.stream);
    fill_random_bf16(B, int64_t(nb / 2), 2, I.stream);
    CUDA_CHECK(cudaMemsetAsync(D, 0, nd, I.stream));
    const Impl::Candidates algos = I.heuristics(key, p, candidates);
    const float alpha = 1.0f, beta = 0.0f;
    const double now = median_call_ms(I.stream, e0, e1, reps, [&] { return I.run_algo(p, p.algo, A, B, D, alpha, beta); });
    double best = now;
    int best_r = -1;
    for (int r = 0; r < algos.count; ++r) {
      if (std::memcmp(&algos.algo[r], &p.algo, sizeof(p.algo)) == 0) continue;  // the one in use
      const double ms =
          median_call_ms(I.stream, e0, e1, reps, [&] { return I.run_algo(p, algos.algo[r], A, B, D, alpha, beta); });
      if (ms >= 0 && (now < 0 || ms < kMinGain * best)) best = ms, best_r = r;
    }
    ++res.shapes;
    if (now >= 0) res.ms_before += now * double(p.calls);
    if (best_r >= 0) {
      p.algo = algos.algo[best_r];
      ++res.changed;
    }
    if (best >= 0) res.ms_after += best * double(p.calls);
  }
  CUDA_CHECK(cudaStreamSynchronize(I.stream));
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  return res;
}

std::vector<uint8_t> CudaGemm::export_algos() const {
  const Impl& I = *impl_;
  std::vector<TableRecord> recs;
  for (const auto& [key, p] : I.plans)
    if (p.use_lt) recs.push_back({key, p.algo});
  TableHeader h = this_device_header();
  h.count = int32_t(recs.size());
  std::vector<uint8_t> out(sizeof(h) + recs.size() * sizeof(TableRecord));
  std::memcpy(out.data(), &h, sizeof(h));
  if (!recs.empty()) std::memcpy(out.data() + sizeof(h), recs.data(), recs.size() * sizeof(TableRecord));
  return out;
}

std::string CudaGemm::import_algos(const std::vector<uint8_t>& table) {
  Impl& I = *impl_;
  if (!I.lt_enabled) return "cuBLASLt is off in this process";
  TableHeader h{};
  if (table.size() < sizeof(h)) return "the table is truncated";
  std::memcpy(&h, table.data(), sizeof(h));
  if (std::memcmp(h.magic, kMagic, sizeof(kMagic)) != 0) return "the table is not a GEMM algorithm table";
  if (h.count < 0 || table.size() != sizeof(h) + size_t(h.count) * sizeof(TableRecord))
    return "the table's size does not match its record count";
  const TableHeader here = this_device_header();
  if (std::strncmp(h.device, here.device, sizeof(h.device)) != 0 || h.sm != here.sm)
    return std::string("it was made on a ") + std::string(h.device, strnlen(h.device, sizeof(h.device))) +
           ", this is a " + here.device;
  if (h.lt_version != here.lt_version)
    return "it was made with cuBLASLt " + std::to_string(h.lt_version) + ", this is " +
           std::to_string(here.lt_version);
  // Check every record before changing anything.
  std::vector<std::pair<GemmKey, GemmPlan>> staged;
  std::string why;
  for (int32_t i = 0; i < h.count && why.empty(); ++i) {
    TableRecord r;
    std::memcpy(&r, table.data() + sizeof(h) + size_t(i) * sizeof(TableRecord), sizeof(r));
    GemmPlan p;
    Impl::describe(r.key, p);
    cublasLtMatmulHeuristicResult_t check{};
    const cublasStatus_t st = cublasLtMatmulAlgoCheck(I.lt, p.op, p.a, p.b, p.d, p.d, &r.algo, &check);
    if (st != CUBLAS_STATUS_SUCCESS || check.state != CUBLAS_STATUS_SUCCESS || check.workspaceSize > I.workspace_bytes)
      why = "cuBLASLt refuses its algorithm for the " + std::to_string(r.key.m) + "x" + std::to_string(r.key.n) + "x" +
            std::to_string(r.key.k) + " GEMM";
    p.algo = r.algo;
    p.use_lt = true;
    staged.emplace_back(r.key, p);
  }
  if (!why.empty()) {
    for (auto& kp : staged) Impl::destroy(kp.second);
    return why;
  }
  for (auto& [key, p] : staged) {
    auto it = I.plans.find(key);
    if (it != I.plans.end()) {
      p.calls = it->second.calls;
      Impl::destroy(it->second);
      it->second = p;
    } else {
      I.plans.emplace(key, p);
    }
  }
  return "";
}

}  // namespace gt
