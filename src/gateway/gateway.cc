// The first-cut gateway: the I/O thread only matches the host and looks the app up; the
// rest (waking, connecting inside the instance's namespace, the upstream exchange) runs on a
// worker thread and answers through the deferred response's stream.

#include "gateway/gateway.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include "core/json.h"
#include "core/worker_pool.h"
#include "runtime/runtime.h"

namespace kiln::gateway {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);
constexpr uint32_t kUpstreamHeaderLimit = 64u << 10;

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

std::string ToLower(std::string_view text) {
  std::string out(text);
  std::transform(out.begin(), out.end(), out.begin(), Lower);
  return out;
}

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(),
                                            [](char x, char y) { return Lower(x) == Lower(y); });
}

bool StartsWithIgnoreCase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && EqualsIgnoreCase(text.substr(0, prefix.size()), prefix);
}

bool ContainsIgnoreCase(std::string_view text, std::string_view needle) {
  return std::search(text.begin(), text.end(), needle.begin(), needle.end(),
                     [](char x, char y) { return Lower(x) == Lower(y); }) != text.end();
}

// Headers that describe one connection, not the message (RFC 9110 §7.6.1): never forwarded.
bool IsHopByHop(std::string_view name) {
  return EqualsIgnoreCase(name, "connection") || EqualsIgnoreCase(name, "keep-alive") ||
         StartsWithIgnoreCase(name, "proxy-") || EqualsIgnoreCase(name, "te") ||
         EqualsIgnoreCase(name, "trailer") || EqualsIgnoreCase(name, "transfer-encoding") ||
         EqualsIgnoreCase(name, "upgrade");
}

// True when the Connection header `connection` lists `name` (which makes it hop-by-hop too).
bool ListedIn(std::string_view connection, std::string_view name) {
  while (!connection.empty()) {
    size_t comma = connection.find(',');
    std::string_view token = connection.substr(0, comma);
    while (!token.empty() && (token.front() == ' ' || token.front() == '\t')) {
      token.remove_prefix(1);
    }
    while (!token.empty() && (token.back() == ' ' || token.back() == '\t')) {
      token.remove_suffix(1);
    }
    if (EqualsIgnoreCase(token, name)) {
      return true;
    }
    if (comma == std::string_view::npos) {
      break;
    }
    connection.remove_prefix(comma + 1);
  }
  return false;
}

// "203.0.113.7:5123" -> "203.0.113.7"; "[::1]:5123" -> "::1".
std::string_view ClientIp(std::string_view remote) {
  if (!remote.empty() && remote.front() == '[') {
    size_t close = remote.find(']');
    return close == std::string_view::npos ? remote : remote.substr(1, close - 1);
  }
  size_t colon = remote.rfind(':');
  return colon == std::string_view::npos ? remote : remote.substr(0, colon);
}

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// The HTTP status of an error the gateway answers itself.
int HttpStatus(const Status& why) {
  switch (why.code()) {
    case Code::kNotFound:
      return 404;
    case Code::kUnavailable:
      if (why.error_code() == "UPSTREAM_TIMEOUT") {
        return 504;
      }
      if (why.error_code() == "UPSTREAM_FAILED") {
        return 502;
      }
      return 503;
    default:
      return 500;
  }
}

// A browser asks for HTML first; API clients, curl and agents get the API's JSON envelope.
bool WantsHtml(const http::Request& request) {
  std::string_view accept = request.Header("accept");
  return ContainsIgnoreCase(accept, "text/html") && !ContainsIgnoreCase(accept, "application/json");
}

