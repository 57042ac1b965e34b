#pragma once
// Module-private: apps, their deployments and the instances serving them (DESIGN.md §4).
//
// A deployment materializes its source (service/sources.h) into builds/DEP/app, runs
// install and build in a build instance, moves the result to releases/APP/REL (immutable
// from then on), starts the release on a new instance with PORT set and /data mounted,
// health-checks it, switches the app's route (service.h AppRoute) and then drains and stops
// the instance that served before. A failure at any step leaves the previous release serving.
// Rollback and restart use the same start → check → switch → drain path without a build.
//
// Background work once started: deployments on a pool of `apps.concurrent_builds` threads,
// and a monitor that starts an app's process again when it exits (backing off, then marking
// the app crashed) and puts apps to sleep after `sleepAfterMinutes` without requests.
// Start() first reconciles: deployments a crash interrupted are failed, routes are rebuilt
// from the instances still running, apps whose instance is gone are started again.
//
// Thread-safety: every method may be called from any thread. Changes to one app (switching
// its instance, lifecycle) are serialized by a lock striped over app ids.

#include <array>
#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/worker_pool.h"
#include "service/history.h"
#include "service/service.h"
#include "service/sources.h"

namespace kiln::service {

struct DeployRequest {
  std::string source_type;  // upload | files | url | git | template
  // upload, files: the archive, already saved (it is moved into the build); files: a plain tar
  // of the inline files (WriteFilesArchive)
  std::string upload_path;
  int64_t upload_bytes = 0;  // upload: the archive's size; files: the files' bytes
  int64_t file_count = 0;    // files: how many
  std::string url;
  std::string git_repo, git_ref;
  std::string starter;
  PlanOverrides overrides;
  std::optional<std::string> health_check_path;
  std::vector<std::pair<std::string, std::string>> build_env;  // this deployment's build only
  bool build_egress = false;
};

// One line of a deployment's log.
struct DeployLogLine {
  int64_t time_ms = 0;
  std::string step;
  std::string text;
};

// One line of an app's runtime log.
struct AppLogLine {
  int64_t time_ms = 0;
  std::string stream;  // stdout | stderr | exit
  std::string text;
};

// Module-private helpers shared by the apps files.
// A record of kiln-init's main log ("<unix_ms> <o|e|x> text"): its time, or -1 when malformed.
int64_t ParseLogRecord(std::string_view line, std::string_view* rest, char* stream);
// Whether the instance's main process has exited (kiln-init wrote its `x` record), and how.
bool MainExited(const std::string& log_dir, std::string* how);
// A deployment's `error` JSON: {step, code, message, hint}.
std::string DeployErrorJson(const std::string& step, const Status& s);

class AppManager {
 public:
  explicit AppManager(const Deps& deps);
  ~AppManager();
  AppManager(const AppManager&) = delete;
  AppManager& operator=(const AppManager&) = delete;

  void Start();
  void Stop();
  // OK when instances can run here, else Unavailable RUNTIME_UNAVAILABLE saying why.
  Status Available() const;

  // Records. Create validates nothing the operation's schema already did; it applies the
  // config's limits (APP_MEMORY_TOO_LARGE, ...) and stores `env` (all plain, runtime).
  Result<store::App> Create(const auth::Principal& principal, store::App app,
                            const std::vector<std::pair<std::string, std::string>>& env);
  Result<store::App> Get(const std::string& workspace_id, const std::string& id_or_name);
  // Stops the instance, removes releases, deployment logs and the record; the /data volume
  // stays unless `purge` (a new app of the same name in the workspace finds it again).
  Status Delete(const auth::Principal& principal, const store::App& app, bool purge);
  // Writes fields already validated; applies memory/cpus to the running instance.
  Result<store::App> Update(const auth::Principal& principal, store::App app);

