// ConnectInNetns: sockets made inside another network namespace, connected from outside it.

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "runtime/runtime.h"

namespace kiln::runtime {
namespace {

using namespace std::chrono_literals;

// A TCP listener on 127.0.0.1 of the calling thread's namespace, port chosen by the kernel.
class Listener {
 public:
  explicit Listener(int backlog = 16) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        ::listen(fd_, backlog) != 0) {
      error_ = std::strerror(errno);
      return;
    }
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~Listener() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
  }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;

  uint16_t port() const { return port_; }
  int fd() const { return fd_; }
  const std::string& error() const { return error_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
  std::string error_;
};

// A port nothing listens on: bound and closed again.
uint16_t ClosedPort() {
  Listener listener;
  return listener.port();
}

ino_t NetnsInode(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return 0;
  }
  return st.st_ino;
}

// True when `fd` can exchange a byte with the connection `listener` accepts.
bool Exchanges(int fd, const Listener& listener) {
  int peer = ::accept4(listener.fd(), nullptr, nullptr, SOCK_CLOEXEC);
  if (peer < 0) {
    return false;
  }
  bool ok = ::send(fd, "x", 1, MSG_NOSIGNAL) == 1;
  char c = 0;
  ok = ok && ::recv(peer, &c, 1, 0) == 1 && c == 'x';
  ::close(peer);
  return ok;
}

TEST(ConnectTest, ConnectsInOwnNamespace) {
  Listener listener;
  ASSERT_TRUE(listener.error().empty()) << listener.error();
  ino_t before = NetnsInode("/proc/thread-self/ns/net");
  Result<int> fd = ConnectInNetns("/proc/self/ns/net", listener.port(), 2s);
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  EXPECT_EQ(NetnsInode("/proc/thread-self/ns/net"), before);

  // Handed over blocking, close-on-exec and without Nagle.
  EXPECT_EQ(::fcntl(*fd, F_GETFL) & O_NONBLOCK, 0);
  EXPECT_NE(::fcntl(*fd, F_GETFD) & FD_CLOEXEC, 0);
  int nodelay = 0;
  socklen_t len = sizeof(nodelay);
  ASSERT_EQ(::getsockopt(*fd, IPPROTO_TCP, TCP_NODELAY, &nodelay, &len), 0);
  EXPECT_NE(nodelay, 0);
  EXPECT_TRUE(Exchanges(*fd, listener));
  ::close(*fd);

  // The thread's namespace descriptor is kept: a second call works the same.
  Result<int> again = ConnectInNetns("/proc/self/ns/net", listener.port(), 2s);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  ::close(*again);
}

TEST(ConnectTest, RefusedWhenNothingListens) {
  Result<int> fd = ConnectInNetns("/proc/self/ns/net", ClosedPort(), 2s);
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.status().code(), Code::kUnavailable);
  EXPECT_EQ(fd.status().error_code(), "CONNECT_REFUSED");
}

TEST(ConnectTest, NamespaceUnavailable) {
  Result<int> missing = ConnectInNetns("/nonexistent/kiln-netns", 80, 1s);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().error_code(), "NETNS_UNAVAILABLE");
  EXPECT_NE(missing.status().message().find("/nonexistent/kiln-netns"), std::string::npos);

  // A file that is not a namespace (what is left when its bind mount is gone).
  char path[] = "/tmp/kiln-connect-test-XXXXXX";
  int file = ::mkstemp(path);
  ASSERT_GE(file, 0);
  ::close(file);
  ino_t before = NetnsInode("/proc/thread-self/ns/net");
  Result<int> plain = ConnectInNetns(path, 80, 1s);
  ::unlink(path);
  ASSERT_FALSE(plain.ok());
  EXPECT_EQ(plain.status().error_code(), "NETNS_UNAVAILABLE");
  EXPECT_EQ(NetnsInode("/proc/thread-self/ns/net"), before);
}

