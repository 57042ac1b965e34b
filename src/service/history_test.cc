#include "service/history.h"

#include <gtest/gtest.h>

namespace kiln::service {
namespace {

using std::chrono::milliseconds;

// Totals as the gateway would report after `requests` answers of `status_class` (2..5) that
// each took `seconds`, on top of `base`.
Traffic Served(Traffic base, int requests, int status_class, double seconds) {
  HistogramSeries h;
  for (int i = 0; i < requests; ++i) {
    h.Observe(seconds);
  }
  base.requests += requests;
  base.by_class[status_class - 1] += requests;
  base.bytes_out += 100 * static_cast<uint64_t>(requests);
  for (size_t i = 0; i < base.latency.size(); ++i) {
    base.latency[i] += h.Bucket(i);
  }
  base.latency_count += requests;
  return base;
}

runtime::InstanceStats Cpu(int64_t usage_us, int64_t memory = 50 << 20) {
  runtime::InstanceStats s;
  s.cpu_usage_us = usage_us;
  s.memory_bytes = memory;
  s.memory_limit_bytes = 256 << 20;
  return s;
}

TEST(StatsHistoryTest, PointsHoldWhatChangedInEachIntervalNotTotals) {
  StatsHistory h(milliseconds(10'000), milliseconds(3'600'000));
  // Slow requests before the first sample: served since the previous round (the app had no
  // route then), so they make the first point, with no CPU figure yet.
  Traffic t0 = Served({}, 1000, 2, 0.2);
  h.Sample("app_1", 1'000'000, t0, "inst_a", Cpu(5'000'000));
  auto first = h.Points("app_1", 1'000'000);
  ASSERT_EQ(first.size(), 1u);
  EXPECT_EQ(first[0].requests, 1000u);
  EXPECT_DOUBLE_EQ(first[0].seconds, 10);
  EXPECT_GT(first[0].p50_ms, 100);
  EXPECT_FALSE(first[0].cpu_cores.has_value());

  Traffic t1 = Served(t0, 40, 2, 0.0004);
  t1 = Served(t1, 10, 5, 0.0004);
  h.Sample("app_1", 1'010'000, t1, "inst_a", Cpu(7'500'000, 60 << 20));
  auto points = h.Points("app_1", 1'010'000);
  ASSERT_EQ(points.size(), 2u);
  const StatsPoint& p = points[1];
  EXPECT_EQ(p.time_ms, 1'010'000);
  EXPECT_DOUBLE_EQ(p.seconds, 10);
  EXPECT_EQ(p.requests, 50u);
  EXPECT_EQ(p.errors, 10u);
  EXPECT_EQ(p.client_errors, 0u);
  EXPECT_EQ(p.bytes_out, 5000u);
  // The slow requests before were not in this interval: its p99 stays in the first bucket.
  EXPECT_GT(p.p99_ms, 0);
  EXPECT_LE(p.p99_ms, 0.5);
  ASSERT_TRUE(p.cpu_cores.has_value());
  EXPECT_DOUBLE_EQ(*p.cpu_cores, 0.25);  // 2.5 s of CPU in 10 s
  EXPECT_EQ(p.memory_bytes, 60 << 20);
  EXPECT_EQ(p.memory_limit_bytes, 256 << 20);
}

TEST(StatsHistoryTest, AppWithoutTrafficGetsZeroRequestPoints) {
  StatsHistory h(milliseconds(1000), milliseconds(60'000));
  h.Sample("app_1", 10'000, std::nullopt, "inst_a", Cpu(0));
  h.Sample("app_1", 11'000, std::nullopt, "inst_a", Cpu(1000));
  auto points = h.Points("app_1", 11'000);
  ASSERT_EQ(points.size(), 2u);
  EXPECT_EQ(points[1].requests, 0u);
  EXPECT_EQ(points[1].p50_ms, 0);
  EXPECT_DOUBLE_EQ(*points[1].cpu_cores, 0.001);
  // Then the first request ever: counted from zero.
  h.Sample("app_1", 12'000, Served({}, 3, 4, 0.001), "inst_a", Cpu(2000));
  points = h.Points("app_1", 12'000);
  ASSERT_EQ(points.size(), 3u);
  EXPECT_EQ(points[2].requests, 3u);
  EXPECT_EQ(points[2].client_errors, 3u);
}

TEST(StatsHistoryTest, NewInstanceOrRestartedCounterNeverGivesNegativePoints) {
  StatsHistory h(milliseconds(1000), milliseconds(60'000));
  Traffic big = Served({}, 500, 2, 0.001);
  h.Sample("app_1", 10'000, big, "inst_a", Cpu(9'000'000));
  // A deploy: new instance whose cgroup counts CPU from 0; the gateway's counters restarted
  // too (a server restart keeps nothing in memory, but a test can say so).
  h.Sample("app_1", 11'000, Served({}, 2, 2, 0.001), "inst_b", Cpu(100'000));
  auto points = h.Points("app_1", 11'000);
  ASSERT_EQ(points.size(), 2u);
  EXPECT_FALSE(points[1].cpu_cores.has_value());  // no CPU figure across instances
  EXPECT_EQ(points[1].requests, 0u);              // not 2 - 500
  EXPECT_EQ(points[1].memory_bytes, 50 << 20);    // memory is a level: still shown
  // The next interval compares with the new baseline.
  h.Sample("app_1", 12'000, Served(Served({}, 2, 2, 0.001), 7, 2, 0.001), "inst_b", Cpu(600'000));
  points = h.Points("app_1", 12'000);
  ASSERT_EQ(points.size(), 3u);
  EXPECT_EQ(points[2].requests, 7u);
  EXPECT_DOUBLE_EQ(*points[2].cpu_cores, 0.5);
}

TEST(StatsHistoryTest, GapsStartOverAndOldPointsLeaveTheWindow) {
  StatsHistory h(milliseconds(1000), milliseconds(10'000));
  int64_t t = 100'000;
  for (int i = 0; i < 15; ++i, t += 1000) {
    h.Sample("app_1", t, std::nullopt, "inst_a", Cpu(i * 1000));
  }
  t -= 1000;  // the last sample's time
  auto points = h.Points("app_1", t);
  ASSERT_EQ(points.size(), 10u);  // 10 s window at 1 s: the points of t - 9 s .. t
  EXPECT_GT(points.front().time_ms, t - 10'000);
  EXPECT_EQ(points.back().time_ms, t);
  // since: only later points.
  EXPECT_EQ(h.Points("app_1", t, t - 3000).size(), 3u);
  // The app was stopped for a minute: the next sample is a new baseline, not a 60 s point.
  h.Sample("app_1", t + 60'000, std::nullopt, "inst_a", Cpu(10'000'000));
  EXPECT_TRUE(h.Points("app_1", t + 60'000).empty());  // the old ones aged out as well
  h.Sample("app_1", t + 61'000, std::nullopt, "inst_a", Cpu(10'100'000));
  EXPECT_EQ(h.Points("app_1", t + 61'000).size(), 1u);
  // A deleted app's series goes.
  h.Forget("app_1");
  EXPECT_TRUE(h.Points("app_1", t + 61'000).empty());
  EXPECT_TRUE(h.Points("app_unknown", t).empty());
}

}  // namespace
}  // namespace kiln::service
