// The HTTP/1.1 listener.
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

namespace kiln::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Executor = asio::io_context::executor_type;
using Socket = asio::basic_stream_socket<tcp, Executor>;
using Timer = internal::WakeTimer;
using SteadyTime = std::chrono::steady_clock::time_point;
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

std::string FormatEndpoint(const tcp::endpoint& endpoint) {
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

// Deadlines are whole seconds or more, so the coarse clocks (a few ms resolution, read from
// the vDSO without touching the TSC) are precise enough, and they are read several times per
// request.
SteadyTime CoarseNow() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return SteadyTime(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
}

int64_t CoarseUnixSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME_COARSE, &ts);
  return ts.tv_sec;
}

// One connection, as seen by its worker's sweep and by Shutdown. Lives in the frame of the
// connection's coroutine; used only on its worker's thread.
struct Session {
  Socket* socket = nullptr;
  SteadyTime deadline = SteadyTime::max();
  bool timed_out = false;  // the sweep cancelled the pending operation
  bool idle = true;        // waiting for the first byte of a request
  // While a deferred response is delivered: its stream and the timer that wakes the
  // connection (both owned by the connection's coroutine).
  internal::StreamState* stream = nullptr;
  Timer* wake = nullptr;
  Session* prev = nullptr;
  Session* next = nullptr;

  void ExpiresAfter(std::chrono::milliseconds timeout) {
    deadline = CoarseNow() + timeout;
    timed_out = false;
  }
};

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
  asio::awaitable<void> RunSession(Worker* worker, Socket socket);
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
  size_t next_worker_ = 0;  // used only by Accept on worker 0
};

Status ServerImpl::Listen() {
  std::string where = options_.host + ":" + std::to_string(options_.port);
  auto fail = [&](const boost::system::error_code& ec) {
    return Status::Unavailable("LISTEN_FAILED", "cannot listen on " + where + ": " + ec.message(),
                               "pick another --listen address or stop the process using that "
                               "port");
  };
  boost::system::error_code ec;
  tcp::endpoint endpoint;
  asio::ip::address address = asio::ip::make_address(options_.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, options_.port);
  } else {
    // A host name such as "localhost": resolve it once, at start-up.
    asio::ip::basic_resolver<tcp, Executor> resolver(workers_[0]->ioc);
    auto results = resolver.resolve(options_.host, std::to_string(options_.port), ec);
    if (ec || results.empty()) {
      return fail(ec ? ec : asio::error::host_not_found);
    }
    endpoint = results.begin()->endpoint();
  }
  protocol_ = endpoint.protocol();
  int fd = ::socket(protocol_.family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    return fail(boost::system::error_code(errno, boost::system::system_category()));
  }
  acceptor_.emplace(workers_[0]->ioc);
  acceptor_->assign(protocol_, fd, ec);
  if (ec) {
    ::close(fd);
    return fail(ec);
  }
  acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) {
    acceptor_->bind(endpoint, ec);
  }
  if (!ec) {
    acceptor_->listen(1024, ec);
  }
  if (ec) {
    return fail(ec);
  }
  port_ = acceptor_->local_endpoint(ec).port();
  if (ec) {
    return fail(ec);
  }
  return Status::Ok();
}

void ServerImpl::Run() {
  running_ = true;
  asio::co_spawn(workers_[0]->ioc, Accept(), asio::detached);
  for (auto& worker : workers_) {
    asio::co_spawn(worker->ioc, Sweep(worker.get()), asio::detached);
  }
  for (auto& worker : workers_) {
    Worker* w = worker.get();
    w->thread = std::thread([w] { w->ioc.run(); });
  }
}

