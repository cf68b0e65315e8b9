#include "data/loader.h"

#include <condition_variable>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/rng.h"
#include "data/c4_reader.h"
#include "data/shard.h"
#include "data/tokenize.h"
#include "data/tokenizer.h"

namespace gt {

namespace {

using json = nlohmann::json;

uint64_t mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}
// Independent seeds per (epoch) and (epoch, shard).
uint64_t derive_seed(uint64_t seed, uint64_t a, uint64_t b) { return mix64(mix64(mix64(seed) ^ a) ^ b); }
constexpr uint64_t kOrderStream = ~0ULL;

std::string basename_of(const std::string& p) {
  auto s = p.find_last_of('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

// Opens and cross-checks a set of shards for `what` ("training"/"validation").
std::vector<Shard> open_shards(const LoaderOptions& o, const char* what) {
  if (o.seq_len < 1) fail("seq_len must be >= 1, got {}", o.seq_len);
  std::vector<Shard> shards;
  for (auto& p : expand_globs(o.shards, fmt::format("{} shards", what), kMakeShardsHint)) shards.emplace_back(p);
  const Shard& first = shards.front();
  for (auto& s : shards) {
    if (s.header().tokenizer_hash != first.header().tokenizer_hash || s.header().vocab_size != first.header().vocab_size)
      fail("{} was made with tokenizer {} (vocab {}) but {} with tokenizer {} (vocab {}); use shards of one "
           "tokenizer", s.path(), hex64(s.header().tokenizer_hash), s.header().vocab_size, first.path(),
           hex64(first.header().tokenizer_hash), first.header().vocab_size);
  }
  const int64_t vocab = int64_t(first.header().vocab_size);
  if (o.expected_vocab > 0 && vocab != o.expected_vocab)
    fail("{}: the {} shards have vocab_size {} but the model's vocab_size is {}; they must be equal: set "
         "model.vocab_size to {} or re-tokenize with the model's tokenizer", first.path(), what, vocab,
         o.expected_vocab, vocab);
  if (!o.expected_tokenizer_hash.empty() && hex64(first.header().tokenizer_hash) != o.expected_tokenizer_hash)
    fail("{}: the {} shards were made with tokenizer hash {} but the configured tokenizer has hash {}; "
         "re-tokenize with that tokenizer or point data.tokenizer at the one the shards were made with",
         first.path(), what, hex64(first.header().tokenizer_hash), o.expected_tokenizer_hash);
  return shards;
}

int64_t windows_in(const Shard& s, int seq_len) {
  return s.num_tokens() > seq_len ? (s.num_tokens() - 1) / seq_len : 0;
}

void fail_too_short(const std::vector<Shard>& shards, int seq_len, const char* what) {
  int64_t total = 0, largest = 0;
  for (auto& s : shards) { total += s.num_tokens(); largest = std::max(largest, s.num_tokens()); }
  fail("seq_len+1 = {} tokens is longer than every {} shard (largest {} tokens, {} in {} shards, first {}); "
       "use a smaller training.seq_len or more data", seq_len + 1, what, largest, total, shards.size(),
       shards.front().path());
}

}  // namespace

// ---------------------------------------------------------------------------
// TrainLoader

struct TrainLoader::Impl {
  // Stream position: window `j` of the `k`-th shard in epoch `epoch`'s shard
  // order; `g` counts windows of all ranks since the epoch began.
  struct Cursor {
    int64_t epoch = 0, k = 0, j = 0, g = 0;
  };
  struct Window {
    std::vector<int32_t> tokens;
    Cursor after;  // consumer position once this window is returned
  };

  LoaderOptions o;
  std::vector<Shard> shards;
  std::vector<int64_t> nwin;  // windows per shard
  int64_t total_windows = 0, total_tokens = 0;
  std::string hash;
  std::string fingerprint;    // identifies the shard set in positions

  // Producer-side caches (touched only by whoever produces).
  int64_t order_epoch = -1;
  std::vector<int64_t> order;
  int64_t perm_epoch = -1, perm_shard = -1;
  std::vector<int64_t> perm;

  Cursor consumer;  // after the last returned window
  Cursor producer;  // after the last produced window

  // Prefetch queue.
  std::thread thread;
  std::mutex mu;
  std::condition_variable cv;
  std::deque<Window> q;
  size_t capacity = 0;
  bool stop = false;
  std::exception_ptr error;

  const std::vector<int64_t>& order_for(int64_t epoch) {
    if (order_epoch != epoch) {
      order.resize(shards.size());
      for (size_t i = 0; i < order.size(); i++) order[i] = int64_t(i);
      Rng(derive_seed(o.seed, uint64_t(epoch), kOrderStream)).shuffle(order.begin(), order.end());
      order_epoch = epoch;
    }
    return order;
  }
  const std::vector<int64_t>& perm_for(int64_t epoch, int64_t s) {
    if (perm_epoch != epoch || perm_shard != s) {
      perm.resize(size_t(nwin[size_t(s)]));
      for (size_t i = 0; i < perm.size(); i++) perm[i] = int64_t(i);
      Rng(derive_seed(o.seed, uint64_t(epoch), uint64_t(s))).shuffle(perm.begin(), perm.end());
      perm_epoch = epoch;
      perm_shard = s;
    }
    return perm;
  }

  // Advances `c` past this rank's next window and reads it.
  void produce(Cursor& c, Window* w) {
    for (;;) {
      if (c.k == int64_t(shards.size())) c = Cursor{c.epoch + 1, 0, 0, 0};
      const int64_t s = order_for(c.epoch)[size_t(c.k)];
      if (c.j >= nwin[size_t(s)]) {
        c.k++;
        c.j = 0;
        continue;
      }
      const bool mine = c.g % o.world_size == o.rank;
      const int64_t j = c.j++;
      c.g++;
      if (!mine) continue;
      const int64_t win = perm_for(c.epoch, s)[size_t(j)];
      w->tokens.resize(size_t(o.seq_len) + 1);
      shards[size_t(s)].read(win * o.seq_len, o.seq_len + 1, w->tokens.data());
      w->after = c;
      return;
    }
  }

  void run() {
    // Produce in small groups outside the lock, then publish them at once.
    std::vector<Window> group;
    for (;;) {
      size_t room;
      {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return stop || q.size() < capacity; });
        if (stop) return;
        room = std::min<size_t>(capacity - q.size(), 32);
      }
      group.resize(room);
      try {
        for (auto& w : group) produce(producer, &w);
      } catch (...) {
        std::lock_guard<std::mutex> lk(mu);
        error = std::current_exception();
        cv.notify_all();
        return;
      }
      std::lock_guard<std::mutex> lk(mu);
      for (auto& w : group) q.push_back(std::move(w));
      cv.notify_all();
    }
  }

