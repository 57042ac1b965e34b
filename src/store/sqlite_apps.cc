#include "store/sqlite_apps.h"

#include <limits>
#include <string_view>

namespace kiln::store::apps {
namespace {

using sqlite::Db;
using sqlite::Query;
using sqlite::Stmt;

// ---- Statements. The column lists match the Read* functions below. ----

constexpr Query kAppNameTaken{"check app name", "SELECT 1 FROM apps WHERE name = ?"};
constexpr Query kCountApps{"count apps", "SELECT COUNT(*) FROM apps WHERE workspace_id = ?"};
constexpr Query kInsertApp{
    "insert app",
    "INSERT INTO apps (id, workspace_id, name, port, memory_mb, millicpus, access_policy, "
    "sleep_after_minutes, data_quota_mb, status, release_id, instance_id, restarts, created_ms, "
    "updated_ms, created_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"};
constexpr Query kGetAppById{
    "get app",
    "SELECT seq, id, workspace_id, name, port, memory_mb, millicpus, access_policy, "
    "sleep_after_minutes, data_quota_mb, status, release_id, instance_id, restarts, created_ms, "
    "updated_ms, created_by FROM apps WHERE id = ? AND workspace_id = ?"};
constexpr Query kGetAppByName{
    "get app by name",
    "SELECT seq, id, workspace_id, name, port, memory_mb, millicpus, access_policy, "
    "sleep_after_minutes, data_quota_mb, status, release_id, instance_id, restarts, created_ms, "
    "updated_ms, created_by FROM apps WHERE name = ? AND workspace_id = ?"};
constexpr Query kListApps{
    "list apps",
    "SELECT seq, id, workspace_id, name, port, memory_mb, millicpus, access_policy, "
    "sleep_after_minutes, data_quota_mb, status, release_id, instance_id, restarts, created_ms, "
    "updated_ms, created_by FROM apps WHERE workspace_id = ? AND seq > ? "
    "ORDER BY seq ASC LIMIT ?"};
constexpr Query kListAllApps{
    "list apps of every workspace",
    "SELECT seq, id, workspace_id, name, port, memory_mb, millicpus, access_policy, "
    "sleep_after_minutes, data_quota_mb, status, release_id, instance_id, restarts, created_ms, "
    "updated_ms, created_by FROM apps ORDER BY seq ASC"};
constexpr Query kUpdateApp{
    "update app",
    "UPDATE apps SET port = ?, memory_mb = ?, millicpus = ?, access_policy = ?, "
    "sleep_after_minutes = ?, data_quota_mb = ?, status = ?, release_id = ?, instance_id = ?, "
    "restarts = ?, updated_ms = ? WHERE id = ? AND workspace_id = ?"};
constexpr Query kAppExists{"check app in workspace",
                           "SELECT name FROM apps WHERE id = ? AND workspace_id = ?"};
// For children that name only the app: the caller resolved it in its workspace already.
constexpr Query kAppExistsAnywhere{"check app", "SELECT 1 FROM apps WHERE id = ?"};
constexpr Query kDeleteAppEnv{"delete app env", "DELETE FROM app_env WHERE app_id = ?"};
constexpr Query kDeleteAppReleases{"delete app releases", "DELETE FROM releases WHERE app_id = ?"};
constexpr Query kDeleteAppDeployments{"delete app deployments",
                                      "DELETE FROM deployments WHERE app_id = ?"};
constexpr Query kDeleteAppTokens{"delete app access tokens",
                                 "DELETE FROM access_tokens WHERE target_id = ?"};
constexpr Query kDeleteAppDomains{"delete app domains", "DELETE FROM app_domains WHERE app_id = ?"};
constexpr Query kDeleteApp{"delete app", "DELETE FROM apps WHERE id = ? AND workspace_id = ?"};

constexpr Query kInsertDeployment{
    "insert deployment",
    "INSERT INTO deployments (id, workspace_id, app_id, kind, status, source, config, steps, "
    "release_id, error, created_ms, finished_ms, created_by) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"};
constexpr Query kGetDeployment{
    "get deployment",
    "SELECT seq, id, workspace_id, app_id, kind, status, source, config, steps, release_id, "
    "error, created_ms, finished_ms, created_by FROM deployments "
    "WHERE id = ? AND workspace_id = ?"};
// The status list here, in ListActive and in the deployments_one_active index is the one
// IsActive() tests.
constexpr Query kActiveDeployment{
    "get active deployment",
    "SELECT seq, id, workspace_id, app_id, kind, status, source, config, steps, release_id, "
    "error, created_ms, finished_ms, created_by FROM deployments "
    "WHERE app_id = ? AND status IN ('queued', 'building', 'deploying') "
    "ORDER BY seq DESC LIMIT 1"};
constexpr Query kOtherActiveDeployment{
    "check other active deployment",
    "SELECT id FROM deployments "
    "WHERE app_id = ? AND id != ? AND status IN ('queued', 'building', 'deploying')"};
constexpr Query kListDeployments{
    "list deployments",
    "SELECT seq, id, workspace_id, app_id, kind, status, source, config, steps, release_id, "
    "error, created_ms, finished_ms, created_by FROM deployments "
    "WHERE app_id = ? AND seq < ? ORDER BY seq DESC LIMIT ?"};
constexpr Query kListActiveDeployments{
    "list active deployments of every workspace",
    "SELECT seq, id, workspace_id, app_id, kind, status, source, config, steps, release_id, "
    "error, created_ms, finished_ms, created_by FROM deployments "
    "WHERE status IN ('queued', 'building', 'deploying') ORDER BY seq ASC"};
constexpr Query kUpdateDeployment{
    "update deployment",
    "UPDATE deployments SET status = ?, steps = ?, release_id = ?, error = ?, finished_ms = ? "
    "WHERE id = ? AND workspace_id = ?"};
// Written after the deployment itself, so its app_id comes from the row, not the caller.
constexpr Query kSupersedeLive{
    "supersede live deployments",
    "UPDATE deployments SET status = 'superseded' WHERE status = 'live' AND id != ?1 "
    "AND app_id = (SELECT app_id FROM deployments WHERE id = ?1)"};
constexpr Query kDeploymentApp{"get deployment's app",
                               "SELECT app_id FROM deployments WHERE id = ? AND workspace_id = ?"};

constexpr Query kInsertRelease{
    "insert release",
    "INSERT INTO releases (id, workspace_id, app_id, deployment_id, plan, size_bytes, status, "
    "created_ms) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"};
constexpr Query kGetRelease{
    "get release",
    "SELECT seq, id, workspace_id, app_id, deployment_id, plan, size_bytes, status, created_ms "
    "FROM releases WHERE id = ? AND app_id = ?"};
constexpr Query kListReleases{
    "list releases",
    "SELECT seq, id, workspace_id, app_id, deployment_id, plan, size_bytes, status, created_ms "
    "FROM releases WHERE app_id = ? ORDER BY seq DESC"};
constexpr Query kUpdateRelease{
    "update release", "UPDATE releases SET size_bytes = ?, status = ? WHERE id = ? AND app_id = ?"};

constexpr Query kListEnv{
    "list app env",
    "SELECT key, value_sealed, secret, build, updated_ms FROM app_env WHERE app_id = ? "
    "ORDER BY key ASC"};
constexpr Query kUpsertEnv{
    "set app env",
    "INSERT INTO app_env (app_id, key, value_sealed, secret, build, updated_ms) "
    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (app_id, key) DO UPDATE SET "
    "value_sealed = excluded.value_sealed, secret = excluded.secret, build = excluded.build, "
    "updated_ms = excluded.updated_ms"};
constexpr Query kDeleteEnv{"delete app env var",
                           "DELETE FROM app_env WHERE app_id = ? AND key = ?"};

// ---- Rows ----

App ReadApp(const Stmt& s) {
  App a;
  a.seq = s.Int64(0);
  a.id = s.Text(1);
  a.workspace_id = s.Text(2);
  a.name = s.Text(3);
  a.port = s.Int64(4);
  a.memory_mb = s.Int64(5);
  a.millicpus = s.Int64(6);
  a.access_policy = s.Text(7);
  a.sleep_after_minutes = s.Int64(8);
  a.data_quota_mb = s.Int64(9);
  a.status = s.Text(10);
  a.release_id = s.Text(11);
  a.instance_id = s.Text(12);
  a.restarts = s.Int64(13);
  a.created_ms = s.Int64(14);
  a.updated_ms = s.Int64(15);
  a.created_by = s.Text(16);
  return a;
}

Deployment ReadDeployment(const Stmt& s) {
  Deployment d;
  d.seq = s.Int64(0);
  d.id = s.Text(1);
  d.workspace_id = s.Text(2);
  d.app_id = s.Text(3);
  d.kind = s.Text(4);
  d.status = s.Text(5);
  d.source = s.Text(6);
  d.config = s.Text(7);
  d.steps = s.Text(8);
  d.release_id = s.Text(9);
  d.error = s.Text(10);
  d.created_ms = s.Int64(11);
  d.finished_ms = s.Int64(12);
  d.created_by = s.Text(13);
  return d;
}

Release ReadRelease(const Stmt& s) {
  Release r;
  r.seq = s.Int64(0);
  r.id = s.Text(1);
  r.workspace_id = s.Text(2);
  r.app_id = s.Text(3);
  r.deployment_id = s.Text(4);
  r.plan = s.Text(5);
  r.size_bytes = s.Int64(6);
  r.status = s.Text(7);
  r.created_ms = s.Int64(8);
  return r;
}

EnvVar ReadEnvVar(const Stmt& s) {
  EnvVar v;
  v.key = s.Text(0);
  v.value_sealed = s.Text(1);
  v.secret = s.Int64(2) != 0;
  v.build = s.Int64(3) != 0;
  v.updated_ms = s.Int64(4);
  return v;
}

// JSON columns hold valid JSON even when the caller left them empty.
std::string_view OrJson(const std::string& text, std::string_view empty) {
  return text.empty() ? empty : std::string_view(text);
}

bool IsActive(const std::string& status) {
  return status == "queued" || status == "building" || status == "deploying";
}

Status ValidatePage(const PageRequest& page) {
  if (page.limit < 1) {
    return Status::InvalidArgument(
        "INVALID_LIMIT", "page limit must be at least 1, got " + std::to_string(page.limit));
  }
  return Status::Ok();
}

Status AppNotFound(const std::string& id_or_name) {
  return Status::NotFound("APP_NOT_FOUND", "no app \"" + id_or_name + "\" in this workspace",
                          "list your apps with GET /v1/apps");
}

Status DeploymentNotFound(const std::string& id) {
  return Status::NotFound("DEPLOYMENT_NOT_FOUND", "no deployment " + id + " in this workspace",
                          "list the app's deployments with GET /v1/apps/APP/deployments");
}

Status ReleaseNotFound(const std::string& id) {
  return Status::NotFound("RELEASE_NOT_FOUND", "no release " + id + " of this app",
                          "list the app's deployments with GET /v1/apps/APP/deployments");
}

Status DeployInProgress(const std::string& app_name, const std::string& active_id) {
  return Status::Conflict(
      "DEPLOY_IN_PROGRESS",
      "app " + app_name + " already has deployment " + active_id + " in progress",
      "wait for it (GET /v1/deployments/" + active_id + ") or cancel it (POST /v1/deployments/" +
          active_id + "/cancel)");
}

// The name of app `app_id` of `workspace_id`, or APP_NOT_FOUND.
Result<std::string> AppName(Db& db, const std::string& workspace_id, const std::string& app_id) {
  KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kAppExists));
  KILN_ASSIGN_OR_RETURN(bool row, stmt.Bind(1, app_id).Bind(2, workspace_id).Step());
  if (!row) {
    return AppNotFound(app_id);
  }
  return stmt.Text(0);
}

