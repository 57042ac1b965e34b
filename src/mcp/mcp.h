#pragma once
// mcp: the Model Context Protocol server (DESIGN.md §2, API.md "MCP"). Revision 2025-11-25,
// negotiating down to 2025-06-18 and 2025-03-26. One tool per operation of service/, built
// from the same definitions as REST (name "apps.deploy" -> tool "apps_deploy"; the input
// schema, the output schema of `data`, the scopes and the annotations), so the two cannot
// drift. A failing operation is a tool result with isError: true carrying the REST error
// envelope ({"error": {code, message, hint}}); malformed messages are JSON-RPC errors.
//
// Transport: Streamable HTTP at /mcp (POST one JSON-RPC message; JSON answers, or an SSE
// stream when the call sends notifications or asks the client something; 202 for
// notifications and responses; GET resumes or opens an SSE stream; DELETE ends the
// session). `kiln mcp` (cli/) is a stdio bridge to that endpoint. Sessions live in memory:
// after a restart their ids are unknown (404) and clients initialize again.
//
// Thread-safety: Handle may run on any I/O thread concurrently. Tools that block run on the
// server's own worker threads, never on an I/O thread.

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "auth/auth.h"
#include "core/core.h"
#include "core/json.h"
#include "http/http.h"
#include "service/service.h"

namespace kiln::mcp {

// Newest first; `initialize` echoes the client's version when it is one of these, else
// answers the newest.
inline constexpr std::string_view kProtocolVersions[] = {"2025-11-25", "2025-06-18", "2025-03-26"};

struct Deps {
  service::Service& service;
  auth::Authenticator& auth;
  auth::RateLimiter& limiter;
  Metrics& metrics;
  const Config& config;
  std::string version = "0.1.0";  // serverInfo.version
};

// What a tool may do while it runs, besides answering. Valid only during the call.
class ToolContext {
 public:
  virtual ~ToolContext() = default;
  virtual const auth::Principal& principal() const = 0;
  // The request's `_meta.progressToken`, or null.
  virtual const json::value& progress_token() const = 0;
  // Sends a notification to the client on this call's stream (notifications/progress,
  // notifications/message). False when the client cannot get it any more (or never could:
  // a JSON-only client); the call goes on either way.
  virtual bool Notify(std::string_view method, json::object params) = 0;
  // notifications/message at `level` ("info", ...) when the session's logging level lets
  // it through (logging/setLevel); `data` is any JSON.
  virtual void Log(std::string_view level, json::value data) = 0;
  // Asks the client (sampling/createMessage, elicitation/create, ...) and waits up to
  // `timeout_ms` for its answer: the result object, or an error (the client's JSON-RPC
  // error as Unprocessable CLIENT_ERROR; DeadlineExceeded CLIENT_TIMEOUT; FailedPrecondition
  // CLIENT_UNREACHABLE when the client takes no stream).
  virtual Result<json::value> Ask(std::string_view method, json::object params,
                                  int64_t timeout_ms = 60'000) = 0;
  // Closes this call's SSE stream without answering (the client resumes it with GET and
  // Last-Event-ID); later events are kept for the resumed stream. For the conformance
  // suite's polling scenario, and for calls that outlive a proxy's read timeout.
  virtual void CloseStream() = 0;
};

// A tool beyond the operations of service/ (the conformance suite's fixtures, in test builds
// only). `definition` is the tools/list entry (name, description, inputSchema, ...);
// `call` answers a CallToolResult ({content: [...], isError?, structuredContent?}).
struct ExtraTool {
  json::object definition;
  bool blocking = true;   // runs on a worker thread
  bool streaming = true;  // answers with an SSE stream when the client accepts one
  std::function<json::object(ToolContext&, const json::object& arguments)> call;
};

// Test seam: tools that every Server made after this call adds to its own (tests/mcp/
// builds a `kiln` with the conformance fixtures; the product binary never calls it).
void SetExtraTools(std::vector<ExtraTool> tools);

// "apps.deploy" -> "apps_deploy".
std::string ToolName(std::string_view operation_name);

class Server {
 public:
  explicit Server(Deps deps);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Serves /mcp (POST, GET, DELETE, OPTIONS). May defer the response (a worker answers).
  void Handle(const http::Request& request, http::Response& response);
  // The tools/list entries a principal with `scopes` sees, in order (for tests, docs).
  std::vector<json::object> Tools(auth::Scopes scopes) const;
  // Live sessions (for /metrics and tests).
  size_t Sessions() const;

  struct Impl;  // defined in mcp/internal.h, for this module's files only

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::mcp
