// Streaming training data for the trainer (docs/DATA.md "Loader").
//
// Shards hold documents back to back, EOS-separated. A shard of n tokens is
// cut into (n - 1) / seq_len windows of seq_len + 1 tokens at stride seq_len:
// consecutive windows share one token, so every token but a shard's first is
// a target exactly once. Windows never cross shards (a shard's last
// < seq_len tokens are unused) and there is no padding.
//
// Order: every epoch shuffles the shard order, and the window order inside
// each shard, with seeds derived from (seed, epoch[, shard]); there is no
// running RNG, so a position is just (epoch, shard cursor, window cursor).
// Ranks take every world_size-th window of that stream (rank r takes stream
// windows r, r + W, ...), so ranks are disjoint and together cover it all.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>
#include <nlohmann/json.hpp>

namespace gt {

struct LoaderOptions {
  std::vector<std::string> shards;   // paths or globs
  int seq_len = 256;                 // windows are seq_len+1 tokens
  uint64_t seed = 0;
  int rank = 0, world_size = 1;      // data-parallel slice
  int prefetch = 4;                  // batches prefetched by a background thread (0 = none)
  int64_t expected_vocab = -1;       // >0: error unless the shards' vocab_size equals it (the model's vocab_size)
  std::string expected_tokenizer_hash;  // non-empty: error if shards were made with another tokenizer
};

class TrainLoader {
 public:
  explicit TrainLoader(const LoaderOptions&);
  ~TrainLoader();
  TrainLoader(const TrainLoader&) = delete;
  TrainLoader& operator=(const TrainLoader&) = delete;

  // Next B windows: tokens[B*(seq_len+1)] int32; inputs are [:, :-1], targets [:, 1:].
  void next_batch(int B, int32_t* tokens);
  // Exact position after the last returned batch (the consumer's, not the
  // prefetcher's): epoch, shard cursor, window cursor, and the settings it is valid for.
  nlohmann::json position() const;
  // Then next_batch continues exactly where position() was taken. Errors if
  // the position was taken with another seed, seq_len, rank slice or shard set.
  void restore(const nlohmann::json& pos);

  int64_t vocab_size() const;
  const std::string& tokenizer_hash() const;
  int64_t total_tokens() const;       // in this loader's shards
  int64_t windows_per_epoch() const;  // all ranks together
  int64_t epoch() const;              // epoch of the last returned window (0 before any)

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A fixed set of windows (the first n windows of the val shards, in order),
// the same every call. Every rank sees the same set (rank/world_size are
// ignored); split the index range across ranks in the caller if wanted.
class ValLoader {
 public:
  ValLoader(const LoaderOptions&, int64_t max_windows);  // max_windows <= 0: all windows
  ~ValLoader();
  int64_t num_windows() const;
  void window_batch(int64_t first, int B, int32_t* tokens) const;  // windows first..first+B-1
  int64_t vocab_size() const;
  const std::string& tokenizer_hash() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace gt