// Asio's async_accept uses accept(2), which leaves a window where a fork+exec elsewhere in
// the process (the runtime starts runc) inherits the connection; accept4 with SOCK_CLOEXEC
// closes it. Readiness still comes from the reactor.
asio::awaitable<void> ServerImpl::Accept() {
  Timer backoff(workers_[0]->ioc);
  while (acceptor_->is_open()) {
    auto [wait_ec] = co_await acceptor_->async_wait(tcp::acceptor::wait_read, kAsTuple);
    if (wait_ec || !acceptor_->is_open()) {
      break;
    }
    // Take everything that is queued, then wait again.
    while (true) {
      int fd =
          ::accept4(acceptor_->native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) {
        int err = errno;
        if (err == EINTR || err == ECONNABORTED) {
          continue;
        }
        if (err != EAGAIN && err != EWOULDBLOCK) {
          // Out of descriptors or memory: back off instead of spinning.
          log::Warn("accept failed", {{"error", Status::FromErrno("accept4", err).message()}});
          backoff.expires_after(std::chrono::milliseconds(50));
          co_await backoff.async_wait(kAsTuple);
        }
        break;
      }
      Worker* worker = workers_[next_worker_++ % workers_.size()].get();
      Socket socket(worker->ioc);
      boost::system::error_code ec;
      socket.assign(protocol_, fd, ec);
      if (ec) {
        ::close(fd);
        continue;
      }
      asio::co_spawn(worker->ioc, RunSession(worker, std::move(socket)), asio::detached);
    }
  }
}

asio::awaitable<void> ServerImpl::Sweep(Worker* worker) {
  Timer timer(worker->ioc);
  while (true) {
    timer.expires_after(sweep_interval_);
    auto [ec] = co_await timer.async_wait(kAsTuple);
    if (ec) {
      co_return;
    }
    SteadyTime now = CoarseNow();
    for (Session* s = worker->sessions; s != nullptr; s = s->next) {
      if (!s->timed_out && s->deadline <= now) {
        s->timed_out = true;
        s->deadline = SteadyTime::max();
        boost::system::error_code ignored;
        s->socket->cancel(ignored);
      }
    }
  }
}

void ServerImpl::SessionEnded() {
  if (sessions_.fetch_sub(1) == 1 && shutting_down_.load()) {
    std::lock_guard<std::mutex> lock(mu_);
    sessions_cv_.notify_all();
  }
}

bool ServerImpl::FillRequest(Parser& parser, Request& request) {
  auto& message = parser.get();
  request.method.assign(message.method_string());
  std::string_view target = message.target();
  request.target.assign(target);

  // Origin-form ("/path?q") as browsers send, or absolute-form as proxies send.
  auto url = (!target.empty() && target.front() == '/') ? boost::urls::parse_origin_form(target)
                                                        : boost::urls::parse_absolute_uri(target);
  if (!url) {
    return false;
  }
  std::string_view path = url->encoded_path();
  if (path.empty()) {
    path = "/";
  }
  if (!internal::DecodeInto(path, /*plus_as_space=*/false, request.path)) {
    return false;
  }
  if (!internal::ParseQuery(
          url->has_query() ? std::string_view(url->encoded_query()) : std::string_view(),
          request.query)) {
    return false;
  }

  size_t count = 0;
  for (const auto& field : message) {
    if (count == request.headers.size()) {
      request.headers.emplace_back();
    }
    auto& [name, value] = request.headers[count++];
    std::string_view raw = field.name_string();
    name.resize(raw.size());
    std::transform(raw.begin(), raw.end(), name.begin(), internal::ToLower);
    value.assign(field.value());
  }
  request.headers.resize(count);
  request.body = std::move(message.body());
  return true;
}

void ServerImpl::FillError(const Status& status, int http_status, Response& response) {
  response.status = 200;
  response.headers.clear();
  response.body.clear();
  if (on_error_) {
    on_error_(status, response);
  } else {
    response.Set("content-type", "text/plain; charset=utf-8");
    response.body = status.ToString() + "\n";
  }
  // The API layer maps codes to statuses; 431 has no code of its own, and a responder that
  // left a success status must not turn a refused request into one.
  if (http_status == 431 || response.status < 400) {
    response.status = http_status;
  }
  response.close = true;
}

void ServerImpl::CallHandler(Worker* worker, const Request& request, Response& response) {
  response.status = 200;
  response.headers.clear();
  response.body.clear();
  response.close = false;
  worker->in_flight.fetch_add(1, std::memory_order_relaxed);
  try {
    handler_(request, response);
  } catch (const std::exception& e) {
    // Handlers report errors as values; an exception here is a bug, but it must not take
    // the connection's thread down with it.
    log::Error("http handler threw", {{"error", e.what()}, {"path", request.path}});
    HandlerFailed(response);
  } catch (...) {
    log::Error("http handler threw", {{"path", request.path}});
    HandlerFailed(response);
  }
  if (!internal::ResponseAccess::Deferred(response)) [[likely]] {
    worker->in_flight.fetch_sub(1, std::memory_order_relaxed);
  }
}