// Children that name only the app (env vars): the caller resolved the app in its workspace
// first; this turns a missing parent into APP_NOT_FOUND rather than a foreign-key failure.
Status CheckAppExists(Db& db, const std::string& app_id) {
  KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kAppExistsAnywhere));
  KILN_ASSIGN_OR_RETURN(bool row, stmt.Bind(1, app_id).Step());
  return row ? Status::Ok() : AppNotFound(app_id);
}

// The id of another active deployment of `app_id` than `deployment_id`, "" when none.
Result<std::string> OtherActiveDeployment(Db& db, const std::string& app_id,
                                          const std::string& deployment_id) {
  KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kOtherActiveDeployment));
  KILN_ASSIGN_OR_RETURN(bool row, stmt.Bind(1, app_id).Bind(2, deployment_id).Step());
  return row ? stmt.Text(0) : std::string();
}

Status UpdateAppRow(Db& db, const App& a) {
  {
    KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kUpdateApp));
    KILN_RETURN_IF_ERROR(stmt.Bind(1, a.port)
                             .Bind(2, a.memory_mb)
                             .Bind(3, a.millicpus)
                             .Bind(4, a.access_policy)
                             .Bind(5, a.sleep_after_minutes)
                             .Bind(6, a.data_quota_mb)
                             .Bind(7, a.status)
                             .Bind(8, a.release_id)
                             .Bind(9, a.instance_id)
                             .Bind(10, a.restarts)
                             .Bind(11, a.updated_ms)
                             .Bind(12, a.id)
                             .Bind(13, a.workspace_id)
                             .Run());
  }
  return db.Changes() == 0 ? AppNotFound(a.id) : Status::Ok();
}

