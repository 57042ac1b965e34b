// Serving one request for an app, on the client connection's I/O thread: route, access,
// wake, then the exchange with the app over a pooled connection, with both bodies streamed.

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

#include <boost/asio/basic_waitable_timer.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/http/buffer_body.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/read.hpp>

#include "core/ids.h"
#include "core/log.h"
#include "gateway/internal.h"
#include "runtime/runtime.h"

// GCC 12 reports a false -Wmismatched-new-delete on coroutine frames (allocated and freed by
// Asio's awaitable_frame_base operators); see also http/connection.cc.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace kiln::gateway::internal {
namespace {

using tcp = asio::ip::tcp;
using namespace asio::experimental::awaitable_operators;
using RequestBodyParser = bhttp::request_parser<bhttp::buffer_body>;
using ResponseParser = bhttp::response_parser<bhttp::buffer_body>;

constexpr uint32_t kUpstreamHeaderLimit = 64u << 10;
constexpr std::string_view kAcmePath = "/.well-known/acme-challenge/";

// Holds a route's in_flight count while a request uses it, so a deploy can wait for the old
// instance to drain before stopping it.
class InFlight {
 public:
  InFlight() = default;
  ~InFlight() { Release(); }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
  void Hold(RoutePtr route) {
    Release();
    route_ = std::move(route);
    route_->in_flight.fetch_add(1, std::memory_order_relaxed);
  }

 private:
  void Release() {
    if (route_) {
      route_->in_flight.fetch_sub(1, std::memory_order_relaxed);
      route_.reset();
    }
  }
  RoutePtr route_;
};

// An upstream under the worker's deadline sweep for as long as the request uses it.
class Watched {
 public:
  Watched(http::Exchange& ex, std::unique_ptr<Upstream> upstream)
      : ex_(ex), upstream_(std::move(upstream)) {
    upstream_->session.socket = &upstream_->socket;
    upstream_->session.idle = false;
    ex_.Watch(upstream_->session);
  }
  ~Watched() {
    if (upstream_) {
      ex_.Unwatch(upstream_->session);
    }
  }
  Watched(const Watched&) = delete;
  Watched& operator=(const Watched&) = delete;
  Upstream* operator->() { return upstream_.get(); }
  Upstream& operator*() { return *upstream_; }
  // Back to the pool: out of the sweep, no deadline.
  std::unique_ptr<Upstream> Release() {
    ex_.Unwatch(upstream_->session);
    upstream_->session.tunnel = false;
    upstream_->session.NoDeadline();
    return std::move(upstream_);
  }

 private:
  http::Exchange& ex_;
  std::unique_ptr<Upstream> upstream_;
};

// Feeds a parser the bytes already buffered, without a trip to the socket. Body bytes land in
// the parser's buffer_body; answers how many. `ec` gets parse errors (not need_more or
// need_buffer).
template <typename Parser>
size_t ParseBuffered(Parser& parser, beast::flat_buffer& buffer, char* data, size_t size,
                     boost::system::error_code& ec) {
  parser.get().body().data = data;
  parser.get().body().size = size;
  while (buffer.size() > 0 && !parser.is_done() && parser.get().body().size > 0) {
    size_t used = parser.put(buffer.data(), ec);
    buffer.consume(used);
    if (ec == bhttp::error::need_more || ec == bhttp::error::need_buffer) {
      ec = {};
      break;
    }
    if (ec || used == 0) {
      break;
    }
  }
  return size - parser.get().body().size;
}

bool StatusHasBody(int status) { return status >= 200 && status != 204 && status != 304; }

struct Record {
  Record(Shared& s, http::Exchange& e) : shared(s), ex(e) {}
  Record(const Record&) = delete;
  Record& operator=(const Record&) = delete;
  Shared& shared;
  http::Exchange& ex;
  AppCounters* counters = nullptr;
  std::string_view app;
  std::string target;
  std::string method;
  std::string request_id;
  std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();
  int status = 0;
  uint64_t bytes_in = 0;
  uint64_t bytes_out = 0;