void ServerImpl::HandlerFailed(Response& response) {
  if (internal::ResponseAccess::Deferred(response)) {
    // The 500 answers the request; a producer the handler started must stop.
    internal::ResponseAccess::TakeStream(response)->Detach();
  }
  FillError(Status::Internal("the request handler failed"), 500, response);
}

asio::awaitable<void> ServerImpl::Linger(Session* session, Socket* socket) {
  boost::system::error_code ec;
  socket->shutdown(tcp::socket::shutdown_send, ec);
  if (ec) {
    co_return;
  }
  session->ExpiresAfter(kLingerTime);
  std::array<char, 4096> scratch;
  size_t total = 0;
  while (total < kLingerBytes) {
    auto [read_ec, n] = co_await socket->async_read_some(asio::buffer(scratch), kAsTuple);
    if (read_ec) {
      break;
    }
    total += n;
  }
}

// GCC 12 reports a false -Wmismatched-new-delete on this coroutine's frame (allocated and
// freed by Asio's own operator new and delete, which match).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
asio::awaitable<bool> ServerImpl::Deliver(Worker* worker, Session* session, Socket* socket,
                                          beast::flat_buffer* buffer,
                                          std::shared_ptr<internal::StreamState> stream,
                                          Exchange exchange, Response* response,
                                          std::string* head) {
  Timer wake(worker->ioc);
  wake.expires_at(SteadyTime::max());
  stream->SetWake(&wake);
  session->stream = stream.get();
  session->wake = &wake;
  // Also runs when the io_context destroys this coroutine suspended.
  struct Detach {
    Session* session;
    internal::StreamState* stream;
    ~Detach() {
      session->stream = nullptr;
      session->wake = nullptr;
      stream->Detach();
    }
  } detach{session, stream.get()};

  // Bytes the client sends meanwhile are its next request (pipelining): they stay in the
  // buffer, and watching stops there so that the buffer cannot grow without bound.
  bool watch = buffer->size() == 0;
  bool begun = false;
  bool body = false;  // the begun response has a body
  bool chunked = false;
  bool keep_alive = exchange.keep_alive;
  internal::StreamWork work;
  std::string sizes;  // the chunk-size lines of one write
  std::vector<asio::const_buffer> buffers;

  while (true) {
    if (!socket->is_open()) {
      co_return false;  // cut at the end of the shutdown grace period
    }
    work.Clear();
    if (!stream->Take(work)) {
      session->deadline = SteadyTime::max();
      session->timed_out = false;
      if (!watch) {
        co_await wake.async_wait(kAsTuple);
        continue;
      }
      auto [order, wait_ec, read_ec, n] =
          co_await asio::experimental::make_parallel_group(
              wake.async_wait(asio::deferred),
              socket->async_read_some(buffer->prepare(kReadChunk), asio::deferred))
              .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
      (void)order;
      (void)wait_ec;
      if (n > 0) {
        buffer->commit(n);
        watch = false;
      } else if (read_ec && read_ec != asio::error::operation_aborted) {
        stream->Close();  // the client hung up (or reset): nobody is left to answer
        co_return false;
      }
      continue;
    }

    if (work.finish || work.abandoned) {
      Response* whole = response;
      if (work.finish) {
        whole = &*work.finish;
      } else {
        FillError(Status::Internal("the request handler did not complete its response"), 500,
                  *response);
      }
      bool keep = keep_alive && !whole->close && !shutting_down_.load();
      internal::SerializeHead(*whole, keep, exchange.http10, worker->DateLine(), *head);
      std::array<asio::const_buffer, 2> parts{asio::buffer(*head), asio::buffer(whole->body)};
      if (exchange.head_only || !internal::StatusAllowsBody(whole->status)) {
        parts[1] = asio::const_buffer();
      }
      session->ExpiresAfter(options_.read_timeout);
      auto [write_ec, written] = co_await asio::async_write(*socket, parts, kAsTuple);
      (void)written;
      co_return !write_ec && keep;
    }

    buffers.clear();
    if (work.begin) {
      begun = true;
      body = !exchange.head_only && internal::StatusAllowsBody(work.status);
      chunked = body && !exchange.http10;
      // An HTTP/1.0 body ends where the connection does.
      keep_alive = keep_alive && !(body && exchange.http10) && !shutting_down_.load();
      internal::SerializeStreamHead(work.status, work.headers, keep_alive, exchange.http10,
                                    worker->DateLine(), *head);
      buffers.push_back(asio::buffer(*head));
    }
    if (!begun) {
      continue;  // nothing the connection acts on before Begin
    }
    // Shutdown ends a begun stream after what is queued now.
    bool stop = work.closed || shutting_down_.load(std::memory_order_relaxed);
    size_t chunk_bytes = 0;
    for (const std::string& chunk : work.chunks) {
      chunk_bytes += chunk.size();
    }
    if (body) {
      // Sized up front: the buffers point into it.
      sizes.resize(work.chunks.size() * kChunkSizeLineMax);
      for (size_t i = 0; i < work.chunks.size(); ++i) {
        const std::string& chunk = work.chunks[i];
        if (chunked) {
          char* line = sizes.data() + i * kChunkSizeLineMax;
          char* end = std::to_chars(line, line + 16, chunk.size(), 16).ptr;
          *end++ = '\r';
          *end++ = '\n';
          buffers.push_back(asio::buffer(line, static_cast<size_t>(end - line)));
        }
        buffers.push_back(asio::buffer(chunk));
        if (chunked) {
          buffers.push_back(asio::buffer(kCrlf));
        }
      }
      if (chunked && (work.end || stop)) {
        buffers.push_back(asio::buffer(kLastChunk));
      }
    }
    if (!buffers.empty()) {
      session->ExpiresAfter(options_.read_timeout);
      auto [write_ec, written] = co_await asio::async_write(*socket, buffers, kAsTuple);
      (void)written;
      stream->Sent(chunk_bytes);
      if (write_ec) {
        stream->Close();  // gone, or timed out: the producer must stop
        co_return false;
      }
    } else {
      stream->Sent(chunk_bytes);
    }
    if (!body) {
      stream->Close();  // HEAD, 1xx, 204, 304: complete with the head
      co_return keep_alive;
    }
    if (work.end) {
      co_return keep_alive;
    }
    if (stop) {
      stream->Close();
      co_return false;
    }
  }
}
#pragma GCC diagnostic pop

