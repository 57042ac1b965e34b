#pragma once
// Module-private: the access_tokens table (sqlite_access_tokens.cc) and the app_domains
// table (sqlite_domains.cc) of the SQLite store. SqliteStore's methods of the same names
// forward here; the contracts are in store.h.

#include <string>
#include <vector>

#include "store/sqlite_access.h"
#include "store/store.h"

namespace kiln::store::gateway_tables {

Status InsertAccessToken(SqliteAccess& db, const AccessToken& token, const Event& event);
Result<AccessToken> FindAccessToken(SqliteAccess& db, const std::string& hash);
Result<std::vector<AccessToken>> ListAccessTokens(SqliteAccess& db, const std::string& workspace_id,
                                                  const std::string& target_id);
Status RevokeAccessToken(SqliteAccess& db, const std::string& workspace_id,
                         const std::string& target_id, const std::string& id, int64_t revoked_ms,
                         const Event& event);
Status TouchAccessToken(SqliteAccess& db, const std::string& id, int64_t used_ms);

Result<std::vector<Domain>> ListDomains(SqliteAccess& db, const std::string& app_id);
Result<std::vector<Domain>> ListAllDomains(SqliteAccess& db);
Status SetDomains(SqliteAccess& db, const std::string& workspace_id, const std::string& app_id,
                  const std::vector<Domain>& domains, const Event& event);
Status UpdateDomain(SqliteAccess& db, const Domain& domain);

}  // namespace kiln::store::gateway_tables
