// The blocking client: each Fetch runs one coroutine on a private io_context on the
// caller's thread, so nothing is shared between calls.

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
#include <boost/url/parse.hpp>

#include "http/http.h"
#include "http/internal.h"

namespace kiln::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);
constexpr uint64_t kResponseBodyLimit = 64ull << 20;
constexpr uint32_t kResponseHeaderLimit = 64u << 10;

// What the coroutine needs; owned by Fetch, which outlives the io_context run.
struct Exchange {
  std::string host;    // for the resolver: "127.0.0.1", "::1", "example.com"
  std::string port;    // "8080"
  std::string origin;  // "http://127.0.0.1:8080", for messages
  std::string url;     // as given, for messages
  bhttp::request<bhttp::string_body> request;
  std::chrono::milliseconds timeout{0};
  std::function<bool(std::string_view)> on_body;
  std::optional<Result<ClientResponse>> result;
};

Status Timeout(const Exchange& x) {
  return Status::Unavailable(
      "TIMEOUT",
      "no response from " + x.url + " within " + std::to_string(x.timeout.count()) + " ms",
      "check that the server is healthy, or allow more time");
}

Status Failed(const Exchange& x, std::string_view what, const boost::system::error_code& ec) {
  if (ec == beast::error::timeout) {
    return Timeout(x);
  }
  return Status::Unavailable("HTTP_ERROR", std::string(what) + " " + x.url + ": " + ec.message(),
                             "check the address and that the server is healthy");
}

// A response whose success body goes to on_body piece by piece (Beast's buffer_body: the
// parser fills our buffer and stops with need_buffer when it is full).
asio::awaitable<void> ReadStreamed(Exchange* x, beast::tcp_stream& stream,
                                   beast::flat_buffer& buffer,
                                   const boost::system::error_code& write_ec) {
  bhttp::response_parser<bhttp::buffer_body> parser;
  parser.header_limit(kResponseHeaderLimit);
  parser.body_limit(kResponseBodyLimit);
  auto [head_ec, head_n] = co_await bhttp::async_read_header(stream, buffer, parser, kAsTuple);
  (void)head_n;
  if (head_ec) {
    x->result = Failed(*x, write_ec ? "cannot send the request to" : "bad or no response from",
                       write_ec ? write_ec : head_ec);
    co_return;
  }
  ClientResponse response;
  response.status = static_cast<int>(parser.get().result_int());
  for (const auto& field : parser.get()) {
    std::string name(field.name_string());
    std::transform(name.begin(), name.end(), name.begin(), internal::ToLower);
    response.headers.emplace_back(std::move(name), std::string(field.value()));
  }
  bool deliver = response.status >= 200 && response.status < 300;
  char chunk[16384];
  while (!parser.is_done()) {
    parser.get().body().data = chunk;
    parser.get().body().size = sizeof(chunk);
    auto [ec, n] = co_await bhttp::async_read_some(stream, buffer, parser, kAsTuple);
    (void)n;
    if (ec && ec != bhttp::error::need_buffer) {
      x->result = Failed(*x, "the stream from", ec);
      co_return;
    }
    std::string_view piece(chunk, sizeof(chunk) - parser.get().body().size);
    if (deliver) {
      if (!piece.empty() && !x->on_body(piece)) {
        break;
      }
    } else {
      response.body.append(piece);
    }
  }
  boost::system::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
  x->result = std::move(response);
}

