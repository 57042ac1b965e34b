// apps.stats: the last hour of an app's requests, latency, CPU and memory, sampled every
// second here (apps.stats_interval_seconds = 1) from the gateway and the instance's cgroup.
#include "integration/app_fixture.h"

namespace kiln::testing {
namespace {

class AppStatsTest : public AppTest {
 protected:
  std::string Config() override { return AppTest::Config() + "stats_interval_seconds = 1\n"; }
};

double Num(const json::value& v) {
  return v.is_double() ? v.as_double() : v.is_int64() ? static_cast<double>(v.as_int64()) : -1;
}

TEST_F(AppStatsTest, HistoryCountsTheRequestsServedAndTheInstancesCpuAndMemory) {
  CreateApp("plotted");
  Reply empty = Call("GET", "/v1/apps/plotted/stats", admin_);
  ASSERT_EQ(empty.status, 200) << empty;
  EXPECT_EQ(empty.Int("/data/intervalSeconds"), 1);
  EXPECT_EQ(empty.Int("/data/windowSeconds"), 3600);
  EXPECT_TRUE(empty.Array("/data/points").empty()) << empty;  // never ran: no points

  ASSERT_EQ(DeployDir("plotted", ExamplesDir() / "node").Str("/data/status"), "live");
  constexpr int kRequests = 30;
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_FALSE(Body("plotted").empty());
  }
  ASSERT_EQ(Fetch("plotted", "/no-such-page")->status / 100, 4);

  // A second of busy CPU inside the instance (exec runs in its cgroup).
  ASSERT_EQ(
      Exec("plotted", "timeout 1.5 sh -c 'while :; do :; done'; echo done").Str("/data/stdout"),
      "done\n");

  // Points arrive each second; wait until they hold every request sent and the busy second.
  Reply stats;
  uint64_t requests = 0, client_errors = 0;
  double max_cpu = 0;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (std::chrono::steady_clock::now() < deadline) {
    stats = Call("GET", "/v1/apps/plotted/stats", admin_);
    ASSERT_EQ(stats.status, 200) << stats;
    requests = client_errors = 0;
    max_cpu = 0;
    for (const json::value& p : stats.Array("/data/points")) {
      requests += p.at("requests").to_number<uint64_t>();
      client_errors += p.at("clientErrors").to_number<uint64_t>();
      if (p.at("cpuCores").is_number()) {
        max_cpu = std::max(max_cpu, Num(p.at("cpuCores")));
      }
    }
    if (requests >= kRequests + 1 && max_cpu > 0.5) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  // The deploy's health check does not go through the gateway: exactly what was sent.
  EXPECT_EQ(requests, kRequests + 1u) << stats;
  EXPECT_EQ(client_errors, 1u) << stats;
  // One core busy for most of a one-second interval; never more than the machine has.
  EXPECT_GT(max_cpu, 0.5) << stats;
  EXPECT_LE(max_cpu, static_cast<double>(std::thread::hardware_concurrency()) + 0.1) << stats;
  bool busy_point = false;
  for (const json::value& v : stats.Array("/data/points")) {
    const json::object& p = v.as_object();
    EXPECT_GT(Num(p.at("seconds")), 0) << p;
    EXPECT_GT(Num(p.at("memoryBytes")), 0) << p;  // the node process's memory
    EXPECT_EQ(p.at("memoryLimitBytes").to_number<int64_t>(), 256LL << 20) << p;
    if (p.at("requests").to_number<uint64_t>() > 0) {
      busy_point = true;
      EXPECT_GT(Num(p.at("p50Ms")), 0) << p;
      EXPECT_GE(Num(p.at("p99Ms")), Num(p.at("p50Ms"))) << p;
      EXPECT_GT(Num(p.at("rps")), 0) << p;
      EXPECT_GT(p.at("bytesOut").to_number<uint64_t>(), 0u) << p;
    }
  }
  EXPECT_TRUE(busy_point) << stats;

  // since: only points after the given time.
  const json::array& points = stats.Array("/data/points");
  ASSERT_FALSE(points.empty());
  std::string last = std::string(points.back().at("time").as_string());
  Reply later = Call("GET", "/v1/apps/plotted/stats?since=" + last, admin_);
  ASSERT_EQ(later.status, 200) << later;
  for (const json::value& p : later.Array("/data/points")) {
    EXPECT_GT(std::string(p.at("time").as_string()), last) << later;
  }
  // apps.get still reports the totals.
  EXPECT_EQ(Call("GET", "/v1/apps/plotted", admin_).Int("/data/requests/total"), kRequests + 1);

  Reply bad = Call("GET", "/v1/apps/plotted/stats?since=yesterday", admin_);
  EXPECT_EQ(bad.status, 400) << bad;
  EXPECT_EQ(bad.ErrorCode(), "TIME_INVALID") << bad;
  EXPECT_EQ(Call("GET", "/v1/apps/nope/stats", admin_).ErrorCode(), "APP_NOT_FOUND");
}

}  // namespace
}  // namespace kiln::testing
