#pragma once
// A small Prometheus registry: counters and histograms with labels, rendered as the text
// exposition format. Thread-safe; the hot path is an atomic add on an existing series.

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

class Metrics {
 public:
  // Adds `value` to counter `name` with `labels` ("route=\"/v1/keys\",code=\"200\"").
  void Add(const std::string& name, const std::string& labels, double value = 1);
  // Records one observation (seconds) into histogram `name`.
  void Observe(const std::string& name, const std::string& labels, double seconds);
  void Describe(const std::string& name, const std::string& type, const std::string& help);
  // Gauges computed at scrape time (memory, uptime).
  void Gauge(const std::string& name, const std::string& help, std::function<double()> read);
  std::string Render() const;

 private:
  struct Histogram {
    std::vector<uint64_t> buckets;  // cumulative at render time
    uint64_t count = 0;
    double sum = 0;
  };
  mutable std::mutex mu_;
  std::map<std::string, std::pair<std::string, std::string>> help_;  // name -> type, help
  std::map<std::string, std::map<std::string, double>> counters_;
  std::map<std::string, std::map<std::string, Histogram>> histograms_;
  std::vector<std::tuple<std::string, std::string, std::function<double()>>> gauges_;
};

}  // namespace kiln
