// safetensors round trip and malformed files.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/error.h"
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
