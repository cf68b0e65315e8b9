// Error checks for every CUDA runtime, cuBLAS(Lt) and cuSOLVER call, and for
// every kernel launch. Failures throw gt::Error with the call, file:line and
// the library's own error string, so they surface like any other error.
//
// Include this header FIRST in every .cu file: nvcc defines __NVCC__, which
// makes fmt 9 (used by core/error.h) turn its constexpr support off while its
// format strings stay consteval, and the host pass then fails to compile.
// Forcing FMT_USE_CONSTEXPR=1 before fmt is seen fixes that. (The cleaner fix
// is `-DFMT_USE_CONSTEXPR=1` for the CUDA language in CMakeLists.txt.)
#pragma once
#if defined(__NVCC__)
#if defined(FMT_CORE_H_) && !FMT_USE_CONSTEXPR
#error "include cuda/cuda_check.h before any fmt or spdlog header in .cu files"
#endif
#ifndef FMT_USE_CONSTEXPR
#define FMT_USE_CONSTEXPR 1
#endif
#endif

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cusolverDn.h>

#include <string>

#include "core/error.h"

namespace gt {

inline const char* cusolver_status_string(cusolverStatus_t s) {
  switch (s) {
    case CUSOLVER_STATUS_SUCCESS: return "CUSOLVER_STATUS_SUCCESS";
    case CUSOLVER_STATUS_NOT_INITIALIZED: return "CUSOLVER_STATUS_NOT_INITIALIZED";
    case CUSOLVER_STATUS_ALLOC_FAILED: return "CUSOLVER_STATUS_ALLOC_FAILED";
    case CUSOLVER_STATUS_INVALID_VALUE: return "CUSOLVER_STATUS_INVALID_VALUE";
    case CUSOLVER_STATUS_ARCH_MISMATCH: return "CUSOLVER_STATUS_ARCH_MISMATCH";
    case CUSOLVER_STATUS_EXECUTION_FAILED: return "CUSOLVER_STATUS_EXECUTION_FAILED";
    case CUSOLVER_STATUS_INTERNAL_ERROR: return "CUSOLVER_STATUS_INTERNAL_ERROR";
    case CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED: return "CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED";
    case CUSOLVER_STATUS_NOT_SUPPORTED: return "CUSOLVER_STATUS_NOT_SUPPORTED";
    default: return "CUSOLVER_STATUS_<other>";
  }
}

[[noreturn]] inline void cuda_throw(const char* lib, const char* err, const char* expr, const char* file, int line) {
  throw Error(std::string(lib) + " error: " + err + " in `" + expr + "` at " + file + ":" + std::to_string(line));
}

}  // namespace gt

#define CUDA_CHECK(call)                                                                                  \
  do {                                                                                                    \
    const cudaError_t gt_err_ = (call);                                                                   \
    if (gt_err_ != cudaSuccess)                                                                           \
      ::gt::cuda_throw("CUDA", (std::string(cudaGetErrorName(gt_err_)) + " (" + cudaGetErrorString(gt_err_) + ")").c_str(), \
                       #call, __FILE__, __LINE__);                                                        \
  } while (0)

// After every kernel launch: catches bad launch configurations at once
// (asynchronous faults surface at the next synchronizing call).
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#define CUBLAS_CHECK(call)                                                                           \
  do {                                                                                               \
    const cublasStatus_t gt_st_ = (call);                                                            \
    if (gt_st_ != CUBLAS_STATUS_SUCCESS)                                                             \
      ::gt::cuda_throw("cuBLAS", cublasGetStatusString(gt_st_), #call, __FILE__, __LINE__);          \
  } while (0)

#define CUSOLVER_CHECK(call)                                                                                \
  do {                                                                                                      \
    const cusolverStatus_t gt_st_ = (call);                                                                 \
    if (gt_st_ != CUSOLVER_STATUS_SUCCESS)                                                                  \
      ::gt::cuda_throw("cuSOLVER", ::gt::cusolver_status_string(gt_st_), #call, __FILE__, __LINE__);        \
  } while (0)

// ---- small helpers shared by the kernels (device code only) ----
#if defined(__CUDACC__)
#include "cuda/device_util.cuh"
#endif
