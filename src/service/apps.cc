// Apps: records, routes, lifecycle, runtime logs (apps.h). Launching and volumes are in
// app_launch.cc, deployments in deployer.cc, reconcile and the monitor in app_monitor.cc.
#include "service/apps.h"

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "core/crypto.h"
#include "service/operations.h"

namespace kiln::service {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr int64_t kMiB = 1 << 20;

std::string FormatCpus(double cpus) { return ToJson(Number(cpus)); }

}  // namespace

AppManager::AppManager(const Deps& deps)
    : deps_(deps),
      history_(std::chrono::seconds(deps.config.apps.stats_interval_seconds),
               std::chrono::hours(1)) {}

AppManager::~AppManager() { Stop(); }

Status AppManager::Available() const {
  if (deps_.runtime != nullptr) {
    return Status::Ok();
  }
  return Status::Unavailable("RUNTIME_UNAVAILABLE",
                             "apps cannot run on this server: " + deps_.runtime_error,
                             "see the server log at start-up; apps need root and runc");
}

std::mutex& AppManager::LockFor(const std::string& app_id) {
  return locks_[std::hash<std::string>{}(app_id) % locks_.size()];
}

std::string AppManager::Url(const store::App& app) const {
  std::string host, port_text;
  uint16_t port = 0;
  (void)SplitHostPort(deps_.config.server.listen, &host, &port);
  if (listen_port_ != 0) {
    port = listen_port_;
  }
  std::string url = "http://" + app.name + "." + deps_.config.gateway.base_domain;
  if (port != 80 && port != 0) {
    url += ":" + std::to_string(port);
  }
  return url + "/";
}

std::string AppManager::ReleaseDir(const std::string& app_id, const std::string& rel_id) const {
  return deps_.config.server.data_dir + "/releases/" + app_id + "/" + rel_id;
}
std::string AppManager::BuildDir(const std::string& dep_id) const {
  return deps_.config.server.data_dir + "/builds/" + dep_id;
}
std::string AppManager::DeployLogFile(const std::string& dep_id) const {
  return deps_.config.server.data_dir + "/deployments/" + dep_id + ".log";
}
std::string AppManager::VolumeDir(const store::App& app) const {
  return fs::absolute(deps_.config.server.data_dir).lexically_normal().string() + "/volumes/" +
         app.workspace_id + "/" + app.name;
}

// ---- Records ----

Result<store::App> AppManager::Create(const auth::Principal& principal, store::App app,
                                      const std::vector<std::pair<std::string, std::string>>& env) {
  const auto& cfg = deps_.config.apps;
  if (app.memory_mb > cfg.max_memory_mb) {
    return Status::InvalidArgument(
        "APP_MEMORY_TOO_LARGE",
        "memoryMb " + std::to_string(app.memory_mb) + " is above this server's limit",
        "ask for at most " + std::to_string(cfg.max_memory_mb) + " MiB");
  }
  if (app.millicpus > static_cast<int64_t>(cfg.max_cpus * 1000)) {
    return Status::InvalidArgument("APP_CPUS_TOO_MANY", "cpus is above this server's limit",
                                   "ask for at most " + FormatCpus(cfg.max_cpus) + " cpus");
  }
  if (app.data_quota_mb > cfg.max_data_quota_mb) {
    return Status::InvalidArgument(
        "APP_DATA_QUOTA_TOO_LARGE", "dataQuotaMb is above this server's limit",
        "ask for at most " + std::to_string(cfg.max_data_quota_mb) + " MiB");
  }
  app.id = NewId("app");
  app.workspace_id = principal.workspace.id;
  app.status = "created";
  app.created_ms = app.updated_ms = deps_.clock.NowMs();
  app.created_by = principal.key_id;
  KILN_RETURN_IF_ERROR(
      deps_.store.InsertApp(app, cfg.max_per_workspace,
                            MakeEvent(deps_, app.workspace_id, "app.created", principal.key_id,
                                      app.id, {{"name", app.name}})));
  if (!env.empty()) {
    std::vector<store::EnvVar> vars;
    for (const auto& [k, v] : env) {
      store::EnvVar var;
      var.key = k;
      var.value_sealed = deps_.box.Seal(v, "env:" + app.id + ":" + k);
      var.updated_ms = app.created_ms;
      vars.push_back(std::move(var));
    }
    KILN_RETURN_IF_ERROR(deps_.store.SetEnv(
        app.id, vars,
        MakeEvent(deps_, app.workspace_id, "app.env_set", principal.key_id, app.id, {})));
  }
  return app;
}

