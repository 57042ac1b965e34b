// ClientConnection: one kept-alive connection on a plain blocking socket. Its one user (the
// stdio MCP bridge) makes a round trip per message, where Asio's run loop, timers and
// coroutine frames cost more than the call: here a round trip is a send and a recv or two.
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>

#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/url/parse.hpp>

#include "http/http.h"
#include "http/internal.h"

namespace kiln::http {
namespace {

namespace bhttp = boost::beast::http;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kResponseBodyLimit = 64ull << 20;
constexpr uint32_t kResponseHeaderLimit = 64u << 10;

Status Unreachable(const std::string& origin, const std::string& why) {
  return Status::Unavailable("CONNECT_FAILED", "cannot reach " + origin + ": " + why,
                             "is `kiln server` running? start it with `make run`");
}

// Connects to host:port before `deadline`; -1 with `error` set on failure.
int Connect(const std::string& host, const std::string& port, Clock::time_point deadline,
            std::string* error) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* list = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &list); rc != 0) {
    *error = ::gai_strerror(rc);
    return -1;
  }
  int fd = -1;
  for (addrinfo* a = list; a != nullptr && fd < 0; a = a->ai_next) {
    fd = ::socket(a->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
      *error = std::strerror(errno);
      continue;
    }
    int rc = ::connect(fd, a->ai_addr, a->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
      rc = ::poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0)));
      int err = rc == 0 ? ETIMEDOUT : 0;
      socklen_t len = sizeof(err);
      if (rc > 0) {
        ::getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len);
      }
      rc = err == 0 ? 0 : -1;
      errno = err;
    }
    if (rc != 0) {
      *error = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(list);
  if (fd >= 0) {
    int flags = 0;  // blocking from now on; SO_RCVTIMEO and SO_SNDTIMEO bound each call
    ::ioctl(fd, FIONBIO, &flags);
    int one = 1;
    ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  }
  return fd;
}

void SetTimeouts(int fd, std::chrono::milliseconds timeout) {
  timeval tv{};
  tv.tv_sec = timeout.count() / 1000;
  tv.tv_usec = (timeout.count() % 1000) * 1000;
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

}  // namespace

struct ClientConnection::State {
  int fd = -1;
  std::string origin;                    // what fd is connected to
  std::chrono::milliseconds timeout{0};  // what its SO_RCVTIMEO/SO_SNDTIMEO say

  void Close() {
    if (fd >= 0) {
      ::close(fd);
      fd = -1;
    }
  }
  ~State() { Close(); }
};

ClientConnection::ClientConnection() : state_(std::make_unique<State>()) {}
ClientConnection::~ClientConnection() = default;

