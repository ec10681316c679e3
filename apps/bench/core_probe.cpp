#include "core_probe.hpp"

#include <chrono>
#include <ostream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "blas_info.hpp"

namespace flows::bench {

namespace {

double ratio(const CoreSample& s) {
  return s.all_cores_gflops / s.one_core_gflops;
}

struct Spread {
  double p10, median, p90;
};

template <class Of>
Spread spread(const CoreProbe& probe, Of of) {
  std::vector<double> v;
  for (const CoreSample& s : probe.samples) v.push_back(of(s));
  return {quantile(v, 0.1), quantile(v, 0.5), quantile(v, 0.9)};
}

Json spread_json(const Spread& s) {
  return {{"p10", measured_value(s.p10)},
          {"median", measured_value(s.median)},
          {"p90", measured_value(s.p90)}};
}

// What both the table and the JSON report, computed once.
struct Summary {
  Spread one, all, ratio;
  std::vector<double> shared_at;  // times of the samples below shared_below
};

Summary summarize(const CoreProbe& probe, double shared_below) {
  Summary s{spread(probe, [](const CoreSample& c) { return c.one_core_gflops; }),
            spread(probe, [](const CoreSample& c) { return c.all_cores_gflops; }),
            spread(probe, ratio),
            {}};
  for (const CoreSample& c : probe.samples)
    if (ratio(c) < shared_below) s.shared_at.push_back(c.at_seconds);
  return s;
}

}  // namespace

CoreProbe probe_cores(double seconds, int cores, double sample_seconds) {
  using Clock = std::chrono::steady_clock;
  CoreProbe probe{cores, sample_seconds, {}};
  const auto begin = Clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(Clock::now() - begin).count(); };
  while (elapsed() < seconds) {
    CoreSample s;
    s.at_seconds = elapsed();
    s.one_core_gflops = gemm_gflops(true, 1024, 1024, 1024, 1, sample_seconds);
    s.all_cores_gflops = gemm_gflops(true, 1024, 1024, 1024, cores, sample_seconds);
    probe.samples.push_back(s);
  }
  return probe;
}

void print_core_probe(const CoreProbe& probe, std::ostream& out, double shared_below) {
  const Summary s = summarize(probe, shared_below);
  out << fmt::format(
      "{:<4} SGEMM 1024^3 in {} pairs of {:.2f} s samples (tenth / median / ninth tenth)\n", "",
      probe.samples.size(), probe.sample_seconds);
  out << fmt::format("{:<4} {:<24} {:>7.1f} {:>7.1f} {:>7.1f} GFLOP/s\n", "", "1 thread", s.one.p10,
                     s.one.median, s.one.p90);
  out << fmt::format("{:<4} {:<24} {:>7.1f} {:>7.1f} {:>7.1f} GFLOP/s\n", "",
                     fmt::format("{} threads", probe.cores), s.all.p10, s.all.median, s.all.p90);
  out << fmt::format("{:<4} {:<24} {:>7.2f} {:>7.2f} {:>7.2f}\n", "", "ratio", s.ratio.p10,
                     s.ratio.median, s.ratio.p90);
  out << fmt::format("{:<4} samples with ratio < {:.2f}: {} of {}", "", shared_below,
                     s.shared_at.size(), probe.samples.size());
  if (!s.shared_at.empty()) out << fmt::format(" (at {:.1f} s)", fmt::join(s.shared_at, " "));
  out << "\n";
}

Json core_probe_json(const CoreProbe& probe, double shared_below) {
  const Summary s = summarize(probe, shared_below);
  Json samples = Json::array();
  for (const CoreSample& c : probe.samples)
    samples.push_back({{"at_seconds", measured_value(c.at_seconds)},
                       {"one_core_gflops", measured_value(c.one_core_gflops)},
                       {"all_cores_gflops", measured_value(c.all_cores_gflops)}});
  return {{"gemm", "SGEMM 1024^3"},
          {"cores", probe.cores},
          {"sample_seconds", probe.sample_seconds},
          {"one_core_gflops", spread_json(s.one)},
          {"all_cores_gflops", spread_json(s.all)},
          {"ratio", spread_json(s.ratio)},
          {"shared_below", shared_below},
          {"shared_samples", s.shared_at.size()},
          {"samples", std::move(samples)}};
}

}  // namespace flows::bench
