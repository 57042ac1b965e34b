// JSON-RPC over a session: initialize, ping, tools/list, tools/call, logging/setLevel. A tool
// call runs in line when it is quick, else on a worker thread with its answer deferred; one
// that talks to the client while it runs (notifications, questions) answers as SSE.
#include <charconv>
#include <chrono>

#include "mcp/internal.h"

namespace kiln::mcp {
namespace {

constexpr std::string_view kInstructions =
    "Kiln runs apps and sandboxes on the user's own Linux machine. To ship code: apps_create, "
    "then apps_deploy (inline `files`, a `source.url`, a `source.git` repo or a "
    "`source.template`), then follow deployments_get or deployments_logs until it is live; the "
    "app's `url` then answers. Sandboxes (sandboxes_create, sandboxes_exec and the sandbox file "
    "tools) are isolated Linux containers for running code. A failed call is a result with "
    "isError: true whose text is {\"error\": {code, message, hint}}: follow the hint. "
    "Destructive tools need `confirm` set to the exact name or id of what they remove.";

// What a tool may do while it runs (mcp.h ToolContext), bound to its session and stream.
class CallContext final : public ToolContext {
 public:
  CallContext(std::shared_ptr<Session> session, const auth::Principal& principal,
              json::value progress_token, std::shared_ptr<EventStream> stream)
      : session_(std::move(session)),
        principal_(principal),
        token_(std::move(progress_token)),
        stream_(std::move(stream)) {}

  const auth::Principal& principal() const override { return principal_; }
  const json::value& progress_token() const override { return token_; }

  bool Notify(std::string_view method, json::object params) override {
    if (stream_ == nullptr) {
      return false;
    }
    return stream_->Send(json::serialize(
        json::object{{"jsonrpc", "2.0"}, {"method", method}, {"params", std::move(params)}}));
  }

  void Log(std::string_view level, json::value data) override {
    int index = LogLevelIndex(level);
    {
      std::lock_guard lock(session_->mu);
      if (index < session_->log_level) {
        return;
      }
    }
    Notify("notifications/message",
           json::object{{"level", level}, {"logger", "kiln"}, {"data", std::move(data)}});
  }

  Result<json::value> Ask(std::string_view method, json::object params,
                          int64_t timeout_ms) override {
    if (stream_ == nullptr) {
      return Status::Unavailable("CLIENT_UNREACHABLE",
                                 "the client takes no event stream, so it cannot be asked",
                                 "send Accept: application/json, text/event-stream");
    }
    std::string id;
    {
      std::lock_guard lock(session_->mu);
      id = "kiln-" + std::to_string(session_->next_ask++);
      session_->asks[id] = PendingAsk{};
    }
    stream_->Send(json::serialize(json::object{
        {"jsonrpc", "2.0"}, {"id", id}, {"method", method}, {"params", std::move(params)}}));
    std::unique_lock lock(session_->mu);
    session_->answered.wait_for(lock, std::chrono::milliseconds(timeout_ms),
                                [&] { return session_->ended || session_->asks[id].answered; });
    PendingAsk ask = std::move(session_->asks[id]);
    session_->asks.erase(id);
    if (!ask.answered) {
      return Status::Unavailable("CLIENT_TIMEOUT",
                                 std::string(method) + ": the client did not answer in time",
                                 "answer server requests on the session");
    }
    if (ask.error) {
      std::string message = "the client answered " + std::string(method) + " with an error";
      if (auto m = ask.error->find("message"); m != ask.error->end() && m->value().is_string()) {
        message += ": " + std::string(m->value().as_string());
      }
      return Status::Unprocessable("CLIENT_ERROR", message);
    }
    return std::move(ask.result);
  }

  void CloseStream() override {
    if (stream_ != nullptr) {
      stream_->Detach();
    }
  }

