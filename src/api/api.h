#pragma once
// api: REST over the operations of service/ (DESIGN.md §5). One entry point, Handle, runs
// the middleware in order: request id, routing, auth, rate limit, scope, idempotency, input
// assembly and validation, the operation, the JSON envelope, metrics.
//
// Thread-safety: Handle may run on any I/O thread concurrently; the route table and the
// OpenAPI document are built in the constructor and read-only afterwards.

#include <memory>
#include <string>

#include "auth/auth.h"
#include "core/core.h"
#include "http/http.h"
#include "service/service.h"

namespace kiln::api {

struct Deps {
  service::Service& service;
  auth::Authenticator& auth;
  auth::RateLimiter& limiter;
  auth::Idempotency& idempotency;
  Metrics& metrics;
  const Config& config;
};

class Api {
 public:
  explicit Api(Deps deps);
  ~Api();
  void Handle(const http::Request& request, http::Response& response);
  // Fills `response` with the error envelope for `status`.
  void Error(const Status& status, const std::string& request_id, http::Response& response);
  // The same for errors the listener detects itself (400, 408, 413, 431), with a fresh
  // request id in the body and in X-Request-Id.
  void ListenerError(const Status& status, http::Response& response);
  const std::string& openapi() const;

  struct Impl;  // defined in api/internal.h, for this module's files only

 private:
  std::unique_ptr<Impl> impl_;
};

// The one mapping from error category to HTTP status (DESIGN.md §5).
int HttpStatus(Code code);

// The OpenAPI 3.1 document for the given operations.
std::string BuildOpenApi(const std::vector<service::Operation>& operations);

}  // namespace kiln::api
