// Moving a response body from the app's socket to the client's without copying it through
// the gateway's memory: splice(2) moves the socket's pages into a pipe and from the pipe into
// the other socket, the way HAProxy forwards large bodies. A 64 KiB body otherwise costs two
// copies of it per request (into a buffer, back into the kernel) and the cache they evict.
// Used by proxy.cc for bodies of a known length; chunked bodies are re-framed and copied.
// A client that hung up makes the splice raise SIGPIPE, which the daemon ignores.

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <vector>

#include "gateway/internal.h"

#pragma GCC diagnostic ignored "-Wmismatched-new-delete"  // see io.cc

namespace kiln::gateway::internal {
namespace {

// An empty pipe, kept per I/O thread between bodies: making one is two descriptors and a
// syscall. Only an empty pipe goes back (a failed transfer may leave bytes in it).
struct Pipe {
  int read = -1;
  int write = -1;
};

constexpr size_t kPipesKept = 32;  // per thread: more are closed after use

class PipePool {
 public:
  ~PipePool() {
    for (Pipe p : free_) {
      Close(p);
    }
  }
  bool Take(Pipe& out) {
    if (!free_.empty()) {
      out = free_.back();
      free_.pop_back();
      return true;
    }
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC | O_NONBLOCK) != 0) {
      return false;  // out of descriptors: the caller copies instead
    }
    out = {fds[0], fds[1]};
    return true;
  }
  void Give(Pipe p, bool empty) {
    if (empty && free_.size() < kPipesKept) {
      free_.push_back(p);
    } else {
      Close(p);
    }
  }

 private:
  static void Close(Pipe p) {
    ::close(p.read);
    ::close(p.write);
  }
  std::vector<Pipe> free_;
};

thread_local PipePool pipes;

// A pipe holds 16 pages by default; a splice into it moves at most that much.
constexpr size_t kPipeBytes = 64 << 10;
// The most prefix bytes put in front of the body (a response head and what came with it).
constexpr size_t kMaxPrefix = 32 << 10;

}  // namespace

asio::awaitable<SpliceResult> SpliceBody(http::Socket& from, http::Session& from_session,
                                         std::chrono::milliseconds from_timeout, http::Socket& to,
                                         http::Session& to_session,
                                         std::chrono::milliseconds to_timeout, uint64_t length,
                                         std::span<const asio::const_buffer> prefix) {
  SpliceResult result;
  size_t prefix_size = 0;
  for (const auto& b : prefix) {
    prefix_size += b.size();
  }
  Pipe pipe;
  if (prefix_size > kMaxPrefix || !pipes.Take(pipe)) {
    result.unsupported = true;
    co_return result;
  }
  auto fail = [&](int err) {
    result.ec = boost::system::error_code(err, boost::system::system_category());
  };
  // The prefix goes into the empty pipe first (a copy of a few KiB), so that it leaves with
  // the first part of the body in one send instead of a send of its own.
  size_t in_pipe = 0;
  if (prefix_size > 0) {
    std::array<iovec, 4> iov{};
    size_t count = 0;
    for (const auto& b : prefix) {
      if (b.size() > 0 && count < iov.size()) {
        iov[count++] = {const_cast<void*>(b.data()), b.size()};
      }
    }
    ssize_t n = ::writev(pipe.write, iov.data(), static_cast<int>(count));
    if (n != static_cast<ssize_t>(prefix_size)) {
      // An empty pipe takes 64 KiB; this cannot happen short of a kernel that shrank it.
      pipes.Give(pipe, false);
      result.unsupported = n <= 0;  // nothing is in the pipe: the caller sends it instead
      if (!result.unsupported) {
        fail(EIO);
      }
      co_return result;
    }
    in_pipe = prefix_size;
  }
  uint64_t to_read = length;
  uint64_t sent = 0;  // prefix and body bytes that reached `to`
  const uint64_t total = prefix_size + length;
  while (sent < total) {
    // From the app into the pipe: what has arrived, up to what the pipe and the body take.
    if (to_read > 0 && in_pipe < kPipeBytes) {
      size_t want = static_cast<size_t>(std::min<uint64_t>(to_read, kPipeBytes - in_pipe));
      ssize_t n = ::splice(from.native_handle(), nullptr, pipe.write, nullptr, want,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        in_pipe += static_cast<size_t>(n);
        to_read -= static_cast<uint64_t>(n);
      } else if (n == 0) {
        result.ec = asio::error::eof;  // the app closed mid-body
        break;
      } else if (errno == EAGAIN && in_pipe == 0) {
        from_session.ExpiresAfter(from_timeout);
        auto [ec] = co_await from.async_wait(http::Socket::wait_read, kAsTuple);
        if (ec) {
          result.ec = ec;
          break;
        }
        continue;
      } else if (errno != EAGAIN && errno != EINTR) {
        fail(errno);
        break;
      }
    }
    // From the pipe to the client, under the same deadline per write as a copied body.
    if (in_pipe > 0) {
      to_session.ExpiresAfter(to_timeout);
      // No SPLICE_F_MORE: it corks the socket, so the bytes an app sends before a pause
      // would wait up to 200 ms for the rest (seen in SpliceBodyTest.*WhileTheAppPauses).
      ssize_t n = ::splice(pipe.read, nullptr, to.native_handle(), nullptr, in_pipe,
                           SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
      if (n > 0) {
        in_pipe -= static_cast<size_t>(n);
        sent += static_cast<uint64_t>(n);
      } else if (n < 0 && errno == EAGAIN) {
        auto [ec] = co_await to.async_wait(http::Socket::wait_write, kAsTuple);
        if (ec) {
          result.ec = ec;
          result.client_failed = true;
          break;
        }
      } else if (n < 0 && errno != EINTR) {
        fail(errno);
        result.client_failed = true;
        break;
      }
    }
  }
  result.prefix_sent = std::min<uint64_t>(sent, prefix_size);
  result.moved = sent - result.prefix_sent;
  pipes.Give(pipe, in_pipe == 0);
  co_return result;
}

}  // namespace kiln::gateway::internal