Status RunForApp(Db& db, const Query& query, const std::string& app_id) {
  KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(query));
  return stmt.Bind(1, app_id).Run();
}

}  // namespace

// ---- Apps ----

Status InsertApp(SqliteAccess& access, const App& a, int64_t max_apps, const Event& event) {
  return access.Write([&](Db& db) -> Status {
    // Checked first for a message that names the app; the UNIQUE index still guards it.
    {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kAppNameTaken));
      KILN_ASSIGN_OR_RETURN(bool taken, stmt.Bind(1, a.name).Step());
      if (taken) {
        return Status::Conflict(
            "APP_EXISTS", "an app named \"" + a.name + "\" already exists",
            "app names are host names, unique on this server: pick another name");
      }
    }
    if (max_apps > 0) {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kCountApps));
      KILN_ASSIGN_OR_RETURN(bool row, stmt.Bind(1, a.workspace_id).Step());
      int64_t count = row ? stmt.Int64(0) : 0;
      if (count >= max_apps) {
        return Status::Conflict(
            "APP_LIMIT_REACHED",
            "the workspace already has " + std::to_string(count) + " apps, its limit",
            "delete an app you no longer need, or ask the operator to raise "
            "[apps] max_per_workspace");
      }
    }
    {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kInsertApp));
      KILN_RETURN_IF_ERROR(stmt.Bind(1, a.id)
                               .Bind(2, a.workspace_id)
                               .Bind(3, a.name)
                               .Bind(4, a.port)
                               .Bind(5, a.memory_mb)
                               .Bind(6, a.millicpus)
                               .Bind(7, a.access_policy)
                               .Bind(8, a.sleep_after_minutes)
                               .Bind(9, a.data_quota_mb)
                               .Bind(10, a.status)
                               .Bind(11, a.release_id)
                               .Bind(12, a.instance_id)
                               .Bind(13, a.restarts)
                               .Bind(14, a.created_ms)
                               .Bind(15, a.updated_ms)
                               .Bind(16, a.created_by)
                               .Run());
    }
    return InsertEventRow(db, event);
  });
}

