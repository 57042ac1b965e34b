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

  // PRAGMA integrity_check; for tests and `kiln doctor`.
  virtual Status CheckIntegrity() = 0;
};

// Opens (creating if needed) the SQLite database at `path` and runs pending migrations.
// Fails with a clear message when the database is newer than this binary.
Result<std::unique_ptr<Store>> OpenSqliteStore(const std::filesystem::path& path);

}  // namespace kiln::store