  // Lifecycle. Errors: Conflict APP_NOT_DEPLOYED (no release yet), APP_STOPPED (sleep/wake of a
  // stopped app).
  Result<store::App> StartApp(const auth::Principal& principal, const std::string& app_ref);
  Result<store::App> StopApp(const auth::Principal& principal, const std::string& app_ref);
  Result<store::App> Restart(const auth::Principal& principal, const std::string& app_ref);
  Result<store::App> Sleep(const auth::Principal& principal, const std::string& app_ref);
  Result<store::App> Wake(const auth::Principal& principal, const std::string& app_ref);
  Result<store::App> Resize(const auth::Principal& principal, const std::string& app_ref,
                            std::optional<int64_t> memory_mb, std::optional<double> cpus);

  // Deployments.
  Result<store::Deployment> Deploy(const auth::Principal& principal, const store::App& app,
                                   DeployRequest request);
  Result<store::Deployment> Cancel(const auth::Principal& principal, const std::string& dep_id);
  // To the release of deployment `dep_id` (empty: the one live before the current one).
  Result<store::Deployment> Rollback(const auth::Principal& principal, const store::App& app,
                                     const std::string& dep_id);
  Result<store::Deployment> GetDeployment(const std::string& workspace_id, const std::string& id);
  // Lines of a deployment's log after line `skip`.
  std::vector<DeployLogLine> DeployLog(const std::string& dep_id, size_t skip);
  // Waits up to `ms` for a deployment's log to grow or its status to change.
  void WaitForDeployChange(int ms);

  // Runtime logs of the app's instance: the last `lines` (0 = all kept) newer than `since_ms`.
  // `offset` (in/out) is where a follower continues: pass back what it was set to.
  std::vector<AppLogLine> Logs(const store::App& app, size_t lines, int64_t since_ms,
                               int64_t* offset, std::string* instance);

  // The kiln-init client of the app's running instance. Errors: Conflict APP_NOT_RUNNING,
  // APP_SLEEPING.
  Result<runtime::InitClient> Client(const std::string& workspace_id, const std::string& app_ref,
                                     std::string* instance_id);

  const Deps& deps() const { return deps_; }
  // http://{app.name}.{base_domain}[:port]/, on the port the listener got.
  std::string Url(const store::App& app) const;
  const std::string& examples_dir() const { return examples_dir_; }
  json::object AppJson(const store::App& app, bool with_stats);
  json::object DeploymentJson(const store::Deployment& dep);
  // apps.stats: the app's history points newer than since_ms (0: the whole window).
  json::object StatsJson(const store::App& app, int64_t since_ms);
  // Replaces secret values of the app in `text` with ********.
  std::string Mask(const std::string& app_id, std::string text);

  std::shared_ptr<const AppRoute> FindRoute(std::string_view name) const;
  Status WakeById(const std::string& app_id);
  void Touch(const std::string& app_id);
  void SetListenPort(uint16_t port) { listen_port_ = port; }
  // The gateway's request counts of an app (Service::SetTrafficSource); set once at start-up,
  // before requests arrive.
  void SetTrafficSource(std::function<std::optional<Traffic>(const std::string& app_id)> source) {
    traffic_ = std::move(source);
  }
  // Called by env operations after a change: masking follows the new secret values.
  void RefreshSecrets(const std::string& app_id);

 private:
  struct Task;  // a deployment in flight (deployer.cc)
  struct Launched {
    std::string instance_id;
    int64_t port = 0;
  };

  std::mutex& LockFor(const std::string& app_id);
  // Paths.
  std::string ReleaseDir(const std::string& app_id, const std::string& rel_id) const;
  std::string BuildDir(const std::string& dep_id) const;
  std::string DeployLogFile(const std::string& dep_id) const;
  std::string VolumeDir(const store::App& app) const;
  // Mounts the app's /data volume (a loop-mounted ext4 image of data_quota_mb, created on
  // first use); falls back to a plain directory where loop devices cannot be used.
  Result<std::string> EnsureVolume(const store::App& app);
  void UnmountVolume(const store::App& app, bool purge);
  void VolumeUsage(const store::App& app, int64_t* used, int64_t* quota);

