#pragma once
// Module-private: the gateway's pieces shared by its .cc files. gateway.cc: Gateway, the
// takeover's Claims, per-app traffic; proxy.cc: serving one request; pool.cc: kept-alive
// connections to apps; pages.cc: error answers; headers.cc: header rewriting; heads.cc: the
// heads written to the app and the client; splice.cc: bodies moved without a copy.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/optional/optional.hpp>

#include "core/worker_pool.h"
#include "gateway/gateway.h"
#include "http/takeover.h"

namespace kiln::gateway::internal {

namespace asio = boost::asio;
namespace beast = boost::beast;
constexpr auto kAsTuple = asio::as_tuple(asio::use_awaitable);

// ---- Per-app traffic (gateway.cc) ----
struct AppCounters {
  std::atomic<uint64_t> requests{0};
  std::array<std::atomic<uint64_t>, 5> by_class{};
  std::atomic<uint64_t> bytes_in{0};
  std::atomic<uint64_t> bytes_out{0};
  HistogramSeries* latency = nullptr;  // in Deps::metrics, or owned below
  std::unique_ptr<HistogramSeries> own_latency;
  CounterSeries* metric_class[5] = {};
  CounterSeries* metric_in = nullptr;
  CounterSeries* metric_out = nullptr;
};

// ---- An open connection to an app (pool.cc) ----
struct Upstream {
  explicit Upstream(const http::Executor& executor) : socket(executor) {}
  http::Socket socket;
  beast::flat_buffer buffer;  // read past the last response (nothing, when kept alive)
  http::Session session;      // its deadline, under the worker's sweep while in use
  std::string key;            // instance id and port
  std::chrono::steady_clock::time_point idle_since;
  bool reused = false;  // came from the pool: it may have been closed by the app meanwhile
};

// Kept-alive connections of this I/O thread (thread-local: a connection lives on one
// io_context, and each I/O thread runs one). Get answers one or null (`must_be_open`: checked
// with a peek even when it was used a moment ago); Put keeps one (up to `limit` per key, for
// at most kIdleTime).
std::unique_ptr<Upstream> PoolGet(const std::string& key, bool must_be_open);
void PoolPut(std::unique_ptr<Upstream> upstream, int limit);

// ---- Error answers (pages.cc) ----
// The HTTP status for an error the gateway answers itself.
int HttpStatus(const Status& why);
// A whole response: status line, headers (with X-Request-Id, Date, Connection: close unless
// keep_alive) and a JSON error envelope, or an HTML page when `html`.
std::string ErrorResponse(const Status& why, bool html, std::string_view request_id,
                          bool keep_alive, std::string_view date_line,
                          std::string_view extra_headers = {});
bool WantsHtml(std::string_view accept);
Status NotFound(const HostMatch& match);
Status UpstreamFailed(const service::AppRoute& route, std::string message);
Status UpstreamTimeout(const service::AppRoute& route, std::chrono::milliseconds timeout,
                       std::string_view what);

// ---- The heads the proxy writes (heads.cc) ----
namespace bhttp = boost::beast::http;
void AppendNumber(std::string& out, uint64_t n);
struct AppHeadInput {
  const service::AccessDecision& access;  // who the caller is, for the X-Kiln-* headers
  std::string_view client_ip;
  bool tls = false;
  std::string_view request_id;
  bool upgrade = false;                      // a WebSocket upgrade, passed on
  bool chunked = false;                      // the request body is chunked
  boost::optional<uint64_t> content_length;  // as the parser answers it
};
// The request head as the app sees it: hop-by-hop headers, client-sent X-Kiln-* and
// X-Forwarded-* headers and Kiln's cookies removed; X-Forwarded-*, the request id and, for an
// authenticated caller, X-Kiln-User-Id, -Workspace and -Auth added.
std::string AppHead(const bhttp::request_header<>& req, const AppHeadInput& in);
struct ClientHeadInput {
  int status = 200;
  std::string_view date;  // a whole "Date: ...\r\n" line, used when the app sent none
  std::string_view request_id;
  bool body = true;  // the response has a body (not HEAD, 1xx, 204 or 304)
  bool head_request = false;
  bool switching = false;  // 101 to a WebSocket
  boost::optional<uint64_t> length;
  bool chunked = false;     // re-framed as chunks towards the client
  bool keep_alive = false;  // the client connection goes on
};
// The response head as the client sees it, framed as the proxy sends the body.
std::string ClientHead(const bhttp::response_header<>& res, const ClientHeadInput& in);

// ---- Header rewriting (headers.cc) ----
bool EqualsIgnoreCase(std::string_view a, std::string_view b);
bool StartsWithIgnoreCase(std::string_view text, std::string_view prefix);
// Headers that describe one connection, not the message (RFC 9110 §7.6.1).
bool IsHopByHop(std::string_view name);
// True when the comma-separated list `list` holds `token` (any case).
bool ListHas(std::string_view list, std::string_view token);
// The Cookie header without Kiln's own cookies (service::kKilnCookiePrefix); empty when
// nothing is left.
std::string StripKilnCookies(std::string_view cookie);
// "203.0.113.7:5123" -> "203.0.113.7"; "[::1]:5123" -> "::1".
std::string_view ClientIp(std::string_view remote);
// The target without the kiln_token query parameter (share URLs redirect there).
std::string WithoutToken(std::string_view target);
// The kiln_token query parameter's value (percent-decoded), or empty.
std::string QueryToken(std::string_view target);

// ---- The gateway's state (gateway.cc), shared with proxy.cc ----
struct Shared {
  explicit Shared(Deps d);
  Deps deps;
  WorkerPool wakers;
  mutable std::mutex traffic_mu;
  std::map<std::string, std::unique_ptr<AppCounters>, std::less<>> traffic;
  std::atomic<uint64_t> sample{0};

