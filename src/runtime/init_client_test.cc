// kiln-init through InitClient: the connection, and running commands.

#include "runtime/init_test_util.h"

namespace kiln::runtime {
namespace {

using namespace init_test;  // NOLINT: test helpers
namespace fs = std::filesystem;
namespace proto = init::proto;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

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

}  // namespace
}  // namespace kiln::runtime
