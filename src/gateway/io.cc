// The gateway's socket work outside one request's logic: answering and lingering on the
// client connection, connecting to an app inside its namespace, tunnelling an upgraded
// connection, and running blocking work off the I/O thread. Used by proxy.cc.

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <utility>

#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "gateway/internal.h"
#include "runtime/runtime.h"

// GCC 12 reports a false -Wmismatched-new-delete on coroutine frames (allocated and freed by
// Asio's awaitable_frame_base operators); see also http/connection.cc.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace kiln::gateway::internal {
namespace {

using tcp = asio::ip::tcp;
constexpr std::chrono::milliseconds kLingerTime{2000};

}  // namespace

// Reads and discards what the client still sends for a moment, so that closing the socket
// does not reset the connection before the client has read our answer.
static asio::awaitable<void> Linger(http::Exchange& ex) {
  boost::system::error_code ec;
  ex.client.shutdown(tcp::socket::shutdown_send, ec);
  ex.session.ExpiresAfter(kLingerTime);
  char sink[4096];
  size_t total = 0;
  while (total < (1u << 20)) {
    auto [read_ec, n] = co_await ex.client.async_read_some(asio::buffer(sink), kAsTuple);
    if (read_ec) {
      break;
    }
    total += n;
  }
}

// Writes a whole answer of the gateway's own. True when the connection may go on.
asio::awaitable<bool> Answer(http::Exchange& ex, std::string response, bool keep_alive) {
  ex.session.ExpiresAfter(ex.read_timeout);
  auto [ec, n] = co_await asio::async_write(ex.client, asio::buffer(response), kAsTuple);
  (void)n;
  if (!ec && !keep_alive) {
    co_await Linger(ex);
  }
  co_return !ec && keep_alive;
}

// Runs `work` on the gateway's worker threads; the coroutine waits on a timer used as an
// event, which the worker's result wakes on the I/O thread (no handler crosses threads).
asio::awaitable<Status> Offload(WorkerPool& pool, const http::Executor& executor,
                                std::function<Status()> work) {
  using Timer =
      asio::basic_waitable_timer<std::chrono::steady_clock,
                                 asio::wait_traits<std::chrono::steady_clock>, http::Executor>;
  struct State {
    explicit State(const http::Executor& e)
        : timer(e, std::chrono::steady_clock::time_point::max()) {}
    Timer timer;
    Status result;
    bool done = false;
  };
  auto state = std::make_shared<State>(executor);
  bool queued = pool.Submit([state, executor, work = std::move(work)] {
    Status result = work();
    asio::post(executor, [state, result] {
      state->result = result;
      state->done = true;
      state->timer.cancel();
    });
  });
  if (!queued) {
    co_return Status::Unavailable("SHUTTING_DOWN", "the server is stopping", "retry in a moment");
  }
  while (!state->done) {
    auto [ec] = co_await state->timer.async_wait(kAsTuple);
    (void)ec;
  }
  co_return state->result;
}

// Appends "<hex size>\r\n" for a chunk of `n` bytes.
void ChunkHead(std::string& out, size_t n) {
  char hex[24];
  int len = std::snprintf(hex, sizeof(hex), "%zx\r\n", n);
  out.append(hex, static_cast<size_t>(len));
}

// Opens a connection to the route's app inside its network namespace.
asio::awaitable<Result<std::unique_ptr<Upstream>>> Connect(const Shared& shared, http::Exchange& ex,
                                                           const service::AppRoute& route) {
  auto made = runtime::SocketInNetns(route.netns_path);
  if (!made.ok()) {
    co_return UpstreamFailed(route, "cannot reach the app: " + made.status().message());
  }
  auto upstream = std::make_unique<Upstream>(ex.client.get_executor());
  // Beast reads at most what the buffer can take without growing (512 bytes at first). The
  // head's read stays small so that a long body is left in the socket for SpliceBody; a
  // body that is copied grows the buffer to kPiece first.
  upstream->buffer.reserve(kHeadRead);
  boost::system::error_code ec;
  upstream->socket.assign(tcp::v4(), *made, ec);
  if (ec) {
    ::close(*made);
    co_return UpstreamFailed(route, "cannot use the socket: " + ec.message());
  }
  upstream->key = route.instance_id + ":" + std::to_string(route.port);
  upstream->session.socket = &upstream->socket;
  upstream->session.idle = false;
  upstream->session.ExpiresAfter(shared.deps.connect_timeout);
  ex.Watch(upstream->session);
  auto [connect_ec] = co_await upstream->socket.async_connect(
      tcp::endpoint(asio::ip::address_v4::loopback(), route.port), kAsTuple);
  ex.Unwatch(upstream->session);
  if (connect_ec) {
    if (upstream->session.timed_out) {
      co_return UpstreamTimeout(route, shared.deps.connect_timeout, "accept the connection");
    }
    co_return UpstreamFailed(route, "the app refused the connection on port " +
                                        std::to_string(route.port) + ": " + connect_ec.message());
  }
  upstream->socket.set_option(tcp::no_delay(true), ec);
  co_return upstream;
}

// Copies bytes from `from` to `to` until either side ends or `from` is idle past the
// deadline (a WebSocket or another upgraded protocol).
asio::awaitable<void> Pump(http::Socket& from, http::Session& from_session, http::Socket& to,
                           std::chrono::milliseconds idle) {
  std::unique_ptr<char[]> data(new char[kPiece]);
  while (true) {
    from_session.ExpiresAfter(idle);
    auto [read_ec, n] = co_await from.async_read_some(asio::buffer(data.get(), kPiece), kAsTuple);
    if (read_ec) {
      break;
    }
    auto [write_ec, written] =
        co_await asio::async_write(to, asio::buffer(data.get(), n), kAsTuple);
    (void)written;
    if (write_ec) {
      break;
    }
  }
  boost::system::error_code ec;
  to.shutdown(tcp::socket::shutdown_send, ec);
}

}  // namespace kiln::gateway::internal
