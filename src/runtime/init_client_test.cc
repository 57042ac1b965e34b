// Tests of kiln-init through InitClient. Each test starts the real static kiln-init binary as
// an ordinary process on the host, with a temporary socket directory and `--root` a
// temporary directory, so file operations are confined there exactly as inside an instance.

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

namespace kiln::runtime {
namespace {

namespace fs = std::filesystem;
namespace proto = init::proto;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

void WriteAll(const fs::path& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// Polls `condition` every millisecond until it holds or `timeout` passes.
bool WaitFor(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (condition()) {
      return true;
    }
    std::this_thread::sleep_for(1ms);
  }
  return condition();
}

bool ProcessGone(pid_t pid) { return kill(pid, 0) != 0 && errno == ESRCH; }

// A field of /proc/PID/status ("VmRSS:   420 kB" -> 420), or -1.
int64_t StatusField(pid_t pid, const std::string& name) {
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
int CountZombieChildren(pid_t parent) {
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

std::string FieldOf(const std::string& payload, proto::Tag tag) {
  proto::Decoder decoder(payload);
  proto::Field field;
  while (decoder.Next(&field)) {
    if (field.tag == tag) {
      return std::string(field.value);
    }
  }
  return {};
}

int64_t IntFieldOf(const std::string& payload, proto::Tag tag) {
  int64_t value = -1;
  proto::ToInt(FieldOf(payload, tag), &value);
  return value;
}

ExecRequest Shell(const std::string& script) {
  ExecRequest request;
  request.argv = {"/bin/sh", "-c", script};
  return request;
}

// --- Ping and readiness ---

TEST(InitClientTest, PingReportsTheProcess) {
  InitProcess init;
  Result<InitInfo> info = init.client().Ping(2s);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->pid, init.pid());
  EXPECT_GT(info->rss_kb, 0);
  EXPECT_GE(info->uptime_ms, 0);
  EXPECT_EQ(info->execs, 0);
  EXPECT_EQ(fs::status(init.socket_path()).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
}

TEST(InitClientTest, UnreachableAndNotReady) {
  InitClient client("/nonexistent/kiln-init-test");
  Result<InitInfo> info = client.Ping(100ms);
  ASSERT_FALSE(info.ok());
  EXPECT_EQ(info.status().code(), Code::kUnavailable);
  EXPECT_EQ(info.status().error_code(), "INIT_UNREACHABLE");
  Status status = WaitForInit("/nonexistent/kiln-init-test", 20ms);
  EXPECT_EQ(status.error_code(), "INIT_NOT_READY");
}

TEST(InitClientTest, LongSocketDirectoryWorks) {
  // Both sides reach the socket through a directory descriptor, so its path may be longer
  // than sun_path's 108 bytes.
  std::string deep = std::string(60, 'a') + "/" + std::string(60, 'b');
  InitProcess init({}, {}, deep);
  ASSERT_GT(init.socket_path().size(), sizeof(sockaddr_un::sun_path));
  Result<InitInfo> info = init.client().Ping(2s);
  ASSERT_TRUE(info.ok()) << info.status().ToString();
  EXPECT_EQ(info->pid, init.pid());
}

// --- Exec ---

TEST(InitExecTest, EchoExitCodesAndStderr) {
  InitProcess init;
  InitClient client = init.client();
  ExecRequest echo;
  echo.argv = {"echo", "hello", "world"};
  Result<ExecResult> r = client.Exec(echo);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stdout_data, "hello world\n");
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_GT(r->pid, 0);
  EXPECT_GT(r->duration_us, 0);

  r = client.Exec(Shell("echo oops >&2; exit 3"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_EQ(r->signal, 0);
  EXPECT_EQ(r->stderr_data, "oops\n");
  EXPECT_EQ(r->stdout_data, "");

  r = client.Exec(Shell("kill -TERM $$"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 128 + SIGTERM);
  EXPECT_EQ(r->signal, SIGTERM);
  EXPECT_FALSE(r->timed_out);
}

TEST(InitExecTest, StdinIsFedThenClosed) {
  InitProcess init;
  ExecRequest cat;
  cat.argv = {"cat"};
  cat.stdin_data = std::string("abc\0def\n", 8);
  Result<ExecResult> r = init.client().Exec(cat);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stdout_data, cat.stdin_data);

  // Larger than one frame: sent as several DATA frames.
  ExecRequest count;
  count.argv = {"wc", "-c"};
  count.stdin_data = std::string(3 << 20, 'x');
  r = init.client().Exec(count);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(std::stoll(r->stdout_data), 3 << 20);

  // Without stdin_data the command reads /dev/null, not a pipe that never ends.
  r = init.client().Exec(Shell("cat; echo eof"));
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stdout_data, "eof\n");

  ExecRequest too_big = cat;
  too_big.stdin_data = std::string((8 << 20) + 1, 'x');
  r = init.client().Exec(too_big);
  EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
}

TEST(InitExecTest, EnvCwdAndUser) {
  InitProcess init;
  fs::create_directory(fs::path(init.root()) / "work");
  ExecRequest request = Shell("echo \"$FOO|$PATH\"; pwd; id -u");
  request.env = {"FOO=bar baz"};
  request.cwd = init.root() + "/work";
  request.user = "root";
  Result<ExecResult> r = init.client().Exec(request);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::string expected_path = getenv("PATH") != nullptr ? getenv("PATH") : "";
  if (expected_path.empty()) {
    expected_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  }
  std::string uid = getuid() == 0 ? "0" : std::to_string(getuid());
  if (getuid() == 0) {
    EXPECT_EQ(r->stdout_data, "bar baz|" + expected_path + "\n" + init.root() + "/work\n0\n");
  } else {
    // A non-root test run cannot become root: the command is refused with 126.
    EXPECT_EQ(r->exit_code, 126);
  }
}

TEST(InitExecTest, RunsAsAnotherUser) {
  if (getuid() != 0) {
    GTEST_SKIP() << "switching users needs root";
  }
  InitProcess init;
  ExecRequest request = Shell("id -u; id -g");
  request.user = "65534:65534";
  request.cwd = "/";
  Result<ExecResult> r = init.client().Exec(request);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->stdout_data, "65534\n65534\n");
  if (ReadAll("/etc/passwd").find("\nnobody:") != std::string::npos) {
    request.user = "nobody";
    r = init.client().Exec(request);
    ASSERT_TRUE(r.ok());
    EXPECT_EQ(r->stdout_data.substr(0, 6), "65534\n");
  }
}

TEST(InitExecTest, FailuresLookLikeAShell) {
  InitProcess init;
  InitClient client = init.client();
  ExecRequest missing;
  missing.argv = {"kiln-no-such-command", "x"};
  Result<ExecResult> r = client.Exec(missing);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 127);
  EXPECT_EQ(r->stderr_data, "kiln: kiln-no-such-command: command not found\n");

  missing.argv = {"/no/such/binary"};
  r = client.Exec(missing);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 127);
  EXPECT_EQ(r->stderr_data, "kiln: /no/such/binary: No such file or directory\n");

