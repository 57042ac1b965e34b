#pragma once
// Helpers for the HTTPS and custom-domain tests: free ports, the real `curl` and `openssl`
// command-line tools, and long-running helper daemons (pebble, pebble-challtestsrv).

#include <netinet/in.h>
#include <sys/socket.h>

#include "integration/app_fixture.h"
#include "integration/gateway_fixture.h"

namespace kiln::testing {

// A TCP port nothing listens on right now (the kernel's pick, released again).
inline uint16_t FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  uint16_t port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  EXPECT_NE(port, 0);
  return port;
}

// Runs a command line through bash; its exit code and output (stdout and stderr).
inline ProcessResult Shell(const std::string& command, std::chrono::seconds timeout = 60s) {
  ProcessOptions options;
  options.max_output = 8 << 20;
  auto r = RunProcess({"bash", "-c", command}, timeout, options);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : ProcessResult{-1, false, r.status().ToString()};
}

inline std::string Quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  }
  return out + "'";
}

// `curl -sS` of https://HOST:PORT/PATH with HOST resolved to 127.0.0.1 (SNI and Host are
// HOST), trusting `ca_file` ("" = the system's roots only). Body in `output`; curl's exit code.
inline ProcessResult CurlHttps(const std::string& host, uint16_t port, const std::string& path,
                               const std::string& ca_file) {
  std::string p = std::to_string(port);
  std::string cmd = "curl -sS --max-time 20 --resolve " + Quote(host + ":" + p + ":127.0.0.1") +
                    (ca_file.empty() ? "" : " --cacert " + Quote(ca_file)) + " " +
                    Quote("https://" + host + ":" + p + path);
  return Shell(cmd);
}

// The certificate served for SNI `sni` on 127.0.0.1:port, as `openssl x509 -text` prints it.
inline std::string ServedCertText(uint16_t port, const std::string& sni) {
  std::string cmd = "openssl s_client -connect 127.0.0.1:" + std::to_string(port) +
                    " -servername " + Quote(sni) +
                    " </dev/null 2>/dev/null | openssl x509 -noout -text -serial";
  return Shell(cmd).output;
}

// A helper daemon in a child process (its own process group), output appended to `log`;
// stopped (SIGTERM, then SIGKILL) with the object.
class Daemon {
 public:
  Daemon(std::vector<std::string> argv, const fs::path& log, std::vector<std::string> env = {}) {
    std::vector<char*> args;
    for (auto& a : argv) {
      args.push_back(a.data());
    }
    args.push_back(nullptr);
    std::vector<char*> envp;
    for (char** e = environ; *e != nullptr; ++e) {
      envp.push_back(*e);
    }
    for (auto& e : env) {
      envp.push_back(e.data());
    }
    envp.push_back(nullptr);
    std::string log_path = log.string();
    pid_ = ::fork();
    if (pid_ == 0) {
      ::setpgid(0, 0);
      int fd = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (fd >= 0) {
        ::dup2(fd, STDOUT_FILENO);
        ::dup2(fd, STDERR_FILENO);
      }
      int null = ::open("/dev/null", O_RDONLY);
      if (null >= 0) {
        ::dup2(null, STDIN_FILENO);
      }
      ::execvpe(args[0], args.data(), envp.data());
      ::_exit(127);
    }
    EXPECT_GT(pid_, 0) << "fork: " << std::strerror(errno);
  }
  ~Daemon() {
    if (pid_ <= 0) {
      return;
    }
    ::kill(-pid_, SIGTERM);
    for (int i = 0; i < 200; ++i) {
      if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
        return;
      }
      std::this_thread::sleep_for(10ms);
    }
    ::kill(-pid_, SIGKILL);
    ::waitpid(pid_, nullptr, 0);
  }
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  bool running() { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }

 private:
  pid_t pid_ = -1;
};

// Waits until `check` holds (polling every 100 ms) or `timeout` passes; answers the last check.
template <typename Check>
bool WaitFor(Check check, std::chrono::seconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (check()) {
      return true;
    }
    std::this_thread::sleep_for(100ms);
  }
  return check();
}

// An app server with HTTPS on a free port of its own.
class HttpsAppTest : public AppTest {
 protected:
  std::string Config() override {
    if (tls_port_ == 0) {
      tls_port_ = FreePort();
    }
    return AppTest::Config() + "[gateway]\ntls_port = " + std::to_string(tls_port_) + "\n" +
           GatewayConfig();
  }
  // More [gateway] keys.
  virtual std::string GatewayConfig() { return {}; }

  // Downloads the local CA's root (GET /v1/tls/ca) to a file; answers its path.
  fs::path DownloadRoot() {
    Reply r = Call("GET", "/v1/tls/ca", admin_);
    EXPECT_EQ(r.status, 200) << r;
    EXPECT_EQ(r.Header("content-type"), "application/octet-stream");
    EXPECT_TRUE(r.body.starts_with("-----BEGIN CERTIFICATE-----")) << r.body;
    fs::path path = server().dir() / "downloaded-ca.pem";
    std::ofstream(path) << r.body;
    return path;
  }

  // The `kiln` CLI against this server (KILN_URL, KILN_API_KEY, a scratch config home).
  ProcessResult Cli(const std::vector<std::string>& args) {
    std::string cmd = "KILN_URL=" + Quote(server().url()) + " KILN_API_KEY=" + Quote(admin_) +
                      " XDG_CONFIG_HOME=" + Quote((server().dir() / "cli-config").string()) + " " +
                      Quote(ServerProcess::Binary());
    for (const auto& a : args) {
      cmd += " " + Quote(a);
    }
    return Shell(cmd + " 2>&1");
  }

  // Creates `app` and deploys the upstream test app (tests/fixtures/upstream) to it.
  void DeployUpstream(const std::string& app) {
    CreateApp(app);
    Reply done = DeployDir(app, UpstreamDir());
    ASSERT_EQ(done.Str("/data/status"), "live") << done << "\n" << server().LogTail(60);
  }

  uint16_t tls_port_ = 0;
};

}  // namespace kiln::testing