  // Environment of the app's process: plan's runtime env, the app's env vars, PORT.
  Result<std::vector<std::string>> RuntimeEnvOf(const store::App& app, const BuildPlan& plan,
                                                int64_t port);
  // Starts `release` of `app` on a new instance and waits until it answers. `cancelled` (when
  // given) stops the wait early. Errors name what failed: APP_CRASHED (with the last lines of
  // its output), HEALTH_CHECK_TIMEOUT, HEALTH_CHECK_FAILED, and the runtime's own.
  Result<Launched> Launch(const store::App& app, const store::Release& release,
                          const std::atomic<bool>* cancelled,
                          const std::function<void(const std::string&)>& log);
  // Makes `launched` (running `release_id`) what serves `app`, read fresh under its lock (the
  // caller holds LockFor): the route switches first, then `record` stores the app (and the
  // deployment that went live) with its event, so nobody reads "live" before requests reach
  // the new instance. Answers the route replaced, for Retire. When `record` fails the previous
  // route is put back and the new instance removed.
  Result<std::shared_ptr<const AppRoute>> GoLive(
      store::App app, const Launched& launched, const std::string& release_id,
      const std::function<Status(const store::App&)>& record);
  // Freezes (asleep) or thaws an app's instance; its route follows.
  Result<store::App> SetAsleep(const auth::Principal& principal, const std::string& app_ref,
                               bool asleep);
  // Points the app's route at `launched` (nullptr: no route) and returns the route it replaced.
  std::shared_ptr<const AppRoute> SetRoute(const store::App& app, const Launched* launched,
                                           bool sleeping);
  // Waits for requests on `old` to finish (drain_seconds at most), then removes its instance.
  void Retire(std::shared_ptr<const AppRoute> old);
  // Removes old releases beyond apps.releases_kept (never the live one).
  void CollectReleases(const store::App& app);
  Result<store::App> Relaunch(const auth::Principal* principal, store::App app,
                              const std::string& event_type);

  // deployer.cc
  void RunDeployment(std::shared_ptr<Task> task);
  void Reconcile();
  void MonitorLoop();
  // Records a point of every routed app's stats history (monitor thread).
  void SampleHistory(const std::vector<std::shared_ptr<const AppRoute>>& routes, int64_t now);
  void AppendLog(const std::string& dep_id, const std::string& step, std::string_view text,
                 const std::string& app_id);

  const Deps& deps_;
  std::string examples_dir_;
  std::function<std::optional<Traffic>(const std::string& app_id)> traffic_;
  StatsHistory history_;
  std::atomic<uint16_t> listen_port_{
      0};  // 0: the port in server.listen  // starters (apps.examples_dir, resolved at Start)
  std::array<std::mutex, 64> locks_;
  mutable std::mutex routes_mu_;
  std::atomic<uint64_t> routes_version_{1};  // bumped by every route change (FindRoute's cache)
  std::map<std::string, std::shared_ptr<const AppRoute>, std::less<>> routes_;  // by app name

  std::mutex tasks_mu_;
  std::map<std::string, std::shared_ptr<Task>> tasks_;  // deployments in flight, by id

  std::mutex log_mu_;
  std::condition_variable log_cv_;
  uint64_t log_generation_ = 0;

  // Secret values per app for masking, refreshed on env changes.
  std::mutex secrets_mu_;
  std::map<std::string, std::vector<std::string>> secrets_;

  std::mutex touch_mu_;
  std::map<std::string, int64_t> last_request_ms_;
  std::map<std::string, std::vector<int64_t>> recent_restarts_;

  std::mutex monitor_mu_;
  std::condition_variable monitor_cv_;
  bool stopping_ = false;
  std::thread monitor_;
  std::unique_ptr<WorkerPool> builds_;
};

}  // namespace kiln::service