  void stop_thread() {
    if (!thread.joinable()) return;
    {
      std::lock_guard<std::mutex> lk(mu);
      stop = true;
    }
    cv.notify_all();
    thread.join();
    stop = false;
    q.clear();
    error = nullptr;
  }
};

TrainLoader::TrainLoader(const LoaderOptions& opt) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.o = opt;
  if (opt.world_size < 1 || opt.rank < 0 || opt.rank >= opt.world_size)
    fail("data-parallel rank {} of world_size {} is invalid (need 0 <= rank < world_size)", opt.rank, opt.world_size);
  if (opt.prefetch < 0) fail("data.prefetch must be >= 0, got {}", opt.prefetch);
  m.shards = open_shards(opt, "training");
  m.hash = hex64(m.shards.front().header().tokenizer_hash);
  uint64_t fp = 0xcbf29ce484222325ULL;
  for (auto& s : m.shards) {
    m.nwin.push_back(windows_in(s, opt.seq_len));
    m.total_windows += m.nwin.back();
    m.total_tokens += s.num_tokens();
    const std::string id = basename_of(s.path()) + ":" + std::to_string(s.num_tokens()) + ";";
    fp = fnv1a64(id.data(), id.size(), fp);
  }
  m.fingerprint = hex64(fp);
  if (m.total_windows == 0) fail_too_short(m.shards, opt.seq_len, "training");
  if (m.total_windows < opt.world_size)
    fail("the training shards hold {} windows of seq_len+1 = {} tokens, fewer than world_size {}; use more data",
         m.total_windows, opt.seq_len + 1, opt.world_size);
}

TrainLoader::~TrainLoader() { impl_->stop_thread(); }

void TrainLoader::next_batch(int B, int32_t* tokens) {
  Impl& m = *impl_;
  GT_ASSERT(B > 0);
  const size_t T1 = size_t(m.o.seq_len) + 1;
  if (m.o.prefetch == 0) {  // synchronous: producer and consumer are one
    Impl::Window w;
    for (int b = 0; b < B; b++) {
      m.produce(m.producer, &w);
      std::copy(w.tokens.begin(), w.tokens.end(), tokens + size_t(b) * T1);
    }
    m.consumer = m.producer;
    return;
  }
  std::unique_lock<std::mutex> lk(m.mu);
  m.capacity = std::max(m.capacity, size_t(m.o.prefetch) * size_t(B));
  if (!m.thread.joinable()) m.thread = std::thread([&m] { m.run(); });
  m.cv.notify_all();
  // Take the whole batch in one go (one wake-up per batch, not per window).
  m.cv.wait(lk, [&] { return m.q.size() >= size_t(B) || m.error; });
  if (m.q.size() < size_t(B)) std::rethrow_exception(m.error);
  for (int b = 0; b < B; b++) {
    const Impl::Window& w = m.q[size_t(b)];
    std::copy(w.tokens.begin(), w.tokens.end(), tokens + size_t(b) * T1);
    m.consumer = w.after;
  }
  m.q.erase(m.q.begin(), m.q.begin() + B);
  m.cv.notify_all();
}

