// galore-shard-info: print a token shard's header and decode a sample of it.
//   galore-shard-info data/sample/shards/train_00000.bin --tokenizer data/sample/tokenizer.model
//   galore-shard-info --bench 'data/sample/shards/train_*.bin'   (TrainLoader windows/s)
#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <iostream>

#include "core/error.h"
#include "data/loader.h"
#include "data/shard.h"
#include "data/tokenizer.h"

namespace {

// Streams windows through TrainLoader (prefetch thread included) for `seconds`.
int bench_loader(const std::string& glob, int seq_len, int B, int prefetch, double seconds) {
  gt::LoaderOptions o;
  o.shards = {glob};
  o.seq_len = seq_len;
  o.prefetch = prefetch;
  gt::TrainLoader loader(o);
  std::vector<int32_t> buf(size_t(B) * size_t(seq_len + 1));
  const auto t0 = std::chrono::steady_clock::now();
  int64_t windows = 0;
  double sec = 0;
  int64_t sink = 0;
  while (sec < seconds) {
    loader.next_batch(B, buf.data());
    sink += buf[0];
    windows += B;
    sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  std::printf("loader: %.0f windows/s (%.1f M tokens/s), seq_len %d, batch %d, prefetch %d, %lld tokens in shards, "
              "%.2f epochs in %.1f s (checksum %lld)\n", windows / sec, windows * double(seq_len) / sec / 1e6, seq_len, B,
              prefetch, (long long)loader.total_tokens(), double(windows) / double(loader.windows_per_epoch()), sec,
              (long long)sink);
  return 0;
}

}  // namespace

using namespace gt;

int main(int argc, char** argv) {
  CLI::App app{"galore-shard-info: print a token shard's header and a sample of its tokens"};
  std::string path, tokenizer;
  int64_t offset = 0, count = 64;
  bool bench = false;
  int seq_len = 256, batch = 16, prefetch = 4;
  double seconds = 3;
  app.add_option("shard", path, "a .bin shard made by galore-tokenize (with --bench: a glob of shards)")->required();
  app.add_option("--tokenizer", tokenizer, "sentencepiece .model to decode the sample with");
  app.add_option("--offset", offset, "first token of the sample")->capture_default_str();
  app.add_option("--tokens,-n", count, "tokens in the sample (0 = header only)")->capture_default_str();
  app.add_flag("--bench", bench, "measure TrainLoader throughput over the shards instead");
  app.add_option("--seq-len", seq_len, "--bench: window is seq_len+1 tokens")->capture_default_str();
  app.add_option("--batch", batch, "--bench: windows per next_batch call")->capture_default_str();
  app.add_option("--prefetch", prefetch, "--bench: batches prefetched")->capture_default_str();
  app.add_option("--seconds", seconds, "--bench: how long to measure")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
    if (bench) return bench_loader(path, seq_len, batch, prefetch, seconds);
    Shard s(path);
    const ShardHeader& h = s.header();
    std::printf("shard          %s\n", path.c_str());
    std::printf("magic          %s\n", kShardMagic);
    std::printf("version        %u\n", h.version);
    std::printf("token_bytes    %u\n", h.token_bytes);
    std::printf("vocab_size     %llu\n", (unsigned long long)h.vocab_size);
    std::printf("num_tokens     %llu\n", (unsigned long long)h.num_tokens);
    std::printf("num_docs       %llu (EOS tokens)\n", (unsigned long long)h.num_docs);
    std::printf("tokenizer_hash %s\n", hex64(h.tokenizer_hash).c_str());
    std::printf("eos_id         %d\n", h.eos_id);
    std::printf("bos_id         %d\n", h.bos_id);
    std::printf("file_bytes     %llu (header ok, size ok)\n",
                (unsigned long long)(kShardHeaderBytes + h.num_tokens * h.token_bytes));
    if (offset < 0 || offset > s.num_tokens()) fail("--offset {} is outside the shard's {} tokens", offset, s.num_tokens());
    const int64_t n = std::min<int64_t>(std::max<int64_t>(count, 0), s.num_tokens() - offset);
    if (n == 0) return 0;
    std::vector<int32_t> ids(size_t(n), 0);
    s.read(offset, n, ids.data());
    std::printf("tokens[%lld:%lld]", (long long)offset, (long long)(offset + n));
    for (int32_t t : ids) std::printf(" %d", t);
    std::printf("\n");
    if (!tokenizer.empty()) {
      Tokenizer tok(tokenizer);
      if (tok.hash_u64() != h.tokenizer_hash)
        std::fprintf(stderr, "warning: %s has hash %s but the shard was made with %s; the text below is wrong\n",
                     tokenizer.c_str(), tok.hash().c_str(), hex64(h.tokenizer_hash).c_str());
      // Decode document by document so EOS boundaries stay visible.
      std::string text;
      std::vector<int> piece;
      auto flush = [&] { text += tok.decode(piece); piece.clear(); };
      for (int32_t t : ids) {
        if (t == h.eos_id) { flush(); text += "<eos>"; }
        else if (t == h.bos_id) { flush(); text += "<bos>"; }
        else piece.push_back(t);
      }
      flush();
      std::printf("text:\n%s\n", text.c_str());
    }
    return 0;
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
}
