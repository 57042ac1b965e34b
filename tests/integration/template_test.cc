// Templates: custom ones built from steps, their failures and deletion rules, and `debian`,
// built with debootstrap from Debian's mirror on first use.
#include "integration/sandbox_fixture.h"

namespace kiln::testing {
namespace {

using namespace std::chrono_literals;

class TemplateTest : public SandboxTest {
 protected:
  // Polls until the template's status is no longer `building` (or `limit` passes).
  Reply WaitBuilt(const std::string& name, std::chrono::seconds limit = 120s) {
    Reply r;
    auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
      r = Call("GET", "/v1/templates/" + name, admin_);
      if (r.Str("/data/status") != "building") {
        return r;
      }
      std::this_thread::sleep_for(200ms);
    }
    return r;
  }
};

TEST_F(TemplateTest, CustomTemplateFromStepsThenDelete) {
  Reply created = Call("POST", "/v1/templates", admin_, R"({"name": "tools", "from": "base",
      "env": {"VERSION": "7"},
      "steps": [{"run": "mkdir -p /opt/tools"}, {"run": "echo v$VERSION > /opt/tools/version"}]})");
  ASSERT_EQ(created.status, 202) << created;
  EXPECT_EQ(created.Str("/data/status"), "building");
  Reply built = WaitBuilt("tools");
  ASSERT_EQ(built.Str("/data/status"), "ready") << built;
  EXPECT_EQ(built.Str("/data/base"), "base");
  EXPECT_GT(built.Int("/data/size", 0), 0) << built;

  std::string id = Create(R"({"template": "tools"})");
  EXPECT_EQ(Run(id, "cat /opt/tools/version"), "v7\n");
  // Still the base underneath: the host's tools, and /usr read-only.
  EXPECT_EQ(Run(id, "python3 -c 'print(1)'"), "1\n");
  EXPECT_NE(Exec(id, "touch /usr/x").Int("/data/exitCode"), 0);
  // Changes in a sandbox stay in the sandbox, never in the template.
  Run(id, "echo changed > /opt/tools/version");
  std::string fresh = Create(R"({"template": "tools"})");
  EXPECT_EQ(Run(fresh, "cat /opt/tools/version"), "v7\n");

  // The log has the steps.
  Reply logs = Call("GET", "/v1/templates/tools/logs", admin_);
  ASSERT_EQ(logs.status, 200) << logs;
  EXPECT_NE(logs.body.find("step 2/2"), std::string::npos) << logs;

  // Deleting: needs the name as confirm, is refused while in use, then works.
  Reply unconfirmed = Call("DELETE", "/v1/templates/tools", admin_);
  EXPECT_EQ(unconfirmed.status, 409) << unconfirmed;
  EXPECT_EQ(unconfirmed.ErrorCode(), "CONFIRMATION_REQUIRED");
  Reply in_use = Call("DELETE", "/v1/templates/tools?confirm=tools", admin_);
  EXPECT_EQ(in_use.status, 409) << in_use;
  EXPECT_EQ(in_use.ErrorCode(), "TEMPLATE_IN_USE");
  ASSERT_EQ(Call("DELETE", "/v1/sandboxes/" + id, admin_).status, 200);
  ASSERT_EQ(Call("DELETE", "/v1/sandboxes/" + fresh, admin_).status, 200);
  Reply deleted = Call("DELETE", "/v1/templates/tools?confirm=tools", admin_);
  EXPECT_EQ(deleted.status, 200) << deleted;
  EXPECT_EQ(Call("GET", "/v1/templates/tools", admin_).status, 404);
  Reply gone = Call("POST", "/v1/sandboxes", admin_, R"({"template": "tools"})");
  EXPECT_EQ(gone.ErrorCode(), "TEMPLATE_NOT_FOUND") << gone;
}

TEST_F(TemplateTest, FailuresAndBadInput) {
  Reply failing = Call("POST", "/v1/templates", admin_,
                       R"({"name": "broken", "steps": [{"run": "echo about to fail; exit 3"}]})");
  ASSERT_EQ(failing.status, 202) << failing;
  Reply built = WaitBuilt("broken");
  EXPECT_EQ(built.Str("/data/status"), "failed") << built;
  EXPECT_NE(built.Str("/data/error").find("exited with 3"), std::string::npos) << built;
  Reply logs = Call("GET", "/v1/templates/broken/logs", admin_);
  EXPECT_NE(logs.body.find("about to fail"), std::string::npos) << logs;
  Reply use = Call("POST", "/v1/sandboxes", admin_, R"({"template": "broken"})");
  EXPECT_EQ(use.status, 409) << use;
  EXPECT_EQ(use.ErrorCode(), "TEMPLATE_FAILED");
  // A failed build leaves no instance behind.
  EXPECT_TRUE(Traces("build-").empty());
  for (const auto& entry : fs::directory_iterator(server().dir() / "instances")) {
    ADD_FAILURE() << "left behind: " << entry.path();
  }

  EXPECT_EQ(
      Call("POST", "/v1/templates", admin_, R"({"name": "Bad Name", "steps": [{"run": "true"}]})")
          .status,
      400);
  EXPECT_EQ(Call("POST", "/v1/templates", admin_, R"({"name": "x2", "steps": []})").status, 400);
  Reply unknown = Call("POST", "/v1/templates", admin_,
                       R"({"name": "child", "from": "nope", "steps": [{"run": "true"}]})");
  EXPECT_EQ(unknown.status, 404) << unknown;
  Reply builtin =
      Call("POST", "/v1/templates", admin_, R"({"name": "base", "steps": [{"run": "true"}]})");
  EXPECT_EQ(builtin.status, 409) << builtin;
  Reply dup =
      Call("POST", "/v1/templates", admin_, R"({"name": "broken", "steps": [{"run": "true"}]})");
  EXPECT_EQ(dup.ErrorCode(), "TEMPLATE_EXISTS") << dup;
  // Templates are per workspace: another one does not see ours.
  Reply ws = Call("POST", "/v1/workspaces", admin_, R"({"slug": "other"})");
  EXPECT_EQ(Call("GET", "/v1/templates/broken", ws.Str("/data/key/secret")).status, 404);
}

