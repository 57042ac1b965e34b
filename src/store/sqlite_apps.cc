// Placeholder until the apps tables land: every call fails.
#include "store/sqlite_apps.h"

namespace kiln::store::apps {
namespace {
Status Todo() { return Status::Internal("apps store not written yet"); }
}  // namespace
Status InsertApp(SqliteAccess&, const App&, int64_t, const Event&) { return Todo(); }
Result<App> GetApp(SqliteAccess&, const std::string&, const std::string&) { return Todo(); }
Result<std::vector<App>> ListApps(SqliteAccess&, const std::string&, const PageRequest&) {
  return Todo();
}
Result<std::vector<App>> ListAllApps(SqliteAccess&) { return Todo(); }
Status UpdateApp(SqliteAccess&, const App&, const Event*) { return Todo(); }
Status DeleteApp(SqliteAccess&, const std::string&, const std::string&, const Event&) {
  return Todo();
}
Status InsertDeployment(SqliteAccess&, const Deployment&, const Event&) { return Todo(); }
Result<Deployment> GetDeployment(SqliteAccess&, const std::string&, const std::string&) {
  return Todo();
}
Result<std::optional<Deployment>> ActiveDeployment(SqliteAccess&, const std::string&) {
  return Todo();
}
Result<std::vector<Deployment>> ListDeployments(SqliteAccess&, const std::string&,
                                                const PageRequest&) {
  return Todo();
}
Result<std::vector<Deployment>> ListActiveDeployments(SqliteAccess&) { return Todo(); }
Status UpdateDeployment(SqliteAccess&, const Deployment&, const App*, const Event*) {
  return Todo();
}
Status InsertRelease(SqliteAccess&, const Release&) { return Todo(); }
Result<Release> GetRelease(SqliteAccess&, const std::string&, const std::string&) {
  return Todo();
}
Result<std::vector<Release>> ListReleases(SqliteAccess&, const std::string&) { return Todo(); }
Status UpdateRelease(SqliteAccess&, const Release&) { return Todo(); }
Result<std::vector<EnvVar>> ListEnv(SqliteAccess&, const std::string&) { return Todo(); }
Status SetEnv(SqliteAccess&, const std::string&, const std::vector<EnvVar>&, const Event&) {
  return Todo();
}
Status DeleteEnv(SqliteAccess&, const std::string&, const std::string&, const Event&) {
  return Todo();
}
}  // namespace kiln::store::apps
