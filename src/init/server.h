#pragma once
// kiln-init's single-threaded event loop: one epoll set over the listening socket, client
// connections, the pipes of running commands, a signalfd (SIGCHLD, SIGTERM, SIGINT), and the
// nearest deadline as epoll_wait's timeout. Nothing blocks but local file I/O.
//
// Ownership: the Server owns every descriptor. A Connection is one request (protocol.h); an
// Exec is one running command, tied to its connection by id, not pointer, so either can go
// first: a connection that disappears kills its command's process group, a command that
// exits finishes its connection. Connections are destroyed only between loop iterations.

#include <sys/types.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "init/exec.h"
#include "init/files.h"
#include "init/main_log.h"
#include "init/protocol.h"
#include "init/util.h"

namespace kiln::init {

struct Options {
  std::string socket_path;                    // --socket: where the host connects
  std::string log_dir;                        // --log-dir: main.log goes here; empty: not captured
  int64_t log_max_bytes = int64_t{10} << 20;  // --log-max-bytes: main.log rotation size
  std::string cwd = "/root";                  // --cwd: working directory of MAIN and of execs
  std::string root = "/";                     // --root (hidden): file operations stay inside it
  std::vector<std::string> main_argv;         // after "--": the instance's main process
};

class Server {
 public:
  explicit Server(Options options);
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;
  ~Server();

  // Listens, starts MAIN, and serves until SIGTERM or SIGINT: then the children get SIGTERM,
  // 5 s later SIGKILL, and Run returns 0. Returns 1 when it cannot start (bad socket path).
  int Run();

 private:
  struct Connection;
  struct Exec;
  struct ExecRequest;
  struct Fields;

  // Set-up.
  bool Listen();
  bool SetUp();
  void StartMain();

  // epoll registration; `kind` and `id` come back with each event.
  void Watch(int fd, uint64_t kind, uint64_t id, uint32_t events);
  void Unwatch(int fd);
  void Dispatch(uint64_t data, uint32_t events);

  // Connections.
  void OnListener();
  void OnConnection(Connection& conn, uint32_t events);
  void ReadFrom(Connection& conn);
  void ProcessFrames(Connection& conn);
  void HandleFrame(Connection& conn, proto::Type type, std::string_view payload);
  void Flush(Connection& conn);
  void UpdateInterest(Connection& conn);
  void Queue(Connection& conn);  // call before appending to conn.out
  void Fail(Connection& conn, std::string_view code, std::string_view message);
  void Answer(Connection& conn, proto::Type type);
  void MarkDead(Connection& conn);
  void Sweep();
  Connection* FindConnection(uint64_t id);

  // Requests (requests.cc).
  void HandleRequest(Connection& conn, proto::Type type, std::string_view payload);
  void HandleExec(Connection& conn, const Fields& fields);
  void HandleSignal(Connection& conn, const Fields& fields);
  void HandleList(Connection& conn, const Fields& fields);
  void HandleRead(Connection& conn, const Fields& fields);
  void HandleWrite(Connection& conn, const Fields& fields);
  void HandleStdinFrame(Connection& conn, proto::Type type, std::string_view payload);
  void HandleWriteFrame(Connection& conn, proto::Type type, std::string_view payload);
  void ContinueRead(Connection& conn);
  void PutPong(Connection& conn);

  // Commands (commands.cc).
  void StartExec(Connection& conn);
  void OnExecPipe(pid_t pid, uint64_t kind);
  void ReadExecPipe(Exec& exec, int stream, size_t budget);
  void WriteStdin(Exec& exec);
  void PauseExec(Exec& exec);
  void ResumeExec(Exec& exec);
  void FinishExec(pid_t pid, int wait_status);
  void OnMainPipe(uint64_t kind, size_t budget);
  void MainExited(int wait_status);
  void Reap();
  void OnSignals();
  void KillGroup(pid_t pid, int sig);
  void SignalChildren(int sig);
  void BeginShutdown();
  bool HasChildren();

  // Deadlines.
  int64_t NextDeadline();
  void OnTimers(int64_t now_ms);

  Options options_;
  UniqueFd epoll_;
  UniqueFd listener_;
  UniqueFd signals_;
  std::unique_ptr<FileSystem> files_;
  MainLog main_log_;
  std::map<uint64_t, std::unique_ptr<Connection>> connections_;
  std::map<pid_t, std::unique_ptr<Exec>> execs_;
  // Process groups whose leader is gone but whose members (background jobs) may live on;
  // SIGTERM reaches them at shutdown.
  std::vector<pid_t> orphan_groups_;
  std::vector<std::string> default_env_;  // CONFIGURE replaces it
  pid_t main_pid_ = 0;
  UniqueFd main_stdout_;
  UniqueFd main_stderr_;
  uint64_t next_id_ = 1;
  int64_t started_ms_ = 0;
  bool shutting_down_ = false;
  bool killed_ = false;  // SIGKILL sent after the grace period
  int64_t shutdown_deadline_ms_ = 0;
  int64_t last_activity_ms_ = 0;
  int64_t listener_paused_until_ms_ = 0;  // accept paused after EMFILE
  bool idle_released_ = false;            // ReleaseIdleMemory() ran since the last event
};

}  // namespace kiln::init
