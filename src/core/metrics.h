#pragma once
// Metrics for /metrics (Prometheus text format).

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

namespace kiln {

// Upper bounds, in seconds, of every histogram's buckets.
inline constexpr std::array<double, 14> kHistogramBounds = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

// Per-bucket counts (not cumulative) of observations up to each bound of kHistogramBounds.
using HistogramBuckets = std::array<uint64_t, kHistogramBounds.size()>;

// The q-quantile (0..1), in seconds, of `count` observations whose `buckets` are given,
// interpolated within its bucket as Prometheus' histogram_quantile does: 0 when count is 0,
// the last bound when the rank falls beyond it (observations above every bound).
double BucketQuantile(const HistogramBuckets& buckets, uint64_t count, double q);

// One counter series (a name with one set of labels). Add is a relaxed atomic add.
class CounterSeries {
 public:
  void Add(double value = 1) { value_.fetch_add(value, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// One histogram series. Observe is a few relaxed atomic adds; a scrape that races with it
// may see a count one ahead of a bucket, which Prometheus tolerates.
class HistogramSeries {
 public:
  void Observe(double seconds);
  uint64_t Bucket(size_t i) const { return buckets_[i].load(std::memory_order_relaxed); }
  HistogramBuckets Buckets() const;
  uint64_t Count() const { return count_.load(std::memory_order_relaxed); }
  double Sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::array<std::atomic<uint64_t>, kHistogramBounds.size()> buckets_{};  // not cumulative
  std::atomic<uint64_t> count_{0};
  std::atomic<double> sum_{0};
};

// A small Prometheus registry: counters and histograms with labels, rendered as the text
// exposition format. Thread-safe. Hot paths resolve a series once (Counter, Histogram) and keep
// the reference, which stays valid for the registry's lifetime; Add and Observe by name look
// the series up under a lock each time.
class Metrics {
 public:
  // labels: `route="/v1/keys",code="200"` (already escaped), or empty.
  CounterSeries& Counter(const std::string& name, const std::string& labels);
  HistogramSeries& Histogram(const std::string& name, const std::string& labels);
  void Add(const std::string& name, const std::string& labels, double value = 1) {
    Counter(name, labels).Add(value);
  }
  // Records one observation (seconds) into histogram `name`.
  void Observe(const std::string& name, const std::string& labels, double seconds) {
    Histogram(name, labels).Observe(seconds);
  }
  void Describe(const std::string& name, const std::string& type, const std::string& help);
  // Gauges computed at scrape time (memory, uptime).
  void Gauge(const std::string& name, const std::string& help, std::function<double()> read);
  std::string Render() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::pair<std::string, std::string>> help_;  // name -> type, help
  std::map<std::string, std::map<std::string, std::unique_ptr<CounterSeries>>> counters_;
  std::map<std::string, std::map<std::string, std::unique_ptr<HistogramSeries>>> histograms_;
  std::vector<std::tuple<std::string, std::string, std::function<double()>>> gauges_;
};

}  // namespace kiln
