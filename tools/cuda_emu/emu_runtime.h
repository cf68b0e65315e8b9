// Host-memory stand-ins for the CUDA runtime calls used by the kernels' host
// code, the backend and the tests. Force-included into every emulated TU.
#pragma once
#include <cuda_runtime.h>
#include <cstdlib>
#include <cstring>
#include <cstdint>

template <class T> inline cudaError_t emu_cudaMalloc(T** p, size_t n) {
  *p = reinterpret_cast<T*>(std::aligned_alloc(256, (n + 255) / 256 * 256 + 256));
  return *p ? cudaSuccess : cudaErrorMemoryAllocation;
}
inline cudaError_t emu_cudaFree(void* p) { std::free(p); return cudaSuccess; }
template <class T> inline cudaError_t emu_cudaMallocHost(T** p, size_t n) { return emu_cudaMalloc(p, n); }
inline cudaError_t emu_cudaFreeHost(void* p) { std::free(p); return cudaSuccess; }
inline cudaError_t emu_cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind) { std::memmove(d, s, n); return cudaSuccess; }
inline cudaError_t emu_cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind, cudaStream_t = 0) { std::memmove(d, s, n); return cudaSuccess; }
inline cudaError_t emu_cudaMemset(void* d, int v, size_t n) { std::memset(d, v, n); return cudaSuccess; }
inline cudaError_t emu_cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t = 0) { std::memset(d, v, n); return cudaSuccess; }
inline cudaError_t emu_cudaStreamCreate(cudaStream_t* s) { *s = reinterpret_cast<cudaStream_t>(uintptr_t(64)); return cudaSuccess; }
inline cudaError_t emu_cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) { return emu_cudaStreamCreate(s); }
inline cudaError_t emu_cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
inline cudaError_t emu_cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }
inline cudaError_t emu_cudaDeviceSynchronize() { return cudaSuccess; }
inline cudaError_t emu_cudaGetDeviceCount(int* n) { *n = 1; return cudaSuccess; }
inline cudaError_t emu_cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
inline cudaError_t emu_cudaGetDeviceProperties(cudaDeviceProp* p, int) { std::memset(p, 0, sizeof(*p)); std::strcpy(p->name, "emulator"); p->major = 9; return cudaSuccess; }
inline cudaError_t emu_cudaMemGetInfo(size_t* f, size_t* t) { *f = *t = 0; return cudaSuccess; }

#define cudaMalloc emu_cudaMalloc
#define cudaFree emu_cudaFree
#define cudaMallocHost emu_cudaMallocHost
#define cudaFreeHost emu_cudaFreeHost
#define cudaMemcpy emu_cudaMemcpy
#define cudaMemcpyAsync emu_cudaMemcpyAsync
#define cudaMemset emu_cudaMemset
#define cudaMemsetAsync emu_cudaMemsetAsync
#define cudaStreamCreate emu_cudaStreamCreate
#define cudaStreamCreateWithFlags emu_cudaStreamCreateWithFlags
#define cudaStreamDestroy emu_cudaStreamDestroy
#define cudaStreamSynchronize emu_cudaStreamSynchronize
#define cudaDeviceSynchronize emu_cudaDeviceSynchronize
#define cudaGetDeviceCount emu_cudaGetDeviceCount
#define cudaGetDevice emu_cudaGetDevice
#define cudaGetDeviceProperties emu_cudaGetDeviceProperties
#define cudaMemGetInfo emu_cudaMemGetInfo
#define cudaGetLastError() cudaSuccess
