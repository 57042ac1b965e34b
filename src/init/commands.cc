// Child processes: running an EXEC and streaming its output, the main process and its log,
// reaping, and shutdown.

#include <dirent.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "init/server.h"
#include "init/server_internal.h"

extern char** environ;

namespace kiln::init {

namespace {

using proto::Tag;
using proto::Type;

}  // namespace

void Server::StartExec(Connection& conn) {
  if (shutting_down_) {
    // A command started now would only be killed by the shutdown in progress.
    Fail(conn, proto::kBusy, "the instance is stopping: run the command after it restarts");
    return;
  }
  std::unique_ptr<ExecRequest> request = std::move(conn.exec_request);
  SpawnSpec spec;
  spec.argv = std::move(request->argv);
  std::string error;
  if (!ResolveUser(request->user, &spec.credentials, &error)) {
    spec.setup_error = std::move(error);  // the child reports it like a shell would
  }
  spec.env = MergeEnv(default_env_, request->env);
  if (!spec.credentials.home.empty() && EnvValue(request->env, "HOME").empty()) {
    spec.env = MergeEnv(spec.env, {"HOME=" + spec.credentials.home});
  }
  spec.cwd = request->cwd.empty() ? options_.cwd : request->cwd;
  spec.pipe_stdin = !request->stdin_data.empty();
  Child child;
  int err = Spawn(spec, &child);
  if (err != 0) {
    Fail(conn, proto::kSpawnFailed,
         "could not start the command: " + std::string(ErrnoText(err)) +
             " (the instance may be out of memory or at its process limit)");
    return;
  }
  auto exec = std::make_unique<Exec>();
  exec->pid = child.pid;
  exec->connection_id = conn.id;
  exec->started_us = MonotonicUs();
  exec->deadline_ms = request->timeout_ms > 0 ? MonotonicMs() + request->timeout_ms : 0;
  exec->max_bytes = request->max_bytes;
  exec->stdout_fd = std::move(child.stdout_fd);
  exec->stderr_fd = std::move(child.stderr_fd);
  Watch(exec->stdout_fd.get(), kExecStdoutKind, static_cast<uint64_t>(child.pid), EPOLLIN);
  Watch(exec->stderr_fd.get(), kExecStderrKind, static_cast<uint64_t>(child.pid), EPOLLIN);
  if (child.stdin_fd.valid()) {
    exec->stdin_fd = std::move(child.stdin_fd);
    exec->stdin_data = std::move(request->stdin_data);
    Watch(exec->stdin_fd.get(), kExecStdinKind, static_cast<uint64_t>(child.pid), EPOLLOUT);
  }
  execs_[child.pid] = std::move(exec);
  conn.state = Connection::State::kExec;
  conn.exec_pid = child.pid;
  Queue(conn);
  proto::Encoder(conn.out, Type::kStarted).Int(Tag::kPid, child.pid).Finish();
  Flush(conn);
}

void Server::OnExecPipe(pid_t pid, uint64_t kind) {
  auto it = execs_.find(pid);
  if (it == execs_.end()) {
    return;
  }
  Exec& exec = *it->second;
  if (kind == kExecStdinKind) {
    WriteStdin(exec);
    return;
  }
  Connection* conn = FindConnection(exec.connection_id);
  if (conn != nullptr && conn->pending() >= kHighWater) {
    // The client reads slower than the command writes: let the pipe fill and the command
    // wait, instead of buffering without bound.
    PauseExec(exec);
    return;
  }
  ReadExecPipe(exec, kind == kExecStdoutKind ? 1 : 2, kPipeBudget);
}

void Server::ReadExecPipe(Exec& exec, int stream, size_t budget) {
  UniqueFd& fd = stream == 1 ? exec.stdout_fd : exec.stderr_fd;
  int64_t& count = stream == 1 ? exec.stdout_bytes : exec.stderr_bytes;
  bool& truncated = stream == 1 ? exec.stdout_truncated : exec.stderr_truncated;
  Connection* conn = FindConnection(exec.connection_id);
  if (conn != nullptr && conn->dead) {
    conn = nullptr;
  }
  size_t total = 0;
  while (fd.valid() && total < budget) {
    ssize_t n = read(fd.get(), g_read_buffer, sizeof g_read_buffer);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && errno == EAGAIN) {
      break;
    }
    if (n <= 0) {
      Unwatch(fd.get());
      fd.Reset();
      break;
    }
    total += static_cast<size_t>(n);
    // Past max_bytes the output is still read, so the command never blocks, but dropped.
    int64_t allowed = std::max<int64_t>(0, exec.max_bytes - count);
    auto kept = static_cast<size_t>(std::min<int64_t>(n, allowed));
    if (kept < static_cast<size_t>(n)) {
      truncated = true;
    }
    count += static_cast<int64_t>(kept);
    if (kept > 0 && conn != nullptr) {
      Queue(*conn);
      proto::Encoder(conn->out, stream == 1 ? Type::kStdout : Type::kStderr)
          .Bytes(Tag::kData, std::string_view(g_read_buffer, kept))
          .Finish();
    }
  }
  if (conn != nullptr && total > 0) {
    Flush(*conn);
  }
}

