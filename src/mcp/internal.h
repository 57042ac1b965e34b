#pragma once
// Module-private: the MCP server's state and the pieces its files share.
//   tools.cc     tools/list entries built from service operations; a call's result
//   sessions.cc  sessions, their event streams (kept for resumption) and questions to the client
//   protocol.cc  JSON-RPC: initialize, ping, tools/list, tools/call, logging/setLevel
//   server.cc    Streamable HTTP at /mcp: headers, Host/Origin, auth, SSE, deferral
//
// Locking: SessionTable::mu_ guards the table; Session::mu guards a session's fields and its
// streams map; EventStream::mu guards one stream (its events and its connection). Lock order:
// table, then session, then stream; never the other way.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/worker_pool.h"
#include "mcp/mcp.h"

namespace kiln::mcp {

// JSON-RPC error codes.
constexpr int kParseError = -32700;
constexpr int kInvalidRequest = -32600;
constexpr int kMethodNotFound = -32601;
constexpr int kInvalidParams = -32602;
constexpr int kInternalError = -32603;
constexpr int kServerError = -32000;  // transport-level refusals (session, headers)

std::string Reply(const json::value& id, json::value result);
std::string ErrorReply(const json::value& id, int code, std::string_view message,
                       json::value data = nullptr);

// One tool of tools/list: an operation of service/ or an extra (fixture) tool.
struct Tool {
  std::string name;
  json::object definition;  // the tools/list entry
  const service::Operation* op = nullptr;
  const ExtraTool* extra = nullptr;
  auth::Scopes scopes = 0;    // hidden from callers without them
  bool blocking = false;      // runs on a worker thread
  bool streaming = false;     // answers with SSE when the client takes it
  bool wraps_result = false;  // the operation's data is not an object: structuredContent.result
};

std::vector<Tool> BuildTools(const std::vector<service::Operation>& operations,
                             const std::vector<ExtraTool>& extras);
// Runs an operation's tool: its CallToolResult.
json::object CallOperation(const service::Service& service, const Tool& tool,
                           const auth::Principal& principal, const std::string& request_id,
                           const json::object& arguments);

// An SSE stream of one tools/call (or of a GET that resumed one). Events are numbered; they
// are kept until the call's answer went out on a connection, so a client whose connection
// dropped (or was closed on purpose) resumes with GET and Last-Event-ID "<stream>_<n>".
struct EventStream {
  std::string id;
  std::mutex mu;
  std::vector<std::string> events;    // event i has id "<id>_<i>"; 0 is the priming event
  std::shared_ptr<http::Stream> out;  // the connection now, or null while detached
  bool answered = false;              // the last event (the call's answer) is in `events`

  // Appends `message` (one JSON-RPC message) as the next event and writes it to the
  // connection, if any. False when no connection took it.
  bool Send(const std::string& message);
  // The call's answer, as the last event; the connection's response then ends. True when it
  // went out on a connection (nothing is left to resume).
  bool Answer(const std::string& message);
  // Writes events after `after` to `out` and attaches it; ends it at once when answered,
  // and then answers true (nothing is left to resume).
  bool Attach(std::shared_ptr<http::Stream> out, int64_t after);
  void Detach();  // ends the connection's response; events go on being kept
};

// A question sent to the client (sampling, elicitation) waiting for its answer.
struct PendingAsk {
  bool answered = false;
  json::value result;
  std::optional<json::object> error;
};

struct Session {
  std::string id;
  std::string key_id;  // only the credential that opened it may use it
  std::string version;
  std::atomic<int64_t> last_used_ms{0};

  std::mutex mu;
  std::condition_variable answered;  // a PendingAsk was answered, or the session ended
  bool ended = false;
  int log_level = 1;  // index in kLogLevels; notifications below it are not sent
  int64_t next_stream = 1;
  int64_t next_ask = 1;
  std::map<int64_t, std::shared_ptr<EventStream>> streams;  // unanswered or undelivered
  std::map<std::string, PendingAsk> asks;                   // by JSON-RPC id text

  std::shared_ptr<EventStream> NewStream();
  std::shared_ptr<EventStream> FindStream(const std::string& id);
  void DropStream(const std::string& id);
};

// syslog levels as MCP names them, lowest first.
inline constexpr std::string_view kLogLevels[] = {"debug", "info",     "notice", "warning",
                                                  "error", "critical", "alert",  "emergency"};
int LogLevelIndex(std::string_view name);  // -1 when unknown

class SessionTable {
 public:
  SessionTable(const Clock& clock, int64_t idle_ms, size_t max_sessions)
      : clock_(clock), idle_ms_(idle_ms), max_(max_sessions) {}
  // A new session; ends idle ones first, and the least recently used one when full.
  std::shared_ptr<Session> Create(const std::string& key_id, const std::string& version);
  // The live session `id` opened by `key_id`, or null (unknown, ended, expired, another
  // key's: all alike to the caller).
  std::shared_ptr<Session> Find(std::string_view id, const std::string& key_id);
  void End(const std::shared_ptr<Session>& session);
  size_t size() const;

 private:
  void EndLocked(std::unordered_map<std::string, std::shared_ptr<Session>>::iterator it);
  const Clock& clock_;
  const int64_t idle_ms_;
  const size_t max_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<Session>> sessions_;
};

// What a JSON-RPC request produced: an answer now, or a deferred one (a worker answers).
struct Outcome {
  bool deferred = false;
  std::string body;  // the JSON-RPC response
};

struct Server::Impl {
  explicit Impl(Deps d);
  Deps deps;
  std::vector<Tool> tools;
  std::unordered_map<std::string, size_t> by_name;
  std::vector<std::string> allowed_hosts;  // lower-case, no port
  SessionTable sessions;
  // Last member: destroyed first, so calls still running finish while all above is alive.
  std::unique_ptr<WorkerPool> workers = std::make_unique<WorkerPool>(256);

  // protocol.cc
  std::string Initialize(const json::value& id, const json::object& params,
                         const auth::Principal& principal, std::string* session_id);
  // Answers a request of an initialized session. May take over `res` (Defer) for a tool call
  // that runs on a worker or streams; then Outcome::deferred is set.
  Outcome Request(const std::shared_ptr<Session>& session, const auth::Principal& principal,
                  const json::object& message, bool accepts_sse, http::Response& res);
  std::string ListTools(const json::value& id, const json::object& params,
                        const auth::Principal& principal) const;
};

}  // namespace kiln::mcp
