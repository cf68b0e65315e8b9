// safetensors round trip and malformed files.
#include <gtest/gtest.h>

#include <filesystem>
#include <climits>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iterator>

#include "core/error.h"
#include "core/fs_util.h"
#include "core/safetensors.h"

using namespace gt;

namespace {
std::string tmp_path(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("gt_st_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}
}  // namespace

TEST(Safetensors, RoundTripAllDtypes) {
  SafetensorsWriter w;
  std::vector<float> f = {1.5f, -2.0f, 3.25f, 0.0f, 7.0f, -1e-3f};
  std::vector<int32_t> i = {1, -2, 3};
  std::vector<uint16_t> h = {f32_to_bf16(1.5f), f32_to_bf16(-2.0f)};
  w.add_f32("a.f", {2, 3}, f.data());
  w.add("b.i", StDType::I32, {3}, i.data(), 12);
  w.add("c.h", StDType::BF16, {2}, h.data(), 4);
  w.set_metadata("format", "pt");
  const std::string p = tmp_path("rt.safetensors");
  w.write(p);
  auto r = SafetensorsFile::open(p);
  EXPECT_EQ(r.names(), (std::vector<std::string>{"a.f", "b.i", "c.h"}));
  EXPECT_EQ(r.get("a.f").shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(r.get("a.f").to_f32(), f);
  EXPECT_EQ(r.get("b.i").to_i32(), i);
  EXPECT_EQ(r.get("c.h").to_f32(), (std::vector<float>{1.5f, -2.0f}));
  EXPECT_EQ(r.metadata().at("format"), "pt");
}

// to_i32 takes integral values of any dtype and refuses the rest by name
// (a float index of 1e10 or 2.5 used to be an undefined conversion).
TEST(Safetensors, ToI32RefusesValuesThatAreNotInt32) {
  const std::vector<double> ok = {0.0, -2147483648.0, 2147483647.0, 31999.0};
  const std::vector<int64_t> big = {1, int64_t(1) << 31};
  const std::vector<float> frac = {1.0f, 2.5f};
  const std::vector<float> huge = {1e10f};
  const std::vector<float> nan = {NAN};
  SafetensorsWriter w;
  w.add("ok", StDType::F64, {4}, ok.data(), 32);
  w.add("big", StDType::I64, {2}, big.data(), 16);
  w.add_f32("frac", {2}, frac.data());
  w.add_f32("huge", {1}, huge.data());
  w.add_f32("nan", {1}, nan.data());
  const std::string p = tmp_path("i32.safetensors");
  w.write(p);
  auto r = SafetensorsFile::open(p);
  EXPECT_EQ(r.get("ok").to_i32(), (std::vector<int32_t>{0, INT32_MIN, INT32_MAX, 31999}));
  for (const char* name : {"big", "frac", "huge", "nan"}) {
    try {
      r.get(name).to_i32();
      ADD_FAILURE() << name << " converted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(std::string("'") + name + "'"), std::string::npos) << e.what();
    }
  }
}

// Deferred tensors are produced during write(), in name order, one at a time,
// and give the same file as copied ones.
TEST(Safetensors, DeferredTensorsAreProducedAtWriteTime) {
  std::vector<float> f = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f, 6.0f};
  std::vector<uint8_t> u = {7, 8, 9};
  std::vector<std::string> calls;
  SafetensorsWriter lazy;
  lazy.add_deferred("b.f", StDType::F32, {2, 3}, 24, [&](void* dst) {
    calls.push_back("b.f");
    std::memcpy(dst, f.data(), 24);
  });
  lazy.add_deferred("a.u", StDType::U8, {3}, 3, [&](void* dst) {
    calls.push_back("a.u");
    std::memcpy(dst, u.data(), 3);
  });
  lazy.add("c.i", StDType::I32, {1}, &f[0], 4);  // copied now: later changes to f[0] do not reach it
  EXPECT_TRUE(calls.empty()) << "add_deferred must not produce the bytes yet";
  f[0] = -1.0f;  // a deferred tensor is read when written
  u[2] = 42;
  const std::string p_lazy = tmp_path("lazy.safetensors");
  lazy.write(p_lazy);
  EXPECT_EQ(calls, (std::vector<std::string>{"a.u", "b.f"}));

  SafetensorsWriter eager;
  const float one = 1.0f;
  eager.add("b.f", StDType::F32, {2, 3}, f.data(), 24);
  eager.add("a.u", StDType::U8, {3}, u.data(), 3);
  eager.add("c.i", StDType::I32, {1}, &one, 4);
  const std::string p_eager = tmp_path("eager.safetensors");
  eager.write(p_eager);
  auto slurp = [](const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  EXPECT_EQ(slurp(p_lazy), slurp(p_eager));
  auto r = SafetensorsFile::open(p_lazy);
  EXPECT_EQ(r.get("b.f").to_f32(), f);
  EXPECT_EQ(r.get("a.u").to_i32(), (std::vector<int32_t>{7, 8, 42}));
}

// A deferred tensor that fails (a device error, say) leaves the earlier file
// at the path untouched and no temporary behind.
TEST(Safetensors, FailingDeferredTensorLeavesTheOldFile) {
  const std::string p = tmp_path("keep.safetensors");
  SafetensorsWriter good;
  const float x = 3.0f;
  good.add_f32("x", {1}, &x);
  good.write(p);
  SafetensorsWriter bad;
  bad.add_f32("a", {1}, &x);
  bad.add_deferred("b", StDType::F32, {1}, 4, [](void*) { fail("device lost"); });
  EXPECT_THROW(bad.write(p), Error);
  EXPECT_EQ(SafetensorsFile::open(p).get("x").to_f32(), std::vector<float>{3.0f});
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(p).parent_path()))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos) << e.path();
}