Result<App> GetApp(SqliteAccess& access, const std::string& workspace_id,
                   const std::string& id_or_name) {
  // Names are DNS labels, which cannot hold '_', so "app_" tells an id from a name.
  const Query& query = id_or_name.starts_with("app_") ? kGetAppById : kGetAppByName;
  return access.Read([&](Db& db) -> Result<App> {
    KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(query));
    KILN_ASSIGN_OR_RETURN(bool row, stmt.Bind(1, id_or_name).Bind(2, workspace_id).Step());
    if (!row) {
      return AppNotFound(id_or_name);
    }
    return ReadApp(stmt);
  });
}

Result<std::vector<App>> ListApps(SqliteAccess& access, const std::string& workspace_id,
                                  const PageRequest& page) {
  KILN_RETURN_IF_ERROR(ValidatePage(page));
  return access.Read([&](Db& db) -> Result<std::vector<App>> {
    KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kListApps));
    stmt.Bind(1, workspace_id).Bind(2, page.seq).Bind(3, int64_t{page.limit});
    return Collect<App>(stmt, ReadApp);
  });
}

Result<std::vector<App>> ListAllApps(SqliteAccess& access) {
  return access.Read([&](Db& db) -> Result<std::vector<App>> {
    KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kListAllApps));
    return Collect<App>(stmt, ReadApp);
  });
}