void Server::WriteStdin(Exec& exec) {
  while (exec.stdin_sent < exec.stdin_data.size()) {
    ssize_t n = write(exec.stdin_fd.get(), exec.stdin_data.data() + exec.stdin_sent,
                      exec.stdin_data.size() - exec.stdin_sent);
    if (n > 0) {
      exec.stdin_sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && errno == EAGAIN) {
      return;
    }
    break;  // EPIPE: the command stopped reading; the rest of its stdin is moot
  }
  // All written, or the reader is gone: closing gives the command its EOF.
  Unwatch(exec.stdin_fd.get());
  exec.stdin_fd.Reset();
  std::string().swap(exec.stdin_data);
}

void Server::PauseExec(Exec& exec) {
  if (exec.paused) {
    return;
  }
  // Out of the epoll set entirely: a hung-up pipe would report EPOLLHUP even with no events.
  Unwatch(exec.stdout_fd.get());
  Unwatch(exec.stderr_fd.get());
  exec.paused = true;
}

void Server::ResumeExec(Exec& exec) {
  if (!exec.paused) {
    return;
  }
  exec.paused = false;
  if (exec.stdout_fd.valid()) {
    Watch(exec.stdout_fd.get(), kExecStdoutKind, static_cast<uint64_t>(exec.pid), EPOLLIN);
  }
  if (exec.stderr_fd.valid()) {
    Watch(exec.stderr_fd.get(), kExecStderrKind, static_cast<uint64_t>(exec.pid), EPOLLIN);
  }
}

void Server::FinishExec(pid_t pid, int wait_status) {
  auto it = execs_.find(pid);
  Exec& exec = *it->second;
  // What the command wrote before exiting is in the pipes now. Read that, bounded, and stop:
  // a background job it started may hold the pipes open for hours.
  ReadExecPipe(exec, 1, kDrainLimit);
  ReadExecPipe(exec, 2, kDrainLimit);
  for (UniqueFd* fd : {&exec.stdout_fd, &exec.stderr_fd, &exec.stdin_fd}) {
    Unwatch(fd->get());
    fd->Reset();
  }
  // Background jobs may live on in the group; forget groups that have emptied, so a reused
  // pid is never signalled by mistake.
  std::erase_if(orphan_groups_, [](pid_t group) { return kill(-group, 0) != 0; });
  if (kill(-pid, 0) == 0) {
    orphan_groups_.push_back(pid);
  }
  Connection* conn = FindConnection(exec.connection_id);
  if (conn != nullptr && !conn->dead) {
    Queue(*conn);
    proto::Encoder(conn->out, Type::kExit)
        .Int(Tag::kExitCode, ExitCode(wait_status))
        .Int(Tag::kSignal, ExitSignal(wait_status))
        .Int(Tag::kTimedOut, exec.timed_out ? 1 : 0)
        .Int(Tag::kStdoutTruncated, exec.stdout_truncated ? 1 : 0)
        .Int(Tag::kStderrTruncated, exec.stderr_truncated ? 1 : 0)
        .Int(Tag::kDurationUs, MonotonicUs() - exec.started_us)
        .Finish();
    conn->state = Connection::State::kClosing;
    conn->exec_pid = 0;
    Flush(*conn);
  }
  execs_.erase(it);
}

void Server::StartMain() {
  SpawnSpec spec;
  spec.argv = options_.main_argv;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    spec.env.emplace_back(*entry);
  }
  spec.cwd = options_.cwd;
  spec.capture_output = main_log_.enabled();
  Child child;
  int err = Spawn(spec, &child);
  if (err != 0) {
    LogError("cannot start the main process " + spec.argv[0] + ": " + std::string(ErrnoText(err)));
    return;
  }
  main_pid_ = child.pid;
  if (spec.capture_output) {
    main_stdout_ = std::move(child.stdout_fd);
    main_stderr_ = std::move(child.stderr_fd);
    Watch(main_stdout_.get(), kMainStdoutKind, 0, EPOLLIN);
    Watch(main_stderr_.get(), kMainStderrKind, 0, EPOLLIN);
  }
}