Result<store::App> AppManager::Get(const std::string& workspace_id, const std::string& id_or_name) {
  auto app = deps_.store.GetApp(workspace_id, id_or_name);
  if (!app.ok() && app.status().Is(Code::kNotFound)) {
    return Status::NotFound("APP_NOT_FOUND", "no app \"" + id_or_name + "\" in this workspace",
                            "list apps with GET /v1/apps (kiln apps list)");
  }
  return app;
}

Status AppManager::Delete(const auth::Principal& principal, const store::App& app, bool purge) {
  std::shared_ptr<const AppRoute> old;
  std::vector<std::string> dep_ids;  // their log files go with the records
  if (auto deps = deps_.store.ListDeployments(app.id, {0, 100000}); deps.ok()) {
    for (const store::Deployment& d : *deps) {
      dep_ids.push_back(d.id);
    }
  }
  {
    std::lock_guard lock(LockFor(app.id));
    // A deployment in flight is cancelled first: its build must not outlive the app.
    auto active = deps_.store.ActiveDeployment(app.id);
    if (active.ok() && active->has_value()) {
      (void)Cancel(principal, (*active)->id);
    }
    old = SetRoute(app, nullptr, false);
    if (!app.instance_id.empty()) {
      (void)deps_.runtime->Remove(app.instance_id);
    }
    KILN_RETURN_IF_ERROR(
        deps_.store.DeleteApp(app.workspace_id, app.id,
                              MakeEvent(deps_, app.workspace_id, "app.deleted", principal.key_id,
                                        app.id, {{"name", app.name}, {"purged", purge}})));
  }
  history_.Forget(app.id);
  std::error_code ec;
  fs::remove_all(deps_.config.server.data_dir + "/releases/" + app.id, ec);
  for (const std::string& dep_id : dep_ids) {
    fs::remove(DeployLogFile(dep_id), ec);
  }
  UnmountVolume(app, purge);
  {
    std::lock_guard lock(secrets_mu_);
    secrets_.erase(app.id);
  }
  return Status::Ok();
}

Result<store::App> AppManager::Update(const auth::Principal& principal, store::App app) {
  std::lock_guard lock(LockFor(app.id));
  app.updated_ms = deps_.clock.NowMs();
  if (!app.instance_id.empty() && deps_.runtime != nullptr) {
    runtime::Resources r;
    r.memory_mb = app.memory_mb;
    r.cpus = static_cast<double>(app.millicpus) / 1000.0;
    r.pids = deps_.config.sandboxes.pids;
    KILN_RETURN_IF_ERROR(deps_.runtime->Update(app.instance_id, r));
  }
  auto event = MakeEvent(deps_, app.workspace_id, "app.updated", principal.key_id, app.id, {});
  KILN_RETURN_IF_ERROR(deps_.store.UpdateApp(app, &event));
  // The route carries the access policy; keep it in step.
  std::lock_guard routes(routes_mu_);
  auto it = routes_.find(app.name);
  if (it != routes_.end() && it->second->access_policy != app.access_policy) {
    auto next = std::make_shared<AppRoute>();
    next->app_id = it->second->app_id;
    next->workspace_id = it->second->workspace_id;
    next->name = it->second->name;
    next->instance_id = it->second->instance_id;
    next->netns_path = it->second->netns_path;
    next->port = it->second->port;
    next->sleeping = it->second->sleeping;
    next->access_policy = app.access_policy;
    it->second = std::move(next);
  }
  return app;
}

// ---- JSON ----