Status UpdateApp(SqliteAccess& access, const App& app, const Event* event) {
  return access.Write([&](Db& db) -> Status {
    KILN_RETURN_IF_ERROR(UpdateAppRow(db, app));
    return event != nullptr ? InsertEventRow(db, *event) : Status::Ok();
  });
}

Status DeleteApp(SqliteAccess& access, const std::string& workspace_id, const std::string& id,
                 const Event& event) {
  return access.Write([&](Db& db) -> Status {
    // Scoped to the workspace before any child goes: another workspace's id deletes nothing.
    KILN_RETURN_IF_ERROR(AppName(db, workspace_id, id).status());
    KILN_RETURN_IF_ERROR(RunForApp(db, kDeleteAppEnv, id));
    KILN_RETURN_IF_ERROR(RunForApp(db, kDeleteAppReleases, id));
    KILN_RETURN_IF_ERROR(RunForApp(db, kDeleteAppDeployments, id));
    KILN_RETURN_IF_ERROR(RunForApp(db, kDeleteAppTokens, id));
    KILN_RETURN_IF_ERROR(RunForApp(db, kDeleteAppDomains, id));
    {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kDeleteApp));
      KILN_RETURN_IF_ERROR(stmt.Bind(1, id).Bind(2, workspace_id).Run());
    }
    return InsertEventRow(db, event);
  });
}

// ---- Deployments ----

Status InsertDeployment(SqliteAccess& access, const Deployment& d, const Event& event) {
  return access.Write([&](Db& db) -> Status {
    KILN_ASSIGN_OR_RETURN(std::string app_name, AppName(db, d.workspace_id, d.app_id));
    if (IsActive(d.status)) {
      KILN_ASSIGN_OR_RETURN(std::string active, OtherActiveDeployment(db, d.app_id, d.id));
      if (!active.empty()) {
        return DeployInProgress(app_name, active);
      }
    }
    {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kInsertDeployment));
      KILN_RETURN_IF_ERROR(stmt.Bind(1, d.id)
                               .Bind(2, d.workspace_id)
                               .Bind(3, d.app_id)
                               .Bind(4, d.kind)
                               .Bind(5, d.status)
                               .Bind(6, OrJson(d.source, "{}"))
                               .Bind(7, OrJson(d.config, "{}"))
                               .Bind(8, OrJson(d.steps, "[]"))
                               .Bind(9, d.release_id)
                               .Bind(10, d.error)
                               .Bind(11, d.created_ms)
                               .Bind(12, d.finished_ms)
                               .Bind(13, d.created_by)
                               .Run());
    }
    return InsertEventRow(db, event);
  });
}

