#pragma once
// store: the state store (DESIGN.md §2, §7). An interface so a PostgreSQL store can
// follow; OpenSqliteStore is the one implementation today (WAL, synchronous=FULL,
// numbered migrations run on open).
//
// Thread-safety: every method may be called from any thread concurrently. Reads run in
// parallel on pooled connections; writes are serialized and each is one transaction, so a
// change and the event that records it commit together or not at all.
// Errors: NotFound for missing rows (the caller names the resource), Conflict for unique
// violations, Internal for database faults (with the SQLite message).

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/core.h"

namespace kiln::store {

struct Workspace {
  int64_t seq = 0;  // insertion order, used for cursors
  std::string id;   // ws_...
  std::string slug;
  std::string name;
  bool root = false;  // the operator's workspace created on first start
  int64_t created_ms = 0;
};

struct ApiKey {
  int64_t seq = 0;
  std::string id;  // key_...
  std::string workspace_id;
  std::string name;
  std::string prefix;  // first characters of the secret, to recognise it in lists
  std::string hash;    // hex SHA-256 of the secret; the secret itself is never stored
  std::vector<std::string> scopes;
  int64_t created_ms = 0;
  int64_t last_used_ms = 0;  // 0 = never
  int64_t expires_ms = 0;    // 0 = never
  int64_t revoked_ms = 0;    // 0 = active
  std::string created_by;    // key id of the creator, empty for bootstrap
};

struct Event {
  int64_t seq = 0;
  std::string id;  // evt_...
  std::string workspace_id;
  std::string type;     // "key.created"
  std::string actor;    // key id that caused it, empty for the system
  std::string subject;  // id of the resource it is about
  std::string data;     // JSON object text with details (never secrets)
  int64_t created_ms = 0;
};

struct IdempotencyRecord {
  std::string key_id;
  std::string idem_key;
  std::string request_hash;  // hex SHA-256 of method, path and body
  int status = 0;
  std::string sealed_body;  // response body sealed with the SecretBox: it may hold secrets
  int64_t created_ms = 0;
};

// A sandbox as recorded; the instance itself is the runtime's. Live sandboxes are "running"
// or "paused"; ended ones keep their row with the reason they ended.
struct Sandbox {
  int64_t seq = 0;
  std::string id;  // sbx_...
  std::string workspace_id;
  std::string template_name;  // as the user named it: "base", "debian" or a custom template
  std::string status;         // running | paused | killed | expired | lost
  std::string metadata;       // JSON object text, the caller's labels
  std::string env_sealed;     // SecretBox-sealed JSON object of env vars, "" for none
  int64_t memory_mb = 0;
  int64_t millicpus = 0;
  int64_t pids = 0;
  std::string network;  // none | egress
  int64_t created_ms = 0;
  int64_t expires_ms = 0;
  int64_t ended_ms = 0;    // 0 while live
  std::string end_reason;  // killed | expired | lost (the server found the instance gone)
  std::string created_by;  // key id
};

// Limits checked inside the transaction that inserts a sandbox; 0 = no limit.
struct SandboxQuota {
  int64_t max_live = 0;
  int64_t max_memory_mb = 0;
};

// A custom template (built-in `base` and `debian` have no row).
struct Template {
  int64_t seq = 0;
  std::string id;  // tpl_...; also its directory under templates/
  std::string workspace_id;
  std::string name;    // unique in the workspace
  std::string parent;  // the template it was built on, as the user named it
  std::string steps;   // JSON array of {run}
  std::string env_sealed;
  std::string status;     // building | ready | failed
  std::string error;      // why a build failed
  int64_t pool_size = 0;  // started sandboxes of it kept warm
  int64_t created_ms = 0;
  int64_t built_ms = 0;
  std::string created_by;
};

// An app: a named, long-running service of a workspace (shared/API.md "Apps and
// deployments"). `release_id` is what serves now; `instance_id` the instance serving it.
struct AccessToken {
  int64_t seq = 0;
  std::string id;  // tok_...
  std::string workspace_id;
  std::string target_id;  // app_... or sbx_...: what the token opens
  std::string kind;       // share-url | bearer
  std::string name;
  std::string prefix;  // first characters of the token, to recognise it in lists
  std::string hash;    // hex SHA-256 of the token; the token itself is never stored
  int64_t created_ms = 0;
  int64_t expires_ms = 0;
  int64_t revoked_ms = 0;  // 0 = not revoked
  int64_t last_used_ms = 0;
  std::string created_by;
};

struct Domain {
  std::string domain;  // lower-case, no trailing dot
  std::string app_id;
  std::string workspace_id;
  int64_t created_ms = 0;
  std::string cert_source = "local";    // local (Kiln's CA) | acme
  std::string cert_status = "pending";  // pending | issued | failed
  std::string cert_error;
  int64_t cert_expires_ms = 0;
};

struct App {
  int64_t seq = 0;
  std::string id;  // app_...
  std::string workspace_id;
  std::string name;  // unique across workspaces; a DNS label: the app's host name
  int64_t port = 3000;
  int64_t memory_mb = 256;
  int64_t millicpus = 1000;
  std::string access_policy = "public";  // public | workspace | token
  int64_t sleep_after_minutes = 0;       // 0 = never
  int64_t data_quota_mb = 1024;          // size of the /data volume
  // created (never deployed) | running | stopped | sleeping | crashed
  std::string status = "created";
  std::string release_id;   // "" until the first deployment goes live
  std::string instance_id;  // "" when nothing runs
  int64_t restarts = 0;     // times the app's process exited and was started again
  int64_t created_ms = 0;
  int64_t updated_ms = 0;
  std::string created_by;
};

// One attempt to put code live (or a rollback to an earlier release). Active deployments are
// queued, building or deploying; at most one per app.
struct Deployment {
  int64_t seq = 0;
  std::string id;  // dep_...
  std::string workspace_id;
  std::string app_id;
  std::string kind = "deploy";  // deploy | rollback
  // queued | building | deploying | live | failed | cancelled | superseded
  std::string status = "queued";
  std::string source;      // JSON object text: {type: upload|url|git|template|release, ...}
  std::string config;      // JSON object text: the overrides asked for (install, build, start...)
  std::string steps;       // JSON array text: [{name, status, startedAt, durationMs, error}]
  std::string release_id;  // set once a release exists
  std::string error;       // JSON object text {step, code, message, hint}, "" when none
  int64_t created_ms = 0;
  int64_t finished_ms = 0;  // 0 while active
  std::string created_by;
};

// An immutable build of an app on disk (releases/APP/REL). `status` becomes "deleted" when
// garbage collection removes its files; the row stays for history.
struct Release {
  int64_t seq = 0;
  std::string id;  // rel_...
  std::string workspace_id;
  std::string app_id;
  std::string deployment_id;  // the deployment that built it
  std::string plan;  // JSON object text: {runtime, start, preStart, port, healthCheckPath...}
  int64_t size_bytes = 0;
  std::string status = "ready";  // ready | deleted
  int64_t created_ms = 0;
};

// An environment variable of an app. `value_sealed` is SecretBox-sealed for every variable
// (secret or not); `secret` ones are never shown again, `build` ones are also set during
// install and build.
struct EnvVar {
  std::string key;
  std::string value_sealed;
  bool secret = false;
  bool build = false;
  int64_t updated_ms = 0;
};

// Keyset pagination: rows strictly after (ascending lists) or before (descending lists)
// `seq`; 0 means from the start. `limit` rows at most.
struct PageRequest {
  int64_t seq = 0;
  int limit = 50;
};

class Store {
 public:
  virtual ~Store() = default;