asio::awaitable<void> RunExchange(Exchange* x) {
  auto executor = co_await asio::this_coro::executor;
  // An address needs no resolving; asking the resolver anyway would start its private thread
  // on every call (each Fetch has its own io_context).
  std::vector<tcp::endpoint> endpoints;
  boost::system::error_code literal_ec;
  asio::ip::address literal = asio::ip::make_address(x->host, literal_ec);
  if (!literal_ec) {
    endpoints.emplace_back(literal, static_cast<uint16_t>(std::stoi(x->port)));
  } else {
    tcp::resolver resolver(executor);
    auto [resolve_ec, results] = co_await resolver.async_resolve(x->host, x->port, kAsTuple);
    if (resolve_ec) {
      x->result = Status::Unavailable("RESOLVE_FAILED",
                                      "cannot resolve " + x->host + ": " + resolve_ec.message(),
                                      "check the host name in the URL");
      co_return;
    }
    for (const auto& entry : results) {
      endpoints.push_back(entry.endpoint());
    }
  }

  beast::tcp_stream stream(executor);
  // One deadline for the whole exchange: connect, write and read all count against it.
  stream.expires_after(x->timeout);
  boost::system::error_code connect_ec = asio::error::host_not_found;
  for (const tcp::endpoint& endpoint : endpoints) {
    boost::system::error_code ec;
    stream.socket().close(ec);
    // Opened by hand for SOCK_CLOEXEC, which Asio's open() does not set.
    int fd = ::socket(endpoint.protocol().family(), SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      connect_ec = boost::system::error_code(errno, boost::system::system_category());
      continue;
    }
    stream.socket().assign(endpoint.protocol(), fd, ec);
    if (ec) {
      ::close(fd);
      connect_ec = ec;
      continue;
    }
    auto [ec2] = co_await stream.async_connect(endpoint, kAsTuple);
    connect_ec = ec2;
    if (!connect_ec || connect_ec == beast::error::timeout) {
      break;
    }
  }
  if (connect_ec) {
    if (connect_ec == beast::error::timeout) {
      x->result = Timeout(*x);
    } else {
      x->result = Status::Unavailable("CONNECT_FAILED",
                                      "cannot reach " + x->origin + ": " + connect_ec.message(),
                                      "is `kiln server` running? start it with `make run`");
    }
    co_return;
  }
  boost::system::error_code ignored;
  stream.socket().set_option(tcp::no_delay(true), ignored);

  auto [write_ec, written] = co_await bhttp::async_write(stream, x->request, kAsTuple);
  (void)written;
  // A server may answer early (413) and close without reading the rest; its answer is still
  // worth reading, so a failed write falls through to the read.
  beast::flat_buffer buffer;
  if (x->on_body) {
    co_await ReadStreamed(x, stream, buffer, write_ec);
    co_return;
  }
  bhttp::response_parser<bhttp::string_body> parser;
  parser.header_limit(kResponseHeaderLimit);
  parser.body_limit(kResponseBodyLimit);
  if (x->request.method() == bhttp::verb::head) {
    parser.skip(true);
  }
  auto [read_ec, read] = co_await bhttp::async_read(stream, buffer, parser, kAsTuple);
  (void)read;
  if (read_ec) {
    if (write_ec && read_ec != beast::error::timeout) {
      x->result = Failed(*x, "cannot send the request to", write_ec);
    } else if (read_ec == bhttp::error::body_limit) {
      x->result = Status::Unavailable("RESPONSE_TOO_LARGE",
                                      "the response from " + x->url + " is larger than 64 MiB",
                                      "ask for less data, for example with a page limit");
    } else {
      x->result = Failed(*x, "bad or no response from", read_ec);
    }
    co_return;
  }
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);

  auto& message = parser.get();
  ClientResponse response;
  response.status = static_cast<int>(message.result_int());
  for (const auto& field : message) {
    std::string name(field.name_string());
    std::transform(name.begin(), name.end(), name.begin(), internal::ToLower);
    response.headers.emplace_back(std::move(name), std::string(field.value()));
  }
  response.body = std::move(message.body());
  x->result = std::move(response);
}

}  // namespace

Result<ClientResponse> Fetch(const ClientRequest& request) {
  auto unsupported = [&](std::string why) {
    return Status::InvalidArgument("UNSUPPORTED_URL",
                                   "cannot fetch \"" + request.url + "\": " + std::move(why),
                                   "use a URL like http://127.0.0.1:8080/v1/me");
  };
  auto parsed = boost::urls::parse_uri(request.url);
  if (!parsed) {
    return unsupported("not a valid URL");
  }
  const boost::urls::url_view& url = *parsed;
  if (url.scheme_id() != boost::urls::scheme::http) {
    return unsupported("only http:// URLs are supported");
  }
  if (!url.has_authority() || url.encoded_host().empty()) {
    return unsupported("the URL has no host");
  }

  Exchange x;
  x.host = url.host_address();
  x.port = url.has_port() ? std::string(url.port()) : "80";
  x.origin = "http://" + std::string(url.encoded_host_and_port());
  x.url = request.url;
  x.timeout = request.timeout;
  x.on_body = request.on_body;

  std::string target(url.encoded_target());
  if (target.empty() || target.front() != '/') {
    target.insert(0, "/");
  }
  auto& req = x.request;
  req.version(11);
  req.method_string(request.method);
  req.target(target);
  req.set(bhttp::field::host, url.encoded_host_and_port());
  req.set(bhttp::field::user_agent, "kiln-cli");
  req.set(bhttp::field::connection, "close");
  for (const auto& [name, value] : request.headers) {
    req.set(name, value);
  }
  req.body() = request.body;
  req.prepare_payload();
  if (!request.body.empty() || request.method == "POST" || request.method == "PUT" ||
      request.method == "PATCH") {
    req.content_length(request.body.size());
  }

  asio::io_context ioc{1};
  asio::co_spawn(ioc, RunExchange(&x), asio::detached);
  // The stream's deadline covers connect, write and read; this bound also covers name
  // resolution, which the stream's timer does not see.
  ioc.run_for(request.timeout + std::chrono::milliseconds(200));
  if (!x.result) {
    ioc.stop();
    return Timeout(x);
  }
  return std::move(*x.result);
}

}  // namespace kiln::http
