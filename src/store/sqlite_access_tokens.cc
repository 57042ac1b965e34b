// Placeholder: filled in by the step 4 work on access_tokens.
#include "store/sqlite_gateway.h"

namespace kiln::store::gateway_tables {}  // namespace kiln::store::gateway_tables

namespace kiln::store::gateway_tables {
Status InsertAccessToken(SqliteAccess&, const AccessToken&, const Event&) {
  return Status::Internal("access tokens are not implemented yet");
}
Result<AccessToken> FindAccessToken(SqliteAccess&, const std::string&) {
  return Status::NotFound("TOKEN_NOT_FOUND", "no such access token");
}
Result<std::vector<AccessToken>> ListAccessTokens(SqliteAccess&, const std::string&,
                                                  const std::string&) {
  return std::vector<AccessToken>{};
}
Status RevokeAccessToken(SqliteAccess&, const std::string&, const std::string&, const std::string&,
                         int64_t, const Event&) {
  return Status::NotFound("TOKEN_NOT_FOUND", "no such access token");
}
}  // namespace kiln::store::gateway_tables
