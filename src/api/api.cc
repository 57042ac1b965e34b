#include "api/api.h"

#include <array>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <optional>

#include "core/json.h"

namespace kiln::api {
namespace {

constexpr std::string_view kJson = "application/json";

bool IsBodyMethod(std::string_view m) { return m == "POST" || m == "PUT" || m == "PATCH"; }

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

std::string_view Credential(const http::Request& req) {
  std::string_view auth = req.Header("authorization");
  if (auth.size() > 7 && (auth.substr(0, 7) == "Bearer " || auth.substr(0, 7) == "bearer ")) {
    auth.remove_prefix(7);
    while (!auth.empty() && auth.front() == ' ') {
      auth.remove_prefix(1);
    }
    return auth;
  }
  return req.Header("x-api-key");
}

// Query strings are text; the operation's schema says what type each field is.
Result<json::value> QueryValue(const json::object& props, const std::string& name,
                               const std::string& text) {
  auto bad = [&](std::string_view want) {
    return Status::InvalidArgument(
        "VALIDATION_FAILED", name + ": must be " + std::string(want) + " (got \"" + text + "\")",
        "fix the query parameter and retry");
  };
  auto it = props.find(name);
  std::string_view type;
  if (it != props.end() && it->value().is_object()) {
    if (auto t = it->value().as_object().find("type");
        t != it->value().as_object().end() && t->value().is_string()) {
      type = t->value().as_string();
    }
  }
  if (type == "integer") {
    int64_t n = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (ec != std::errc() || end != text.data() + text.size()) {
      return bad("an integer");
    }
    return json::value(n);
  }
  if (type == "boolean") {
    if (text == "true" || text == "1") {
      return json::value(true);
    }
    if (text == "false" || text == "0") {
      return json::value(false);
    }
    return bad("true or false");
  }
  return json::value(text);
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

}  // namespace

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
  std::string openapi;

  void RunOperation(Api& api, const service::Operation& op, const http::Router::Match& match,
                    const http::Request& req, const std::string& request_id, http::Response& res);
  Result<json::object> Input(const service::Operation& op, const http::Router::Match& match,
                             const http::Request& req);
};

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
}

Api::~Api() = default;

const std::string& Api::openapi() const { return impl_->openapi; }

void Api::Error(const Status& status, const std::string& request_id, http::Response& res) {
  res.status = HttpStatus(status.code());
  // Messages may quote client input (a path, a name); the body must stay valid JSON text.
  std::string message = ValidUtf8(status.message());
  std::string hint = ValidUtf8(status.hint());
  if (status.Is(Code::kInternal)) {
    // Internal details (database messages, paths) go to the log, not to the client.
    log::Error("internal error", {{"request_id", request_id}, {"error", status.ToString()}});
    message = "internal error";
    hint = "retry; if it keeps failing, report request id " + request_id +
           " (details are in the server log)";
  }
  json::object error{{"code", status.error_code().empty() ? std::string(CodeName(status.code()))
                                                          : status.error_code()},
                     {"message", message},
                     {"requestId", request_id}};
  if (!hint.empty()) {
    error["hint"] = hint;
  }
  res.body = json::serialize(json::object{{"error", std::move(error)}});
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
  } else {
    const service::Operation& op = *in.ops[match.route];
    route = op.path;
    in.RunOperation(*this, op, match, req, request_id, res);
  }

  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (match.route >= 0) {
    in.route_metrics[match.route]->Record(res.status, seconds);
  } else {
    // Unmatched paths share one series; the method is whatever the client sent, so it is
    // not a label (a client could otherwise create series without bound).
    in.deps.metrics.Add("kiln_http_requests_total", Labels(route, "other", res.status));
    in.deps.metrics.Observe("kiln_http_request_duration_seconds", "route=\"unmatched\"", seconds);
  }
  if (in.deps.config.log.access_log) {
    log::Info("request", {{"request_id", request_id},
                          {"method", req.method},
                          {"path", req.path},
                          {"status", res.status},
                          {"ms", seconds * 1000},
                          {"remote", req.remote}});
  }
}