http::Response ErrorResponse(const Status& why, bool html, const std::string& request_id) {
  http::Response response;
  response.status = HttpStatus(why);
  if (html) {
    std::string title =
        std::to_string(response.status) + " " + std::string(http::StatusReason(response.status));
    response.Set("content-type", "text/html; charset=utf-8");
    response.body = "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>" +
                    HtmlEscape(title) +
                    "</title>\n<style>body{font-family:system-ui,sans-serif;max-width:40em;"
                    "margin:4em auto;padding:0 1em;color:#222}code{color:#666}</style></head>\n"
                    "<body><h1>" +
                    HtmlEscape(title) + "</h1>\n<p>" + HtmlEscape(why.message()) + ".</p>\n";
    if (!why.hint().empty()) {
      response.body += "<p>" + HtmlEscape(why.hint()) + ".</p>\n";
    }
    response.body += "<p><code>" + HtmlEscape(why.error_code()) + " &middot; " +
                     HtmlEscape(request_id) + "</code></p></body></html>\n";
  } else {
    json::object error{{"code", why.error_code()}, {"message", ValidUtf8(why.message())}};
    if (!why.hint().empty()) {
      error["hint"] = ValidUtf8(why.hint());
    }
    response.Set("content-type", "application/json");
    response.body = ToJson(json::object{{"error", std::move(error)}});
  }
  response.Set("cache-control", "no-store");
  response.Set("x-request-id", request_id);
  return response;
}

Status AppNotFound(std::string_view label) {
  return Status::NotFound("APP_NOT_FOUND", "no app named " + std::string(label) + " is running",
                          "check the name in the address, or deploy the app with `kiln deploy`");
}

Status UpstreamFailed(const service::AppRoute& route, std::string message) {
  return Status::Unavailable(
      "UPSTREAM_FAILED", std::move(message),
      "check that the app listens on 127.0.0.1:" + std::to_string(route.port) +
          " (the PORT variable) and look at its logs");
}

Status UpstreamTimeout(const service::AppRoute& route, std::chrono::milliseconds timeout,
                       std::string_view what) {
  return Status::Unavailable(
      "UPSTREAM_TIMEOUT",
      "the app did not " + std::string(what) + " within " + std::to_string(timeout.count()) + " ms",
      "the app on port " + std::to_string(route.port) +
          " may be overloaded or stuck; look at its logs");
}

