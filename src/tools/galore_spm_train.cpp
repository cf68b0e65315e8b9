// galore-spm-train: train a sentencepiece tokenizer on C4-format or plain text files.
//   galore-spm-train --vocab-size 2048 --model-type bpe --byte-fallback
//       --output data/sample/tokenizer 'data/sample/c4-train.*.json.gz'
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "core/error.h"
#include "data/spm_train.h"

using namespace gt;

int main(int argc, char** argv) {
  CLI::App app{"galore-spm-train: train a sentencepiece .model from C4 json(.gz) or plain text files"};
  SpmTrainOptions o;
  app.add_option("inputs", o.inputs, "files or globs: .json/.jsonl(.gz) are read as C4 (\"text\"), others as plain text")
      ->required();
  app.add_option("--output,-o", o.output, "output prefix: writes <prefix>.model and <prefix>.vocab")->required();
  app.add_option("--vocab-size", o.vocab_size, "vocabulary size")->capture_default_str();
  app.add_option("--model-type", o.model_type, "bpe or unigram")->capture_default_str()->check(CLI::IsMember({"bpe", "unigram"}));
  app.add_flag("--byte-fallback", o.byte_fallback, "unknown characters become UTF-8 byte pieces (no <unk>)");
  app.add_option("--character-coverage", o.character_coverage, "share of characters covered by the vocab")
      ->capture_default_str();
  app.add_option("--normalization", o.normalization, "identity (lossless) or nmt_nfkc")->capture_default_str();
  app.add_option("--max-samples", o.max_samples, "sentences (text lines) to train on; a deterministic sample beyond that")
      ->capture_default_str();
  app.add_option("--special-tokens", o.special_tokens, "user-defined symbols, never split (comma separated or repeated)")
      ->delimiter(',')->allow_extra_args(false);
  app.add_option("--threads", o.threads, "training threads (0 = all cores)")->capture_default_str();
  app.add_option("--seed", o.seed, "seed for the sample")->capture_default_str();
  app.add_flag("--verbose", o.verbose, "show sentencepiece's training log");
  CLI11_PARSE(app, argc, argv);
  try {
    SpmTrainResult r = train_tokenizer(o);
    std::fprintf(stderr, "spm-train: %lld docs, %lld sentences (%lld used) -> %s (hash %s)\n", (long long)r.docs,
                 (long long)r.sentences_seen, (long long)r.sentences_used, r.model_path.c_str(), r.hash.c_str());
    return 0;
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
}
