#pragma once
#include <algorithm>
#include <vector>
namespace cub {
struct DeviceRadixSort {
  template <class K, class V>
  static cudaError_t SortPairs(void* temp, size_t& bytes, const K* kin, K* kout, const V* vin, V* vout, int n,
                               int = 0, int = int(sizeof(K) * 8), cudaStream_t = 0) {
    if (!temp) { bytes = 64; return cudaSuccess; }
    std::vector<std::pair<K, V>> v(n);
    for (int i = 0; i < n; ++i) v[i] = {kin[i], vin[i]};
    std::stable_sort(v.begin(), v.end(), [](auto& a, auto& b) { return a.first < b.first; });
    for (int i = 0; i < n; ++i) kout[i] = v[i].first, vout[i] = v[i].second;
    return cudaSuccess;
  }
};
}  // namespace cub