// Holds an app route's in_flight count up for as long as a request uses the route, so a
// deploy can wait for the old instance to drain before stopping it.
class InFlight {
 public:
  explicit InFlight(std::shared_ptr<const service::AppRoute> route) { Hold(std::move(route)); }
  ~InFlight() { Release(); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;

  void Switch(std::shared_ptr<const service::AppRoute> route) {
    Release();
    Hold(std::move(route));
  }

 private:
  void Hold(std::shared_ptr<const service::AppRoute> route) {
    route_ = std::move(route);
    route_->in_flight.fetch_add(1, std::memory_order_relaxed);
  }
  void Release() {
    if (route_) {
      route_->in_flight.fetch_sub(1, std::memory_order_relaxed);
      route_.reset();
    }
  }
  std::shared_ptr<const service::AppRoute> route_;
};

// One exchange with an upstream over a connected socket; owned by Impl::Exchange, and it
// outlives the io_context that runs the coroutine.
struct Upstream {
  int fd = -1;  // handed to the coroutine's stream, which then owns it
  bhttp::request<bhttp::string_body> request;
  bool head = false;
  uint64_t body_limit = 0;
  std::chrono::milliseconds timeout{0};
  boost::system::error_code write_ec;
  boost::system::error_code read_ec;
  std::optional<bhttp::response<bhttp::string_body>> response;
  bool switched_protocols = false;  // a 101 although Upgrade was not forwarded
  bool done = false;
};

asio::awaitable<void> RunUpstream(Upstream* x) {
  beast::tcp_stream stream(co_await asio::this_coro::executor);
  boost::system::error_code ec;
  stream.socket().assign(tcp::v4(), x->fd, ec);
  if (ec) {
    x->read_ec = ec;
    x->done = true;
    co_return;
  }
  x->fd = -1;
  // One deadline for the whole exchange, write and read.
  stream.expires_after(x->timeout);
  auto [write_ec, written] = co_await bhttp::async_write(stream, x->request, kAsTuple);
  (void)written;
  // An app may answer early (413) and close without reading the whole body; its answer is
  // still worth reading, so a failed write falls through to the read.
  x->write_ec = write_ec;
  beast::flat_buffer buffer;
  while (true) {
    bhttp::response_parser<bhttp::string_body> parser;
    parser.header_limit(kUpstreamHeaderLimit);
    parser.body_limit(x->body_limit);
    parser.skip(x->head);
    auto [read_ec, read] = co_await bhttp::async_read(stream, buffer, parser, kAsTuple);
    (void)read;
    if (read_ec) {
      x->read_ec = read_ec;
      break;
    }
    int status = static_cast<int>(parser.get().result_int());
    // Interim responses (100 Continue, 103 Early Hints) are not passed on: the client gets
    // the final one.
    if (status == 101) {
      x->switched_protocols = true;
      break;
    }
    if (status >= 100 && status < 200) {
      continue;
    }
    x->response = parser.release();
    break;
  }
  stream.socket().shutdown(tcp::socket::shutdown_both, ec);
  x->done = true;
}

// The request as the app sees it.
bhttp::request<bhttp::string_body> UpstreamRequest(const http::Request& request,
                                                   const std::string& request_id) {
  bhttp::request<bhttp::string_body> out;
  out.version(11);
  out.method_string(request.method);
  out.target(request.target);
  std::string_view connection = request.Header("connection");
  std::string forwarded_for;
  bool framed = false;  // the client sent a body framing header, so the app expects a length
  for (const auto& [name, value] : request.headers) {
    if (name == "content-length" || name == "transfer-encoding") {
      framed = true;
    }
    if (IsHopByHop(name) || ListedIn(connection, name) || StartsWithIgnoreCase(name, "x-kiln-") ||
        name == "content-length" || name == "x-forwarded-host" || name == "x-forwarded-proto" ||
        name == "expect") {
      // Expect: the body was read whole already, so there is nothing to wait for.
      continue;
    }
    if (name == "x-forwarded-for") {
      forwarded_for += forwarded_for.empty() ? value : ", " + value;
      continue;
    }
    out.insert(name, value);
  }
  std::string_view client_ip = ClientIp(request.remote);
  if (!client_ip.empty()) {
    if (!forwarded_for.empty()) {
      forwarded_for += ", ";
    }
    forwarded_for += client_ip;
  }
  if (!forwarded_for.empty()) {
    out.set("x-forwarded-for", forwarded_for);
  }
  out.set("x-forwarded-host", request.Header("host"));
  out.set("x-forwarded-proto", "http");
  out.set("x-kiln-request-id", request_id);
  out.set(bhttp::field::connection, "close");
  out.body() = request.body;
  if (framed || !request.body.empty()) {
    out.content_length(request.body.size());
  }
  return out;
}

// The app's response as the client gets it.
http::Response ToClient(bhttp::response<bhttp::string_body>& upstream, bool head,
                        const std::string& request_id) {
  http::Response out;
  out.status = static_cast<int>(upstream.result_int());
  std::string_view connection;
  if (auto it = upstream.find(bhttp::field::connection); it != upstream.end()) {
    connection = it->value();
  }
  for (const auto& field : upstream) {
    std::string_view name = field.name_string();
    // The server frames the response itself (Content-Length, Connection).
    if (IsHopByHop(name) || ListedIn(connection, name) ||
        EqualsIgnoreCase(name, "content-length") || EqualsIgnoreCase(name, "x-request-id")) {
      continue;
    }
    out.headers.emplace_back(ToLower(name), std::string(field.value()));
  }
  if (!head) {
    out.body = std::move(upstream.body());
  }
  out.Set("x-request-id", request_id);
  return out;
}

}  // namespace

struct Gateway::Impl {
  explicit Impl(Deps d)
      : deps(std::move(d)), pool(static_cast<size_t>(std::max(deps.threads, 1))) {}

  // Runs on a pool thread: everything after the lookup, answered through `stream`.
  void Proxy(const std::string& label, const http::Request& request,
             std::shared_ptr<const service::AppRoute> route, const std::string& request_id,
             const std::shared_ptr<http::Stream>& stream);
  // Wakes, connects (retrying once on a switched route) and exchanges; the in_flight count of
  // the route in use is held meanwhile. Errors are answered as HttpStatus says.
  Result<http::Response> Forward(const std::string& label, const http::Request& request,
                                 std::shared_ptr<const service::AppRoute> route,
                                 const std::string& request_id);
  // The route made ready to take a request: itself, or the awake route that replaces it once
  // woken.
  Result<std::shared_ptr<const service::AppRoute>> Awake(
      const std::string& label, std::shared_ptr<const service::AppRoute> route);
  Result<http::Response> Exchange(int fd, const service::AppRoute& route,
                                  const http::Request& request, const std::string& request_id);