asio::awaitable<void> ServerImpl::RunSession(Worker* worker, Socket socket) {
  sessions_.fetch_add(1);
  Session session;
  session.socket = &socket;
  worker->Link(&session);
  struct Cleanup {
    ServerImpl* server;
    Worker* worker;
    Session* session;
    ~Cleanup() {
      worker->Unlink(session);
      server->SessionEnded();
    }
  } cleanup{this, worker, &session};

  boost::system::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  Request request;
  request.remote = FormatEndpoint(socket.remote_endpoint(ec));
  internal::Connection connection(worker->ioc.get_executor());
  Response response;
  internal::ResponseAccess::Link(response, &connection);
  std::string head;
  beast::flat_buffer buffer;
  std::optional<Parser> parser;
  bool first = true;
  bool linger = false;

  while (!shutting_down_.load(std::memory_order_relaxed)) {
    // Wait for the first byte of the next request. A connection that goes quiet here is
    // simply closed: there is no request to answer.
    session.idle = true;
    if (buffer.size() == 0) {
      session.ExpiresAfter(first ? options_.header_timeout : options_.idle_timeout);
      auto [read_ec, n] = co_await socket.async_read_some(buffer.prepare(kReadChunk), kAsTuple);
      if (read_ec) {
        break;
      }
      buffer.commit(n);
    }
    session.idle = false;
    first = false;

    parser.emplace();
    parser->header_limit(static_cast<std::uint32_t>(options_.max_header_bytes));
    parser->body_limit(static_cast<std::uint64_t>(options_.body_limit_bytes));

    // Errors from here on are the client's: answer them, then close.
    std::optional<Status> error;
    int error_status = 400;
    auto classify = [&](const boost::system::error_code& read_ec) {
      if (read_ec == asio::error::operation_aborted && session.timed_out) {
        error = Status(Code::kTimeout, "REQUEST_TIMEOUT", "the request did not arrive in time",
                       "send the whole request promptly");
        error_status = 408;
      } else if (read_ec == bhttp::error::body_limit) {
        error = Status(Code::kPayloadTooLarge, "BODY_TOO_LARGE",
                       "the request body is larger than " +
                           std::to_string(options_.body_limit_bytes) + " bytes",
                       "send a smaller body");
        error_status = 413;
      } else if (read_ec == bhttp::error::header_limit) {
        error = Status::InvalidArgument("HEADERS_TOO_LARGE",
                                        "the request headers are larger than " +
                                            std::to_string(options_.max_header_bytes) + " bytes",
                                        "send fewer or shorter headers");
        error_status = 431;
      } else if (read_ec.category() ==
                     bhttp::make_error_code(bhttp::error::bad_target).category() &&
                 read_ec != bhttp::error::end_of_stream &&
                 read_ec != bhttp::error::partial_message) {
        error =
            Status::InvalidArgument("BAD_REQUEST", "malformed HTTP request: " + read_ec.message(),
                                    "send a valid HTTP/1.1 request");
        error_status = 400;
      }
      // Otherwise the peer went away or the server is shutting down: nothing to answer.
    };

    boost::system::error_code header_ec;
    ParseBuffered(
        *parser, buffer, [](const Parser& p) { return p.is_header_done(); }, header_ec);
    if (!header_ec && !parser->is_header_done()) {
      session.ExpiresAfter(options_.header_timeout);
      auto [read_ec, n] = co_await bhttp::async_read_header(socket, buffer, *parser, kAsTuple);
      (void)n;
      header_ec = read_ec;
    }
    if (header_ec) {
      classify(header_ec);
    } else {
      auto& message = parser->get();
      // Beast refuses most ambiguous framing itself; what it lets through (a Transfer-Encoding
      // that does not end in chunked) would let a proxy and us disagree on where the
      // request ends.
      bool bad_framing = message.count(bhttp::field::transfer_encoding) != 0 &&
                         (!parser->chunked() || message.count(bhttp::field::content_length) != 0);
      const char* problem = nullptr;
      if (bad_framing) {
        problem = "Transfer-Encoding must end in chunked and comes without Content-Length";
      } else if (message.version() < 10 || message.version() > 11) {
        problem = "unsupported HTTP version";
      } else if (message.version() == 11 && message.count(bhttp::field::host) == 0) {
        problem = "an HTTP/1.1 request needs a Host header";
      }
      if (problem != nullptr) {
        error = Status::InvalidArgument("BAD_REQUEST", problem, "send a valid HTTP/1.1 request");
      } else if (!parser->is_done()) {
        if (message.version() == 11 &&
            internal::EqualsLower(message[bhttp::field::expect], "100-continue")) {
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          session.ExpiresAfter(options_.read_timeout);
          auto [write_ec, written] =
              co_await asio::async_write(socket, asio::buffer(kContinue), kAsTuple);
          (void)written;
          if (write_ec) {
            break;
          }
        }
        boost::system::error_code body_ec;
        parser->eager(true);
        ParseBuffered(
            *parser, buffer, [](const Parser& p) { return p.is_done(); }, body_ec);
        if (!body_ec && !parser->is_done()) {
          session.ExpiresAfter(options_.read_timeout);
          auto [read_ec, n] = co_await bhttp::async_read(socket, buffer, *parser, kAsTuple);
          (void)n;
          body_ec = read_ec;
        }
        if (body_ec) {
          classify(body_ec);
          if (!error) {
            break;
          }
        }
      }
    }
    if (header_ec && !error) {
      break;
    }

    bool keep_alive = false;
    bool http10 = false;
    bool head_only = false;
    if (error) {
      FillError(*error, error_status, response);
      linger = true;
    } else {
      keep_alive = parser->get().keep_alive();
      http10 = parser->get().version() == 10;
      head_only = parser->get().method() == bhttp::verb::head;
      if (FillRequest(*parser, request)) {
        CallHandler(worker, request, response);
        if (internal::ResponseAccess::Deferred(response)) [[unlikely]] {
          Exchange exchange{keep_alive && !shutting_down_.load(), http10, head_only};
          bool again = co_await Deliver(worker, &session, &socket, &buffer,
                                        internal::ResponseAccess::TakeStream(response), exchange,
                                        &response, &head);
          worker->in_flight.fetch_sub(1, std::memory_order_relaxed);
          if (!again) {
            break;
          }
          continue;
        }
      } else {
        FillError(Status::InvalidArgument("BAD_REQUEST",
                                          "invalid request target \"" + request.target + "\"",
                                          "percent-encode the path and query"),
                  400, response);
        linger = true;
      }
      keep_alive = keep_alive && !response.close && !shutting_down_.load();
    }

    internal::SerializeHead(response, keep_alive, http10, worker->DateLine(), head);
    std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(response.body)};
    if (head_only || !internal::StatusAllowsBody(response.status)) {
      buffers[1] = asio::const_buffer();
    }
    session.ExpiresAfter(options_.read_timeout);
    auto [write_ec, written] = co_await asio::async_write(socket, buffers, kAsTuple);
    (void)written;
    if (write_ec || !keep_alive) {
      break;
    }
  }

  if (linger) {
    co_await Linger(&session, &socket);
  } else {
    socket.shutdown(tcp::socket::shutdown_both, ec);
  }
  socket.close(ec);
}

