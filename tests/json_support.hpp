#pragma once
// Reading what the runner writes as JSON (metrics.json, `flows evaluate
// --json`) in the end-to-end tests, through nlohmann-json: values are looked
// up by their place in the document, never by searching the text.
#include <cmath>
#include <filesystem>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "runner_support.hpp"

namespace flows::test_support {

// `text` parsed as one JSON document. Anything else (a truncated file, a
// warning printed next to the JSON) throws, which fails the test with the
// parser's message and the text.
inline nlohmann::json parse_json(const std::string& text) {
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::parse_error& e) {
    throw std::runtime_error(std::string("not one JSON document (") + e.what() + "):\n" + text);
  }
}

// The JSON file at `path`, parsed (throws naming the file when it is missing
// or not JSON).
inline nlohmann::json read_json(const std::filesystem::path& path) {
  if (!std::filesystem::exists(path)) throw std::runtime_error(path.string() + ": no such file");
  try {
    return parse_json(read_file(path));
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(path.string() + ": " + e.what());
  }
}

// The number at `pointer` (a JSON pointer, RFC 6901: "/nll/test" is the
// member "test" of the top-level object's member "nll"); NaN when it is
// absent, null or not a number, so that every comparison with it fails.
inline double json_number(const nlohmann::json& json, const std::string& pointer) {
  const nlohmann::json::json_pointer at(pointer);
  if (!json.contains(at)) return NAN;
  const nlohmann::json& value = json.at(at);
  return value.is_number() ? value.get<double>() : NAN;
}

// The string at `pointer`; "(absent)" or "(not a string)" otherwise.
inline std::string json_text(const nlohmann::json& json, const std::string& pointer) {
  const nlohmann::json::json_pointer at(pointer);
  if (!json.contains(at)) return "(absent)";
  const nlohmann::json& value = json.at(at);
  return value.is_string() ? value.get<std::string>() : "(not a string)";
}

}  // namespace flows::test_support
