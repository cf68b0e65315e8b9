// galore-tokenize: C4 json.gz -> token shards + manifest.json (docs/DATA.md).
//   galore-tokenize --tokenizer data/sample/tokenizer.model --output data/sample/shards
//       --val-input 'data/sample/c4-validation.*.json.gz' 'data/sample/c4-train.*.json.gz'
#include <CLI/CLI.hpp>
#include <cstdio>
#include <iostream>

#include "core/error.h"
#include "data/tokenize.h"

using namespace gt;

int main(int argc, char** argv) {
  CLI::App app{"galore-tokenize: tokenize C4-format json(.gz) files into fixed-size token shards"};
  TokenizeOptions o;
  bool quiet = false;
  app.add_option("inputs", o.inputs, "C4 files (c4-train.NNNNN-of-01024.json.gz or .json), paths or globs")->required();
  app.add_option("--tokenizer", o.tokenizer, "sentencepiece .model")->required();
  app.add_option("--output,-o", o.output, "output directory (train_NNNNN.bin, val_NNNNN.bin, manifest.json)")->required();
  app.add_option("--tokens-per-shard", o.tokens_per_shard, "tokens per shard; the last shard of a split is shorter")
      ->capture_default_str();
  auto* vi = app.add_option("--val-input", o.val_inputs,
                            "held-out files (e.g. c4-validation.*.json.gz, repeatable): all their documents form the val split")
      ->allow_extra_args(false);
  app.add_option("--val-fraction", o.val_fraction,
                 "without --val-input: documents whose text hash falls below this fraction go to val (0 = none)")
      ->capture_default_str()->excludes(vi);
  app.add_flag("--bos", o.bos, "prepend BOS to every document (EOS is always appended)");
  app.add_option("--on-bad-line", o.on_bad_line,
                 "a line that is not JSON, lacks a string \"text\" or is not UTF-8: fail (stop with its position) "
                 "or skip (count it, report the first few)")
      ->capture_default_str()->check(CLI::IsMember({"fail", "skip"}));
  app.add_option("--threads", o.threads, "tokenizer threads (0 = all cores)")->capture_default_str();
  app.add_flag("--overwrite", o.overwrite, "replace shards in --output made with other settings or inputs");
  app.add_flag("--quiet,-q", quiet, "no progress lines");
  CLI11_PARSE(app, argc, argv);
  o.progress = !quiet;
  try {
    TokenizeStats s = tokenize_corpus(o);
    if (s.shards_written == 0) {
      std::fprintf(stderr, "tokenize: %s is up to date (%lld shards)\n", o.output.c_str(), (long long)s.shards_kept);
      return 0;
    }
    std::fprintf(stderr,
                 "tokenize: %lld docs, %.1f MB text, %lld tokens in %.1f s (%.2f MB/s); %lld shards written, %lld kept; "
                 "%lld bad lines skipped -> %s/manifest.json\n",
                 (long long)s.docs, s.text_bytes / 1e6, (long long)s.tokens, s.seconds,
                 s.text_bytes / 1e6 / std::max(s.seconds, 1e-9), (long long)s.shards_written,
                 (long long)s.shards_kept, (long long)s.bad_lines, o.output.c_str());
    return 0;
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << std::endl;
    return 1;
  }
}
