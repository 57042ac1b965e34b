// Placeholder: filled in by the step 4 work on domains.
#include "store/sqlite_gateway.h"

namespace kiln::store::gateway_tables {}  // namespace kiln::store::gateway_tables

namespace kiln::store::gateway_tables {
Result<std::vector<Domain>> ListDomains(SqliteAccess&, const std::string&) {
  return std::vector<Domain>{};
}
Result<std::vector<Domain>> ListAllDomains(SqliteAccess&) { return std::vector<Domain>{}; }
Status SetDomains(SqliteAccess&, const std::string&, const std::string&, const std::vector<Domain>&,
                  const Event&) {
  return Status::Internal("domains are not implemented yet");
}
Status UpdateDomain(SqliteAccess&, const Domain&) {
  return Status::NotFound("DOMAIN_NOT_FOUND", "no such domain");
}
}  // namespace kiln::store::gateway_tables
