#pragma once
// Module-private: the HTTP/1.1 listener's types, shared by server.cc (listening, accepting,
// deadlines, shutdown) and connection.cc (one connection: requests, responses, streams).
//
// Threads and ownership: each I/O thread runs its own io_context (concurrency hint 1), and a
// connection lives on one io_context for its whole life, so everything a connection touches
// (its socket, its Session record, its Worker's session list) is used from one thread only
// and needs no lock or strand. The acceptor and its coroutine live on worker 0 and hand each
// accepted socket to the next worker in turn.
//
// Deadlines: instead of a timer per socket operation, each Session carries a deadline that
// the connection moves before every read or write (a plain store), and one sweep timer per
// worker cancels the operations of sessions whose deadline has passed. The cancelled
// connection then still owns an open socket, which lets it answer 408 before closing.
//
// Deferred responses (Response::Defer): the handler returns at once and the connection's
// coroutine, still on its own thread, awaits the producer through a StreamState (stream.h):
// a timer used as an event that the producer wakes with a job posted to this io_context. The
// I/O thread serves its other connections meanwhile. While it waits the connection has no
// read deadline, but each socket write has the usual write deadline, and a read stays
// pending on the socket so that a client that hangs up is noticed without a write.
//
// Shutdown: stop accepting, cancel the sessions waiting for a request, close the streams
// that have begun (a follow stream would otherwise last the whole grace period), let busy
// ones finish (their response says Connection: close; a deferred response is busy), then stop
// the threads once every session has ended or the grace period is over.

#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/deferred.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/parallel_group.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/url/parse.hpp>

#include "core/log.h"
#include "http/http.h"
#include "http/internal.h"
#include "http/stream.h"
#include "http/takeover.h"

namespace kiln::http::internal {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using http::CoarseNow;
using http::Executor;
using http::Session;
using http::Socket;
using http::SteadyTime;
using Timer = internal::WakeTimer;
using Parser = bhttp::request_parser<bhttp::string_body>;

constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);
constexpr size_t kReadChunk = 8192;
// After an error response the client may still be sending (a body we refused); reading it
// for a moment before closing keeps the kernel from answering with a reset that would
// destroy our response in flight.
constexpr std::chrono::milliseconds kLingerTime{2000};
constexpr size_t kLingerBytes = 1 << 20;
constexpr std::string_view kCrlf = "\r\n";
constexpr std::string_view kLastChunk = "0\r\n\r\n";
constexpr size_t kChunkSizeLineMax = 18;  // 16 hex digits and CRLF

// How the request that a deferred response answers wants it framed.
struct Exchange {
  bool keep_alive = false;  // the client allows it and the server is not stopping
  bool http10 = false;
  bool head_only = false;
};

inline std::string FormatEndpoint(const tcp::endpoint& endpoint) {
  std::string out;
  if (endpoint.address().is_v6()) {
    out = "[" + endpoint.address().to_string() + "]";
  } else {
    out = endpoint.address().to_string();
  }
  out += ':';
  out += std::to_string(endpoint.port());
  return out;
}

// Feeds the parser what is already buffered, without a trip through the scheduler (a
// keep-alive request usually arrives whole in the first read). Stops when `done` says so, the
// parser needs more bytes from the socket, or on an error, which goes to `ec`.
template <typename Done>
void ParseBuffered(Parser& parser, beast::flat_buffer& buffer, Done done,
                   boost::system::error_code& ec) {
  while (!ec && buffer.size() > 0 && !done(parser)) {
    size_t used = parser.put(buffer.data(), ec);
    buffer.consume(used);
    if (ec == bhttp::error::need_more) {
      ec = {};
      return;
    }
    if (used == 0 && !ec) {
      return;
    }
  }
}

inline int64_t CoarseUnixSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return ts.tv_sec;
}

// One I/O thread with its io_context. Members are declared so that the io_context is
// destroyed first: destroying it destroys suspended connection coroutines, which unlink
// their Session from `sessions`.
struct Worker {
  Session* sessions = nullptr;  // intrusive list, this thread only
  // Requests being handled on this thread; written only by it, read by InFlight().
  alignas(64) std::atomic<int64_t> in_flight{0};
  // "Date: ...\r\n" for the current second, refreshed by the first response in a new second.
  std::string date_line;
  int64_t date_second = -1;
  asio::io_context ioc{1};
  std::thread thread;