  ~Record() {
    double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
    if (counters != nullptr && status != 0) {
      counters->requests.fetch_add(1, std::memory_order_relaxed);
      int cls = std::clamp(status / 100, 1, 5) - 1;
      counters->by_class[cls].fetch_add(1, std::memory_order_relaxed);
      counters->bytes_in.fetch_add(bytes_in, std::memory_order_relaxed);
      counters->bytes_out.fetch_add(bytes_out, std::memory_order_relaxed);
      counters->latency->Observe(seconds);
      if (counters->metric_class[cls] != nullptr) {
        counters->metric_class[cls]->Add();
        counters->metric_in->Add(static_cast<double>(bytes_in));
        counters->metric_out->Add(static_cast<double>(bytes_out));
      }
    }
    const Deps& deps = shared.deps;
    if (deps.access_log && shared.sample.fetch_add(1, std::memory_order_relaxed) % 100 <
                               static_cast<uint64_t>(deps.access_log_sample_percent)) {
      log::Info("gateway request", {{"request_id", request_id},
                                    {"app", std::string(app)},
                                    {"method", method},
                                    {"target", WithoutToken(target)},
                                    {"status", static_cast<int64_t>(status)},
                                    {"ms", seconds * 1000},
                                    {"bytes_in", static_cast<int64_t>(bytes_in)},
                                    {"bytes_out", static_cast<int64_t>(bytes_out)},
                                    {"remote", std::string(ex.remote)}});
    }
  }
};

}  // namespace