  // Workspaces. CreateWorkspace inserts the workspace, its first key and the event in one
  // transaction; Conflict when the slug is taken.
  virtual Status CreateWorkspace(const Workspace& ws, const ApiKey& first_key,
                                 const Event& event) = 0;
  virtual Result<Workspace> GetWorkspace(const std::string& id) = 0;
  virtual Result<Workspace> GetWorkspaceBySlug(const std::string& slug) = 0;
  virtual Result<std::vector<Workspace>> ListWorkspaces(const PageRequest& page) = 0;
  virtual Result<int64_t> CountWorkspaces() = 0;

  // API keys.
  virtual Status InsertKey(const ApiKey& key, const Event& event) = 0;
  virtual Result<ApiKey> FindKeyByHash(const std::string& hash) = 0;
  virtual Result<ApiKey> GetKey(const std::string& workspace_id, const std::string& id) = 0;
  virtual Result<std::vector<ApiKey>> ListKeys(const std::string& workspace_id,
                                               const PageRequest& page) = 0;
  // Marks the key revoked; NotFound when absent or already revoked. With a non-empty
  // `keep_scope` (a scope the key holds), the revocation is refused with Conflict
  // LAST_KEY_WITH_SCOPE when no other active, unexpired key of the workspace holds that
  // scope; the check and the change are one transaction, so two admins revoking each other at
  // once cannot both succeed.
  virtual Status RevokeKey(const std::string& workspace_id, const std::string& id,
                           int64_t revoked_ms, const Event& event,
                           const std::string& keep_scope) = 0;
  virtual Status TouchKey(const std::string& id, int64_t used_ms) = 0;
  // A JWT (by its `jti`) that must no longer authenticate, until `expires_ms` when it would
  // have expired anyway (a signed-out session). Drops rows that expired before `now_ms`.
  virtual Status RevokeJwt(const std::string& jti, int64_t expires_ms, int64_t now_ms) = 0;
  virtual Result<bool> IsJwtRevoked(const std::string& jti) = 0;