  // The counters of the route's app or sandbox, made (and registered in the metrics) on its
  // first request. Cached per thread: the common path takes no lock.
  AppCounters& CountersFor(const service::AppRoute& route);
};

// ---- Socket work (io.cc) ----
constexpr size_t kPiece = 64 << 10;    // the most body bytes read or written at once
constexpr size_t kHeadRead = 4 << 10;  // the first read of a response
// Writes a whole answer of the gateway's own; when not keep_alive, lingers before the close.
// True when the connection may go on.
asio::awaitable<bool> Answer(http::Exchange& ex, std::string response, bool keep_alive);
// Runs `work` on `pool` and resumes on `executor`'s thread with its result.
asio::awaitable<Status> Offload(WorkerPool& pool, const http::Executor& executor,
                                std::function<Status()> work);
// Opens a connection to the route's app inside its network namespace (connect_timeout).
asio::awaitable<Result<std::unique_ptr<Upstream>>> Connect(const Shared& shared, http::Exchange& ex,
                                                           const service::AppRoute& route);
// Copies bytes from `from` to `to` until either side ends or `from` is idle past `idle`.
asio::awaitable<void> Pump(http::Socket& from, http::Session& from_session, http::Socket& to,
                           std::chrono::milliseconds idle);
// ---- Body forwarding without copies (splice.cc) ----
// Bodies shorter than this are copied: two splices and a pipe cost more than the copy.
constexpr uint64_t kSpliceMin = 16 << 10;
struct SpliceResult {
  uint64_t moved = 0;        // body bytes that reached `to`
  uint64_t prefix_sent = 0;  // prefix bytes that reached `to`
  boost::system::error_code ec;
  bool client_failed = false;  // `ec` came from `to`'s side
  bool unsupported = false;    // nothing was sent, prefix included: send it and copy instead
};
// Sends `prefix` (at most 32 KiB: a response head and the body bytes read with it) and then
// exactly `length` bytes from `from` to `to` through a pipe (splice(2)), the prefix leaving
// with the body's first bytes; waits at most the timeout on a side that is not ready.
asio::awaitable<SpliceResult> SpliceBody(http::Socket& from, http::Session& from_session,
                                         std::chrono::milliseconds from_timeout, http::Socket& to,
                                         http::Session& to_session,
                                         std::chrono::milliseconds to_timeout, uint64_t length,
                                         std::span<const asio::const_buffer> prefix = {});
// Appends "<hex size>\r\n" for a chunk of `n` bytes.
void ChunkHead(std::string& out, size_t n);

// Serves one request (proxy.cc).
asio::awaitable<bool> Serve(Shared& shared, http::Exchange& exchange, HostMatch match);

}  // namespace kiln::gateway::internal
