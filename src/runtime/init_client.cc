#include "runtime/init_client.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>
#include <thread>
#include <utility>

#include "init/protocol.h"

namespace kiln::runtime {

namespace {

namespace proto = init::proto;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr auto kRequestTimeout = std::chrono::seconds(30);
constexpr auto kExecGrace = std::chrono::seconds(10);  // beyond the command's own timeout
constexpr auto kCancelWait = std::chrono::seconds(5);  // for EXIT after a cancel
constexpr auto kNoTimeoutDeadline = std::chrono::hours(24);

Status Unreachable(const std::string& why) {
  return Status::Unavailable("INIT_UNREACHABLE",
                             "the instance's init process is not answering (" + why + ")",
                             "check that the instance is running; restart it if this persists");
}

Status TimedOut(std::string_view what) {
  return Status::Unavailable("INIT_TIMEOUT", "kiln-init did not " + std::string(what) + " in time",
                             "the instance may be frozen or overloaded; wake or restart it");
}

Status ProtocolError(const std::string& what) {
  return Status(Code::kInternal, "INIT_PROTOCOL", "unexpected answer from kiln-init: " + what,
                "kiln and the instance's kiln-init may be different versions; restart the "
                "instance");
}

Status FromInitError(std::string_view code, std::string message) {
  Code category = Code::kInternal;
  if (code == proto::kFileNotFound || code == proto::kProcessNotFound) {
    category = Code::kNotFound;
  } else if (code == proto::kPathInvalid || code == proto::kNotADirectory ||
             code == proto::kIsADirectory || code == proto::kNotAFile) {
    category = Code::kInvalidArgument;
  } else if (code == proto::kFileTooLarge) {
    category = Code::kPayloadTooLarge;
  } else if (code == proto::kReadOnly || code == proto::kDirectoryNotEmpty) {
    category = Code::kConflict;
  } else if (code == proto::kPermissionDenied) {
    category = Code::kPermissionDenied;
  } else if (code == proto::kNoSpace || code == proto::kBusy || code == proto::kSpawnFailed) {
    category = Code::kUnavailable;
  }
  return Status(category, code.empty() ? std::string(proto::kInternal) : std::string(code),
                std::move(message));
}

// The fields of an answer; the last value wins for a repeated tag.
class Fields {
 public:
  bool Parse(std::string_view payload) {
    proto::Decoder decoder(payload);
    proto::Field field;
    while (decoder.Next(&field)) {
      auto tag = static_cast<uint8_t>(field.tag);
      if (tag < 64) {
        values_[tag] = field.value;
        present_[tag] = true;
      }
    }
    return decoder.ok();
  }
  std::string_view Str(proto::Tag tag) const { return values_[static_cast<uint8_t>(tag)]; }
  int64_t Int(proto::Tag tag) const {
    int64_t value = 0;
    if (present_[static_cast<uint8_t>(tag)]) {
      proto::ToInt(values_[static_cast<uint8_t>(tag)], &value);
    }
    return value;
  }

 private:
  std::string_view values_[64];
  bool present_[64] = {};
};

struct Frame {
  proto::Type type{};
  std::string payload;
};

Status ErrorFromFrame(const Frame& frame) {
  Fields fields;
  if (!fields.Parse(frame.payload)) {
    return ProtocolError("malformed ERROR");
  }
  return FromInitError(fields.Str(proto::Tag::kCode),
                       std::string(fields.Str(proto::Tag::kMessage)));
}

Result<FileEntry> ParseEntry(const Frame& frame) {
  Fields fields;
  if (frame.type != proto::Type::kEntry || !fields.Parse(frame.payload)) {
    return ProtocolError("expected ENTRY");
  }
  FileEntry entry;
  entry.name = fields.Str(proto::Tag::kName);
  entry.path = fields.Str(proto::Tag::kPath);
  switch (fields.Int(proto::Tag::kEntryType)) {
    case proto::kEntryFile:
      entry.type = FileEntry::Type::kFile;
      break;
    case proto::kEntryDir:
      entry.type = FileEntry::Type::kDir;
      break;
    case proto::kEntrySymlink:
      entry.type = FileEntry::Type::kSymlink;
      break;
    default:
      entry.type = FileEntry::Type::kOther;
      break;
  }
  entry.size = fields.Int(proto::Tag::kSize);
  entry.mode = static_cast<uint32_t>(fields.Int(proto::Tag::kMode));
  entry.mtime_ms = fields.Int(proto::Tag::kMtimeMs);
  entry.link_target = fields.Str(proto::Tag::kLinkTarget);
  return entry;
}

int RemainingMs(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(left, 0, 1'000'000'000));
}

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    std::swap(fd_, other.fd_);
    return *this;
  }
  ~Fd() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  int get() const { return fd_; }

