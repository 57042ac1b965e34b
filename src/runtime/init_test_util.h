#pragma once
// Shared by the kiln-init tests (init_*_test.cc): a real kiln-init process started as an
// ordinary process on the host, with a temporary socket directory and `--root` a temporary
// directory, so file operations are confined there exactly as inside an instance; a raw
// protocol connection for what InitClient never sends; small helpers.

#include "runtime/init_client.h"

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "init/protocol.h"

#ifndef KILN_INIT_BIN
#error "KILN_INIT_BIN must name the kiln-init binary (set by CMakeLists.txt)"
#endif

namespace kiln::runtime::init_test {

namespace fs = std::filesystem;
namespace proto = init::proto;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

inline std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

inline void WriteAll(const fs::path& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// Polls `condition` every millisecond until it holds or `timeout` passes.
inline bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (condition()) {
      return true;
    }
    std::this_thread::sleep_for(1ms);
  }
  return condition();
}

inline bool ProcessGone(pid_t pid) { return kill(pid, 0) != 0 && errno == ESRCH; }

// A field of /proc/PID/status ("VmRSS:   420 kB" -> 420), or -1.
inline int64_t StatusField(pid_t pid, const std::string& name) {
  std::istringstream in(ReadAll("/proc/" + std::to_string(pid) + "/status"));
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(name + ":", 0) == 0) {
      return std::stoll(line.substr(name.size() + 1));
    }
  }
  return -1;
}

// Zombie children of `parent`, found by scanning /proc.
inline int CountZombieChildren(pid_t parent) {
  int zombies = 0;
  for (const auto& entry : fs::directory_iterator("/proc")) {
    std::string name = entry.path().filename();
    if (name.find_first_not_of("0123456789") != std::string::npos) {
      continue;
    }
    std::string stat = ReadAll(entry.path() / "stat");
    size_t paren = stat.rfind(')');
    if (paren == std::string::npos) {
      continue;
    }
    std::istringstream fields(stat.substr(paren + 2));
    char state = 0;
    pid_t ppid = 0;
    fields >> state >> ppid;
    if (ppid == parent && state == 'Z') {
      ++zombies;
    }
  }
  return zombies;
}

// One kiln-init process with its own temporary directories:
//   DIR/sock  the socket directory    DIR/root  --root    DIR/logs  --log-dir
//   DIR/outside  a directory next to the root, for escape attempts
class InitProcess {
 public:
  explicit InitProcess(std::vector<std::string> extra = {}, std::vector<std::string> main = {},
                       std::string socket_subdir = "sock")
      : socket_subdir_(std::move(socket_subdir)) {
    char pattern[] = "/tmp/kiln-init-test-XXXXXX";
    dir_ = mkdtemp(pattern);
    for (const char* sub : {"root", "logs", "outside"}) {
      fs::create_directory(dir_ / sub);
    }
    fs::create_directories(dir_ / socket_subdir_);
    std::vector<std::string> args = {KILN_INIT_BIN,   "--socket", socket_path(),
                                     "--root",        root(),     "--log-dir",
                                     logs().string(), "--cwd",    root()};
    args.insert(args.end(), extra.begin(), extra.end());
    if (!main.empty()) {
      args.emplace_back("--");
      args.insert(args.end(), main.begin(), main.end());
    }
    std::vector<char*> argv;
    for (std::string& arg : args) {
      argv.push_back(arg.data());
    }
    argv.push_back(nullptr);
    pid_ = fork();
    if (pid_ == 0) {
      execv(argv[0], argv.data());
      _exit(127);
    }
    Status ready = WaitForInit(socket_dir(), 5s);
    EXPECT_TRUE(ready.ok()) << ready.ToString();
  }

  ~InitProcess() {
    if (pid_ > 0 && !exited_) {
      // SIGTERM first, so kiln-init takes its children (background jobs of tests) along.
      kill(pid_, SIGTERM);
      if (!WaitExit(7s)) {
        kill(pid_, SIGKILL);
        waitpid(pid_, nullptr, 0);
      }
    }
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
  }

  // Waits for kiln-init to exit; its wait status in *status.
  bool WaitExit(std::chrono::milliseconds timeout, int* status = nullptr) {
    int s = 0;
    bool done = WaitFor([&] { return waitpid(pid_, &s, WNOHANG) == pid_; }, timeout);
    if (done) {
      exited_ = true;
      if (status != nullptr) {
        *status = s;
      }
    }
    return done;
  }

  pid_t pid() const { return pid_; }
  std::string socket_dir() const { return (dir_ / socket_subdir_).string(); }
  std::string socket_path() const { return (dir_ / socket_subdir_ / "init.sock").string(); }
  std::string root() const { return (dir_ / "root").string(); }
  fs::path logs() const { return dir_ / "logs"; }
  fs::path outside() const { return dir_ / "outside"; }
  InitClient client() const { return InitClient(socket_dir()); }

 private:
  std::string socket_subdir_;
  fs::path dir_;
  pid_t pid_ = -1;
  bool exited_ = false;
};

// A raw protocol connection, for what InitClient never does (hang up mid-exec, bad frames).
class RawConnection {
 public:
  explicit RawConnection(const std::string& path) {
    fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    path.copy(addr.sun_path, sizeof addr.sun_path - 1);
    connected_ = connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    timeval tv{5, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RawConnection() { Close(); }
  bool connected() const { return connected_; }
  void Send(std::string_view bytes) {
    ASSERT_EQ(send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL),
              static_cast<ssize_t>(bytes.size()));
  }
  // The next frame's type and payload; false on EOF or timeout.
  bool Read(proto::Type* type, std::string* payload) {
    while (true) {
      std::string_view view;
      size_t size = 0;
      if (proto::PeekFrame(buffer_, type, &view, &size) == proto::FrameCheck::kComplete) {
        *payload = std::string(view);
        buffer_.erase(0, size);
        return true;
      }
      char chunk[4096];
      ssize_t n = recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) {
        return false;
      }
      buffer_.append(chunk, static_cast<size_t>(n));
    }
  }
  void Close() {
    if (fd_ >= 0) {
      close(fd_);
      fd_ = -1;
    }
  }

 private:
  int fd_ = -1;
  bool connected_ = false;
  std::string buffer_;
};

inline std::string FieldOf(const std::string& payload, proto::Tag tag) {
  proto::Decoder decoder(payload);
  proto::Field field;
  while (decoder.Next(&field)) {
    if (field.tag == tag) {
      return std::string(field.value);
    }
  }
  return {};
}

inline int64_t IntFieldOf(const std::string& payload, proto::Tag tag) {
  int64_t value = -1;
  proto::ToInt(FieldOf(payload, tag), &value);
  return value;
}

inline ExecRequest Shell(const std::string& script) {
  ExecRequest request;
  request.argv = {"/bin/sh", "-c", script};
  return request;
}

// --- Ping and readiness ---

}  // namespace kiln::runtime::init_test
