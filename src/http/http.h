#pragma once
// http: the listener, the router and a small client (DESIGN.md §2). Beast and Asio stay
// inside this module's .cc files; this header is plain C++.
//
// Server threading: one io_context per I/O thread; a connection lives on one thread for its
// whole life, and its handler calls run on that thread, one request at a time. Handlers may
// block briefly (a database read); long work belongs on other threads: a handler that calls
// Response::Defer() returns at once and answers later, from any thread, through the Stream.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "core/core.h"

namespace kiln::http {

using Headers = std::vector<std::pair<std::string, std::string>>;  // names lower-case

struct Request {
  std::string method;                                      // "GET"
  std::string target;                                      // as sent: "/v1/keys?limit=2"
  std::string path;                                        // percent-decoded path: "/v1/keys"
  std::vector<std::pair<std::string, std::string>> query;  // decoded, in order
  Headers headers;
  std::string body;
  std::string remote;  // peer address "127.0.0.1:53312"
  bool tls = false;    // arrived over HTTPS (a connection handed over by Server::Adopt)

  // First value of a header (name lower-case), or empty.
  std::string_view Header(std::string_view name) const;
  std::optional<std::string> Query(std::string_view name) const;
};

struct Response;

// A response completed after the handler returns, from any thread: the result of deferred work
// (Finish) or a stream of chunks such as Server-Sent Events (Begin, Write..., End).
//
// Thread-safety: every method may be called from any thread; calls from several threads are
// serialized, in the order they take the stream's lock.
// Ownership: the producer keeps the shared_ptr for as long as it produces. The stream stays
// valid after the connection or the server is gone (calls then do nothing and Write returns
// false). Letting the last reference go without Finish sends a 500 built by the server's
// ErrorResponder; without End after Begin, it ends the body as End would.
// Exactly one of Finish or Begin takes effect; later calls of either are ignored.
class Stream {
 public:
  virtual ~Stream() = default;
  // Completes a deferred response as a whole: Content-Length framing, keep-alive as for a
  // handler's own response. Ignored after Finish or Begin, or once the client is gone.
  virtual void Finish(Response response) = 0;
  // Starts a streamed response: the status line and headers go out now, the body follows as
  // Write calls (Transfer-Encoding: chunked for HTTP/1.1; for HTTP/1.0 no framing, and the
  // connection closes at End). For HEAD and for 1xx, 204 and 304 the response is complete
  // with its headers: Write then returns false. The handler's Content-Length,
  // Transfer-Encoding and Connection headers are dropped, as for any response. False when the
  // stream was already answered or closed.
  virtual bool Begin(int status, Headers headers) = 0;
  // Queues `data` (copied once) as the next piece of the body; an empty `data` sends nothing.
  // Backpressure: blocks the caller while more than 1 MiB is queued and not yet written to
  // the socket, so a slow reader slows the producer; the write deadline
  // (ServerOptions::read_timeout per socket write) bounds the wait. A call from the
  // connection's own I/O thread (inside the handler) never blocks.
  // Returns false once the producer should stop: not begun, ended, the client is gone, a
  // write failed or timed out, or the server is shutting down.
  virtual bool Write(std::string_view data) = 0;
  // Ends a streamed response; the connection then goes on with keep-alive if allowed.
  virtual void End() = 0;
  // True once Write would return false (and once Finish has been called). A producer that
  // writes rarely, such as a quiet log follower, can poll it to notice a client gone: the
  // server watches the socket for the peer closing while it waits for the producer.
  virtual bool Closed() const = 0;
};

namespace internal {
class Connection;
struct ResponseAccess;
// Ties a Response to the connection that passed it to the handler. A copy is not tied to
// anything, so only that one Response can Defer, and a copy kept past the request cannot
// reach a connection that is gone.
class ConnectionLink {
 public:
  ConnectionLink() = default;
  ConnectionLink(const ConnectionLink& /*other*/) noexcept {}
  ConnectionLink& operator=(const ConnectionLink& /*other*/) noexcept { return *this; }

 private:
  friend struct ResponseAccess;
  Connection* connection_ = nullptr;
};
}  // namespace internal

struct Response {
  int status = 200;
  Headers headers;
  std::string body;
  bool close = false;  // close the connection after this response

  void Set(std::string name, std::string value);

  // Called by a handler that answers later: the server then ignores the rest of this
  // Response (headers set so far included: repeat them in Finish or Begin) and waits for the
  // stream, without holding the I/O thread; the connection has no read deadline meanwhile.
  // Calling it again returns the same stream. On a Response that no server passed to a
  // handler (a copy, or one built in a test), it returns a stream that is already closed.
  std::shared_ptr<Stream> Defer();

