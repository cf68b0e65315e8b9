// The argument checks the emulated cuBLAS / cuSOLVER (emu_blas_solver.cpp) and
// cuBLASLt (emu_cublaslt.cpp) share, and the cuBLAS handle they both use.
// Each check aborts with a message naming the call: where a real GPU would
// return CUBLAS_STATUS_INVALID_VALUE or read out of bounds, the emulator stops.
#pragma once
#include <cublas_v2.h>

#include <cstddef>
#include <cstdint>

struct cublasContext {
  uint32_t magic = 0xB1A5;
  cudaStream_t stream = nullptr;
  cublasPointerMode_t pointer_mode = CUBLAS_POINTER_MODE_HOST;
  cublasMath_t math = CUBLAS_DEFAULT_MATH;
  cublasAtomicsMode_t atomics = CUBLAS_ATOMICS_NOT_ALLOWED;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

namespace emu {

[[noreturn]] void die(const char* call, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void check(bool ok, const char* call, const char* what);
// Elements spanned by a column-major [rows, cols] block with leading dimension ld.
size_t span(int64_t rows, int64_t cols, int64_t ld);
// [p, p + bytes) lies inside one cudaMalloc allocation and inside the
// registered workspace region it starts in (emu_blas_solver.h).
void dev_bytes(const char* call, const char* name, const void* p, size_t bytes);
template <typename T>
void dev(const char* call, const char* name, const T* p, size_t elems) {
  dev_bytes(call, name, p, elems * sizeof(T));
}
template <typename T, typename U>
void no_overlap(const char* call, const char* out, const T* o, size_t no, const char* in, const U* i, size_t ni) {
  if (!no || !ni) return;
  const uintptr_t a0 = reinterpret_cast<uintptr_t>(o), a1 = a0 + no * sizeof(T);
  const uintptr_t b0 = reinterpret_cast<uintptr_t>(i), b1 = b0 + ni * sizeof(U);
  if (a0 < b1 && b0 < a1) die(call, "output %s overlaps input %s (in-place use is undefined)", out, in);
}
// alpha / beta: host memory in CUBLAS_POINTER_MODE_HOST, device memory otherwise.
template <typename T>
T scalar(const char* call, const cublasContext* h, const T* p, const char* name) {
  if (!p) die(call, "%s is null", name);
  if (h->pointer_mode == CUBLAS_POINTER_MODE_HOST) {
    if (emu_is_device(p, sizeof(T))) die(call, "%s is device memory but the pointer mode is HOST", name);
  } else if (!emu_is_device(p, sizeof(T))) {
    die(call, "%s is host memory but the pointer mode is DEVICE", name);
  }
  return *p;
}
const cublasContext* blas(const char* call, cublasHandle_t h);

// Handles and descriptors: make() news an Obj into *out (the library's handle
// type: a pointer to Obj, or to an opaque type Obj stands in for); retire()
// clears its magic (a later use of the dangling handle is caught while the
// memory is not reused) and deletes it.
template <class Obj, class Handle>
void make(const char* call, Handle* out) {
  if (!out) die(call, "the output pointer is null");
  *out = reinterpret_cast<Handle>(new Obj);
}
template <class Obj>
void retire(Obj* p) {
  p->magic = 0;
  delete p;
}
char op_char(const char* call, cublasOperation_t op);

}  // namespace emu
