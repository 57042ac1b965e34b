// Sandbox ports through the gateway: {port}-{sandboxId}.{base_domain} reaches a server
// started inside a real sandbox; a paused or killed sandbox answers 404 with a request id.

#include <chrono>
#include <string>
#include <thread>

#include "integration/sandbox_fixture.h"

namespace kiln::testing {
namespace {

using namespace std::chrono_literals;

class GatewaySandboxTest : public SandboxTest {
 protected:
  Result<Reply> FetchPort(const std::string& id, int port, const std::string& path = "/") {
    return server().TryRequest("GET", path, {},
                               {{"host", std::to_string(port) + "-" + id + ".localhost"}});
  }
  // Waits until the sandbox's server answers 200 through the gateway.
  Result<Reply> WaitForPort(const std::string& id, int port, const std::string& path) {
    auto deadline = std::chrono::steady_clock::now() + 20s;
    Result<Reply> r = FetchPort(id, port, path);
    while (std::chrono::steady_clock::now() < deadline && (!r.ok() || r->status != 200)) {
      std::this_thread::sleep_for(100ms);
      r = FetchPort(id, port, path);
    }
    return r;
  }
};

TEST_F(GatewaySandboxTest, PortIsServedWhileTheSandboxRuns) {
  std::string id = Create();
  ASSERT_FALSE(id.empty());
  Run(id, "mkdir -p /srv && echo hello-from-sandbox > /srv/index.txt");
  Reply started = Exec(
      id, "cd /srv && nohup python3 -m http.server 8000 --bind 127.0.0.1 > /tmp/http.log 2>&1 &");
  ASSERT_EQ(started.status, 200) << started;

  auto r = WaitForPort(id, 8000, "/index.txt");
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->status, 200) << *r;
  EXPECT_EQ(r->body, "hello-from-sandbox\n");
  EXPECT_FALSE(r->Header("x-request-id").empty());

  // The DNS-clean spelling (no underscore) names the same sandbox.
  std::string clean = id.substr(4);
  auto same =
      server().TryRequest("GET", "/index.txt", {}, {{"host", "8000-" + clean + ".localhost"}});
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->status, 200) << *same;

  // A port nothing listens on: the sandbox is there, the connection is refused: 502.
  auto closed = FetchPort(id, 8001);
  ASSERT_TRUE(closed.ok());
  EXPECT_EQ(closed->status, 502) << *closed;
  EXPECT_EQ(closed->ErrorCode(), "UPSTREAM_FAILED");

  // Paused: nothing answers there now.
  ASSERT_EQ(Call("POST", "/v1/sandboxes/" + id + "/pause", admin_).status, 200);
  auto paused = FetchPort(id, 8000, "/index.txt");
  ASSERT_TRUE(paused.ok());
  EXPECT_EQ(paused->status, 404) << *paused;
  EXPECT_EQ(paused->ErrorCode(), "SANDBOX_PORT_NOT_FOUND");
  ASSERT_EQ(Call("POST", "/v1/sandboxes/" + id + "/resume", admin_).status, 200);
  auto resumed = WaitForPort(id, 8000, "/index.txt");
  ASSERT_TRUE(resumed.ok());
  EXPECT_EQ(resumed->status, 200) << *resumed;

  // Killed: gone for good.
  ASSERT_EQ(Call("DELETE", "/v1/sandboxes/" + id, admin_).status, 200);
  auto killed = FetchPort(id, 8000, "/index.txt");
  ASSERT_TRUE(killed.ok());
  EXPECT_EQ(killed->status, 404) << *killed;
}

}  // namespace
}  // namespace kiln::testing
