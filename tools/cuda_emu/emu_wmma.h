// CPU emulation of the CUDA WMMA API (nvcuda::wmma, <mma.h>) for the emulated
// kernels: only the 16x16x16 shape with __nv_bfloat16 (or __half) operands and
// float accumulators, which is what the kernels use.
//
// Model: every lane's fragment holds the WHOLE 16x16 tile (all lanes the same
// copy), so the register layout of a real fragment (unspecified by the API) is
// never modelled and kernels cannot depend on it here. Element access through
// `x[]` / `num_elements` is deliberately not provided.
//
// - load_matrix_sync: every lane reads the whole tile, THEN a warp barrier (the
//   op is warp-collective). Reading first means that a missing __syncwarp
//   between other lanes' shared-memory writes and the load is not hidden: the
//   early lanes read stale (NaN-filled) memory.
// - store_matrix_sync: a warp barrier, then lane 0 alone writes the tile, with
//   no barrier after it: a lane that reads the stored tile without a
//   __syncwarp first races with lane 0 (ThreadSanitizer sees it; the test sees
//   stale values).
// - mma_sync: a warp barrier (collective), then d = a*b + c in fp32, k in
//   order (d may alias c). Real tensor cores round and order differently.
// - fill_fragment: local, no barrier.
// Checks (abort with a message): pointer 256-bit (32-byte) aligned; ldm a
// multiple of 8 elements for 16-bit types, of 4 for float; all 32 lanes of the
// warp present (a partial warp cannot run WMMA).
#pragma once
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <type_traits>

#include "emu_prelude.h"

namespace nvcuda {
namespace wmma {

struct matrix_a {};
struct matrix_b {};
struct accumulator {};
struct row_major {};
struct col_major {};
enum layout_t { mem_row_major, mem_col_major };

// Whole-tile fragment: v[r][c] is the logical element (row r, column c) of the
// M x K (matrix_a), K x N (matrix_b) or M x N (accumulator) tile. Stored as
// float: every bf16/half value is exact in float.
template <typename Use, int M, int N, int K, typename T, typename Layout = void>
class fragment {
  static_assert(M == 16 && N == 16 && K == 16, "emu_wmma: only the 16x16x16 shape is emulated");
  static_assert(std::is_same_v<Use, accumulator> ? std::is_same_v<T, float>
                                                 : (std::is_same_v<T, __nv_bfloat16> || std::is_same_v<T, __half>),
                "emu_wmma: matrix_a/matrix_b must be bf16 or half, accumulator float");
  static_assert(std::is_same_v<Use, accumulator> == std::is_same_v<Layout, void>,
                "emu_wmma: matrix_a/matrix_b need row_major/col_major, an accumulator none");

 public:
  float v[16][16];
};

namespace detail {
[[noreturn]] inline void die(const char* op, const char* what, const void* p, unsigned ldm) {
  std::fprintf(stderr, "emu_wmma: %s: %s (pointer %p, ldm %u, thread %u of block %u,%u,%u)\n", op, what, p, ldm,
               emu.tid.x, emu.bid.x, emu.bid.y, emu.bid.z);
  std::abort();
}
inline void check_warp(const char* op) {
  const unsigned nt = emu.bdim.x * emu.bdim.y * emu.bdim.z;
  const unsigned t = emu.tid.x + emu.bdim.x * (emu.tid.y + emu.bdim.y * emu.tid.z);
  if (nt < 32 * (t / 32 + 1)) die(op, "WMMA in a partial warp (the block is not a multiple of 32 threads)", nullptr, 0);
}
template <typename T>
inline void check_ptr(const char* op, const T* p, unsigned ldm) {
  if (reinterpret_cast<uintptr_t>(p) % 32 != 0) die(op, "pointer is not 256-bit (32-byte) aligned", p, ldm);
  const unsigned mult = sizeof(T) == 2 ? 8u : 4u;
  if (ldm % mult != 0 || ldm < 16)
    die(op, sizeof(T) == 2 ? "ldm is not a multiple of 8 elements (16-bit type) or < 16"
                           : "ldm is not a multiple of 4 elements (float) or < 16",
        p, ldm);
}
inline float to_float(float x) { return x; }
inline float to_float(__nv_bfloat16 x) { return __bfloat162float(x); }
inline float to_float(__half x) { return __half2float(x); }
}  // namespace detail

// a (M x K) or b (K x N) from memory: element (r, c) at p[r*ldm + c] (row_major)
// or p[c*ldm + r] (col_major).
template <typename Use, typename T, typename Layout>
inline void load_matrix_sync(fragment<Use, 16, 16, 16, T, Layout>& f, const T* p, unsigned ldm) {
  detail::check_warp("load_matrix_sync");
  detail::check_ptr("load_matrix_sync", p, ldm);
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c)
      f.v[r][c] = detail::to_float(std::is_same_v<Layout, row_major> ? p[size_t(r) * ldm + c] : p[size_t(c) * ldm + r]);
  __syncwarp();
}
// Accumulator from float memory with an explicit layout.
inline void load_matrix_sync(fragment<accumulator, 16, 16, 16, float>& f, const float* p, unsigned ldm,
                             layout_t layout) {
  detail::check_warp("load_matrix_sync");
  detail::check_ptr("load_matrix_sync", p, ldm);
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c)
      f.v[r][c] = layout == mem_row_major ? p[size_t(r) * ldm + c] : p[size_t(c) * ldm + r];
  __syncwarp();
}
inline void store_matrix_sync(float* p, const fragment<accumulator, 16, 16, 16, float>& f, unsigned ldm,
                              layout_t layout) {
  detail::check_warp("store_matrix_sync");
  detail::check_ptr("store_matrix_sync", p, ldm);
  __syncwarp();
  if (emu.tid.x % 32 != 0) return;
  for (int r = 0; r < 16; ++r)
    for (int c = 0; c < 16; ++c) (layout == mem_row_major ? p[size_t(r) * ldm + c] : p[size_t(c) * ldm + r]) = f.v[r][c];
}
template <typename Use, typename T, typename Layout>
inline void fill_fragment(fragment<Use, 16, 16, 16, T, Layout>& f, const T& value) {
  const float x = detail::to_float(value);
  for (auto& row : f.v)
    for (float& e : row) e = x;
}
// d = a * b + c (fp32, k in order; d may be c).
template <typename T, typename LA, typename LB>
inline void mma_sync(fragment<accumulator, 16, 16, 16, float>& d, const fragment<matrix_a, 16, 16, 16, T, LA>& a,
                     const fragment<matrix_b, 16, 16, 16, T, LB>& b, const fragment<accumulator, 16, 16, 16, float>& c) {
  detail::check_warp("mma_sync");
  __syncwarp();
  float out[16][16];
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 16; ++n) {
      float s = c.v[m][n];
      for (int k = 0; k < 16; ++k) s += a.v[m][k] * b.v[k][n];
      out[m][n] = s;
    }
  for (int m = 0; m < 16; ++m)
    for (int n = 0; n < 16; ++n) d.v[m][n] = out[m][n];
}

}  // namespace wmma
}  // namespace nvcuda
