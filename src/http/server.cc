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
// Shutdown: stop accepting, cancel the sessions waiting for a request, let busy ones finish
// (their response says Connection: close), then stop the threads once every session has
// ended or the grace period is over.

#include <fcntl.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <condition_variable>
#include <ctime>
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
#include <boost/asio/detached.hpp>
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

namespace kiln::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using Executor = asio::io_context::executor_type;
using Socket = asio::basic_stream_socket<tcp, Executor>;
using Timer = asio::basic_waitable_timer<std::chrono::steady_clock,
                                         asio::wait_traits<std::chrono::steady_clock>, Executor>;
using SteadyTime = std::chrono::steady_clock::time_point;
using Parser = bhttp::request_parser<bhttp::string_body>;

constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);
constexpr size_t kReadChunk = 8192;
// After an error response the client may still be sending (a body we refused); reading it
// for a moment before closing keeps the kernel from answering with a reset that would
// destroy our response in flight.
constexpr std::chrono::milliseconds kLingerTime{2000};
constexpr size_t kLingerBytes = 1 << 20;

void SetCloseOnExec(int fd) {
  int flags = ::fcntl(fd, F_GETFD);
  if (flags >= 0) {
    ::fcntl(fd, F_SETFD, flags | FD_CLOEXEC);
  }
}

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

bool EqualsLower(std::string_view text, std::string_view lower) {
  if (text.size() != lower.size()) {
    return false;
  }
  for (size_t i = 0; i < text.size(); ++i) {
    if (internal::ToLower(text[i]) != lower[i]) {
      return false;
    }
  }
  return true;
}

bool HasLineBreak(std::string_view text) {
  return text.find_first_of("\r\n") != std::string_view::npos;
}

void AppendNumber(std::string& out, uint64_t n) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), n);
  out.append(digits, end);
}

// Splits an encoded query into decoded pairs, reusing the capacity of `out`'s strings.
bool ParseQuery(std::string_view query, std::vector<std::pair<std::string, std::string>>& out) {
  size_t count = 0;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (item.empty()) {
      continue;
    }
    size_t eq = item.find('=');
    std::string_view key = item.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
    if (count == out.size()) {
      out.emplace_back();
    }
    auto& [k, v] = out[count++];
    if (!internal::DecodeInto(key, true, k) || !internal::DecodeInto(value, true, v)) {
      out.resize(count);
      return false;
    }
  }
  out.resize(count);
  return true;
}

// One connection, as seen by its worker's sweep and by Shutdown. Lives in the frame of the
// connection's coroutine; used only on its worker's thread.
struct Session {
  Socket* socket = nullptr;
  SteadyTime deadline = SteadyTime::max();
  bool timed_out = false;  // the sweep cancelled the pending operation
  bool idle = true;        // waiting for the first byte of a request
  Session* prev = nullptr;
  Session* next = nullptr;

