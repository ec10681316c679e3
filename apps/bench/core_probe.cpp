#include "core_probe.hpp"

#include <chrono>
#include <ostream>

#include <fmt/format.h>

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
  const Spread one = spread(probe, [](const CoreSample& s) { return s.one_core_gflops; });
  const Spread all = spread(probe, [](const CoreSample& s) { return s.all_cores_gflops; });
  const Spread r = spread(probe, ratio);
  out << fmt::format(
      "{:<4} SGEMM 1024^3 in {} pairs of {:.2f} s samples (tenth / median / ninth tenth)\n", "",
      probe.samples.size(), probe.sample_seconds);
  out << fmt::format("{:<4} {:<24} {:>7.1f} {:>7.1f} {:>7.1f} GFLOP/s\n", "", "1 thread", one.p10,
                     one.median, one.p90);
  out << fmt::format("{:<4} {:<24} {:>7.1f} {:>7.1f} {:>7.1f} GFLOP/s\n", "",
                     fmt::format("{} threads", probe.cores), all.p10, all.median, all.p90);
  out << fmt::format("{:<4} {:<24} {:>7.2f} {:>7.2f} {:>7.2f}\n", "", "ratio", r.p10, r.median,
                     r.p90);
  std::size_t shared = 0;
  for (const CoreSample& s : probe.samples) shared += ratio(s) < shared_below;
  out << fmt::format("{:<4} samples with ratio < {:.2f}: {} of {}", "", shared_below, shared,
                     probe.samples.size());
  if (shared > 0) {
    out << " (at";
    for (const CoreSample& s : probe.samples)
      if (ratio(s) < shared_below) out << fmt::format(" {:.1f}", s.at_seconds);
    out << " s)";
  }
  out << "\n";
}

Json core_probe_json(const CoreProbe& probe, double shared_below) {
  Json samples = Json::array();
  std::size_t shared = 0;
  for (const CoreSample& s : probe.samples) {
    samples.push_back({{"at_seconds", measured_value(s.at_seconds)},
                       {"one_core_gflops", measured_value(s.one_core_gflops)},
                       {"all_cores_gflops", measured_value(s.all_cores_gflops)}});
    shared += ratio(s) < shared_below;
  }
  return {{"gemm", "SGEMM 1024^3"},
          {"cores", probe.cores},
          {"sample_seconds", probe.sample_seconds},
          {"one_core_gflops",
           spread_json(spread(probe, [](const CoreSample& s) { return s.one_core_gflops; }))},
          {"all_cores_gflops",
           spread_json(spread(probe, [](const CoreSample& s) { return s.all_cores_gflops; }))},
          {"ratio", spread_json(spread(probe, ratio))},
          {"shared_below", shared_below},
          {"shared_samples", shared},
          {"samples", std::move(samples)}};
}

}  // namespace flows::bench
