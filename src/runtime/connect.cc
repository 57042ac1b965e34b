// ConnectInNetns: the gateway's way into an instance. A socket belongs to the network
// namespace of the thread that created it, for its whole life, so the thread enters the
// instance's namespace only for the socket() call; connect() and every later read and write
// happen from the thread's own namespace and still use the instance's loopback.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "runtime/runtime.h"

namespace kiln::runtime {
namespace {

// The calling thread's own network namespace, opened on the thread's first call and closed
// when the thread exits. Keeping it is safe because nothing in the server moves a thread to
// another namespace for longer than ConnectInNetns does, and ConnectInNetns always returns it
// here (or aborts): the namespace a thread starts in is the one it must go back to. Namespaces
// are made in short-lived child processes (netns.cc), never on a server thread.
class HomeNetns {
 public:
  HomeNetns() = default;
  HomeNetns(const HomeNetns&) = delete;
  HomeNetns& operator=(const HomeNetns&) = delete;
  ~HomeNetns() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  // The descriptor, or -1 with errno set.
  int Get() {
    if (fd_ < 0) {
      // thread-self, not self: setns acts on the calling thread only, and /proc/self names
      // the main thread's namespace, which need not be this thread's.
      fd_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    }
    return fd_;
  }

 private:
  int fd_ = -1;
};

thread_local HomeNetns home_netns;

Status NetnsUnavailable(const std::string& netns_path, std::string_view what, int err) {
  return Status::Unavailable(
      "NETNS_UNAVAILABLE", std::string(what) + "(\"" + netns_path + "\"): " + std::strerror(err),
      err == EPERM ? "run kiln server as root" : "the instance is gone or was never started");
}

}  // namespace

Result<int> SocketInNetns(const std::string& netns_path) {
  int home = home_netns.Get();
  if (home < 0) {
    return Status::FromErrno("open(\"/proc/thread-self/ns/net\")", errno);
  }
  int target = ::open(netns_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (target < 0) {
    return NetnsUnavailable(netns_path, "open", errno);
  }
  if (::setns(target, CLONE_NEWNET) != 0) {
    int err = errno;
    ::close(target);
    // EINVAL: the file is not a network namespace (say, the bind mount is gone and an empty
    // file is left). The thread has not moved, so there is nothing to undo.
    return NetnsUnavailable(netns_path, "setns", err);
  }
  ::close(target);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  int socket_err = errno;
  if (::setns(home, CLONE_NEWNET) != 0) {
    // The thread now sits in an instance's namespace: anything it did next (a database file is
    // fine, but a connect to 127.0.0.1 would reach the instance) would be wrong, and there is
    // no way to repair it. This cannot happen while the descriptor is valid and we are root.
    std::fprintf(stderr, "kiln: setns back to the thread's own network namespace failed: %s\n",
                 std::strerror(errno));
    std::abort();
  }
  if (fd < 0) {
    return Status::FromErrno("socket() in \"" + netns_path + "\"", socket_err);
  }
  return fd;
}

namespace {

Status Refused(uint16_t port, int err) {
  return Status::Unavailable(
      "CONNECT_REFUSED",
      "connect to 127.0.0.1:" + std::to_string(port) + " in the instance: " + std::strerror(err),
      "check that the app listens on 127.0.0.1:" + std::to_string(port));
}

Status TimedOut(uint16_t port, std::chrono::milliseconds timeout) {
  return Status::Unavailable("CONNECT_TIMEOUT",
                             "connect to 127.0.0.1:" + std::to_string(port) +
                                 " in the instance: no answer within " +
                                 std::to_string(timeout.count()) + " ms",
                             "the app may be overloaded or frozen");
}

// Connects the non-blocking `fd`, waiting at most `timeout`.
Status ConnectWithin(int fd, uint16_t port, std::chrono::milliseconds timeout) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
    return Status::Ok();
  }
  if (errno != EINPROGRESS && errno != EINTR) {
    return Refused(port, errno);
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return TimedOut(port, timeout);
    }
    pollfd pfd{fd, POLLOUT, 0};
    // Rounded up so that a sub-millisecond remainder waits instead of spinning.
    int n = ::poll(&pfd, 1, static_cast<int>(left.count()) + 1);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return Status::FromErrno("poll(connect)", errno);
    }
    if (n == 0) {
      continue;  // the loop's deadline check decides
    }
    int err = 0;
    socklen_t len = sizeof(err);
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
      return Status::FromErrno("getsockopt(SO_ERROR)", errno);
    }
    if (err == 0) {
      return Status::Ok();
    }
    if (err == ETIMEDOUT) {
      return TimedOut(port, timeout);
    }
    return Refused(port, err);
  }
}

}  // namespace

Result<int> ConnectInNetns(const std::string& netns_path, uint16_t port,
                           std::chrono::milliseconds timeout) {
  auto made = SocketInNetns(netns_path);
  if (!made.ok()) {
    return made.status();
  }
  int fd = *made;
  Status connected = ConnectWithin(fd, port, timeout);
  if (!connected.ok()) {
    ::close(fd);
    return connected;
  }
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    Status status = Status::FromErrno("fcntl(O_NONBLOCK)", errno);
    ::close(fd);
    return status;
  }
  // Requests and responses are written whole; Nagle would only delay the last segment.
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  return fd;
}

}  // namespace kiln::runtime