  fs::path script = fs::path(init.root()) / "not-executable.sh";
  WriteAll(script, "echo hi\n");
  fs::permissions(script, fs::perms::owner_read | fs::perms::owner_write);
  ExecRequest denied;
  denied.argv = {script.string()};
  denied.user = getuid() == 0 ? "65534" : "";
  r = client.Exec(denied);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 126);
  EXPECT_NE(r->stderr_data.find("Permission denied"), std::string::npos) << r->stderr_data;

  ExecRequest bad_cwd;
  bad_cwd.argv = {"true"};
  bad_cwd.cwd = "/no/such/dir";
  r = client.Exec(bad_cwd);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 127);
  EXPECT_EQ(r->stderr_data, "kiln: cd: /no/such/dir: No such file or directory\n");

  ExecRequest bad_user;
  bad_user.argv = {"true"};
  bad_user.user = "kiln-no-such-user";
  r = client.Exec(bad_user);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->exit_code, 127);
  EXPECT_NE(r->stderr_data.find("kiln: kiln-no-such-user: no such user"), std::string::npos);

  ExecRequest empty;
  EXPECT_EQ(client.Exec(empty).status().code(), Code::kInvalidArgument);
}

TEST(InitExecTest, TimeoutKillsTheProcessGroup) {
  InitProcess init;
  // The background sleep is in the command's process group and must die with it.
  ExecRequest request = Shell("sleep 30 & echo $!; wait");
  request.timeout_ms = 300;
  Result<ExecResult> r = init.client().Exec(request);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->exit_code, 137);
  EXPECT_EQ(r->signal, SIGKILL);
  pid_t background = std::stoi(r->stdout_data);
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(background); }, 3s));
}