Result<Deployment> GetDeployment(SqliteAccess& access, const std::string& workspace_id,
                                 const std::string& id) {
  return access.Read([&](Db& db) -> Result<Deployment> {
    KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kGetDeployment));
    KILN_ASSIGN_OR_RETURN(bool row, stmt.Bind(1, id).Bind(2, workspace_id).Step());
    if (!row) {
      return DeploymentNotFound(id);
    }
    return ReadDeployment(stmt);
  });
}

Result<std::optional<Deployment>> ActiveDeployment(SqliteAccess& access,
                                                   const std::string& app_id) {
  return access.Read([&](Db& db) -> Result<std::optional<Deployment>> {
    KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kActiveDeployment));
    KILN_ASSIGN_OR_RETURN(bool row, stmt.Bind(1, app_id).Step());
    if (!row) {
      return std::optional<Deployment>();
    }
    return std::optional<Deployment>(ReadDeployment(stmt));
  });
}

Result<std::vector<Deployment>> ListDeployments(SqliteAccess& access, const std::string& app_id,
                                                const PageRequest& page) {
  KILN_RETURN_IF_ERROR(ValidatePage(page));
  // seq 0 means "from the newest"; a plain bound lets SQLite walk (app_id, seq) backwards.
  int64_t before = page.seq == 0 ? std::numeric_limits<int64_t>::max() : page.seq;
  return access.Read([&](Db& db) -> Result<std::vector<Deployment>> {
    KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kListDeployments));
    stmt.Bind(1, app_id).Bind(2, before).Bind(3, int64_t{page.limit});
    return Collect<Deployment>(stmt, ReadDeployment);
  });
}

Result<std::vector<Deployment>> ListActiveDeployments(SqliteAccess& access) {
  return access.Read([&](Db& db) -> Result<std::vector<Deployment>> {
    KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kListActiveDeployments));
    return Collect<Deployment>(stmt, ReadDeployment);
  });
}

Status UpdateDeployment(SqliteAccess& access, const Deployment& d, const App* app,
                        const Event* event) {
  if (app != nullptr && app->id != d.app_id) {
    return Status::InvalidArgument("INVALID_ARGUMENT", "deployment " + d.id + " is of app " +
                                                           d.app_id + ", not of " + app->id);
  }
  return access.Write([&](Db& db) -> Status {
    std::string app_id;
    {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kDeploymentApp));
      KILN_ASSIGN_OR_RETURN(bool row, stmt.Bind(1, d.id).Bind(2, d.workspace_id).Step());
      if (!row) {
        return DeploymentNotFound(d.id);
      }
      app_id = stmt.Text(0);
    }
    if (IsActive(d.status)) {
      // Back to active (a retry) while another one runs would break the one-active rule; the
      // partial index refuses it too, but without naming the other deployment.
      KILN_ASSIGN_OR_RETURN(std::string active, OtherActiveDeployment(db, app_id, d.id));
      if (!active.empty()) {
        KILN_ASSIGN_OR_RETURN(std::string app_name, AppName(db, d.workspace_id, app_id));
        return DeployInProgress(app_name, active);
      }
    }
    {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kUpdateDeployment));
      KILN_RETURN_IF_ERROR(stmt.Bind(1, d.status)
                               .Bind(2, OrJson(d.steps, "[]"))
                               .Bind(3, d.release_id)
                               .Bind(4, d.error)
                               .Bind(5, d.finished_ms)
                               .Bind(6, d.id)
                               .Bind(7, d.workspace_id)
                               .Run());
    }
    if (d.status == "live") {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kSupersedeLive));
      KILN_RETURN_IF_ERROR(stmt.Bind(1, d.id).Run());
    }
    if (app != nullptr) {
      KILN_RETURN_IF_ERROR(UpdateAppRow(db, *app));
    }
    return event != nullptr ? InsertEventRow(db, *event) : Status::Ok();
  });
}