  Deps deps;
  // Last, so that it is destroyed first: its destructor waits for exchanges that use deps.
  WorkerPool pool;
};

void Gateway::Impl::Proxy(const std::string& label, const http::Request& request,
                          std::shared_ptr<const service::AppRoute> route,
                          const std::string& request_id,
                          const std::shared_ptr<http::Stream>& stream) {
  if (stream->Closed()) {
    return;  // the client is gone already
  }
  // Forward releases the route's in_flight count before the client is answered, so a deploy
  // that waits for the old instance to drain does not wait on a slow client.
  Result<http::Response> answer = Forward(label, request, std::move(route), request_id);
  if (!answer.ok()) {
    log::Warn("gateway request failed", {{"app", label},
                                         {"request_id", request_id},
                                         {"status", HttpStatus(answer.status())},
                                         {"error", answer.status().ToString()}});
    stream->Finish(ErrorResponse(answer.status(), WantsHtml(request), request_id));
    return;
  }
  stream->Finish(std::move(answer).value());
}

Result<std::shared_ptr<const service::AppRoute>> Gateway::Impl::Awake(
    const std::string& label, std::shared_ptr<const service::AppRoute> route) {
  if (!route->sleeping) {
    return route;
  }
  Status woke = deps.wake ? deps.wake(route->app_id) : Status::Ok();
  if (!woke.ok()) {
    return Status::Unavailable("APP_UNAVAILABLE",
                               "cannot wake app " + label + ": " + woke.message(),
                               "try again in a moment; if it persists, look at the server's log");
  }
  route = deps.find(label);
  if (!route) {
    return AppNotFound(label);
  }
  return route;
}

Result<http::Response> Gateway::Impl::Forward(const std::string& label,
                                              const http::Request& request,
                                              std::shared_ptr<const service::AppRoute> route,
                                              const std::string& request_id) {
  KILN_ASSIGN_OR_RETURN(route, Awake(label, std::move(route)));
  if (deps.touch) {
    deps.touch(route->app_id);
  }
  InFlight in_flight(route);
  Result<int> fd = runtime::ConnectInNetns(route->netns_path, route->port, deps.connect_timeout);
  if (!fd.ok()) {
    // A deploy may have switched the app to a new instance while this request was on its
    // way, and stopped the old one: the new route gets the request instead of an error.
    std::shared_ptr<const service::AppRoute> now = deps.find(label);
    if (now && now != route) {
      KILN_ASSIGN_OR_RETURN(route, Awake(label, std::move(now)));
      in_flight.Switch(route);
      fd = runtime::ConnectInNetns(route->netns_path, route->port, deps.connect_timeout);
    }
  }
  if (!fd.ok()) {
    const Status& why = fd.status();
    if (why.error_code() == "CONNECT_TIMEOUT") {
      return UpstreamTimeout(*route, deps.connect_timeout, "accept the connection");
    }
    if (why.error_code() == "CONNECT_REFUSED") {
      return UpstreamFailed(
          *route, "the app is not answering on its port (" + std::to_string(route->port) + ")");
    }
    return UpstreamFailed(*route, "cannot reach the app's instance: " + why.message());
  }
  return Exchange(*fd, *route, request, request_id);
}

