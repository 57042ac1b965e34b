#pragma once
// Module-private: the apps, deployments, releases and app_env tables of the SQLite store.
// SqliteStore's methods of the same names forward here; the contracts are in store.h.

#include <optional>
#include <string>
#include <vector>

#include "store/sqlite_access.h"
#include "store/store.h"

namespace kiln::store::apps {

Status InsertApp(SqliteAccess& db, const App& app, int64_t max_apps, const Event& event);
Result<App> GetApp(SqliteAccess& db, const std::string& workspace_id,
                   const std::string& id_or_name);
Result<std::vector<App>> ListApps(SqliteAccess& db, const std::string& workspace_id,
                                  const PageRequest& page);
Result<std::vector<App>> ListAllApps(SqliteAccess& db);
Status UpdateApp(SqliteAccess& db, const App& app, const Event* event);
Status DeleteApp(SqliteAccess& db, const std::string& workspace_id, const std::string& id,
                 const Event& event);

Status InsertDeployment(SqliteAccess& db, const Deployment& deployment, const Event& event);
Result<Deployment> GetDeployment(SqliteAccess& db, const std::string& workspace_id,
                                 const std::string& id);
Result<std::optional<Deployment>> ActiveDeployment(SqliteAccess& db, const std::string& app_id);
Result<std::vector<Deployment>> ListDeployments(SqliteAccess& db, const std::string& app_id,
                                                const PageRequest& page);
Result<std::vector<Deployment>> ListActiveDeployments(SqliteAccess& db);
Status UpdateDeployment(SqliteAccess& db, const Deployment& deployment, const App* app,
                        const Event* event);

Status InsertRelease(SqliteAccess& db, const Release& release);
Result<Release> GetRelease(SqliteAccess& db, const std::string& app_id, const std::string& id);
Result<std::vector<Release>> ListReleases(SqliteAccess& db, const std::string& app_id);
Status UpdateRelease(SqliteAccess& db, const Release& release);

Result<std::vector<EnvVar>> ListEnv(SqliteAccess& db, const std::string& app_id);
Status SetEnv(SqliteAccess& db, const std::string& app_id, const std::vector<EnvVar>& vars,
              const Event& event);
Status DeleteEnv(SqliteAccess& db, const std::string& app_id, const std::string& key,
                 const Event& event);

}  // namespace kiln::store::apps
