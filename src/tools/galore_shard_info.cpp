// galore-shard-info: print a token shard's header and decode a sample of it.
//   galore-shard-info data/sample/shards/train_00000.bin --tokenizer data/sample/tokenizer.model
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "core/error.h"
#include "data/shard.h"
#include "data/tokenizer.h"

using namespace gt;

int main(int argc, char** argv) {
  CLI::App app{"galore-shard-info: print a token shard's header and a sample of its tokens"};
  std::string path, tokenizer;
  int64_t offset = 0, count = 64;
  app.add_option("shard", path, "a .bin shard made by galore-tokenize")->required();
  app.add_option("--tokenizer", tokenizer, "sentencepiece .model to decode the sample with");
  app.add_option("--offset", offset, "first token of the sample")->capture_default_str();
  app.add_option("--tokens,-n", count, "tokens in the sample (0 = header only)")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  try {
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