TEST(InitExecTest, OutputBeyondMaxBytesIsDroppedAndFlagged) {
  InitProcess init;
  ExecRequest request = Shell("yes | head -c 5000000; echo done >&2");
  request.max_bytes = 1000;
  Result<ExecResult> r = init.client().Exec(request);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 0);  // the producer never blocked on a full pipe
  EXPECT_EQ(r->stdout_data.size(), 1000u);
  EXPECT_EQ(r->stdout_data.substr(0, 4), "y\ny\n");
  EXPECT_TRUE(r->stdout_truncated);
  EXPECT_EQ(r->stderr_data, "done\n");
  EXPECT_FALSE(r->stderr_truncated);
}

TEST(InitExecTest, SlowReaderLosesNothing) {
  InitProcess init;
  // The sink stalls first, so kiln-init's buffer for this client passes its high-water mark
  // and the command is paused until the client catches up.
  size_t received = 0;
  bool all_y = true;
  bool stalled = false;
  auto sink = [&](int, std::string_view chunk) {
    if (!stalled) {
      std::this_thread::sleep_for(300ms);
      stalled = true;
    }
    for (size_t i = 0; i < chunk.size(); ++i) {
      all_y = all_y && chunk[i] == ((received + i) % 2 == 0 ? 'y' : '\n');
    }
    received += chunk.size();
    return true;
  };
  ExecRequest request = Shell("yes | head -c 4000000");
  request.max_bytes = 8 << 20;
  Result<ExecResult> r = init.client().Exec(request, sink);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(received, 4000000u);
  EXPECT_TRUE(all_y);
  EXPECT_FALSE(r->stdout_truncated);
}

TEST(InitExecTest, BackgroundChildHoldingThePipeDoesNotHang) {
  InitProcess init;
  auto start = Clock::now();
  // The sleep keeps stdout open; the exec still ends when the shell exits.
  Result<ExecResult> r = init.client().Exec(Shell("sleep 20 & echo started"));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->stdout_data, "started\n");
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_LT(Clock::now() - start, 10s);
}

TEST(InitExecTest, SinkStreamsOutputBeforeExit) {
  InitProcess init;
  std::vector<std::string> chunks;
  std::atomic<int> pid{0};
  bool alive_at_first_chunk = false;
  auto sink = [&](int stream, std::string_view chunk) {
    EXPECT_EQ(stream, 1);
    if (chunks.empty()) {
      alive_at_first_chunk = pid > 0 && kill(pid, 0) == 0;
    }
    chunks.emplace_back(chunk);
    return true;
  };
  Result<ExecResult> r = init.client().Exec(Shell("echo a; sleep 0.3; echo b"), sink,
                                            [&](int started) { pid = started; });
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  ASSERT_EQ(chunks.size(), 2u);
  EXPECT_EQ(chunks[0], "a\n");
  EXPECT_EQ(chunks[1], "b\n");
  EXPECT_TRUE(alive_at_first_chunk) << "the first chunk arrived only after the exit";
  EXPECT_EQ(r->pid, pid.load());
  EXPECT_EQ(r->stdout_data, "");  // a sink takes the output
}

TEST(InitExecTest, SinkReturningFalseCancelsAndKillsTheGroup) {
  InitProcess init;
  pid_t background = 0;
  auto sink = [&](int, std::string_view chunk) {
    background = std::stoi(std::string(chunk));
    return false;
  };
  auto start = Clock::now();
  Result<ExecResult> r = init.client().Exec(Shell("sleep 30 & echo $!; wait"), sink);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->signal, SIGKILL);
  EXPECT_EQ(r->exit_code, 137);
  EXPECT_LT(Clock::now() - start, 10s);
  ASSERT_GT(background, 0);
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(background); }, 3s));
}

