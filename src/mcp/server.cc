// Streamable HTTP at /mcp (MCP 2025-11-25 "Transports"): Host and Origin checks against DNS
// rebinding, CORS, the same credentials and rate limits as REST, the session header, then one
// JSON-RPC message per POST.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <mutex>

#include "mcp/internal.h"

namespace kiln::mcp {
namespace {

std::mutex extra_mu;
std::vector<ExtraTool>& ExtraTools() {
  static std::vector<ExtraTool> tools;
  return tools;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

bool Contains(std::string_view haystack, std::string_view needle) {
  return Lower(haystack).find(needle) != std::string::npos;
}

// "Host" or the authority of an Origin without its port: "[::1]:8080" -> "[::1]".
std::string HostName(std::string_view authority) {
  if (authority.starts_with("[")) {
    size_t end = authority.find(']');
    return Lower(authority.substr(0, end == std::string_view::npos ? authority.size() : end + 1));
  }
  return Lower(authority.substr(0, authority.find(':')));
}

std::string OriginHost(std::string_view origin) {
  size_t scheme = origin.find("://");
  if (scheme == std::string_view::npos) {
    return {};  // "null" and anything else unparseable is refused
  }
  std::string_view rest = origin.substr(scheme + 3);
  return HostName(rest.substr(0, rest.find('/')));
}

// The bearer token or X-API-Key, as REST takes them (no session cookie: /mcp is no page's).
std::string_view Credential(const http::Request& req) {
  std::string_view bearer = service::BearerValue(req.Header("authorization"));
  return bearer.empty() ? req.Header("x-api-key") : bearer;
}

void Answer(http::Response& res, int status, std::string body) {
  res.status = status;
  if (!body.empty()) {
    res.Set("Content-Type", "application/json");
  }
  res.body = std::move(body);
}

// A refusal before any message is read: a JSON-RPC error with the REST code and hint in data.
void Refuse(http::Response& res, int status, const json::value& id, int rpc_code,
            const Status& why) {
  json::object data{{"code", why.error_code()}};
  if (!why.hint().empty()) {
    data["hint"] = why.hint();
  }
  Answer(res, status, ErrorReply(id, rpc_code, why.message(), std::move(data)));
}

}  // namespace

void SetExtraTools(std::vector<ExtraTool> tools) {
  std::lock_guard lock(extra_mu);
  ExtraTools() = std::move(tools);
}

Server::Impl::Impl(Deps d)
    : deps(d),
      sessions(SystemClock::Instance(), int64_t{d.config.mcp.session_idle_seconds} * 1000,
               static_cast<size_t>(d.config.mcp.max_sessions)) {
  {
    std::lock_guard lock(extra_mu);
    tools = BuildTools(deps.service.operations(), ExtraTools());
  }
  for (size_t i = 0; i < tools.size(); ++i) {
    by_name[tools[i].name] = i;
  }
  allowed_hosts = {"localhost", "127.0.0.1", "[::1]"};
  if (!deps.config.gateway.base_domain.empty()) {
    allowed_hosts.push_back(Lower(deps.config.gateway.base_domain));
  }
  for (const std::string& host : SplitList(deps.config.mcp.allowed_hosts)) {
    allowed_hosts.push_back(HostName(host));
  }
  Metrics& m = deps.metrics;
  m.Describe("kiln_mcp_messages_total", "counter", "MCP messages received, by method");
  m.Describe("kiln_mcp_tool_duration_seconds", "histogram", "time a tools/call took, by tool");
}

Server::Server(Deps deps) : impl_(std::make_unique<Impl>(deps)) {}
Server::~Server() = default;

size_t Server::Sessions() const { return impl_->sessions.size(); }

std::vector<json::object> Server::Tools(auth::Scopes scopes) const {
  std::vector<json::object> out;
  for (const Tool& t : impl_->tools) {
    if (auth::HasScopes(scopes, t.scopes)) {
      out.push_back(t.definition);
    }
  }
  return out;
}

void Server::Handle(const http::Request& req, http::Response& res) {
  Impl& in = *impl_;
  const json::value no_id;
  auto allowed = [&](const std::string& host) {
    return std::find(in.allowed_hosts.begin(), in.allowed_hosts.end(), host) !=
           in.allowed_hosts.end();
  };
  std::string_view origin = req.Header("origin");
  bool origin_ok = origin.empty() || allowed(OriginHost(origin));
  if (!origin.empty() && origin_ok) {
    res.Set("Access-Control-Allow-Origin", std::string(origin));
    res.Set("Vary", "Origin");
    res.Set("Access-Control-Expose-Headers", "Mcp-Session-Id, MCP-Protocol-Version");
  }
  if (!origin_ok || !allowed(HostName(req.Header("host")))) {
    // A page on another site, or a name rebound to this machine: never served (DNS rebinding).
    return Refuse(
        res, 403, no_id, kServerError,
        Status::PermissionDenied("ORIGIN_NOT_ALLOWED",
                                 "this Host or Origin may not use /mcp (DNS-rebinding protection)",
                                 "reach the server as localhost or 127.0.0.1, or add the name to "
                                 "mcp.allowed_hosts"));
  }
  if (req.method == "OPTIONS") {
    res.status = 204;
    res.Set("Access-Control-Allow-Methods", "POST, GET, DELETE, OPTIONS");
    res.Set("Access-Control-Allow-Headers",
            "Authorization, Content-Type, Accept, Mcp-Session-Id, MCP-Protocol-Version, "
            "Last-Event-ID, X-API-Key");
    res.Set("Access-Control-Max-Age", "600");
    return;
  }
  if (req.method != "POST" && req.method != "GET" && req.method != "DELETE") {
    res.Set("Allow", "POST, GET, DELETE, OPTIONS");
    return Refuse(res, 405, no_id, kServerError,
                  Status::InvalidArgument("METHOD_NOT_ALLOWED", req.method + " is not used on /mcp",
                                          "POST one JSON-RPC message"));
  }

  auto principal = in.deps.auth.Authenticate(Credential(req));
  if (!principal.ok()) {
    res.Set("WWW-Authenticate", "Bearer");
    return Refuse(res, 401, no_id, kServerError, principal.status());
  }
  auth::RateLimiter::Decision rate = in.deps.limiter.Take(principal->key_id);
  if (!rate.allowed) {
    res.Set("Retry-After", std::to_string(rate.retry_after_s));
    return Refuse(res, 429, no_id, kServerError,
                  Status::RateLimited("too many requests for this API key",
                                      "wait " + std::to_string(rate.retry_after_s) + " s"));
  }
  if (std::string_view v = req.Header("mcp-protocol-version"); !v.empty()) {
    if (std::find(std::begin(kProtocolVersions), std::end(kProtocolVersions), v) ==
        std::end(kProtocolVersions)) {
      return Refuse(res, 400, no_id, kServerError,
                    Status::InvalidArgument("PROTOCOL_VERSION_UNSUPPORTED",
                                            "unsupported MCP-Protocol-Version " + std::string(v),
                                            "use 2025-11-25, 2025-06-18 or 2025-03-26"));
    }
  }

  std::string_view session_id = req.Header("mcp-session-id");
  auto session_of = [&]() -> std::shared_ptr<Session> {
    if (session_id.empty()) {
      Refuse(res, 400, no_id, kServerError,
             Status::InvalidArgument("SESSION_REQUIRED", "the Mcp-Session-Id header is missing",
                                     "send the id the initialize answer gave"));
      return nullptr;
    }
    auto s = in.sessions.Find(session_id, principal->key_id);
    if (s == nullptr) {
      Refuse(res, 404, no_id, -32001,
             Status::NotFound("SESSION_NOT_FOUND", "no such MCP session (ended or expired)",
                              "initialize again"));
    }
    return s;
  };

  if (req.method == "DELETE") {
    if (auto s = session_of()) {
      in.sessions.End(s);
      res.status = 204;
    }
    return;
  }
  if (req.method == "GET") {
    if (!Contains(req.Header("accept"), "text/event-stream")) {
      return Refuse(res, 406, no_id, kServerError,
                    Status::InvalidArgument("NOT_ACCEPTABLE", "GET /mcp answers text/event-stream",
                                            "send Accept: text/event-stream"));
    }
    auto s = session_of();
    if (s == nullptr) {
      return;
    }
    std::string_view last = req.Header("last-event-id");
    size_t cut = last.rfind('_');
    std::shared_ptr<EventStream> stream;
    int64_t after = -1;
    if (cut != std::string_view::npos &&
        std::from_chars(last.data() + cut + 1, last.data() + last.size(), after).ec ==
            std::errc()) {
      stream = s->FindStream(std::string(last.substr(0, cut)));
    }
    if (last.empty()) {
      // Everything Kiln sends belongs to a request, so there is no stream outside one.
      res.Set("Allow", "POST, DELETE");
      return Refuse(res, 405, no_id, kServerError,
                    Status::InvalidArgument("METHOD_NOT_ALLOWED",
                                            "Kiln sends messages only on a request's stream",
                                            "GET only resumes a stream, with Last-Event-ID"));
    }
    if (stream == nullptr) {
      return Refuse(
          res, 400, no_id, kServerError,
          Status::InvalidArgument("EVENT_ID_UNKNOWN", "no stream to resume from Last-Event-ID",
                                  "its call was answered already, or the id is wrong"));
    }
    std::shared_ptr<http::Stream> out = res.Defer();
    http::Headers h = res.headers;
    h.emplace_back("Content-Type", "text/event-stream");
    h.emplace_back("Cache-Control", "no-cache");
    out->Begin(200, std::move(h));
    if (stream->Attach(out, after)) {
      s->DropStream(stream->id);
    }
    return;
  }

  // POST: one JSON-RPC message.
  if (!Contains(req.Header("content-type"), "application/json")) {
    return Refuse(res, 415, no_id, kServerError,
                  Status::InvalidArgument("UNSUPPORTED_MEDIA_TYPE",
                                          "POST /mcp takes Content-Type: application/json",
                                          "send one JSON-RPC message as JSON"));
  }
  std::string_view accept = req.Header("accept");
  bool accepts_sse = Contains(accept, "text/event-stream");
  if (!accept.empty() && !accepts_sse && !Contains(accept, "application/json") &&
      !Contains(accept, "*/*")) {
    return Refuse(res, 406, no_id, kServerError,
                  Status::InvalidArgument("NOT_ACCEPTABLE",
                                          "/mcp answers application/json or text/event-stream",
                                          "send Accept: application/json, text/event-stream"));
  }
  auto parsed = ParseJson(req.body);
  if (!parsed.ok()) {
    return Answer(res, 400,
                  ErrorReply(no_id, kParseError, "parse error: " + parsed.status().message()));
  }
  if (parsed->is_array()) {
    return Answer(
        res, 400,
        ErrorReply(no_id, kInvalidRequest, "batches are not supported: send one message per POST"));
  }
  if (!parsed->is_object()) {
    return Answer(res, 400, ErrorReply(no_id, kInvalidRequest, "a message is a JSON object"));
  }
  const json::object& msg = parsed->as_object();
  auto jsonrpc = msg.find("jsonrpc");
  auto method = msg.find("method");
  auto id = msg.find("id");
  bool has_id = id != msg.end() &&
                (id->value().is_string() || id->value().is_int64() || id->value().is_uint64());
  if (jsonrpc == msg.end() || !jsonrpc->value().is_string() ||
      jsonrpc->value().as_string() != "2.0" ||
      (method != msg.end() && !method->value().is_string()) || (id != msg.end() && !has_id)) {
    return Answer(res, 400,
                  ErrorReply(has_id ? id->value() : no_id, kInvalidRequest,
                             "not a JSON-RPC 2.0 message (jsonrpc \"2.0\", a string method, a "
                             "string or integer id)"));
  }
  std::string_view name = method != msg.end() ? std::string_view(method->value().as_string()) : "";
  in.deps.metrics.Add("kiln_mcp_messages_total",
                      std::string("method=\"") +
                          (name == "initialize" || name == "ping" || name == "tools/list" ||
                                   name == "tools/call" || name == "notifications/initialized"
                               ? std::string(name)
                           : name.empty() ? "response"
                                          : "other") +
                          "\"");

  if (name == "initialize") {
    if (!has_id) {
      return Answer(res, 400,
                    ErrorReply(no_id, kInvalidRequest, "initialize is a request: give it an id"));
    }
    static const json::object kNone;
    auto params = msg.find("params");
    const json::object& p =
        params != msg.end() && params->value().is_object() ? params->value().as_object() : kNone;
    std::string sid;
    std::string body = in.Initialize(id->value(), p, *principal, &sid);
    res.Set("Mcp-Session-Id", sid);
    return Answer(res, 200, std::move(body));
  }
  if (name == "server/discover") {
    // A probe of a newer revision: a plain 4xx tells the client to fall back to initialize.
    return Answer(res, 400,
                  ErrorReply(has_id ? id->value() : no_id, kMethodNotFound,
                             "server/discover is not supported: use initialize"));
  }
  std::shared_ptr<Session> session = session_of();
  if (session == nullptr) {
    return;
  }
  if (!name.empty() && !has_id) {  // a notification (initialized, cancelled, ...): noted
    res.status = 202;
    return;
  }
  if (name.empty()) {  // the client's answer to a question of ours
    if (!has_id || (!msg.contains("result") && !msg.contains("error"))) {
      return Answer(
          res, 400,
          ErrorReply(no_id, kInvalidRequest, "a response needs an id and a result or an error"));
    }
    std::string key = id->value().is_string() ? std::string(id->value().as_string())
                                              : json::serialize(id->value());
    {
      std::lock_guard lock(session->mu);
      if (auto it = session->asks.find(key); it != session->asks.end()) {
        it->second.answered = true;
        if (auto e = msg.find("error"); e != msg.end() && e->value().is_object()) {
          it->second.error = e->value().as_object();
        } else {
          it->second.result = msg.at("result");
        }
      }
    }
    session->answered.notify_all();
    res.status = 202;
    return;
  }
  Outcome outcome = in.Request(session, *principal, msg, accepts_sse, res);
  if (!outcome.deferred) {
    Answer(res, 200, std::move(outcome.body));
  }
}

}  // namespace kiln::mcp
