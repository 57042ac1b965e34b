// Instances outlive the server: a restart keeps sandboxes alive and usable, a kill -9 of the
// server leaves nothing orphaned after the next start, and expiry is kept across restarts.
#include <signal.h>

#include "integration/sandbox_fixture.h"

namespace kiln::testing {
namespace {

using namespace std::chrono_literals;

class SandboxRestartTest : public SandboxTest {
 protected:
  std::string Config() override { return "[sandboxes]\npool_size = 1\n"; }
};

TEST_F(SandboxRestartTest, RestartKeepsSandboxesAliveAndUsable) {
  std::string id = Create();
  Run(id, "echo kept > /root/state && nohup sleep 1000 >/dev/null 2>&1 &");
  int init = InitPid(id);
  ASSERT_GT(init, 0);
  std::string sleeper = Run(id, "pgrep -x sleep");

  ASSERT_EQ(server().Stop(), 0);
  EXPECT_EQ(::kill(init, 0), 0) << "the instance stopped with the server";
  ASSERT_TRUE(server().Start());

  // Same instance, same processes, same files.
  EXPECT_EQ(InitPid(id), init);
  EXPECT_EQ(Run(id, "cat /root/state"), "kept\n");
  EXPECT_EQ(Run(id, "pgrep -x sleep"), sleeper);
  EXPECT_EQ(Get(id).Str("/data/status"), "running");
  // And still controllable.
  ASSERT_EQ(Call("POST", "/v1/sandboxes/" + id + "/pause", admin_).status, 200);
  ASSERT_EQ(Call("POST", "/v1/sandboxes/" + id + "/resume", admin_).status, 200);
  ASSERT_EQ(Call("DELETE", "/v1/sandboxes/" + id, admin_).status, 200);
  EXPECT_TRUE(Traces(id).empty()) << ::testing::PrintToString(Traces(id));
}

TEST_F(SandboxRestartTest, KillNineThenRestartLeavesNothingOrphaned) {
  std::string kept = Create();
  std::string lost = Create();
  std::string expiring = Create(R"({"timeout": 2})");
  Run(kept, "echo here > /root/f");
  // A pause survives too: the freezer is the truth.
  ASSERT_EQ(Call("POST", "/v1/sandboxes/" + kept + "/pause", admin_).status, 200);

  server().Kill9();
  // While the server is down: one instance dies (its init is killed), one sandbox expires.
  int lost_init = InitPid(lost);
  ASSERT_GT(lost_init, 0);
  ASSERT_EQ(::kill(lost_init, SIGKILL), 0);
  std::this_thread::sleep_for(2500ms);
  ASSERT_TRUE(server().Start());

  // The paused one is still paused, and then usable.
  EXPECT_EQ(Get(kept).Str("/data/status"), "paused");
  ASSERT_EQ(Call("POST", "/v1/sandboxes/" + kept + "/resume", admin_).status, 200);
  EXPECT_EQ(Run(kept, "cat /root/f"), "here\n");

  // The dead one is marked lost and cleaned up; the expired one is reaped at once.
  Reply l = Get(lost);
  EXPECT_EQ(l.Str("/data/status"), "lost") << l;
  EXPECT_TRUE(Traces(lost).empty()) << ::testing::PrintToString(Traces(lost));
  Reply e;
  for (int i = 0; i < 50; ++i) {
    e = Get(expiring);
    if (e.Str("/data/status") == "expired") {
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(e.Str("/data/status"), "expired") << e;
  EXPECT_TRUE(Traces(expiring).empty()) << ::testing::PrintToString(Traces(expiring));

  // Every instance on disk now is a live sandbox or the warm pool: no strays.
  std::set<std::string> live = {kept};
  int pooled = 0;
  for (const auto& entry : fs::directory_iterator(server().dir() / "instances")) {
    std::string id = entry.path().filename().string();
    if (!live.contains(id)) {
      ++pooled;
    }
  }
  EXPECT_LE(pooled, 1) << "more instances than the pool's one";
}

class SandboxBadInputTest : public SandboxTest {
 protected:
  std::string Config() override {
    return "[server]\nbody_limit_bytes = 65536\n[sandboxes]\npool_size = 0\n"
           "max_timeout_seconds = 3600\nmin_memory_mb = 64\n";
  }
  void ExpectError(const Reply& r, int status, const std::string& code) {
    EXPECT_EQ(r.status, status) << r;
    EXPECT_EQ(r.ErrorCode(), code) << r;
    EXPECT_FALSE(r.Str("/error/message").empty()) << r;
  }
};

TEST_F(SandboxBadInputTest, EachMistakeHasItsCode) {
  ExpectError(Call("POST", "/v1/sandboxes", admin_, R"({"template": "nope"})"), 404,
              "TEMPLATE_NOT_FOUND");
  ExpectError(Call("POST", "/v1/sandboxes", admin_, R"({"timeout": 0})"), 400, "VALIDATION_FAILED");
  ExpectError(Call("POST", "/v1/sandboxes", admin_, R"({"timeout": 3601})"), 400,
              "VALIDATION_FAILED");
  Reply floor = Call("POST", "/v1/sandboxes", admin_, R"({"memoryMb": 16})");
  ExpectError(floor, 400, "VALIDATION_FAILED");
  EXPECT_NE(floor.Str("/error/message").find("memoryMb"), std::string::npos) << floor;
  ExpectError(Call("POST", "/v1/sandboxes", admin_, R"({"network": "bridge"})"), 400,
              "VALIDATION_FAILED");
  ExpectError(Call("POST", "/v1/sandboxes", admin_, R"({"env": {"A-B": "x"}})"), 400,
              "VALIDATION_FAILED");
  ExpectError(Call("POST", "/v1/sandboxes", admin_, R"({"cpus": 0})"), 400, "VALIDATION_FAILED");
  // Nothing was started by any of them.
  EXPECT_TRUE(Call("GET", "/v1/sandboxes?status=all", admin_).Array("/data").empty());

  std::string id = Create();
  ExpectError(Call("POST", "/v1/sandboxes/" + id + "/exec", admin_, "{}"), 400,
              "VALIDATION_FAILED");
  ExpectError(Call("POST", "/v1/sandboxes/" + id + "/exec", admin_,
                   R"({"command": "true", "argv": ["true"]})"),
              400, "VALIDATION_FAILED");
  ExpectError(Call("POST", "/v1/sandboxes/" + id + "/exec", admin_,
                   R"({"command": "true", "timeoutMs": 700000})"),
              400, "VALIDATION_FAILED");
  ExpectError(Call("GET", "/v1/sandboxes/" + id + "/files?path=/nope", admin_), 404,
              "FILE_NOT_FOUND");
  ExpectError(Call("GET", "/v1/sandboxes/" + id + "/files?path=/root", admin_), 400,
              "IS_A_DIRECTORY");
  ExpectError(Call("PUT", "/v1/sandboxes/" + id + "/files?path=/usr/x", admin_, "x"), 409,
              "READ_ONLY");
  // A file over the body limit is refused before it reaches the sandbox.
  ExpectError(Call("PUT", "/v1/sandboxes/" + id + "/files?path=/root/big", admin_,
                   std::string(100000, 'x')),
              413, "BODY_TOO_LARGE");
  // One made inside is too big to read back.
  Run(id, "head -c 100000 /dev/zero > /root/big");
  ExpectError(Call("GET", "/v1/sandboxes/" + id + "/files?path=/root/big", admin_), 413,
              "FILE_TOO_LARGE");
  ExpectError(Call("POST", "/v1/sandboxes/sbx_missing/pause", admin_), 404, "SANDBOX_NOT_FOUND");
  // A read key can look but not run.
  json::object reader = MintKey("reader", R"(["read"])");
  ExpectError(
      Call("POST", "/v1/sandboxes/" + id + "/exec", S(reader, "secret"), R"({"command": "true"})"),
      403, "MISSING_SCOPE");
  EXPECT_EQ(Call("GET", "/v1/sandboxes/" + id, S(reader, "secret")).status, 200);
}

}  // namespace
}  // namespace kiln::testing