json TrainLoader::position() const {
  const Impl& m = *impl_;
  const auto& c = m.consumer;
  return {{"epoch", c.epoch}, {"shard_pos", c.k}, {"window_pos", c.j}, {"epoch_window", c.g},
          // Shuffles are recomputed from these: no RNG state to carry.
          {"seed", m.o.seed}, {"seq_len", m.o.seq_len}, {"rank", m.o.rank}, {"world_size", m.o.world_size},
          {"num_shards", m.shards.size()}, {"shards_fingerprint", m.fingerprint}};
}

void TrainLoader::restore(const json& pos) {
  Impl& m = *impl_;
  auto want = [&](const char* key, const json& have) {
    if (!pos.contains(key))
      fail("loader position has no \"{}\" (not a position from TrainLoader::position()): {}", key, pos.dump());
    if (pos.at(key) != have)
      fail("cannot resume the data stream: the saved position has {} = {} but this run has {}; resume with "
           "the same data, seed, seq_len and world_size", key, pos.at(key).dump(), have.dump());
  };
  want("seed", m.o.seed);
  want("seq_len", m.o.seq_len);
  want("rank", m.o.rank);
  want("world_size", m.o.world_size);
  want("num_shards", m.shards.size());
  want("shards_fingerprint", m.fingerprint);
  Impl::Cursor c;
  try {
    c = {pos.at("epoch").get<int64_t>(), pos.at("shard_pos").get<int64_t>(), pos.at("window_pos").get<int64_t>(),
         pos.at("epoch_window").get<int64_t>()};
  } catch (const json::exception& e) {
    fail("loader position is malformed ({}): {}", e.what(), pos.dump());
  }
  if (c.epoch < 0 || c.k < 0 || c.k > int64_t(m.shards.size()) || c.j < 0 || c.g < 0 || c.g > m.total_windows)
    fail("loader position is out of range for these shards: {}", pos.dump());
  m.stop_thread();  // drops prefetched windows; the producer restarts at the restored cursor
  m.consumer = m.producer = c;
}

int64_t TrainLoader::vocab_size() const { return int64_t(impl_->shards.front().header().vocab_size); }
const std::string& TrainLoader::tokenizer_hash() const { return impl_->hash; }
int64_t TrainLoader::total_tokens() const { return impl_->total_tokens; }
int64_t TrainLoader::windows_per_epoch() const { return impl_->total_windows; }
int64_t TrainLoader::epoch() const { return impl_->consumer.epoch; }

// ---------------------------------------------------------------------------
// ValLoader

struct ValLoader::Impl {
  int seq_len = 0;
  std::vector<Shard> shards;
  std::vector<std::pair<int32_t, int64_t>> windows;  // (shard, first token)
  std::string hash;
};

ValLoader::ValLoader(const LoaderOptions& opt, int64_t max_windows) : impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.seq_len = opt.seq_len;
  m.shards = open_shards(opt, "validation");
  m.hash = hex64(m.shards.front().header().tokenizer_hash);
  for (size_t s = 0; s < m.shards.size(); s++)
    for (int64_t w = 0; w < windows_in(m.shards[s], opt.seq_len); w++) {
      if (max_windows > 0 && int64_t(m.windows.size()) >= max_windows) break;
      m.windows.emplace_back(int32_t(s), w * opt.seq_len);
    }
  if (m.windows.empty()) fail_too_short(m.shards, opt.seq_len, "validation");
}

ValLoader::~ValLoader() = default;

int64_t ValLoader::num_windows() const { return int64_t(impl_->windows.size()); }

void ValLoader::window_batch(int64_t first, int B, int32_t* tokens) const {
  const Impl& m = *impl_;
  if (first < 0 || B < 0 || first + B > num_windows())
    fail("validation windows {}..{} requested but there are only {}", first, first + B - 1, num_windows());
  for (int b = 0; b < B; b++) {
    auto [s, off] = m.windows[size_t(first + b)];
    m.shards[size_t(s)].read(off, m.seq_len + 1, tokens + size_t(b) * size_t(m.seq_len + 1));
  }
}

int64_t ValLoader::vocab_size() const { return int64_t(impl_->shards.front().header().vocab_size); }
const std::string& ValLoader::tokenizer_hash() const { return impl_->hash; }

}  // namespace gt
