// The SQLite implementation of Store.
//
// Concurrency: see sqlite_access.h. Every connection caches its prepared statements, so the
// per-request FindKeyByHash is one indexed lookup with no parsing. This file holds the tenancy
// tables; sandboxes and templates are in sqlite_sandboxes.cc.

#include <cerrno>
#include <cstdint>
#include <filesystem>
#include <limits>
#include <mutex>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "store/migrations.h"
#include "store/sqlite_access.h"
#include "store/sqlite_apps.h"
#include "store/sqlite_db.h"
#include "store/sqlite_gateway.h"
#include "store/sqlite_sandboxes.h"
#include "store/store.h"

namespace kiln::store {

namespace {

using sqlite::Db;
using sqlite::Query;
using sqlite::Stmt;

// ---- Statements. The column lists match the Read* functions below. ----

constexpr Query kInsertWorkspace{
    "insert workspace",
    "INSERT INTO workspaces (id, slug, name, root, created_ms) VALUES (?, ?, ?, ?, ?)"};
constexpr Query kSlugTaken{"check workspace slug", "SELECT 1 FROM workspaces WHERE slug = ?"};
constexpr Query kWorkspaceExists{"check workspace", "SELECT 1 FROM workspaces WHERE id = ?"};
constexpr Query kGetWorkspace{
    "get workspace", "SELECT seq, id, slug, name, root, created_ms FROM workspaces WHERE id = ?"};
constexpr Query kGetWorkspaceBySlug{
    "get workspace by slug",
    "SELECT seq, id, slug, name, root, created_ms FROM workspaces WHERE slug = ?"};
constexpr Query kListWorkspaces{"list workspaces",
                                "SELECT seq, id, slug, name, root, created_ms FROM workspaces "
                                "WHERE seq > ? ORDER BY seq ASC LIMIT ?"};
constexpr Query kCountWorkspaces{"count workspaces", "SELECT COUNT(*) FROM workspaces"};

constexpr Query kInsertKey{
    "insert key",
    "INSERT INTO api_keys (id, workspace_id, name, prefix, hash, scopes, created_ms, "
    "last_used_ms, expires_ms, revoked_ms, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"};
constexpr Query kFindKeyByHash{
    "find key by hash",
    "SELECT seq, id, workspace_id, name, prefix, hash, scopes, created_ms, last_used_ms, "
    "expires_ms, revoked_ms, created_by FROM api_keys WHERE hash = ?"};
constexpr Query kGetKey{
    "get key",
    "SELECT seq, id, workspace_id, name, prefix, hash, scopes, created_ms, last_used_ms, "
    "expires_ms, revoked_ms, created_by FROM api_keys WHERE id = ? AND workspace_id = ?"};
constexpr Query kListKeys{
    "list keys",
    "SELECT seq, id, workspace_id, name, prefix, hash, scopes, created_ms, last_used_ms, "
    "expires_ms, revoked_ms, created_by FROM api_keys "
    "WHERE workspace_id = ? AND seq > ? ORDER BY seq ASC LIMIT ?"};
constexpr Query kRevokeJwt{"revoke jwt",
                           "INSERT OR REPLACE INTO revoked_jwts (jti, expires_ms) VALUES (?, ?)"};
constexpr Query kPruneRevokedJwts{"prune revoked jwts",
                                  "DELETE FROM revoked_jwts WHERE expires_ms < ?"};
constexpr Query kIsJwtRevoked{"check revoked jwt", "SELECT 1 FROM revoked_jwts WHERE jti = ?"};
constexpr Query kRevokeKey{
    "revoke key",
    "UPDATE api_keys SET revoked_ms = ? WHERE id = ? AND workspace_id = ? AND revoked_ms = 0"};
// MAX keeps last_used_ms from going back when touches race; the row still counts as changed,
// so 0 changes means the key does not exist.
constexpr Query kTouchKey{"touch key",
                          "UPDATE api_keys SET last_used_ms = MAX(last_used_ms, ?) WHERE id = ?"};
// Padding both sides with spaces makes the match whole-token: "apps" does not match
// "apps:read".
constexpr Query kCountActiveKeysWithScope{
    "count keys with scope",
    "SELECT COUNT(*) FROM api_keys WHERE workspace_id = ? AND revoked_ms = 0 "
    "AND (expires_ms = 0 OR expires_ms > ?) "
    "AND instr(' ' || scopes || ' ', ' ' || ? || ' ') > 0"};

constexpr Query kInsertEvent{
    "insert event",
    "INSERT INTO events (id, workspace_id, type, actor, subject, data, created_ms) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"};
constexpr Query kListEvents{
    "list events",
    "SELECT seq, id, workspace_id, type, actor, subject, data, created_ms FROM events "
    "WHERE workspace_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?"};

constexpr Query kGetIdempotency{
    "get idempotency record",
    "SELECT key_id, idem_key, request_hash, status, sealed_body, created_ms FROM idempotency "
    "WHERE key_id = ? AND idem_key = ?"};
constexpr Query kPutIdempotency{
    "put idempotency record",
    "INSERT OR REPLACE INTO idempotency (key_id, idem_key, request_hash, status, sealed_body, "
    "created_ms) VALUES (?, ?, ?, ?, ?, ?)"};
constexpr Query kPurgeIdempotency{"purge idempotency records",
                                  "DELETE FROM idempotency WHERE created_ms < ?"};

constexpr Query kIntegrityCheck{"integrity check", "PRAGMA integrity_check"};

// ---- Rows ----

std::string JoinScopes(const std::vector<std::string>& scopes) {
  std::string out;
  for (const std::string& scope : scopes) {
    if (!out.empty()) {
      out += ' ';
    }
    out += scope;
  }
  return out;
}

std::vector<std::string> SplitScopes(std::string_view text) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find(' ', pos);
    if (end == std::string_view::npos) {
      end = text.size();
    }
    if (end > pos) {
      out.emplace_back(text.substr(pos, end - pos));
    }
    pos = end + 1;
  }
  return out;
}

