#include "core/metrics.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

bool Contains(const std::string& text, std::string_view line) {
  return text.find(line) != std::string::npos;
}

TEST(MetricsTest, CounterRendersHelpTypeAndValue) {
  Metrics m;
  m.Describe("kiln_http_requests_total", "counter", "HTTP requests served");
  m.Add("kiln_http_requests_total", "route=\"/v1/keys\",code=\"200\"");
  m.Add("kiln_http_requests_total", "route=\"/v1/keys\",code=\"200\"", 2);
  m.Add("kiln_restarts_total", "", 0.5);
  std::string out = m.Render();
  EXPECT_TRUE(Contains(out, "# HELP kiln_http_requests_total HTTP requests served\n")) << out;
  EXPECT_TRUE(Contains(out, "# TYPE kiln_http_requests_total counter\n")) << out;
  EXPECT_TRUE(Contains(out, "kiln_http_requests_total{route=\"/v1/keys\",code=\"200\"} 3\n"))
      << out;
  EXPECT_TRUE(Contains(out, "\nkiln_restarts_total 0.5\n")) << out;
}

TEST(MetricsTest, HistogramBucketsAreCumulative) {
  Metrics m;
  m.Observe("kiln_http_request_seconds", "route=\"/x\"", 0.0003);
  m.Observe("kiln_http_request_seconds", "route=\"/x\"", 0.003);
  m.Observe("kiln_http_request_seconds", "route=\"/x\"", 20);
  std::string out = m.Render();
  EXPECT_TRUE(Contains(out, "# TYPE kiln_http_request_seconds histogram\n")) << out;
  EXPECT_TRUE(Contains(out, "kiln_http_request_seconds_bucket{route=\"/x\",le=\"0.0005\"} 1\n"))
      << out;
  EXPECT_TRUE(Contains(out, "kiln_http_request_seconds_bucket{route=\"/x\",le=\"0.0025\"} 1\n"))
      << out;
  EXPECT_TRUE(Contains(out, "kiln_http_request_seconds_bucket{route=\"/x\",le=\"0.005\"} 2\n"))
      << out;
  EXPECT_TRUE(Contains(out, "kiln_http_request_seconds_bucket{route=\"/x\",le=\"10\"} 2\n")) << out;
  EXPECT_TRUE(Contains(out, "kiln_http_request_seconds_bucket{route=\"/x\",le=\"+Inf\"} 3\n"))
      << out;
  EXPECT_TRUE(Contains(out, "kiln_http_request_seconds_count{route=\"/x\"} 3\n")) << out;
  EXPECT_TRUE(Contains(out, "kiln_http_request_seconds_sum{route=\"/x\"} 20.0033\n")) << out;
}

TEST(MetricsTest, HistogramWithoutLabels) {
  Metrics m;
  m.Observe("kiln_op_seconds", "", 1);
  std::string out = m.Render();
  EXPECT_TRUE(Contains(out, "kiln_op_seconds_bucket{le=\"0.5\"} 0\n")) << out;
  EXPECT_TRUE(Contains(out, "kiln_op_seconds_bucket{le=\"1\"} 1\n")) << out;
  EXPECT_TRUE(Contains(out, "kiln_op_seconds_sum 1\n")) << out;
  EXPECT_TRUE(Contains(out, "kiln_op_seconds_count 1\n")) << out;
}

TEST(MetricsTest, GaugeIsReadAtRenderTime) {
  Metrics m;
  double value = 1;
  m.Gauge("kiln_uptime_seconds", "Seconds since start", [&] { return value; });
  value = 42;
  std::string out = m.Render();
  EXPECT_TRUE(Contains(out, "# HELP kiln_uptime_seconds Seconds since start\n")) << out;
  EXPECT_TRUE(Contains(out, "# TYPE kiln_uptime_seconds gauge\n")) << out;
  EXPECT_TRUE(Contains(out, "kiln_uptime_seconds 42\n")) << out;
}

TEST(MetricsTest, BucketQuantileInterpolatesWithinTheBucket) {
  HistogramSeries h;
  EXPECT_EQ(BucketQuantile(h.Buckets(), h.Count(), 0.5), 0);  // nothing observed
  for (int i = 0; i < 90; ++i) {
    h.Observe(0.0003);  // first bucket: up to 0.5 ms
  }
  for (int i = 0; i < 10; ++i) {
    h.Observe(0.2);  // the 0.1 .. 0.25 s bucket
  }
  EXPECT_NEAR(BucketQuantile(h.Buckets(), h.Count(), 0.5), 0.0005 * 50 / 90, 1e-9);
  // Rank 99 is the 9th of 10 in (0.1, 0.25]: 0.1 + 0.15 * 0.9.
  EXPECT_NEAR(BucketQuantile(h.Buckets(), h.Count(), 0.99), 0.235, 1e-9);
  h.Observe(60);  // above every bound: only in the count
  EXPECT_EQ(BucketQuantile(h.Buckets(), h.Count(), 1.0), kHistogramBounds.back());
}

}  // namespace
}  // namespace kiln
