#include "progress.hpp"

#include <unistd.h>
#include <algorithm>
#include <cmath>

#include <fmt/format.h>

namespace flows::app {

ProgressReporter::ProgressReporter(Index log_every, bool quiet, const std::string& log_path)
    : log_every_(log_every), quiet_(quiet), live_(!quiet && isatty(fileno(stderr))) {
  if (!log_path.empty()) log_.open(log_path, std::ios::app);
}

std::string ProgressReporter::describe(const Progress& p) const {
  const double rate = p.seconds > 0 ? static_cast<double>(p.step) / p.seconds : 0.0;
  const double left = rate > 0 ? static_cast<double>(p.total_steps - p.step) / rate : 0.0;
  std::string val = std::isnan(p.val_loss) ? "-" : fmt::format("{:.4f}", p.val_loss);
  return fmt::format(
      "step {:>{}}/{}  loss {:.4f}  val {}  lr {:.2e}  {:.0f} steps/s  {:.1f}s elapsed  {:.1f}s "
      "left",
      p.step, fmt::formatted_size("{}", p.total_steps), p.total_steps, p.loss, val, p.lr, rate,
      p.seconds, left);
}

void ProgressReporter::operator()(const Progress& p) {
  if (log_every_ == 0) log_every_ = std::max<Index>(1, p.total_steps / 10);
  const bool log_line = (p.step % log_every_ == 0 || p.step == p.total_steps);
  if (log_line) {
    const std::string line = describe(p);
    if (log_) log_ << line << '\n' << std::flush;
    if (!quiet_) {
      if (live_) std::fputs("\r\033[K", stderr);
      std::fprintf(stderr, "%s\n", line.c_str());
    }
    last_draw_ = p.seconds;
    return;
  }
  if (live_ && p.seconds - last_draw_ >= 0.1) {
    std::fprintf(stderr, "\r\033[K%s", describe(p).c_str());
    std::fflush(stderr);
    last_draw_ = p.seconds;
  }
}

void ProgressReporter::finish() {
  if (live_) std::fputs("\r\033[K", stderr);
}

}  // namespace flows::app