// Scopes are stored space-separated, so a token must be non-empty and hold no whitespace.
Status ValidateScopes(const std::vector<std::string>& scopes) {
  for (const std::string& scope : scopes) {
    if (scope.empty() || scope.find_first_of(" \t\r\n") != std::string::npos) {
      return Status::InvalidArgument("INVALID_SCOPE",
                                     "scope \"" + scope + "\" is empty or contains whitespace");
    }
  }
  return Status::Ok();
}

Status ValidatePage(const PageRequest& page) {
  if (page.limit < 1) {
    return Status::InvalidArgument(
        "INVALID_LIMIT", "page limit must be at least 1, got " + std::to_string(page.limit));
  }
  return Status::Ok();
}

Workspace ReadWorkspace(const Stmt& s) {
  Workspace ws;
  ws.seq = s.Int64(0);
  ws.id = s.Text(1);
  ws.slug = s.Text(2);
  ws.name = s.Text(3);
  ws.root = s.Int64(4) != 0;
  ws.created_ms = s.Int64(5);
  return ws;
}

ApiKey ReadKey(const Stmt& s) {
  ApiKey key;
  key.seq = s.Int64(0);
  key.id = s.Text(1);
  key.workspace_id = s.Text(2);
  key.name = s.Text(3);
  key.prefix = s.Text(4);
  key.hash = s.Text(5);
  key.scopes = SplitScopes(s.Text(6));
  key.created_ms = s.Int64(7);
  key.last_used_ms = s.Int64(8);
  key.expires_ms = s.Int64(9);
  key.revoked_ms = s.Int64(10);
  key.created_by = s.Text(11);
  return key;
}

Event ReadEvent(const Stmt& s) {
  Event event;
  event.seq = s.Int64(0);
  event.id = s.Text(1);
  event.workspace_id = s.Text(2);
  event.type = s.Text(3);
  event.actor = s.Text(4);
  event.subject = s.Text(5);
  event.data = s.Text(6);
  event.created_ms = s.Int64(7);
  return event;
}