json::object AppManager::AppJson(const store::App& app, bool with_stats) {
  json::value release = nullptr;
  int64_t releases_bytes = 0;
  auto releases = deps_.store.ListReleases(app.id);
  if (releases.ok()) {
    for (const store::Release& r : *releases) {
      if (r.status == "ready") {
        releases_bytes += r.size_bytes;
      }
      if (r.id == app.release_id) {
        auto plan = ParseJson(r.plan);
        std::string rt = plan.ok() && plan->is_object() ? GetString(plan->as_object(), "runtime")
                                                        : std::string();
        release = json::object{{"id", r.id},
                               {"deploymentId", r.deployment_id},
                               {"runtime", rt},
                               {"sizeBytes", r.size_bytes},
                               {"createdAt", TimeOrNull(r.created_ms)}};
      }
    }
  }
  json::value deployment = nullptr;
  auto deps = deps_.store.ListDeployments(app.id, {0, 1});
  if (deps.ok() && !deps->empty()) {
    const store::Deployment& d = deps->front();
    deployment =
        json::object{{"id", d.id}, {"status", d.status}, {"createdAt", TimeOrNull(d.created_ms)}};
  }
  int64_t used = 0, quota = app.data_quota_mb * kMiB;
  VolumeUsage(app, &used, &quota);
  json::object out{
      {"id", app.id},
      {"name", app.name},
      {"url", Url(app)},
      {"status", app.status},
      {"port", app.port},
      {"resources", json::object{{"memoryMb", app.memory_mb},
                                 {"cpus", Number(static_cast<double>(app.millicpus) / 1000.0)}}},
      {"accessPolicy", app.access_policy},
      {"sleepAfterMinutes", app.sleep_after_minutes},
      {"release", release},
      {"deployment", deployment},
      {"instance", app.instance_id.empty() ? json::value(nullptr) : json::value(app.instance_id)},
      {"data", json::object{{"usedBytes", used}, {"quotaBytes", quota}, {"path", "/data"}}},
      {"releasesBytes", releases_bytes},
      {"restarts", app.restarts},
      {"createdAt", TimeOrNull(app.created_ms)},
      {"updatedAt", TimeOrNull(app.updated_ms)},
  };
  json::value stats = nullptr;
  if (with_stats && !app.instance_id.empty() && deps_.runtime != nullptr) {
    auto s = deps_.runtime->Stats(app.instance_id);
    if (s.ok()) {
      stats = json::object{{"cpuSeconds", Number(static_cast<double>(s->cpu_usage_us) / 1e6)},
                           {"memoryBytes", s->memory_bytes},
                           {"memoryLimitBytes", s->memory_limit_bytes},
                           {"pids", s->pids},
                           {"oomKills", s->oom_kills},
                           {"restarts", app.restarts}};
    }
  }
  out["stats"] = stats;
  if (with_stats) {
    std::optional<Traffic> t = traffic_ ? traffic_(app.id) : std::nullopt;
    json::value requests = nullptr;
    if (t) {
      json::object by_class;
      for (size_t i = 0; i < t->by_class.size(); ++i) {
        by_class[std::to_string(i + 1) + "xx"] = t->by_class[i];
      }
      requests = json::object{
          {"total", t->requests},
          {"byClass", std::move(by_class)},
          {"bytesIn", t->bytes_in},
          {"bytesOut", t->bytes_out},
          {"p50Ms", Number(BucketQuantile(t->latency, t->latency_count, 0.5) * 1000)},
          {"p99Ms", Number(BucketQuantile(t->latency, t->latency_count, 0.99) * 1000)}};
    }
    out["requests"] = std::move(requests);
  }
  return out;
}

json::object AppManager::StatsJson(const store::App& app, int64_t since_ms) {
  json::array points;
  for (const StatsPoint& p : history_.Points(app.id, deps_.clock.NowMs(), since_ms)) {
    auto opt = [](const auto& v) -> json::value {
      if (!v) {
        return nullptr;
      }
      return json::value(*v);
    };
    points.push_back(json::object{
        {"time", TimeOrNull(p.time_ms)},
        {"seconds", Number(p.seconds)},
        {"requests", p.requests},
        {"rps", Number(p.seconds > 0 ? static_cast<double>(p.requests) / p.seconds : 0)},
        {"clientErrors", p.client_errors},
        {"errors", p.errors},
        {"bytesIn", p.bytes_in},
        {"bytesOut", p.bytes_out},
        {"p50Ms", Number(p.p50_ms)},
        {"p99Ms", Number(p.p99_ms)},
        {"cpuCores", p.cpu_cores ? json::value(Number(*p.cpu_cores)) : json::value(nullptr)},
        {"memoryBytes", opt(p.memory_bytes)},
        {"memoryLimitBytes", opt(p.memory_limit_bytes)},
    });
  }
  return json::object{{"app", app.name},
                      {"intervalSeconds", history_.interval().count() / 1000},
                      {"windowSeconds", history_.window().count() / 1000},
                      {"points", std::move(points)}};
}

