#pragma once
// http: the listener, the router and a small client (DESIGN.md §2). Beast and Asio stay
// inside this module's .cc files; this header is plain C++.
//
// Server threading: one io_context per I/O thread; a connection lives on one thread for its
// whole life, and its handler calls run on that thread, one request at a time. Handlers may
// block briefly (a database read); long work belongs on other threads.

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

  // First value of a header (name lower-case), or empty.
  std::string_view Header(std::string_view name) const;
  std::optional<std::string> Query(std::string_view name) const;
};

struct Response {
  int status = 200;
  Headers headers;
  std::string body;
  bool close = false;  // close the connection after this response

  void Set(std::string name, std::string value);
};

using Handler = std::function<void(const Request&, Response&)>;
// Builds the body of an error the server itself detects (bad request line, 413, 431, 408),
// so they wear the same envelope as the API's own errors.
using ErrorResponder = std::function<void(const Status&, Response&)>;

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
};

class Server {
 public:
  // Binds and starts the I/O threads. Errors: the address is in use or invalid.
  static Result<std::unique_ptr<Server>> Start(const ServerOptions& options, Handler handler,
                                               ErrorResponder on_error);
  virtual ~Server() = default;
  virtual uint16_t port() const = 0;
  // Stops accepting, closes idle connections, lets requests in flight finish (their
  // responses carry Connection: close), then stops the threads; connections still busy
  // after the grace period are cut. Returns once the threads have exited. Idempotent.
  // Must not be called from a handler (it waits for the handler's own thread).
  virtual void Shutdown() = 0;
  // Number of requests being handled right now (for /metrics and shutdown logs).
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
};
struct ClientResponse {
  int status = 0;
  Headers headers;
  std::string body;
  std::string_view Header(std::string_view name) const;
};
Result<ClientResponse> Fetch(const ClientRequest& request);

// Percent-decoding for paths ('+' stays '+'); InvalidArgument "INVALID_ENCODING" for a bad
// escape. The server decodes query strings itself, with '+' as a space.
Result<std::string> PercentDecode(std::string_view text);
std::string PercentEncode(std::string_view text);
std::string_view StatusReason(int status);

}  // namespace kiln::http
