#include "service/history.h"

namespace kiln::service {

namespace {
// Later sample minus earlier, or nullopt when a counter went down (it restarted).
std::optional<Traffic> Difference(const Traffic& later, const Traffic& earlier) {
  Traffic d;
  if (later.requests < earlier.requests || later.latency_count < earlier.latency_count ||
      later.bytes_in < earlier.bytes_in || later.bytes_out < earlier.bytes_out) {
    return std::nullopt;
  }
  d.requests = later.requests - earlier.requests;
  for (size_t i = 0; i < d.by_class.size(); ++i) {
    if (later.by_class[i] < earlier.by_class[i]) {
      return std::nullopt;
    }
    d.by_class[i] = later.by_class[i] - earlier.by_class[i];
  }
  for (size_t i = 0; i < d.latency.size(); ++i) {
    if (later.latency[i] < earlier.latency[i]) {
      return std::nullopt;
    }
    d.latency[i] = later.latency[i] - earlier.latency[i];
  }
  d.latency_count = later.latency_count - earlier.latency_count;
  d.bytes_in = later.bytes_in - earlier.bytes_in;
  d.bytes_out = later.bytes_out - earlier.bytes_out;
  return d;
}
}  // namespace

StatsHistory::StatsHistory(std::chrono::milliseconds interval, std::chrono::milliseconds window)
    : interval_(interval), window_(window) {}

void StatsHistory::Sample(const std::string& app_id, int64_t now_ms,
                          const std::optional<Traffic>& traffic, const std::string& instance,
                          const std::optional<runtime::InstanceStats>& stats) {
  std::lock_guard lock(mu_);
  Series& s = series_[app_id];
  // A new series compares with nothing counted, an interval ago: the gateway's counters
  // start with the server, and an app is sampled every interval while it has a route, so
  // what they hold at an app's first sample was served since the previous round. Otherwise a
  // point needs a previous sample close enough before it: more than three intervals apart
  // (the app was stopped, the clock jumped) starts over.
  bool fresh = s.last_ms == 0;
  int64_t elapsed = fresh ? interval_.count() : now_ms - s.last_ms;
  bool comparable = fresh || (elapsed > 0 && elapsed <= 3 * interval_.count());
  if (comparable) {
    StatsPoint p;
    p.time_ms = now_ms;
    p.seconds = static_cast<double>(elapsed) / 1000.0;
    // No traffic yet on either side is a point with no requests; a restarted counter is not.
    std::optional<Traffic> d = Traffic{};
    if (traffic && s.traffic) {
      d = Difference(*traffic, *s.traffic);
    } else if (traffic) {
      d = traffic;  // the first requests since the server started
    }
    if (d) {
      p.requests = d->requests;
      p.client_errors = d->by_class[3];
      p.errors = d->by_class[4];
      p.bytes_in = d->bytes_in;
      p.bytes_out = d->bytes_out;
      p.p50_ms = BucketQuantile(d->latency, d->latency_count, 0.5) * 1000;
      p.p99_ms = BucketQuantile(d->latency, d->latency_count, 0.99) * 1000;
    }
    if (stats) {
      p.memory_bytes = stats->memory_bytes;
      p.memory_limit_bytes = stats->memory_limit_bytes;
      if (s.cpu_usage_us && instance == s.instance && stats->cpu_usage_us >= *s.cpu_usage_us) {
        p.cpu_cores = static_cast<double>(stats->cpu_usage_us - *s.cpu_usage_us) / 1000.0 /
                      static_cast<double>(elapsed);
      }
    }
    if (d || stats) {
      s.points.push_back(p);
    }
  }
  s.last_ms = now_ms;
  s.traffic = traffic;
  s.instance = instance;
  s.cpu_usage_us = stats ? std::optional<int64_t>(stats->cpu_usage_us) : std::nullopt;
  while (!s.points.empty() && now_ms - s.points.front().time_ms >= window_.count()) {
    s.points.pop_front();
  }
}

std::vector<StatsPoint> StatsHistory::Points(const std::string& app_id, int64_t now_ms,
                                             int64_t since_ms) const {
  std::lock_guard lock(mu_);
  std::vector<StatsPoint> out;
  auto it = series_.find(app_id);
  if (it == series_.end()) {
    return out;
  }
  for (const StatsPoint& p : it->second.points) {
    if (p.time_ms > since_ms && now_ms - p.time_ms < window_.count()) {
      out.push_back(p);
    }
  }
  return out;
}

void StatsHistory::Forget(const std::string& app_id) {
  std::lock_guard lock(mu_);
  series_.erase(app_id);
}

}  // namespace kiln::service