json::object AppManager::DeploymentJson(const store::Deployment& d) {
  auto parse = [](const std::string& text, json::value dflt) -> json::value {
    if (text.empty()) {
      return dflt;
    }
    auto v = ParseJson(text);
    return v.ok() ? *v : dflt;
  };
  std::string app_name;
  auto app = deps_.store.GetApp(d.workspace_id, d.app_id);
  std::string url;
  if (app.ok()) {
    app_name = app->name;
    url = Url(*app);
  }
  return json::object{
      {"id", d.id},
      {"app", d.app_id},
      {"appName", app_name},
      {"kind", d.kind},
      {"status", d.status},
      {"source", parse(d.source, json::object{})},
      {"config", parse(d.config, json::object{})},
      {"steps", parse(d.steps, json::array{})},
      {"release", d.release_id.empty() ? json::value(nullptr) : json::value(d.release_id)},
      {"error", parse(d.error, nullptr)},
      {"url", url},
      {"createdAt", TimeOrNull(d.created_ms)},
      {"finishedAt", TimeOrNull(d.finished_ms)},
  };
}

// ---- Secrets masking ----

void AppManager::RefreshSecrets(const std::string& app_id) {
  std::vector<std::string> values;
  auto vars = deps_.store.ListEnv(app_id);
  if (vars.ok()) {
    for (const store::EnvVar& v : *vars) {
      if (!v.secret) {
        continue;
      }
      auto plain = deps_.box.Open(v.value_sealed, "env:" + app_id + ":" + v.key);
      // Very short values would mask ordinary text everywhere; they are not worth hiding.
      if (plain.ok() && plain->size() >= 4) {
        values.push_back(std::move(*plain));
      }
    }
  }
  // Longest first, so a secret that contains another is masked whole.
  std::sort(values.begin(), values.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  std::lock_guard lock(secrets_mu_);
  secrets_[app_id] = std::move(values);
}

std::string AppManager::Mask(const std::string& app_id, std::string text) {
  std::lock_guard lock(secrets_mu_);
  auto it = secrets_.find(app_id);
  if (it == secrets_.end()) {
    return text;
  }
  for (const std::string& secret : it->second) {
    for (size_t pos = text.find(secret); pos != std::string::npos;
         pos = text.find(secret, pos + 8)) {
      text.replace(pos, secret.size(), "********");
    }
  }
  return text;
}

// ---- Routes ----

std::shared_ptr<const AppRoute> AppManager::FindRoute(std::string_view name) const {
  // Asked by the gateway for every request, from every I/O thread: a per-thread copy of the
  // answers, dropped whenever a route changes (routes_version_), keeps the hot path off
  // routes_mu_. An answer cached under an old version is never used.
  struct Cache {
    const AppManager* owner = nullptr;
    uint64_t version = 0;
    std::map<std::string, std::shared_ptr<const AppRoute>, std::less<>> routes;
  };
  thread_local Cache cache;
  uint64_t version = routes_version_.load(std::memory_order_acquire);
  if (cache.owner != this || cache.version != version) {
    cache.routes.clear();
    cache.owner = this;
    cache.version = version;
  }
  if (auto hit = cache.routes.find(name); hit != cache.routes.end()) {
    return hit->second;
  }
  std::shared_ptr<const AppRoute> route;
  {
    std::lock_guard lock(routes_mu_);
    auto it = routes_.find(name);
    route = it == routes_.end() ? nullptr : it->second;
  }
  if (cache.routes.size() < 1024) {
    cache.routes.emplace(std::string(name), route);
  }
  return route;
}

std::shared_ptr<const AppRoute> AppManager::SetRoute(const store::App& app,
                                                     const Launched* launched, bool sleeping) {
  std::shared_ptr<AppRoute> next;
  if (launched != nullptr) {
    next = std::make_shared<AppRoute>();
    next->app_id = app.id;
    next->workspace_id = app.workspace_id;
    next->name = app.name;
    next->instance_id = launched->instance_id;
    next->netns_path =
        launched->instance_id.empty() ? "" : deps_.runtime->NetnsPath(launched->instance_id);
    next->port = static_cast<uint16_t>(launched->port);
    next->access_policy = app.access_policy;
    next->sleeping = sleeping;
  }
  std::lock_guard lock(routes_mu_);
  routes_version_.fetch_add(1, std::memory_order_acq_rel);
  std::shared_ptr<const AppRoute> old;
  auto it = routes_.find(app.name);
  if (it != routes_.end()) {
    old = std::move(it->second);
    routes_.erase(it);
  }
  if (next) {
    routes_.emplace(app.name, std::move(next));
  }
  return old;
}

void AppManager::Retire(std::shared_ptr<const AppRoute> old) {
  if (!old) {
    return;
  }
  auto deadline =
      std::chrono::steady_clock::now() + std::chrono::seconds(deps_.config.apps.drain_seconds);
  // Requests that picked the old route just before the switch may still be connecting: give
  // them a moment to register before trusting a zero.
  std::this_thread::sleep_for(20ms);
  while (old->in_flight.load() > 0 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  if (Status s = deps_.runtime->Remove(old->instance_id); !s.ok()) {
    log::Warn("cannot remove an app's old instance",
              {{"app", old->name}, {"instance", old->instance_id}, {"error", s.ToString()}});
  }
}

Status AppManager::WakeById(const std::string& app_id) {
  std::shared_ptr<const AppRoute> route;
  {
    std::lock_guard lock(routes_mu_);
    for (const auto& [name, r] : routes_) {
      if (r->app_id == app_id) {
        route = r;
      }
    }
  }
  if (!route || !route->sleeping) {
    return Status::Ok();
  }
  auth::Principal system;  // the gateway wakes on behalf of nobody, in the app's workspace
  system.workspace.id = route->workspace_id;
  return Wake(system, app_id).status();
}

void AppManager::Touch(const std::string& app_id) {
  std::lock_guard lock(touch_mu_);
  last_request_ms_[app_id] = deps_.clock.NowMs();
}

// ---- Lifecycle ----

Result<std::shared_ptr<const AppRoute>> AppManager::GoLive(
    store::App app, const Launched& launched, const std::string& release_id,
    const std::function<Status(const store::App&)>& record) {
  std::string previous_instance = app.instance_id;
  bool previous_asleep = app.status == "sleeping";
  app.release_id = release_id;
  app.instance_id = launched.instance_id;
  app.status = "running";
  app.updated_ms = deps_.clock.NowMs();
  std::shared_ptr<const AppRoute> old = SetRoute(app, &launched, false);
  if (Status s = record(app); !s.ok()) {
    if (old) {
      Launched back{old->instance_id, old->port};
      SetRoute(app, &back, previous_asleep);
    } else {
      SetRoute(app, nullptr, false);
    }
    (void)deps_.runtime->Remove(launched.instance_id);
    return s;
  }
  if (!old && !previous_instance.empty()) {
    (void)deps_.runtime->Remove(previous_instance);  // asleep or crashed: no route to drain
  }
  Touch(app.id);
  CollectReleases(app);
  return old;
}

Result<store::App> AppManager::Relaunch(const auth::Principal* principal, store::App app,
                                        const std::string& event_type) {
  if (app.release_id.empty()) {
    return Status::Conflict("APP_NOT_DEPLOYED", "app " + app.name + " has no release yet",
                            "deploy it first: kiln deploy DIR --app " + app.name);
  }
  KILN_ASSIGN_OR_RETURN(store::Release release, deps_.store.GetRelease(app.id, app.release_id));
  auto launched = Launch(app, release, nullptr, [&](const std::string& line) {
    log::Info("app start", {{"app", app.name}, {"detail", line}});
  });
  if (!launched.ok()) {
    return launched.status();
  }
  std::string actor = principal != nullptr ? principal->key_id : std::string();
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const AppRoute> old,
                        GoLive(app, *launched, app.release_id, [&](const store::App& live) {
                          app = live;
                          auto event = MakeEvent(deps_, app.workspace_id, event_type, actor, app.id,
                                                 {{"instance", app.instance_id}});
                          return deps_.store.UpdateApp(app, &event);
                        }));
  if (old) {
    std::thread([this, old] { Retire(old); }).detach();
  }
  return app;
}

Result<store::App> AppManager::StartApp(const auth::Principal& principal,
                                        const std::string& app_ref) {
  KILN_RETURN_IF_ERROR(Available());
  KILN_ASSIGN_OR_RETURN(store::App app, Get(principal.workspace.id, app_ref));
  if (app.status == "sleeping") {
    return Wake(principal, app_ref);
  }
  std::lock_guard lock(LockFor(app.id));
  KILN_ASSIGN_OR_RETURN(app, Get(principal.workspace.id, app_ref));
  if (app.status == "running" && FindRoute(app.name)) {
    return app;
  }
  return Relaunch(&principal, app, "app.started");
}

Result<store::App> AppManager::Restart(const auth::Principal& principal,
                                       const std::string& app_ref) {
  KILN_RETURN_IF_ERROR(Available());
  KILN_ASSIGN_OR_RETURN(store::App app, Get(principal.workspace.id, app_ref));
  std::lock_guard lock(LockFor(app.id));
  KILN_ASSIGN_OR_RETURN(app, Get(principal.workspace.id, app_ref));
  return Relaunch(&principal, app, "app.restarted");
}

Result<store::App> AppManager::StopApp(const auth::Principal& principal,
                                       const std::string& app_ref) {
  KILN_RETURN_IF_ERROR(Available());
  KILN_ASSIGN_OR_RETURN(store::App app, Get(principal.workspace.id, app_ref));
  std::lock_guard lock(LockFor(app.id));
  KILN_ASSIGN_OR_RETURN(app, Get(principal.workspace.id, app_ref));
  if (app.status == "stopped" || app.status == "created") {
    return app;
  }
  SetRoute(app, nullptr, false);
  if (!app.instance_id.empty()) {
    KILN_RETURN_IF_ERROR(deps_.runtime->Remove(app.instance_id));
  }
  app.instance_id.clear();
  app.status = "stopped";
  app.updated_ms = deps_.clock.NowMs();
  auto event = MakeEvent(deps_, app.workspace_id, "app.stopped", principal.key_id, app.id, {});
  KILN_RETURN_IF_ERROR(deps_.store.UpdateApp(app, &event));
  return app;
}

Result<store::App> AppManager::Sleep(const auth::Principal& principal, const std::string& app_ref) {
  return SetAsleep(principal, app_ref, true);
}

Result<store::App> AppManager::Wake(const auth::Principal& principal, const std::string& app_ref) {
  return SetAsleep(principal, app_ref, false);
}

Result<store::App> AppManager::SetAsleep(const auth::Principal& principal,
                                         const std::string& app_ref, bool asleep) {
  KILN_RETURN_IF_ERROR(Available());
  KILN_ASSIGN_OR_RETURN(store::App app, Get(principal.workspace.id, app_ref));
  std::lock_guard lock(LockFor(app.id));
  KILN_ASSIGN_OR_RETURN(app, Get(principal.workspace.id, app_ref));
  const std::string want = asleep ? "sleeping" : "running";
  if (app.status == want) {
    return app;
  }
  bool stopped_asleep = !asleep && app.status == "sleeping" && app.instance_id.empty();
  if (stopped_asleep) {
    // Put to sleep with gateway.sleep_mode = stop: waking is a start of the live release.
    return Relaunch(&principal, app, "app.woke");
  }
  if (app.status != (asleep ? "running" : "sleeping") || app.instance_id.empty()) {
    return asleep ? Status::Conflict("APP_NOT_RUNNING", "app " + app.name + " is " + app.status,
                                     "start it first (kiln apps start " + app.name + ")")
                  : Status::Conflict("APP_NOT_SLEEPING", "app " + app.name + " is " + app.status,
                                     "start it instead (kiln apps start " + app.name + ")");
  }
  Launched l{app.instance_id, 0};
  if (auto route = FindRoute(app.name)) {
    l.port = route->port;
  }
  if (asleep && deps_.config.gateway.sleep_mode == "stop") {
    // Memory back to the machine; the route stays, asleep, so a request still finds the app
    // and wakes it (a cold start).
    KILN_RETURN_IF_ERROR(deps_.runtime->Remove(app.instance_id));
    l.instance_id.clear();
    app.instance_id.clear();
  } else {
    KILN_RETURN_IF_ERROR(asleep ? deps_.runtime->Pause(app.instance_id)
                                : deps_.runtime->Resume(app.instance_id));
  }
  SetRoute(app, &l, asleep);
  if (!asleep) {
    Touch(app.id);
  }
  app.status = want;
  app.updated_ms = deps_.clock.NowMs();
  auto event = MakeEvent(deps_, app.workspace_id, asleep ? "app.slept" : "app.woke",
                         principal.key_id, app.id, {});
  KILN_RETURN_IF_ERROR(deps_.store.UpdateApp(app, &event));
  return app;
}

Result<store::App> AppManager::Resize(const auth::Principal& principal, const std::string& app_ref,
                                      std::optional<int64_t> memory_mb,
                                      std::optional<double> cpus) {
  KILN_ASSIGN_OR_RETURN(store::App app, Get(principal.workspace.id, app_ref));
  if (memory_mb) {
    if (*memory_mb > deps_.config.apps.max_memory_mb) {
      return Status::InvalidArgument(
          "APP_MEMORY_TOO_LARGE", "memoryMb is above this server's limit",
          "ask for at most " + std::to_string(deps_.config.apps.max_memory_mb) + " MiB");
    }
    app.memory_mb = *memory_mb;
  }
  if (cpus) {
    if (*cpus > deps_.config.apps.max_cpus) {
      return Status::InvalidArgument("APP_CPUS_TOO_MANY", "cpus is above this server's limit",
                                     "ask for at most " + FormatCpus(deps_.config.apps.max_cpus));
    }
    app.millicpus = static_cast<int64_t>(*cpus * 1000 + 0.5);
  }
  return Update(principal, app);
}

Result<runtime::InitClient> AppManager::Client(const std::string& workspace_id,
                                               const std::string& app_ref,
                                               std::string* instance_id) {
  KILN_RETURN_IF_ERROR(Available());
  KILN_ASSIGN_OR_RETURN(store::App app, Get(workspace_id, app_ref));
  if (app.status == "sleeping") {
    return Status::Conflict("APP_SLEEPING", "app " + app.name + " is asleep",
                            "wake it first (kiln apps wake " + app.name + ")");
  }
  if (app.instance_id.empty()) {
    return Status::Conflict("APP_NOT_RUNNING", "app " + app.name + " is not running",
                            "start or deploy it first");
  }
  *instance_id = app.instance_id;
  return deps_.runtime->Client(app.instance_id);
}

// ---- Runtime logs ----

std::vector<AppLogLine> AppManager::Logs(const store::App& app, size_t lines, int64_t since_ms,
                                         int64_t* offset, std::string* instance) {
  std::vector<AppLogLine> out;
  if (deps_.runtime == nullptr || app.instance_id.empty()) {
    return out;
  }
  std::string dir = deps_.runtime->LogDir(app.instance_id);
  std::vector<std::string> files;
  bool fresh = *offset < 0 || *instance != app.instance_id;
  if (fresh) {
    *offset = 0;
    *instance = app.instance_id;
    files = {dir + "/main.log.1", dir + "/main.log"};
  } else {
    files = {dir + "/main.log"};
  }
  for (size_t i = 0; i < files.size(); ++i) {
    std::ifstream in(files[i], std::ios::binary);
    if (!in) {
      continue;
    }
    bool current = i + 1 == files.size();
    if (current) {
      in.seekg(0, std::ios::end);
      int64_t size = in.tellg();
      if (*offset > size) {
        *offset = 0;  // rotated since: start over on the new file
      }
      in.seekg(*offset);
    }
    std::string line;
    std::streampos mark = in.tellg();
    while (std::getline(in, line)) {
      if (in.eof()) {  // a record still being written: wait for its newline
        break;
      }
      mark = in.tellg();
      std::string_view rest;
      char stream = 0;
      int64_t t = ParseLogRecord(line, &rest, &stream);
      if (t < 0 || t < since_ms) {
        continue;
      }
      out.push_back({t,
                     stream == 'o'   ? "stdout"
                     : stream == 'e' ? "stderr"
                                     : "exit",
                     ValidUtf8(Mask(app.id, std::string(rest)))});
    }
    if (current) {
      in.clear();
      *offset = static_cast<int64_t>(mark);
    }
  }
  if (lines > 0 && out.size() > lines) {
    out.erase(out.begin(), out.end() - static_cast<std::ptrdiff_t>(lines));
  }
  return out;
}

}  // namespace kiln::service
