#pragma once
// The host side of kiln-init's socket (src/init/protocol.h): run commands and work with
// files inside an instance.
//
// Blocking and meant for server worker threads. Every call opens its own connection (one
// request per connection), so an InitClient holds no connection state and is safe to use
// from many threads at once. Every socket read and write has a deadline: an exec's
// timeout_ms + 10 s (24 h when timeout_ms is 0: no limit), 30 s per operation otherwise.
//
// Errors carry kiln-init's error code as Status::error_code():
//   FILE_NOT_FOUND                                          kNotFound
//   PATH_INVALID, NOT_A_DIRECTORY, IS_A_DIRECTORY,
//   NOT_A_FILE, BAD_ARGUMENT (checked before sending)       kInvalidArgument
//   FILE_TOO_LARGE                                          kPayloadTooLarge
//   READ_ONLY, DIRECTORY_NOT_EMPTY                          kConflict
//   PERMISSION_DENIED                                       kPermissionDenied
//   PROCESS_NOT_FOUND                                       kNotFound
//   NO_SPACE, BUSY, SPAWN_FAILED                            kUnavailable
//   INIT_UNREACHABLE (cannot connect, or hung up), INIT_CLOSED (hung up while we sent),
//   INIT_TIMEOUT (no answer in time), INIT_NOT_READY (WaitForInit), EXEC_CANCELLED
//                                                           kUnavailable
//   INIT_PROTOCOL (a malformed answer), BAD_REQUEST, INTERNAL   kInternal

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace kiln::runtime {

struct ExecRequest {
  std::vector<std::string> argv;  // argv[0] is searched in PATH
  std::vector<std::string> env;   // "K=V", over the instance's default environment
  std::string cwd;                // empty: the instance's default (/root, or /)
  std::string user;               // "root", a name in /etc/passwd, "uid" or "uid:gid"
  std::string stdin_data;         // at most 8 MiB; empty: /dev/null
  int64_t timeout_ms = 60000;     // then the group is killed (exit 137, timed_out); 0: none
  int64_t max_bytes = 1 << 20;    // kept per stream; more is read, dropped and flagged
};

struct ExecResult {
  int pid = 0;
  int exit_code = 0;  // the exit status, or 128 + N when killed by signal N
  int signal = 0;
  bool timed_out = false;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  int64_t duration_us = 0;
  std::string stdout_data, stderr_data;
};

// Called with (1 = stdout, 2 = stderr, chunk) as output arrives; when given, ExecResult's
// data strings stay empty. Return false to cancel: the process group is killed and Exec
// returns the result with its exit information (signal 9), or Unavailable EXEC_CANCELLED
// when the exit could not be collected.
using OutputSink = std::function<bool(int stream, std::string_view chunk)>;

// Called once with the pid of the command, before any output.
using StartedCallback = std::function<void(int pid)>;

struct FileEntry {
  std::string name, path;
  enum class Type { kFile, kDir, kSymlink, kOther } type = Type::kFile;
  int64_t size = 0;
  uint32_t mode = 0;  // permission bits
  int64_t mtime_ms = 0;
  std::string link_target;  // symlinks only
};

struct InitInfo {
  int pid = 0;
  int64_t rss_kb = 0;
  int64_t uptime_ms = 0;
  int execs = 0;  // commands running now
};

class InitClient {
 public:
  // `socket_dir` is the host directory holding init.sock. Connects through an O_PATH fd of
  // the directory ("/proc/self/fd/N/init.sock") so a long data directory never exceeds
  // sun_path's 108 bytes.
  explicit InitClient(std::string socket_dir);

  Result<InitInfo> Ping(std::chrono::milliseconds timeout);
  // A non-zero exit is a successful Exec: look at exit_code. Errors mean the command could
  // not be run or its outcome is unknown. `on_started` gets the pid as soon as the command
  // runs (for Signal while it is running).
  Result<ExecResult> Exec(const ExecRequest& request, const OutputSink& sink = nullptr,
                          const StartedCallback& on_started = nullptr);
  // Delivers `signo` to the process group of a running command started by Exec.
  // PROCESS_NOT_FOUND when it has already exited.
  Status Signal(int pid, int signo);
  // Replaces the default environment of every later Exec (not the main process's).
  Status Configure(const std::vector<std::string>& env);
  Result<FileEntry> Stat(const std::string& path);
  // `depth` 1 lists the directory's children, up to 10 levels; symlinks are never followed.
  Result<std::vector<FileEntry>> List(const std::string& path, int depth, int max_entries = 10000);
  // FILE_TOO_LARGE when the file is larger than max_bytes.
  Result<std::string> ReadFile(const std::string& path, int64_t max_bytes,
                               FileEntry* info = nullptr);
  // Atomic: readers see the old content or the new, never part. Creates missing parents.
  Status WriteFile(const std::string& path, std::string_view data, uint32_t mode = 0644);
  Status Remove(const std::string& path, bool recursive);
  Status MakeDir(const std::string& path);

  const std::string& socket_dir() const { return socket_dir_; }

 private:
  std::string socket_dir_;
};

// Waits until `socket_dir`/init.sock exists and answers PING, polling every 0.5 ms;
// Unavailable INIT_NOT_READY on timeout.
Status WaitForInit(const std::string& socket_dir, std::chrono::milliseconds timeout);

}  // namespace kiln::runtime
