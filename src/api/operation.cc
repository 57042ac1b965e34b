// Calling an operation for a REST request: authentication, rate limit, input assembly,
// idempotency, then the operation itself, either in line (quick ones) or on a worker thread
// (blocking ones) with the response deferred, and as Server-Sent Events when the operation
// streams and the client asks for it.
#include <charconv>
#include <chrono>
#include <optional>

#include "api/internal.h"

namespace kiln::api {
namespace {

bool IsBodyMethod(std::string_view m) { return m == "POST" || m == "PUT" || m == "PATCH"; }

bool Truthy(const std::optional<std::string>& v) { return v && (*v == "1" || *v == "true"); }

// An event stream when the client says so: Accept: text/event-stream, ?stream=1 or (for
// log-like operations) ?follow=1.
bool WantsStream(const service::Operation& op, const http::Request& req) {
  if (!op.streaming) {
    return false;
  }
  return req.Header("accept").find("text/event-stream") != std::string_view::npos ||
         Truthy(req.Query("stream")) || Truthy(req.Query("follow"));
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

// The answer of a finished operation: the JSON envelope, or the raw bytes of its
// rest_raw_output field.
void Respond(Api& api, const service::Operation& op, Result<json::value>& result, bool raw,
             const std::string& request_id, http::Response& res) {
  if (!result.ok()) {
    api.Error(result.status(), request_id, res);
    return;
  }
  res.status = op.success_status;
  if (raw && !op.rest_raw_output.empty() && result->is_object()) {
    if (auto it = result->as_object().find(op.rest_raw_output);
        it != result->as_object().end() && it->value().is_string()) {
      res.Set("Content-Type", "application/octet-stream");
      res.body.assign(it->value().as_string());
      return;
    }
  }
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

std::string SseEvent(std::string_view event, const json::value& data) {
  std::string out = "event: ";
  out += event;
  out += "\ndata: ";
  out += json::serialize(data);  // one line: JSON text never holds a raw newline
  out += "\n\n";
  return out;
}

// A blocking or streaming call, moved off the I/O thread. Owns everything it needs: the
// request and the handler's Response are gone once the handler returns.
struct Job {
  Api* api = nullptr;
  Api::Impl* impl = nullptr;
  const service::Operation* op = nullptr;
  int route = 0;
  RequestFacts facts;
  auth::Principal principal;
  json::object input;
  bool raw = false;
  bool sse = false;
  http::Headers headers;  // X-Request-Id and the rate-limit headers, sent again
  std::optional<IdempotencySlot> slot;
  std::shared_ptr<http::Stream> stream;
  std::chrono::steady_clock::time_point start;

  void Run();
};

void Job::Run() {
  service::Context ctx{principal, facts.request_id, nullptr, false};
  ctx.raw = raw;
  bool begun = false;
  auto begin = [&] {
    if (!begun) {
      begun = true;
      http::Headers h = headers;
      h.emplace_back("Content-Type", "text/event-stream; charset=utf-8");
      h.emplace_back("Cache-Control", "no-cache");
      h.emplace_back("X-Accel-Buffering", "no");  // proxies must not hold events back
      stream->Begin(200, std::move(h));
    }
  };
  if (sse) {
    // Begun at the first event, so that an operation failing before it has produced anything
    // (no such sandbox) is an ordinary HTTP error, not a 200 stream with an error in it.
    ctx.emit = [&](std::string_view event, const json::value& data) {
      begin();
      if (event.empty()) {  // a liveness check of a quiet follower: nothing is sent
        return !stream->Closed();
      }
      return stream->Write(SseEvent(event, data));
    };
  }
  Result<json::value> result = impl->deps.service.Call(*op, ctx, input);
  int status = 0;
  if (sse && (begun || result.ok())) {
    begin();
    if (result.ok()) {
      stream->Write(SseEvent(op->final_event, *result));
    } else {
      http::Response error;
      api->Error(result.status(), facts.request_id, error);
      stream->Write("event: error\ndata: " + error.body + "\n\n");
    }
    stream->End();
    status = 200;
  } else {
    http::Response res;
    for (auto& [name, value] : headers) {
      res.Set(name, value);
    }
    Respond(*api, *op, result, raw, facts.request_id, res);
    status = res.status;
    if (slot) {
      slot->Finish(res.status, res.body);
    }
    stream->Finish(std::move(res));
  }
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  impl->Record(route, facts, status, seconds);
}

}  // namespace

Result<json::object> Api::Impl::Input(const service::Operation& op,
                                      const http::Router::Match& match, const http::Request& req,
                                      bool* raw) {
  json::object input;
  *raw = !op.rest_raw_input.empty() || !op.rest_raw_output.empty();
  if (!op.rest_multipart.empty() && IsBodyMethod(req.method) &&
      req.Header("content-type").starts_with("multipart/form-data")) {
    // An upload with its settings: the operation splits the parts itself.
    input[op.rest_multipart] = json::string(req.body);
    input[op.rest_multipart + "Type"] = json::string(req.Header("content-type"));
  } else if (!op.rest_raw_input.empty() && IsBodyMethod(req.method)) {
    // The body is the bytes of one field (a file), not JSON.
    input[op.rest_raw_input] = json::string(req.body);
  } else if (IsBodyMethod(req.method) && !req.body.empty()) {
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
  auto duplicate = [](const std::string& name) {
    // Whichever silently won, the caller would get something it did not ask for.
    return Status::InvalidArgument("DUPLICATE_FIELD",
                                   name + ": given both in the query string and in the body",
                                   "send it in one place only");
  };
  for (const auto& [name, text] : req.query) {
    // "metadata.owner=ci" sets one entry of an object field.
    size_t dot = name.find('.');
    if (dot != std::string::npos && dot > 0 && dot + 1 < name.size()) {
      std::string field = name.substr(0, dot);
      auto p = props->find(field);
      if (p != props->end() && p->value().is_object() && p->value().as_object().contains("type") &&
          p->value().as_object().at("type") == "object") {
        json::value& target = input[field];
        if (target.is_null()) {
          target = json::object();
        }
        if (!target.is_object() || target.as_object().contains(name.substr(dot + 1))) {
          return duplicate(name);
        }
        target.as_object()[name.substr(dot + 1)] = text;
        continue;
      }
    }
    // Unknown query parameters are ignored, as proxies and browsers add their own.
    if (!props->contains(name)) {
      continue;
    }
    if (input.contains(name)) {
      return duplicate(name);
    }
    KILN_ASSIGN_OR_RETURN(json::value v, QueryValue(*props, name, text));
    input[name] = std::move(v);
  }
  for (const auto& [name, value] : match.params) {
    input[name] = value;
  }
  return input;
}

bool Api::Impl::RunOperation(Api& api, const service::Operation& op, int route,
                             const http::Router::Match& match, const http::Request& req,
                             const std::string& request_id, http::Response& res) {
  auto principal = Caller(req);
  if (!principal.ok()) {
    api.Error(principal.status(), request_id, res);
    return true;
  }

  auth::RateLimiter::Decision rate = deps.limiter.Take(principal->key_id);
  res.Set("X-RateLimit-Limit", std::to_string(rate.limit));
  res.Set("X-RateLimit-Remaining", std::to_string(rate.remaining));
  res.Set("X-RateLimit-Reset", std::to_string(rate.reset_s));
  if (!rate.allowed) {
    res.Set("Retry-After", std::to_string(rate.retry_after_s));
    api.Error(Status::RateLimited(
                  "too many requests for this API key",
                  "wait " + std::to_string(rate.retry_after_s) + " s (Retry-After) and slow down"),
              request_id, res);
    return true;
  }

  bool raw = false;
  auto input = Input(op, match, req, &raw);
  if (!input.ok()) {
    api.Error(input.status(), request_id, res);
    return true;
  }

  std::optional<IdempotencySlot> slot;
  std::string_view idem_key = req.Header("idempotency-key");
  if (!idem_key.empty() && req.method == "POST") {
    if (idem_key.size() > 255) {
      api.Error(
          Status::InvalidArgument("INVALID_IDEMPOTENCY_KEY",
                                  "Idempotency-Key is longer than 255 characters", "use a UUID"),
          request_id, res);
      return true;
    }
    // The whole target (path and query) is part of the request: the same key sent with
    // another query is a different request, not a replay.
    std::string request_hash = crypto::Sha256Hex(req.method + '\n' + req.target + '\n' + req.body);
    auto begun = deps.idempotency.Begin(principal->key_id, std::string(idem_key), request_hash);
    if (!begun.ok()) {
      api.Error(begun.status(), request_id, res);
      return true;
    }
    if (begun->has_value()) {
      res.status = (*begun)->status;
      res.body = std::move((*begun)->body);
      res.Set("Content-Type", std::string(kJson));
      res.Set("Idempotent-Replayed", "true");
      return true;
    }
    slot.emplace(deps.idempotency, principal->key_id, std::string(idem_key),
                 std::move(request_hash));
  }

  bool sse = WantsStream(op, req);
  if (!op.blocking && !sse) {
    service::Context ctx{*principal, request_id, nullptr, false};
    ctx.raw = raw;
    auto result = deps.service.Call(op, ctx, *input);
    Respond(api, op, result, raw, request_id, res);
    if (slot) {
      slot->Finish(res.status, res.body);
    }
    return true;
  }

  auto job = std::make_shared<Job>();
  job->api = &api;
  job->impl = this;
  job->op = &op;
  job->route = route;
  job->facts = {request_id, req.method, req.path, req.remote};
  job->principal = std::move(*principal);
  job->input = std::move(*input);
  job->raw = raw;
  job->sse = sse;
  job->headers = res.headers;  // a deferred Response is not sent: these go out again
  if (slot) {
    job->slot.emplace(std::move(*slot));
  }
  job->start = std::chrono::steady_clock::now();
  job->stream = res.Defer();
  if (!workers->Submit([job] { job->Run(); })) {
    http::Response busy;
    api.Error(Status::Unavailable("SHUTTING_DOWN", "the server is stopping", "retry in a moment"),
              request_id, busy);
    job->stream->Finish(std::move(busy));
  }
  return false;
}

}  // namespace kiln::api
