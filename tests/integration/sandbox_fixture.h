#pragma once
// Helpers for tests that run real sandboxes (real runc, as root): create, exec, and look at
// the host for anything an instance could leave behind.

#include <fstream>
#include <set>
#include <string>

#include "integration/server_fixture.h"

namespace kiln::testing {

class SandboxTest : public ServerTest {
 protected:
  // Creates a sandbox with `body` (JSON) and answers its id; fails the test on an error.
  std::string Create(const std::string& body = "{}", const std::string& key = "") {
    Reply r = Call("POST", "/v1/sandboxes", key.empty() ? admin_ : key, body);
    EXPECT_EQ(r.status, 201) << r;
    return r.Str("/data/id");
  }

  Reply Exec(const std::string& id, const std::string& command, const std::string& extra = "",
             const std::string& key = "") {
    json::object body{{"command", command}};
    std::string text = json::serialize(body);
    if (!extra.empty()) {
      text.pop_back();
      text += "," + extra + "}";
    }
    return Call("POST", "/v1/sandboxes/" + id + "/exec", key.empty() ? admin_ : key, text);
  }

  // stdout of a command that must succeed.
  std::string Run(const std::string& id, const std::string& command) {
    Reply r = Exec(id, command);
    EXPECT_EQ(r.status, 200) << r;
    EXPECT_EQ(r.Int("/data/exitCode"), 0) << command << ": " << r;
    return r.Str("/data/stdout");
  }

  Reply Get(const std::string& id) { return Call("GET", "/v1/sandboxes/" + id, admin_); }

  std::string DataDir() { return server().dir().string(); }

  // Host-side traces of instance `id`: mounts, its cgroup in any hierarchy, the engine's
  // state, the instance directory. Empty when it is completely gone.
  std::vector<std::string> Traces(const std::string& id) {
    std::vector<std::string> found;
    std::ifstream mounts("/proc/self/mountinfo");
    std::string line;
    while (std::getline(mounts, line)) {
      if (line.find(id) != std::string::npos) {
        found.push_back("mount: " + line);
      }
    }
    for (const auto& entry : fs::directory_iterator("/sys/fs/cgroup")) {
      for (const fs::path& p : {entry.path() / "kiln" / id, entry.path() / id}) {
        std::error_code ec;
        if (fs::exists(p, ec)) {
          found.push_back("cgroup: " + p.string());
        }
      }
    }
    if (fs::exists(server().dir() / "runc" / id)) {
      found.push_back("runc state: " + id);
    }
    if (fs::exists(server().dir() / "instances" / id)) {
      found.push_back("instance dir: " + id);
    }
    return found;
  }

  // The host pid of the instance's kiln-init, from the runtime's record (0 if none).
  int InitPid(const std::string& id) {
    std::ifstream in(server().dir() / "instances" / id / "init.pid");
    int pid = 0;
    in >> pid;
    return pid;
  }
};

}  // namespace kiln::testing
