#pragma once
// service: every operation Kiln offers, defined once (DESIGN.md §2 "One source of truth").
// An Operation carries its name, description, JSON Schemas, scopes, annotations and REST
// binding; REST routes, the OpenAPI document, MCP tools and CLI help are derived from it.
//
// Thread-safety: the operation list is built in the constructor and read-only afterwards;
// Call may run on any thread concurrently.

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "auth/auth.h"
#include "core/core.h"
#include "core/json.h"
#include "core/metrics.h"
#include "runtime/runtime.h"
#include "store/store.h"

namespace kiln::service {

// Sends one event of a streaming operation (an exec's output chunk) to the caller; false
// once the caller is gone, so the operation can stop early. An empty `event` sends nothing and
// only answers whether the caller is still there (for followers that wait quietly).
using EmitFn = std::function<bool(std::string_view event, const json::value& data)>;

struct Context {
  const auth::Principal& principal;
  std::string request_id;
  // Set when the caller asked for a stream (SSE) and the operation is `streaming`; the
  // operation's return value then becomes the stream's last event.
  EmitFn emit;
  // REST with a raw body: the `rest_raw_input` field holds the request body's bytes as they
  // came, and the `rest_raw_output` field may hold any bytes (not only UTF-8 text).
  bool raw = false;
};

struct Operation {
  std::string name;         // "keys.create": resource first; MCP tool name "keys_create"
  std::string summary;      // one line, for lists and CLI help
  std::string description;  // for people and models: what it does, when to use it
  std::string method;       // REST binding: "POST"
  std::string path;         // "/v1/keys/{id}"; {x} fills input field x
  json::object input;       // JSON Schema of the merged input (path + query + body)
  json::object output;      // JSON Schema of `data` (of one item when paginated)
  auth::Scopes scopes = 0;  // needed to call it (admin implies all)
  bool read_only = false;
  bool destructive = false;  // needs `confirm` with the exact resource id or name
  bool idempotent = false;
  bool paginated = false;  // run() answers {items, has_more, next_cursor}
  // run() may block for long (a command in a sandbox, a file through kiln-init): REST runs it
  // on a worker thread, never on an I/O thread.
  bool blocking = false;
  // run() can report progress through Context::emit; REST offers it as Server-Sent Events
  // (Accept: text/event-stream or ?stream=1), ending with `final_event` carrying the result.
  bool streaming = false;
  std::string final_event = "result";
  // REST binding of bytes: the request body is the raw value of this input field instead of
  // JSON (file uploads), and/or the response body is the raw value of this output field
  // (downloads), sent as application/octet-stream.
  std::string rest_raw_input;
  std::string rest_raw_output;
  // REST binding of uploads: a multipart/form-data body is passed whole in this input field,
  // and its Content-Type in the field of the same name + "Type"; JSON bodies work as usual.
  std::string rest_multipart;
  int success_status = 200;
  std::function<Result<json::value>(Context&, const json::object&)> run;
};

struct Deps {
  store::Store& store;
  auth::Authenticator& auth;
  const Clock& clock;
  const Config& config;
  const crypto::SecretBox& box;         // secrets at rest (sandbox env)
  runtime::Runtime* runtime = nullptr;  // null where instances cannot run (no root, no runc)
  std::string runtime_error = {};       // why runtime is null, for the errors that say so
};

class SandboxManager;
class AppManager;
class AccessManager;
class DomainManager;

// What the gateway has served for one app or sandbox since the server started; every
// counter only grows.
struct Traffic {
  uint64_t requests = 0;
  std::array<uint64_t, 5> by_class{};  // 1xx .. 5xx
  uint64_t bytes_in = 0;               // request bodies
  uint64_t bytes_out = 0;              // response bodies
  HistogramBuckets latency{};          // to the end of the response
  uint64_t latency_count = 0;
};

// Where an app is served now (DESIGN.md §6). The gateway looks one up per request; a deploy,
// rollback, restart or sleep replaces the app's entry at once, and requests already holding
// the old entry finish on the old instance: it is stopped only once `in_flight` drops to 0
// (or the drain time is over).
//
// A sandbox port ({port}-{sandboxId}.{base_domain}) is served through the same kind of entry:
// `sandbox` is set, app_id holds the sandbox id and name the host label.
struct AppRoute {
  std::string app_id;
  std::string workspace_id;
  std::string name;
  std::string instance_id;
  std::string netns_path;  // the instance's network namespace (runtime::NetnsPath)
  uint16_t port = 3000;    // the app listens on 127.0.0.1:port inside it
  std::string access_policy = "public";
  bool sleeping = false;  // frozen or stopped by sleepAfterMinutes: WakeApp before proxying
  bool sandbox = false;   // a sandbox port, not an app
  mutable std::atomic<int64_t> in_flight{0};
  // When the gateway last passed a request on to Service::TouchApp (it does so at most once
  // a second per route, to keep the hot path off the service's lock).
  mutable std::atomic<int64_t> touched_ms{0};
};

// Who may pass the gateway to an app or a sandbox port (DESIGN.md §6). The gateway fills it
// from the request; Service::Authorize decides.
struct AccessCheck {
  std::string_view policy;         // the target's: public | workspace | token
  std::string_view workspace_id;   // the target's workspace
  std::string_view target_id;      // app_... or sbx_...
  std::string_view authorization;  // the Authorization header, as sent
  std::string_view cookie;         // the Cookie header, as sent
  std::string_view query_token;    // the `kiln_token` query parameter (share URLs)
};

struct AccessDecision {
  // 200: let it through. 302: a share-URL token was good; answer with `set_cookie` and
  // redirect to the same URL without `kiln_token`. 401 (no or bad credential) or 403 (a
  // credential of another workspace or of another target; an expired or revoked token is a
  // 401 TOKEN_EXPIRED / TOKEN_REVOKED): answer with `error`.
  int status = 200;
  Status error;
  std::string set_cookie;  // a Set-Cookie header value, for the 302
  // The authenticated caller, for the X-Kiln-* headers given to the app; all empty for an
  // anonymous caller of a public target.
  std::string user_id;     // key_... for a key or JWT, tok_... for an access token
  std::string workspace;   // the caller's workspace slug
  std::string auth_token;  // X-Kiln-Auth: signed, short-lived; verifiable with GET /v1/me
  // The Authorization header carried Kiln's own credential: the app must not see it.
  bool strip_authorization = false;
};

// Cookies whose name starts with this belong to Kiln (sessions, share tokens): the gateway
// never passes them to apps.
constexpr std::string_view kKilnCookiePrefix = "kiln_";
// The dashboard's session cookie: a JWT minted by POST /v1/auth/session (api/session.cc); the
// API and the gateway's `workspace` policy take it as a credential.
constexpr std::string_view kSessionCookie = "kiln_session";
// Cookie `name`'s value in a Cookie header, or empty (service/access.cc).
std::string_view CookieValue(std::string_view cookie_header, std::string_view name);
// The credential of `Authorization: Bearer <value>` (scheme in any case), or empty for any
// other scheme (service/access.cc). REST and MCP take it, else X-API-Key.
std::string_view BearerValue(std::string_view authorization);

class Service {
 public:
  explicit Service(Deps deps);
  ~Service();
  // Operations hold references to deps_ and to operations_: the service never moves.
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;
  // Background work: reconciling instances with the store after a restart, the warm pool, the
  // expiry reaper, template builds. Start once the store is open; Stop before it closes.
  void Start();
  void Stop();
  // Started sandboxes waiting in the warm pool (for /metrics).
  size_t PooledSandboxes() const;
  // The route of app `name` (its host label), or null when no instance of it runs.
  std::shared_ptr<const AppRoute> FindRoute(std::string_view name) const;
  // ---- access (service/access.cc) ----
  // ---- end access ----
  // ---- domains and certificates (service/domains.cc) ----
  // The certificate side of custom domains, given by the tls module once HTTPS runs (the
  // daemon wires it). `issue` is called, outside the service's locks, with the domains an
  // apps.domains.set attached; it records their certificate state itself through
  // RecordCertificate (a local-CA certificate before it returns, ACME ones later). `ca_pem`
  // is the local CA's root certificate, answered by tls.ca.get. Until this is called,
  // domains wait with certificate status pending. Call once, before traffic matters.
  void SetCertificateIssuer(std::function<void(const std::vector<std::string>&)> issue,
                            std::string ca_pem);
  // Whether `host` (lower-case, no port, no trailing dot) is attached to an existing app:
  // the tls module issues certificates for such hosts only. A map read, then one store read.
  bool IsCustomDomain(std::string_view host) const;
  // Every app's domains with their certificate state (renewal, start-up).
  Result<std::vector<store::Domain>> ListAllDomains() const;
  // Writes the certificate fields (cert_*) of `domain.domain`; NotFound DOMAIN_NOT_FOUND
  // once it was removed from its app.
  Status RecordCertificate(const store::Domain& domain);
  // Publishes the ACME HTTP-01 answer for `token` (AcmeChallenge then answers it); an empty
  // `key_authorization` withdraws it.
  void SetAcmeChallenge(const std::string& token, const std::string& key_authorization);
  // ---- end domains ----
  // The route of the app that custom domain `host` (lower-case, no port, no trailing dot)
  // is attached to, or null (service/domains).
  std::shared_ptr<const AppRoute> FindDomainRoute(std::string_view host) const;
  // The route of port `port` of running sandbox `sandbox_id`, or null.
  std::shared_ptr<const AppRoute> FindSandboxRoute(std::string_view sandbox_id,
                                                   uint16_t port) const;
  // Whether the caller described by `check` may reach the target (service/access). Cheap
  // for public targets; otherwise one cached credential check. Called on I/O threads.
  AccessDecision Authorize(const AccessCheck& check) const;
  // The key authorization for ACME HTTP-01 token `token` while a certificate order waits
  // for it, or empty (the tls module registers them).
  std::string AcmeChallenge(std::string_view token) const;
  // The status of app `name` (created, stopped, crashed, ...), or empty when there is no
  // such app: the gateway says why an app without a route does not answer. A store read.
  std::string AppStatus(std::string_view name) const;
  // Wakes a sleeping app (thaws it, or starts it again when gateway.sleep_mode is stop); its
  // route is then replaced by an awake one. OK when it is awake. May block for a start.
  Status WakeApp(const std::string& app_id);
  // Marks a request to the app (for sleep after inactivity).
  void TouchApp(const std::string& app_id);
  // The port the listener got (apps' URLs name it; the config may say port 0).
  void SetListenPort(uint16_t port);
  // Where apps.get (`requests`) and the stats history find the gateway's counts of an app;
  // nullopt before its first request. Set once at start-up.
  void SetTrafficSource(std::function<std::optional<Traffic>(const std::string& app_id)> source);

