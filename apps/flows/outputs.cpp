#include "outputs.hpp"

#include <cmath>
#include <cstdio>
#include <filesystem>

#include <fmt/format.h>

#include "flows/detail/file_io.hpp"

namespace flows::app {

void write_file_atomically(const std::string& path, const std::string& text) {
  detail::write_atomically(path, [&](std::FILE* file) {
    return std::fwrite(text.data(), 1, text.size(), file) == text.size();
  });
}

std::string json_escape(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20)
          out += fmt::format("\\u{:04x}", c);
        else
          out += c;
    }
  }
  return out + "\"";
}

JsonObject& JsonObject::number(const std::string& key, double value) {
  // JSON has no NaN or infinity: they become null.
  fields_.emplace_back(key, std::isfinite(value) ? fmt::format("{:.17g}", value) : "null");
  return *this;
}

JsonObject& JsonObject::integer(const std::string& key, long long value) {
  fields_.emplace_back(key, std::to_string(value));
  return *this;
}

JsonObject& JsonObject::text(const std::string& key, const std::string& value) {
  fields_.emplace_back(key, json_escape(value));
  return *this;
}

JsonObject& JsonObject::boolean(const std::string& key, bool value) {
  fields_.emplace_back(key, value ? "true" : "false");
  return *this;
}

JsonObject& JsonObject::object(const std::string& key, const JsonObject& value) {
  fields_.emplace_back(key, value.str(0));
  return *this;
}

std::string JsonObject::str(int indent) const {
  const std::string pad(static_cast<std::size_t>(indent), ' ');
  const char* sep = indent > 0 ? ",\n" : ", ";
  std::string out = indent > 0 ? "{\n" : "{";
  for (std::size_t i = 0; i < fields_.size(); ++i) {
    out += pad + json_escape(fields_[i].first) + ": " + fields_[i].second;
    if (i + 1 < fields_.size()) out += sep;
  }
  return out + (indent > 0 ? "\n}\n" : "}");
}

std::string curve_csv(const TrainReport& report) {
  std::string out = "step,train_loss,val_loss,lr,seconds\n";
  for (const CurvePoint& p : report.curve)
    out += fmt::format("{},{:.17g},{},{:.17g},{:.6f}\n", p.step, p.train_loss,
                       std::isnan(p.val_loss) ? std::string() : fmt::format("{:.17g}", p.val_loss),
                       p.lr, p.seconds);
  return out;
}

}  // namespace flows::app