TEST(InitExecTest, ClientDisconnectKillsTheGroup) {
  InitProcess init;
  RawConnection conn(init.socket_path());
  ASSERT_TRUE(conn.connected());
  std::string frame;
  proto::Encoder(frame, proto::Type::kExec)
      .Bytes(proto::Tag::kArgv, "/bin/sh")
      .Bytes(proto::Tag::kArgv, "-c")
      .Bytes(proto::Tag::kArgv, "sleep 30 & echo $!; wait")
      .Finish();
  conn.Send(frame);
  proto::Type type{};
  std::string payload;
  ASSERT_TRUE(conn.Read(&type, &payload));
  ASSERT_EQ(type, proto::Type::kStarted);
  pid_t leader = static_cast<pid_t>(IntFieldOf(payload, proto::Tag::kPid));
  ASSERT_TRUE(conn.Read(&type, &payload));
  ASSERT_EQ(type, proto::Type::kStdout);
  pid_t background = std::stoi(FieldOf(payload, proto::Tag::kData));
  EXPECT_EQ(kill(background, 0), 0);
  conn.Close();
  EXPECT_TRUE(WaitFor([&] { return ProcessGone(leader) && ProcessGone(background); }, 3s));
  Result<InitInfo> info = init.client().Ping(2s);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->execs, 0);
}

TEST(InitExecTest, SignalReachesTheRunningCommand) {
  InitProcess init;
  InitClient client = init.client();
  std::promise<int> started;
  auto running = std::async(std::launch::async, [&] {
    return client.Exec(Shell("trap 'echo got-term; exit 7' TERM; sleep 30 & wait"), nullptr,
                       [&](int pid) { started.set_value(pid); });
  });
  int pid = started.get_future().get();
  // Until the shell has set its trap, TERM would kill it outright; wait for the sleep.
  ASSERT_TRUE(WaitFor(
      [&] {
        return !ReadAll("/proc/" + std::to_string(pid) + "/task/" + std::to_string(pid) +
                        "/children")
                    .empty();
      },
      3s));
  Status signalled = client.Signal(pid, SIGTERM);
  ASSERT_TRUE(signalled.ok()) << signalled.ToString();
  Result<ExecResult> r = running.get();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 7);
  EXPECT_EQ(r->stdout_data, "got-term\n");

  Status unknown = client.Signal(pid, SIGTERM);  // it has exited now
  EXPECT_EQ(unknown.code(), Code::kNotFound);
  EXPECT_EQ(unknown.error_code(), "PROCESS_NOT_FOUND");
  EXPECT_EQ(client.Signal(1, SIGTERM).code(), Code::kNotFound);  // never started by kiln-init
}

TEST(InitExecTest, TenConcurrentExecs) {
  InitProcess init;
  fs::path marks = fs::path(init.root()) / "marks";
  fs::create_directory(marks);
  // Each command waits until all ten have started: it can only print 10 if they overlap.
  std::string script = "touch " + marks.string() + "/$0; i=0; while [ $(ls " + marks.string() +
                       " | wc -l) -lt 10 ] && [ $i -lt 200 ]; do sleep 0.02; i=$((i+1)); done; "
                       "echo $0 $(ls " +
                       marks.string() + " | wc -l)";
  std::vector<std::future<Result<ExecResult>>> runs;
  for (int i = 0; i < 10; ++i) {
    runs.push_back(std::async(std::launch::async, [&, i] {
      ExecRequest request;
      request.argv = {"/bin/sh", "-c", script, "job" + std::to_string(i)};
      return init.client().Exec(request);
    }));
  }
  for (int i = 0; i < 10; ++i) {
    Result<ExecResult> r = runs[i].get();
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->stdout_data, "job" + std::to_string(i) + " 10\n");
  }
}

TEST(InitExecTest, ConfigureReplacesTheDefaultEnvironment) {
  InitProcess init;
  InitClient client = init.client();
  ASSERT_TRUE(client.Configure({"GREETING=hello", "SHARED=from-configure"}).ok());
  ExecRequest request = Shell("echo \"$GREETING $SHARED $HOME\"; echo \"$PATH\"");
  request.env = {"SHARED=from-request"};
  Result<ExecResult> r = client.Exec(request);
  ASSERT_TRUE(r.ok());
  // HOME came from kiln-init's own environment before CONFIGURE replaced it; the default
  // PATH fills in for the missing one.
  EXPECT_EQ(r->stdout_data,
            "hello from-request \n/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n");
  EXPECT_EQ(client.Configure({"NOT-AN-ASSIGNMENT"}).code(), Code::kInternal);
}

// --- Files ---

std::string BinaryBlob(size_t size) {
  std::string data(size, '\0');
  uint32_t x = 12345;
  for (char& c : data) {
    x = x * 1103515245 + 12345;
    c = static_cast<char>(x >> 24);
  }
  return data;
}

