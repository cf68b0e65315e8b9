// CPU emulation of the CUDA execution model for testing kernels without a GPU.
// Blocks run one after another, in a shuffled order (emu_launch); the threads
// of a block are host threads (a pool of persistent std::threads, EmuPool below);
// __syncthreads and __syncwarp are std::barrier; shuffles go through a per-warp
// exchange array between two warp barriers; __shared__ is `static` (shared by
// the block's threads; blocks do not overlap). Dynamic shared memory is filled
// with NaN before each block, to catch reads of unwritten shared memory.
#pragma once
#include "cuda/cuda_check.h"
#include <algorithm>
#include <barrier>
#include <thread>
#include <vector>
#include <functional>
#include <cmath>
#include <cstring>
#include <memory>
#include <mutex>
#include <atomic>
#include <cstdio>
#include <semaphore>
#include <cstdint>
#include <pthread.h>
#include <random>
#include <string>

struct EmuWarp { std::unique_ptr<std::barrier<>> bar; double slots[32]; };
struct EmuCtx {
  dim3 tid, bid, bdim, gdim;
  std::barrier<>* block_bar = nullptr;
  EmuWarp* warp = nullptr;
};
inline thread_local EmuCtx emu;
#if defined(__SANITIZE_THREAD__) && defined(_OPENMP)
// Under ThreadSanitizer, OpenMP (the CPU references) runs one thread unless
// OMP_NUM_THREADS says otherwise: libgomp is not instrumented, so TSan does not
// see its barriers and reports false races between the team's threads.
#include <cstdlib>
#include <omp.h>
inline const bool emu_tsan_omp_serial = [] {
  if (!std::getenv("OMP_NUM_THREADS")) omp_set_num_threads(1);
  return true;
}();
#endif
inline float* emu_dyn_smem = nullptr;
inline std::atomic<long> emu_launches{0};

#define threadIdx (emu.tid)
#define blockIdx (emu.bid)
#define blockDim (emu.bdim)
#define gridDim (emu.gdim)
// cuda_runtime.h (emu_runtime.h) defined these for nvcc: replace them.
#undef __global__
#undef __device__
#undef __forceinline__
#undef __launch_bounds__
#undef __shared__
#define __global__
#define __device__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __shared__ static
#undef cudaFuncSetAttribute
#define cudaFuncSetAttribute(...) cudaSuccess
#define cudaGetLastError() cudaSuccess
// Kernel attributes: the emulated kernels count as built for sm_90.
inline cudaError_t emu_cudaFuncGetAttributes(cudaFuncAttributes* a) {
  std::memset(a, 0, sizeof(*a));
  a->ptxVersion = 90;
  a->binaryVersion = 90;
  a->maxThreadsPerBlock = 1024;
  return cudaSuccess;
}
#undef cudaFuncGetAttributes
#define cudaFuncGetAttributes(attr, func) emu_cudaFuncGetAttributes(attr)

inline void __syncthreads() { emu.block_bar->arrive_and_wait(); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu.warp->bar->arrive_and_wait(); }

// ThreadSanitizer (SAN=thread: the stand-in for compute-sanitizer's racecheck).
// TSan understands std::barrier and the pool's semaphores by itself (they are
// atomics in the headers, so instrumented): __syncthreads/__syncwarp order
// memory, as on a GPU. A shuffle does not: it moves registers, it is no memory
// barrier (only __syncwarp is), so a kernel that writes shared memory and reads
// another lane's element after a shuffle but without __syncwarp races on a GPU.
// Here a shuffle's two warp barriers are hidden from TSan (IgnoreSync), and so
// are the emulator's own accesses to the slot array they protect.
#if defined(__SANITIZE_THREAD__)
extern "C" void AnnotateIgnoreSyncBegin(const char* file, int line);
extern "C" void AnnotateIgnoreSyncEnd(const char* file, int line);
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
extern "C" void AnnotateIgnoreWritesBegin(const char* file, int line);
extern "C" void AnnotateIgnoreWritesEnd(const char* file, int line);
// A warp barrier TSan does not see: neither its synchronisation nor the
// barrier's own plain fields (std::barrier's _M_expected, ordered by the
// synchronisation that is hidden).
inline void emu_shfl_barrier() {
  AnnotateIgnoreSyncBegin(__FILE__, __LINE__);
  AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
  AnnotateIgnoreWritesBegin(__FILE__, __LINE__);
  emu.warp->bar->arrive_and_wait();
  AnnotateIgnoreWritesEnd(__FILE__, __LINE__);
  AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
  AnnotateIgnoreSyncEnd(__FILE__, __LINE__);
}
#define EMU_TSAN(what) Annotate##what(__FILE__, __LINE__)
#else
inline void emu_shfl_barrier() { emu.warp->bar->arrive_and_wait(); }
#define EMU_TSAN(what) ((void)0)
#endif
template <typename T> T __shfl_xor_sync(unsigned, T v, int o) {
  const int lane = emu.tid.x % 32;
  EMU_TSAN(IgnoreWritesBegin);
  emu.warp->slots[lane] = double(v);
  EMU_TSAN(IgnoreWritesEnd);
  emu_shfl_barrier();
  EMU_TSAN(IgnoreReadsBegin);
  const T r = T(emu.warp->slots[lane ^ o]);
  EMU_TSAN(IgnoreReadsEnd);
  emu_shfl_barrier();
  return r;
}
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }

// cp.async (cuda/device_util.cuh's cp_async<16 or 4>, commit, wait): as on a
// GPU, a copy lands in shared memory only at a wait that covers its group, so a
// kernel that reads a tile before cp_async_wait (or, for another thread's
// copies, before the __syncthreads after it) reads the block's NaN fill or the
// previous tile. The source is read at issue (the kernels' sources are not
// written while a launch runs). A thread that ends with copies pending aborts.
#define GT_CUDA_EMU 1
struct EmuCpAsyncCopy {
  void* dst;
  int bytes;
  unsigned char data[16];
};
struct EmuCpAsyncQueue {
  std::vector<EmuCpAsyncCopy> open;                    // issued since the last commit
  std::vector<std::vector<EmuCpAsyncCopy>> committed;  // oldest first
};
inline thread_local EmuCpAsyncQueue emu_cp_queue;
inline void emu_cp_async(void* smem, const void* gmem, int cp_bytes, int src_bytes) {
  if (src_bytes < 0 || src_bytes > cp_bytes) { std::fprintf(stderr, "emu: cp.async src-size %d\n", src_bytes); std::abort(); }
  if ((reinterpret_cast<uintptr_t>(smem) | (src_bytes ? reinterpret_cast<uintptr_t>(gmem) : 0)) % uintptr_t(cp_bytes)) {
    std::fprintf(stderr, "emu: cp.async of %d bytes misaligned\n", cp_bytes);
    std::abort();
  }
  EmuCpAsyncCopy c{smem, cp_bytes, {}};
  if (src_bytes) std::memcpy(c.data, gmem, size_t(src_bytes));  // the rest stays zero (zero fill)
  emu_cp_queue.open.push_back(c);
}
inline void emu_cp_async_commit() {
  emu_cp_queue.committed.push_back(std::move(emu_cp_queue.open));
  emu_cp_queue.open.clear();
}
// Lands every committed group but the `pending` most recent ones.
inline void emu_cp_async_wait(int pending) {
  auto& q = emu_cp_queue.committed;
  const size_t land = q.size() > size_t(pending) ? q.size() - size_t(pending) : 0;
  for (size_t g = 0; g < land; ++g)
    for (const EmuCpAsyncCopy& c : q[g]) std::memcpy(c.dst, c.data, size_t(c.bytes));
  q.erase(q.begin(), q.begin() + ptrdiff_t(land));
}
inline void emu_cp_async_check_drained() {
  if (!emu_cp_queue.open.empty() || !emu_cp_queue.committed.empty()) {
    std::fprintf(stderr, "emu: a thread ended with cp.async copies that no wait landed\n");
    std::abort();
  }
}
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }

