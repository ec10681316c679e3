#pragma once
#include <string>
#include <utility>
#include <vector>

#include "flows/trainer.hpp"

namespace flows::app {

// Writes `text` to `path` through a temporary file and a rename, so a failed
// write never leaves a half-written file.
void write_file_atomically(const std::string& path, const std::string& text);

// A flat JSON object of named values (numbers, strings, booleans, nested
// objects given as raw JSON).
class JsonObject {
 public:
  JsonObject& number(const std::string& key, double value);
  JsonObject& integer(const std::string& key, long long value);
  JsonObject& text(const std::string& key, const std::string& value);
  JsonObject& boolean(const std::string& key, bool value);
  JsonObject& object(const std::string& key, const JsonObject& value);
  std::string str(int indent = 0) const;

 private:
  std::vector<std::pair<std::string, std::string>> fields_;  // key, raw JSON value
};

std::string json_escape(const std::string& s);

// The training curve as CSV: step, train_loss, val_loss, lr, seconds.
std::string curve_csv(const TrainReport& report);

}  // namespace flows::app
