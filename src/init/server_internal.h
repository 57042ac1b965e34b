#pragma once
// The Server's private state, shared by server.cc (loop and connections), requests.cc
// (request handlers) and commands.cc (child processes). Not for other modules.

#include <sys/epoll.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "init/server.h"

namespace kiln::init {

inline constexpr size_t kMaxConnections = 64;
inline constexpr int64_t kIdleMs = 30'000;              // a stalled client is dropped after this
inline constexpr int64_t kShutdownGraceMs = 5'000;      // SIGTERM -> SIGKILL
inline constexpr int64_t kReapGraceMs = 1'000;          // after SIGKILL, for the kernel to finish
inline constexpr int64_t kIdleReleaseMs = 1'000;        // quiet time before ReleaseIdleMemory()
inline constexpr size_t kHighWater = size_t{1} << 20;   // a lagging client pauses its command
inline constexpr size_t kDrainLimit = size_t{1} << 20;  // read from an exited command's pipes
inline constexpr size_t kPipeBudget = 256 * 1024;       // per event, so one command cannot starve
inline constexpr size_t kFileChunk = 256 * 1024;        // DATA frame size for READ

// What an epoll event is about: data.u64 = kind << 56 | id (connection id or pid).
inline constexpr uint64_t kListenerKind = 1;
inline constexpr uint64_t kSignalsKind = 2;
inline constexpr uint64_t kConnectionKind = 3;
inline constexpr uint64_t kExecStdoutKind = 4;
inline constexpr uint64_t kExecStderrKind = 5;
inline constexpr uint64_t kExecStdinKind = 6;
inline constexpr uint64_t kMainStdoutKind = 7;
inline constexpr uint64_t kMainStderrKind = 8;

// One read buffer for every pipe and socket: the loop is single-threaded and each read is
// consumed before the next.
alignas(4096) inline char g_read_buffer[64 * 1024];

struct Server::Connection {
  enum class State {
    kRequest,    // waiting for the request frame
    kStdin,      // EXEC: receiving stdin as DATA frames until END
    kWriteData,  // WRITE: receiving DATA frames until END
    kDiscard,    // WRITE failed early (ERROR queued): dropping DATA frames until END
    kExec,       // the command runs; its output flows out
    kSending,    // READ: the file goes out as the socket drains
    kClosing,    // the answer is queued; close once it is sent
  };
  bool WantsInput() const {
    return state == State::kRequest || state == State::kStdin || state == State::kWriteData ||
           state == State::kDiscard;
  }
  size_t pending() const { return out.size() - out_sent; }

  uint64_t id = 0;
  UniqueFd fd;
  State state = State::kRequest;
  std::string in;
  std::string out;
  size_t out_sent = 0;
  // Monotonic ms after which a connection that waits for input or cannot send is dropped.
  int64_t deadline_ms = 0;
  bool input_closed = false;  // the peer shut down its write side
  bool dead = false;          // destroyed by Sweep() at the end of the loop iteration
  uint32_t events = 0;        // current epoll interest
  std::unique_ptr<ExecRequest> exec_request;  // kStdin
  std::unique_ptr<PendingWrite> write;        // kWriteData
  int64_t write_size = 0;
  UniqueFd read_file;  // kSending
  int64_t read_left = 0;
  pid_t exec_pid = 0;  // kExec
};

struct Server::ExecRequest {
  std::vector<std::string> argv;
  std::vector<std::string> env;
  std::string cwd;
  std::string user;
  int64_t stdin_size = 0;
  std::string stdin_data;
  int64_t timeout_ms = 0;
  int64_t max_bytes = proto::kDefaultMaxBytes;
};

struct Server::Exec {
  pid_t pid = 0;
  uint64_t connection_id = 0;  // 0 once the client is gone
  UniqueFd stdout_fd;
  UniqueFd stderr_fd;
  UniqueFd stdin_fd;
  std::string stdin_data;
  size_t stdin_sent = 0;
  int64_t started_us = 0;
  int64_t deadline_ms = 0;  // monotonic; 0 = none
  int64_t max_bytes = 0;
  int64_t stdout_bytes = 0;
  int64_t stderr_bytes = 0;
  bool stdout_truncated = false;
  bool stderr_truncated = false;
  bool timed_out = false;
  bool paused = false;  // pipes out of the epoll set while the client catches up
};

// The fields of a request, decoded once. Integers are checked when read.
struct Server::Fields {
  std::vector<std::string_view> argv;
  std::vector<std::string_view> env;
  std::string_view values[64];
  bool present[64] = {};

  bool Has(proto::Tag tag) const { return present[static_cast<uint8_t>(tag) & 63]; }
  std::string_view Str(proto::Tag tag) const { return values[static_cast<uint8_t>(tag) & 63]; }
  // The integer, or `fallback` when absent; false when present but malformed.
  bool Int(proto::Tag tag, int64_t fallback, int64_t* out) const {
    if (!Has(tag)) {
      *out = fallback;
      return true;
    }
    return proto::ToInt(Str(tag), out);
  }
};

}  // namespace kiln::init