// AtomicFile: nothing under the final name until commit; abandoned, it leaves
// no temporary and the old file as it was.
TEST(Safetensors, AtomicFileAppearsOnlyOnCommit) {
  const std::string p = tmp_path("atomic.txt");
  write_file_atomic(p, "old");
  {
    AtomicFile f(p);
    f.write("new contents", 12);
    EXPECT_EQ(read_file(p), "old");
  }  // destroyed without commit
  EXPECT_EQ(read_file(p), "old");
  for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(p).parent_path()))
    EXPECT_EQ(e.path().filename().string().find("atomic.txt.tmp."), std::string::npos) << e.path();
  AtomicFile g(p);
  g.write("new", 3);
  g.commit();
  EXPECT_EQ(read_file(p), "new");
}

TEST(Safetensors, Bf16RoundsToNearestEven) {
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f)), 1.0f);
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 1.0f / 256)), 1.0f);          // tie -> even
  EXPECT_EQ(bf16_to_f32(f32_to_bf16(1.0f + 3.0f / 256)), 1.0f + 4.0f / 256);  // tie -> even (up)
  EXPECT_TRUE(std::isnan(bf16_to_f32(f32_to_bf16(NAN))));
}

TEST(Safetensors, MalformedFilesGiveErrorsNamingTheFile) {
  const std::string p = tmp_path("bad.safetensors");
  {
    std::ofstream o(p, std::ios::binary);
    uint64_t n = 1000;
    o.write(reinterpret_cast<char*>(&n), 8);
    o << "{}";
  }
  try {
    SafetensorsFile::open(p);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(p), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos);
  }
  EXPECT_THROW(SafetensorsFile::open(tmp_path("missing.safetensors")), Error);
}

TEST(Safetensors, ReadsTheHfFixture) {
  auto f = SafetensorsFile::open(std::string(GALORE_SOURCE_DIR) + "/tests/fixtures/tiny_llama/model.safetensors");
  EXPECT_EQ(f.get("model.embed_tokens.weight").shape, (std::vector<int64_t>{256, 64}));
  EXPECT_EQ(f.get("lm_head.weight").dtype, StDType::F32);
}