  // Activity events, newest first (page.seq = before).
  virtual Status AppendEvent(const Event& event) = 0;
  virtual Result<std::vector<Event>> ListEvents(const std::string& workspace_id,
                                                const PageRequest& page) = 0;

  // Idempotency records (24 h replay).
  virtual Result<std::optional<IdempotencyRecord>> GetIdempotency(const std::string& key_id,
                                                                  const std::string& idem_key) = 0;
  virtual Status PutIdempotency(const IdempotencyRecord& record) = 0;
  virtual Result<int64_t> PurgeIdempotency(int64_t older_than_ms) = 0;

  // Sandboxes. InsertSandbox refuses, in the same transaction as the insert, a sandbox that
  // would take the workspace past `quota`: Conflict SANDBOX_LIMIT_REACHED or
  // MEMORY_QUOTA_EXCEEDED (the caller maps them to 429/403).
  virtual Status InsertSandbox(const Sandbox& sandbox, const SandboxQuota& quota,
                               const Event& event) = 0;
  virtual Result<Sandbox> GetSandbox(const std::string& workspace_id, const std::string& id) = 0;
  // Newest first (page.seq = before). `status`: "" for live ones (running and paused), "all",
  // or one status.
  virtual Result<std::vector<Sandbox>> ListSandboxes(const std::string& workspace_id,
                                                     const std::string& status,
                                                     const PageRequest& page) = 0;
  // Live sandboxes of every workspace, for the reaper and for reconciling after a restart.
  virtual Result<std::vector<Sandbox>> ListLiveSandboxes() = 0;
  // Writes status, expiry, resources and end fields; `event` (optional) in the same
  // transaction. NotFound SANDBOX_NOT_FOUND when absent.
  virtual Status UpdateSandbox(const Sandbox& sandbox, const Event* event) = 0;

  // Custom templates. InsertTemplate: Conflict TEMPLATE_EXISTS when the name is taken.
  virtual Status InsertTemplate(const Template& tpl, const Event& event) = 0;
  virtual Result<Template> GetTemplate(const std::string& workspace_id,
                                       const std::string& name) = 0;
  virtual Result<std::vector<Template>> ListTemplates(const std::string& workspace_id) = 0;
  // Every workspace's, for finishing builds a crash interrupted.
  virtual Result<std::vector<Template>> ListAllTemplates() = 0;
  virtual Status UpdateTemplate(const Template& tpl) = 0;
  virtual Status DeleteTemplate(const std::string& workspace_id, const std::string& name,
                                const Event& event) = 0;

  // Apps. InsertApp: Conflict APP_EXISTS when the name is taken (names are host names, unique
  // across workspaces), Conflict APP_LIMIT_REACHED when the workspace already has `max_apps`
  // (0 = no limit); both checked in the insert's transaction.
  virtual Status InsertApp(const App& app, int64_t max_apps, const Event& event) = 0;
  // By id (app_...) or name, in `workspace_id` only. NotFound APP_NOT_FOUND, also for another
  // workspace's app.
  virtual Result<App> GetApp(const std::string& workspace_id, const std::string& id_or_name) = 0;
  // Oldest first (page.seq = after).
  virtual Result<std::vector<App>> ListApps(const std::string& workspace_id,
                                            const PageRequest& page) = 0;
  // Every workspace's, for reconciling after a restart.
  virtual Result<std::vector<App>> ListAllApps() = 0;
  // Writes every field but id, workspace_id, name and created_*; NotFound APP_NOT_FOUND.
  virtual Status UpdateApp(const App& app, const Event* event) = 0;
  // Removes the app with its deployments, releases and env vars in one transaction with
  // `event`. NotFound APP_NOT_FOUND when the workspace has no app `id`.
  virtual Status DeleteApp(const std::string& workspace_id, const std::string& id,
                           const Event& event) = 0;