TEST(InitFilesTest, WriteReadRoundTripOfBinaryData) {
  InitProcess init;
  InitClient client = init.client();
  std::string data = BinaryBlob(5 << 20);
  ASSERT_NE(data.find('\0'), std::string::npos);
  Status written = client.WriteFile("/data/deep/blob.bin", data, 0600);
  ASSERT_TRUE(written.ok()) << written.ToString();
  fs::path on_disk = fs::path(init.root()) / "data/deep/blob.bin";
  EXPECT_EQ(ReadAll(on_disk), data);
  EXPECT_EQ(fs::status(on_disk).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(fs::status(on_disk.parent_path()).permissions() & fs::perms::all,
            static_cast<fs::perms>(0755));
  // No temporary file is left beside it.
  EXPECT_EQ(std::distance(fs::directory_iterator(on_disk.parent_path()), {}), 1);

  FileEntry info;
  Result<std::string> read = client.ReadFile("/data/deep/blob.bin", 10 << 20, &info);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_TRUE(*read == data);
  EXPECT_EQ(info.size, 5 << 20);
  EXPECT_EQ(info.mode, 0600u);
  EXPECT_EQ(info.name, "blob.bin");
  EXPECT_EQ(info.path, "/data/deep/blob.bin");

  // Overwrite, empty file, default mode.
  ASSERT_TRUE(client.WriteFile("/data/deep/blob.bin", "").ok());
  read = client.ReadFile("/data/deep/blob.bin", 10);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, "");
  EXPECT_EQ(fs::status(on_disk).permissions() & fs::perms::all, static_cast<fs::perms>(0644));
}

TEST(InitFilesTest, ErrorsOfReadAndWrite) {
  InitProcess init;
  InitClient client = init.client();
  ASSERT_TRUE(client.WriteFile("/big.txt", std::string(2000, 'b')).ok());
  Result<std::string> read = client.ReadFile("/big.txt", 1000);
  EXPECT_EQ(read.status().code(), Code::kPayloadTooLarge);
  EXPECT_EQ(read.status().error_code(), "FILE_TOO_LARGE");

  read = client.ReadFile("/missing.txt", 1000);
  EXPECT_EQ(read.status().code(), Code::kNotFound);
  EXPECT_EQ(read.status().error_code(), "FILE_NOT_FOUND");

  ASSERT_TRUE(client.MakeDir("/dir").ok());
  read = client.ReadFile("/dir", 1000);
  EXPECT_EQ(read.status().error_code(), "IS_A_DIRECTORY");
  Status status = client.WriteFile("/dir", "x");
  EXPECT_EQ(status.error_code(), "IS_A_DIRECTORY");
  EXPECT_EQ(status.code(), Code::kInvalidArgument);
  status = client.WriteFile("/big.txt/child", "x");
  EXPECT_EQ(status.error_code(), "NOT_A_DIRECTORY");

  // Refused up front, while the client is still sending: the answer is not lost.
  status = client.WriteFile("/dir", std::string(3 << 20, 'x'));
  EXPECT_EQ(status.error_code(), "IS_A_DIRECTORY");

  ASSERT_EQ(mkfifo((init.root() + "/fifo").c_str(), 0600), 0);
  read = client.ReadFile("/fifo", 1000);
  EXPECT_EQ(read.status().error_code(), "NOT_A_FILE");
}

TEST(InitFilesTest, MakeDirCreatesParents) {
  InitProcess init;
  InitClient client = init.client();
  ASSERT_TRUE(client.MakeDir("/a/b/c").ok());
  EXPECT_TRUE(fs::is_directory(fs::path(init.root()) / "a/b/c"));
  EXPECT_TRUE(client.MakeDir("/a/b/c").ok());  // already there is fine
  ASSERT_TRUE(client.WriteFile("/a/file", "x").ok());
  Status status = client.MakeDir("/a/file/sub");
  EXPECT_EQ(status.error_code(), "NOT_A_DIRECTORY");
  EXPECT_EQ(client.MakeDir("/a/file").error_code(), "NOT_A_DIRECTORY");
}

