// Request handlers: decoding each request's fields and answering it. Commands are started in
// commands.cc; file operations are done by FileSystem (files.cc).

#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "init/server.h"
#include "init/server_internal.h"

namespace kiln::init {

namespace {

using proto::Tag;
using proto::Type;

bool HasNul(std::string_view text) { return text.find('\0') != std::string_view::npos; }

void PutEntry(std::string& out, const EntryInfo& info) {
  proto::Encoder encoder(out, Type::kEntry);
  encoder.Bytes(Tag::kName, info.name)
      .Bytes(Tag::kPath, info.path)
      .Int(Tag::kEntryType, info.type)
      .Int(Tag::kSize, info.size)
      .Int(Tag::kMode, info.mode)
      .Int(Tag::kMtimeMs, info.mtime_ms);
  if (info.type == proto::kEntrySymlink) {
    encoder.Bytes(Tag::kLinkTarget, info.link_target);
  }
  encoder.Finish();
}

}  // namespace

void Server::HandleRequest(Connection& conn, Type type, std::string_view payload) {
  Fields fields;
  proto::Decoder decoder(payload);
  proto::Field field;
  while (decoder.Next(&field)) {
    if (field.tag == Tag::kArgv) {
      fields.argv.push_back(field.value);
    } else if (field.tag == Tag::kEnv) {
      fields.env.push_back(field.value);
    } else if (static_cast<uint8_t>(field.tag) < 64) {
      fields.values[static_cast<uint8_t>(field.tag)] = field.value;
      fields.present[static_cast<uint8_t>(field.tag)] = true;
    }
  }
  if (!decoder.ok()) {
    Fail(conn, proto::kBadRequest,
         "malformed request fields: client and kiln-init disagree on "
         "the protocol; update both");
    return;
  }
  std::string_view path = fields.Str(Tag::kPath);
  FileError error;
  switch (type) {
    case Type::kPing:
      PutPong(conn);
      return;
    case Type::kExec:
      HandleExec(conn, fields);
      return;
    case Type::kSignal:
      HandleSignal(conn, fields);
      return;
    case Type::kConfigure: {
      std::vector<std::string> env;
      for (std::string_view entry : fields.env) {
        if (entry.find('=') == std::string_view::npos || HasNul(entry)) {
          Fail(conn, proto::kBadRequest,
               "environment entry '" + std::string(entry) + "' is not KEY=VALUE");
          return;
        }
        env.emplace_back(entry);
      }
      default_env_ = std::move(env);
      Answer(conn, Type::kOk);
      return;
    }
    case Type::kStat: {
      EntryInfo info;
      error = files_->Stat(path, &info);
      if (error.ok()) {
        Queue(conn);
        PutEntry(conn.out, info);
        conn.state = Connection::State::kClosing;
        Flush(conn);
        return;
      }
      break;
    }
    case Type::kList:
      HandleList(conn, fields);
      return;
    case Type::kRead:
      HandleRead(conn, fields);
      return;
    case Type::kWrite:
      HandleWrite(conn, fields);
      return;
    case Type::kRemove: {
      int64_t recursive = 0;
      if (!fields.Int(Tag::kRecursive, 0, &recursive)) {
        Fail(conn, proto::kBadRequest, "recursive must be an 8-byte integer");
        return;
      }
      error = files_->Remove(path, recursive != 0);
      break;
    }
    case Type::kMkdir:
      error = files_->MakeDir(path);
      break;
    default:
      Fail(conn, proto::kBadRequest,
           "unknown request type " + IntToString(static_cast<int>(type)) +
               ": the host's kiln is newer than this kiln-init; restart the instance");
      return;
  }
  if (!error.ok()) {
    Fail(conn, error.code, error.message);
    return;
  }
  Answer(conn, Type::kOk);
}

void Server::PutPong(Connection& conn) {
  Queue(conn);
  proto::Encoder(conn.out, Type::kPong)
      .Int(Tag::kPid, getpid())
      .Int(Tag::kRssKb, ReadRssKb())
      .Int(Tag::kUptimeMs, MonotonicMs() - started_ms_)
      .Int(Tag::kExecs, static_cast<int64_t>(execs_.size()))
      .Finish();
  conn.state = Connection::State::kClosing;
  Flush(conn);
}

void Server::HandleExec(Connection& conn, const Fields& fields) {
  if (fields.argv.empty() || fields.argv[0].empty()) {
    Fail(conn, proto::kBadRequest, "EXEC needs argv: give the command to run");
    return;
  }
  auto request = std::make_unique<ExecRequest>();
  for (std::string_view arg : fields.argv) {
    if (HasNul(arg)) {
      Fail(conn, proto::kBadRequest, "an argument contains a NUL byte: remove it");
      return;
    }
    request->argv.emplace_back(arg);
  }
  for (std::string_view entry : fields.env) {
    if (HasNul(entry)) {
      Fail(conn, proto::kBadRequest, "an environment entry contains a NUL byte: remove it");
      return;
    }
    request->env.emplace_back(entry);
  }
  request->cwd = fields.Str(Tag::kCwd);
  request->user = fields.Str(Tag::kUser);
  if (HasNul(request->cwd) || HasNul(request->user)) {
    Fail(conn, proto::kBadRequest, "cwd or user contains a NUL byte: remove it");
    return;
  }
  if (!fields.Int(Tag::kStdinSize, 0, &request->stdin_size) ||
      !fields.Int(Tag::kTimeoutMs, 0, &request->timeout_ms) ||
      !fields.Int(Tag::kMaxBytes, proto::kDefaultMaxBytes, &request->max_bytes) ||
      request->stdin_size < 0 || request->timeout_ms < 0 || request->max_bytes < 0) {
    Fail(conn, proto::kBadRequest,
         "stdin_size, timeout_ms and max_bytes must be non-negative 8-byte integers");
    return;
  }
  if (request->stdin_size > proto::kMaxStdin) {
    Fail(conn, proto::kBadRequest,
         "stdin is " + IntToString(request->stdin_size) +
             " bytes, more than the 8 MiB limit: write the data to a file and redirect it");
    return;
  }
  conn.exec_request = std::move(request);
  if (conn.exec_request->stdin_size > 0) {
    conn.state = Connection::State::kStdin;
    return;
  }
  StartExec(conn);
}

void Server::HandleStdinFrame(Connection& conn, Type type, std::string_view payload) {
  ExecRequest& request = *conn.exec_request;
  if (type == Type::kData) {
    proto::Decoder decoder(payload);
    proto::Field field;
    while (decoder.Next(&field)) {
      if (field.tag != Tag::kData) {
        continue;
      }
      if (static_cast<int64_t>(request.stdin_data.size() + field.value.size()) >
          request.stdin_size) {
        Fail(conn, proto::kBadRequest, "more stdin than stdin_size announced");
        return;
      }
      request.stdin_data.append(field.value);
    }
    return;
  }
  if (type == Type::kEnd && static_cast<int64_t>(request.stdin_data.size()) == request.stdin_size) {
    StartExec(conn);
    return;
  }
  Fail(conn, proto::kBadRequest,
       type == Type::kEnd ? "stdin ended before stdin_size bytes arrived"
                          : "expected DATA or END frames carrying stdin");
}

void Server::HandleSignal(Connection& conn, const Fields& fields) {
  int64_t pid = 0;
  int64_t signo = 0;
  if (!fields.Int(Tag::kPid, 0, &pid) || !fields.Int(Tag::kSigno, 0, &signo) || signo < 0 ||
      signo >= NSIG) {
    Fail(conn, proto::kBadRequest, "SIGNAL needs pid and a signal number between 0 and 64");
    return;
  }
  if (pid <= 0 || execs_.find(static_cast<pid_t>(pid)) == execs_.end()) {
    Fail(conn, proto::kProcessNotFound,
         "no running command with pid " + IntToString(pid) +
             ": it has exited, or it was not started by kiln-init");
    return;
  }
  // The whole process group: a shell's children get the signal too, as with Ctrl-C.
  if (kill(-static_cast<pid_t>(pid), static_cast<int>(signo)) != 0) {
    Fail(conn, proto::kInternal, "kill: " + std::string(ErrnoText(errno)));
    return;
  }
  Answer(conn, Type::kOk);
}

void Server::HandleList(Connection& conn, const Fields& fields) {
  int64_t depth = 1;
  int64_t max_entries = proto::kMaxListEntries;
  if (!fields.Int(Tag::kDepth, 1, &depth) ||
      !fields.Int(Tag::kMaxEntries, proto::kMaxListEntries, &max_entries)) {
    Fail(conn, proto::kBadRequest, "depth and max_entries must be 8-byte integers");
    return;
  }
  depth = std::clamp<int64_t>(depth, 1, proto::kMaxListDepth);
  max_entries = std::clamp<int64_t>(max_entries, 1, proto::kMaxListEntries);
  std::vector<EntryInfo> entries;
  bool truncated = false;
  FileError error = files_->List(fields.Str(Tag::kPath), static_cast<int>(depth),
                                 static_cast<int>(max_entries), &entries, &truncated);
  if (!error.ok()) {
    Fail(conn, error.code, error.message);
    return;
  }
  Queue(conn);
  for (const EntryInfo& info : entries) {
    PutEntry(conn.out, info);
  }
  proto::Encoder(conn.out, Type::kEnd).Int(Tag::kTruncated, truncated ? 1 : 0).Finish();
  conn.state = Connection::State::kClosing;
  Flush(conn);
}

void Server::HandleRead(Connection& conn, const Fields& fields) {
  int64_t max_bytes = 0;
  if (!fields.Int(Tag::kMaxBytes, proto::kDefaultMaxBytes, &max_bytes) || max_bytes < 0) {
    Fail(conn, proto::kBadRequest, "max_bytes must be a non-negative 8-byte integer");
    return;
  }
  EntryInfo info;
  FileError error = files_->OpenForRead(fields.Str(Tag::kPath), max_bytes, &conn.read_file, &info);
  if (!error.ok()) {
    Fail(conn, error.code, error.message);
    return;
  }
  Queue(conn);
  PutEntry(conn.out, info);
  conn.read_left = max_bytes;
  conn.state = Connection::State::kSending;
  Flush(conn);  // sends the entry, then the data as the socket drains (ContinueRead)
}

void Server::ContinueRead(Connection& conn) {
  // Called from Flush() with an empty output buffer; only queues, Flush() sends. Reads until
  // EOF rather than st_size bytes: /proc and /sys files report size 0.
  auto finish = [&](std::string_view code, const std::string& message) {
    conn.read_file.Reset();
    if (code.empty()) {
      proto::AppendEmptyFrame(conn.out, Type::kEnd);
    } else {
      proto::Encoder(conn.out, Type::kError)
          .Bytes(Tag::kCode, code)
          .Bytes(Tag::kMessage, message)
          .Finish();
    }
    conn.state = Connection::State::kClosing;
  };
  if (conn.read_left <= 0) {
    // max_bytes sent: one more byte means the file grew past the limit while being read.
    char probe = 0;
    ssize_t n = read(conn.read_file.get(), &probe, 1);
    if (n < 0 && errno == EINTR) {
      return;  // Flush calls again
    }
    if (n > 0) {
      finish(proto::kFileTooLarge,
             "the file grew past max_bytes while it was read: raise "
             "max_bytes or read it with exec");
    } else {
      finish(n < 0 ? proto::kInternal : std::string_view(),
             n < 0 ? "read: " + std::string(ErrnoText(errno)) : "");
    }
    return;
  }
  // The DATA frame is built around the bytes read() puts straight into the output buffer.
  size_t chunk = static_cast<size_t>(std::min<int64_t>(conn.read_left, kFileChunk));
  size_t start = conn.out.size();
  constexpr size_t kPrefix = proto::kHeaderSize + 5;  // frame header + field header
  conn.out.resize(start + kPrefix + chunk);
  ssize_t n = read(conn.read_file.get(), conn.out.data() + start + kPrefix, chunk);
  int err = errno;
  if (n < 0 && err == EINTR) {
    conn.out.resize(start);
    return;  // Flush calls again
  }
  if (n <= 0) {
    conn.out.resize(start);
    finish(n < 0 ? proto::kInternal : std::string_view(),
           n < 0 ? "read: " + std::string(ErrnoText(err)) : "");
    return;
  }
  conn.out.resize(start + kPrefix + static_cast<size_t>(n));
  std::string header;
  proto::PutU32(header, static_cast<uint32_t>(1 + 5 + n));
  header.push_back(static_cast<char>(Type::kData));
  header.push_back(static_cast<char>(Tag::kData));
  proto::PutU32(header, static_cast<uint32_t>(n));
  conn.out.replace(start, kPrefix, header);
  conn.read_left -= n;
}

void Server::HandleWrite(Connection& conn, const Fields& fields) {
  int64_t mode = 0644;
  int64_t size = -1;
  if (!fields.Int(Tag::kMode, 0644, &mode) || !fields.Int(Tag::kSize, -1, &size) || size < 0) {
    Fail(conn, proto::kBadRequest, "WRITE needs size (bytes that follow) and an optional mode");
    return;
  }
  conn.write = std::make_unique<PendingWrite>();
  conn.write_size = size;
  FileError error =
      files_->BeginWrite(fields.Str(Tag::kPath), static_cast<uint32_t>(mode), conn.write.get());
  if (!error.ok()) {
    // Answer now, but keep reading the data: closing on a client still sending could cost it
    // the answer.
    conn.write.reset();
    Queue(conn);
    proto::Encoder(conn.out, Type::kError)
        .Bytes(Tag::kCode, error.code)
        .Bytes(Tag::kMessage, error.message)
        .Finish();
    conn.state = Connection::State::kDiscard;
    Flush(conn);
    return;
  }
  conn.state = Connection::State::kWriteData;
}

void Server::HandleWriteFrame(Connection& conn, Type type, std::string_view payload) {
  if (conn.state == Connection::State::kDiscard) {
    if (type == Type::kEnd) {
      conn.state = Connection::State::kClosing;
      Flush(conn);
    }
    return;
  }
  if (type == Type::kData) {
    proto::Decoder decoder(payload);
    proto::Field field;
    while (decoder.Next(&field)) {
      if (field.tag != Tag::kData) {
        continue;
      }
      if (conn.write->written() + static_cast<int64_t>(field.value.size()) > conn.write_size) {
        Fail(conn, proto::kBadRequest, "more data than the size WRITE announced");
        return;
      }
      FileError error = conn.write->Append(field.value);
      if (!error.ok()) {
        conn.write.reset();
        Queue(conn);
        proto::Encoder(conn.out, Type::kError)
            .Bytes(Tag::kCode, error.code)
            .Bytes(Tag::kMessage, error.message)
            .Finish();
        conn.state = Connection::State::kDiscard;
        Flush(conn);
        return;
      }
    }
    return;
  }
  if (type != Type::kEnd) {
    Fail(conn, proto::kBadRequest, "expected DATA or END frames after WRITE");
    return;
  }
  if (conn.write->written() != conn.write_size) {
    Fail(conn, proto::kBadRequest,
         "WRITE announced " + IntToString(conn.write_size) + " bytes but " +
             IntToString(conn.write->written()) + " arrived");
    return;
  }
  FileError error = conn.write->Commit();
  conn.write.reset();
  if (!error.ok()) {
    Fail(conn, error.code, error.message);
    return;
  }
  Answer(conn, Type::kOk);
}

}  // namespace kiln::init