  void Link(Session* session) {
    session->prev = nullptr;
    session->next = sessions;
    if (sessions != nullptr) {
      sessions->prev = session;
    }
    sessions = session;
  }
  void Unlink(Session* session) {
    if (session->prev != nullptr) {
      session->prev->next = session->next;
    } else {
      sessions = session->next;
    }
    if (session->next != nullptr) {
      session->next->prev = session->prev;
    }
    // A session may be linked again later (an upstream connection reused from the pool).
    session->prev = nullptr;
    session->next = nullptr;
  }
  std::string_view DateLine() {
    int64_t second = CoarseUnixSeconds();
    if (second != date_second) {
      date_second = second;
      internal::FormatDateLine(second, date_line);
    }
    return date_line;
  }
};

class ServerImpl final : public Server {
 public:
  ServerImpl(const ServerOptions& options, Handler handler, ErrorResponder on_error)
      : options_(options), handler_(std::move(handler)), on_error_(std::move(on_error)) {
    int threads = std::max(1, options_.threads);
    for (int i = 0; i < threads; ++i) {
      workers_.push_back(std::make_unique<Worker>());
    }
    auto shortest =
        std::min({options_.header_timeout, options_.read_timeout, options_.idle_timeout});
    sweep_interval_ =
        std::clamp(shortest / 5, std::chrono::milliseconds(5), std::chrono::milliseconds(250));
  }

  ~ServerImpl() override {
    Shutdown();
    // The acceptor belongs to worker 0's io_context and must go before it.
    acceptor_.reset();
    workers_.clear();
  }

  Status Listen();
  void Run();

  uint16_t port() const override { return port_; }
  void Shutdown() override;
  void Adopt(int fd, std::string remote, bool tls) override;
  int64_t InFlight() const override {
    int64_t total = 0;
    for (const auto& worker : workers_) {
      total += worker->in_flight.load(std::memory_order_relaxed);
    }
    return total;
  }

 private:
  asio::awaitable<void> Accept();
  asio::awaitable<void> Sweep(Worker* worker);
  // `remote` empty: the socket's peer address. `tls`: the connection came through Adopt from
  // the TLS listener.
  asio::awaitable<void> RunSession(Worker* worker, Socket socket, std::string remote, bool tls);
  // Writes the response a handler deferred to `stream`, as the producer provides it. True
  // when the connection may go on to the next request. Not inlined: it keeps the rare path
  // out of RunSession.
  [[gnu::noinline]] asio::awaitable<bool> Deliver(Worker* worker, Session* session, Socket* socket,
                                                  beast::flat_buffer* buffer,
                                                  std::shared_ptr<internal::StreamState> stream,
                                                  Exchange exchange, Response* response,
                                                  std::string* head);
  // Reads and discards what the client still sends, for a moment, before the socket closes.
  asio::awaitable<void> Linger(Session* session, Socket* socket);

  bool FillRequest(Parser& parser, Request& request);
  void FillError(const Status& status, int http_status, Response& response);
  // Counts the request in worker->in_flight until it returns, or, when the handler deferred
  // its response, until the caller has delivered it.
  void CallHandler(Worker* worker, const Request& request, Response& response);
  void HandlerFailed(Response& response);
  void SessionEnded();

  ServerOptions options_;
  Handler handler_;
  ErrorResponder on_error_;
  std::chrono::milliseconds sweep_interval_;
  uint16_t port_ = 0;
  std::atomic<bool> shutting_down_{false};
  std::atomic<int64_t> sessions_{0};
  std::mutex mu_;  // guards done_ and pairs with sessions_cv_
  std::condition_variable sessions_cv_;
  bool done_ = false;
  bool running_ = false;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::optional<asio::basic_socket_acceptor<tcp, Executor>> acceptor_;
  tcp protocol_ = tcp::v4();
  std::atomic<size_t> next_worker_{0};  // round robin over workers for new connections
};

}  // namespace kiln::http::internal
