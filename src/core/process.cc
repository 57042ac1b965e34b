#include "core/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

extern char** environ;

namespace kiln {
namespace {

// Closes a descriptor when it goes out of scope.
struct Fd {
  int fd = -1;
  ~Fd() { Close(); }
  void Close() {
    if (fd >= 0) {
      ::close(fd);
      fd = -1;
    }
  }
};

// posix_spawn's attribute and file-action objects, destroyed on every path.
struct SpawnSetup {
  posix_spawnattr_t attr;
  posix_spawn_file_actions_t actions;
  SpawnSetup() {
    posix_spawnattr_init(&attr);
    posix_spawn_file_actions_init(&actions);
  }
  ~SpawnSetup() {
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
  }
};

int ExitCode(int status) {
  if (WIFEXITED(status)) {
    return WEXITSTATUS(status);
  }
  if (WIFSIGNALED(status)) {
    return 128 + WTERMSIG(status);
  }
  return -1;
}

void Append(std::string_view chunk, const ProcessOptions& options, ProcessResult& result) {
  if (options.on_output) {
    options.on_output(chunk);
  }
  size_t room = options.max_output - std::min(options.max_output, result.output.size());
  result.output.append(chunk.substr(0, room));
}

// Feeds stdin (closing `in_fd` and setting it to -1 once all is written) and reads output until the
// child exits (then whatever is already buffered) or the deadline passes. A descendant that keeps
// the output pipe open does not hold us up.
void Pump(pid_t pid, int pid_fd, int out_fd, int& in_fd, std::string_view input,
          std::chrono::steady_clock::time_point deadline, const ProcessOptions& options,
          ProcessResult& result, int* status, bool* exited) {
  size_t written = 0;
  char buffer[16384];
  while (true) {
    if (::waitpid(pid, status, WNOHANG) == pid) {
      *exited = true;
    }
    pollfd fds[3];
    nfds_t n = 0;
    if (out_fd >= 0) {
      fds[n++] = {out_fd, POLLIN, 0};
    }
    bool feeding = in_fd >= 0 && written < input.size();
    if (feeding) {
      fds[n++] = {in_fd, POLLOUT, 0};
    }
    if (pid_fd >= 0 && !*exited) {
      fds[n++] = {pid_fd, POLLIN, 0};  // readable when the child exits
    }
    if (*exited && out_fd < 0 && !feeding) {
      return;
    }
    auto now = std::chrono::steady_clock::now();
    if (now >= deadline && !*exited) {
      result.timed_out = true;
      return;
    }
    // Once the child is gone, only drain what is there. Before, the pidfd wakes us at its
    // exit even while a descendant holds the pipe; without one (a kernel before 5.3) we look
    // again every 50 ms.
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - now).count();
    int wait_ms =
        *exited ? 0 : static_cast<int>(std::min<int64_t>(left + 1, pid_fd >= 0 ? 60'000 : 50));
    int ready = ::poll(fds, n, wait_ms);
    if (ready < 0 && errno != EINTR) {
      return;
    }
    bool got_data = false;
    for (nfds_t i = 0; i < n && ready > 0; ++i) {
      if (fds[i].fd == out_fd && (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
        ssize_t r = ::read(out_fd, buffer, sizeof(buffer));
        if (r > 0) {
          Append(std::string_view(buffer, static_cast<size_t>(r)), options, result);
          got_data = true;
        } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
          out_fd = -1;  // EOF: every writer is gone
        }
      }
      if (fds[i].fd == in_fd && (fds[i].revents & (POLLOUT | POLLERR | POLLHUP)) != 0) {
        ssize_t w = ::write(in_fd, input.data() + written, input.size() - written);
        if (w > 0) {
          written += static_cast<size_t>(w);
        } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
          written = input.size();  // the child closed its stdin; stop feeding
        }
      }
    }
    if (in_fd >= 0 && written >= input.size()) {
      ::close(in_fd);  // EOF for the child
      in_fd = -1;
    }
    if (*exited && !got_data) {
      return;
    }
  }
}

}  // namespace

std::string ProcessResult::LastLine() const {
  std::string_view text = output;
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) {
    text.remove_suffix(1);
  }
  size_t nl = text.rfind('\n');
  return std::string(nl == std::string_view::npos ? text : text.substr(nl + 1));
}

