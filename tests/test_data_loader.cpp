// TrainLoader / ValLoader: coverage, exact restore, rank slices, shuffling, errors.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>

#include "core/error.h"
#include "core/fs_util.h"
#include "data/loader.h"
#include "data/shard.h"
#include "data/tokenizer.h"
#include "test_util.h"

using namespace gt;
namespace fs = std::filesystem;
using json = nlohmann::json;

using gt::test::TempDir;

namespace {

constexpr int64_t kVocab = 1 << 24;
constexpr int32_t kShardStride = 1'000'000;  // token = shard * kShardStride + offset

// Shards whose tokens name their own position, so a window tells where it came from.
void make_shards(const TempDir& d, const std::vector<int>& sizes, const std::string& prefix = "train",
                 uint64_t hash = 42, int64_t vocab = kVocab) {
  for (size_t s = 0; s < sizes.size(); s++) {
    ShardHeader h;
    h.vocab_size = uint64_t(vocab);
    h.tokenizer_hash = hash;
    h.eos_id = 0;
    std::vector<int32_t> t(size_t(sizes[s]));
    for (int i = 0; i < sizes[s]; i++) t[size_t(i)] = int32_t(s) * kShardStride + i;
    write_shard(d / fmt::format("{}_{:05d}.bin", prefix, s), h, t);
  }
}

LoaderOptions opts(const TempDir& d, int seq_len, uint64_t seed = 1) {
  LoaderOptions o;
  o.shards = {d / "train_*.bin"};
  o.seq_len = seq_len;
  o.seed = seed;
  return o;
}

// Windows as (shard, first token) pairs, checking each is contiguous.
std::vector<std::pair<int, int>> take(TrainLoader& l, int batches, int B, int seq_len) {
  const int T1 = seq_len + 1;
  std::vector<int32_t> buf(size_t(B * T1));
  std::vector<std::pair<int, int>> out;
  for (int i = 0; i < batches; i++) {
    l.next_batch(B, buf.data());
    for (int b = 0; b < B; b++) {
      const int32_t* w = buf.data() + b * T1;
      for (int t = 1; t < T1; t++) EXPECT_EQ(w[t], w[0] + t) << "window not contiguous";
      out.emplace_back(w[0] / kShardStride, w[0] % kShardStride);
    }
  }
  return out;
}

std::set<std::pair<int, int>> all_windows(const std::vector<int>& sizes, int seq_len) {
  std::set<std::pair<int, int>> s;
  for (size_t i = 0; i < sizes.size(); i++)
    for (int w = 0; w + seq_len + 1 <= sizes[i]; w += seq_len) s.emplace(int(i), w);
  return s;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

const std::vector<int> kSizes = {1000, 257, 17, 1, 513, 640};

}  // namespace

TEST(DataLoader, OneEpochCoversEveryWindowOnce) {
  TempDir d;
  make_shards(d, kSizes);
  const int seq = 16;
  TrainLoader l(opts(d, seq));
  const auto want = all_windows(kSizes, seq);
  ASSERT_EQ(l.windows_per_epoch(), int64_t(want.size()));
  EXPECT_EQ(l.total_tokens(), 1000 + 257 + 17 + 1 + 513 + 640);
  EXPECT_EQ(l.vocab_size(), kVocab);
  EXPECT_EQ(l.tokenizer_hash(), hex64(42));
  auto got = take(l, int(want.size()), 1, seq);
  EXPECT_EQ(std::set(got.begin(), got.end()), want);
  EXPECT_EQ(got.size(), want.size());  // no repeats
  // Windows overlap by one token: stride seq_len.
  EXPECT_TRUE(want.count({0, 16}) && want.count({0, 32}));
  EXPECT_EQ(l.epoch(), 0);
  take(l, 1, 1, seq);
  EXPECT_EQ(l.epoch(), 1);
}

TEST(DataLoader, ShuffleIsPerEpochAndDeterministicBySeed) {
  TempDir d;
  make_shards(d, kSizes);
  const int seq = 16;
  const int n = int(all_windows(kSizes, seq).size());
  TrainLoader a(opts(d, seq, 7)), b(opts(d, seq, 7)), c(opts(d, seq, 8));
  auto a0 = take(a, n, 1, seq), a1 = take(a, n, 1, seq);
  auto b0 = take(b, n, 1, seq), c0 = take(c, n, 1, seq);
  EXPECT_EQ(a0, b0);
  EXPECT_NE(a0, a1);
  EXPECT_NE(a0, c0);
  EXPECT_EQ(std::set(a0.begin(), a0.end()), std::set(a1.begin(), a1.end()));
  // Shards are visited one at a time (locality), in an order that changes.
  auto shard_order = [](const std::vector<std::pair<int, int>>& w) {
    std::vector<int> o;
    for (auto& [s, off] : w)
      if (o.empty() || o.back() != s) o.push_back(s);
    return o;
  };
  EXPECT_EQ(shard_order(a0).size(), 5u);  // shard 3 (1 token) has no window
  EXPECT_NE(shard_order(a0), shard_order(a1));
  // Window order inside a shard is shuffled too.
  std::vector<int> offs;
  for (auto& [s, off] : a0)
    if (s == 0) offs.push_back(off);
  EXPECT_FALSE(std::is_sorted(offs.begin(), offs.end()));
}

TEST(DataLoader, RestoreIsExactAcrossEpochs) {
  TempDir d;
  make_shards(d, kSizes);
  const int seq = 16, B = 7;
  const int per_epoch = int(all_windows(kSizes, seq).size());  // 150: not a multiple of B
  const int steps = 3 * per_epoch / B + 4;
  for (int prefetch : {0, 1, 4}) {
    auto o = opts(d, seq, 3);
    o.prefetch = prefetch;
    TrainLoader ref(o);
    auto want = take(ref, steps, B, seq);
    for (int cut : {0, 1, per_epoch / B - 1, per_epoch / B, per_epoch / B + 1, 2 * per_epoch / B + 3}) {
      TrainLoader first(o);
      auto head = take(first, cut, B, seq);
      json pos = first.position();
      take(first, 3, B, seq);  // the prefetcher runs ahead; position() must not
      // Restore into a fresh loader, via text as in a checkpoint.
      TrainLoader second(o);
      second.restore(json::parse(pos.dump()));
      auto tail = take(second, steps - cut, B, seq);
      head.insert(head.end(), tail.begin(), tail.end());
      EXPECT_EQ(head, want) << "prefetch " << prefetch << " cut " << cut;
      // Restoring the same loader mid-stream works too.
      first.restore(pos);
      EXPECT_EQ(take(first, 2, B, seq), std::vector(want.begin() + cut * B, want.begin() + (cut + 2) * B));
    }
  }
}

TEST(DataLoader, RankSlicesAreDisjointAndCoverEverything) {
  TempDir d;
  make_shards(d, kSizes);
  const int seq = 16;
  const int n = int(all_windows(kSizes, seq).size());
  for (int world : {1, 2, 3, 7}) {
    std::multiset<std::pair<int, int>> all;
    for (int r = 0; r < world; r++) {
      auto o = opts(d, seq, 5);
      o.rank = r;
      o.world_size = world;
      TrainLoader l(o);
      const int mine = (n - r + world - 1) / world;  // rank r takes stream windows r, r+W, ...
      auto w = take(l, mine, 1, seq);
      all.insert(w.begin(), w.end());
      EXPECT_EQ(l.epoch(), 0);
    }
    EXPECT_EQ(int(all.size()), n) << world;
    EXPECT_EQ(std::set(all.begin(), all.end()), all_windows(kSizes, seq)) << world;
  }
}

TEST(DataLoader, ValLoaderIsTheFirstWindowsInOrder) {
  TempDir d;
  make_shards(d, {100, 50, 300}, "val");
  LoaderOptions o;
  o.shards = {d / "val_*.bin"};
  o.seq_len = 32;
  ValLoader all(o, 0);
  EXPECT_EQ(all.num_windows(), 3 + 1 + 9);
  ValLoader v(o, 6);
  ASSERT_EQ(v.num_windows(), 6);
  std::vector<int32_t> buf(6 * 33), again(6 * 33);
  v.window_batch(0, 6, buf.data());
  v.window_batch(0, 6, again.data());
  EXPECT_EQ(buf, again);
  const std::vector<int32_t> starts = {0, 32, 64, kShardStride, 2 * kShardStride, 2 * kShardStride + 32};
  for (int b = 0; b < 6; b++) EXPECT_EQ(buf[size_t(b * 33)], starts[size_t(b)]);
  v.window_batch(4, 2, again.data());
  EXPECT_TRUE(std::equal(again.begin(), again.begin() + 66, buf.begin() + 4 * 33));
  EXPECT_NE(error_of([&] { v.window_batch(5, 2, buf.data()); }).find("only 6"), std::string::npos);
}

TEST(DataLoader, ErrorsSayWhatToDo) {
  TempDir d;
  make_shards(d, {300, 300});
  auto expect = [](const std::string& e, std::initializer_list<std::string> parts) {
    for (auto& p : parts) EXPECT_NE(e.find(p), std::string::npos) << "missing '" << p << "' in: " << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  };
  auto o = opts(d, 16);
  o.shards = {d / "nope_*.bin"};
  expect(error_of([&] { TrainLoader l(o); }), {"no training shards match", "nope_*.bin", "galore-tokenize",
                                               "data_tools/prepare_sample.sh"});
  o = opts(d, 16);
  o.expected_vocab = 32000;
  expect(error_of([&] { TrainLoader l(o); }), {"vocab_size 16777216", "model's vocab_size is 32000", "must be equal"});
  o = opts(d, 16);
  o.expected_tokenizer_hash = hex64(43);
  expect(error_of([&] { TrainLoader l(o); }), {"train_00000.bin", hex64(42), hex64(43), "re-tokenize"});
  o = opts(d, 16);
  o.expected_vocab = kVocab;
  o.expected_tokenizer_hash = hex64(42);
  EXPECT_EQ(error_of([&] { TrainLoader l(o); }), "(no error)");

  o = opts(d, 300);  // 301 tokens per window, shards hold 300
  expect(error_of([&] { TrainLoader l(o); }), {"seq_len+1 = 301", "largest 300 tokens", "smaller training.seq_len"});
  expect(error_of([&] { ValLoader v(o, 10); }), {"seq_len+1 = 301", "validation"});

  // Mixed tokenizers.
  TempDir d2;
  make_shards(d2, {300});
  make_shards(d2, {300, 300}, "train", 99);
  fs::rename(d2 / "train_00001.bin", d2 / "train_00009.bin");
  make_shards(d2, {300});
  o = opts(d2, 16);
  expect(error_of([&] { TrainLoader l(o); }), {"train_00009.bin", "tokenizer", "one tokenizer"});

  // A corrupt shard.
  std::ofstream(d / "train_00002.bin", std::ios::binary) << std::string(100, 'x');
  expect(error_of([&] { TrainLoader l(opts(d, 16)); }), {"train_00002.bin", "bad magic"});
  fs::remove(d / "train_00002.bin");

  // Positions only restore into the same data settings.
  TrainLoader a(opts(d, 16, 1));
  json pos = a.position();
  TrainLoader b(opts(d, 16, 2));
  expect(error_of([&] { b.restore(pos); }), {"seed", "same data"});
  TrainLoader c(opts(d, 8, 1));
  expect(error_of([&] { c.restore(pos); }), {"seq_len"});
  expect(error_of([&] { a.restore(json{{"epoch", 1}}); }), {"not a position"});

  o = opts(d, 16);
  o.rank = 2;
  o.world_size = 2;
  expect(error_of([&] { TrainLoader l(o); }), {"rank 2 of world_size 2"});
}