  // Deployments. InsertDeployment refuses, in the same transaction, a second active
  // deployment of the app: Conflict DEPLOY_IN_PROGRESS whose message names the active one's id;
  // NotFound APP_NOT_FOUND when the app is not in the deployment's workspace.
  // GetDeployment: NotFound DEPLOYMENT_NOT_FOUND.
  virtual Status InsertDeployment(const Deployment& deployment, const Event& event) = 0;
  virtual Result<Deployment> GetDeployment(const std::string& workspace_id,
                                           const std::string& id) = 0;
  // The app's active deployment, if any.
  virtual Result<std::optional<Deployment>> ActiveDeployment(const std::string& app_id) = 0;
  // Newest first (page.seq = before).
  virtual Result<std::vector<Deployment>> ListDeployments(const std::string& app_id,
                                                          const PageRequest& page) = 0;
  // Active deployments of every workspace, for finishing what a crash interrupted.
  virtual Result<std::vector<Deployment>> ListActiveDeployments() = 0;
  // Writes status, steps, release_id, error, finished_ms, and `app` when given (as UpdateApp;
  // it must be the deployment's app), and `event` when given, in one transaction. When the
  // deployment becomes live, every other live deployment of the app becomes superseded in the
  // same transaction. NotFound DEPLOYMENT_NOT_FOUND; Conflict DEPLOY_IN_PROGRESS when it would
  // become active while another deployment of the app is.
  virtual Status UpdateDeployment(const Deployment& deployment, const App* app,
                                  const Event* event) = 0;

  // Releases. InsertRelease: NotFound APP_NOT_FOUND when the app is not in the release's
  // workspace. UpdateRelease writes status and size_bytes (the rest never changes).
  // GetRelease and UpdateRelease: NotFound RELEASE_NOT_FOUND.
  virtual Status InsertRelease(const Release& release) = 0;
  virtual Result<Release> GetRelease(const std::string& app_id, const std::string& id) = 0;
  // Newest first.
  virtual Result<std::vector<Release>> ListReleases(const std::string& app_id) = 0;
  virtual Status UpdateRelease(const Release& release) = 0;

  // Env vars of an app, sorted by key. SetEnv upserts `vars` (by key) in one transaction with
  // `event`, NotFound APP_NOT_FOUND when there is no app `app_id`; DeleteEnv: NotFound
  // ENV_NOT_FOUND.
  virtual Result<std::vector<EnvVar>> ListEnv(const std::string& app_id) = 0;
  virtual Status SetEnv(const std::string& app_id, const std::vector<EnvVar>& vars,
                        const Event& event) = 0;
  virtual Status DeleteEnv(const std::string& app_id, const std::string& key,
                           const Event& event) = 0;

  // Access tokens (sqlite_access_tokens.cc). InsertAccessToken: Conflict on a duplicate hash.
  // FindAccessToken: by the hex SHA-256 of the token, NotFound TOKEN_NOT_FOUND (revoked and
  // expired ones are returned: the caller says why they no longer open anything).
  // ListAccessTokens: the target's tokens, newest first, revoked ones included.
  // RevokeAccessToken: sets revoked_ms in one transaction with `event`; NotFound
  // TOKEN_NOT_FOUND unless token `id` of `target_id` exists in the workspace.
  virtual Status InsertAccessToken(const AccessToken& token, const Event& event) = 0;
  virtual Result<AccessToken> FindAccessToken(const std::string& hash) = 0;
  virtual Result<std::vector<AccessToken>> ListAccessTokens(const std::string& workspace_id,
                                                            const std::string& target_id) = 0;
  virtual Status RevokeAccessToken(const std::string& workspace_id, const std::string& target_id,
                                   const std::string& id, int64_t revoked_ms,
                                   const Event& event) = 0;
  // Records a use of token `id` (last_used_ms never goes back); NotFound TOKEN_NOT_FOUND.
  virtual Status TouchAccessToken(const std::string& id, int64_t used_ms) = 0;

  // Custom domains (sqlite_domains.cc). SetDomains replaces the app's set with `domains` in
  // one transaction with `event`, keeping the certificate fields of domains it already had;
  // Conflict DOMAIN_TAKEN naming the domain when another app has it. ListAllDomains: every
  // app's, for the gateway's host map and certificate renewal. UpdateDomain writes the cert_*
  // fields; NotFound DOMAIN_NOT_FOUND.
  virtual Result<std::vector<Domain>> ListDomains(const std::string& app_id) = 0;
  virtual Result<std::vector<Domain>> ListAllDomains() = 0;
  virtual Status SetDomains(const std::string& workspace_id, const std::string& app_id,
                            const std::vector<Domain>& domains, const Event& event) = 0;
  virtual Status UpdateDomain(const Domain& domain) = 0;

  // PRAGMA integrity_check; for tests and `kiln doctor`.
  virtual Status CheckIntegrity() = 0;
};

// Opens (creating if needed) the SQLite database at `path` and runs pending migrations.
// Fails with a clear message when the database is newer than this binary.
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::filesystem::path& path);

}  // namespace kiln::store