 private:
  friend struct internal::ResponseAccess;
  internal::ConnectionLink link_;
  std::shared_ptr<Stream> stream_;  // set by Defer
};

using Handler = std::function<void(const Request&, Response&)>;
// Builds the body of an error the server itself detects (bad request line, 413, 431, 408),
// so they wear the same envelope as the API's own errors.
using ErrorResponder = std::function<void(const Status&, Response&)>;

// Serves requests the server hands over right after their head is parsed, with the
// connection itself: the gateway's streaming proxy (http/takeover.h; Asio types).
class Takeover;

struct ServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: the kernel picks; see Server::port()
  int threads = 1;
  int64_t body_limit_bytes = 10 << 20;
  int max_header_bytes = 16 << 10;
  std::chrono::milliseconds header_timeout{10'000};
  std::chrono::milliseconds read_timeout{30'000};
  std::chrono::milliseconds idle_timeout{60'000};
  std::chrono::milliseconds shutdown_grace{10'000};
  std::shared_ptr<Takeover> takeover;  // optional
};

class Server {
 public:
  // Binds and starts the I/O threads. Errors: the address is in use or invalid.
  static Result<std::unique_ptr<Server>> Start(const ServerOptions& options, Handler handler,
                                               ErrorResponder on_error);
  virtual ~Server() = default;
  virtual uint16_t port() const = 0;
  // Serves connected stream socket `fd` (owned from now on) as if it had been accepted: the
  // TLS listener passes the plain side of each connection it decrypts. `remote` is the
  // client's address; `tls` marks its requests (Request::tls). Closes `fd` after Shutdown.
  virtual void Adopt(int fd, std::string remote, bool tls) = 0;
  // Stops accepting, closes idle connections, lets requests in flight finish (their
  // responses carry Connection: close), then stops the threads; connections still busy
  // after the grace period are cut. Returns once the threads have exited. Idempotent.
  // Must not be called from a handler (it waits for the handler's own thread).
  // Deferred responses not yet finished count as requests in flight and get the grace
  // period; streams already begun are closed at once (Write returns false, the body is ended
  // after the chunk being written), so a follow stream does not hold up shutdown.
  virtual void Shutdown() = 0;
  // Number of requests being handled right now, deferred and streamed responses included
  // until they complete (for /metrics and shutdown logs).
  virtual int64_t InFlight() const = 0;
};

// Matches "/v1/keys/{id}" style patterns. Built once at start, then read-only.
class Router {
 public:
  struct Match {
    int route = -1;  // index given to Add, -1 when no pattern matched the path
    std::vector<std::pair<std::string, std::string>> params;
    bool method_mismatch = false;  // the path matched but not with this method
    std::string allow;             // methods allowed on that path, for 405
  };
  void Add(std::string method, std::string pattern, int route);
  Match Find(std::string_view method, std::string_view path) const;

 private:
  struct Entry {
    std::string method;
    std::vector<std::string> segments;  // "{x}" = parameter
    int route;
  };
  std::vector<Entry> entries_;
};

// A blocking HTTP/1.1 client for the CLI and tests: one request per connection, plain
// http:// only. The whole exchange must finish within `timeout`.
struct ClientRequest {
  std::string method = "GET";
  std::string url;  // "http://127.0.0.1:8080/v1/me"
  Headers headers;
  std::string body;
  std::chrono::milliseconds timeout{30'000};
  // When set and the response is a success (2xx), the body is handed over in pieces as it
  // arrives (an event stream) instead of being collected; returning false stops reading.
  // Error responses are still collected whole into ClientResponse::body.
  std::function<bool(std::string_view)> on_body;
  // ClientConnection only: while it waits for the server, `interrupt_fd` turning readable
  // (or hung up) calls `on_interrupt` once, and the wait goes on (the stdio MCP bridge hands
  // the reading of its stdin to another thread only when the next message comes meanwhile).
  int interrupt_fd = -1;
  std::function<void()> on_interrupt;
  // ClientConnection only: after sending, look for the answer without sleeping for this long
  // before blocking. A quick answer then costs no wake-up of this thread (tens of µs on a
  // VM) at the price of that much CPU at most; 0: block at once.
  std::chrono::microseconds spin{0};
};
struct ClientResponse {
  int status = 0;
  Headers headers;
  std::string body;
  std::string_view Header(std::string_view name) const;
};
Result<ClientResponse> Fetch(const ClientRequest& request);

// The same client over one kept-alive connection, for a caller that sends many requests to
// one server (the stdio MCP bridge): the socket is reused while the server allows it, and a
// request that finds it closed by the server (idle timeout) is sent once more on a new one.
// One request at a time: not thread-safe; use one per thread.
class ClientConnection {
 public:
  ClientConnection();
  ~ClientConnection();
  ClientConnection(const ClientConnection&) = delete;
  ClientConnection& operator=(const ClientConnection&) = delete;
  Result<ClientResponse> Fetch(const ClientRequest& request);

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// Percent-decoding for paths ('+' stays '+'); InvalidArgument "INVALID_ENCODING" for a bad
// escape. The server decodes query strings itself, with '+' as a space.
Result<std::string> PercentDecode(std::string_view text);
std::string PercentEncode(std::string_view text);
std::string_view StatusReason(int status);

}  // namespace kiln::http