TEST(InitFilesTest, ListAndStat) {
  InitProcess init;
  fs::path root = init.root();
  fs::create_directories(root / "l/sub/inner");
  WriteAll(root / "l/f.txt", "hello");
  WriteAll(root / "l/sub/g.txt", "abc");
  fs::create_symlink("f.txt", root / "l/link");
  fs::create_symlink("sub", root / "l/dirlink");
  InitClient client = init.client();

  Result<std::vector<FileEntry>> list = client.List("/l", 1);
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  std::vector<std::string> paths;
  for (const FileEntry& e : *list) {
    paths.push_back(e.path);
  }
  EXPECT_EQ(paths, (std::vector<std::string>{"/l/dirlink", "/l/f.txt", "/l/link", "/l/sub"}));
  EXPECT_EQ((*list)[0].type, FileEntry::Type::kSymlink);
  EXPECT_EQ((*list)[0].link_target, "sub");
  EXPECT_EQ((*list)[1].type, FileEntry::Type::kFile);
  EXPECT_EQ((*list)[1].size, 5);
  EXPECT_EQ((*list)[1].name, "f.txt");
  EXPECT_EQ((*list)[2].link_target, "f.txt");
  EXPECT_EQ((*list)[3].type, FileEntry::Type::kDir);

  list = client.List("/l", 2);
  ASSERT_TRUE(list.ok());
  paths.clear();
  for (const FileEntry& e : *list) {
    paths.push_back(e.path);
  }
  // The symlinked directory is listed, not entered.
  EXPECT_EQ(paths, (std::vector<std::string>{"/l/dirlink", "/l/f.txt", "/l/link", "/l/sub",
                                             "/l/sub/g.txt", "/l/sub/inner"}));

  list = client.List("/l", 2, 3);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 3u);
  list = client.List("/", 1);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].path, "/l");
  EXPECT_EQ(client.List("/l/f.txt", 1).status().error_code(), "NOT_A_DIRECTORY");
  EXPECT_EQ(client.List("/nope", 1).status().error_code(), "FILE_NOT_FOUND");

  auto before_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  ASSERT_TRUE(client.WriteFile("/l/new.txt", "12345678", 0640).ok());
  Result<FileEntry> stat = client.Stat("/l/new.txt");
  ASSERT_TRUE(stat.ok());
  EXPECT_EQ(stat->type, FileEntry::Type::kFile);
  EXPECT_EQ(stat->size, 8);
  EXPECT_EQ(stat->mode, 0640u);
  EXPECT_GE(stat->mtime_ms, before_ms - 2000);
  stat = client.Stat("/l/link");
  ASSERT_TRUE(stat.ok());
  EXPECT_EQ(stat->type, FileEntry::Type::kSymlink);
  EXPECT_EQ(stat->link_target, "f.txt");
  stat = client.Stat("/l/sub/");
  ASSERT_TRUE(stat.ok());
  EXPECT_EQ(stat->type, FileEntry::Type::kDir);
  EXPECT_EQ(stat->path, "/l/sub");
  stat = client.Stat("/");
  ASSERT_TRUE(stat.ok());
  EXPECT_EQ(stat->type, FileEntry::Type::kDir);
  EXPECT_EQ(client.Stat("/l/none").status().code(), Code::kNotFound);
}

TEST(InitFilesTest, Remove) {
  InitProcess init;
  fs::path root = init.root();
  fs::create_directories(root / "r/full/deeper");
  WriteAll(root / "r/file", "x");
  WriteAll(root / "r/full/deeper/f", "y");
  fs::create_directory(root / "r/empty");
  fs::create_symlink(root / "r/full", root / "r/link");
  InitClient client = init.client();

  ASSERT_TRUE(client.Remove("/r/file", false).ok());
  EXPECT_FALSE(fs::exists(root / "r/file"));
  ASSERT_TRUE(client.Remove("/r/empty", false).ok());
  EXPECT_FALSE(fs::exists(root / "r/empty"));
  Status status = client.Remove("/r/full", false);
  EXPECT_EQ(status.code(), Code::kConflict);
  EXPECT_EQ(status.error_code(), "DIRECTORY_NOT_EMPTY");
  // The link goes, what it points to stays.
  ASSERT_TRUE(client.Remove("/r/link", true).ok());
  EXPECT_FALSE(fs::is_symlink(root / "r/link"));
  EXPECT_TRUE(fs::exists(root / "r/full/deeper/f"));
  ASSERT_TRUE(client.Remove("/r/full", true).ok());
  EXPECT_FALSE(fs::exists(root / "r/full"));
  EXPECT_EQ(client.Remove("/r/full", true).code(), Code::kNotFound);
  EXPECT_EQ(client.Remove("/", true).error_code(), "PATH_INVALID");
  EXPECT_TRUE(fs::exists(root));
}