 private:
  int fd_ = -1;
};

// One request's connection to kiln-init: non-blocking socket, every wait bounded by the
// deadline given to each call.
class Connection {
 public:
  static Result<Connection> Open(const std::string& socket_dir, Clock::time_point deadline) {
    // The directory's descriptor makes the socket path short whatever the data directory.
    Fd dir(open(socket_dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC));
    if (dir.get() < 0) {
      return Unreachable("socket directory " + socket_dir + ": " + std::strerror(errno));
    }
    Fd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (fd.get() < 0) {
      return Status::FromErrno("socket", errno);
    }
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::string path = "/proc/self/fd/" + std::to_string(dir.get()) + "/init.sock";
    path.copy(addr.sun_path, sizeof addr.sun_path - 1);
    while (connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      // EAGAIN: the listen backlog is full; kiln-init drains it quickly.
      if ((errno == EAGAIN || errno == EINTR) && Clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
        continue;
      }
      return Unreachable(socket_dir + "/init.sock: " + std::strerror(errno));
    }
    return Connection(std::move(fd));
  }

  // Sends all of `bytes`. A peer that hung up is reported as Unavailable INIT_CLOSED, after
  // which its answer (an ERROR) may still be read.
  Status Send(std::string_view bytes, Clock::time_point deadline) {
    while (!bytes.empty()) {
      ssize_t n = send(fd_.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n > 0) {
        bytes.remove_prefix(static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0 && errno == EAGAIN) {
        pollfd p{fd_.get(), POLLOUT, 0};
        int ready = poll(&p, 1, RemainingMs(deadline));
        if (ready == 0) {
          return TimedOut("accept the request");
        }
        continue;
      }
      return Status::Unavailable("INIT_CLOSED", "kiln-init closed the connection");
    }
    return {};
  }

  // The next frame, waiting until `deadline`.
  Result<Frame> Read(Clock::time_point deadline) {
    while (true) {
      proto::Type type{};
      std::string_view payload;
      size_t size = 0;
      switch (proto::PeekFrame(buffer_, &type, &payload, &size)) {
        case proto::FrameCheck::kComplete: {
          Frame frame{type, std::string(payload)};
          buffer_.erase(0, size);
          return frame;
        }
        case proto::FrameCheck::kMalformed:
          return ProtocolError("frame length out of range");
        case proto::FrameCheck::kIncomplete:
          break;
      }
      pollfd p{fd_.get(), POLLIN, 0};
      int ready = poll(&p, 1, RemainingMs(deadline));
      if (ready < 0 && errno == EINTR) {
        continue;
      }
      if (ready == 0) {
        return TimedOut("answer");
      }
      char chunk[64 * 1024];
      ssize_t n = recv(fd_.get(), chunk, sizeof chunk, 0);
      if (n > 0) {
        buffer_.append(chunk, static_cast<size_t>(n));
        continue;
      }
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) {
        continue;
      }
      return Unreachable(n == 0 ? "it closed the connection before answering"
                                : std::string("read: ") + std::strerror(errno));
    }
  }

  // True when an answer has started to arrive (kiln-init refused a request mid-upload).
  bool HasInput() {
    if (!buffer_.empty()) {
      return true;
    }
    pollfd p{fd_.get(), POLLIN, 0};
    return poll(&p, 1, 0) > 0;
  }

  // Tells kiln-init no more input comes: during an exec, that kills the command.
  void ShutdownWrite() { shutdown(fd_.get(), SHUT_WR); }

 private:
  explicit Connection(Fd fd) : fd_(std::move(fd)) {}