void ServerImpl::Shutdown() {
  std::unique_lock<std::mutex> lock(mu_);
  if (done_) {
    return;
  }
  done_ = true;
  shutting_down_.store(true);
  if (!running_) {
    return;
  }

  // Stop accepting, and wake the connections that wait for a request so they close.
  asio::post(workers_[0]->ioc, [this] {
    boost::system::error_code ignored;
    acceptor_->close(ignored);
  });
  for (auto& worker : workers_) {
    Worker* w = worker.get();
    asio::post(w->ioc, [w] {
      for (Session* s = w->sessions; s != nullptr; s = s->next) {
        if (s->idle) {
          boost::system::error_code ignored;
          s->socket->cancel(ignored);
        } else if (s->stream != nullptr && s->stream->CloseIfBegun()) {
          s->wake->cancel();
        }
      }
    });
  }

  auto deadline = std::chrono::steady_clock::now() + options_.shutdown_grace;
  if (!sessions_cv_.wait_until(lock, deadline, [this] { return sessions_.load() == 0; })) {
    // Past the grace period: cut what is left. A handler still running keeps its thread
    // until it returns; its response then fails to write.
    log::Warn("http shutdown grace period over; closing busy connections",
              {{"connections", sessions_.load()}, {"in_flight", InFlight()}});
    for (auto& worker : workers_) {
      Worker* w = worker.get();
      asio::post(w->ioc, [w] {
        for (Session* s = w->sessions; s != nullptr; s = s->next) {
          boost::system::error_code ignored;
          s->socket->close(ignored);
          if (s->wake != nullptr) {
            s->wake->cancel();  // a connection awaiting its producer does not use the socket
          }
        }
      });
    }
    sessions_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return sessions_.load() == 0; });
  }
  lock.unlock();

  for (auto& worker : workers_) {
    worker->ioc.stop();
  }
  for (auto& worker : workers_) {
    if (worker->thread.joinable()) {
      worker->thread.join();
    }
  }
  // Connections cut while delivering a deferred response are still suspended; detaching their
  // streams now, while nothing runs, means no producer posts to an io_context that is being
  // destroyed (the destructor runs the coroutines' clean-up on this thread, concurrently
  // with producers).
  for (auto& worker : workers_) {
    for (Session* s = worker->sessions; s != nullptr; s = s->next) {
      if (s->stream != nullptr) {
        s->stream->Detach();
      }
    }
  }
  // The threads are gone, so the acceptor can be touched from here; closing it again covers
  // a stop that came before the posted close ran.
  boost::system::error_code ignored;
  acceptor_->close(ignored);
}

}  // namespace

Result<std::unique_ptr<Server>> Server::Start(const ServerOptions& options, Handler handler,
                                              ErrorResponder on_error) {
  if (!handler) {
    return Status::InvalidArgument("NO_HANDLER", "http::Server::Start needs a handler");
  }
  auto server = std::make_unique<ServerImpl>(options, std::move(handler), std::move(on_error));
  KILN_RETURN_IF_ERROR(server->Listen());
  server->Run();
  return std::unique_ptr<Server>(std::move(server));
}

}  // namespace kiln::http
