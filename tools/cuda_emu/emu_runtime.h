// Host-memory stand-ins for the CUDA runtime calls used by the kernels' host
// code, the backend, the optimizer kernels and the tests. Force-included into
// every emulated TU.
//
// "Device" memory is host memory, but every cudaMalloc'd range is recorded, so
// that (1) cudaMemcpy*/cudaMemset* check that each pointer is on the side its
// cudaMemcpyKind says (a host pointer handed to the device or the reverse is a
// bug a real GPU turns into a fault or garbage), and (2) cudaMemGetInfo reports
// an 80 GiB device whose used part is what the program allocated (the memory
// plan can be compared with it). Kernels and most copies run synchronously:
// streams are no-ops and an event keeps the host time of its cudaEventRecord,
// for elapsed times. The exception, (4) below, is what a host can read too
// early. (3) A new allocation is filled with 0xff bytes (NaN in fp32 and
// bf16, -1 in integers; EMU_MALLOC_FILL=<byte> picks another): a GPU's
// cudaMalloc memory holds whatever was there before, while fresh host pages
// are zeros, so code that reads memory it never wrote would pass here.
// (4) cudaMemcpyAsync from the device into pinned (cudaMallocHost) memory is
// the one copy a GPU finishes after the call returns (into pageable memory it
// returns when done). Here it takes a snapshot of the source (stream order),
// fills the destination with the 0xff fill and lands only at a
// synchronization that covers it: cudaStreamSynchronize,
// cudaDeviceSynchronize, cudaMemcpy, cudaFree(Host), and cudaEventSynchronize
// or a successful cudaEventQuery of an event recorded after the copy. A host
// read without one sees the fill.
#pragma once
#include <cuda_runtime.h>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <vector>

struct EmuMemTable {
  std::mutex mu;
  std::map<uintptr_t, size_t> dev;   // start -> bytes (cudaMalloc)
  std::map<uintptr_t, size_t> host;  // start -> bytes (cudaMallocHost)
  size_t dev_bytes = 0, dev_peak = 0;
  size_t dev_allocs = 0;  // cudaMalloc calls so far
};
inline EmuMemTable& emu_mem() {
  static EmuMemTable* t = new EmuMemTable;  // never destroyed: frees may come from static destructors
  return *t;
}
constexpr size_t kEmuDeviceBytes = size_t(80) << 30;

// Whether [p, p + n) lies inside one recorded allocation of `table`.
inline bool emu_in(const std::map<uintptr_t, size_t>& table, const void* p, size_t n) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  auto it = table.upper_bound(a);
  if (it == table.begin()) return false;
  --it;
  return a >= it->first && a + n <= it->first + it->second;
}
inline bool emu_is_device(const void* p, size_t n = 1) {
  std::lock_guard<std::mutex> l(emu_mem().mu);
  return emu_in(emu_mem().dev, p, n ? n : 1);
}
// Bytes the program holds in cudaMalloc allocations now / at most.
inline size_t emu_device_bytes_in_use() {
  std::lock_guard<std::mutex> l(emu_mem().mu);
  return emu_mem().dev_bytes;
}
inline size_t emu_device_bytes_peak() {
  std::lock_guard<std::mutex> l(emu_mem().mu);
  return emu_mem().dev_peak;
}
// cudaMalloc calls so far (a training step must make none: everything is planned).
inline size_t emu_device_alloc_count() {
  std::lock_guard<std::mutex> l(emu_mem().mu);
  return emu_mem().dev_allocs;
}
inline void emu_reset_device_peak() {
  std::lock_guard<std::mutex> l(emu_mem().mu);
  emu_mem().dev_peak = emu_mem().dev_bytes;
}
[[noreturn]] inline void emu_die(const char* what, const void* p, size_t n) {
  std::fprintf(stderr, "emu runtime: %s (pointer %p, %zu bytes)\n", what, p, n);
  std::abort();
}
// Copies into pinned memory not landed yet (see (4) in the header), in stream order.
struct EmuPendingCopy {
  uint64_t seq;
  void* dst;
  std::vector<char> bytes;
};
struct EmuAsync {
  std::mutex mu;
  uint64_t seq = 0;  // copies enqueued so far
  std::vector<EmuPendingCopy> pending;
};
inline EmuAsync& emu_async() {
  static EmuAsync* a = new EmuAsync;  // never destroyed, like emu_mem()
  return *a;
}
// Lands the pending copies enqueued at or before `upto` (all by default).
inline void emu_land_copies(uint64_t upto = UINT64_MAX) {
  EmuAsync& a = emu_async();
  std::lock_guard<std::mutex> l(a.mu);
  auto keep = a.pending.begin();
  for (auto it = a.pending.begin(); it != a.pending.end(); ++it) {
    if (it->seq <= upto)
      std::memcpy(it->dst, it->bytes.data(), it->bytes.size());
    else
      *keep++ = std::move(*it);
  }
  a.pending.erase(keep, a.pending.end());
}
inline bool emu_is_pinned(const void* p, size_t n) {
  std::lock_guard<std::mutex> l(emu_mem().mu);
  return emu_in(emu_mem().host, p, n ? n : 1);
}
// p must be device memory ([p, p + n) inside one cudaMalloc), or host memory (not device).
inline void emu_expect_device(const void* p, size_t n, const char* what) {
  if (n && !emu_is_device(p, n)) emu_die(what, p, n);
}
inline void emu_expect_host(const void* p, size_t n, const char* what) {
  if (n && emu_is_device(p, 1)) emu_die(what, p, n);
}