  Fd fd_;
  std::string buffer_;
};

// Sends `request` and returns the connection for reading the answer.
Result<Connection> Begin(const std::string& socket_dir, const std::string& request,
                         Clock::time_point deadline) {
  KILN_ASSIGN_OR_RETURN(Connection conn, Connection::Open(socket_dir, deadline));
  Status sent = conn.Send(request, deadline);
  // A hung-up peer may have answered first (BUSY): the caller reads that answer, or EOF.
  if (!sent.ok() && sent.error_code() != "INIT_CLOSED") {
    return sent;
  }
  return conn;
}

// For requests answered OK or ERROR.
Status Simple(const std::string& socket_dir, const std::string& request) {
  auto deadline = Clock::now() + kRequestTimeout;
  KILN_ASSIGN_OR_RETURN(Connection conn, Begin(socket_dir, request, deadline));
  KILN_ASSIGN_OR_RETURN(Frame frame, conn.Read(deadline));
  if (frame.type == proto::Type::kOk) {
    return {};
  }
  if (frame.type == proto::Type::kError) {
    return ErrorFromFrame(frame);
  }
  return ProtocolError("expected OK");
}

// A fresh deadline for one socket operation of a file request: a large transfer that keeps
// moving is progress, not a hang.
Clock::time_point OpDeadline() { return Clock::now() + kRequestTimeout; }

// Sends `data` as DATA frames and END. If kiln-init answers before all is sent (an ERROR),
// stops and returns that answer in *early. `deadline` bounds the whole upload when set, else
// each frame gets OpDeadline().
Status SendData(Connection& conn, std::string_view data, std::optional<Clock::time_point> deadline,
                std::optional<Frame>* early) {
  std::string frames;
  size_t offset = 0;
  do {
    size_t n = std::min(data.size() - offset, proto::kMaxChunk);
    frames.clear();
    if (n > 0) {
      proto::Encoder(frames, proto::Type::kData)
          .Bytes(proto::Tag::kData, data.substr(offset, n))
          .Finish();
    }
    offset += n;
    if (offset == data.size()) {
      proto::AppendEmptyFrame(frames, proto::Type::kEnd);
    }
    Status sent = conn.Send(frames, deadline.value_or(OpDeadline()));
    if (!sent.ok() || conn.HasInput()) {
      Result<Frame> frame = conn.Read(deadline.value_or(OpDeadline()));
      if (frame.ok()) {
        *early = std::move(frame).value();
        return {};
      }
      return sent.ok() ? frame.status() : sent;
    }
  } while (offset < data.size());
  return {};
}

}  // namespace

InitClient::InitClient(std::string socket_dir) : socket_dir_(std::move(socket_dir)) {}

Result<InitInfo> InitClient::Ping(milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  std::string request;
  proto::AppendEmptyFrame(request, proto::Type::kPing);
  KILN_ASSIGN_OR_RETURN(Connection conn, Begin(socket_dir_, request, deadline));
  KILN_ASSIGN_OR_RETURN(Frame frame, conn.Read(deadline));
  if (frame.type == proto::Type::kError) {
    return ErrorFromFrame(frame);
  }
  Fields fields;
  if (frame.type != proto::Type::kPong || !fields.Parse(frame.payload)) {
    return ProtocolError("expected PONG");
  }
  InitInfo info;
  info.pid = static_cast<int>(fields.Int(proto::Tag::kPid));
  info.rss_kb = fields.Int(proto::Tag::kRssKb);
  info.uptime_ms = fields.Int(proto::Tag::kUptimeMs);
  info.execs = static_cast<int>(fields.Int(proto::Tag::kExecs));
  return info;
}

