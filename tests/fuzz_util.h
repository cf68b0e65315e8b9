// A small seeded mutation fuzzer for the tests of malformed inputs: byte-level
// mutants of a file, structural mutants of a JSON document, and the rule every
// loader must keep on such input: load, or throw gt::Error with one line that
// names the file (never another exception type, never a crash).
#pragma once
#include <cstdint>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <typeinfo>
#include <vector>

#include "core/error.h"
#include "core/rng.h"

namespace gt::test {

// 1 to 3 of: flip a bit, set a byte to a boundary value, truncate, insert
// random bytes, erase a range, push a number out of range, copy one range
// over another. `hot` > 0 puts the edits in the first `hot` bytes (the
// header) three times out of four.
inline std::string mutate_bytes(std::string s, Rng& r, size_t hot = 0) {
  const int edits = 1 + int(r.below(3));
  for (int e = 0; e < edits; ++e) {
    const size_t span = (hot > 0 && hot < s.size() && r.below(4) != 0) ? hot : s.size();
    const size_t at = r.below(span + 1);
    switch (r.below(7)) {
      case 0:
        if (at < s.size()) s[at] = char(uint8_t(s[at]) ^ uint8_t(1u << r.below(8)));
        break;
      case 1: {
        static const uint8_t kBoundary[] = {0x00, 0xff, 0x7f, 0x80, '"', '{', '}', '[', ']', ',', ':', '-', '9'};
        if (at < s.size()) s[at] = char(kBoundary[r.below(sizeof kBoundary)]);
        break;
      }
      case 2: s.resize(at); break;
      case 3: {
        std::string ins(1 + r.below(16), '\0');
        for (auto& c : ins) c = char(r.below(256));
        s.insert(std::min(at, s.size()), ins);
        break;
      }
      case 4: s.erase(std::min(at, s.size()), 1 + r.below(32)); break;
      case 5: {  // a number out of double's range: "128" -> "1e99928" (nlohmann throws out_of_range, not parse_error)
        const size_t digit = s.find_first_of("0123456789", std::min(at, s.size()));
        if (digit != std::string::npos) s.insert(digit + 1, r.below(2) ? "e999" : "e-999");
        break;
      }
      default: {
        if (s.empty()) break;
        const size_t from = r.below(s.size()), n = 1 + r.below(16);
        const size_t to = std::min(at, s.size() - 1);
        const std::string piece = s.substr(from, n);
        s.replace(to, std::min(piece.size(), s.size() - to), piece);
      }
    }
  }
  return s;
}

// A value of another type or at a boundary: what a hand-edited or truncated
// file, or another program's output, puts where a loader expects its own.
inline nlohmann::json odd_json_value(Rng& r) {
  using nlohmann::json;
  switch (r.below(22)) {
    case 0: return nullptr;
    case 1: return true;
    case 2: return 0;
    case 3: return -1;
    case 4: return std::numeric_limits<int64_t>::max();
    case 5: return std::numeric_limits<int64_t>::min();
    case 6: return std::numeric_limits<uint64_t>::max();
    case 7: return int64_t(1) << 31;
    case 8: return -(int64_t(1) << 31) - 1;
    case 9: return 1e308;
    case 10: return -1e308;
    case 11: return 0.5;
    case 12: return 3.0;
    case 13: return "";
    case 14: return "x";
    case 15: return "-1";
    case 16: return json::array();
    case 17: return json::array({-1});
    case 18: return json::array({int64_t(1) << 40, int64_t(1) << 40});
    case 19: return json::object();
    case 20: return json::object({{"x", 1}});
    default: return int64_t(1) << 40;
  }
}

// 1 to 3 structural edits of j: replace a node by odd_json_value(), delete a
// member, or add an unknown one.
inline void mutate_json(nlohmann::json& j, Rng& r) {
  using nlohmann::json;
  const int edits = 1 + int(r.below(3));
  for (int e = 0; e < edits; ++e) {
    std::vector<json*> nodes;
    std::vector<json*> stack{&j};
    while (!stack.empty()) {
      json* n = stack.back();
      stack.pop_back();
      nodes.push_back(n);
      if (n->is_structured())
        for (auto& child : *n) stack.push_back(&child);
    }
    json* n = nodes[r.below(nodes.size())];
    const uint64_t op = r.below(8);
    if (op == 0 && n->is_object() && !n->empty()) {
      auto it = n->begin();
      std::advance(it, long(r.below(n->size())));
      n->erase(it);
    } else if (op == 1 && n->is_object()) {
      (*n)["fuzz_unknown_key"] = odd_json_value(r);
    } else {
      *n = odd_json_value(r);
    }
  }
}

// What a loader did with a mutant: loaded, or failed with a one-line
// gt::Error containing `must_name` (problem empty); otherwise the problem.
struct Outcome {
  bool loaded = false;
  std::string problem;
};
template <typename Load>
Outcome load_outcome(Load&& load, const std::string& must_name) {
  try {
    load();
    return {true, ""};
  } catch (const Error& e) {
    const std::string what = e.what();
    if (what.find(must_name) == std::string::npos) return {false, "gt::Error without '" + must_name + "': " + what};
    if (what.find('\n') != std::string::npos) return {false, "gt::Error of several lines: " + what};
    if (what.rfind("internal error", 0) == 0) return {false, "an internal assertion, not an input error: " + what};
    return {false, ""};
  } catch (const std::exception& e) {
    return {false, std::string("not a gt::Error (") + typeid(e).name() + "): " + e.what()};
  }
}

}  // namespace gt::test