inline int emu_malloc_fill() {
  static const int fill = [] {
    const char* v = std::getenv("EMU_MALLOC_FILL");
    return v ? int(std::strtol(v, nullptr, 0)) & 0xff : 0xff;
  }();
  return fill;
}
template <class T> inline cudaError_t emu_cudaMalloc(T** p, size_t n) {
  void* q = std::aligned_alloc(256, (n + 255) / 256 * 256 + 256);
  *p = reinterpret_cast<T*>(q);
  if (!q) return cudaErrorMemoryAllocation;
  std::memset(q, emu_malloc_fill(), n);
  auto& t = emu_mem();
  std::lock_guard<std::mutex> l(t.mu);
  t.dev[reinterpret_cast<uintptr_t>(q)] = n;
  t.dev_bytes += n;
  ++t.dev_allocs;
  t.dev_peak = t.dev_bytes > t.dev_peak ? t.dev_bytes : t.dev_peak;
  return cudaSuccess;
}
inline cudaError_t emu_cudaFree(void* p) {
  if (!p) return cudaSuccess;
  emu_land_copies();  // cudaFree synchronizes the device
  {
    auto& t = emu_mem();
    std::lock_guard<std::mutex> l(t.mu);
    auto it = t.dev.find(reinterpret_cast<uintptr_t>(p));
    if (it == t.dev.end()) emu_die("cudaFree of a pointer cudaMalloc did not return", p, 0);
    t.dev_bytes -= it->second;
    t.dev.erase(it);
  }
  std::free(p);
  return cudaSuccess;
}
template <class T> inline cudaError_t emu_cudaMallocHost(T** p, size_t n) {
  void* q = std::aligned_alloc(256, (n + 255) / 256 * 256 + 256);
  *p = reinterpret_cast<T*>(q);
  if (!q) return cudaErrorMemoryAllocation;
  std::memset(q, emu_malloc_fill(), n);
  std::lock_guard<std::mutex> l(emu_mem().mu);
  emu_mem().host[reinterpret_cast<uintptr_t>(q)] = n;
  return cudaSuccess;
}
inline cudaError_t emu_cudaFreeHost(void* p) {
  if (!p) return cudaSuccess;
  emu_land_copies();  // as does cudaFreeHost
  {
    std::lock_guard<std::mutex> l(emu_mem().mu);
    if (!emu_mem().host.erase(reinterpret_cast<uintptr_t>(p)))
      emu_die("cudaFreeHost of a pointer cudaMallocHost did not return", p, 0);
  }
  std::free(p);
  return cudaSuccess;
}
inline void emu_check_copy(void* d, const void* s, size_t n, cudaMemcpyKind k) {
  switch (k) {
    case cudaMemcpyHostToDevice:
      emu_expect_device(d, n, "cudaMemcpy HostToDevice: destination is not (inside) a device allocation");
      emu_expect_host(s, n, "cudaMemcpy HostToDevice: source is device memory");
      break;
    case cudaMemcpyDeviceToHost:
      emu_expect_device(s, n, "cudaMemcpy DeviceToHost: source is not (inside) a device allocation");
      emu_expect_host(d, n, "cudaMemcpy DeviceToHost: destination is device memory");
      break;
    case cudaMemcpyDeviceToDevice:
      emu_expect_device(d, n, "cudaMemcpy DeviceToDevice: destination is not (inside) a device allocation");
      emu_expect_device(s, n, "cudaMemcpy DeviceToDevice: source is not (inside) a device allocation");
      break;
    default: break;
  }
}
inline cudaError_t emu_cudaMemcpy(void* d, const void* s, size_t n, cudaMemcpyKind k) {
  emu_check_copy(d, s, n, k);
  emu_land_copies();  // a synchronous copy waits for the work before it
  std::memmove(d, s, n);
  return cudaSuccess;
}
inline cudaError_t emu_cudaMemcpyAsync(void* d, const void* s, size_t n, cudaMemcpyKind k, cudaStream_t = 0) {
  emu_check_copy(d, s, n, k);
  if (k == cudaMemcpyDeviceToHost && n && emu_is_pinned(d, n)) {
    EmuAsync& a = emu_async();
    std::lock_guard<std::mutex> l(a.mu);
    a.pending.push_back({++a.seq, d, std::vector<char>(static_cast<const char*>(s), static_cast<const char*>(s) + n)});
    std::memset(d, emu_malloc_fill(), n);
    return cudaSuccess;
  }
  std::memmove(d, s, n);
  return cudaSuccess;
}
inline cudaError_t emu_cudaMemset(void* d, int v, size_t n) {
  emu_expect_device(d, n, "cudaMemset: destination is not (inside) a device allocation");
  std::memset(d, v, n);
  return cudaSuccess;
}
inline cudaError_t emu_cudaMemsetAsync(void* d, int v, size_t n, cudaStream_t = 0) { return emu_cudaMemset(d, v, n); }
inline cudaError_t emu_cudaStreamCreate(cudaStream_t* s) { *s = reinterpret_cast<cudaStream_t>(uintptr_t(64)); return cudaSuccess; }
inline cudaError_t emu_cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) { return emu_cudaStreamCreate(s); }
inline cudaError_t emu_cudaStreamDestroy(cudaStream_t) { return cudaSuccess; }
inline cudaError_t emu_cudaStreamSynchronize(cudaStream_t) {
  emu_land_copies();
  return cudaSuccess;
}
inline cudaError_t emu_cudaDeviceSynchronize() {
  emu_land_copies();
  return cudaSuccess;
}
inline cudaError_t emu_cudaGetDeviceCount(int* n) { *n = 1; return cudaSuccess; }
inline cudaError_t emu_cudaGetDevice(int* d) { *d = 0; return cudaSuccess; }
inline cudaError_t emu_cudaGetDeviceProperties(cudaDeviceProp* p, int) { std::memset(p, 0, sizeof(*p)); std::strcpy(p->name, "emulator"); p->major = 9; return cudaSuccess; }
inline cudaError_t emu_cudaMemGetInfo(size_t* f, size_t* t) {
  const size_t used = emu_device_bytes_in_use();
  *t = kEmuDeviceBytes;
  *f = used < kEmuDeviceBytes ? kEmuDeviceBytes - used : 0;
  return cudaSuccess;
}
// Events: an event is always complete, and the host clock at cudaEventRecord
// is its time; waiting on it lands the pinned copies enqueued before it.
struct EmuEvent {
  std::chrono::steady_clock::time_point t{};
  bool recorded = false;
  uint64_t copies = 0;  // pinned copies enqueued before the record
};
inline cudaError_t emu_cudaEventCreate(cudaEvent_t* e) {
  *e = reinterpret_cast<cudaEvent_t>(new EmuEvent);
  return cudaSuccess;
}
inline cudaError_t emu_cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return emu_cudaEventCreate(e); }
inline cudaError_t emu_cudaEventDestroy(cudaEvent_t e) {
  delete reinterpret_cast<EmuEvent*>(e);
  return cudaSuccess;
}
inline cudaError_t emu_cudaEventRecord(cudaEvent_t e, cudaStream_t = 0) {
  auto* ev = reinterpret_cast<EmuEvent*>(e);
  ev->t = std::chrono::steady_clock::now();
  ev->recorded = true;
  std::lock_guard<std::mutex> l(emu_async().mu);
  ev->copies = emu_async().seq;
  return cudaSuccess;
}
inline cudaError_t emu_cudaEventSynchronize(cudaEvent_t e) {
  emu_land_copies(reinterpret_cast<EmuEvent*>(e)->copies);
  return cudaSuccess;
}
inline cudaError_t emu_cudaEventQuery(cudaEvent_t e) { return emu_cudaEventSynchronize(e); }
inline cudaError_t emu_cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
  const auto *ea = reinterpret_cast<EmuEvent*>(a), *eb = reinterpret_cast<EmuEvent*>(b);
  if (!ea->recorded || !eb->recorded) return cudaErrorInvalidResourceHandle;  // as CUDA: never recorded
  *ms = std::chrono::duration<float, std::milli>(eb->t - ea->t).count();
  return cudaSuccess;
}

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
#define cudaEventCreate emu_cudaEventCreate
#define cudaEventCreateWithFlags emu_cudaEventCreateWithFlags
#define cudaEventDestroy emu_cudaEventDestroy
#define cudaEventRecord emu_cudaEventRecord
#define cudaEventQuery emu_cudaEventQuery
#define cudaEventSynchronize emu_cudaEventSynchronize
#define cudaEventElapsedTime emu_cudaEventElapsedTime
#define cudaGetLastError() cudaSuccess
#define cudaPeekAtLastError() cudaSuccess