TEST(ConnectTest, TimesOutWhenTheListenerDoesNotAnswer) {
  // A listener whose accept queue is full drops new SYNs, so a connect stays pending.
  Listener listener(/*backlog=*/0);
  ASSERT_TRUE(listener.error().empty()) << listener.error();
  std::vector<int> fillers;
  for (int i = 0; i < 4; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(listener.port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    fillers.push_back(fd);
  }
  std::this_thread::sleep_for(50ms);  // let the handshakes that fit complete
  auto start = std::chrono::steady_clock::now();
  Result<int> fd = ConnectInNetns("/proc/self/ns/net", listener.port(), 200ms);
  auto took = std::chrono::steady_clock::now() - start;
  for (int filler : fillers) {
    ::close(filler);
  }
  ASSERT_FALSE(fd.ok());
  EXPECT_EQ(fd.status().error_code(), "CONNECT_TIMEOUT");
  EXPECT_GE(took, 190ms);
  EXPECT_LT(took, 2s);
}

// A thread that moves itself into a new network namespace with only loopback up and listens
// there, until the test ends. Its namespace is reachable as /proc/self/task/<tid>/ns/net.
class NamespacedListener {
 public:
  NamespacedListener() {
    std::promise<std::string> ready;
    auto started = ready.get_future();
    thread_ = std::thread([this, &ready] { Run(ready); });
    error_ = started.get();
  }
  ~NamespacedListener() {
    stop_.set_value();
    thread_.join();
  }
  NamespacedListener(const NamespacedListener&) = delete;
  NamespacedListener& operator=(const NamespacedListener&) = delete;

  const std::string& error() const { return error_; }  // empty when listening
  std::string netns_path() const { return "/proc/self/task/" + std::to_string(tid_) + "/ns/net"; }
  uint16_t port() const { return listener_->port(); }
  const Listener& listener() const { return *listener_; }

 private:
  void Run(std::promise<std::string>& ready) {
    tid_ = static_cast<pid_t>(::syscall(SYS_gettid));
    if (::unshare(CLONE_NEWNET) != 0) {
      ready.set_value(std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno));
      return;
    }
    int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
    ::ioctl(sock, SIOCGIFFLAGS, &ifr);
    ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
    int up = ::ioctl(sock, SIOCSIFFLAGS, &ifr);
    ::close(sock);
    if (up != 0) {
      ready.set_value(std::string("bringing up lo: ") + std::strerror(errno));
      return;
    }
    listener_ = std::make_unique<Listener>();
    ready.set_value(listener_->error());
    stop_.get_future().wait();
  }

  std::thread thread_;
  pid_t tid_ = 0;
  std::unique_ptr<Listener> listener_;
  std::promise<void> stop_;
  std::string error_;
};

TEST(ConnectTest, SocketLandsInTheInstanceNamespace) {
  NamespacedListener inside;
  if (inside.error().rfind("unshare", 0) == 0) {
    GTEST_SKIP() << inside.error() << " (needs root)";
  }
  ASSERT_TRUE(inside.error().empty()) << inside.error();
  ASSERT_NE(NetnsInode(inside.netns_path()), NetnsInode("/proc/thread-self/ns/net"));

  // The port listens only inside: from the host's namespace it is refused.
  Result<int> host = ConnectInNetns("/proc/self/ns/net", inside.port(), 1s);
  ASSERT_FALSE(host.ok());
  EXPECT_EQ(host.status().error_code(), "CONNECT_REFUSED");

  ino_t before = NetnsInode("/proc/thread-self/ns/net");
  Result<int> fd = ConnectInNetns(inside.netns_path(), inside.port(), 2s);
  ASSERT_TRUE(fd.ok()) << fd.status().ToString();
  EXPECT_EQ(NetnsInode("/proc/thread-self/ns/net"), before);
  EXPECT_TRUE(Exchanges(*fd, inside.listener()));
  ::close(*fd);

  // And a port nothing listens on inside is refused there.
  Result<int> closed = ConnectInNetns(inside.netns_path(), ClosedPort(), 1s);
  ASSERT_FALSE(closed.ok());
  EXPECT_EQ(closed.status().error_code(), "CONNECT_REFUSED");
}

}  // namespace
}  // namespace kiln::runtime