  const std::vector<Operation>& operations() const { return operations_; }
  const Operation* Find(std::string_view name) const;
  // Checks scopes (PermissionDenied MISSING_SCOPE), validates `input` against the
  // operation's schema (InvalidArgument VALIDATION_FAILED / UNKNOWN_FIELD), then runs it.
  Result<json::value> Call(const Operation& op, Context& ctx, const json::object& input) const;

 private:
  Deps deps_;
  std::unique_ptr<SandboxManager> sandboxes_;
  std::unique_ptr<AppManager> apps_;
  std::unique_ptr<AccessManager> access_;
  std::unique_ptr<DomainManager> domains_;
  std::vector<Operation> operations_;
};

// Validates `value` against a JSON Schema subset (type, properties, required,
// additionalProperties (false or a schema), propertyNames, maxProperties, enum, minLength,
// maxLength, pattern, minimum, maximum, items, minItems, maxItems, uniqueItems). `where` names the
// value in messages ("body.name").
Status Validate(const json::object& schema, const json::value& value, std::string_view where);

// The error envelope REST answers and MCP tool results carry: {"error": {code, message,
// hint, requestId}}. Messages and hints are made valid UTF-8 (they may quote client input);
// an internal error is logged with its details and answered without them.
json::object ErrorEnvelope(const Status& status, const std::string& request_id);

// Opaque list cursors over store sequence numbers.
std::string EncodeCursor(int64_t seq);
Result<int64_t> DecodeCursor(std::string_view cursor);

}  // namespace kiln::service
