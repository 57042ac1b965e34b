#include "init/server.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "init/server_internal.h"

extern char** environ;

namespace kiln::init {

Server::Server(Options options)
    : options_(std::move(options)), main_log_(options_.log_dir, options_.log_max_bytes) {}

Server::~Server() = default;

bool Server::Listen() {
  const std::string& path = options_.socket_path;
  std::string temp = path + ".tmp";
  unlink(temp.c_str());
  listener_.Reset(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!listener_.valid()) {
    LogError("socket: " + std::string(ErrnoText(errno)));
    return false;
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string bind_path = temp;
  UniqueFd dir;
  if (bind_path.size() >= sizeof addr.sun_path) {
    // sun_path holds 108 bytes; reach a deep directory through its descriptor instead.
    size_t slash = temp.rfind('/');
    std::string dir_path = slash == std::string::npos ? "." : temp.substr(0, slash);
    dir.Reset(open(dir_path.empty() ? "/" : dir_path.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    bind_path = "/proc/self/fd/" + IntToString(dir.get()) + "/" + temp.substr(slash + 1);
  }
  if (bind_path.size() >= sizeof addr.sun_path) {
    LogError("socket path " + path + " is too long: use a shorter --socket");
    return false;
  }
  bind_path.copy(addr.sun_path, bind_path.size());
  // Only the host's root may talk to kiln-init: it runs commands as any user.
  mode_t old_umask = umask(0177);
  int bound = bind(listener_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int bind_errno = errno;
  umask(old_umask);
  if (bound != 0) {
    LogError("bind " + temp + ": " + std::string(ErrnoText(bind_errno)));
    return false;
  }
  if (listen(listener_.get(), 128) != 0) {
    LogError("listen: " + std::string(ErrnoText(errno)));
    return false;
  }
  // The socket appears under its real name only once it accepts connections, so the host can
  // treat its existence as "ready".
  if (rename(temp.c_str(), path.c_str()) != 0) {
    LogError("rename " + temp + " to " + path + ": " + std::string(ErrnoText(errno)));
    return false;
  }
  return true;
}

bool Server::SetUp() {
  epoll_.Reset(epoll_create1(EPOLL_CLOEXEC));
  if (!epoll_.valid()) {
    LogError("epoll_create1: " + std::string(ErrnoText(errno)));
    return false;
  }
  // A client that hangs up must cost an EPIPE, not kiln-init's life.
  signal(SIGPIPE, SIG_IGN);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGCHLD);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  // Blocked signals are queued even for PID 1 (which drops unhandled ones), and the signalfd
  // turns them into loop events.
  sigprocmask(SIG_BLOCK, &set, nullptr);
  signals_.Reset(signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK));
  if (!signals_.valid()) {
    LogError("signalfd: " + std::string(ErrnoText(errno)));
    return false;
  }
  // Outside a container (tests, debugging) orphaned grandchildren are still ours to reap.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  UniqueFd root(open(options_.root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
  if (!root.valid()) {
    LogError("--root " + options_.root + ": " + std::string(ErrnoText(errno)));
    return false;
  }
  files_ = std::make_unique<FileSystem>(std::move(root));
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    default_env_.emplace_back(*entry);
  }
  if (!Listen()) {
    return false;
  }
  Watch(listener_.get(), kListenerKind, 0, EPOLLIN);
  Watch(signals_.get(), kSignalsKind, 0, EPOLLIN);
  return true;
}

void Server::Watch(int fd, uint64_t kind, uint64_t id, uint32_t events) {
  epoll_event event{};
  event.events = events;
  event.data.u64 = (kind << 56) | id;
  epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, fd, &event);
}

void Server::Unwatch(int fd) {
  if (fd >= 0) {
    epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, fd, nullptr);
  }
}