Result<json::object> Api::Impl::Input(const service::Operation& op,
                                      const http::Router::Match& match, const http::Request& req) {
  json::object input;
  if (IsBodyMethod(req.method) && !req.body.empty()) {
    KILN_ASSIGN_OR_RETURN(json::value body, ParseJson(req.body));
    if (!body.is_object()) {
      return Status::InvalidArgument("BODY_NOT_OBJECT", "the request body must be a JSON object",
                                     "send an object such as {\"name\": \"ci\"}");
    }
    input = std::move(body.as_object());
  }
  static const json::object kNoProps;
  const json::object* props = &kNoProps;
  if (auto it = op.input.find("properties"); it != op.input.end() && it->value().is_object()) {
    props = &it->value().as_object();
  }
  for (const auto& [name, text] : req.query) {
    // Unknown query parameters are ignored, as proxies and browsers add their own.
    if (!props->contains(name)) {
      continue;
    }
    if (input.contains(name)) {
      // Whichever silently won, the caller would get something it did not ask for.
      return Status::InvalidArgument("DUPLICATE_FIELD",
                                     name + ": given both in the query string and in the body",
                                     "send it in one place only");
    }
    KILN_ASSIGN_OR_RETURN(json::value v, QueryValue(*props, name, text));
    input[name] = std::move(v);
  }
  for (const auto& [name, value] : match.params) {
    input[name] = value;
  }
  return input;
}

void Api::Impl::RunOperation(Api& api, const service::Operation& op,
                             const http::Router::Match& match, const http::Request& req,
                             const std::string& request_id, http::Response& res) {
  auto principal = deps.auth.Authenticate(Credential(req));
  if (!principal.ok()) {
    return api.Error(principal.status(), request_id, res);
  }

  auth::RateLimiter::Decision rate = deps.limiter.Take(principal->key_id);
  res.Set("X-RateLimit-Limit", std::to_string(rate.limit));
  res.Set("X-RateLimit-Remaining", std::to_string(rate.remaining));
  res.Set("X-RateLimit-Reset", std::to_string(rate.reset_s));
  if (!rate.allowed) {
    res.Set("Retry-After", std::to_string(rate.retry_after_s));
    return api.Error(Status::RateLimited("too many requests for this API key",
                                         "wait " + std::to_string(rate.retry_after_s) +
                                             " s (Retry-After) and slow down"),
                     request_id, res);
  }

  auto input = Input(op, match, req);
  if (!input.ok()) {
    return api.Error(input.status(), request_id, res);
  }

  std::optional<IdempotencySlot> slot;
  std::string_view idem_key = req.Header("idempotency-key");
  if (!idem_key.empty() && req.method == "POST") {
    if (idem_key.size() > 255) {
      return api.Error(
          Status::InvalidArgument("INVALID_IDEMPOTENCY_KEY",
                                  "Idempotency-Key is longer than 255 characters", "use a UUID"),
          request_id, res);
    }
    // The whole target (path and query) is part of the request: the same key sent with
    // another query is a different request, not a replay.
    std::string request_hash = crypto::Sha256Hex(req.method + '\n' + req.target + '\n' + req.body);
    auto begun = deps.idempotency.Begin(principal->key_id, std::string(idem_key), request_hash);
    if (!begun.ok()) {
      return api.Error(begun.status(), request_id, res);
    }
    if (begun->has_value()) {
      res.status = (*begun)->status;
      res.body = std::move((*begun)->body);
      res.Set("Content-Type", std::string(kJson));
      res.Set("Idempotent-Replayed", "true");
      return;
    }
    slot.emplace(deps.idempotency, principal->key_id, std::string(idem_key),
                 std::move(request_hash));
  }

  service::Context ctx{*principal, request_id};
  auto result = deps.service.Call(op, ctx, *input);
  if (!result.ok()) {
    api.Error(result.status(), request_id, res);
  } else {
    res.status = op.success_status;
    res.Set("Content-Type", std::string(kJson));
    if (op.paginated && result->is_object()) {
      json::object& page = result->as_object();
      res.body = json::serialize(json::object{{"data", std::move(page["items"])},
                                              {"has_more", page["has_more"]},
                                              {"next_cursor", page["next_cursor"]}});
    } else {
      res.body = json::serialize(json::object{{"data", std::move(*result)}});
    }
  }
  if (slot) {
    slot->Finish(res.status, res.body);
  }
}

}  // namespace kiln::api
