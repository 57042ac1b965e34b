#pragma once
// Module-private: the API's state and the pieces its files share (api.cc: routing, errors;
// operation.cc: calling an operation, in line, on a worker thread, or as an event stream;
// session.cc: the dashboard's sign-in and its session cookie).

#include <array>
#include <atomic>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "api/api.h"
#include "core/json.h"
#include "core/worker_pool.h"

namespace kiln::api {

constexpr std::string_view kJson = "application/json";

// The request id: the client's own when it is a sane token (so its logs and ours line up),
// else a new one.
std::string RequestIdFrom(const http::Request& req);
// The credential a request carries: the bearer token, else the X-API-Key value, else the
// dashboard's session cookie (kiln_session); empty when none was sent.
struct CallerCredential {
  std::string_view value;
  bool from_cookie = false;
};
CallerCredential Credential(const http::Request& req);
// The OpenAPI path item of /v1/auth/session (session.cc).
json::object SessionPathItem();
std::string Labels(std::string_view route, std::string_view method, int status);

// What a request's metrics and access log need, kept by value for answers given later.
struct RequestFacts {
  std::string request_id;
  std::string method;
  std::string path;
  std::string remote;
};

// An Idempotency-Key slot taken by Idempotency::Begin. It is released on every path, also
// when the operation throws; Finish stores the response for replay first.
class IdempotencySlot {
 public:
  IdempotencySlot(auth::Idempotency& idempotency, std::string key_id, std::string idem_key,
                  std::string request_hash)
      : idempotency_(&idempotency),
        key_id_(std::move(key_id)),
        idem_key_(std::move(idem_key)),
        request_hash_(std::move(request_hash)) {}
  IdempotencySlot(const IdempotencySlot&) = delete;
  IdempotencySlot& operator=(const IdempotencySlot&) = delete;
  // Moves with a request onto a worker thread; the moved-from slot releases nothing.
  IdempotencySlot(IdempotencySlot&& other) noexcept
      : idempotency_(std::exchange(other.idempotency_, nullptr)),
        key_id_(std::move(other.key_id_)),
        idem_key_(std::move(other.idem_key_)),
        request_hash_(std::move(other.request_hash_)) {}
  IdempotencySlot& operator=(IdempotencySlot&&) = delete;
  ~IdempotencySlot() {
    if (idempotency_ != nullptr) {
      idempotency_->Abandon(key_id_, idem_key_);
    }
  }
  void Finish(int status, const std::string& body) {
    // Failures of the server are not stored, so the client's retry can succeed.
    if (status < 500) {
      idempotency_->Finish(key_id_, idem_key_, request_hash_, status, body);
    } else {
      idempotency_->Abandon(key_id_, idem_key_);
    }
    idempotency_ = nullptr;
  }

 private:
  auth::Idempotency* idempotency_;
  std::string key_id_;
  std::string idem_key_;
  std::string request_hash_;
};

// The metric series of one route, resolved on first use so that the request path costs
// atomic adds rather than label formatting and a locked map lookup.
class RouteMetrics {
 public:
  RouteMetrics(Metrics& metrics, std::string route, std::string method)
      : metrics_(metrics),
        route_(std::move(route)),
        method_(std::move(method)),
        latency_(
            metrics.Histogram("kiln_http_request_duration_seconds", "route=\"" + route_ + "\"")) {}
  void Record(int status, double seconds) {
    latency_.Observe(seconds);
    if (status < 100 || status > 599) {
      metrics_.Add("kiln_http_requests_total", Labels(route_, method_, status));
      return;
    }
    std::atomic<CounterSeries*>& slot = by_status_[status - 100];
    CounterSeries* counter = slot.load(std::memory_order_acquire);
    if (counter == nullptr) {
      // Racing threads get the same series from the registry, so either store is right.
      counter = &metrics_.Counter("kiln_http_requests_total", Labels(route_, method_, status));
      slot.store(counter, std::memory_order_release);
    }
    counter->Add();
  }

 private:
  Metrics& metrics_;
  std::string route_;
  std::string method_;
  HistogramSeries& latency_;
  std::array<std::atomic<CounterSeries*>, 500> by_status_{};  // status - 100
};

struct Api::Impl {
  explicit Impl(Deps d) : deps(d) {}
  Deps deps;
  http::Router router;
  std::vector<const service::Operation*> ops;                // route index -> operation
  std::vector<std::unique_ptr<RouteMetrics>> route_metrics;  // route index -> its series
  int healthz = -1, metrics = -1, openapi_route = -1;
  int session_create = -1, session_get = -1, session_delete = -1;  // /v1/auth/session
  std::string openapi;
  // Blocking operations run here, never on an I/O thread. Last member: destroyed first, so
  // work still running finishes while everything it uses is alive.
  std::unique_ptr<WorkerPool> workers = std::make_unique<WorkerPool>(kMaxWorkers);

  static constexpr size_t kMaxWorkers = 512;

  // Runs `op` for the request. False when the response was deferred (a worker answers it, and
  // records its metrics and access log line then).
  bool RunOperation(Api& api, const service::Operation& op, int route,
                    const http::Router::Match& match, const http::Request& req,
                    const std::string& request_id, http::Response& res);
  Result<json::object> Input(const service::Operation& op, const http::Router::Match& match,
                             const http::Request& req, bool* raw);
  // Who is calling (session.cc): the principal of the request's credential. A session cookie
  // that does not authenticate is Unauthenticated SESSION_EXPIRED or SESSION_INVALID; one
  // on a request that changes something without X-Kiln-CSRF: 1, or from another Origin, is
  // PermissionDenied CSRF_CHECK_FAILED.
  Result<auth::Principal> Caller(const http::Request& req);
  // POST, GET or DELETE /v1/auth/session (`route` says which).
  void Session(Api& api, int route, const http::Request& req, const std::string& request_id,
               http::Response& res);
  // Metrics and the access log line of one answered request.
  void Record(int route, const RequestFacts& facts, int status, double seconds);
};

}  // namespace kiln::api
