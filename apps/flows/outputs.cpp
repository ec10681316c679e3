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

std::string curve_csv(const TrainReport& report) {
  std::string out = "step,train_loss,val_loss,lr,seconds\n";
  for (const CurvePoint& p : report.curve)
    out += fmt::format("{},{:.17g},{},{:.17g},{:.6f}\n", p.step, p.train_loss,
                       std::isnan(p.val_loss) ? std::string() : fmt::format("{:.17g}", p.val_loss),
                       p.lr, p.seconds);
  return out;
}

}  // namespace flows::app