Result<ClientResponse> ClientConnection::Fetch(const ClientRequest& request) {
  auto parsed = boost::urls::parse_uri(request.url);
  if (!parsed || parsed->scheme_id() != boost::urls::scheme::http ||
      parsed->encoded_host().empty()) {
    return Status::InvalidArgument("UNSUPPORTED_URL",
                                   "cannot fetch \"" + request.url + "\": not an http:// URL",
                                   "use a URL like http://127.0.0.1:8080/v1/me");
  }
  const boost::urls::url_view& url = *parsed;
  std::string host = url.host_address();
  std::string port = url.has_port() ? std::string(url.port()) : "80";
  std::string origin = "http://" + std::string(url.encoded_host_and_port());
  std::string target(url.encoded_target());
  if (target.empty() || target.front() != '/') {
    target.insert(0, "/");
  }

  std::string wire = request.method + " " + target +
                     " HTTP/1.1\r\nHost: " + std::string(url.encoded_host_and_port()) +
                     "\r\nUser-Agent: kiln-cli\r\n";
  for (const auto& [name, value] : request.headers) {
    if (name.find_first_of("\r\n:") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos) {
      return Status::InvalidArgument("INVALID_HEADER", "header " + name + " holds a line break");
    }
    wire += name + ": " + value + "\r\n";
  }
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT" ||
      request.method == "PATCH") {
    wire += "Content-Length: " + std::to_string(request.body.size()) + "\r\n";
  }
  wire += "\r\n";
  wire += request.body;

  State& s = *state_;
  if (s.fd >= 0 && s.origin != origin) {
    s.Close();
  }
  auto deadline = Clock::now() + request.timeout;
  auto timed_out = [&] {
    return Status::Unavailable("TIMEOUT",
                               "no response from " + request.url + " within " +
                                   std::to_string(request.timeout.count()) + " ms",
                               "check that the server is healthy, or allow more time");
  };
  for (int attempt = 0;; ++attempt) {
    bool reused = s.fd >= 0;
    if (!reused) {
      std::string error;
      s.fd = Connect(host, port, deadline, &error);
      if (s.fd < 0) {
        return Unreachable(origin, error);
      }
      s.origin = origin;
      s.timeout = std::chrono::milliseconds(0);
    }
    if (s.timeout != request.timeout) {
      SetTimeouts(s.fd, request.timeout);
      s.timeout = request.timeout;
    }
    // A reused connection the server closed meanwhile fails before any byte of an answer:
    // the request never reached it, and goes again on a new connection (once).
    auto stale = [&](bool got_some) { return reused && !got_some && attempt == 0; };

    bool sent = true;
    for (size_t off = 0; off < wire.size();) {
      ssize_t n = ::send(s.fd, wire.data() + off, wire.size() - off, MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        sent = false;
        break;
      }
      off += static_cast<size_t>(n);
    }
    // A server may answer early (413) and close without reading the rest: read anyway.

    bhttp::response_parser<bhttp::string_body> parser;
    parser.header_limit(kResponseHeaderLimit);
    parser.eager(true);
    if (!request.on_body) {
      parser.body_limit(kResponseBodyLimit);
    } else {
      parser.body_limit(boost::none);  // an event stream: handed over as it comes
    }
    std::string in;
    bool got_some = false;
    bool stopped = false;
    Status failure = Status::Ok();
    char chunk[16384];
    bool watch = request.interrupt_fd >= 0 && request.on_interrupt;
    auto spin_until = Clock::now() + request.spin;
    while (!parser.is_done()) {
      if (watch || request.spin.count() > 0) {
        pollfd fds[2] = {{s.fd, POLLIN, 0}, {request.interrupt_fd, POLLIN, 0}};
        nfds_t n = watch ? 2 : 1;
        int rc = 0;
        while (rc == 0 && Clock::now() < spin_until) {
          rc = ::poll(fds, n, 0);
        }
        if (rc == 0) {
          auto left =
              std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
          rc = ::poll(fds, n, static_cast<int>(std::max<int64_t>(left.count(), 0)));
        }
        if (rc == 0) {
          failure = timed_out();
          break;
        }
        if (rc > 0 && watch && fds[1].revents != 0) {
          watch = false;
          request.on_interrupt();
        }
      }
      ssize_t n = ::recv(s.fd, chunk, sizeof(chunk), 0);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        failure = timed_out();
        break;
      }
      if (n == 0 && parser.is_header_done() && !parser.chunked() &&
          !parser.content_length().has_value()) {
        boost::beast::error_code ec;
        parser.put_eof(ec);  // a body that ends with the connection
        break;
      }
      if (n <= 0) {
        if (stale(got_some)) {
          break;
        }
        failure = Status::Unavailable(
            "HTTP_ERROR",
            std::string(sent ? "bad or no response from " : "cannot send the request to ") +
                request.url + ": " + (n == 0 ? "connection closed" : std::strerror(errno)),
            "check the address and that the server is healthy");
        break;
      }
      got_some = true;
      in.append(chunk, static_cast<size_t>(n));
      boost::beast::error_code ec;
      size_t used = parser.put(boost::asio::buffer(in), ec);
      in.erase(0, used);
      if (ec && ec != bhttp::error::need_more) {
        failure = Status::Unavailable("HTTP_ERROR",
                                      "bad response from " + request.url + ": " + ec.message());
        break;
      }
      int status = parser.is_header_done() ? static_cast<int>(parser.get().result_int()) : 0;
      if (request.on_body && status >= 200 && status < 300) {
        std::string& body = parser.get().body();
        if (!body.empty()) {
          std::string piece;
          piece.swap(body);
          if (!request.on_body(piece)) {
            stopped = true;
            break;
          }
        }
      }
    }
    if (!failure.ok() || !parser.is_done() || stopped || !parser.keep_alive()) {
      s.Close();
    }
    if (!parser.is_header_done() && failure.ok() && stale(got_some)) {
      continue;
    }
    if (!failure.ok()) {
      return failure;
    }
    ClientResponse response;
    response.status = static_cast<int>(parser.get().result_int());
    for (const auto& field : parser.get()) {
      std::string name(field.name_string());
      std::transform(name.begin(), name.end(), name.begin(), internal::ToLower);
      response.headers.emplace_back(std::move(name), std::string(field.value()));
    }
    if (!request.on_body || response.status < 200 || response.status >= 300) {
      response.body = std::move(parser.get().body());
    }
    return response;
  }
}

}  // namespace kiln::http
