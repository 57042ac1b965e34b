#pragma once
// gateway: requests for apps, routed by Host (DESIGN.md §6). `{app}.{base_domain}` goes to
// the app's instance, through a TCP connection opened inside the instance's network
// namespace; every other host is left to the API.
//
// This is the first cut (step 3): each proxied request runs on a worker thread, its request
// and response bodies are buffered (bounded), and connections to upstreams are not reused.
// Streaming, keep-alive pools, WebSocket, access policies and TLS come with step 4.
//
// Thread-safety: Handle may be called from any I/O thread concurrently.

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
  int threads = 32;                         // requests proxied at once; more wait
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
  // (404 APP_NOT_FOUND for no such running app, 502 UPSTREAM_FAILED, 504 UPSTREAM_TIMEOUT),
  // each carrying X-Request-Id. False for every other host: the API handles it.
  bool Handle(const http::Request& request, http::Response& response);

  // The app label of `host` under `base_domain`, or empty when it is not an app host.
  static std::string AppLabel(std::string_view host, std::string_view base_domain);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::gateway
