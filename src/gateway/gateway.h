#pragma once
// gateway: requests for apps, routed by Host (DESIGN.md §6). `{app}.{base_domain}` goes to
// the app's instance, through a TCP connection opened inside the instance's network
// namespace; every other host is left to the API.
//
// This is the first cut (step 3): each proxied request runs on a worker thread, its request
// and response bodies are buffered (bounded), and connections to upstreams are not reused.
// Streaming, keep-alive pools, WebSocket, access policies and TLS come with step 4.
//
// Threading: Handle runs on the server's I/O thread only long enough to match the host and
// call Deps::find; everything that may wait (waking the app, connecting, the upstream
// exchange) runs on the gateway's own worker threads, and the answer goes out through the
// deferred response's stream. Handle may be called from any I/O thread concurrently. The Deps
// callbacks are called from I/O threads (find) and worker threads (find, wake, touch) at once.
//
// Lifetime: destroying the Gateway waits for the requests it is proxying. Shut the server
// down first (its grace period lets deferred responses finish), then destroy the Gateway.

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include "core/core.h"
#include "http/http.h"
#include "service/service.h"

namespace kiln::gateway {

struct Deps {
  // The route of an app by name (the host's first label), or null.
  std::function<std::shared_ptr<const service::AppRoute>(std::string_view name)> find;
  // Thaws a sleeping app (Service::WakeApp).
  std::function<Status(const std::string& app_id)> wake;
  // Marks activity of an app (Service::TouchApp).
  std::function<void(const std::string& app_id)> touch;
  std::string base_domain = "localhost";
  int threads = 32;  // requests proxied at once (one worker thread each); more wait in a queue
  int64_t response_limit_bytes = 64 << 20;  // larger upstream responses: 502
  std::chrono::milliseconds connect_timeout{5'000};
  std::chrono::milliseconds response_timeout{60'000};  // whole upstream exchange
};

class Gateway {
 public:
  explicit Gateway(Deps deps);
  ~Gateway();
  Gateway(const Gateway&) = delete;
  Gateway& operator=(const Gateway&) = delete;

  // True when the request's Host is `{label}.{base_domain}` (any port, any case, one trailing
  // dot allowed): the gateway then answers it, with the app's response or an error page
  // (404 APP_NOT_FOUND for no such running app; 502 UPSTREAM_FAILED when the app refuses the
  // connection, closes early, sends a malformed response or one over response_limit_bytes;
  // 504 UPSTREAM_TIMEOUT past connect_timeout or response_timeout; 503 APP_UNAVAILABLE when
  // waking fails, SHUTTING_DOWN when the gateway is being destroyed), each carrying
  // X-Request-Id. Errors are the API's JSON envelope, or a small HTML page for a browser
  // (Accept with text/html and without application/json). False for every other host: the
  // API handles it.
  //
  // The app gets the request with hop-by-hop headers (and those the Connection header
  // names) and client-sent X-Kiln-* headers removed; X-Forwarded-For (the client's address
  // appended), X-Forwarded-Host, X-Forwarded-Proto, X-Kiln-Request-Id (the X-Request-Id of
  // the answer) and Connection: close added. When connecting fails and the app's route has
  // been replaced meanwhile (a deploy switched instances), the request is retried once on
  // the new route. AppRoute::in_flight counts the request while it uses the route.
  bool Handle(const http::Request& request, http::Response& response);

  // The app label of `host` under `base_domain`, or empty when it is not an app host.
  static std::string AppLabel(std::string_view host, std::string_view base_domain);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::gateway