 private:
  std::shared_ptr<Session> session_;
  const auth::Principal& principal_;
  json::value token_;
  std::shared_ptr<EventStream> stream_;
};

}  // namespace

std::string Reply(const json::value& id, json::value result) {
  return json::serialize(
      json::object{{"jsonrpc", "2.0"}, {"id", id}, {"result", std::move(result)}});
}

std::string ErrorReply(const json::value& id, int code, std::string_view message,
                       json::value data) {
  json::object error{{"code", code}, {"message", message}};
  if (!data.is_null()) {
    error["data"] = std::move(data);
  }
  return json::serialize(json::object{{"jsonrpc", "2.0"}, {"id", id}, {"error", std::move(error)}});
}

std::string Server::Impl::Initialize(const json::value& id, const json::object& params,
                                     const auth::Principal& principal, std::string* session_id) {
  std::string version(kProtocolVersions[0]);
  if (auto it = params.find("protocolVersion"); it != params.end() && it->value().is_string()) {
    for (std::string_view v : kProtocolVersions) {
      if (it->value().as_string() == v) {
        version = v;
      }
    }
  }
  std::shared_ptr<Session> session = sessions.Create(principal.key_id, version);
  *session_id = session->id;
  return Reply(
      id,
      json::object{{"protocolVersion", version},
                   {"capabilities", json::object{{"tools", json::object{{"listChanged", false}}},
                                                 {"logging", json::object()}}},
                   {"serverInfo",
                    json::object{{"name", "kiln"}, {"title", "Kiln"}, {"version", deps.version}}},
                   {"instructions", kInstructions}});
}

std::string Server::Impl::ListTools(const json::value& id, const json::object& params,
                                    const auth::Principal& principal) const {
  size_t offset = 0;
  if (auto it = params.find("cursor"); it != params.end() && !it->value().is_null()) {
    std::string_view cursor = it->value().is_string() ? it->value().as_string() : "";
    if (!cursor.starts_with("tools:") ||
        std::from_chars(cursor.data() + 6, cursor.data() + cursor.size(), offset).ec !=
            std::errc()) {
      return ErrorReply(id, kInvalidParams, "invalid cursor: pass nextCursor as it was given");
    }
  }
  json::array page;
  size_t seen = 0;
  size_t page_size = static_cast<size_t>(deps.config.mcp.tools_page_size);
  bool more = false;
  for (const Tool& tool : tools) {
    if (!auth::HasScopes(principal.scopes, tool.scopes)) {
      continue;  // a read-only key does not see what it cannot do
    }
    if (seen++ < offset) {
      continue;
    }
    if (page.size() == page_size) {
      more = true;
      break;
    }
    page.push_back(tool.definition);
  }
  json::object result{{"tools", std::move(page)}};
  if (more) {
    result["nextCursor"] = "tools:" + std::to_string(offset + page_size);
  }
  return Reply(id, std::move(result));
}

Outcome Server::Impl::Request(const std::shared_ptr<Session>& session,
                              const auth::Principal& principal, const json::object& message,
                              bool accepts_sse, http::Response& res) {
  const json::value& id = message.at("id");
  std::string_view method = message.at("method").as_string();
  static const json::object kNoParams;
  const json::object* params = &kNoParams;
  if (auto it = message.find("params"); it != message.end()) {
    if (!it->value().is_object()) {
      return {false, ErrorReply(id, kInvalidParams, "params must be an object")};
    }
    params = &it->value().as_object();
  }
  if (method == "ping") {
    return {false, Reply(id, json::object())};
  }
  if (method == "tools/list") {
    return {false, ListTools(id, *params, principal)};
  }
  if (method == "logging/setLevel") {
    auto it = params->find("level");
    int level = it != params->end() && it->value().is_string()
                    ? LogLevelIndex(it->value().as_string())
                    : -1;
    if (level < 0) {
      return {false, ErrorReply(id, kInvalidParams,
                                "level must be one of debug, info, notice, warning, error, "
                                "critical, alert, emergency")};
    }
    std::lock_guard lock(session->mu);
    session->log_level = level;
    return {false, Reply(id, json::object())};
  }
  if (method != "tools/call") {
    return {false, ErrorReply(id, kMethodNotFound,
                              "method not found: " + std::string(method) +
                                  " (Kiln offers tools: tools/list, tools/call)")};
  }

  auto name = params->find("name");
  auto found = name != params->end() && name->value().is_string()
                   ? by_name.find(std::string(name->value().as_string()))
                   : by_name.end();
  if (found == by_name.end()) {
    return {false, ErrorReply(id, kInvalidParams, "unknown tool: call tools/list for the names")};
  }
  const Tool& tool = tools[found->second];
  json::object arguments;
  if (auto it = params->find("arguments"); it != params->end() && !it->value().is_null()) {
    if (!it->value().is_object()) {
      return {false, ErrorReply(id, kInvalidParams, "arguments must be an object")};
    }
    arguments = it->value().as_object();
  }
  json::value token;
  if (auto meta = params->find("_meta"); meta != params->end() && meta->value().is_object()) {
    if (auto t = meta->value().as_object().find("progressToken");
        t != meta->value().as_object().end()) {
      token = t->value();
    }
  }
  std::string request_id = NewRequestId();
  bool sse = accepts_sse && tool.streaming;
  if (!tool.blocking && !sse) {
    if (tool.extra != nullptr) {
      CallContext ctx(session, principal, token, nullptr);
      return {false, Reply(id, tool.extra->call(ctx, arguments))};
    }
    return {false, Reply(id, CallOperation(deps.service, tool, principal, request_id, arguments))};
  }

  // Deferred: a worker answers, as JSON or on an event stream.
  std::shared_ptr<http::Stream> out = res.Defer();
  http::Headers headers = res.headers;  // a deferred Response is not sent: these go again
  std::shared_ptr<EventStream> events;
  if (sse) {
    events = session->NewStream();
    http::Headers h = headers;
    h.emplace_back("Content-Type", "text/event-stream");
    h.emplace_back("Cache-Control", "no-cache");
    h.emplace_back("X-Accel-Buffering", "no");
    out->Begin(200, std::move(h));
    events->Attach(out, -1);
    if (session->version >= "2025-11-25") {
      events->Send("");  // priming: an event id to resume from before anything else
    }
  }
  auto run = [this, session, principal, &tool, arguments = std::move(arguments), id,
              token = std::move(token), request_id, out, events, headers]() {
    auto start = std::chrono::steady_clock::now();
    json::object result;
    if (tool.extra != nullptr) {
      CallContext ctx(session, principal, token, events);
      result = tool.extra->call(ctx, arguments);
    } else {
      result = CallOperation(deps.service, tool, principal, request_id, arguments);
    }
    deps.metrics.Observe(
        "kiln_mcp_tool_duration_seconds", "tool=\"" + tool.name + "\"",
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    std::string answer = Reply(id, std::move(result));
    if (events != nullptr) {
      if (events->Answer(answer)) {
        session->DropStream(events->id);
      }
      return;
    }
    http::Response r;
    r.headers = headers;
    r.Set("Content-Type", "application/json");
    r.body = std::move(answer);
    out->Finish(std::move(r));
  };
  if (!workers->Submit(run)) {
    std::string busy = ErrorReply(id, kInternalError, "the server is stopping: retry in a moment");
    if (events != nullptr) {
      events->Answer(busy);
    } else {
      http::Response r;
      r.status = 503;
      r.Set("Content-Type", "application/json");
      r.body = std::move(busy);
      out->Finish(std::move(r));
    }
  }
  return {true, {}};
}

}  // namespace kiln::mcp