int Server::Run() {
  started_ms_ = MonotonicMs();
  last_activity_ms_ = started_ms_;
  if (!SetUp()) {
    return 1;
  }
  if (!options_.main_argv.empty()) {
    StartMain();
  }
  epoll_event events[64];
  while (true) {
    int64_t now = MonotonicMs();
    if (shutting_down_ &&
        (!HasChildren() || (killed_ && now >= shutdown_deadline_ms_ + kReapGraceMs))) {
      break;
    }
    int64_t deadline = NextDeadline();
    if (!idle_released_) {
      int64_t release_at = last_activity_ms_ + kIdleReleaseMs;
      deadline = deadline < 0 ? release_at : std::min(deadline, release_at);
    }
    int timeout = deadline < 0 ? -1 : static_cast<int>(deadline > now ? deadline - now : 0);
    int n = epoll_wait(epoll_.get(), events, 64, timeout);
    if (n < 0 && errno != EINTR) {
      LogError("epoll_wait: " + std::string(ErrnoText(errno)));
      return 1;
    }
    now = MonotonicMs();
    if (n > 0) {
      last_activity_ms_ = now;
      idle_released_ = false;
    } else if (!idle_released_ && now >= last_activity_ms_ + kIdleReleaseMs) {
      ReleaseIdleMemory(g_read_buffer, sizeof g_read_buffer);
      idle_released_ = true;
    }
    for (int i = 0; i < n; ++i) {
      Dispatch(events[i].data.u64, events[i].events);
    }
    OnTimers(MonotonicMs());
    Sweep();
  }
  return 0;
}

void Server::Dispatch(uint64_t data, uint32_t events) {
  uint64_t kind = data >> 56;
  uint64_t id = data & ((uint64_t{1} << 56) - 1);
  switch (kind) {
    case kListenerKind:
      OnListener();
      break;
    case kSignalsKind:
      OnSignals();
      break;
    case kConnectionKind:
      if (Connection* conn = FindConnection(id); conn != nullptr && !conn->dead) {
        OnConnection(*conn, events);
      }
      break;
    case kExecStdoutKind:
    case kExecStderrKind:
    case kExecStdinKind:
      OnExecPipe(static_cast<pid_t>(id), kind);
      break;
    case kMainStdoutKind:
    case kMainStderrKind:
      OnMainPipe(kind, kPipeBudget);
      break;
    default:
      break;
  }
}

Server::Connection* Server::FindConnection(uint64_t id) {
  auto it = connections_.find(id);
  return it == connections_.end() ? nullptr : it->second.get();
}

void Server::OnListener() {
  while (!shutting_down_) {
    int fd = accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) {
      if (errno == EINTR) {
        continue;
      }
      if (errno == EMFILE || errno == ENFILE) {
        // The pending connection stays queued and the socket readable: stop watching it for
        // a moment rather than spin until a descriptor frees up.
        Unwatch(listener_.get());
        listener_paused_until_ms_ = MonotonicMs() + 100;
        LogError("out of file descriptors; pausing accept for 100 ms");
      }
      return;
    }
    if (connections_.size() >= kMaxConnections) {
      // Answered, not just dropped, so the host can tell "busy" from "dead".
      std::string frame;
      proto::Encoder(frame, proto::Type::kError)
          .Bytes(proto::Tag::kCode, proto::kBusy)
          .Bytes(proto::Tag::kMessage,
                 "kiln-init is serving 64 requests already: retry when some have finished")
          .Finish();
      (void)!send(fd, frame.data(), frame.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      close(fd);
      continue;
    }
    auto conn = std::make_unique<Connection>();
    conn->id = next_id_++;
    conn->fd.Reset(fd);
    conn->deadline_ms = MonotonicMs() + kIdleMs;
    conn->events = EPOLLIN;
    Watch(fd, kConnectionKind, conn->id, conn->events);
    connections_[conn->id] = std::move(conn);
  }
}

void Server::OnConnection(Connection& conn, uint32_t events) {
  if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP)) != 0 && !conn.input_closed) {
    ReadFrom(conn);
  }
  if (!conn.dead && (events & (EPOLLHUP | EPOLLERR)) != 0) {
    // Both directions are shut: nothing more can be delivered.
    MarkDead(conn);
    return;
  }
  if (!conn.dead && (events & EPOLLOUT) != 0) {
    Flush(conn);
  }
}

