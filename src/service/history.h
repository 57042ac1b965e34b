#pragma once
// Module-private: the last hour of each app's request rate, latency, CPU and memory, for
// apps.stats and the dashboard's plots (DESIGN.md §6 metrics).
//
// The gateway's counters and the instance's cgroup only ever give totals since some start,
// so the history samples them every interval and keeps what changed in between: a point per
// interval with the requests, errors and bytes of that interval, its latency quantiles (from
// the difference of the two histograms, not since start) and the cores used on average. A
// counter that went down (a new instance after a deploy) starts a new baseline instead of a
// negative point; a gap of more than a few intervals (the app was stopped) does the same, so
// a point never averages over a stop. Kept in memory, like the gateway's counters: both
// start over with the server.
//
// Thread-safety: every method may be called from any thread.

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runtime/runtime.h"
#include "service/service.h"

namespace kiln::service {

// One interval of one app, ending at time_ms.
struct StatsPoint {
  int64_t time_ms = 0;
  double seconds = 0;  // the interval's length
  uint64_t requests = 0;
  uint64_t errors = 0;         // 5xx answers
  uint64_t client_errors = 0;  // 4xx answers
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;
  double p50_ms = 0;  // of this interval's requests; 0 when there were none
  double p99_ms = 0;
  std::optional<double> cpu_cores;  // mean cores used over the interval
  std::optional<int64_t> memory_bytes;
  std::optional<int64_t> memory_limit_bytes;
};

class StatsHistory {
 public:
  StatsHistory(std::chrono::milliseconds interval, std::chrono::milliseconds window);

  std::chrono::milliseconds interval() const { return interval_; }
  std::chrono::milliseconds window() const { return window_; }

  // Takes one sample of app_id's totals at now_ms (`instance` names whose cgroup `stats`
  // came from) and records the point since the previous sample, if there is one to compare.
  void Sample(const std::string& app_id, int64_t now_ms, const std::optional<Traffic>& traffic,
              const std::string& instance, const std::optional<runtime::InstanceStats>& stats);
  // The points of app_id newer than since_ms, oldest first, none older than the window.
  std::vector<StatsPoint> Points(const std::string& app_id, int64_t now_ms,
                                 int64_t since_ms = 0) const;
  // Drops an app's series (the app was deleted).
  void Forget(const std::string& app_id);

 private:
  struct Series {
    int64_t last_ms = 0;
    std::optional<Traffic> traffic;
    std::string instance;
    std::optional<int64_t> cpu_usage_us;
    std::deque<StatsPoint> points;
  };

  const std::chrono::milliseconds interval_;
  const std::chrono::milliseconds window_;
  mutable std::mutex mu_;
  std::map<std::string, Series> series_;
};

}  // namespace kiln::service
