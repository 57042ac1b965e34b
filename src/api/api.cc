#include "api/api.h"

#include "api/internal.h"

#include <array>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <optional>

#include "core/json.h"

namespace kiln::api {

// A client may pass its own request id so its logs and ours line up; anything odd is
// replaced rather than echoed into headers and logs.
std::string RequestIdFrom(const http::Request& req) {
  std::string_view given = req.Header("x-request-id");
  if (!given.empty() && given.size() <= 128) {
    bool clean = true;
    for (char c : given) {
      clean = clean &&
              (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.');
    }
    if (clean) {
      return std::string(given);
    }
  }
  return NewRequestId();
}

std::string Labels(std::string_view route, std::string_view method, int status) {
  std::string out = "route=\"";
  out += route;
  out += "\",method=\"";
  out += method;
  out += "\",code=\"";
  out += std::to_string(status);
  out += '"';
  return out;
}

Api::Api(Deps deps) : impl_(std::make_unique<Impl>(deps)) {
  const auto& ops = deps.service.operations();
  for (const auto& op : ops) {
    impl_->router.Add(op.method, op.path, static_cast<int>(impl_->ops.size()));
    impl_->ops.push_back(&op);
  }
  int next = static_cast<int>(impl_->ops.size());
  impl_->healthz = next++;
  impl_->metrics = next++;
  impl_->openapi_route = next++;
  impl_->router.Add("GET", "/healthz", impl_->healthz);
  impl_->router.Add("GET", "/metrics", impl_->metrics);
  impl_->router.Add("GET", "/v1/openapi.json", impl_->openapi_route);
  impl_->session_create = next++;
  impl_->session_get = next++;
  impl_->session_delete = next++;
  impl_->router.Add("POST", "/v1/auth/session", impl_->session_create);
  impl_->router.Add("GET", "/v1/auth/session", impl_->session_get);
  impl_->router.Add("DELETE", "/v1/auth/session", impl_->session_delete);
  impl_->openapi = BuildOpenApi(ops);

  Metrics& m = deps.metrics;
  m.Describe("kiln_http_requests_total", "counter", "HTTP requests answered, by route and status");
  m.Describe("kiln_http_request_duration_seconds", "histogram",
             "time from a parsed request to its response being ready");
  for (const service::Operation* op : impl_->ops) {
    impl_->route_metrics.push_back(std::make_unique<RouteMetrics>(m, op->path, op->method));
  }
  for (const char* path : {"/healthz", "/metrics", "/v1/openapi.json"}) {
    impl_->route_metrics.push_back(std::make_unique<RouteMetrics>(m, path, "GET"));
  }
  for (const char* method : {"POST", "GET", "DELETE"}) {
    impl_->route_metrics.push_back(std::make_unique<RouteMetrics>(m, "/v1/auth/session", method));
  }
}

Api::~Api() = default;

const std::string& Api::openapi() const { return impl_->openapi; }

void Api::Error(const Status& status, const std::string& request_id, http::Response& res) {
  res.status = HttpStatus(status.code());
  res.body = json::serialize(service::ErrorEnvelope(status, request_id));
  res.Set("Content-Type", std::string(kJson));
  if (status.Is(Code::kUnauthenticated)) {
    res.Set("WWW-Authenticate", "Bearer");
  }
}

void Api::ListenerError(const Status& status, http::Response& res) {
  std::string request_id = NewRequestId();
  res.Set("X-Request-Id", request_id);
  Error(status, request_id, res);
}

void Api::Handle(const http::Request& req, http::Response& res) {
  auto start = std::chrono::steady_clock::now();
  std::string request_id = RequestIdFrom(req);
  res.Set("X-Request-Id", request_id);
  Impl& in = *impl_;
  http::Router::Match match = in.router.Find(req.method, req.path);
  std::string_view route = "unmatched";
  if (match.route < 0) {
    if (match.method_mismatch) {
      Error(
          Status(Code::kInvalidArgument, "METHOD_NOT_ALLOWED",
                 req.method + " is not allowed on " + req.path, "allowed methods: " + match.allow),
          request_id, res);
      res.status = 405;
      res.Set("Allow", match.allow);
    } else {
      Error(Status::NotFound("ROUTE_NOT_FOUND", "no route for " + req.method + " " + req.path,
                             "every route is listed in GET /v1/openapi.json"),
            request_id, res);
    }
  } else if (match.route == in.healthz) {
    route = "/healthz";
    res.body = R"({"data":{"status":"ok"}})";
    res.Set("Content-Type", std::string(kJson));
  } else if (match.route == in.metrics) {
    route = "/metrics";
    res.body = in.deps.metrics.Render();
    res.Set("Content-Type", "text/plain; version=0.0.4");
  } else if (match.route == in.openapi_route) {
    route = "/v1/openapi.json";
    res.body = in.openapi;
    res.Set("Content-Type", std::string(kJson));
  } else if (match.route == in.session_create || match.route == in.session_get ||
             match.route == in.session_delete) {
    route = "/v1/auth/session";
    in.Session(*this, match.route, req, request_id, res);
  } else {
    const service::Operation& op = *in.ops[match.route];
    route = op.path;
    if (!in.RunOperation(*this, op, match.route, match, req, request_id, res)) {
      return;  // deferred: the worker that answers records it
    }
  }

  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (match.route >= 0) {
    in.Record(match.route, {request_id, req.method, req.path, req.remote}, res.status, seconds);
    return;
  }
  // Unmatched paths share one series; the method is whatever the client sent, so it is not a
  // label (a client could otherwise create series without bound).
  in.deps.metrics.Add("kiln_http_requests_total", Labels(route, "other", res.status));
  in.deps.metrics.Observe("kiln_http_request_duration_seconds", "route=\"unmatched\"", seconds);
  if (in.deps.config.log.access_log) {
    log::Info("request", {{"request_id", request_id},
                          {"method", req.method},
                          {"path", req.path},
                          {"status", res.status},
                          {"ms", seconds * 1000},
                          {"remote", req.remote}});
  }
}

void Api::Impl::Record(int route, const RequestFacts& facts, int status, double seconds) {
  route_metrics[route]->Record(status, seconds);
  if (deps.config.log.access_log) {
    log::Info("request", {{"request_id", facts.request_id},
                          {"method", facts.method},
                          {"path", facts.path},
                          {"status", status},
                          {"ms", seconds * 1000},
                          {"remote", facts.remote}});
  }
}

}  // namespace kiln::api