Result<http::Response> Gateway::Impl::Exchange(int fd, const service::AppRoute& route,
                                               const http::Request& request,
                                               const std::string& request_id) {
  Upstream x;
  x.fd = fd;
  x.request = UpstreamRequest(request, request_id);
  x.head = request.method == "HEAD";
  x.body_limit = static_cast<uint64_t>(std::max<int64_t>(deps.response_limit_bytes, 0));
  x.timeout = deps.response_timeout;
  {
    // A private io_context per exchange, run on this worker thread: nothing is shared with
    // other exchanges, and the stream's deadline bounds the run.
    asio::io_context ioc{1};
    asio::co_spawn(ioc, RunUpstream(&x), asio::detached);
    ioc.run_for(deps.response_timeout + std::chrono::seconds(1));
  }
  if (x.fd >= 0) {
    ::close(x.fd);  // the coroutine never took it
  }
  if (x.response) {
    return ToClient(*x.response, x.head, request_id);
  }
  const auto& ec = x.read_ec;
  if (x.switched_protocols) {
    return UpstreamFailed(route,
                          "the app switched protocols (101), which the gateway does not support "
                          "yet");
  }
  if (!x.done || ec == beast::error::timeout) {
    return UpstreamTimeout(route, deps.response_timeout, "answer");
  }
  if (ec == bhttp::error::body_limit) {
    return UpstreamFailed(route, "the app's response is larger than " +
                                     std::to_string(deps.response_limit_bytes) + " bytes");
  }
  if (x.write_ec) {
    return UpstreamFailed(
        route, "the app closed the connection before taking the request: " + x.write_ec.message());
  }
  if (ec == bhttp::error::end_of_stream || ec == bhttp::error::partial_message ||
      ec == asio::error::eof || ec == asio::error::connection_reset) {
    return UpstreamFailed(route, "the app closed the connection before a complete response");
  }
  return UpstreamFailed(route, "the app sent a malformed response: " + ec.message());
}

Gateway::Gateway(Deps deps) : impl_(std::make_unique<Impl>(std::move(deps))) {}

Gateway::~Gateway() = default;

bool Gateway::Handle(const http::Request& request, http::Response& response) {
  std::string label = AppLabel(request.Header("host"), impl_->deps.base_domain);
  if (label.empty()) {
    return false;
  }
  std::string request_id = NewRequestId();
  std::shared_ptr<const service::AppRoute> route = impl_->deps.find(label);
  if (!route) {
    response = ErrorResponse(AppNotFound(label), WantsHtml(request), request_id);
    return true;
  }
  std::shared_ptr<http::Stream> stream = response.Defer();
  bool queued = impl_->pool.Submit(
      [impl = impl_.get(), label = std::move(label), request, route = std::move(route), request_id,
       stream]() mutable { impl->Proxy(label, request, std::move(route), request_id, stream); });
  if (!queued) {
    Status stopping = Status::Unavailable("SHUTTING_DOWN", "the server is shutting down",
                                          "try again in a moment");
    stream->Finish(ErrorResponse(stopping, WantsHtml(request), request_id));
  }
  return true;
}

std::string Gateway::AppLabel(std::string_view host, std::string_view base_domain) {
  if (host.empty() || host.front() == '[') {
    return {};  // an IPv6 literal
  }
  size_t colon = host.find(':');
  if (colon != std::string_view::npos) {
    std::string_view port = host.substr(colon + 1);
    if (port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](char c) { return c >= '0' && c <= '9'; })) {
      return {};
    }
    host = host.substr(0, colon);
  }
  if (!host.empty() && host.back() == '.') {
    host.remove_suffix(1);
  }
  if (!base_domain.empty() && base_domain.back() == '.') {
    base_domain.remove_suffix(1);
  }
  if (base_domain.empty() || host.size() < base_domain.size() + 2) {
    return {};
  }
  std::string lower = ToLower(host);
  size_t dot = lower.size() - base_domain.size() - 1;
  if (lower[dot] != '.' ||
      !EqualsIgnoreCase(std::string_view(lower).substr(dot + 1), base_domain)) {
    return {};
  }
  lower.resize(dot);
  if (lower.size() > 63 || !std::all_of(lower.begin(), lower.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
      })) {
    return {};
  }
  // An IPv4 literal under a numeric base ("10.0.0.1" with base "0.0.1") is an address, not
  // an app.
  if (std::all_of(host.begin(), host.end(),
                  [](char c) { return (c >= '0' && c <= '9') || c == '.'; })) {
    return {};
  }
  return lower;
}

}  // namespace kiln::gateway