asio::awaitable<bool> Serve(Shared& shared, http::Exchange& ex, HostMatch match) {
  const Deps& deps = shared.deps;
  auto& req = ex.parser.get();
  Record record(shared, ex);
  record.request_id = NewRequestId();
  if (deps.access_log) {
    record.target = std::string(req.target());
    record.method = std::string(req.method_string());
  }
  const std::string& request_id = record.request_id;
  bool body_pending = !ex.parser.is_done();
  bool keep_alive = req.keep_alive() && !ex.shutting_down.load(std::memory_order_relaxed);
  bool html = WantsHtml(req[bhttp::field::accept]);
  std::string_view date = ex.DateLine();

  // Answers an error of the gateway's own; the connection goes on only when no request body
  // is left unread.
  auto fail = [&](const Status& why, std::string_view extra = {}) {
    record.status = HttpStatus(why);
    bool again = keep_alive && !body_pending;
    return Answer(ex, ErrorResponse(why, html, request_id, again, date, extra), again);
  };

  // ACME HTTP-01: the CA fetches the key authorization from the domain being validated.
  if (deps.acme_challenge && req.method() == bhttp::verb::get &&
      req.target().starts_with(kAcmePath)) {
    std::string answer = deps.acme_challenge(req.target().substr(kAcmePath.size()));
    if (!answer.empty()) {
      record.status = 200;
      std::string out =
          "HTTP/1.1 200 OK\r\n" + std::string(date) +
          "Content-Type: text/plain\r\nContent-Length: " + std::to_string(answer.size()) +
          "\r\nX-Request-Id: " + request_id + "\r\n" + (keep_alive ? "" : "Connection: close\r\n") +
          "\r\n" + answer;
      co_return co_await Answer(ex, std::move(out), keep_alive && !body_pending);
    }
  }

  size_t fields = 0;
  for (auto it = req.begin(); it != req.end(); ++it) {
    ++fields;
  }
  if (fields > static_cast<size_t>(deps.max_header_fields)) {
    keep_alive = false;
    {
      const Status why_here = Status::InvalidArgument(
          "HEADERS_TOO_LARGE",
          "the request has " + std::to_string(fields) + " header fields; at most " +
              std::to_string(deps.max_header_fields) + " are accepted",
          "send fewer headers");
      co_return co_await fail(why_here);
    }
  }

  RoutePtr route;
  switch (match.kind) {
    case HostMatch::Kind::kApp:
      route = deps.find(match.label);
      break;
    case HostMatch::Kind::kSandbox:
      route = deps.find_sandbox ? deps.find_sandbox(match.label, match.port) : nullptr;
      break;
    case HostMatch::Kind::kCustom:
      route = deps.find_domain ? deps.find_domain(match.host) : nullptr;
      break;
    case HostMatch::Kind::kNone:
      break;
  }
  if (!route) {
    std::string status = match.kind == HostMatch::Kind::kApp && deps.app_status
                             ? deps.app_status(match.label)
                             : std::string();
    if (!status.empty()) {
      {
        const Status why_here = Status::Unavailable(
            "APP_UNAVAILABLE", "app " + match.label + " is " + status + ", not running",
            status == "created" ? "deploy it with `kiln deploy DIR --app " + match.label + "`"
                                : "start it with `kiln apps start " + match.label +
                                      "` and look at `kiln logs " + match.label + "`");
        co_return co_await fail(why_here);
      }
    }
    {
      const Status why_here = NotFound(match);
      co_return co_await fail(why_here);
    }
  }
  record.app = route->name;
  record.counters = &shared.CountersFor(*route);

  // Access policy.
  service::AccessDecision access;
  if (deps.authorize) {
    std::string query_token = QueryToken(req.target());
    service::AccessCheck check{route->access_policy,
                               route->workspace_id,
                               route->app_id,
                               req[bhttp::field::authorization],
                               req[bhttp::field::cookie],
                               query_token};
    access = deps.authorize(check);
    if (access.status == 302) {
      record.status = 302;
      std::string location = WithoutToken(req.target());
      std::string out =
          "HTTP/1.1 302 Found\r\n" + std::string(date) + "Location: " + location +
          "\r\nSet-Cookie: " + access.set_cookie +
          "\r\nCache-Control: no-store\r\nContent-Length: 0\r\nX-Request-Id: " + request_id +
          "\r\n" + (keep_alive && !body_pending ? "" : "Connection: close\r\n") + "\r\n";
      co_return co_await Answer(ex, std::move(out), keep_alive && !body_pending);
    }
    if (access.status != 200) {
      std::string extra;
      if (access.status == 401) {
        extra = "WWW-Authenticate: Bearer realm=\"kiln\"\r\n";
      }
      co_return co_await fail(access.error, extra);
    }
  }

  // A sleeping app: wake it (on a worker: thawing or starting may take a while), then use
  // its new route.
  if (route->sleeping) {
    if (!deps.wake) {
      {
        const Status why_here =
            Status::Unavailable("APP_UNAVAILABLE", route->name + " is asleep",
                                "wake it with POST /v1/apps/" + route->name + "/wake");
        co_return co_await fail(why_here);
      }
    }
    std::string app_id = route->app_id;
    // Built before the co_await: GCC 12 destroys some temporaries of a co_await expression
    // twice (the same reason every error below is a named Status first).
    std::function<Status()> wake = [&deps, app_id] { return deps.wake(app_id); };
    Status woke = co_await Offload(shared.wakers, ex.client.get_executor(), std::move(wake));
    RoutePtr awake = match.kind == HostMatch::Kind::kCustom ? deps.find_domain(match.host)
                                                            : deps.find(match.label);
    if (!woke.ok() || !awake || awake->sleeping) {
      {
        const Status why_here = Status::Unavailable(
            "APP_UNAVAILABLE",
            route->name + " could not be woken" + (woke.ok() ? "" : ": " + woke.message()),
            "look at `kiln logs " + route->name + "`, or start it with `kiln apps start " +
                route->name + "`");
        co_return co_await fail(why_here);
      }
    }
    route = std::move(awake);
  }
  int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::steady_clock::now().time_since_epoch())
                       .count();
  if (deps.touch && now_ms - route->touched_ms.load(std::memory_order_relaxed) >= 1000) {
    route->touched_ms.store(now_ms, std::memory_order_relaxed);
    if (!route->sandbox) {
      deps.touch(route->app_id);
    }
  }
  InFlight in_flight;
  in_flight.Hold(route);

  // The request head as the app sees it.
  // Only WebSocket is tunnelled; other upgrades (h2c) are dropped and the request is
  // answered in HTTP/1.1, as the hop-by-hop Upgrade header allows.
  bool upgrade = ex.parser.upgrade() && EqualsIgnoreCase(req[bhttp::field::upgrade], "websocket");
  bool chunked_request = ex.parser.chunked();
  std::string head = AppHead(req, {.access = access,
                                   .client_ip = ClientIp(ex.remote),
                                   .tls = ex.tls,
                                   .request_id = request_id,
                                   .upgrade = upgrade,
                                   .chunked = chunked_request,
                                   .content_length = ex.parser.content_length()});
  bool expects_continue = body_pending && req.version() == 11 &&
                          EqualsIgnoreCase(req[bhttp::field::expect], "100-continue");
  bool head_request = req.method() == bhttp::verb::head;
  bool http10 = req.version() == 10;

  // Connect (a pooled connection first) and send the request head; for a request without a
  // body, also read the response head. A pooled connection the app closed meanwhile fails
  // before any answer: such a request is then sent again on a fresh one, as nginx does.
  std::optional<Watched> up;
  std::optional<ResponseParser> rp;
  std::optional<RequestBodyParser> body;
  std::unique_ptr<char[]> piece;
  std::optional<Status> send_error;  // the request body failed on the client's side
  bool client_gone = false;

  // Reads the response head (interim answers, 100 and 103, are not passed on).
  auto read_head = [&]() -> asio::awaitable<boost::system::error_code> {
    boost::system::error_code read_ec;
    while (true) {
      rp.emplace();
      rp->header_limit(kUpstreamHeaderLimit);
      rp->body_limit(boost::none);
      rp->skip(head_request);
      (*up)->session.ExpiresAfter(deps.upstream_timeout);
      // No async_wait first: after a read that drained the socket, Asio's reactor does not
      // try the next read until epoll reports data, which costs no syscall; a wait would
      // re-arm the descriptor (epoll_ctl) on every request.
      auto [ec, n] = co_await bhttp::async_read_header((*up)->socket, (*up)->buffer, *rp, kAsTuple);
      (void)n;
      read_ec = ec;
      int status = read_ec ? 0 : rp->get().result_int();
      if (read_ec || status < 100 || status >= 200 || status == 101) {
        co_return read_ec;
      }
    }
  };
  auto upstream_error = [&](const boost::system::error_code& ec, bool sent) {
    if ((*up)->session.timed_out) {
      return UpstreamTimeout(*route, deps.upstream_timeout, "answer");
    }
    return UpstreamFailed(
        *route, sent ? "the app closed the connection without an answer (" + ec.message() + ")"
                     : "the app closed the connection while the request was "
                       "being sent");
  };

  bool have_head = false;
  for (int attempt = 0;; ++attempt) {
    std::string key = route->instance_id + ":" + std::to_string(route->port);
    std::unique_ptr<Upstream> conn = attempt == 0 ? PoolGet(key, body_pending) : nullptr;
    if (!conn) {
      auto connected = co_await Connect(shared, ex, *route);
      if (!connected.ok()) {
        // A deploy may have switched the app to a new instance meanwhile: try that one.
        RoutePtr now = match.kind == HostMatch::Kind::kApp ? deps.find(match.label) : nullptr;
        if (attempt == 0 && now && now != route && !now->sleeping) {
          route = std::move(now);
          in_flight.Hold(route);
          continue;
        }
        {
          const Status why_here = connected.status();
          co_return co_await fail(why_here);
        }
      }
      conn = std::move(*connected);
    }
    up.emplace(ex, std::move(conn));
    (*up)->session.ExpiresAfter(deps.upstream_timeout);
    auto [write_ec, written] =
        co_await asio::async_write((*up)->socket, asio::buffer(head), kAsTuple);
    (void)written;
    bool retryable = attempt == 0 && (*up)->reused && !(*up)->session.timed_out;
    if (write_ec) {
      up.reset();
      if (retryable) {
        continue;
      }
      {
        const Status why_here =
            UpstreamFailed(*route, "cannot send the request to the app: " + write_ec.message());
        co_return co_await fail(why_here);
      }
    }
    if (body_pending) {
      break;  // the response head is read while the body streams
    }
    boost::system::error_code read_ec = co_await read_head();
    if (!read_ec) {
      have_head = true;
      break;
    }
    retryable = retryable && !(*up)->session.timed_out;
    Status why = upstream_error(read_ec, true);
    up.reset();
    if (retryable) {
      continue;
    }
    co_return co_await fail(why);
  }

  // The request body, from the client to the app as it arrives (re-framed when chunked).
  // Runs beside `respond`, so an app that answers while it reads (an echo) is not stalled.
  auto send_body = [&]() -> asio::awaitable<void> {
    std::unique_ptr<char[]> data(new char[kPiece]);
    ex.buffer.reserve(kPiece);  // as for the app's connection: large reads
    std::string frame;
    while (!body->is_done()) {
      body->get().body().data = data.get();
      body->get().body().size = kPiece;
      ex.session.ExpiresAfter(ex.read_timeout);
      auto [read_ec, n] = co_await bhttp::async_read_some(ex.client, ex.buffer, *body, kAsTuple);
      (void)n;
      if (read_ec == bhttp::error::need_buffer) {
        read_ec = {};
      }
      size_t got = kPiece - body->get().body().size;
      if (read_ec) {
        if (ex.session.timed_out) {
          send_error =
              Status(Code::kTimeout, "REQUEST_TIMEOUT", "the request body did not arrive in time",
                     "send the whole body promptly");
        } else if (read_ec == asio::error::operation_aborted) {
          co_return;  // `respond` is done and stopped us
        } else if (read_ec == bhttp::error::end_of_stream ||
                   read_ec == bhttp::error::partial_message || read_ec == asio::error::eof ||
                   read_ec == asio::error::connection_reset) {
          client_gone = true;
        } else {
          send_error =
              Status::InvalidArgument("BAD_REQUEST", "malformed request body: " + read_ec.message(),
                                      "send a valid HTTP/1.1 request");
        }
        boost::system::error_code ignored;
        (*up)->socket.cancel(ignored);  // `respond` answers for us
        co_return;
      }
      if (got == 0) {
        continue;
      }
      record.bytes_in += got;
      std::array<asio::const_buffer, 3> out{};
      frame.clear();
      if (chunked_request) {
        ChunkHead(frame, got);
        out[0] = asio::buffer(frame);
        out[2] = asio::buffer("\r\n", 2);
      }
      out[1] = asio::buffer(data.get(), got);
      (*up)->session.ExpiresAfter(deps.upstream_timeout);
      auto [write_ec, written] = co_await asio::async_write((*up)->socket, out, kAsTuple);
      (void)written;
      if (write_ec) {
        co_return;  // the app stopped reading: `respond` sees its answer or its failure
      }
    }
    if (chunked_request) {
      (*up)->session.ExpiresAfter(deps.upstream_timeout);
      auto [end_ec, end_n] =
          co_await asio::async_write((*up)->socket, asio::buffer("0\r\n\r\n", 5), kAsTuple);
      (void)end_n;
      if (end_ec) {
        co_return;
      }
    }
    body_pending = false;
  };

  // The response, from the app to the client. True when the client connection can go on.
  auto respond = [&]() -> asio::awaitable<bool> {
    if (!have_head) {
      boost::system::error_code read_ec = co_await read_head();
      if (read_ec) {
        if (client_gone) {
          co_return false;
        }
        if (send_error) {
          body_pending = false;  // nothing more is read: answer and close
          keep_alive = false;
          co_return co_await fail(*send_error);
        }
        {
          const Status why_here = upstream_error(read_ec, true);
          co_return co_await fail(why_here);
        }
      }
    }
    auto& res = rp->get();
    int status = res.result_int();
    record.status = status;
    bool switching = status == 101 && upgrade;
    if (status == 101 && !upgrade) {
      {
        const Status why_here = UpstreamFailed(*route, "the app switched protocols unasked");
        co_return co_await fail(why_here);
      }
    }
    // Framing towards the client: the app's length, or chunks (re-framed piece by piece) when
    // the app sends chunked or until-close; HTTP/1.0 clients get until-close.
    bool response_body = !head_request && StatusHasBody(status);
    auto length = rp->content_length();
    bool chunk_out = response_body && !length && !http10;
    bool client_again =
        keep_alive && !body_pending && !switching && (length || !response_body || chunk_out);
    std::string out = ClientHead(res, {.status = status,
                                       .date = date,
                                       .request_id = request_id,
                                       .body = response_body,
                                       .head_request = head_request,
                                       .switching = switching,
                                       .length = length,
                                       .chunked = chunk_out,
                                       .keep_alive = client_again});

    if (switching) {
      // A WebSocket: from here on, bytes both ways.
      ex.session.tunnel = true;
      (*up)->session.tunnel = true;
      std::array<asio::const_buffer, 2> first{asio::buffer(out), (*up)->buffer.data()};
      ex.session.ExpiresAfter(ex.read_timeout);
      auto [ec, n] = co_await asio::async_write(ex.client, first, kAsTuple);
      (void)n;
      (*up)->buffer.consume((*up)->buffer.size());
      if (ec) {
        co_return false;
      }
      if (ex.buffer.size() > 0) {
        (*up)->session.ExpiresAfter(deps.upstream_timeout);
        auto [up_ec, up_n] = co_await asio::async_write((*up)->socket, ex.buffer.data(), kAsTuple);
        (void)up_n;
        ex.buffer.consume(ex.buffer.size());
        if (up_ec) {
          co_return false;
        }
      }
      auto idle = std::chrono::duration_cast<std::chrono::milliseconds>(deps.tunnel_idle);
      co_await (Pump(ex.client, ex.session, (*up)->socket, idle) ||
                Pump((*up)->socket, (*up)->session, ex.client, idle));
      co_return false;
    }

    // The body, piece by piece; the head goes out with the first piece already buffered.
    size_t piece_size = length ? static_cast<size_t>(std::min<uint64_t>(*length, kPiece)) : kPiece;
    piece_size = std::max<size_t>(piece_size, 1);
    if (response_body) {
      piece.reset(new char[piece_size]);
    }
    if (!length) {
      // SSE and other open-ended bodies: cut at shutdown rather than waited for.
      ex.session.tunnel = true;
      (*up)->session.tunnel = true;
    }
    bool head_sent = false;
    bool splice_ok = response_body && length && !chunk_out;
    std::string frame;
    while (true) {
      size_t got = 0;
      boost::system::error_code ec;
      if (response_body && !rp->is_done()) {
        got = ParseBuffered(*rp, (*up)->buffer, piece.get(), piece_size, ec);
        if (!ec && got == 0 && !rp->is_done() && head_sent) {
          if ((*up)->buffer.capacity() < kPiece) {
            (*up)->buffer.reserve(kPiece);  // large reads for a body that is copied
          }
          rp->get().body().data = piece.get();
          rp->get().body().size = piece_size;
          (*up)->session.ExpiresAfter(deps.upstream_timeout);
          auto [read_ec, n] =
              co_await bhttp::async_read_some((*up)->socket, (*up)->buffer, *rp, kAsTuple);
          (void)n;
          ec = read_ec == bhttp::error::need_buffer ? boost::system::error_code() : read_ec;
          got = piece_size - rp->get().body().size;
        }
      }
      bool done = !response_body || rp->is_done();
      std::array<asio::const_buffer, 4> bufs{};
      size_t count = 0;
      if (!head_sent) {
        bufs[count++] = asio::buffer(out);
      }
      frame.clear();
      if (got > 0) {
        if (chunk_out) {
          ChunkHead(frame, got);
          bufs[count++] = asio::buffer(frame);
        }
        bufs[count++] = asio::buffer(piece.get(), got);
        if (chunk_out) {
          bool last = done && !ec;
          bufs[count++] = asio::buffer(last ? "\r\n0\r\n\r\n" : "\r\n", last ? 7 : 2);
        }
      } else if (chunk_out && done && !ec) {
        bufs[count++] = asio::buffer("0\r\n\r\n", 5);
      }
      // The rest of a long body of known length goes from socket to socket by splice(2),
      // once nothing of it is left in the buffer; what is to be written now (the head, the
      // bytes read with it) leaves in front of it.
      if (splice_ok && !done && !ec && (*up)->buffer.size() == 0 &&
          *length - record.bytes_out - got >= kSpliceMin) {
        SpliceResult moved = co_await SpliceBody(
            (*up)->socket, (*up)->session, deps.upstream_timeout, ex.client, ex.session,
            ex.read_timeout, *length - record.bytes_out - got, std::span(bufs.data(), count));
        if (!moved.unsupported) {
          size_t head_size = head_sent ? 0 : out.size();
          record.bytes_out +=
              (moved.prefix_sent > head_size ? moved.prefix_sent - head_size : 0) + moved.moved;
          if (moved.ec) {
            if (moved.client_failed) {
              co_return false;  // the client went away; the app's connection is dropped too
            }
            if (!(*up)->session.timed_out && !send_error && !client_gone) {
              log::Warn("app closed the connection mid-response", {{"app", route->name},
                                                                   {"request_id", request_id},
                                                                   {"error", moved.ec.message()}});
            }
            co_return false;
          }
          break;
        }
        splice_ok = false;  // copy from here on
      }
      record.bytes_out += got;
      if (count > 0) {
        ex.session.ExpiresAfter(ex.read_timeout);
        auto [write_ec, n] = co_await asio::async_write(ex.client, bufs, kAsTuple);
        (void)n;
        head_sent = true;
        if (write_ec) {
          co_return false;  // the client went away; the app's connection is dropped too
        }
      }
      if (ec) {
        // The app failed mid-response: the client sees a short body and a closed connection.
        if (!(*up)->session.timed_out && !send_error && !client_gone) {
          log::Warn("app closed the connection mid-response",
                    {{"app", route->name}, {"request_id", request_id}, {"error", ec.message()}});
        }
        co_return false;
      }
      if (done) {
        break;
      }
    }
    if (body_pending) {
      // The app answered without reading the whole body: stop reading it, and close.
      boost::system::error_code ignored;
      ex.client.cancel(ignored);
      co_return false;
    }
    if (rp->keep_alive() && deps.idle_upstreams > 0 && (*up)->buffer.size() == 0) {
      if ((*up)->buffer.capacity() > kHeadRead) {
        // Back to a small first read, so that the next long body is spliced again.
        (*up)->buffer = beast::flat_buffer();
        (*up)->buffer.reserve(kHeadRead);
      }
      PoolPut(up->Release(), deps.idle_upstreams);
    }
    co_return client_again;
  };

  if (!body_pending) {
    co_return co_await respond();
  }
  if (expects_continue) {
    static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
    ex.session.ExpiresAfter(ex.read_timeout);
    auto [ec, n] = co_await asio::async_write(ex.client, asio::buffer(kContinue), kAsTuple);
    (void)n;
    if (ec) {
      co_return false;
    }
  }
  body.emplace(std::move(ex.parser));
  body->body_limit(boost::none);
  co_return co_await (send_body() && respond());
}

}  // namespace kiln::gateway::internal
