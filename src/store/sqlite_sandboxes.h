#pragma once
// Module-private: the sandboxes and templates tables of the SQLite store. SqliteStore's
// methods of the same names forward here; the contracts are in store.h.

#include <string>
#include <vector>

#include "store/sqlite_access.h"
#include "store/store.h"

namespace kiln::store::sandboxes {

Status Insert(SqliteAccess& db, const Sandbox& sandbox, const SandboxQuota& quota,
              const Event& event);
Result<Sandbox> Get(SqliteAccess& db, const std::string& workspace_id, const std::string& id);
Result<std::vector<Sandbox>> List(SqliteAccess& db, const std::string& workspace_id,
                                  const std::string& status, const PageRequest& page);
Result<std::vector<Sandbox>> ListLive(SqliteAccess& db);
Status Update(SqliteAccess& db, const Sandbox& sandbox, const Event* event);

Status InsertTemplate(SqliteAccess& db, const Template& tpl, const Event& event);
Result<Template> GetTemplate(SqliteAccess& db, const std::string& workspace_id,
                             const std::string& name);
Result<std::vector<Template>> ListTemplates(SqliteAccess& db, const std::string* workspace_id);
Status UpdateTemplate(SqliteAccess& db, const Template& tpl);
Status DeleteTemplate(SqliteAccess& db, const std::string& workspace_id, const std::string& name,
                      const Event& event);

}  // namespace kiln::store::sandboxes
