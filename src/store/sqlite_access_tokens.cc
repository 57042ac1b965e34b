// The access_tokens table: share-URL and bearer tokens of the gateway's `token` policy. Only
// the SHA-256 of a token is stored; FindAccessToken is the gateway's (cached) lookup by it.
#include "store/sqlite_gateway.h"

namespace kiln::store::gateway_tables {
namespace {

using sqlite::Db;
using sqlite::Query;
using sqlite::Stmt;

// ---- Statements. The column lists match ReadToken below. ----

constexpr Query kInsertToken{
    "insert access token",
    "INSERT INTO access_tokens (id, workspace_id, target_id, kind, name, prefix, hash, "
    "created_ms, expires_ms, revoked_ms, last_used_ms, created_by) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"};
constexpr Query kFindToken{
    "find access token by hash",
    "SELECT seq, id, workspace_id, target_id, kind, name, prefix, hash, created_ms, expires_ms, "
    "revoked_ms, last_used_ms, created_by FROM access_tokens WHERE hash = ?"};
constexpr Query kListTokens{
    "list access tokens",
    "SELECT seq, id, workspace_id, target_id, kind, name, prefix, hash, created_ms, expires_ms, "
    "revoked_ms, last_used_ms, created_by FROM access_tokens "
    "WHERE target_id = ? AND workspace_id = ? ORDER BY seq DESC"};
constexpr Query kTokenRevoked{
    "check access token",
    "SELECT revoked_ms FROM access_tokens WHERE id = ? AND target_id = ? AND workspace_id = ?"};
constexpr Query kRevokeToken{
    "revoke access token",
    "UPDATE access_tokens SET revoked_ms = ? WHERE id = ? AND target_id = ? AND workspace_id = ? "
    "AND revoked_ms = 0"};
// MAX keeps last_used_ms from going back when touches race.
constexpr Query kTouchToken{
    "touch access token",
    "UPDATE access_tokens SET last_used_ms = MAX(last_used_ms, ?) WHERE id = ?"};

AccessToken ReadToken(const Stmt& s) {
  AccessToken t;
  t.seq = s.Int64(0);
  t.id = s.Text(1);
  t.workspace_id = s.Text(2);
  t.target_id = s.Text(3);
  t.kind = s.Text(4);
  t.name = s.Text(5);
  t.prefix = s.Text(6);
  t.hash = s.Text(7);
  t.created_ms = s.Int64(8);
  t.expires_ms = s.Int64(9);
  t.revoked_ms = s.Int64(10);
  t.last_used_ms = s.Int64(11);
  t.created_by = s.Text(12);
  return t;
}

Status TokenNotFound(const std::string& id) {
  return Status::NotFound("TOKEN_NOT_FOUND", "no access token " + id + " of this app or sandbox",
                          "list its tokens with GET /v1/apps/APP/access-tokens");
}

}  // namespace

Status InsertAccessToken(SqliteAccess& access, const AccessToken& t, const Event& event) {
  if (t.kind != "share-url" && t.kind != "bearer") {
    return Status::InvalidArgument(
        "INVALID_ARGUMENT",
        "access token kind must be share-url or bearer, got \"" + t.kind + "\"");
  }
  if (t.hash.empty() || t.expires_ms <= 0) {
    // Every token expires, and one without a hash could never be presented.
    return Status::InvalidArgument("INVALID_ARGUMENT",
                                   "access token " + t.id + " needs a hash and an expiry");
  }
  return access.Write([&](Db& db) -> Status {
    {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kInsertToken));
      KILN_RETURN_IF_ERROR(stmt.Bind(1, t.id)
                               .Bind(2, t.workspace_id)
                               .Bind(3, t.target_id)
                               .Bind(4, t.kind)
                               .Bind(5, t.name)
                               .Bind(6, t.prefix)
                               .Bind(7, t.hash)
                               .Bind(8, t.created_ms)
                               .Bind(9, t.expires_ms)
                               .Bind(10, t.revoked_ms)
                               .Bind(11, t.last_used_ms)
                               .Bind(12, t.created_by)
                               .Run());
    }
    return InsertEventRow(db, event);
  });
}

Result<AccessToken> FindAccessToken(SqliteAccess& access, const std::string& hash) {
  return access.Read([&](Db& db) -> Result<AccessToken> {
    KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kFindToken));
    KILN_ASSIGN_OR_RETURN(bool row, stmt.Bind(1, hash).Step());
    // The hash is a credential's fingerprint: keep it out of the message.
    if (!row) {
      return Status::NotFound("TOKEN_NOT_FOUND", "no access token with this value");
    }
    return ReadToken(stmt);
  });
}

Result<std::vector<AccessToken>> ListAccessTokens(SqliteAccess& access,
                                                  const std::string& workspace_id,
                                                  const std::string& target_id) {
  return access.Read([&](Db& db) -> Result<std::vector<AccessToken>> {
    KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kListTokens));
    stmt.Bind(1, target_id).Bind(2, workspace_id);
    return Collect<AccessToken>(stmt, ReadToken);
  });
}

Status RevokeAccessToken(SqliteAccess& access, const std::string& workspace_id,
                         const std::string& target_id, const std::string& id, int64_t revoked_ms,
                         const Event& event) {
  if (revoked_ms <= 0) {
    // 0 means "not revoked" in the table, so it cannot mark a revocation.
    return Status::InvalidArgument(
        "INVALID_ARGUMENT", "revoked_ms must be positive, got " + std::to_string(revoked_ms));
  }
  return access.Write([&](Db& db) -> Status {
    {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kTokenRevoked));
      KILN_ASSIGN_OR_RETURN(bool row,
                            stmt.Bind(1, id).Bind(2, target_id).Bind(3, workspace_id).Step());
      if (!row) {
        return TokenNotFound(id);
      }
      if (stmt.Int64(0) != 0) {
        // Revoking twice changes nothing and records nothing: the first time stands.
        return Status::Ok();
      }
    }
    {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kRevokeToken));
      KILN_RETURN_IF_ERROR(
          stmt.Bind(1, revoked_ms).Bind(2, id).Bind(3, target_id).Bind(4, workspace_id).Run());
    }
    return InsertEventRow(db, event);
  });
}

Status TouchAccessToken(SqliteAccess& access, const std::string& id, int64_t used_ms) {
  // One statement commits atomically on its own; no event goes with it.
  return access.WriteOne([&](Db& db) -> Status {
    {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kTouchToken));
      KILN_RETURN_IF_ERROR(stmt.Bind(1, used_ms).Bind(2, id).Run());
    }
    return db.Changes() == 0 ? Status::NotFound("TOKEN_NOT_FOUND", "no access token " + id)
                             : Status::Ok();
  });
}

}  // namespace kiln::store::gateway_tables