void Server::ReadFrom(Connection& conn) {
  while (conn.in.size() < proto::kMaxFrameLength + proto::kHeaderSize) {
    ssize_t n = recv(conn.fd.get(), g_read_buffer, sizeof g_read_buffer, MSG_DONTWAIT);
    if (n > 0) {
      conn.deadline_ms = MonotonicMs() + kIdleMs;
      // Once the request is complete, anything more from the client is noise.
      if (conn.WantsInput()) {
        conn.in.append(g_read_buffer, static_cast<size_t>(n));
      }
      continue;
    }
    if (n == 0) {
      conn.input_closed = true;
      break;
    }
    if (errno == EINTR) {
      continue;
    }
    if (errno != EAGAIN) {
      MarkDead(conn);
      return;
    }
    break;
  }
  ProcessFrames(conn);
  if (conn.dead) {
    return;
  }
  if (conn.input_closed) {
    if (conn.WantsInput()) {
      MarkDead(conn);  // hung up in the middle of a request: nobody to answer
      return;
    }
    if (conn.state == Connection::State::kExec) {
      // The client cancelled (half-close) or went away: the command dies with it. On a
      // half-closed connection EXIT still reaches the client.
      KillGroup(conn.exec_pid, SIGKILL);
    }
  }
  UpdateInterest(conn);
}

void Server::ProcessFrames(Connection& conn) {
  size_t consumed = 0;
  while (!conn.dead && conn.WantsInput()) {
    proto::Type type{};
    std::string_view payload;
    size_t size = 0;
    proto::FrameCheck check =
        proto::PeekFrame(std::string_view(conn.in).substr(consumed), &type, &payload, &size);
    if (check == proto::FrameCheck::kIncomplete) {
      break;
    }
    if (check == proto::FrameCheck::kMalformed) {
      Fail(conn, proto::kBadRequest,
           "frame length is zero or larger than 1 MiB: send DATA in chunks of at most 1 MiB");
      break;
    }
    consumed += size;
    HandleFrame(conn, type, payload);
  }
  if (conn.WantsInput()) {
    conn.in.erase(0, consumed);
  } else {
    std::string().swap(conn.in);
  }
}

void Server::HandleFrame(Connection& conn, proto::Type type, std::string_view payload) {
  switch (conn.state) {
    case Connection::State::kRequest:
      HandleRequest(conn, type, payload);
      break;
    case Connection::State::kStdin:
      HandleStdinFrame(conn, type, payload);
      break;
    case Connection::State::kWriteData:
    case Connection::State::kDiscard:
      HandleWriteFrame(conn, type, payload);
      break;
    default:
      break;
  }
}

void Server::Queue(Connection& conn) {
  // The send deadline counts from when output starts waiting, not from the last request byte.
  if (conn.pending() == 0) {
    conn.deadline_ms = MonotonicMs() + kIdleMs;
  }
}

void Server::Fail(Connection& conn, std::string_view code, std::string_view message) {
  Queue(conn);
  proto::Encoder(conn.out, proto::Type::kError)
      .Bytes(proto::Tag::kCode, code)
      .Bytes(proto::Tag::kMessage, message)
      .Finish();
  conn.state = Connection::State::kClosing;
  conn.exec_request.reset();
  conn.write.reset();
  conn.read_file.Reset();
  Flush(conn);
}

void Server::Answer(Connection& conn, proto::Type type) {
  Queue(conn);
  proto::AppendEmptyFrame(conn.out, type);
  conn.state = Connection::State::kClosing;
  Flush(conn);
}