  void ExpiresAfter(std::chrono::milliseconds timeout) {
    deadline = std::chrono::steady_clock::now() + timeout;
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
    auto now = std::chrono::system_clock::now();
    int64_t second =
        std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
    if (second != date_second) {
      date_second = second;
      std::time_t t = static_cast<std::time_t>(second);
      std::tm tm{};
      gmtime_r(&t, &tm);
      char text[64];
      size_t n = std::strftime(text, sizeof(text), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
      date_line.assign(text, n);
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
    auto shortest = std::min({options_.header_timeout, options_.read_timeout,
                              options_.idle_timeout});
    sweep_interval_ = std::clamp(shortest / 5, std::chrono::milliseconds(5),
                                 std::chrono::milliseconds(250));
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
  // Reads and discards what the client still sends, for a moment, before the socket closes.
  asio::awaitable<void> Linger(Session* session, Socket* socket);

  bool FillRequest(Parser& parser, Request& request);
  void FillError(const Status& status, int http_status, Response& response);
  void CallHandler(Worker* worker, const Request& request, Response& response);
  void SerializeHead(Worker* worker, const Response& response, bool keep_alive, bool http10,
                     std::string& out);
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
  acceptor_.emplace(workers_[0]->ioc);
  acceptor_->open(endpoint.protocol(), ec);
  if (ec) {
    return fail(ec);
  }
  SetCloseOnExec(acceptor_->native_handle());
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

asio::awaitable<void> ServerImpl::Accept() {
  Timer backoff(workers_[0]->ioc);
  while (acceptor_->is_open()) {
    Worker* worker = workers_[next_worker_++ % workers_.size()].get();
    auto [ec, socket] = co_await acceptor_->async_accept(worker->ioc, kAsTuple);
    if (ec) {
      if (ec == asio::error::operation_aborted || !acceptor_->is_open()) {
        break;
      }
      // Out of descriptors or memory, or the peer gave up: back off instead of spinning.
      log::Warn("accept failed", {{"error", ec.message()}});
      backoff.expires_after(std::chrono::milliseconds(50));
      co_await backoff.async_wait(kAsTuple);
      continue;
    }
    asio::co_spawn(worker->ioc, RunSession(worker, std::move(socket)), asio::detached);
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
    SteadyTime now = std::chrono::steady_clock::now();
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
  if (!ParseQuery(url->has_query() ? std::string_view(url->encoded_query()) : std::string_view(),
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
    FillError(Status::Internal("the request handler failed"), 500, response);
  } catch (...) {
    log::Error("http handler threw", {{"path", request.path}});
    FillError(Status::Internal("the request handler failed"), 500, response);
  }
  worker->in_flight.fetch_sub(1, std::memory_order_relaxed);
}

void ServerImpl::SerializeHead(Worker* worker, const Response& response, bool keep_alive,
                               bool http10, std::string& out) {
  int status = response.status;
  if (status < 100 || status > 999) {
    status = 500;
  }
  out.clear();
  out += "HTTP/1.1 ";
  AppendNumber(out, static_cast<uint64_t>(status));
  out += ' ';
  out += StatusReason(status);
  out += "\r\n";
  out += worker->DateLine();
  for (const auto& [name, value] : response.headers) {
    // Framing belongs to the server; a header that would split the response is dropped.
    if (EqualsLower(name, "content-length") || EqualsLower(name, "connection") ||
        EqualsLower(name, "transfer-encoding") || name.empty() || HasLineBreak(name) ||
        HasLineBreak(value)) {
      continue;
    }
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
  bool bodiless = status < 200 || status == 204 || status == 304;
  if (!bodiless) {
    out += "Content-Length: ";
    AppendNumber(out, response.body.size());
    out += "\r\n";
  }
  if (!keep_alive) {
    out += "Connection: close\r\n";
  } else if (http10) {
    out += "Connection: keep-alive\r\n";
  }
  out += "\r\n";
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
  SetCloseOnExec(socket.native_handle());
  socket.set_option(tcp::no_delay(true), ec);
  Request request;
  request.remote = FormatEndpoint(socket.remote_endpoint(ec));
  Response response;
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
        error = Status(Code::kTimeout, "REQUEST_TIMEOUT",
                       "the request did not arrive in time", "send the whole request promptly");
        error_status = 408;
      } else if (read_ec == bhttp::error::body_limit) {
        error = Status(Code::kPayloadTooLarge, "BODY_TOO_LARGE",
                       "the request body is larger than " +
                           std::to_string(options_.body_limit_bytes) + " bytes",
                       "send a smaller body");
        error_status = 413;
      } else if (read_ec == bhttp::error::header_limit) {
        error = Status::InvalidArgument(
            "HEADERS_TOO_LARGE",
            "the request headers are larger than " + std::to_string(options_.max_header_bytes) +
                " bytes",
            "send fewer or shorter headers");
        error_status = 431;
      } else if (read_ec.category() == bhttp::make_error_code(bhttp::error::bad_target).category() &&
                 read_ec != bhttp::error::end_of_stream &&
                 read_ec != bhttp::error::partial_message) {
        error = Status::InvalidArgument("BAD_REQUEST", "malformed HTTP request: " +
                                                           read_ec.message(),
                                        "send a valid HTTP/1.1 request");
        error_status = 400;
      }
      // Otherwise the peer went away or the server is shutting down: nothing to answer.
    };

    session.ExpiresAfter(options_.header_timeout);
    auto [header_ec, header_n] = co_await bhttp::async_read_header(socket, buffer, *parser, kAsTuple);
    (void)header_n;
    if (header_ec) {
      classify(header_ec);
    } else {
      auto& message = parser->get();
      bool bad_framing =
          message.count(bhttp::field::transfer_encoding) != 0 &&
          (!parser->chunked() || message.count(bhttp::field::content_length) != 0);
      if (bad_framing || message.version() < 10 || message.version() > 11) {
        error = Status::InvalidArgument(
            "BAD_REQUEST",
            bad_framing ? "Transfer-Encoding must be chunked and comes without Content-Length"
                        : "unsupported HTTP version",
            "send a valid HTTP/1.1 request");
      } else if (!parser->is_done()) {
        if (message.version() == 11 && EqualsLower(message[bhttp::field::expect], "100-continue")) {
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          session.ExpiresAfter(options_.read_timeout);
          auto [write_ec, written] =
              co_await asio::async_write(socket, asio::buffer(kContinue), kAsTuple);
          (void)written;
          if (write_ec) {
            break;
          }
        }
        session.ExpiresAfter(options_.read_timeout);
        auto [body_ec, body_n] = co_await bhttp::async_read(socket, buffer, *parser, kAsTuple);
        (void)body_n;
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
      } else {
        FillError(Status::InvalidArgument("BAD_REQUEST",
                                          "invalid request target \"" + request.target + "\"",
                                          "percent-encode the path and query"),
                  400, response);
        linger = true;
      }
      keep_alive = keep_alive && !response.close && !shutting_down_.load();
    }

    SerializeHead(worker, response, keep_alive, http10, head);
    std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(response.body)};
    if (head_only || response.status < 200 || response.status == 204 ||
        response.status == 304) {
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
        }
      });
    }
    sessions_cv_.wait_for(lock, std::chrono::seconds(1),
                          [this] { return sessions_.load() == 0; });
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