void Server::OnMainPipe(uint64_t kind, size_t budget) {
  UniqueFd& fd = kind == kMainStdoutKind ? main_stdout_ : main_stderr_;
  char stream = kind == kMainStdoutKind ? 'o' : 'e';
  size_t total = 0;
  while (fd.valid() && total < budget) {
    ssize_t n = read(fd.get(), g_read_buffer, sizeof g_read_buffer);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0 && errno == EAGAIN) {
      return;
    }
    if (n <= 0) {
      Unwatch(fd.get());
      fd.Reset();
      return;
    }
    total += static_cast<size_t>(n);
    main_log_.Append(stream, std::string_view(g_read_buffer, static_cast<size_t>(n)),
                     MonotonicMs());
  }
}

void Server::MainExited(int wait_status) {
  OnMainPipe(kMainStdoutKind, kDrainLimit);
  OnMainPipe(kMainStderrKind, kDrainLimit);
  for (UniqueFd* fd : {&main_stdout_, &main_stderr_}) {
    Unwatch(fd->get());
    fd->Reset();
  }
  std::string how = DescribeWaitStatus(wait_status);
  main_log_.RecordExit(how);
  if (!main_log_.enabled()) {
    LogError("main process " + options_.main_argv[0] + ": " + how);
  }
  if (kill(-main_pid_, 0) == 0) {
    orphan_groups_.push_back(main_pid_);
  }
  main_pid_ = 0;
}

void Server::Reap() {
  while (true) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      return;
    }
    if (execs_.find(pid) != execs_.end()) {
      FinishExec(pid, status);
    } else if (pid != 0 && pid == main_pid_) {
      MainExited(status);
    }
    // Anything else is an orphan that was reparented to us: reaping it is all it needs.
  }
}

void Server::OnSignals() {
  signalfd_siginfo info[16];
  while (true) {
    ssize_t n = read(signals_.get(), info, sizeof info);
    if (n <= 0) {
      break;
    }
    for (size_t i = 0; i < static_cast<size_t>(n) / sizeof info[0]; ++i) {
      if (info[i].ssi_signo == SIGTERM || info[i].ssi_signo == SIGINT) {
        BeginShutdown();
      }
    }
  }
  // SIGCHLD coalesces; waitpid in a loop finds every exit whichever signal woke us.
  Reap();
}

void Server::KillGroup(pid_t pid, int sig) {
  if (pid > 0 && kill(-pid, sig) != 0) {
    kill(pid, sig);  // the leader may have left its group
  }
}

void Server::SignalChildren(int sig) {
  if (getpid() == 1) {
    // As PID 1 of the instance: every process in the namespace but ourselves.
    kill(-1, sig);
    return;
  }
  for (const auto& [pid, exec] : execs_) {
    KillGroup(pid, sig);
  }
  KillGroup(main_pid_, sig);
  for (pid_t group : orphan_groups_) {
    kill(-group, sig);
  }
  // Direct children that changed their group (reparented orphans included).
  std::string children;
  std::string path = "/proc/self/task/" + IntToString(getpid()) + "/children";
  if (ReadSmallFile(path.c_str(), 1 << 20, &children)) {
    size_t start = 0;
    while (start < children.size()) {
      size_t end = children.find(' ', start);
      if (end == std::string::npos) {
        end = children.size();
      }
      int64_t pid = 0;
      if (ParseInt(std::string_view(children).substr(start, end - start), &pid) && pid > 0) {
        kill(static_cast<pid_t>(pid), sig);
      }
      start = end + 1;
    }
  }
}

void Server::BeginShutdown() {
  if (shutting_down_) {
    return;
  }
  shutting_down_ = true;
  shutdown_deadline_ms_ = MonotonicMs() + kShutdownGraceMs;
  // Stop accepting: a host that still sees the socket would expect answers.
  Unwatch(listener_.get());
  listener_.Reset();
  unlink(options_.socket_path.c_str());
  SignalChildren(SIGTERM);
}

bool Server::HasChildren() {
  siginfo_t info{};
  // WNOWAIT: only look; Reap() collects the status.
  int r = waitid(P_ALL, 0, &info, WEXITED | WNOHANG | WNOWAIT);
  return !(r != 0 && errno == ECHILD);
}

}  // namespace kiln::init