// A pool of persistent host threads that play a block's CUDA threads: creating
// (and, under ASan, registering) a std::thread per CUDA thread per block cost
// most of the emulator's time. Thread i of the pool is thread i of the block;
// the pool grows to the largest block seen. Leaked on purpose (detached
// workers blocked on a condition variable at exit).
struct EmuPool {
  struct Worker { std::binary_semaphore go{0}; };
  std::vector<std::unique_ptr<Worker>> workers;
  std::binary_semaphore done{0};
  std::atomic<int> remaining{0};
  const std::function<void(int)>* job = nullptr;
  void grow(int n) {
    while (int(workers.size()) < n) {
      const int i = int(workers.size());
      workers.push_back(std::make_unique<Worker>());
      std::thread([this, i, w = workers.back().get()] {
        // Named after its linear thread index in the block (threadIdx.x +
        // blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z)): TSan's
        // reports print it ("Thread T42 'emu-t41'").
        char name[16];
        std::snprintf(name, sizeof name, "emu-t%d", i);
        pthread_setname_np(pthread_self(), name);
        for (;;) {
          w->go.acquire();  // also publishes `job`
          (*job)(i);
          if (remaining.fetch_sub(1) == 1) done.release();
        }
      }).detach();
    }
  }
  // Runs f(0..n-1) on pool threads 0..n-1 and waits for all of them.
  void run(int n, const std::function<void(int)>& f) {
    grow(n);
    job = &f;
    remaining = n;
    for (int i = 0; i < n; ++i) workers[size_t(i)]->go.release();
    done.acquire();
  }
};
inline EmuPool& emu_pool() {
  static EmuPool* p = new EmuPool;
  return *p;
}

inline void emu_launch(dim3 grid, dim3 block, size_t smem, const std::function<void()>& f) {
  ++emu_launches;
  const int nt = int(block.x * block.y * block.z);
  if (nt < 1 || nt > 1024) { std::fprintf(stderr, "emu: block of %d threads\n", nt); std::abort(); }
  // A block whose size is not a multiple of 32 (e.g. <<<1, 1>>>) ends with a
  // partial warp: its barrier counts only the threads it has (a shuffle there
  // reads the absent lanes' stale slots; on a GPU that is undefined too).
  const int nwarps = (nt + 31) / 32;
  // Dynamic shared memory starts 128-byte aligned, as on a GPU (WMMA needs 32).
  std::vector<float> dyn_store(smem / 4 + 8 + 32);
  float* const dyn_base = reinterpret_cast<float*>((reinterpret_cast<uintptr_t>(dyn_store.data()) + 127) & ~uintptr_t(127));
  const size_t dyn_n = smem / 4 + 8;
  // Blocks run one at a time, in a shuffled order (a fixed seed per launch, so
  // runs repeat): a GPU gives no order, and a kernel whose block reads what
  // another block of the same launch writes would pass in index order.
  // EMU_BLOCK_ORDER=forward gives index order.
  static const bool forward = [] {
    const char* v = std::getenv("EMU_BLOCK_ORDER");
    return v && std::string(v) == "forward";
  }();
  std::vector<uint64_t> order(size_t(grid.x) * grid.y * grid.z);
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  if (!forward) std::shuffle(order.begin(), order.end(), std::mt19937_64(uint64_t(emu_launches.load())));
  for (const uint64_t linear : order) {
    const unsigned bx = unsigned(linear % grid.x), by = unsigned(linear / grid.x % grid.y),
                   bz = unsigned(linear / (uint64_t(grid.x) * grid.y));
    std::fill(dyn_base, dyn_base + dyn_n, NAN);
    emu_dyn_smem = dyn_base;
    std::barrier<> bar(nt);
    std::vector<EmuWarp> warps(static_cast<size_t>(nwarps));
    for (int w = 0; w < nwarps; ++w)
      warps[size_t(w)].bar = std::make_unique<std::barrier<>>(std::min(32, nt - 32 * w));
    const std::function<void(int)> thread_body = [&](int t) {
      emu.tid = dim3(t % block.x, (t / block.x) % block.y, t / (block.x * block.y));
      emu.bid = dim3(bx, by, bz);
      emu.bdim = block;
      emu.gdim = grid;
      emu.block_bar = &bar;
      emu.warp = &warps[t / 32];
      f();
      emu_cp_async_check_drained();
      bar.arrive_and_drop();
      emu.warp->bar->arrive_and_drop();
    };
    emu_pool().run(nt, thread_body);
  }
}

// WMMA (nvcuda::wmma) emulation; gen.py also maps `#include <mma.h>` to it.
#include "emu_wmma.h"
