#pragma once
// Helpers for tests that deploy real apps (real runc, as root): pack a folder, upload it,
// wait for the deployment, and fetch the app through the gateway with a Host header.

#include <string>

#include "integration/server_fixture.h"

namespace kiln::testing {

// The repository's examples/ (this file is tests/integration/app_fixture.h).
inline fs::path ExamplesDir() {
  return fs::path(__FILE__).parent_path().parent_path().parent_path() / "examples";
}

// A .tar.gz of `dir`'s contents, made by tar.
inline std::string TarGz(const fs::path& dir) {
  ProcessOptions options;
  options.max_output = 64 << 20;
  auto r =
      RunProcess({"tar", "czf", "-", "-C", dir.string(), "."}, std::chrono::seconds(30), options);
  EXPECT_TRUE(r.ok() && r->exit_code == 0);
  return r.ok() ? r->output : std::string();
}

class AppTest : public ServerTest {
 protected:
  std::string Config() override {
    return "[apps]\nhealth_timeout_seconds = 10\ndrain_seconds = 5\n";
  }

  void CreateApp(const std::string& name, const std::string& extra = "") {
    Reply r = Call("POST", "/v1/apps", admin_,
                   R"({"name":")" + name + "\"" + (extra.empty() ? "" : "," + extra) + "}");
    ASSERT_EQ(r.status, 201) << r;
  }

  // POSTs a multipart upload; answers the reply (202 with the deployment on success).
  Reply Upload(const std::string& app, const std::string& archive, const std::string& config = "") {
    std::string boundary = "kiln-test-boundary-7d1f";
    std::string body = "--" + boundary +
                       "\r\nContent-Disposition: form-data; name=\"source\"; "
                       "filename=\"app.tar.gz\"\r\nContent-Type: application/gzip\r\n\r\n" +
                       archive + "\r\n";
    if (!config.empty()) {
      body += "--" + boundary +
              "\r\nContent-Disposition: form-data; name=\"config\"\r\nContent-Type: "
              "application/json\r\n\r\n" +
              config + "\r\n";
    }
    body += "--" + boundary + "--\r\n";
    return Call("POST", "/v1/apps/" + app + "/deployments", admin_, body,
                {{"content-type", "multipart/form-data; boundary=" + boundary}});
  }

  // Waits until the deployment has ended; answers its last record.
  Reply Wait(const std::string& dep_id, std::chrono::seconds timeout = std::chrono::seconds(90)) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    Reply r;
    while (std::chrono::steady_clock::now() < deadline) {
      r = Call("GET", "/v1/deployments/" + dep_id, admin_);
      std::string s = r.Str("/data/status");
      if (s != "queued" && s != "building" && s != "deploying") {
        return r;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << "deployment " << dep_id << " did not end: " << r;
    return r;
  }

  // Uploads `dir` and waits: the final deployment record.
  Reply DeployDir(const std::string& app, const fs::path& dir, const std::string& config = "") {
    Reply up = Upload(app, TarGz(dir), config);
    EXPECT_EQ(up.status, 202) << up;
    return Wait(up.Str("/data/id"));
  }

  Reply DeployJson(const std::string& app, const std::string& body) {
    Reply up = Call("POST", "/v1/apps/" + app + "/deployments", admin_, body);
    EXPECT_EQ(up.status, 202) << up;
    return Wait(up.Str("/data/id"));
  }

  // A request through the gateway: Host {app}.localhost on the server's port.
  Result<Reply> Fetch(const std::string& app, const std::string& path = "/") {
    return server().TryRequest("GET", path, {}, {{"host", app + ".localhost"}});
  }
  std::string Body(const std::string& app, const std::string& path = "/") {
    auto r = Fetch(app, path);
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (!r.ok()) {
      return {};
    }
    EXPECT_EQ(r->status, 200) << *r;
    return r->body;
  }

  Reply Exec(const std::string& app, const std::string& command) {
    return Call("POST", "/v1/apps/" + app + "/exec", admin_,
                json::serialize(json::object{{"command", command}}));
  }

  // A scratch directory removed with the test.
  fs::path Scratch(const std::string& name) {
    fs::path p = server().dir() / ("scratch-" + name);
    fs::create_directories(p);
    return p;
  }
};

}  // namespace kiln::testing