Status InsertWorkspaceRow(Db& db, const Workspace& ws) {
  KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kInsertWorkspace));
  return stmt.Bind(1, ws.id)
      .Bind(2, ws.slug)
      .Bind(3, ws.name)
      .Bind(4, int64_t{ws.root ? 1 : 0})
      .Bind(5, ws.created_ms)
      .Run();
}

Status InsertKeyRow(Db& db, const ApiKey& key) {
  KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kInsertKey));
  return stmt.Bind(1, key.id)
      .Bind(2, key.workspace_id)
      .Bind(3, key.name)
      .Bind(4, key.prefix)
      .Bind(5, key.hash)
      .Bind(6, JoinScopes(key.scopes))
      .Bind(7, key.created_ms)
      .Bind(8, key.last_used_ms)
      .Bind(9, key.expires_ms)
      .Bind(10, key.revoked_ms)
      .Bind(11, key.created_by)
      .Run();
}

Result<bool> Exists(Db& db, const Query& query, const std::string& value) {
  KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(query));
  return stmt.Bind(1, value).Step();
}

Result<int64_t> ScalarInt(Stmt& stmt) {
  KILN_ASSIGN_OR_RETURN(bool row, stmt.Step());
  return row ? stmt.Int64(0) : 0;
}

}  // namespace

Status InsertEventRow(Db& db, const Event& event) {
  KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kInsertEvent));
  return stmt.Bind(1, event.id)
      .Bind(2, event.workspace_id)
      .Bind(3, event.type)
      .Bind(4, event.actor)
      .Bind(5, event.subject)
      .Bind(6, event.data.empty() ? std::string_view("{}") : std::string_view(event.data))
      .Bind(7, event.created_ms)
      .Run();
}

namespace {

// ---- The store ----

class SqliteStore final : public Store {
 public:
  SqliteStore(std::string path, std::unique_ptr<Db> writer)
      : db_(std::move(path), std::move(writer)) {}

  Status CreateWorkspace(const Workspace& ws, const ApiKey& first_key,
                         const Event& event) override {
    if (first_key.workspace_id != ws.id) {
      return Status::InvalidArgument(
          "INVALID_ARGUMENT",
          "the first key of workspace " + ws.id + " names workspace " + first_key.workspace_id);
    }
    KILN_RETURN_IF_ERROR(ValidateScopes(first_key.scopes));
    return db_.Write([&](Db& db) -> Status {
      // Checked first for a message that names the slug; the UNIQUE index still guards it.
      KILN_ASSIGN_OR_RETURN(bool taken, Exists(db, kSlugTaken, ws.slug));
      if (taken) {
        return Status::Conflict("ALREADY_EXISTS",
                                "a workspace with slug \"" + ws.slug + "\" already exists",
                                "choose another slug");
      }
      KILN_RETURN_IF_ERROR(InsertWorkspaceRow(db, ws));
      KILN_RETURN_IF_ERROR(InsertKeyRow(db, first_key));
      return InsertEventRow(db, event);
    });
  }