std::string FindProgram(std::string_view name) {
  if (name.find('/') != std::string_view::npos) {
    return ::access(std::string(name).c_str(), X_OK) == 0 ? std::string(name) : std::string();
  }
  const char* path = std::getenv("PATH");
  std::string_view dirs =
      path != nullptr ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  while (!dirs.empty()) {
    size_t colon = dirs.find(':');
    std::string_view dir = dirs.substr(0, colon);
    dirs = colon == std::string_view::npos ? std::string_view() : dirs.substr(colon + 1);
    if (dir.empty()) {
      continue;
    }
    std::string candidate = std::string(dir) + "/" + std::string(name);
    struct stat st {};
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        ::access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return {};
}

Result<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                 std::chrono::milliseconds timeout, const ProcessOptions& options,
                                 std::string_view package_hint) {
  if (argv.empty()) {
    return Status::InvalidArgument("NO_PROGRAM", "RunProcess needs a program to run");
  }
  std::string program = FindProgram(argv[0]);
  if (program.empty()) {
    std::string hint = package_hint.empty()
                           ? "install it, or put it on PATH"
                           : "install it: apt-get install " + std::string(package_hint);
    return Status::Unavailable("PROGRAM_NOT_FOUND", argv[0] + " was not found on PATH", hint);
  }

  Fd out_read, out_write, in_read, in_write, out_file;
  int pipe_fds[2];
  if (options.output_file.empty()) {
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
      return Status::FromErrno("pipe2", errno);
    }
    out_read.fd = pipe_fds[0];
    out_write.fd = pipe_fds[1];
    ::fcntl(out_read.fd, F_SETFL, O_NONBLOCK);
  } else {
    out_file.fd = ::open(options.output_file.c_str(),
                         O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
    if (out_file.fd < 0) {
      return Status::FromErrno("open(\"" + options.output_file + "\")", errno);
    }
  }
  if (!options.stdin_data.empty()) {
    if (::pipe2(pipe_fds, O_CLOEXEC) != 0) {
      return Status::FromErrno("pipe2", errno);
    }
    in_read.fd = pipe_fds[0];
    in_write.fd = pipe_fds[1];
    ::fcntl(in_write.fd, F_SETFL, O_NONBLOCK);
  }

  SpawnSetup setup;
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&setup.attr, &none);
  posix_spawnattr_setsigdefault(&setup.attr, &all);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (options.new_process_group) {
    flags |= POSIX_SPAWN_SETPGROUP;
    posix_spawnattr_setpgroup(&setup.attr, 0);
  }
  posix_spawnattr_setflags(&setup.attr, flags);
  if (in_read.fd >= 0) {
    posix_spawn_file_actions_adddup2(&setup.actions, in_read.fd, STDIN_FILENO);
  } else {
    posix_spawn_file_actions_addopen(&setup.actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  }
  int out_fd = out_write.fd >= 0 ? out_write.fd : out_file.fd;
  posix_spawn_file_actions_adddup2(&setup.actions, out_fd, STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&setup.actions, out_fd, STDERR_FILENO);
  if (!options.cwd.empty()) {
    posix_spawn_file_actions_addchdir_np(&setup.actions, options.cwd.c_str());
  }

  std::vector<char*> args;
  for (const std::string& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : options.env) {
    envp.push_back(const_cast<char*>(e.c_str()));
  }
  envp.push_back(nullptr);

  pid_t pid = 0;
  int err = ::posix_spawn(&pid, program.c_str(), &setup.actions, &setup.attr, args.data(),
                          options.env.empty() ? environ : envp.data());
  if (err != 0) {
    return Status::Unavailable("PROGRAM_FAILED",
                               "cannot run " + program + ": " + std::strerror(err),
                               options.cwd.empty() ? "check the program's permissions"
                                                   : "check that " + options.cwd + " exists");
  }
  // The child has its copies; ours would keep the pipe open and hide EOF.
  out_write.Close();
  in_read.Close();
  out_file.Close();

  ProcessResult result;
  int status = 0;
  bool exited = false;
  auto deadline = std::chrono::steady_clock::now() + timeout;
  // A pidfd makes the child's exit an event poll(2) can wait for.
  Fd pid_fd;
  pid_fd.fd = static_cast<int>(::syscall(SYS_pidfd_open, pid, 0));
  Pump(pid, pid_fd.fd, out_read.fd, in_write.fd, options.stdin_data, deadline, options, result,
       &status, &exited);
  if (!exited) {
    if (result.timed_out) {
      ::kill(options.new_process_group ? -pid : pid, SIGKILL);
    }
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
  }
  result.exit_code = ExitCode(status);
  return result;
}

}  // namespace kiln
