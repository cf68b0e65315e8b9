// Parity against the official GaLore AdamW trajectory: a directory with
// galore.json (settings and cases) + galore.safetensors (<case>.w0,
// <case>.grad.<t>, <case>.w.<t>), as tests/fixtures/tiny_llama.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace gt {

// Runs our galore_adamw (fp32 states, exact SVD, moments kept) on every case
// of the fixture in `dir` and reports, per case and step t, the relative error
// ‖W_t − W_ref,t‖ / ‖W_ref,t − W0‖. *ok (if given) is true when every error of
// every case is <= tol. Settings come from galore.json; a case may override
// any of them (rank, update_proj_gap, scale, lr, weight_decay, betas, eps,
// steps, proj_type). Bad or missing files are a gt::Error naming the file.
//
// Result: {"dir", "tol", "ok", "max_error", "cases": [{"case", "shape",
// "proj_type", "side", "rank", "steps", "errors": [per step], "max_error", "ok"}]}
nlohmann::json check_galore_fixture(const std::string& dir, double tol, bool* ok);

}  // namespace gt