TEST_F(TemplateTest, ACustomTemplateCanKeepAWarmPool) {
  Reply created = Call("POST", "/v1/templates", admin_, R"({"name": "warm", "poolSize": 1,
      "steps": [{"run": "echo ready > /opt/warm"}]})");
  ASSERT_EQ(created.status, 202) << created;
  ASSERT_EQ(WaitBuilt("warm").Str("/data/status"), "ready");
  EXPECT_EQ(Call("GET", "/v1/templates/warm", admin_).Int("/data/poolSize"), 1);
  // The pool fills in the background (the metric counts what waits).
  auto pooled = [&] {
    std::string metrics = server().Request("GET", "/metrics").body;
    size_t at = metrics.find("\nkiln_sandbox_pool_ready ");
    return at == std::string::npos ? -1 : std::atoi(metrics.c_str() + at + 25);
  };
  for (int i = 0; i < 100 && pooled() < 1; ++i) {
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(pooled(), 1);
  Reply sandbox = Call("POST", "/v1/sandboxes", admin_, R"({"template": "warm"})");
  ASSERT_EQ(sandbox.status, 201) << sandbox;
  EXPECT_TRUE(sandbox.Bool("/data/pooled")) << sandbox;
  std::string id = sandbox.Str("/data/id");
  EXPECT_EQ(Run(id, "cat /opt/warm"), "ready\n");
  ASSERT_EQ(Call("DELETE", "/v1/sandboxes/" + id, admin_).status, 200);
  // Deleting the template takes its pool with it: no instance stays behind.
  for (int i = 0; i < 100 && pooled() < 1; ++i) {
    std::this_thread::sleep_for(100ms);
  }
  ASSERT_EQ(Call("DELETE", "/v1/templates/warm?confirm=warm", admin_).status, 200);
  EXPECT_EQ(pooled(), 0);
  EXPECT_TRUE(fs::is_empty(server().dir() / "instances"));
}

// Debian is built with debootstrap from the mirror the first time a sandbox asks for it.
TEST_F(TemplateTest, DebianIsBuiltOnFirstUse) {
  Reply first = Call("POST", "/v1/sandboxes", admin_, R"({"template": "debian"})");
  ASSERT_EQ(first.status, 409) << first;
  EXPECT_EQ(first.ErrorCode(), "TEMPLATE_BUILDING");
  EXPECT_NE(first.Str("/error/hint").find("/v1/templates/debian/logs"), std::string::npos);
  // Following the log as a stream ends when the build does.
  auto followed = server().TryRequest("GET", "/v1/templates/debian/logs?follow=1", "",
                                      {{"authorization", "Bearer " + admin_}}, 900s);
  ASSERT_TRUE(followed.ok()) << followed.status().ToString();
  Reply follow = std::move(*followed);
  EXPECT_NE(follow.body.find("event: line"), std::string::npos) << follow.body.substr(0, 500);
  EXPECT_NE(follow.body.find("event: end"), std::string::npos) << follow.body.substr(0, 500);
  Reply built = WaitBuilt("debian", 900s);
  ASSERT_EQ(built.Str("/data/status"), "ready") << built << "\n" << follow.body.substr(0, 2000);

  std::string id = Create(R"({"template": "debian"})");
  EXPECT_EQ(Run(id, "cat /etc/debian_version").substr(0, 3), "12.");
  // Its own /usr, not the host's: the host has node, a minimal Debian does not.
  EXPECT_NE(Exec(id, "command -v node").Int("/data/exitCode"), 0);
  EXPECT_EQ(Run(id, "dpkg-query -W -f='${Status}' apt"), "install ok installed");
  // Writable inside (its own layer), unlike base's /usr.
  EXPECT_EQ(Exec(id, "touch /usr/local/bin/mine").Int("/data/exitCode"), 0);
}

}  // namespace
}  // namespace kiln::testing