// ---- Releases ----

Status InsertRelease(SqliteAccess& access, const Release& r) {
  return access.Write([&](Db& db) -> Status {
    KILN_RETURN_IF_ERROR(AppName(db, r.workspace_id, r.app_id).status());
    KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kInsertRelease));
    return stmt.Bind(1, r.id)
        .Bind(2, r.workspace_id)
        .Bind(3, r.app_id)
        .Bind(4, r.deployment_id)
        .Bind(5, OrJson(r.plan, "{}"))
        .Bind(6, r.size_bytes)
        .Bind(7, r.status)
        .Bind(8, r.created_ms)
        .Run();
  });
}

Result<Release> GetRelease(SqliteAccess& access, const std::string& app_id, const std::string& id) {
  return access.Read([&](Db& db) -> Result<Release> {
    KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kGetRelease));
    KILN_ASSIGN_OR_RETURN(bool row, stmt.Bind(1, id).Bind(2, app_id).Step());
    if (!row) {
      return ReleaseNotFound(id);
    }
    return ReadRelease(stmt);
  });
}

Result<std::vector<Release>> ListReleases(SqliteAccess& access, const std::string& app_id) {
  return access.Read([&](Db& db) -> Result<std::vector<Release>> {
    KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kListReleases));
    stmt.Bind(1, app_id);
    return Collect<Release>(stmt, ReadRelease);
  });
}

Status UpdateRelease(SqliteAccess& access, const Release& r) {
  return access.WriteOne([&](Db& db) -> Status {
    {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kUpdateRelease));
      KILN_RETURN_IF_ERROR(
          stmt.Bind(1, r.size_bytes).Bind(2, r.status).Bind(3, r.id).Bind(4, r.app_id).Run());
    }
    return db.Changes() == 0 ? ReleaseNotFound(r.id) : Status::Ok();
  });
}

// ---- Env vars ----

Result<std::vector<EnvVar>> ListEnv(SqliteAccess& access, const std::string& app_id) {
  return access.Read([&](Db& db) -> Result<std::vector<EnvVar>> {
    KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kListEnv));
    stmt.Bind(1, app_id);
    return Collect<EnvVar>(stmt, ReadEnvVar);
  });
}

Status SetEnv(SqliteAccess& access, const std::string& app_id, const std::vector<EnvVar>& vars,
              const Event& event) {
  return access.Write([&](Db& db) -> Status {
    KILN_RETURN_IF_ERROR(CheckAppExists(db, app_id));
    for (const EnvVar& v : vars) {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kUpsertEnv));
      KILN_RETURN_IF_ERROR(stmt.Bind(1, app_id)
                               .Bind(2, v.key)
                               .Bind(3, v.value_sealed)
                               .Bind(4, int64_t{v.secret ? 1 : 0})
                               .Bind(5, int64_t{v.build ? 1 : 0})
                               .Bind(6, v.updated_ms)
                               .Run());
    }
    return InsertEventRow(db, event);
  });
}

Status DeleteEnv(SqliteAccess& access, const std::string& app_id, const std::string& key,
                 const Event& event) {
  return access.Write([&](Db& db) -> Status {
    {
      KILN_ASSIGN_OR_RETURN(Stmt stmt, db.Prepare(kDeleteEnv));
      KILN_RETURN_IF_ERROR(stmt.Bind(1, app_id).Bind(2, key).Run());
    }
    if (db.Changes() == 0) {
      return Status::NotFound("ENV_NOT_FOUND", "the app has no variable " + key,
                              "list its variables with GET /v1/apps/APP/env");
    }
    return InsertEventRow(db, event);
  });
}

}  // namespace kiln::store::apps
