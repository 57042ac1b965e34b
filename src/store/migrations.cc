#include "store/migrations.h"

#include <cassert>
#include <string>

namespace kiln::store {

namespace {

constexpr Migration kMigrations[] = {
    {1, "workspaces, api keys, events, idempotency", R"sql(
CREATE TABLE workspaces (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  id         TEXT    UNIQUE NOT NULL,
  slug       TEXT    UNIQUE NOT NULL,
  name       TEXT    NOT NULL,
  root       INTEGER NOT NULL DEFAULT 0,
  created_ms INTEGER NOT NULL
);

CREATE TABLE api_keys (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  id           TEXT    UNIQUE NOT NULL,
  workspace_id TEXT    NOT NULL REFERENCES workspaces(id),
  name         TEXT    NOT NULL,
  prefix       TEXT    NOT NULL,
  hash         TEXT    UNIQUE NOT NULL,
  scopes       TEXT    NOT NULL,  -- space-separated scope tokens
  created_ms   INTEGER NOT NULL,
  last_used_ms INTEGER NOT NULL DEFAULT 0,
  expires_ms   INTEGER NOT NULL DEFAULT 0,
  revoked_ms   INTEGER NOT NULL DEFAULT 0,
  created_by   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX api_keys_workspace_seq ON api_keys (workspace_id, seq);

CREATE TABLE events (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  id           TEXT    UNIQUE NOT NULL,
  workspace_id TEXT    NOT NULL,
  type         TEXT    NOT NULL,
  actor        TEXT    NOT NULL DEFAULT '',
  subject      TEXT    NOT NULL DEFAULT '',
  data         TEXT    NOT NULL DEFAULT '{}',
  created_ms   INTEGER NOT NULL
);
CREATE INDEX events_workspace_seq ON events (workspace_id, seq);

CREATE TABLE idempotency (
  key_id       TEXT    NOT NULL,
  idem_key     TEXT    NOT NULL,
  request_hash TEXT    NOT NULL,
  status       INTEGER NOT NULL,
  sealed_body  TEXT    NOT NULL,
  created_ms   INTEGER NOT NULL,
  PRIMARY KEY (key_id, idem_key)
);
CREATE INDEX idempotency_created ON idempotency (created_ms);
)sql"},
    {2, "sandboxes and templates", R"sql(
CREATE TABLE sandboxes (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  id           TEXT    UNIQUE NOT NULL,
  workspace_id TEXT    NOT NULL REFERENCES workspaces(id),
  template     TEXT    NOT NULL,
  status       TEXT    NOT NULL,
  metadata     TEXT    NOT NULL DEFAULT '{}',
  env_sealed   TEXT    NOT NULL DEFAULT '',
  memory_mb    INTEGER NOT NULL,
  millicpus    INTEGER NOT NULL,
  pids         INTEGER NOT NULL,
  network      TEXT    NOT NULL,
  created_ms   INTEGER NOT NULL,
  expires_ms   INTEGER NOT NULL,
  ended_ms     INTEGER NOT NULL DEFAULT 0,
  end_reason   TEXT    NOT NULL DEFAULT '',
  created_by   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX sandboxes_workspace_seq ON sandboxes (workspace_id, seq);
CREATE INDEX sandboxes_live ON sandboxes (status) WHERE status IN ('running', 'paused');

CREATE TABLE templates (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  id           TEXT    UNIQUE NOT NULL,
  workspace_id TEXT    NOT NULL REFERENCES workspaces(id),
  name         TEXT    NOT NULL,
  parent       TEXT    NOT NULL,
  steps        TEXT    NOT NULL DEFAULT '[]',
  env_sealed   TEXT    NOT NULL DEFAULT '',
  status       TEXT    NOT NULL,
  error        TEXT    NOT NULL DEFAULT '',
  created_ms   INTEGER NOT NULL,
  built_ms     INTEGER NOT NULL DEFAULT 0,
  created_by   TEXT    NOT NULL DEFAULT '',
  UNIQUE (workspace_id, name)
);
)sql"},
    {3, "a warm pool per custom template", R"sql(
ALTER TABLE templates ADD COLUMN pool_size INTEGER NOT NULL DEFAULT 0;
)sql"},
    // App names are host names ({name}.{base_domain}), so they are unique on the server, not
    // per workspace. The children of an app reference it without ON DELETE CASCADE: DeleteApp
    // deletes each table's rows itself, so a table it forgot fails the delete instead of being
    // left with orphans.
    {4, "apps", R"sql(
CREATE TABLE apps (
  seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
  id                  TEXT    UNIQUE NOT NULL,
  workspace_id        TEXT    NOT NULL REFERENCES workspaces(id),
  name                TEXT    UNIQUE NOT NULL,
  port                INTEGER NOT NULL,
  memory_mb           INTEGER NOT NULL,
  millicpus           INTEGER NOT NULL,
  access_policy       TEXT    NOT NULL,
  sleep_after_minutes INTEGER NOT NULL DEFAULT 0,
  data_quota_mb       INTEGER NOT NULL,
  status              TEXT    NOT NULL,
  release_id          TEXT    NOT NULL DEFAULT '',
  instance_id         TEXT    NOT NULL DEFAULT '',
  restarts            INTEGER NOT NULL DEFAULT 0,
  created_ms          INTEGER NOT NULL,
  updated_ms          INTEGER NOT NULL,
  created_by          TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX apps_workspace_seq ON apps (workspace_id, seq);

CREATE TABLE deployments (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  id           TEXT    UNIQUE NOT NULL,
  workspace_id TEXT    NOT NULL,
  app_id       TEXT    NOT NULL REFERENCES apps(id),
  kind         TEXT    NOT NULL,
  status       TEXT    NOT NULL,
  source       TEXT    NOT NULL DEFAULT '{}',
  config       TEXT    NOT NULL DEFAULT '{}',
  steps        TEXT    NOT NULL DEFAULT '[]',
  release_id   TEXT    NOT NULL DEFAULT '',
  error        TEXT    NOT NULL DEFAULT '',
  created_ms   INTEGER NOT NULL,
  finished_ms  INTEGER NOT NULL DEFAULT 0,
  created_by   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX deployments_app_seq ON deployments (app_id, seq);
-- At most one active deployment per app. InsertDeployment checks first, for a message that
-- names the active one; this index holds even for a path that forgets to.
CREATE UNIQUE INDEX deployments_one_active ON deployments (app_id)
  WHERE status IN ('queued', 'building', 'deploying');

CREATE TABLE releases (
  seq           INTEGER PRIMARY KEY AUTOINCREMENT,
  id            TEXT    UNIQUE NOT NULL,
  workspace_id  TEXT    NOT NULL,
  app_id        TEXT    NOT NULL REFERENCES apps(id),
  deployment_id TEXT    NOT NULL DEFAULT '',
  plan          TEXT    NOT NULL DEFAULT '{}',
  size_bytes    INTEGER NOT NULL DEFAULT 0,
  status        TEXT    NOT NULL,
  created_ms    INTEGER NOT NULL
);
CREATE INDEX releases_app_seq ON releases (app_id, seq);

CREATE TABLE app_env (
  app_id       TEXT    NOT NULL REFERENCES apps(id),
  key          TEXT    NOT NULL,
  value_sealed TEXT    NOT NULL,
  secret       INTEGER NOT NULL DEFAULT 0,
  build        INTEGER NOT NULL DEFAULT 0,
  updated_ms   INTEGER NOT NULL,
  PRIMARY KEY (app_id, key)
) WITHOUT ROWID;
)sql"},
    {5, "access tokens and custom domains", R"sql(
-- Share-URL and bearer tokens for the gateway's `token` policy. target_id is the app or
-- sandbox they open; the token itself is never stored, only its SHA-256.
CREATE TABLE access_tokens (
  seq          INTEGER PRIMARY KEY AUTOINCREMENT,
  id           TEXT    UNIQUE NOT NULL,
  workspace_id TEXT    NOT NULL,
  target_id    TEXT    NOT NULL,
  kind         TEXT    NOT NULL,
  name         TEXT    NOT NULL DEFAULT '',
  prefix       TEXT    NOT NULL,
  hash         TEXT    UNIQUE NOT NULL,
  created_ms   INTEGER NOT NULL,
  expires_ms   INTEGER NOT NULL,
  revoked_ms   INTEGER NOT NULL DEFAULT 0,
  last_used_ms INTEGER NOT NULL DEFAULT 0,
  created_by   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX access_tokens_target ON access_tokens (target_id, seq);

-- Custom domains of apps; a domain belongs to one app at most.
CREATE TABLE app_domains (
  domain          TEXT    PRIMARY KEY,
  app_id          TEXT    NOT NULL REFERENCES apps(id),
  workspace_id    TEXT    NOT NULL,
  created_ms      INTEGER NOT NULL,
  cert_source     TEXT    NOT NULL DEFAULT 'local',
  cert_status     TEXT    NOT NULL DEFAULT 'pending',
  cert_error      TEXT    NOT NULL DEFAULT '',
  cert_expires_ms INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX app_domains_app ON app_domains (app_id);
)sql"},
    {6, "signed-out sessions", R"sql(
-- JWT ids of dashboard sessions that were signed out, kept until the token would expire.
CREATE TABLE revoked_jwts (
  jti        TEXT    PRIMARY KEY,
  expires_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX revoked_jwts_expires ON revoked_jwts (expires_ms);
)sql"},
};

constexpr sqlite::Query kCurrentVersion{"read schema version",
                                        "SELECT COALESCE(MAX(version), 0) FROM schema_migrations"};
constexpr sqlite::Query kIsApplied{"check migration applied",
                                   "SELECT 1 FROM schema_migrations WHERE version = ?"};
// applied_at comes from SQLite's clock: it is a record for people, not control state.
constexpr sqlite::Query kRecord{
    "record migration",
    "INSERT INTO schema_migrations (version, name, applied_at) "
    "VALUES (?, ?, CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))"};

Result<int64_t> CurrentVersion(sqlite::Db& db) {
  KILN_ASSIGN_OR_RETURN(sqlite::Stmt stmt, db.Prepare(kCurrentVersion));
  KILN_ASSIGN_OR_RETURN(bool row, stmt.Step());
  return row ? stmt.Int64(0) : 0;
}

Status Apply(sqlite::Db& db, const Migration& m) {
  sqlite::Transaction txn(db);
  KILN_RETURN_IF_ERROR(txn.Begin());
  {
    // Another kiln process on the same file may have applied it since we looked; the check
    // is inside the write lock that BEGIN IMMEDIATE took.
    KILN_ASSIGN_OR_RETURN(sqlite::Stmt applied, db.Prepare(kIsApplied));
    KILN_ASSIGN_OR_RETURN(bool row, applied.Bind(1, int64_t{m.version}).Step());
    if (row) {
      return Status::Ok();
    }
  }
  std::string op = "migration " + std::to_string(m.version) + " (" + m.name + ")";
  KILN_RETURN_IF_ERROR(db.Exec(m.sql, op));
  {
    KILN_ASSIGN_OR_RETURN(sqlite::Stmt record, db.Prepare(kRecord));
    KILN_RETURN_IF_ERROR(record.Bind(1, int64_t{m.version}).Bind(2, m.name).Run());
  }
  return txn.Commit();
}

}  // namespace

std::span<const Migration> Migrations() { return kMigrations; }

int LatestSchemaVersion() { return kMigrations[std::size(kMigrations) - 1].version; }

Status Migrate(sqlite::Db& db) {
  KILN_RETURN_IF_ERROR(
      db.Exec("CREATE TABLE IF NOT EXISTS schema_migrations ("
              "version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at INTEGER NOT NULL)",
              "create schema_migrations"));
  KILN_ASSIGN_OR_RETURN(int64_t current, CurrentVersion(db));
  const int latest = LatestSchemaVersion();
  if (current > latest) {
    return Status::Unavailable("DB_TOO_NEW",
                               "kiln.db is at schema version " + std::to_string(current) +
                                   " but this kiln knows up to " + std::to_string(latest),
                               "run a newer kiln or restore a backup");
  }
  for (size_t i = 0; i < std::size(kMigrations); ++i) {
    const Migration& m = kMigrations[i];
    assert(m.version == static_cast<int>(i) + 1 && "migration versions must be 1, 2, 3, ...");
    if (m.version <= current) {
      continue;
    }
    KILN_RETURN_IF_ERROR(Apply(db, m));
  }
  return Status::Ok();
}

}  // namespace kiln::store
