#include "optim/galore_fixture.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <fstream>

#include "config/config.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "optim/galore.h"

namespace gt {

namespace {

// Case value if present, else the file-level one.
const nlohmann::json& setting(const nlohmann::json& root, const nlohmann::json& c, const char* key,
                              const std::string& path) {
  if (c.contains(key)) return c[key];
  if (root.contains(key)) return root[key];
  fail("{}: no '{}' (neither in the case nor at the top level)", path, key);
}

}  // namespace

nlohmann::json check_galore_fixture(const std::string& dir, double tol, bool* ok) {
  const std::string json_path = dir + "/galore.json", st_path = dir + "/galore.safetensors";
  std::ifstream f(json_path);
  if (!f) fail("{}: cannot open (a GaLore fixture directory holds galore.json and galore.safetensors)", json_path);
  nlohmann::json root;
  try {
    root = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    fail("{}: not valid JSON: {}", json_path, e.what());
  }
  if (!root.contains("cases") || !root["cases"].is_array()) fail("{}: no 'cases' array", json_path);
  const SafetensorsFile st = SafetensorsFile::open(st_path);

  nlohmann::json out = {{"dir", dir}, {"tol", tol}};
  bool all_ok = true;
  double worst = 0.0;
  nlohmann::json cases = nlohmann::json::array();
  for (const auto& c : root["cases"]) {
    try {
      const std::string name = c.at("case").get<std::string>();
      const auto shape = c.at("shape").get<std::vector<int64_t>>();
      if (shape.size() != 2 || shape[0] < 1 || shape[1] < 1 || shape[0] > INT32_MAX || shape[1] > INT32_MAX)
        fail("case '{}': shape must be [rows, cols] of positive sizes", name);
      const int64_t numel = shape[0] * shape[1];
      // before the optimizer sizes its state by the shape
      if (st.get(name + ".w0").numel() != numel)
        fail("{}: {}.w0 has {} elements, expected {} ({}x{})", st_path, name, st.get(name + ".w0").numel(), numel,
             shape[0], shape[1]);
      const bool has_cb = c.contains("correct_bias") || root.contains("correct_bias");
      if (has_cb && !setting(root, c, "correct_bias", json_path).get<bool>())
        fail("case '{}': correct_bias=false is not supported (our AdamW always corrects the bias)", name);

      OptimizerConfig cfg;
      cfg.name = "galore_adamw";
      cfg.lr = setting(root, c, "lr", json_path).get<double>();
      cfg.weight_decay = setting(root, c, "weight_decay", json_path).get<double>();
      const auto betas = setting(root, c, "betas", json_path).get<std::vector<double>>();
      if (betas.size() != 2) fail("case '{}': betas must have 2 values", name);
      cfg.beta1 = betas[0];
      cfg.beta2 = betas[1];
      cfg.eps = setting(root, c, "eps", json_path).get<double>();
      cfg.galore.rank = setting(root, c, "rank", json_path).get<int>();
      cfg.galore.update_proj_gap = setting(root, c, "update_proj_gap", json_path).get<int>();
      cfg.galore.scale = setting(root, c, "scale", json_path).get<double>();
      cfg.galore.proj_type = setting(root, c, "proj_type", json_path).get<std::string>();
      cfg.galore.projector = "svd";
      cfg.galore.moments_on_refresh = "keep";
      int steps = 0;  // from galore.json, else as many as the file holds
      if (c.contains("steps") || root.contains("steps"))
        steps = setting(root, c, "steps", json_path).get<int>();
      else
        while (st.has(name + ".grad." + std::to_string(steps))) ++steps;

      const std::vector<ParamInfo> params = {{name, ParamKind::Linear, shape[0], shape[1], true}};
      GaloreAdamW opt(cfg, params, false);
      auto load = [&](const std::string& key) {
        const StTensor& t = st.get(key);
        if (t.numel() != numel) fail("{}: {} has {} elements, expected {} ({}x{})", st_path, key, t.numel(), numel, shape[0], shape[1]);
        return t.to_f64();
      };
      const std::vector<double> w0 = load(name + ".w0");
      std::vector<float> w(w0.begin(), w0.end());  // [rows, cols], our fp32 weight
      nlohmann::json errors = nlohmann::json::array();
      double case_worst = 0.0;
      for (int t = 0; t < steps; ++t) {
        std::vector<double> g64 = load(name + ".grad." + std::to_string(t));
        std::vector<float> g(g64.begin(), g64.end());  // [rows, cols]
        Tensor W(w.data(), DType::F32, Device::CPU, {shape[0], shape[1]});
        Tensor G(g.data(), DType::F32, Device::CPU, {shape[0], shape[1]});
        opt.on_grad(0, W, G, StepInfo{t, cfg.lr, 1.0, 0.0, 0, 1});
        const std::vector<double> ref = load(name + ".w." + std::to_string(t));
        double num = 0.0, den = 0.0;
        for (int64_t i = 0; i < numel; ++i) {
          num += (double(w[size_t(i)]) - ref[size_t(i)]) * (double(w[size_t(i)]) - ref[size_t(i)]);
          den += (ref[size_t(i)] - w0[size_t(i)]) * (ref[size_t(i)] - w0[size_t(i)]);
        }
        const double err = den > 0.0 ? std::sqrt(num / den) : std::sqrt(num);
        errors.push_back(err);
        case_worst = std::max(case_worst, std::isfinite(err) ? err : INFINITY);
      }
      const bool case_ok = case_worst <= tol;
      all_ok = all_ok && case_ok;
      worst = std::max(worst, case_worst);
      cases.push_back({{"case", name},
                       {"shape", shape},
                       {"proj_type", cfg.galore.proj_type},
                       {"side", proj_side_name(opt.geometry(0)->side)},
                       {"rank", opt.geometry(0)->r},
                       {"steps", steps},
                       {"errors", errors},
                       {"max_error", case_worst},
                       {"ok", case_ok}});
    } catch (const nlohmann::json::exception& e) {
      fail("{}: malformed case {}: {}", json_path, c.dump(), e.what());
    } catch (const Error& e) {
      // settings the optimizer refuses (rank 0, an unknown proj_type) come from galore.json
      if (std::string(e.what()).find(dir) != std::string::npos) throw;
      fail("{}: {}", json_path, e.what());
    }
  }
  out["cases"] = cases;
  out["max_error"] = worst;
  out["ok"] = all_ok;
  if (ok) *ok = all_ok;
  return out;
}

}  // namespace gt
