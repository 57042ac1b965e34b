#pragma once
// Wire format between kiln-init (PID 1 inside an instance) and the host
// (src/runtime/init_client). Header-only and free of exceptions, RTTI and iostream so the
// static kiln-init and the server share one definition.
//
// One request per connection. Every message is a frame:
//   [u32 length, little-endian][u8 type][payload]      length counts type + payload
// A payload is a sequence of fields, each
//   [u8 tag][u32 length, little-endian][bytes]
// A tag may repeat to form a list (argv, env). Integers are 8 bytes, little-endian, two's
// complement. Unknown tags are skipped, so either side can add fields.
//
// Conversations (-> host to kiln-init, <- kiln-init to host):
//   EXEC{argv*, env*, cwd, user, stdin_size, timeout_ms, max_bytes}
//        [-> DATA{data}* -> END when stdin_size > 0]
//        <- STARTED{pid} <- (STDOUT{data} | STDERR{data})* <- EXIT{...}
//        Closing the connection (or shutting down its write side) before EXIT kills the
//        process group; EXIT still follows on a half-closed connection.
//   SIGNAL{pid, signo} <- OK          CONFIGURE{env*} <- OK
//   PING <- PONG{pid, rss_kb, uptime_ms, execs}
//   STAT{path} <- ENTRY               LIST{path, depth, max_entries} <- ENTRY* <- END
//   READ{path, max_bytes} <- ENTRY <- DATA* <- END
//   WRITE{path, mode, size} -> DATA* -> END <- OK
//   REMOVE{path, recursive} <- OK     MKDIR{path} <- OK
// Any request may be answered ERROR{code, message} instead, which ends the conversation.

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace kiln::init::proto {

inline constexpr size_t kHeaderSize = 5;  // u32 length + u8 type
// Largest data carried by one DATA/STDOUT/STDERR frame.
inline constexpr size_t kMaxChunk = size_t{1} << 20;
// Largest accepted frame length (type + payload): one chunk plus room for its fields.
inline constexpr uint32_t kMaxFrameLength = kMaxChunk + 4096;
inline constexpr int64_t kMaxStdin = int64_t{8} << 20;
inline constexpr int kMaxListDepth = 10;
inline constexpr int kMaxListEntries = 10000;
inline constexpr int64_t kDefaultMaxBytes = int64_t{1} << 20;

enum class Type : uint8_t {
  // Requests, host -> kiln-init.
  kExec = 1,
  kSignal = 2,
  kConfigure = 3,
  kPing = 4,
  kStat = 5,
  kList = 6,
  kRead = 7,
  kWrite = 8,
  kRemove = 9,
  kMkdir = 10,
  // Either direction.
  kData = 16,
  kEnd = 17,
  // Responses, kiln-init -> host.
  kStarted = 32,
  kStdout = 33,
  kStderr = 34,
  kExit = 35,
  kOk = 36,
  kError = 37,
  kPong = 38,
  kEntry = 39,
};

enum class Tag : uint8_t {
  kArgv = 1,
  kEnv = 2,
  kCwd = 3,
  kUser = 4,
  kStdinSize = 5,
  kTimeoutMs = 6,
  kMaxBytes = 7,
  kPid = 8,
  kSigno = 9,
  kPath = 10,
  kDepth = 11,
  kMaxEntries = 12,
  kMode = 13,
  kSize = 14,
  kRecursive = 15,
  kData = 16,
  kExitCode = 17,
  kSignal = 18,
  kTimedOut = 19,
  kStdoutTruncated = 20,
  kStderrTruncated = 21,
  kDurationUs = 22,
  kCode = 23,
  kMessage = 24,
  kRssKb = 25,
  kUptimeMs = 26,
  kExecs = 27,
  kName = 28,
  kEntryType = 29,
  kMtimeMs = 30,
  kLinkTarget = 31,
  kTruncated = 32,
};

// Values of Tag::kEntryType.
inline constexpr int64_t kEntryFile = 0;
inline constexpr int64_t kEntryDir = 1;
inline constexpr int64_t kEntrySymlink = 2;
inline constexpr int64_t kEntryOther = 3;

// Stable values of ERROR's code; the client maps each to a Status code.
inline constexpr std::string_view kPathInvalid = "PATH_INVALID";
inline constexpr std::string_view kFileNotFound = "FILE_NOT_FOUND";
inline constexpr std::string_view kNotADirectory = "NOT_A_DIRECTORY";
inline constexpr std::string_view kIsADirectory = "IS_A_DIRECTORY";
inline constexpr std::string_view kNotAFile = "NOT_A_FILE";
inline constexpr std::string_view kFileTooLarge = "FILE_TOO_LARGE";
inline constexpr std::string_view kReadOnly = "READ_ONLY";
inline constexpr std::string_view kPermissionDenied = "PERMISSION_DENIED";
inline constexpr std::string_view kDirectoryNotEmpty = "DIRECTORY_NOT_EMPTY";
inline constexpr std::string_view kNoSpace = "NO_SPACE";
inline constexpr std::string_view kBadRequest = "BAD_REQUEST";
inline constexpr std::string_view kBusy = "BUSY";
inline constexpr std::string_view kProcessNotFound = "PROCESS_NOT_FOUND";
inline constexpr std::string_view kSpawnFailed = "SPAWN_FAILED";
inline constexpr std::string_view kInternal = "INTERNAL";

inline void PutU32(std::string& out, uint32_t v) {
  char b[4] = {static_cast<char>(v), static_cast<char>(v >> 8), static_cast<char>(v >> 16),
               static_cast<char>(v >> 24)};
  out.append(b, 4);
}

inline uint32_t GetU32(const char* p) {
  const auto* u = reinterpret_cast<const unsigned char*>(p);
  return uint32_t{u[0]} | (uint32_t{u[1]} << 8) | (uint32_t{u[2]} << 16) | (uint32_t{u[3]} << 24);
}

// Appends one frame to `out`. Fields go straight into `out`; Finish() writes the length,
// so a frame is built without a second copy of its data.
class Encoder {
 public:
  Encoder(std::string& out, Type type) : out_(out), start_(out.size()) {
    PutU32(out_, 0);
    out_.push_back(static_cast<char>(type));
  }
  Encoder& Bytes(Tag tag, std::string_view value) {
    out_.push_back(static_cast<char>(tag));
    PutU32(out_, static_cast<uint32_t>(value.size()));
    out_.append(value.data(), value.size());
    return *this;
  }
  Encoder& Int(Tag tag, int64_t value) {
    char b[8];
    auto u = static_cast<uint64_t>(value);
    for (char& c : b) {
      c = static_cast<char>(u);
      u >>= 8;
    }
    return Bytes(tag, std::string_view(b, 8));
  }
  // Writes the frame length; call once, after the last field.
  void Finish() {
    auto length = static_cast<uint32_t>(out_.size() - start_ - 4);
    for (int i = 0; i < 4; ++i) {
      out_[start_ + i] = static_cast<char>(length >> (8 * i));
    }
  }

 private:
  std::string& out_;
  size_t start_;
};

// A frame without fields (PING, END, OK).
inline void AppendEmptyFrame(std::string& out, Type type) { Encoder(out, type).Finish(); }

struct Field {
  Tag tag{};
  std::string_view value;
};

// Reads the fields of a payload. Every length is checked against what is left, so a hostile
// or truncated payload ends the walk with ok() false instead of reading past the end.
class Decoder {
 public:
  explicit Decoder(std::string_view payload) : rest_(payload) {}
  // The next field; false at the end of the payload or on a malformed field.
  bool Next(Field* field) {
    if (rest_.empty()) {
      return false;
    }
    if (rest_.size() < 5) {
      ok_ = false;
      return false;
    }
    uint32_t length = GetU32(rest_.data() + 1);
    if (length > rest_.size() - 5) {
      ok_ = false;
      return false;
    }
    field->tag = static_cast<Tag>(rest_[0]);
    field->value = rest_.substr(5, length);
    rest_.remove_prefix(5 + size_t{length});
    return true;
  }
  bool ok() const { return ok_; }

 private:
  std::string_view rest_;
  bool ok_ = true;
};

// An integer field's value; false unless it is exactly 8 bytes.
inline bool ToInt(std::string_view value, int64_t* out) {
  if (value.size() != 8) {
    return false;
  }
  uint64_t u = 0;
  for (int i = 7; i >= 0; --i) {
    u = (u << 8) | static_cast<unsigned char>(value[static_cast<size_t>(i)]);
  }
  *out = static_cast<int64_t>(u);
  return true;
}

enum class FrameCheck { kIncomplete, kComplete, kMalformed };

// Looks at the start of `buffer`. kComplete fills type, payload (a view into buffer) and
// frame_size (bytes to drop once handled); kMalformed means a zero or oversized length.
inline FrameCheck PeekFrame(std::string_view buffer, Type* type, std::string_view* payload,
                            size_t* frame_size) {
  if (buffer.size() < 4) {
    return FrameCheck::kIncomplete;
  }
  uint32_t length = GetU32(buffer.data());
  if (length == 0 || length > kMaxFrameLength) {
    return FrameCheck::kMalformed;
  }
  if (buffer.size() - 4 < length) {
    return FrameCheck::kIncomplete;
  }
  *type = static_cast<Type>(buffer[4]);
  *payload = buffer.substr(kHeaderSize, length - 1);
  *frame_size = 4 + size_t{length};
  return FrameCheck::kComplete;
}

}  // namespace kiln::init::proto