Result<ExecResult> InitClient::Exec(const ExecRequest& request, const OutputSink& sink,
                                    const StartedCallback& on_started) {
  if (request.argv.empty() || request.argv[0].empty()) {
    return Status::InvalidArgument("BAD_ARGUMENT", "argv is empty: give the command to run");
  }
  if (static_cast<int64_t>(request.stdin_data.size()) > proto::kMaxStdin) {
    return Status::InvalidArgument("BAD_ARGUMENT",
                                   "stdin is larger than 8 MiB: write it to a file in the "
                                   "instance and redirect the command's input from it");
  }
  auto deadline =
      Clock::now() + (request.timeout_ms > 0
                          ? milliseconds(request.timeout_ms) + kExecGrace
                          : std::chrono::duration_cast<milliseconds>(kNoTimeoutDeadline));
  std::string frame;
  {
    proto::Encoder encoder(frame, proto::Type::kExec);
    for (const std::string& arg : request.argv) {
      encoder.Bytes(proto::Tag::kArgv, arg);
    }
    for (const std::string& entry : request.env) {
      encoder.Bytes(proto::Tag::kEnv, entry);
    }
    encoder.Bytes(proto::Tag::kCwd, request.cwd)
        .Bytes(proto::Tag::kUser, request.user)
        .Int(proto::Tag::kStdinSize, static_cast<int64_t>(request.stdin_data.size()))
        .Int(proto::Tag::kTimeoutMs, std::max<int64_t>(request.timeout_ms, 0))
        .Int(proto::Tag::kMaxBytes, std::max<int64_t>(request.max_bytes, 0))
        .Finish();
  }
  if (frame.size() > proto::kMaxFrameLength) {
    return Status::InvalidArgument("BAD_ARGUMENT",
                                   "argv and env together exceed 1 MiB: pass large data "
                                   "through stdin or a file");
  }
  KILN_ASSIGN_OR_RETURN(Connection conn, Begin(socket_dir_, frame, deadline));
  std::optional<Frame> early;
  if (!request.stdin_data.empty()) {
    KILN_RETURN_IF_ERROR(SendData(conn, request.stdin_data, deadline, &early));
  }
  ExecResult result;
  bool cancelled = false;
  while (true) {
    Result<Frame> next = early ? Result<Frame>(std::move(*early)) : conn.Read(deadline);
    early.reset();
    if (!next.ok()) {
      if (cancelled) {
        return Status::Unavailable("EXEC_CANCELLED",
                                   "the command was cancelled; its exit was not collected");
      }
      return next.status();
    }
    Frame& f = next.value();
    switch (f.type) {
      case proto::Type::kStarted: {
        Fields fields;
        if (!fields.Parse(f.payload)) {
          return ProtocolError("malformed STARTED");
        }
        result.pid = static_cast<int>(fields.Int(proto::Tag::kPid));
        if (on_started) {
          on_started(result.pid);
        }
        break;
      }
      case proto::Type::kStdout:
      case proto::Type::kStderr: {
        Fields fields;
        if (!fields.Parse(f.payload)) {
          return ProtocolError("malformed output frame");
        }
        int stream = f.type == proto::Type::kStdout ? 1 : 2;
        std::string_view data = fields.Str(proto::Tag::kData);
        if (cancelled) {
          break;
        }
        if (sink) {
          if (!sink(stream, data)) {
            // Half-close: kiln-init kills the process group and still sends EXIT.
            cancelled = true;
            conn.ShutdownWrite();
            deadline = std::min(deadline, Clock::now() + kCancelWait);
          }
        } else {
          (stream == 1 ? result.stdout_data : result.stderr_data).append(data);
        }
        break;
      }
      case proto::Type::kExit: {
        Fields fields;
        if (!fields.Parse(f.payload)) {
          return ProtocolError("malformed EXIT");
        }
        result.exit_code = static_cast<int>(fields.Int(proto::Tag::kExitCode));
        result.signal = static_cast<int>(fields.Int(proto::Tag::kSignal));
        result.timed_out = fields.Int(proto::Tag::kTimedOut) != 0;
        result.stdout_truncated = fields.Int(proto::Tag::kStdoutTruncated) != 0;
        result.stderr_truncated = fields.Int(proto::Tag::kStderrTruncated) != 0;
        result.duration_us = fields.Int(proto::Tag::kDurationUs);
        return result;
      }
      case proto::Type::kError:
        return ErrorFromFrame(f);
      default:
        return ProtocolError("unexpected frame type " + std::to_string(static_cast<int>(f.type)) +
                             " during exec");
    }
  }
}

Status InitClient::Signal(int pid, int signo) {
  std::string request;
  proto::Encoder(request, proto::Type::kSignal)
      .Int(proto::Tag::kPid, pid)
      .Int(proto::Tag::kSigno, signo)
      .Finish();
  return Simple(socket_dir_, request);
}

Status InitClient::Configure(const std::vector<std::string>& env) {
  std::string request;
  proto::Encoder encoder(request, proto::Type::kConfigure);
  for (const std::string& entry : env) {
    encoder.Bytes(proto::Tag::kEnv, entry);
  }
  encoder.Finish();
  return Simple(socket_dir_, request);
}

Result<FileEntry> InitClient::Stat(const std::string& path) {
  auto deadline = Clock::now() + kRequestTimeout;
  std::string request;
  proto::Encoder(request, proto::Type::kStat).Bytes(proto::Tag::kPath, path).Finish();
  KILN_ASSIGN_OR_RETURN(Connection conn, Begin(socket_dir_, request, deadline));
  KILN_ASSIGN_OR_RETURN(Frame frame, conn.Read(deadline));
  if (frame.type == proto::Type::kError) {
    return ErrorFromFrame(frame);
  }
  return ParseEntry(frame);
}

