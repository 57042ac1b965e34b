// SpliceBody against real sockets: an "app" writes on one TCP connection, a "client" reads
// on another (or on a Unix socket, as behind the TLS listener), and the gateway's side of
// both runs on an io_context as in the server.

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>

#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <thread>

#include <gtest/gtest.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "gateway/internal.h"

namespace kiln::gateway::internal {
namespace {

using namespace std::chrono_literals;
using tcp = asio::ip::tcp;

char PatternAt(uint64_t i) { return static_cast<char>('a' + (i * 7 + i / 4096) % 26); }

// A connected pair of loopback TCP sockets: `far` is a plain blocking descriptor for a
// thread, `near` is the gateway's side on `ioc`.
struct TcpPair {
  explicit TcpPair(asio::io_context& ioc) : near(ioc.get_executor()) {
    asio::io_context setup;
    tcp::acceptor acceptor(setup, tcp::endpoint(asio::ip::address_v4::loopback(), 0));
    tcp::socket out(setup);
    out.connect(acceptor.local_endpoint());
    tcp::socket in = acceptor.accept();
    far = out.release();
    near.assign(tcp::v4(), in.release());
    near.non_blocking(true);
  }
  ~TcpPair() {
    if (far >= 0) {
      ::close(far);
    }
  }
  void CloseFar() {
    ::close(far);
    far = -1;
  }
  int far = -1;
  http::Socket near;
};

// The client's end as a Unix socket, like a TLS connection handed over by the TLS listener.
struct UnixPair {
  explicit UnixPair(asio::io_context& ioc) : near(ioc.get_executor()) {
    int fds[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    far = fds[0];
    near.assign(tcp::v4(), fds[1]);  // as ServerImpl::Adopt does
    near.non_blocking(true);
  }
  ~UnixPair() { ::close(far); }
  int far = -1;
  http::Socket near;
};

bool WriteAll(int fd, uint64_t from, uint64_t to, std::chrono::microseconds pause = 0us) {
  char buf[16384];
  for (uint64_t at = from; at < to;) {
    size_t n = static_cast<size_t>(std::min<uint64_t>(sizeof(buf), to - at));
    for (size_t i = 0; i < n; ++i) {
      buf[i] = PatternAt(at + i);
    }
    ssize_t w = ::send(fd, buf, n, MSG_NOSIGNAL);
    if (w <= 0) {
      return false;
    }
    at += static_cast<uint64_t>(w);
    if (pause > 0us) {
      std::this_thread::sleep_for(pause);
    }
  }
  return true;
}

// Reads until `want` bytes or the end; answers how many matched the pattern in order.
// `progress`, when given, follows the bytes read so far.
uint64_t ReadChecked(int fd, uint64_t want, std::chrono::milliseconds first_pause = 0ms,
                     std::atomic<uint64_t>* progress = nullptr) {
  std::this_thread::sleep_for(first_pause);
  char buf[65536];
  uint64_t got = 0;
  while (got < want) {
    ssize_t n = ::recv(fd, buf, std::min<uint64_t>(sizeof(buf), want - got), 0);
    if (n <= 0) {
      break;
    }
    for (ssize_t i = 0; i < n; ++i) {
      if (buf[i] != PatternAt(got + static_cast<uint64_t>(i))) {
        return got + static_cast<uint64_t>(i);
      }
    }
    got += static_cast<uint64_t>(n);
    if (progress != nullptr) {
      progress->store(got);
    }
  }
  return got;
}

SpliceResult Splice(asio::io_context& ioc, http::Socket& from, http::Socket& to, uint64_t length) {
  http::Session from_session;
  http::Session to_session;
  std::optional<SpliceResult> result;
  asio::co_spawn(ioc, SpliceBody(from, from_session, 10s, to, to_session, 10s, length),
                 [&](std::exception_ptr e, SpliceResult r) {
                   EXPECT_FALSE(e);
                   result = r;
                 });
  ioc.run();
  ioc.restart();
  EXPECT_TRUE(result.has_value());
  return result.value_or(SpliceResult{});
}

struct Transfer {
  SpliceResult result;
  uint64_t checked = 0;  // bytes the client read that match the app's, in order
};

// Splices `length` bytes from the app's socket to the client's while one thread runs `write`
// on the app's end and another reads up to `read` bytes from the client's end after `pause`.
Transfer SpliceWhile(asio::io_context& ioc, TcpPair& app, int client_far, http::Socket& client,
                     uint64_t length, uint64_t read, const std::function<void()>& write,
                     std::chrono::milliseconds pause = 0ms) {
  Transfer t;
  std::thread writer(write);
  std::thread reader([&] { t.checked = ReadChecked(client_far, read, pause); });
  t.result = Splice(ioc, app.near, client, length);
  writer.join();
  reader.join();
  return t;
}

TEST(SpliceBodyTest, MovesExactlyTheLengthAndLeavesTheNextResponseInTheSocket) {
  asio::io_context ioc;
  TcpPair app(ioc);
  TcpPair client(ioc);
  constexpr uint64_t kLength = (3 << 20) + 17;
  // The app writes the body and, right behind it, the start of the next response.
  Transfer t = SpliceWhile(ioc, app, client.far, client.near, kLength, kLength,
                           [&] { EXPECT_TRUE(WriteAll(app.far, 0, kLength + 100)); });
  EXPECT_FALSE(t.result.ec) << t.result.ec.message();
  EXPECT_FALSE(t.result.unsupported);
  EXPECT_EQ(t.result.moved, kLength);
  EXPECT_EQ(t.checked, kLength) << "the client's bytes differ from the app's at " << t.checked;
  // Not one byte past the body was taken: the 100 bytes wait in the app's socket.
  char rest[200];
  ssize_t n = ::recv(app.near.native_handle(), rest, sizeof(rest), MSG_DONTWAIT);
  ASSERT_EQ(n, 100);
  EXPECT_EQ(rest[0], PatternAt(kLength));
  EXPECT_EQ(rest[99], PatternAt(kLength + 99));
}

// A response head and the body bytes read with it go in front of the body, in order, and
// are counted apart from it.
TEST(SpliceBodyTest, APrefixLeavesInFrontOfTheBody) {
  asio::io_context ioc;
  TcpPair app(ioc);
  TcpPair client(ioc);
  const std::string head = "HTTP/1.1 200 OK\r\nContent-Length: 300000\r\n\r\n";
  std::string first(1000, '\0');
  for (size_t i = 0; i < first.size(); ++i) {
    first[i] = PatternAt(i);
  }
  constexpr uint64_t kTotal = 300000;
  std::array<asio::const_buffer, 2> prefix{asio::buffer(head), asio::buffer(first)};
  std::string got_head(head.size(), '\0');
  uint64_t checked = 0;
  std::thread writer([&] { EXPECT_TRUE(WriteAll(app.far, first.size(), kTotal)); });
  std::thread reader([&] {
    size_t at = 0;
    while (at < got_head.size()) {
      ssize_t n = ::recv(client.far, got_head.data() + at, got_head.size() - at, 0);
      if (n <= 0) {
        return;
      }
      at += static_cast<size_t>(n);
    }
    checked = ReadChecked(client.far, kTotal);
  });
  http::Session from_session;
  http::Session to_session;
  std::optional<SpliceResult> r;
  asio::co_spawn(ioc,
                 SpliceBody(app.near, from_session, 10s, client.near, to_session, 10s,
                            kTotal - first.size(), prefix),
                 [&](std::exception_ptr e, SpliceResult result) {
                   EXPECT_FALSE(e);
                   r = result;
                 });
  ioc.run();
  writer.join();
  reader.join();
  ASSERT_TRUE(r.has_value());
  EXPECT_FALSE(r->ec) << r->ec.message();
  EXPECT_FALSE(r->unsupported);
  EXPECT_EQ(r->prefix_sent, head.size() + first.size());
  EXPECT_EQ(r->moved, kTotal - first.size());
  EXPECT_EQ(got_head, head);
  EXPECT_EQ(checked, kTotal) << "the body differs from the app's at byte " << checked;
}

TEST(SpliceBodyTest, WaitsForASlowAppAndForAClientThatStopsReading) {
  asio::io_context ioc;
  TcpPair app(ioc);
  TcpPair client(ioc);
  constexpr uint64_t kLength = 16 << 20;  // far past the sockets' buffers
  Transfer t = SpliceWhile(
      ioc, app, client.far, client.near, kLength, kLength,
      [&] {
        EXPECT_TRUE(WriteAll(app.far, 0, 1 << 20, 200us));  // the first MiB trickles in
        EXPECT_TRUE(WriteAll(app.far, 1 << 20, kLength));
      },
      300ms);
  EXPECT_FALSE(t.result.ec) << t.result.ec.message();
  EXPECT_EQ(t.result.moved, kLength);
  EXPECT_EQ(t.checked, kLength);
}

// An app that sends part of its body and pauses: the part reaches the client during the
// pause, and the rest follows. (With SPLICE_F_MORE the part waited 200 ms in the kernel; the
// test then takes that long instead of a few ms, which it does not assert.)
TEST(SpliceBodyTest, BytesReachTheClientWhileTheAppPauses) {
  asio::io_context ioc;
  TcpPair app(ioc);
  TcpPair client(ioc);
  constexpr uint64_t kLength = 100000;
  constexpr uint64_t kFirst = 20000;
  std::atomic<uint64_t> seen{0};
  bool first_part_arrived = false;
  std::thread writer([&] {
    EXPECT_TRUE(WriteAll(app.far, 0, kFirst));
    auto give_up = std::chrono::steady_clock::now() + 10s;
    while (seen.load() < kFirst && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(1ms);
    }
    first_part_arrived = seen.load() >= kFirst;
    EXPECT_TRUE(WriteAll(app.far, kFirst, kLength));
  });
  uint64_t checked = 0;
  std::thread reader([&] { checked = ReadChecked(client.far, kLength, 0ms, &seen); });
  SpliceResult r = Splice(ioc, app.near, client.near, kLength);
  writer.join();
  reader.join();
  EXPECT_TRUE(first_part_arrived) << "the client saw " << seen.load() << " of the first " << kFirst
                                  << " bytes while the app waited for them to arrive";
  EXPECT_FALSE(r.ec) << r.ec.message();
  EXPECT_EQ(checked, kLength);
}

TEST(SpliceBodyTest, AnAppClosingEarlyIsAnErrorOnTheAppsSide) {
  asio::io_context ioc;
  TcpPair app(ioc);
  TcpPair client(ioc);
  Transfer t = SpliceWhile(ioc, app, client.far, client.near, 1 << 20, 100000, [&] {
    EXPECT_TRUE(WriteAll(app.far, 0, 100000));
    app.CloseFar();
  });
  EXPECT_EQ(t.result.ec, asio::error::eof) << t.result.ec.message();
  EXPECT_FALSE(t.result.client_failed);
  EXPECT_EQ(t.result.moved, 100000u);
  EXPECT_EQ(t.checked, 100000u);
}

TEST(SpliceBodyTest, AClientThatGoesAwayIsAnErrorOnTheClientsSide) {
  asio::io_context ioc;
  TcpPair app(ioc);
  TcpPair client(ioc);
  // splice(2) into a socket whose peer is gone raises SIGPIPE; the daemon ignores it
  // (daemon.cc), as every server must.
  ::signal(SIGPIPE, SIG_IGN);
  client.CloseFar();
  std::thread writer([&] { WriteAll(app.far, 0, 4 << 20); });
  SpliceResult r = Splice(ioc, app.near, client.near, 4 << 20);
  app.CloseFar();  // unblocks the writer if the gateway stopped reading
  writer.join();
  EXPECT_TRUE(r.ec);
  EXPECT_TRUE(r.client_failed) << r.ec.message();
  EXPECT_LT(r.moved, 4u << 20);
}

TEST(SpliceBodyTest, ReachesAClientBehindAUnixSocket) {
  asio::io_context ioc;
  TcpPair app(ioc);
  UnixPair client(ioc);
  constexpr uint64_t kLength = 5 << 20;
  Transfer t = SpliceWhile(ioc, app, client.far, client.near, kLength, kLength,
                           [&] { EXPECT_TRUE(WriteAll(app.far, 0, kLength)); });
  EXPECT_FALSE(t.result.ec) << t.result.ec.message();
  EXPECT_EQ(t.result.moved, kLength);
  EXPECT_EQ(t.checked, kLength);
}

// A pipe is kept per thread for the next body; many bodies in a row open no more.
TEST(SpliceBodyTest, PipesAreReusedNotLeaked) {
  asio::io_context ioc;
  TcpPair app(ioc);
  TcpPair client(ioc);
  auto open_fds = [] {
    int n = 0;
    for (int fd = 0; fd < 4096; ++fd) {
      n += ::fcntl(fd, F_GETFD) != -1 ? 1 : 0;
    }
    return n;
  };
  // Round 0 makes the thread's pipe; no round after it may open another.
  for (int round = 0; round < 50; ++round) {
    int before = open_fds();
    Transfer t = SpliceWhile(ioc, app, client.far, client.near, 70000, 70000,
                             [&] { EXPECT_TRUE(WriteAll(app.far, 0, 70000)); });
    ASSERT_FALSE(t.result.ec) << t.result.ec.message();
    ASSERT_EQ(t.checked, 70000u);
    if (round > 0) {
      ASSERT_EQ(open_fds(), before) << "round " << round << " left descriptors open";
    }
  }
}

}  // namespace
}  // namespace kiln::gateway::internal
