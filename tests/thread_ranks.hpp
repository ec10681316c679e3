#pragma once
// flows::Ranks for tests without MPI: the ranks of a job as threads of one
// process, meeting at a barrier for every collective. run_on_ranks(size, fn)
// runs fn(ranks) on `size` threads, one per rank, and waits for all.
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "flows/ranks.hpp"

namespace flows::test_support {

class ThreadRanks final : public Ranks {
 public:
  struct Job {
    explicit Job(int ranks) : size(ranks), slots(ranks), words(ranks) {}
    std::mutex mutex;
    std::condition_variable changed;
    int size;
    int arrived = 0;
    long generation = 0;
    std::vector<std::vector<Real>> slots;  // each rank's contribution to a collective
    std::vector<std::uint64_t> words;
  };

  ThreadRanks(Job& job, int rank) : job_(job), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override { return job_.size; }

  // The sums in rank order, so that every rank gets the same bits.
  void sum(Real* values, Index count) override {
    job_.slots[rank_].assign(values, values + count);
    barrier();
    for (Index i = 0; i < count; ++i) {
      Real total = 0;
      for (const auto& slot : job_.slots) total += slot[i];
      values[i] = total;
    }
    barrier();
  }
  bool same_on_every_rank(std::uint64_t value) override {
    job_.words[rank_] = value;
    barrier();
    bool same = true;
    for (std::uint64_t w : job_.words) same = same && w == value;
    barrier();
    return same;
  }
  std::vector<Real> gather(const Real* values, Index count) override {
    job_.slots[rank_].assign(values, values + count);
    barrier();
    std::vector<Real> all;
    if (rank_ == 0)
      for (const auto& slot : job_.slots) all.insert(all.end(), slot.begin(), slot.end());
    barrier();
    return all;
  }

 private:
  void barrier() {
    std::unique_lock<std::mutex> lock(job_.mutex);
    const long generation = job_.generation;
    if (++job_.arrived == job_.size) {
      job_.arrived = 0;
      ++job_.generation;
      job_.changed.notify_all();
    } else {
      job_.changed.wait(lock, [&] { return job_.generation != generation; });
    }
  }

  Job& job_;
  int rank_;
};

// fn(ranks) on one thread per rank; the first exception is rethrown (a rank
// that throws while the others wait at a barrier would hang them, so the
// tests' bodies must not throw).
inline void run_on_ranks(int size, const std::function<void(Ranks& ranks)>& fn) {
  ThreadRanks::Job job(size);
  std::vector<std::exception_ptr> errors(size);
  std::vector<std::thread> threads;
  for (int r = 0; r < size; ++r)
    threads.emplace_back([&, r] {
      ThreadRanks ranks(job, r);
      try {
        fn(ranks);
      } catch (...) {
        errors[r] = std::current_exception();
      }
    });
  for (auto& t : threads) t.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

}  // namespace flows::test_support