Result<std::vector<FileEntry>> InitClient::List(const std::string& path, int depth,
                                                int max_entries) {
  std::string request;
  proto::Encoder(request, proto::Type::kList)
      .Bytes(proto::Tag::kPath, path)
      .Int(proto::Tag::kDepth, depth)
      .Int(proto::Tag::kMaxEntries, max_entries)
      .Finish();
  KILN_ASSIGN_OR_RETURN(Connection conn, Begin(socket_dir_, request, OpDeadline()));
  std::vector<FileEntry> entries;
  while (true) {
    KILN_ASSIGN_OR_RETURN(Frame frame, conn.Read(OpDeadline()));
    if (frame.type == proto::Type::kEnd) {
      return entries;
    }
    if (frame.type == proto::Type::kError) {
      return ErrorFromFrame(frame);
    }
    KILN_ASSIGN_OR_RETURN(FileEntry entry, ParseEntry(frame));
    entries.push_back(std::move(entry));
    if (static_cast<int>(entries.size()) > std::max(max_entries, proto::kMaxListEntries)) {
      return ProtocolError("more entries than max_entries");
    }
  }
}

Result<std::string> InitClient::ReadFile(const std::string& path, int64_t max_bytes,
                                         FileEntry* info) {
  std::string request;
  proto::Encoder(request, proto::Type::kRead)
      .Bytes(proto::Tag::kPath, path)
      .Int(proto::Tag::kMaxBytes, std::max<int64_t>(max_bytes, 0))
      .Finish();
  KILN_ASSIGN_OR_RETURN(Connection conn, Begin(socket_dir_, request, OpDeadline()));
  KILN_ASSIGN_OR_RETURN(Frame first, conn.Read(OpDeadline()));
  if (first.type == proto::Type::kError) {
    return ErrorFromFrame(first);
  }
  KILN_ASSIGN_OR_RETURN(FileEntry entry, ParseEntry(first));
  std::string data;
  data.reserve(static_cast<size_t>(std::clamp<int64_t>(entry.size, 0, max_bytes)));
  while (true) {
    KILN_ASSIGN_OR_RETURN(Frame frame, conn.Read(OpDeadline()));
    if (frame.type == proto::Type::kEnd) {
      break;
    }
    if (frame.type == proto::Type::kError) {
      return ErrorFromFrame(frame);
    }
    Fields fields;
    if (frame.type != proto::Type::kData || !fields.Parse(frame.payload)) {
      return ProtocolError("expected DATA");
    }
    data.append(fields.Str(proto::Tag::kData));
    if (static_cast<int64_t>(data.size()) > max_bytes) {
      return ProtocolError("more data than max_bytes");
    }
  }
  if (info != nullptr) {
    *info = std::move(entry);
  }
  return data;
}

Status InitClient::WriteFile(const std::string& path, std::string_view data, uint32_t mode) {
  std::string request;
  proto::Encoder(request, proto::Type::kWrite)
      .Bytes(proto::Tag::kPath, path)
      .Int(proto::Tag::kMode, mode)
      .Int(proto::Tag::kSize, static_cast<int64_t>(data.size()))
      .Finish();
  KILN_ASSIGN_OR_RETURN(Connection conn, Begin(socket_dir_, request, OpDeadline()));
  std::optional<Frame> early;
  KILN_RETURN_IF_ERROR(SendData(conn, data, std::nullopt, &early));
  Frame frame;
  if (early) {
    frame = std::move(*early);
  } else {
    KILN_ASSIGN_OR_RETURN(frame, conn.Read(OpDeadline()));
  }
  if (frame.type == proto::Type::kOk) {
    return {};
  }
  if (frame.type == proto::Type::kError) {
    return ErrorFromFrame(frame);
  }
  return ProtocolError("expected OK");
}

Status InitClient::Remove(const std::string& path, bool recursive) {
  std::string request;
  proto::Encoder(request, proto::Type::kRemove)
      .Bytes(proto::Tag::kPath, path)
      .Int(proto::Tag::kRecursive, recursive ? 1 : 0)
      .Finish();
  return Simple(socket_dir_, request);
}

Status InitClient::MakeDir(const std::string& path) {
  std::string request;
  proto::Encoder(request, proto::Type::kMkdir).Bytes(proto::Tag::kPath, path).Finish();
  return Simple(socket_dir_, request);
}

Status WaitForInit(const std::string& socket_dir, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  InitClient client(socket_dir);
  Status last;
  while (true) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    Result<InitInfo> info = client.Ping(std::max(left, milliseconds(1)));
    if (info.ok()) {
      return {};
    }
    last = info.status();
    if (Clock::now() >= deadline) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  return Status::Unavailable("INIT_NOT_READY",
                             "kiln-init did not answer within " + std::to_string(timeout.count()) +
                                 " ms (" + last.message() + ")",
                             "look at the instance's runtime log for why it did not start");
}

}  // namespace kiln::runtime
