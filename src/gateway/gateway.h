#pragma once
// gateway: requests for apps and sandbox ports, routed by Host (DESIGN.md §6).
//
//   {app}.{base_domain}             the app's current instance
//   {port}-{sandbox}.{base_domain}  that port of a running sandbox
//   a custom domain of an app       the app (Service::FindDomainRoute)
//   anything else                   not the gateway's: the API and dashboard answer it
//
// The gateway is an http::Takeover: the server parses the request head, and when the Host is
// the gateway's, the gateway serves the rest of the exchange on the connection's own I/O
// thread, with no thread hop and no buffering of bodies: the request body streams to the app
// as it arrives and the response streams back (Content-Length or chunked, SSE included);
// an Upgrade (WebSocket) becomes a two-way tunnel. Connections to apps are opened inside the
// instance's network namespace and kept alive in a pool per I/O thread and instance, so a
// request usually costs four socket operations and no connect.
//
// Per request: the access policy (Deps::authorize), the headers rewritten (hop-by-hop and
// client X-Kiln-* removed; X-Forwarded-*, X-Kiln-Request-Id and the caller's identity
// added), a sleeping app woken (Deps::wake, on a worker thread) and the request then
// answered, timeouts per phase, and errors as 4xx/5xx pages carrying X-Request-Id (JSON, or
// HTML for browsers). Per app: request counts by status class, a latency histogram and bytes
// in /metrics, and TrafficOf() for the API and the stats history.
//
// Threading: every method may be called from any thread. Lifetime: shut the HTTP server
// down before destroying the Gateway (its requests run on the server's threads).

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "core/core.h"
#include "core/metrics.h"
#include "http/http.h"
#include "service/service.h"

namespace kiln::gateway {

using RoutePtr = std::shared_ptr<const service::AppRoute>;

struct Deps {
  // Routes: an app by name (the host's first label), a sandbox port, a custom domain. Called
  // on I/O threads: must not block for long (a map read).
  std::function<RoutePtr(std::string_view name)> find;
  std::function<RoutePtr(std::string_view sandbox_id, uint16_t port)> find_sandbox;
  std::function<RoutePtr(std::string_view host)> find_domain;
  // The status of an app that has no route (stopped, crashed, created), or empty when there
  // is no such app; only asked on that error path.
  std::function<std::string(std::string_view name)> app_status;
  // The access policy (Service::Authorize); null lets every request through.
  std::function<service::AccessDecision(const service::AccessCheck&)> authorize;
  // The ACME HTTP-01 key authorization for a token, or empty (Service::AcmeChallenge).
  std::function<std::string(std::string_view token)> acme_challenge;
  // Wakes a sleeping app (Service::WakeApp); may block, runs on a worker thread.
  std::function<Status(const std::string& app_id)> wake;
  // Marks activity of an app (Service::TouchApp); called at most once a second per route.
  std::function<void(const std::string& app_id)> touch;

  std::string base_domain = "localhost";
  int threads = 32;  // worker threads for waking apps
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds upstream_timeout{60'000};  // response head, and each body read
  std::chrono::seconds tunnel_idle{3600};              // WebSocket with no traffic
  int idle_upstreams = 64;      // kept-alive app connections per instance and I/O thread
  int max_header_fields = 100;  // more in a request: 431
  Metrics* metrics = nullptr;   // per-app series; null: none
  bool access_log = false;
  int access_log_sample_percent = 100;
};

class Gateway {
 public:
  explicit Gateway(Deps deps);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // For http::ServerOptions::takeover.
  std::shared_ptr<http::Takeover> takeover() const;
  // What the gateway served for app or sandbox `id`; nullopt before its first request.
  std::optional<service::Traffic> TrafficOf(const std::string& id) const;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

// Where a Host header points, relative to `base_domain`.
struct HostMatch {
  enum class Kind { kNone, kApp, kSandbox, kCustom };
  Kind kind = Kind::kNone;
  std::string label;  // kApp: the app name; kSandbox: the sandbox id
  uint16_t port = 0;  // kSandbox: the port
  std::string host;   // lower-case, without port and trailing dot (kCustom: the domain)
};
// kApp for `{name}.{base}` (name: a DNS label), kSandbox for `{port}-sbx_{id}.{base}`,
// kCustom for another well-formed host name that is not `base` itself, an IP address or
// `localhost`, kNone for the rest (the API's). Any case, any port, one trailing dot.
HostMatch MatchHost(std::string_view host_header, std::string_view base_domain);

}  // namespace kiln::gateway