void Server::Flush(Connection& conn) {
  while (!conn.dead) {
    while (conn.pending() > 0) {
      ssize_t n = send(conn.fd.get(), conn.out.data() + conn.out_sent, conn.pending(),
                       MSG_NOSIGNAL | MSG_DONTWAIT);
      if (n > 0) {
        conn.out_sent += static_cast<size_t>(n);
        conn.deadline_ms = MonotonicMs() + kIdleMs;
        continue;
      }
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0 && errno == EAGAIN) {
        break;
      }
      MarkDead(conn);  // EPIPE, ECONNRESET: the client is gone
      return;
    }
    if (conn.pending() > 0) {
      break;
    }
    // Everything sent: give big buffers back so an idle kiln-init stays small.
    if (conn.out.capacity() > 64 * 1024) {
      std::string().swap(conn.out);
    } else {
      conn.out.clear();
    }
    conn.out_sent = 0;
    if (conn.state == Connection::State::kSending) {
      ContinueRead(conn);
      continue;
    }
    if (conn.state == Connection::State::kClosing) {
      MarkDead(conn);
      return;
    }
    break;
  }
  if (conn.exec_pid != 0 && conn.pending() < kHighWater / 2) {
    auto it = execs_.find(conn.exec_pid);
    if (it != execs_.end() && it->second->paused) {
      ResumeExec(*it->second);
    }
  }
  UpdateInterest(conn);
}

void Server::UpdateInterest(Connection& conn) {
  if (conn.dead) {
    return;
  }
  uint32_t events = 0;
  if (!conn.input_closed) {
    events |= EPOLLIN | EPOLLRDHUP;
  }
  if (conn.pending() > 0) {
    events |= EPOLLOUT;
  }
  if (events != conn.events) {
    epoll_event event{};
    event.events = events;
    event.data.u64 = (kConnectionKind << 56) | conn.id;
    epoll_ctl(epoll_.get(), EPOLL_CTL_MOD, conn.fd.get(), &event);
    conn.events = events;
  }
}

void Server::MarkDead(Connection& conn) { conn.dead = true; }

void Server::Sweep() {
  for (auto it = connections_.begin(); it != connections_.end();) {
    Connection& conn = *it->second;
    if (!conn.dead) {
      ++it;
      continue;
    }
    if (conn.exec_pid != 0) {
      auto exec = execs_.find(conn.exec_pid);
      if (exec != execs_.end()) {
        // Nobody will read the output: the command goes, and its exit is only reaped.
        KillGroup(conn.exec_pid, SIGKILL);
        exec->second->connection_id = 0;
        if (exec->second->paused) {
          ResumeExec(*exec->second);  // keep draining so the group can die unblocked
        }
      }
    }
    Unwatch(conn.fd.get());
    it = connections_.erase(it);
  }
}

int64_t Server::NextDeadline() {
  int64_t next = -1;
  auto consider = [&next](int64_t at) {
    if (at > 0 && (next < 0 || at < next)) {
      next = at;
    }
  };
  for (const auto& [id, conn] : connections_) {
    if (conn->WantsInput() || conn->pending() > 0) {
      consider(conn->deadline_ms);
    }
  }
  for (const auto& [pid, exec] : execs_) {
    consider(exec->deadline_ms);
  }
  consider(main_log_.NextDeadline());
  consider(listener_paused_until_ms_);
  if (shutting_down_) {
    consider(killed_ ? shutdown_deadline_ms_ + kReapGraceMs : shutdown_deadline_ms_);
  }
  return next;
}

void Server::OnTimers(int64_t now_ms) {
  for (auto& [id, conn] : connections_) {
    if (!conn->dead && (conn->WantsInput() || conn->pending() > 0) && conn->deadline_ms > 0 &&
        now_ms >= conn->deadline_ms) {
      MarkDead(*conn);  // idle for 30 s waiting for a request, or not reading its answer
    }
  }
  for (auto& [pid, exec] : execs_) {
    if (exec->deadline_ms > 0 && now_ms >= exec->deadline_ms) {
      exec->deadline_ms = 0;
      exec->timed_out = true;
      KillGroup(pid, SIGKILL);
    }
  }
  main_log_.FlushIdle(now_ms);
  if (listener_paused_until_ms_ > 0 && now_ms >= listener_paused_until_ms_) {
    listener_paused_until_ms_ = 0;
    if (listener_.valid()) {
      Watch(listener_.get(), kListenerKind, 0, EPOLLIN);
    }
  }
  if (shutting_down_ && !killed_ && now_ms >= shutdown_deadline_ms_) {
    killed_ = true;
    SignalChildren(SIGKILL);
  }
}

}  // namespace kiln::init
