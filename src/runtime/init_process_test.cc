// kiln-init as a process: main-process logs, reaping, shutdown, memory, malformed input.

#include "runtime/init_test_util.h"

namespace kiln::runtime {
namespace {

using namespace init_test;  // NOLINT: test helpers
namespace fs = std::filesystem;
namespace proto = init::proto;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::vector<std::string> LogLines(const fs::path& path) {
  std::vector<std::string> lines;
  std::istringstream in(ReadAll(path));
  std::string line;
  while (std::getline(in, line)) {
    lines.push_back(line);
  }
  return lines;
}

// "1700000000000 o text" -> "o text", checking the timestamp.
std::string WithoutTime(const std::string& record) {
  size_t space = record.find(' ');
  EXPECT_NE(space, std::string::npos) << record;
  EXPECT_GT(std::stoll(record.substr(0, space)), 1'600'000'000'000) << record;
  return record.substr(space + 1);
}

TEST(InitMainTest, MainOutputGoesToMainLog) {
  InitProcess init({}, {"/bin/sh", "-c",
                        "echo out1; echo err1 >&2; printf partial; sleep 0.3; echo; "
                        "echo out2; exit 4"});
  fs::path log = init.logs() / "main.log";
  ASSERT_TRUE(WaitFor([&] { return ReadAll(log).find(" x ") != std::string::npos; }, 5s));
  std::vector<std::string> records;
  for (const std::string& line : LogLines(log)) {
    records.push_back(WithoutTime(line));
  }
  // stdout and stderr are separate pipes: their relative order is not defined.
  std::vector<std::string> out;
  for (const std::string& r : records) {
    if (r[0] == 'o') {
      out.push_back(r);
    }
  }
  EXPECT_EQ(out, (std::vector<std::string>{"o out1", "o partial", "o out2"}));
  EXPECT_NE(std::find(records.begin(), records.end(), "e err1"), records.end());
  EXPECT_EQ(records.back(), "x exit code 4");
  // kiln-init keeps serving after its main process exits.
  EXPECT_TRUE(init.client().Ping(2s).ok());
}

TEST(InitMainTest, LongLinesAreSplitAt16KiB) {
  InitProcess init({}, {"/bin/sh", "-c", "head -c 40000 /dev/zero | tr '\\0' a; echo; echo end"});
  fs::path log = init.logs() / "main.log";
  ASSERT_TRUE(WaitFor([&] { return ReadAll(log).find(" x ") != std::string::npos; }, 5s));
  std::vector<std::string> records;
  for (const std::string& line : LogLines(log)) {
    records.push_back(WithoutTime(line));
  }
  ASSERT_EQ(records.size(), 5u);
  EXPECT_EQ(records[0], "o " + std::string(16384, 'a'));
  EXPECT_EQ(records[1], "o " + std::string(16384, 'a'));
  EXPECT_EQ(records[2], "o " + std::string(40000 - 2 * 16384, 'a'));
  EXPECT_EQ(records[3], "o end");
  EXPECT_EQ(records[4], "x exit code 0");
}

TEST(InitMainTest, MainLogRotatesAtItsCap) {
  InitProcess init(
      {"--log-max-bytes", "300"},
      {"/bin/sh", "-c", "i=0; while [ $i -lt 40 ]; do echo line-$i; i=$((i+1)); done"});
  fs::path log = init.logs() / "main.log";
  ASSERT_TRUE(WaitFor([&] { return ReadAll(log).find(" x ") != std::string::npos; }, 5s));
  fs::path rotated = init.logs() / "main.log.1";
  ASSERT_TRUE(fs::exists(rotated));
  EXPECT_LE(fs::file_size(log), 300u);
  EXPECT_LE(fs::file_size(rotated), 300u);
  std::string all = ReadAll(rotated) + ReadAll(log);
  EXPECT_NE(all.find(" o line-39\n"), std::string::npos);
  EXPECT_EQ(WithoutTime(LogLines(log).back()), "x exit code 0");
}

TEST(InitMainTest, NoZombiesAfterManyExecs) {
  InitProcess init;
  InitClient client = init.client();
  for (int i = 0; i < 40; ++i) {
    // The background job outlives the shell: it is reparented to kiln-init and reaped there.
    Result<ExecResult> r = client.Exec(Shell(i % 2 == 0 ? "true" : "sleep 0.01 & exit 0"));
    ASSERT_TRUE(r.ok());
  }
  EXPECT_TRUE(WaitFor([&] { return CountZombieChildren(init.pid()) == 0; }, 3s))
      << CountZombieChildren(init.pid()) << " zombies";
  Result<InitInfo> info = client.Ping(2s);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->execs, 0);
}

TEST(InitMainTest, SigtermStopsChildrenAndExitsZero) {
  InitProcess init({}, {"sleep", "60"});
  InitClient client = init.client();
  std::promise<int> started;
  auto running = std::async(std::launch::async, [&] {
    return client.Exec(Shell("sleep 60"), nullptr, [&](int pid) { started.set_value(pid); });
  });
  int exec_pid = started.get_future().get();
  std::string children = ReadAll("/proc/" + std::to_string(init.pid()) + "/task/" +
                                 std::to_string(init.pid()) + "/children");
  std::vector<pid_t> pids;
  std::istringstream in(children);
  for (pid_t pid = 0; in >> pid;) {
    pids.push_back(pid);
  }
  EXPECT_EQ(pids.size(), 2u);  // main and the exec
  ASSERT_EQ(kill(init.pid(), SIGTERM), 0);
  int status = 0;
  ASSERT_TRUE(init.WaitExit(7s, &status));
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  for (pid_t pid : pids) {
    EXPECT_TRUE(ProcessGone(pid)) << pid;
  }
  EXPECT_TRUE(ProcessGone(exec_pid));
  EXPECT_FALSE(fs::exists(init.socket_path()));
  Result<ExecResult> r = running.get();
  ASSERT_TRUE(r.ok()) << r.status().ToString();  // the EXIT still reached the client
  EXPECT_EQ(r->signal, SIGTERM);
  EXPECT_EQ(WithoutTime(LogLines(init.logs() / "main.log").back()),
            "x killed by signal 15 (SIGTERM)");
}

TEST(InitMainTest, IdleResidentSetStaysUnderOneMiB) {
  InitProcess init;
  InitClient client = init.client();
  ASSERT_TRUE(client.Exec(Shell("echo warm-up")).ok());
  ASSERT_TRUE(client.WriteFile("/f", std::string(3 << 20, 'x')).ok());
  ASSERT_TRUE(client.ReadFile("/f", 4 << 20).ok());
  // kiln-init gives memory back after a second without requests.
  int64_t rss_kb = -1;
  bool small = WaitFor(
      [&] {
        rss_kb = StatusField(init.pid(), "VmRSS");
        return rss_kb > 0 && rss_kb < 1024;
      },
      5s);
  RecordProperty("idle_rss_kb", static_cast<int>(rss_kb));
  EXPECT_TRUE(small) << "idle VmRSS " << rss_kb << " kB";
}

TEST(InitLimitsTest, MalformedFramesAndBusy) {
  InitProcess init;
  {
    RawConnection conn(init.socket_path());
    conn.Send(std::string("\xff\xff\xff\x7f\x04", 5));  // 2 GiB frame
    proto::Type type{};
    std::string payload;
    ASSERT_TRUE(conn.Read(&type, &payload));
    EXPECT_EQ(type, proto::Type::kError);
    EXPECT_EQ(FieldOf(payload, proto::Tag::kCode), "BAD_REQUEST");
  }
  std::vector<std::unique_ptr<RawConnection>> idle;
  for (int i = 0; i < 64; ++i) {
    idle.push_back(std::make_unique<RawConnection>(init.socket_path()));
    ASSERT_TRUE(idle.back()->connected());
  }
  // Make sure kiln-init has accepted all 64 before the next one.
  ASSERT_TRUE(WaitFor(
      [&] {
        return std::distance(fs::directory_iterator("/proc/" + std::to_string(init.pid()) + "/fd"),
                             {}) >= 64 + 5;
      },
      3s));
  Result<InitInfo> info = init.client().Ping(2s);
  EXPECT_EQ(info.status().error_code(), "BUSY");
  EXPECT_EQ(info.status().code(), Code::kUnavailable);
  idle.clear();
  EXPECT_TRUE(WaitFor([&] { return init.client().Ping(2s).ok(); }, 3s));
}

}  // namespace
}  // namespace kiln::runtime
