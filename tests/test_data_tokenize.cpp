// Tokenizer, shard format, galore-tokenize engine and its bad-input errors.
#include <gtest/gtest.h>
#include <zlib.h>

#include <cstdlib>
#include <filesystem>
#include <functional>
#include <set>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/fs_util.h"
#include "core/rng.h"
#include "data/c4_reader.h"
#include "data/loader.h"
#include "data/shard.h"
#include "data/tokenize.h"
#include "data/tokenizer.h"
#include "test_util.h"

using namespace gt;
namespace fs = std::filesystem;
using json = nlohmann::json;

using gt::test::TempDir;

namespace {

const std::string kModel = std::string(GALORE_SOURCE_DIR) + "/data/sample/tokenizer.model";

void write_text(const std::string& path, const std::string& s) { std::ofstream(path, std::ios::binary) << s; }

void write_gz(const std::string& path, const std::string& s) {
  gzFile gz = gzopen(path.c_str(), "wb");
  gzwrite(gz, s.data(), unsigned(s.size()));
  gzclose(gz);
}

std::string c4_line(const std::string& text, int i) {
  return json{{"text", text}, {"timestamp", "2019-04-25T12:57:54Z"}, {"url", "https://example.com/" + std::to_string(i)}}
             .dump() + "\n";
}

// Small English-like documents with paragraphs, digits and a few non-ASCII
// characters (byte-fallback pieces).
std::vector<std::string> make_docs(int n, uint64_t seed) {
  static const char* words[] = {"the", "data", "model", "train", "of", "a", "loader", "shard", "token", "python",
                                "function", "returns", "value", "list", "and", "is", "in", "for", "with", "file",
                                "café", "naïve", "—", "3.14", "2019", "x", "(y)", "über", "日本"};
  Rng rng(seed);
  std::vector<std::string> docs;
  for (int d = 0; d < n; d++) {
    std::string s;
    const int sentences = 1 + int(rng.below(12));
    for (int k = 0; k < sentences; k++) {
      const int len = 3 + int(rng.below(14));
      for (int w = 0; w < len; w++) s += (w ? " " : "") + std::string(words[rng.below(std::size(words))]);
      s += rng.below(4) == 0 ? ".\n" : ". ";
    }
    docs.push_back(s);
  }
  return docs;
}

// Writes docs as C4 files: two .json.gz and one plain .json.
std::vector<std::string> write_corpus(const TempDir& dir, const std::vector<std::string>& docs) {
  std::string part[3];
  for (size_t i = 0; i < docs.size(); i++) part[i * 3 / docs.size()] += c4_line(docs[i], int(i));
  write_gz(dir / "c4-train.00000-of-00003.json.gz", part[0]);
  write_gz(dir / "c4-train.00001-of-00003.json.gz", part[1]);
  write_text(dir / "c4-train.00002-of-00003.json", part[2]);
  return {dir / "c4-train.*"};
}

TokenizeOptions base_opts(const std::vector<std::string>& inputs, const std::string& out) {
  TokenizeOptions o;
  o.inputs = inputs;
  o.tokenizer = kModel;
  o.output = out;
  o.tokens_per_shard = 3000;
  o.val_fraction = 0.1;
  o.threads = 2;
  o.progress = false;
  return o;
}

std::vector<int32_t> read_all(const std::string& path) {
  Shard s(path);
  std::vector<int32_t> t(size_t(s.num_tokens()));
  s.read(0, s.num_tokens(), t.data());
  return t;
}

// Token stream of a split: its shards in order.
std::vector<int32_t> read_split(const std::string& dir, const std::string& split) {
  std::vector<int32_t> all;
  for (int i = 0;; i++) {
    std::string p = fmt::format("{}/{}_{:05d}.bin", dir, split, i);
    if (!fs::exists(p)) break;
    auto t = read_all(p);
    all.insert(all.end(), t.begin(), t.end());
  }
  return all;
}

std::vector<std::string> decode_docs(const Tokenizer& tok, const std::vector<int32_t>& stream) {
  std::vector<std::string> docs;
  std::vector<int> cur;
  for (int32_t t : stream) {
    if (t == tok.eos_id()) { docs.push_back(tok.decode(cur)); cur.clear(); }
    else cur.push_back(t);
  }
  EXPECT_TRUE(cur.empty()) << "stream does not end with EOS";
  return docs;
}

bool is_val(const std::string& text, double fraction) {
  return double(fnv1a64(text.data(), text.size()) >> 11) * 0x1.0p-53 < fraction;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(DataTokenizer, HashIsFnv1a64OfTheFileBytes) {
  EXPECT_EQ(fnv1a64("", 0), 0xcbf29ce484222325ULL);
  EXPECT_EQ(fnv1a64("a", 1), 0xaf63dc4c8601ec8cULL);  // published FNV-1a test vector
  const std::string bytes = read_file(kModel);
  EXPECT_EQ(tokenizer_hash(kModel), hex64(fnv1a64(bytes.data(), bytes.size())));
  Tokenizer tok(kModel);
  EXPECT_EQ(tok.hash(), tokenizer_hash(kModel));
  EXPECT_EQ(tok.vocab_size(), 2048);
  EXPECT_EQ(tok.eos_id(), 2);
  TempDir d;
  write_text(d / "bad.model", "not a model");
  EXPECT_NE(error_of([&] { Tokenizer t(d / "bad.model"); }).find("bad.model: not a sentencepiece model"), std::string::npos);
}

TEST(DataTokenizer, SampleTokenizerIsLossless) {
  Tokenizer tok(kModel);
  for (const auto& doc : make_docs(50, 7)) {
    std::vector<int> ids;
    tok.encode(doc, &ids);
    EXPECT_EQ(tok.decode(ids), doc);
  }
}

TEST(DataShard, HeaderRoundTripAndWidths) {
  TempDir d;
  for (int64_t vocab : {2048L, 65536L, 65537L, 1L << 20}) {
    ShardHeader h;
    h.vocab_size = uint64_t(vocab);
    h.tokenizer_hash = 0x0123456789abcdefULL;
    h.eos_id = 2;
    h.bos_id = -1;
    h.num_docs = 3;
    std::vector<int32_t> toks;
    for (int i = 0; i < 1000; i++) toks.push_back(int32_t((i * 7919) % vocab));
    write_shard(d / "s.bin", h, toks);
    Shard s(d / "s.bin");
    EXPECT_EQ(s.header().token_bytes, vocab <= 65536 ? 2u : 4u);
    EXPECT_EQ(int64_t(fs::file_size(d / "s.bin")), 64 + 1000 * int64_t(s.header().token_bytes));
    EXPECT_EQ(s.header().vocab_size, uint64_t(vocab));
    EXPECT_EQ(s.header().tokenizer_hash, h.tokenizer_hash);
    EXPECT_EQ(s.header().eos_id, 2);
    EXPECT_EQ(s.header().bos_id, -1);
    EXPECT_EQ(s.header().num_docs, 3u);
    EXPECT_EQ(read_all(d / "s.bin"), toks);
  }
}

TEST(DataShard, BadShardsAreOneLineErrors) {
  TempDir d;
  ShardHeader h;
  h.vocab_size = 100;
  write_shard(d / "ok.bin", h, std::vector<int32_t>(50, 7));
  const std::string good = read_file(d / "ok.bin");
  auto expect_error = [&](const std::string& bytes, const std::string& want) {
    write_text(d / "bad.bin", bytes);
    std::string e = error_of([&] { Shard s(d / "bad.bin"); });
    EXPECT_NE(e.find(d / "bad.bin"), std::string::npos) << e;
    EXPECT_NE(e.find(want), std::string::npos) << e;
    EXPECT_NE(e.find("galore-tokenize"), std::string::npos) << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  };
  std::string b = good;
  b[0] = 'X';
  expect_error(b, "bad magic");
  // Version 2 with a valid checksum, so the version check is what fires.
  ShardHeader h2 = h;
  h2.version = 2;
  expect_error(encode_shard_header(h2) + good.substr(64), "version 2");
  b = good;
  b[20] ^= 1;  // vocab_size changed behind the checksum's back
  expect_error(b, "checksum");
  expect_error(good.substr(0, good.size() - 1), "truncated");
  expect_error(good + "xx", "header says");
  expect_error(good.substr(0, 10), "too small");
  // A token id outside the vocab is reported with its position when read.
  b = good;
  b[64 + 2 * 5] = char(200);
  write_text(d / "ids.bin", b);
  Shard s(d / "ids.bin");
  std::vector<int32_t> out(50);
  EXPECT_NE(error_of([&] { s.read(0, 50, out.data()); }).find("at token 5 is outside the vocab"), std::string::npos);
}

TEST(DataTokenize, RoundTripDecodesToTheOriginalDocuments) {
  TempDir d;
  const auto docs = make_docs(300, 1);
  auto opts = base_opts(write_corpus(d, docs), d / "out");
  TokenizeStats st = tokenize_corpus(opts);
  EXPECT_EQ(st.docs, 300);
  EXPECT_GT(st.shards_written, 3);

  Tokenizer tok(kModel);
  std::vector<std::string> want_train, want_val;
  for (auto& doc : docs) (is_val(doc, 0.1) ? want_val : want_train).push_back(doc);
  ASSERT_FALSE(want_val.empty());
  EXPECT_EQ(decode_docs(tok, read_split(d / "out", "train")), want_train);
  EXPECT_EQ(decode_docs(tok, read_split(d / "out", "val")), want_val);

  // Shards are full except each split's last; the manifest describes them.
  json m = json::parse(read_file(d / "out/manifest.json"));
  EXPECT_TRUE(m["complete"].get<bool>());
  EXPECT_EQ(m["tokenizer_hash"], tok.hash());
  EXPECT_EQ(m["vocab_size"], 2048);
  EXPECT_EQ(m["eos_id"], 2);
  EXPECT_EQ(m["bos_id"], -1);
  EXPECT_EQ(m["sources"].size(), 3u);
  int64_t total = 0;
  const auto& shards = m["train"]["shards"];
  for (size_t i = 0; i < shards.size(); i++) {
    const int64_t n = shards[i]["tokens"];
    EXPECT_EQ(Shard(d / ("out/" + shards[i]["name"].get<std::string>())).num_tokens(), n);
    if (i + 1 < shards.size()) {
      EXPECT_EQ(n, 3000);
    }
    total += n;
  }
  EXPECT_EQ(total, m["train"]["tokens"].get<int64_t>());
  EXPECT_EQ(int64_t(read_split(d / "out", "train").size()), total);
}

TEST(DataTokenize, BosAndValInputFiles) {
  TempDir d;
  const auto docs = make_docs(40, 2);
  std::string train, val;
  for (size_t i = 0; i < docs.size(); i++) (i < 30 ? train : val) += c4_line(docs[i], int(i));
  write_gz(d / "c4-train.00000-of-00001.json.gz", train);
  write_gz(d / "c4-validation.00000-of-00001.json.gz", val);
  auto o = base_opts({d / "c4-train.*"}, d / "out");
  o.val_inputs = {d / "c4-validation.*"};
  o.bos = true;
  tokenize_corpus(o);
  Tokenizer tok(kModel);
  auto t = read_split(d / "out", "train");
  EXPECT_EQ(t.front(), tok.bos_id());
  EXPECT_EQ(Shard(d / "out/train_00000.bin").header().bos_id, tok.bos_id());
  std::vector<int32_t> no_bos;
  for (auto x : t)
    if (x != tok.bos_id()) no_bos.push_back(x);
  auto got = decode_docs(tok, no_bos);
  EXPECT_EQ(got, std::vector<std::string>(docs.begin(), docs.begin() + 30));
  auto v = read_split(d / "out", "val");
  EXPECT_EQ(std::count(v.begin(), v.end(), tok.eos_id()), 10);
}

TEST(DataTokenize, InterruptedRunResumesToIdenticalShards) {
  TempDir d;
  const auto inputs = write_corpus(d, make_docs(300, 3));
  tokenize_corpus(base_opts(inputs, d / "clean"));

  // The write of train_00003.bin fails (disk full): earlier shards stay, no
  // partial file is left under a final name.
  ::setenv("GALORE_FAIL_WRITES", "train_00003", 1);
  std::string e = error_of([&] { tokenize_corpus(base_opts(inputs, d / "cut")); });
  ::unsetenv("GALORE_FAIL_WRITES");
  EXPECT_NE(e.find("train_00003.bin"), std::string::npos) << e;
  EXPECT_FALSE(fs::exists(d / "cut/train_00003.bin"));
  EXPECT_TRUE(fs::exists(d / "cut/train_00002.bin"));
  for (auto& f : fs::directory_iterator(d / "cut")) EXPECT_EQ(f.path().string().find(".tmp"), std::string::npos);
  EXPECT_FALSE(json::parse(read_file(d / "cut/manifest.json"))["complete"].get<bool>());

  TokenizeStats st = tokenize_corpus(base_opts(inputs, d / "cut"));
  EXPECT_EQ(st.shards_kept, 3);
  for (auto& f : fs::directory_iterator(d / "clean"))
    EXPECT_EQ(read_file(f.path().string()), read_file(d / ("cut/" + f.path().filename().string()))) << f.path();

  // A finished run is skipped; a deleted shard is redone.
  EXPECT_EQ(tokenize_corpus(base_opts(inputs, d / "cut")).shards_written, 0);
  fs::remove(d / "cut/train_00001.bin");
  st = tokenize_corpus(base_opts(inputs, d / "cut"));
  EXPECT_EQ(st.shards_kept, 1 + int64_t(json::parse(read_file(d / "clean/manifest.json"))["val"]["shards"].size()));
  EXPECT_EQ(read_file(d / "clean/train_00004.bin"), read_file(d / "cut/train_00004.bin"));
}

TEST(DataTokenize, OtherSettingsNeedOverwrite) {
  TempDir d;
  const auto inputs = write_corpus(d, make_docs(60, 4));
  tokenize_corpus(base_opts(inputs, d / "out"));
  auto o = base_opts(inputs, d / "out");
  o.tokens_per_shard = 5000;
  std::string e = error_of([&] { tokenize_corpus(o); });
  EXPECT_NE(e.find("tokens_per_shard"), std::string::npos) << e;
  EXPECT_NE(e.find("--overwrite"), std::string::npos) << e;
  o.overwrite = true;
  tokenize_corpus(o);
  EXPECT_EQ(json::parse(read_file(d / "out/manifest.json"))["tokens_per_shard"], 5000);
  // --overwrite only replaces what differs: the same settings again is a no-op.
  EXPECT_EQ(tokenize_corpus(o).shards_written, 0);
  // Shards of unknown origin are never silently replaced.
  fs::remove(d / "out/manifest.json");
  o.overwrite = false;
  EXPECT_NE(error_of([&] { tokenize_corpus(o); }).find("no manifest.json"), std::string::npos);
}

TEST(DataTokenize, BadInputsNameFileAndPosition) {
  TempDir d;
  auto run = [&](const std::string& name, const std::string& on_bad = "fail") {
    auto o = base_opts({d / name}, d / ("out_" + name));
    o.on_bad_line = on_bad;
    return error_of([&] { tokenize_corpus(o); });
  };
  auto expect = [&](const std::string& e, std::initializer_list<std::string> parts) {
    for (auto& p : parts) EXPECT_NE(e.find(p), std::string::npos) << "missing '" << p << "' in: " << e;
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
  };
  const std::string ok1 = c4_line("first document.", 1), ok2 = c4_line("second one.", 2);

  // Truncated gzip: a download that stopped early.
  std::string big;
  for (int i = 0; i < 2000; i++) big += c4_line("line " + std::to_string(i) + " of a long file", i);
  write_gz(d / "trunc.json.gz", big);
  std::string gz = read_file(d / "trunc.json.gz");
  write_text(d / "trunc.json.gz", gz.substr(0, gz.size() / 2));
  expect(run("trunc.json.gz"), {d / "trunc.json.gz", "truncated gzip at compressed byte", "after line", "download it again"});

  // Not gzip although named .gz.
  write_text(d / "plain.json.gz", ok1);
  expect(run("plain.json.gz"), {"not gzip data"});

  // A line that is not JSON: fail names it; skip counts it.
  write_gz(d / "notjson.json.gz", ok1 + ok2 + "{\"text\": \"unterminated\n" + ok1);
  expect(run("notjson.json.gz"), {d / "notjson.json.gz", "line 3", "not JSON", "--on-bad-line skip"});
  EXPECT_EQ(run("notjson.json.gz", "skip"), "(no error)");
  auto o = base_opts({d / "notjson.json.gz"}, d / "skipped");
  o.on_bad_line = "skip";
  EXPECT_EQ(tokenize_corpus(o).bad_lines, 1);
  EXPECT_EQ(json::parse(read_file(d / "skipped/manifest.json"))["files_done"][0]["bad_lines"], 1);

  write_text(d / "notext.json", ok1 + "{\"url\": \"x\"}\n");
  expect(run("notext.json"), {d / "notext.json", "line 2", "no \"text\" key"});
  write_text(d / "numtext.json", ok1 + ok2 + ok1 + "{\"text\": 5}\n");
  expect(run("numtext.json"), {"line 4", "\"text\" is a number, not a string"});
  write_text(d / "array.json", "[1, 2]\n");
  expect(run("array.json"), {"line 1", "not an object"});

  write_text(d / "utf8.json", ok1 + "{\"text\": \"caf\xc3\xa9 ok \xff bad\"}\n");
  expect(run("utf8.json"), {d / "utf8.json", "line 2", "invalid UTF-8 at byte 20"});

  write_text(d / "empty.json", "");
  expect(run("empty.json"), {d / "empty.json", "empty file"});
  write_gz(d / "empty2.json.gz", "\n\n");
  expect(run("empty2.json.gz"), {"empty file"});

  expect(run("nothing-*.json.gz"), {"no input files match", "nothing-*.json.gz", "c4-train"});
  expect(run("missing.json"), {"no input files match", "missing.json"});

  // An error leaves the finished shards of earlier files alone.
  write_gz(d / "a.json.gz", big);
  write_text(d / "b.json", ok1 + "oops\n");
  auto o2 = base_opts({d / "a.json.gz", d / "b.json"}, d / "partial");
  o2.val_fraction = 0;
  expect(error_of([&] { tokenize_corpus(o2); }), {d / "b.json", "line 2"});
  EXPECT_TRUE(fs::exists(d / "partial/train_00000.bin"));
  json m = json::parse(read_file(d / "partial/manifest.json"));
  EXPECT_FALSE(m["complete"].get<bool>());
  EXPECT_GE(m["train"]["shards"].size(), 1u);
}

TEST(DataTokenize, LoaderWindowsDecodeToTheText) {
  TempDir d;
  const auto docs = make_docs(300, 5);
  auto o = base_opts(write_corpus(d, docs), d / "out");
  o.val_fraction = 0;
  tokenize_corpus(o);

  LoaderOptions lo;
  lo.shards = {d / "out/train_*.bin"};
  lo.seq_len = 64;
  lo.expected_vocab = 2048;
  lo.expected_tokenizer_hash = tokenizer_hash(kModel);
  TrainLoader loader(lo);
  Tokenizer tok(kModel);
  const int B = 8, T1 = lo.seq_len + 1;
  std::vector<int32_t> batch(size_t(B * T1));
  std::set<std::string> originals(docs.begin(), docs.end());
  std::string joined;
  for (auto& doc : docs) joined += doc;
  int whole = 0, parts = 0;
  for (int step = 0; step < 40; step++) {
    loader.next_batch(B, batch.data());
    for (int b = 0; b < B; b++) {
      // Split the window at EOS: inner pieces are whole documents, the
      // outer ones are parts of one.
      std::vector<std::vector<int>> pieces(1);
      for (int t = 0; t < T1; t++) {
        int32_t id = batch[size_t(b * T1 + t)];
        if (id == tok.eos_id()) pieces.emplace_back();
        else pieces.back().push_back(id);
      }
      for (size_t p = 0; p < pieces.size(); p++) {
        std::string text = tok.decode(pieces[p]);
        if (p > 0 && p + 1 < pieces.size()) {
          EXPECT_TRUE(originals.count(text)) << text;
          whole++;
        } else if (!text.empty() && text.find("\xef\xbf\xbd") == std::string::npos) {
          // A document cut inside: decoding drops at most one leading space
          // (a cut through a multi-byte character decodes to U+FFFD, skipped).
          EXPECT_TRUE(joined.find(text) != std::string::npos || joined.find(" " + text) != std::string::npos) << text;
          parts++;
        }
      }
    }
  }
  EXPECT_GT(whole, 3);
  EXPECT_GT(parts, 300);
}