TEST(InitFilesTest, PathsAreValidated) {
  InitProcess init;
  InitClient client = init.client();
  for (const std::string& path :
       {std::string("relative/file"), std::string(""), std::string("/a/../../etc/passwd"),
        std::string("/.."), std::string("/a/\0b", 5), "/" + std::string(5000, 'x')}) {
    Result<std::string> read = client.ReadFile(path, 100);
    EXPECT_EQ(read.status().error_code(), "PATH_INVALID") << path;
    EXPECT_EQ(read.status().code(), Code::kInvalidArgument) << path;
    EXPECT_EQ(client.WriteFile(path, "x").error_code(), "PATH_INVALID") << path;
  }
  EXPECT_EQ(client.Stat("relative").status().error_code(), "PATH_INVALID");
  EXPECT_EQ(client.List("../x", 1).status().error_code(), "PATH_INVALID");
  EXPECT_EQ(client.MakeDir("/x/../y").error_code(), "PATH_INVALID");
  EXPECT_EQ(client.Remove("x", false).error_code(), "PATH_INVALID");
}

TEST(InitFilesTest, SymlinksCannotLeaveTheRoot) {
  InitProcess init;
  fs::path root = init.root();
  fs::path secret = init.outside() / "secret.txt";
  WriteAll(secret, "outside secret");
  std::string passwd = ReadAll("/etc/passwd");
  ASSERT_FALSE(passwd.empty());
  fs::create_symlink("/etc/passwd", root / "abs");
  fs::create_symlink(secret, root / "abs_secret");            // absolute host path
  fs::create_symlink("../outside/secret.txt", root / "rel");  // climbs out of the root
  fs::create_symlink("../outside", root / "reldir");
  fs::create_symlink(init.outside(), root / "absdir");
  fs::create_symlink("/proc/self/root/etc/passwd", root / "magic");
  InitClient client = init.client();

  for (const char* path :
       {"/abs", "/abs_secret", "/rel", "/reldir/secret.txt", "/absdir/secret.txt", "/magic"}) {
    Result<std::string> read = client.ReadFile(path, 1 << 20);
    EXPECT_FALSE(read.ok()) << path << " read: " << *read;
    if (read.ok()) {
      EXPECT_NE(*read, passwd);
      EXPECT_NE(*read, "outside secret");
    }
    EXPECT_FALSE(client.List(path, 1).ok()) << path;
  }
  // Writes through the links stay in the root: the link itself may be replaced, nothing
  // outside is created or changed.
  client.WriteFile("/abs_secret", "pwned");
  client.WriteFile("/rel", "pwned");
  client.WriteFile("/reldir/secret.txt", "pwned");
  client.WriteFile("/absdir/new.txt", "pwned");
  client.WriteFile("/reldir/sub/new.txt", "pwned");
  client.MakeDir("/absdir/made");
  client.Remove("/reldir/secret.txt", false);
  client.Remove("/absdir", true);
  EXPECT_EQ(ReadAll(secret), "outside secret");
  EXPECT_EQ(std::distance(fs::directory_iterator(init.outside()), {}), 1);
  EXPECT_EQ(ReadAll("/etc/passwd"), passwd);
  // Removing a link removes only the link.
  EXPECT_FALSE(fs::exists(root / "absdir"));
  EXPECT_TRUE(fs::exists(secret));
}

TEST(InitFilesTest, RealRootReadsProcButRefusesMagicLinks) {
  // The production default, --root /: size-0 /proc files are read to their end, and /proc
  // magic links (which would lead out of a container's root) are refused.
  InitProcess init({"--root", "/"});
  InitClient client = init.client();
  Result<std::string> status = client.ReadFile("/proc/self/status", 1 << 20);
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_NE(status->find("Pid:\t" + std::to_string(init.pid()) + "\n"), std::string::npos);
  EXPECT_EQ(client.ReadFile("/proc/self/status", 10).status().error_code(), "FILE_TOO_LARGE");
  for (const char* magic : {"/proc/self/root/etc/passwd", "/proc/self/exe", "/proc/self/cwd"}) {
    Result<FileEntry> stat = client.Stat(std::string(magic) + "/x");
    EXPECT_EQ(stat.status().error_code(), "PATH_INVALID") << magic;
    Result<std::string> read = client.ReadFile(magic, 1 << 20);
    EXPECT_EQ(read.status().error_code(), "PATH_INVALID") << magic;
  }
}

// --- Main process, reaping, shutdown, limits ---

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
