// Malformed inputs never crash the tools: a seeded mutation fuzzer
// (tests/fuzz_util.h) over the file formats they read: safetensors (HF
// weights, fixtures, checkpoints), token shards, configs and Hugging Face
// config.json. Each mutant must load, or fail with a one-line gt::Error that
// names the file. Another exception type (a raw JSON or std error that names
// nothing), a crash or a sanitizer report fails the test. What loads must be
// consistent (shapes non-negative and within the file, shard sizes exact).
// Checkpoint folders are fuzzed through the trainer's resume, with the
// COMPLETE marker's hashes recomputed so the damage reaches the loaders.
#include <gtest/gtest.h>

#include <zlib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "config/config.h"
#include "config/schema.h"
#include "core/fs_util.h"
#include "core/safetensors.h"
#include "data/c4_reader.h"
#include "data/shard.h"
#include "data/tokenize.h"
#include "data/tokenizer.h"
#include "fuzz_util.h"
#include "checkpoint/checkpoint.h"
#include "model/hf_io.h"
#include "optim/galore_fixture.h"
#include "test_util.h"
#include "train/metrics.h"
#include "train/trainer.h"

using namespace gt;
using namespace gt::test;
using nlohmann::json;

namespace {

// Mutants per format and kind of mutation (seconds in all). For a longer
// hunt (e.g. under sanitizers): GT_FUZZ_SCALE=20 GT_FUZZ_SEED=7.
int env_int(const char* name, int dflt) {
  const char* v = std::getenv(name);
  return v ? std::atoi(v) : dflt;
}
const int kMutants = 400 * std::max(1, env_int("GT_FUZZ_SCALE", 1));
Rng fuzz_rng(uint64_t seed) { return Rng(seed + 1000 * uint64_t(env_int("GT_FUZZ_SEED", 0))); }

// Runs `n` mutants (`one(i)` gives each one's Outcome) and lists the first
// few mishandled ones. Some mutants must load (unless !some_load: gzip's CRC
// refuses nearly every edit) and some must be refused (unless !some_refused:
// a reader that must take anything), or the mutations (or the loader) test
// nothing.
template <typename One>
void expect_all_handled(int n, One&& one, bool some_load = true, bool some_refused = true) {
  std::vector<std::string> bad;
  int loaded = 0;
  for (int i = 0; i < n; ++i) {
    const Outcome o = one(i);
    loaded += o.loaded;
    if (!o.problem.empty()) bad.push_back(fmt::format("mutant {}: {}", i, o.problem));
  }
  std::string shown;
  for (size_t i = 0; i < bad.size() && i < 8; ++i) shown += bad[i] + "\n";
  EXPECT_TRUE(bad.empty()) << bad.size() << " of " << n << " mutants mishandled, e.g.\n" << shown;
  if (some_load) EXPECT_GT(loaded, 0) << "no mutant loaded";
  if (some_refused) EXPECT_LT(loaded, n) << "every mutant loaded";
}

// n byte-level mutants of `base` (mostly in its first `hot` bytes, see
// mutate_bytes), each written to `path` and given to `load` (path -> Outcome).
template <typename Load>
void expect_byte_mutants_handled(int n, const std::string& base, size_t hot, const std::string& path, uint64_t seed,
                                 Load&& load, bool some_load = true) {
  Rng r = fuzz_rng(seed);
  expect_all_handled(
      n,
      [&](int) {
        write_file_atomic(path, mutate_bytes(base, r, hot));
        return load(path);
      },
      some_load);
}

// ---------------------------------------------------------------- safetensors

std::string safetensors_sample(const std::string& path) {
  SafetensorsWriter w;
  const std::vector<float> a = randn(6 * 5, 1), b = randn(7, 2);
  w.add_f32("layers.0.weight", {6, 5}, a.data());
  w.add_f32("norm", {7}, b.data());
  w.add_deferred("codes", StDType::U8, {3, 4}, 12, [](void* dst) { std::memset(dst, 7, 12); });
  w.add_deferred("half", StDType::BF16, {2, 2}, 8, [](void* dst) { std::memset(dst, 0x3f, 8); });
  w.set_metadata("format", "pt");
  w.write(path);
  return read_file(path);
}

// Opens the file and reads every tensor; checks what it gives.
Outcome load_safetensors(const std::string& path) {
  return load_outcome(
      [&] {
        SafetensorsFile f = SafetensorsFile::open(path);
        for (const std::string& name : f.names()) {
          const StTensor& t = f.get(name);
          for (int64_t d : t.shape)
            if (d < 0) throw std::logic_error("tensor '" + name + "' loaded with a negative dimension");
          if (t.nbytes != size_t(t.numel()) * st_dtype_size(t.dtype))
            throw std::logic_error("tensor '" + name + "' byte count disagrees with its shape");
          (void)t.to_f32();
        }
      },
      path);
}

// A safetensors file's header length (its first 8 bytes) and its JSON header.
uint64_t header_len(const std::string& file) {
  uint64_t hlen;
  std::memcpy(&hlen, file.data(), 8);
  return hlen;
}
json header_of(const std::string& file) { return json::parse(file.substr(8, header_len(file))); }

// The file with its JSON header replaced (length prefix kept right).
std::string with_header(const std::string& file, const json& header) {
  const uint64_t hlen = header_len(file);
  const std::string h = header.dump();
  const uint64_t n = h.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  return out + h + file.substr(8 + hlen);
}

TEST(MalformedInputs, SafetensorsBytes) {
  TempDir d("gt_fuzz");
  const std::string base = safetensors_sample(d / "base.safetensors");
  ASSERT_TRUE(load_safetensors(d / "base.safetensors").loaded);
  expect_byte_mutants_handled(kMutants, base, 8 + header_len(base), d / "m.safetensors", 11, load_safetensors);
}

TEST(MalformedInputs, SafetensorsHeader) {
  TempDir d("gt_fuzz");
  const std::string base = safetensors_sample(d / "base.safetensors");
  const json header = header_of(base);
  Rng r = fuzz_rng(12);
  expect_all_handled(kMutants, [&](int) {
    json h = header;
    mutate_json(h, r);
    const std::string p = d / "m.safetensors";
    write_file_atomic(p, with_header(base, h));
    return load_safetensors(p);
  });
}

// Hand-made headers a mutation rarely hits: dimensions whose product
// overflows, negative dimensions whose product is positive.
TEST(MalformedInputs, SafetensorsShapesThatOverflow) {
  TempDir d("gt_fuzz");
  const std::string base = safetensors_sample(d / "base.safetensors");
  const json header = header_of(base);
  const std::vector<json> shapes = {json::array({-1, -30}),
                                    json::array({int64_t(1) << 62, 4}),
                                    json::array({int64_t(1) << 32, int64_t(1) << 32, 0}),
                                    json::array({int64_t(1) << 61, 8, 3}),
                                    json::array({std::numeric_limits<int64_t>::max()}),
                                    json::array({0.5, 60}),
                                    json::array({"6", 5})};
  for (const json& shape : shapes) {
    json h = header;
    h["layers.0.weight"]["shape"] = shape;
    const std::string p = d / "m.safetensors";
    write_file_atomic(p, with_header(base, h));
    EXPECT_EQ(load_safetensors(p).problem, "") << "shape " << shape.dump();
    EXPECT_THROW(SafetensorsFile::open(p), Error) << "shape " << shape.dump() << " was accepted";
  }
}

// A name read from a file may hold a newline; the error must stay one line.
TEST(MalformedInputs, ControlCharactersInNamesAreEscaped) {
  EXPECT_STREQ(Error("tensor 'a\nb\x7f'").what(), "tensor 'a\\x0ab\\x7f'");
  TempDir d("gt_fuzz");
  const std::string base = safetensors_sample(d / "base.safetensors");
  json h = header_of(base);
  h["bad\nname\r"] = {{"dtype", "Q7"}, {"shape", {1}}, {"data_offsets", {0, 1}}};
  write_file_atomic(d / "m.safetensors", with_header(base, h));
  const Outcome o = load_safetensors(d / "m.safetensors");
  EXPECT_FALSE(o.loaded);
  EXPECT_EQ(o.problem, "");
}

// Step counters in optimizer states: one non-negative integral value.
TEST(MalformedInputs, StepCountersAreChecked) {
  TempDir d("gt_fuzz");
  const int64_t seven = 7, two[2] = {1, 2};
  const double huge = 1e300, negative = -1, half = 2.5;
  SafetensorsWriter w;
  w.add("ok", StDType::I64, {1}, &seven, 8);
  w.add("empty", StDType::I64, {0}, nullptr, 0);
  w.add("two", StDType::I64, {2}, two, 16);
  w.add("huge", StDType::F64, {1}, &huge, 8);
  w.add("negative", StDType::F64, {1}, &negative, 8);
  w.add("half", StDType::F64, {1}, &half, 8);
  const std::string p = d / "state.safetensors";
  w.write(p);
  const SafetensorsFile f = SafetensorsFile::open(p);
  EXPECT_EQ(read_count(f, "ok"), 7);
  for (const char* name : {"empty", "two", "huge", "negative", "half"}) {
    const Outcome o = load_outcome([&] { (void)read_count(f, name); }, p);
    EXPECT_FALSE(o.loaded) << name;
    EXPECT_EQ(o.problem, "") << name;
  }
}

// ---------------------------------------------------------------- token shards

// Opens the shard and reads all its tokens; checks the size rule exactly.
Outcome load_shard(const std::string& path) {
  return load_outcome(
      [&] {
        Shard s(path);
        const unsigned __int128 want =
            (unsigned __int128)kShardHeaderBytes + (unsigned __int128)s.header().num_tokens * s.header().token_bytes;
        if (want != std::filesystem::file_size(path))
          throw std::logic_error("shard opened though its size is not 64 + num_tokens x token_bytes");
        std::vector<int32_t> tokens(size_t(s.num_tokens()));
        s.read(0, s.num_tokens(), tokens.data());
      },
      path);
}

std::string shard_sample(const std::string& path) {
  ShardHeader h;
  h.vocab_size = 1000;
  h.tokenizer_hash = 77;
  h.eos_id = 2;
  h.bos_id = 1;
  std::vector<int32_t> tokens(50);
  for (size_t i = 0; i < tokens.size(); ++i) tokens[i] = int32_t(i * 37 % 1000);
  h.num_docs = 1;
  write_shard(path, h, tokens);
  return read_file(path);
}

TEST(MalformedInputs, ShardBytes) {
  TempDir d("gt_fuzz");
  const std::string base = shard_sample(d / "base.bin");
  ASSERT_TRUE(load_shard(d / "base.bin").loaded);
  expect_byte_mutants_handled(kMutants, base, kShardHeaderBytes, d / "m.bin", 21, load_shard);
}

// Header fields set to boundary values with a valid checksum: what a writer
// bug (not disk damage) would produce.
TEST(MalformedInputs, ShardHeaderFields) {
  TempDir d("gt_fuzz");
  const std::string base = shard_sample(d / "base.bin");
  const ShardHeader h0 = decode_shard_header(base.data(), base.size(), "base");
  const std::vector<uint64_t> values = {0, 1, 2, 4, 25, 50, 100, 65536, 65537, uint64_t(1) << 31, uint64_t(1) << 32,
                                        (uint64_t(1) << 63) + 25, (uint64_t(1) << 63) + 50, (uint64_t(1) << 62) + 25, ~uint64_t(0)};
  int n = 0;
  std::vector<std::string> bad;
  for (int field = 0; field < 6; ++field)
    for (uint64_t v : values) {
      ShardHeader h = h0;
      switch (field) {
        case 0: h.token_bytes = uint32_t(v); break;
        case 1: h.vocab_size = v; break;
        case 2: h.num_tokens = v; break;
        case 3: h.eos_id = int32_t(v); break;
        case 4: h.bos_id = int32_t(v); break;
        default: h.num_docs = v;
      }
      const std::string p = d / "m.bin";
      write_file_atomic(p, encode_shard_header(h) + base.substr(kShardHeaderBytes));
      const std::string why = load_shard(p).problem;
      if (!why.empty()) bad.push_back(fmt::format("field {} = {}: {}", field, v, why));
      ++n;
    }
  EXPECT_TRUE(bad.empty()) << bad.size() << " of " << n << " headers mishandled, e.g. " << bad[0];
}

// ---------------------------------------------------------------- tokenizer model

// A damaged sentencepiece model: refused naming the file, or loaded and
// usable (encode and decode a sentence, every id within the vocabulary).
TEST(MalformedInputs, TokenizerModelBytes) {
  TempDir d("gt_fuzz");
  const std::string base = read_file(std::string(GALORE_SOURCE_DIR) + "/data/sample/tokenizer.model");
  expect_byte_mutants_handled(kMutants / 4, base, 0, d / "m.model", 91, [](const std::string& p) {
    return load_outcome(
        [&] {
          Tokenizer tok(p);
          std::vector<int> ids;
          tok.encode("The Python interpreter reads 42 lines.", &ids);
          for (int id : ids)
            if (id < 0 || id >= tok.vocab_size()) throw std::logic_error("encode gave an id outside the vocabulary");
          (void)tok.decode(ids);
        },
        p);
  });
}

// ---------------------------------------------------------------- C4 JSON lines

// Damaged gzip data: an error naming the file, never a crash or a hang.
TEST(MalformedInputs, C4GzipBytes) {
  TempDir d("gt_fuzz");
  std::string text;
  for (int i = 0; i < 200; ++i)
    text += fmt::format("{{\"text\":\"document {} with some words\",\"timestamp\":\"2019\",\"url\":\"u\"}}\n", i);
  const std::string gz = d / "base.json.gz";
  gzFile f = gzopen(gz.c_str(), "wb");
  gzwrite(f, text.data(), unsigned(text.size()));
  gzclose(f);
  const std::string base = read_file(gz);
  const auto read_all = [](const std::string& p) {
    return load_outcome(
        [&] {
          LineReader lines(p);
          std::string line, doc, why;
          while (lines.next(&line)) (void)parse_c4_line(line, &doc, &why);
        },
        p);
  };
  ASSERT_TRUE(read_all(gz).loaded);
  expect_byte_mutants_handled(kMutants, base, 0, d / "m.json.gz", 61, read_all, /*some_load=*/false);
}

// A damaged line is reported (returns false with a reason), never thrown.
TEST(MalformedInputs, C4Lines) {
  const std::string base = R"({"text":"Beginners BBQ Class.\nTaking place","timestamp":"2019-04-25T12:57:54Z","url":"https://x"})";
  Rng r = fuzz_rng(62);
  int parsed = 0;
  for (int i = 0; i < 4 * kMutants; ++i) {
    std::string line;
    if (i % 2) {
      json j = json::parse(base);
      mutate_json(j, r);
      line = j.dump();
    } else {
      line = mutate_bytes(base, r);
    }
    std::string text, why;
    bool ok = false;
    EXPECT_NO_THROW(ok = parse_c4_line(line, &text, &why)) << line;
    parsed += ok;
    if (!ok) EXPECT_FALSE(why.empty()) << line;
  }
  EXPECT_GT(parsed, 0);
}

// ---------------------------------------------------------------- galore-tokenize's manifest.json

// galore-tokenize resumes from the manifest.json of an earlier run. A damaged
// one (a hand edit, another version) must be refused naming the output
// folder, or, with --overwrite, replaced by a fresh run; never a raw error.
TEST(MalformedInputs, TokenizeManifestOnResume) {
  TempDir d("gt_fuzz");
  std::string corpus;
  for (int i = 0; i < 80; ++i)
    corpus += json({{"text", fmt::format("Document {} says that the Python interpreter reads {} lines.", i, i * 7)},
                    {"timestamp", "2019"},
                    {"url", "u"}})
                  .dump() +
              "\n";
  write_file_atomic(d / "c4-train.00000-of-00001.json", corpus);
  TokenizeOptions o;
  o.inputs = {d / "c4-train.00000-of-00001.json"};
  o.tokenizer = std::string(GALORE_SOURCE_DIR) + "/data/sample/tokenizer.model";
  o.output = d / "shards";
  o.tokens_per_shard = 300;
  o.val_fraction = 0.1;
  o.threads = 1;
  o.progress = false;
  (void)tokenize_corpus(o);
  const std::string manifest = read_file(o.output + "/manifest.json");
  const json base = json::parse(manifest);
  Rng r = fuzz_rng(101);
  expect_all_handled(kMutants / 4, [&](int i) {
    std::filesystem::remove_all(o.output);
    (void)tokenize_corpus(o);  // a finished run again
    if (i % 4 == 0) {
      write_file_atomic(o.output + "/manifest.json", mutate_bytes(manifest, r));
    } else {
      json j = base;
      mutate_json(j, r);
      write_file_atomic(o.output + "/manifest.json", j.dump(1));
    }
    TokenizeOptions again = o;
    again.overwrite = i % 2 == 1;
    const Outcome out = load_outcome([&] { (void)tokenize_corpus(again); }, o.output);
    if (again.overwrite && !out.loaded && out.problem.empty())
      return Outcome{false, "--overwrite did not replace a damaged manifest"};
    return out;
  });
}

// ---------------------------------------------------------------- GaLore parity fixture

TEST(MalformedInputs, GaloreFixtureJson) {
  TempDir d("gt_fuzz");
  const std::string src = std::string(GALORE_SOURCE_DIR) + "/tests/fixtures/tiny_llama/";
  std::filesystem::copy_file(src + "galore.safetensors", d / "galore.safetensors");
  const json base = json::parse(read_file(src + "galore.json"));
  // only the first two cases: each mutant reruns the trajectories
  json small = base;
  small["cases"] = json::array({base["cases"][0], base["cases"][1]});
  Rng r = fuzz_rng(71);
  expect_all_handled(kMutants / 4, [&](int) {
    json j = small;
    mutate_json(j, r);
    write_file_atomic(d / "galore.json", j.dump(2));
    return load_outcome([&] { (void)check_galore_fixture(d.path, 1e-4, nullptr); }, d.path);
  });
}

// ---------------------------------------------------------------- configs

TEST(MalformedInputs, ConfigJson) {
  TempDir d("gt_fuzz");
  for (const char* name : {"tiny.json", "llama7b.json"}) {
    const json base = json::parse(read_file(std::string(GALORE_SOURCE_DIR) + "/configs/" + name));
    Rng r = fuzz_rng(31);
    expect_all_handled(kMutants, [&](int) {
      json j = base;
      mutate_json(j, r);
      const std::string p = d / name;
      write_file_atomic(p, j.dump(2));
      return load_outcome(
          [&] {
            const Config c = load_config(p);
            // What loads must survive its own round trip (checkpoints store it).
            const Config again = config_from_json(c.to_json(), "resolved " + p);
            if (again.hash() != c.hash()) throw std::logic_error("resolved config does not round-trip");
          },
          p);
    });
  }
}

TEST(MalformedInputs, ConfigBytes) {
  TempDir d("gt_fuzz");
  const std::string base = read_file(std::string(GALORE_SOURCE_DIR) + "/configs/tiny.json");
  expect_byte_mutants_handled(kMutants, base, 0, d / "tiny.json", 32, [](const std::string& p) {
    return load_outcome([&] { (void)load_config(p); }, p);
  });
}

// --set overrides: every key with odd values, and malformed assignments.
TEST(MalformedInputs, ConfigOverrides) {
  const std::string tiny = std::string(GALORE_SOURCE_DIR) + "/configs/tiny.json";
  std::vector<std::string> keys;
  const json resolved = load_config(tiny).to_json();
  for (const auto& [section, values] : resolved.items())
    for (const auto& [key, value] : values.items()) keys.push_back(section + "." + key);
  const std::vector<std::string> malformed = {"", "=", "noequals", "=1", "model=1", "model.=1", ".hidden_size=1",
                                              "model..hidden_size=1", "model.hidden_size.x=1", "nosection.key=1"};
  Rng r = fuzz_rng(33);
  expect_all_handled(kMutants, [&](int i) {
    std::vector<std::string> sets;
    if (i % 8 == 0) {
      sets.push_back(malformed[r.below(malformed.size())]);
    } else {
      const json v = odd_json_value(r);
      // as the shell passes it: JSON text, or a bare string
      sets.push_back(keys[r.below(keys.size())] + "=" + (v.is_string() && r.below(2) ? v.get<std::string>() : v.dump()));
    }
    return load_outcome([&] { (void)load_config(tiny, sets); }, "--set");
  });
}

// ---------------------------------------------------------------- HF config.json

TEST(MalformedInputs, HfConfigJson) {
  TempDir d("gt_fuzz");
  const json base = json::parse(read_file(std::string(GALORE_SOURCE_DIR) + "/tests/fixtures/tiny_llama/config.json"));
  const std::string p = d / "config.json";
  const auto load = [&] {
    return load_outcome(
        [&] {
          const ModelConfig m = model_config_from_hf(d.path);
          // What it returns must be a shape the config checks accept.
          Config c;
          c.model = m;
          c.training.seq_len = 1;
          validate_config(c, p);
        },
        p);
  };
  write_file_atomic(p, base.dump(2));
  ASSERT_TRUE(load().loaded) << load().problem;
  Rng r = fuzz_rng(41);
  expect_all_handled(kMutants, [&](int) {
    json j = base;
    mutate_json(j, r);
    write_file_atomic(p, j.dump(2));
    return load();
  });
}

// ---------------------------------------------------------------- metrics.jsonl

// A resume rewrites the run's metrics.jsonl without the records of later
// steps. A torn line (a killed run) or a foreign one (a hand edit) must not
// stop it, and no record of a later step may survive.
TEST(MalformedInputs, MetricsOnResume) {
  TempDir d("gt_fuzz");
  std::string base;
  for (int step = 1; step <= 8; ++step)
    base += json({{"step", step}, {"loss", 5.0 - 0.1 * step}, {"lr", 1e-3}}).dump() + "\n";
  base += json({{"step", 4}, {"event", "eval"}, {"val_loss", 4.5}}).dump() + "\n";
  std::vector<std::string> lines;
  for (size_t at = 0, nl; (nl = base.find('\n', at)) != std::string::npos; at = nl + 1)
    lines.push_back(base.substr(at, nl - at));
  const std::string p = d / "metrics.jsonl";
  Rng r = fuzz_rng(81);
  expect_all_handled(kMutants, [&](int i) {
    std::string text = base;
    if (i % 2) {
      text = mutate_bytes(base, r);
    } else {
      json rec = json::parse(lines[r.below(lines.size())]);
      mutate_json(rec, r);
      text += rec.dump() + "\n";
    }
    write_file_atomic(p, text);
    const Outcome o = load_outcome(
        [&] {
          MetricsLog log;
          log.open(p, 5);
        },
        p);
    if (!o.loaded) return Outcome{false, "the resume refused a damaged metrics.jsonl: " + o.problem};
    std::ifstream in(p);
    for (std::string line; std::getline(in, line);) {
      const json rec = json::parse(line, nullptr, false);
      if (rec.is_object() && rec.contains("step") && rec["step"].is_number() && rec["step"].get<double>() > 5)
        return Outcome{true, "a record of a later step survived: " + line};
    }
    return Outcome{true, ""};
  }, /*some_load=*/true, /*some_refused=*/false);
}

// ---------------------------------------------------------------- checkpoints

// A 2-layer model on the sample shards, per-layer updates.
Config resume_config(const std::string& optimizer, const std::string& dir) {
  if (!std::filesystem::exists("data/sample/shards/manifest.json"))
    throw std::runtime_error("sample shards missing: run bash data_tools/prepare_sample.sh build/bin");
  const std::string momentum = optimizer == "sgd" ? "0.9" : "0";  // sgd: with a state to damage
  return load_config("configs/tiny.json",
                     {"optimizer.momentum=" + momentum, "model.hidden_size=32", "model.intermediate_size=64", "model.num_layers=2", "model.num_heads=2",
                      "model.num_kv_heads=0", "model.max_seq_len=16", "training.seq_len=16", "training.micro_batch_size=2",
                      "training.total_batch_size=4", "training.device=cpu", "training.max_steps=10",
                      "schedule.warmup_steps=1", "optimizer.name=" + optimizer, "optimizer.galore.rank=4",
                      "optimizer.galore.update_proj_gap=2", "logging.dir=" + dir, "logging.progress=plain",
                      "checkpoint.dir=" + dir + "/checkpoints", "checkpoint.keep_last=0", "training.threads=1"});
}

// Rewrites COMPLETE with the sizes and hashes of the files now in the folder.
void rehash_checkpoint(const std::string& ckpt) {
  json complete = json::parse(read_file(ckpt + "/COMPLETE"));
  for (auto& [name, entry] : complete["files"].items()) {
    entry["bytes"] = std::filesystem::file_size(ckpt + "/" + name);
    entry["xxh64"] = xxh64_file_hex(ckpt + "/" + name);
  }
  write_file_atomic(ckpt + "/COMPLETE", complete.dump(2));
}

// A mutant of one file of the folder: JSON edits or header bytes.
void mutate_checkpoint_file(const std::string& file, Rng& r) {
  const std::string bytes = read_file(file);
  const bool is_json = file.size() > 5 && file.substr(file.size() - 5) == ".json";
  if (is_json && r.below(4) != 0) {
    json j = json::parse(bytes);
    mutate_json(j, r);
    write_file_atomic(file, j.dump(2));
  } else if (!is_json && r.below(2) == 0) {
    json h = header_of(bytes);
    mutate_json(h, r);
    write_file_atomic(file, with_header(bytes, h));
  } else {
    write_file_atomic(file, mutate_bytes(bytes, r, is_json ? 0 : 8 + header_len(bytes)));
  }
}

class ResumeFromDamage : public ::testing::TestWithParam<const char*> {};

// Resume from a checkpoint with one file damaged and its hash made to match
// again (what a writer bug, a hand edit or another version would leave):
// either the run resumes and trains a step, or it stops with a one-line
// error that names the checkpoint.
TEST_P(ResumeFromDamage, ResumesOrNamesTheCheckpoint) {
  TempDir d("gt_fuzz_resume");
  const Config cfg = resume_config(GetParam(), d.path);
  {
    Trainer t(cfg, {});
    for (int i = 0; i < 3; ++i) t.train_step();
    t.save_checkpoint("test");
  }
  const std::string good = *find_latest_checkpoint(cfg.checkpoint_dir());
  const char* files[] = {"trainer_state.json", "optimizer.safetensors", "model.safetensors", "config.json"};
  const std::string ckpt = d / "mutant";
  const auto resume = [&] {
    return load_outcome(
        [&] {
          TrainOptions o;
          o.resume = ckpt;
          Trainer t(cfg, o);
          t.train_step();
        },
        ckpt);
  };
  std::filesystem::copy(good, ckpt);
  ASSERT_TRUE(resume().loaded) << resume().problem;
  Rng r = fuzz_rng(std::string(GetParam()).size());  // other mutants per optimizer
  expect_all_handled(kMutants / 2, [&](int) {
    std::filesystem::remove_all(ckpt);
    std::filesystem::copy(good, ckpt);
    mutate_checkpoint_file(ckpt + "/" + files[r.below(4)], r);
    if (r.below(8) != 0) rehash_checkpoint(ckpt);
    return resume();
  });
}
INSTANTIATE_TEST_SUITE_P(Optimizers, ResumeFromDamage, ::testing::Values("adamw", "galore_adamw8bit", "sgd"));

}  // namespace
