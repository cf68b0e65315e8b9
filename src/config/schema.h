// The config schema: one table (schema.cpp) that lists every key as
// "section.key" with its type, default, allowed values and meaning. Loading,
// Config::to_json(), validation and docs/CONFIG.md are all driven by it, so a
// new key is added in exactly one place (plus its struct field).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <variant>
#include <vector>
#include <nlohmann/json.hpp>

#include "config/config.h"

namespace gt {

enum class KeyType { Int, Float, Bool, String, StringList };

// Where a key's value lives inside a Config. uint64_t is training.seed
// (type Int, but non-negative and 64-bit).
using FieldRef = std::variant<int*, uint64_t*, double*, bool*, std::string*, std::vector<std::string>*>;

struct KeyInfo {
  std::string key;                   // "optimizer.galore.rank"
  KeyType type;                      // derived from the struct field
  nlohmann::json default_value;      // taken from a default-constructed Config
  std::vector<std::string> allowed;  // enum values (per entry for lists); empty = any
  std::string description;           // one line
  std::function<FieldRef(Config&)> field;
};

// Every key in schema (= struct = to_json) order.
const std::vector<KeyInfo>& config_schema();
// nullptr when `key` is not a schema key.
const KeyInfo* find_config_key(const std::string& key);
// True for "model", "optimizer", "optimizer.galore", ...: JSON objects that hold keys.
bool is_config_section(const std::string& path);
// "int", "float", "bool", "string", "string-list".
const char* key_type_name(KeyType t);

// The closest schema key or section to a misspelt dotted path, or "" when
// nothing is reasonably close. Also catches a right key in the wrong section
// ("training.lr" -> "optimizer.lr").
std::string suggest_config_key(const std::string& unknown);

// Reads / writes one key of a Config. set_config_value checks the JSON type
// (and enum values) and throws gt::Error prefixed with "<origin>: ".
nlohmann::json get_config_value(const Config& cfg, const KeyInfo& info);
void set_config_value(Config& cfg, const KeyInfo& info, const nlohmann::json& value, const std::string& origin);

// Cross-checks between keys (positive sizes, hidden % heads, seq_len <=
// max_seq_len, ...). load_config runs it; call it again after changing a
// Config in code (e.g. after taking the model shape from model.init_from).
// check_model_shape=false skips the model-shape checks (load_config does that
// when model.shape_from_init is set, since the shape keys are then replaced).
void validate_config(const Config& cfg, const std::string& origin, bool check_model_shape = true);

// The key table of docs/CONFIG.md (markdown), generated from the schema.
std::string config_schema_markdown();

}  // namespace gt