  Result<Workspace> GetWorkspace(const std::string& id) override {
    return db_.Read([&](Db& db) -> Result<Workspace> {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kGetWorkspace));
      KILN_ASSIGN_OR_RETURN(bool row, stmt.Bind(1, id).Step());
      if (!row) {
        return Status::NotFound("WORKSPACE_NOT_FOUND", "no workspace " + id);
      }
      return ReadWorkspace(stmt);
    });
  }

  Result<Workspace> GetWorkspaceBySlug(const std::string& slug) override {
    return db_.Read([&](Db& db) -> Result<Workspace> {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kGetWorkspaceBySlug));
      KILN_ASSIGN_OR_RETURN(bool row, stmt.Bind(1, slug).Step());
      if (!row) {
        return Status::NotFound("WORKSPACE_NOT_FOUND", "no workspace with slug \"" + slug + "\"");
      }
      return ReadWorkspace(stmt);
    });
  }

  Result<std::vector<Workspace>> ListWorkspaces(const PageRequest& page) override {
    KILN_RETURN_IF_ERROR(ValidatePage(page));
    return db_.Read([&](Db& db) -> Result<std::vector<Workspace>> {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kListWorkspaces));
      stmt.Bind(1, page.seq).Bind(2, int64_t{page.limit});
      return Collect<Workspace>(stmt, ReadWorkspace);
    });
  }

  Result<int64_t> CountWorkspaces() override {
    return db_.Read([&](Db& db) -> Result<int64_t> {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kCountWorkspaces));
      return ScalarInt(stmt);
    });
  }

  Status InsertKey(const ApiKey& key, const Event& event) override {
    KILN_RETURN_IF_ERROR(ValidateScopes(key.scopes));
    return db_.Write([&](Db& db) -> Status {
      // The foreign key would refuse it too, but as an opaque constraint failure.
      KILN_ASSIGN_OR_RETURN(bool exists, Exists(db, kWorkspaceExists, key.workspace_id));
      if (!exists) {
        return Status::NotFound("WORKSPACE_NOT_FOUND", "no workspace " + key.workspace_id);
      }
      KILN_RETURN_IF_ERROR(InsertKeyRow(db, key));
      return InsertEventRow(db, event);
    });
  }

  Result<ApiKey> FindKeyByHash(const std::string& hash) override {
    return db_.Read([&](Db& db) -> Result<ApiKey> {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kFindKeyByHash));
      KILN_ASSIGN_OR_RETURN(bool row, stmt.Bind(1, hash).Step());
      // The hash is a credential's fingerprint: keep it out of the message.
      if (!row) {
        return Status::NotFound("KEY_NOT_FOUND", "no key with this secret");
      }
      return ReadKey(stmt);
    });
  }

  Result<ApiKey> GetKey(const std::string& workspace_id, const std::string& id) override {
    return db_.Read([&](Db& db) -> Result<ApiKey> {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kGetKey));
      KILN_ASSIGN_OR_RETURN(bool row, stmt.Bind(1, id).Bind(2, workspace_id).Step());
      if (!row) {
        return Status::NotFound("KEY_NOT_FOUND", "no key " + id + " in this workspace");
      }
      return ReadKey(stmt);
    });
  }

  Result<std::vector<ApiKey>> ListKeys(const std::string& workspace_id,
                                       const PageRequest& page) override {
    KILN_RETURN_IF_ERROR(ValidatePage(page));
    return db_.Read([&](Db& db) -> Result<std::vector<ApiKey>> {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kListKeys));
      stmt.Bind(1, workspace_id).Bind(2, page.seq).Bind(3, int64_t{page.limit});
      return Collect<ApiKey>(stmt, ReadKey);
    });
  }

  Status RevokeKey(const std::string& workspace_id, const std::string& id, int64_t revoked_ms,
                   const Event& event, const std::string& keep_scope) override {
    if (revoked_ms <= 0) {
      // 0 means "active" in the table, so it cannot mark a revocation.
      return Status::InvalidArgument(
          "INVALID_ARGUMENT", "revoked_ms must be positive, got " + std::to_string(revoked_ms));
    }
    return db_.Write([&](Db& db) -> Status {
      {
        KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kRevokeKey));
        KILN_RETURN_IF_ERROR(stmt.Bind(1, revoked_ms).Bind(2, id).Bind(3, workspace_id).Run());
      }
      if (db.Changes() == 0) {
        return Status::NotFound("KEY_NOT_FOUND", "no active key " + id + " in this workspace");
      }
      if (!keep_scope.empty()) {
        // Counted after the update, inside the write transaction: returning an error rolls
        // the revocation back.
        KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kCountActiveKeysWithScope));
        stmt.Bind(1, workspace_id).Bind(2, revoked_ms).Bind(3, keep_scope);
        KILN_ASSIGN_OR_RETURN(int64_t left, ScalarInt(stmt));
        if (left == 0) {
          return Status::Conflict(
              "LAST_KEY_WITH_SCOPE",
              "key " + id + " is the workspace's last active key with scope " + keep_scope);
        }
      }
      return InsertEventRow(db, event);
    });
  }

  Status RevokeJwt(const std::string& jti, int64_t expires_ms, int64_t now_ms) override {
    return db_.Write([&](Db& db) -> Status {
      {
        KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kPruneRevokedJwts));
        KILN_RETURN_IF_ERROR(stmt.Bind(1, now_ms).Run());
      }
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kRevokeJwt));
      return stmt.Bind(1, jti).Bind(2, expires_ms).Run();
    });
  }

  Result<bool> IsJwtRevoked(const std::string& jti) override {
    return db_.Read([&](Db& db) -> Result<bool> {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kIsJwtRevoked));
      return stmt.Bind(1, jti).Step();
    });
  }

  Status TouchKey(const std::string& id, int64_t used_ms) override {
    // One statement commits atomically on its own; no event goes with it.
    return db_.WriteOne([&](Db& db) -> Status {
      {
        KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kTouchKey));
        KILN_RETURN_IF_ERROR(stmt.Bind(1, used_ms).Bind(2, id).Run());
      }
      if (db.Changes() == 0) {
        return Status::NotFound("KEY_NOT_FOUND", "no key " + id);
      }
      return Status::Ok();
    });
  }

  Status AppendEvent(const Event& event) override {
    return db_.WriteOne([&](Db& db) { return InsertEventRow(db, event); });
  }

  Result<std::vector<Event>> ListEvents(const std::string& workspace_id,
                                        const PageRequest& page) override {
    KILN_RETURN_IF_ERROR(ValidatePage(page));
    // seq 0 means "from the newest": every seq is below INT64_MAX. A plain bound (rather
    // than "? = 0 OR seq < ?") lets SQLite walk the (workspace_id, seq) index backwards.
    int64_t before = page.seq == 0 ? std::numeric_limits<int64_t>::max() : page.seq;
    return db_.Read([&](Db& db) -> Result<std::vector<Event>> {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kListEvents));
      stmt.Bind(1, workspace_id).Bind(2, before).Bind(3, int64_t{page.limit});
      return Collect<Event>(stmt, ReadEvent);
    });
  }

  Result<std::optional<IdempotencyRecord>> GetIdempotency(const std::string& key_id,
                                                          const std::string& idem_key) override {
    return db_.Read([&](Db& db) -> Result<std::optional<IdempotencyRecord>> {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kGetIdempotency));
      KILN_ASSIGN_OR_RETURN(bool row, stmt.Bind(1, key_id).Bind(2, idem_key).Step());
      if (!row) {
        return std::optional<IdempotencyRecord>();
      }
      IdempotencyRecord record;
      record.key_id = stmt.Text(0);
      record.idem_key = stmt.Text(1);
      record.request_hash = stmt.Text(2);
      record.status = static_cast<int>(stmt.Int64(3));
      record.sealed_body = stmt.Text(4);
      record.created_ms = stmt.Int64(5);
      return std::optional<IdempotencyRecord>(std::move(record));
    });
  }

  Status PutIdempotency(const IdempotencyRecord& record) override {
    return db_.WriteOne([&](Db& db) -> Status {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kPutIdempotency));
      return stmt.Bind(1, record.key_id)
          .Bind(2, record.idem_key)
          .Bind(3, record.request_hash)
          .Bind(4, int64_t{record.status})
          .Bind(5, record.sealed_body)
          .Bind(6, record.created_ms)
          .Run();
    });
  }

  Result<int64_t> PurgeIdempotency(int64_t older_than_ms) override {
    return db_.WriteOne([&](Db& db) -> Result<int64_t> {
      {
        KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kPurgeIdempotency));
        KILN_RETURN_IF_ERROR(stmt.Bind(1, older_than_ms).Run());
      }
      return db.Changes();
    });
  }

  Status InsertSandbox(const Sandbox& sandbox, const SandboxQuota& quota,
                       const Event& event) override {
    return sandboxes::Insert(db_, sandbox, quota, event);
  }
  Result<Sandbox> GetSandbox(const std::string& workspace_id, const std::string& id) override {
    return sandboxes::Get(db_, workspace_id, id);
  }
  Result<std::vector<Sandbox>> ListSandboxes(const std::string& workspace_id,
                                             const std::string& status,
                                             const PageRequest& page) override {
    return sandboxes::List(db_, workspace_id, status, page);
  }
  Result<std::vector<Sandbox>> ListLiveSandboxes() override { return sandboxes::ListLive(db_); }
  Status UpdateSandbox(const Sandbox& sandbox, const Event* event) override {
    return sandboxes::Update(db_, sandbox, event);
  }
  Status InsertTemplate(const Template& tpl, const Event& event) override {
    return sandboxes::InsertTemplate(db_, tpl, event);
  }
  Result<Template> GetTemplate(const std::string& workspace_id, const std::string& name) override {
    return sandboxes::GetTemplate(db_, workspace_id, name);
  }
  Result<std::vector<Template>> ListTemplates(const std::string& workspace_id) override {
    return sandboxes::ListTemplates(db_, &workspace_id);
  }
  Result<std::vector<Template>> ListAllTemplates() override {
    return sandboxes::ListTemplates(db_, nullptr);
  }
  Status UpdateTemplate(const Template& tpl) override {
    return sandboxes::UpdateTemplate(db_, tpl);
  }
  Status DeleteTemplate(const std::string& workspace_id, const std::string& name,
                        const Event& event) override {
    return sandboxes::DeleteTemplate(db_, workspace_id, name, event);
  }

  Status InsertApp(const App& app, int64_t max_apps, const Event& event) override {
    return apps::InsertApp(db_, app, max_apps, event);
  }
  Result<App> GetApp(const std::string& workspace_id, const std::string& id_or_name) override {
    return apps::GetApp(db_, workspace_id, id_or_name);
  }
  Result<std::vector<App>> ListApps(const std::string& workspace_id,
                                    const PageRequest& page) override {
    return apps::ListApps(db_, workspace_id, page);
  }
  Result<std::vector<App>> ListAllApps() override { return apps::ListAllApps(db_); }
  Status UpdateApp(const App& app, const Event* event) override {
    return apps::UpdateApp(db_, app, event);
  }
  Status DeleteApp(const std::string& workspace_id, const std::string& id,
                   const Event& event) override {
    return apps::DeleteApp(db_, workspace_id, id, event);
  }
  Status InsertDeployment(const Deployment& deployment, const Event& event) override {
    return apps::InsertDeployment(db_, deployment, event);
  }
  Result<Deployment> GetDeployment(const std::string& workspace_id,
                                   const std::string& id) override {
    return apps::GetDeployment(db_, workspace_id, id);
  }
  Result<std::optional<Deployment>> ActiveDeployment(const std::string& app_id) override {
    return apps::ActiveDeployment(db_, app_id);
  }
  Result<std::vector<Deployment>> ListDeployments(const std::string& app_id,
                                                  const PageRequest& page) override {
    return apps::ListDeployments(db_, app_id, page);
  }
  Result<std::vector<Deployment>> ListActiveDeployments() override {
    return apps::ListActiveDeployments(db_);
  }
  Status UpdateDeployment(const Deployment& deployment, const App* app,
                          const Event* event) override {
    return apps::UpdateDeployment(db_, deployment, app, event);
  }
  Status InsertRelease(const Release& release) override {
    return apps::InsertRelease(db_, release);
  }
  Result<Release> GetRelease(const std::string& app_id, const std::string& id) override {
    return apps::GetRelease(db_, app_id, id);
  }
  Result<std::vector<Release>> ListReleases(const std::string& app_id) override {
    return apps::ListReleases(db_, app_id);
  }
  Status UpdateRelease(const Release& release) override {
    return apps::UpdateRelease(db_, release);
  }
  Result<std::vector<EnvVar>> ListEnv(const std::string& app_id) override {
    return apps::ListEnv(db_, app_id);
  }
  Status SetEnv(const std::string& app_id, const std::vector<EnvVar>& vars,
                const Event& event) override {
    return apps::SetEnv(db_, app_id, vars, event);
  }
  Status DeleteEnv(const std::string& app_id, const std::string& key, const Event& event) override {
    return apps::DeleteEnv(db_, app_id, key, event);
  }

  Status InsertAccessToken(const AccessToken& token, const Event& event) override {
    return gateway_tables::InsertAccessToken(db_, token, event);
  }
  Result<AccessToken> FindAccessToken(const std::string& hash) override {
    return gateway_tables::FindAccessToken(db_, hash);
  }
  Result<std::vector<AccessToken>> ListAccessTokens(const std::string& workspace_id,
                                                    const std::string& target_id) override {
    return gateway_tables::ListAccessTokens(db_, workspace_id, target_id);
  }
  Status RevokeAccessToken(const std::string& workspace_id, const std::string& target_id,
                           const std::string& id, int64_t revoked_ms, const Event& event) override {
    return gateway_tables::RevokeAccessToken(db_, workspace_id, target_id, id, revoked_ms, event);
  }
  Status TouchAccessToken(const std::string& id, int64_t used_ms) override {
    return gateway_tables::TouchAccessToken(db_, id, used_ms);
  }

  Result<std::vector<Domain>> ListDomains(const std::string& app_id) override {
    return gateway_tables::ListDomains(db_, app_id);
  }
  Result<std::vector<Domain>> ListAllDomains() override {
    return gateway_tables::ListAllDomains(db_);
  }
  Status SetDomains(const std::string& workspace_id, const std::string& app_id,
                    const std::vector<Domain>& domains, const Event& event) override {
    return gateway_tables::SetDomains(db_, workspace_id, app_id, domains, event);
  }
  Status UpdateDomain(const Domain& domain) override {
    return gateway_tables::UpdateDomain(db_, domain);
  }

  Status CheckIntegrity() override {
    return db_.Read([&](Db& db) -> Status {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kIntegrityCheck));
      KILN_ASSIGN_OR_RETURN(std::vector<std::string> lines,
                            Collect<std::string>(stmt, [](const Stmt& s) { return s.Text(0); }));
      if (lines.size() == 1 && lines[0] == "ok") {
        return Status::Ok();
      }
      std::string message = "kiln.db failed its integrity check:";
      for (size_t i = 0; i < lines.size() && i < 10; ++i) {
        message += "\n  " + lines[i];
      }
      return Status::Internal(std::move(message), "restore kiln.db from a backup");
    });
  }

 private:
  SqliteAccess db_;
};

}  // namespace

Result<std::unique_ptr<Store>> OpenSqliteStore(const std::filesystem::path& path) {
  std::filesystem::path dir = path.parent_path();
  if (!dir.empty()) {
    std::error_code ec;
    if (std::filesystem::create_directories(dir, ec)) {
      // A new data_dir: it will hold master.key too, so only kiln's user may enter it.
      std::filesystem::permissions(dir, std::filesystem::perms::owner_all,
                                   std::filesystem::perm_options::replace, ec);
    }
    if (ec) {
      return Status::FromErrno("mkdir(\"" + dir.string() + "\")", ec.value());
    }
  }
  KILN_ASSIGN_OR_RETURN(std::unique_ptr<Db> writer, Db::Open(path.string(), /*read_only=*/false));
  KILN_RETURN_IF_ERROR(Migrate(*writer));
  return std::unique_ptr<Store>(new SqliteStore(path.string(), std::move(writer)));
}

}  // namespace kiln::store
