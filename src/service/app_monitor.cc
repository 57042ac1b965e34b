// Apps' background work (apps.h): reconciling after a restart, and the monitor that starts an
// exited app again and puts idle apps to sleep.
#include <filesystem>
#include <fstream>
#include <set>

#include "service/apps.h"
#include "service/operations.h"

namespace kiln::service {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {
int64_t PortOf(store::Store& store, const store::App& app) {
  auto release = store.GetRelease(app.id, app.release_id);
  if (release.ok()) {
    auto plan = ParseJson(release->plan);
    if (plan.ok() && plan->is_object()) {
      int64_t port = GetInt(plan->as_object(), "port", 0);
      if (port > 0) {
        return port;
      }
    }
  }
  return app.port;
}
}  // namespace

void AppManager::Reconcile() {
  // Deployments a crash interrupted: never left stuck.
  auto active = deps_.store.ListActiveDeployments();
  int failed = 0;
  if (active.ok()) {
    for (store::Deployment& d : *active) {
      auto steps = ParseJson(d.steps);
      std::string at = "source";
      if (steps.ok() && steps->is_array()) {
        for (auto& s : steps->as_array()) {
          auto& o = s.as_object();
          if (GetString(o, "status") == "running") {
            at = GetString(o, "name");
            o["status"] = "failed";
          } else if (GetString(o, "status") == "pending") {
            o["status"] = "skipped";
          }
        }
        d.steps = ToJson(*steps);
      }
      d.status = "failed";
      d.finished_ms = deps_.clock.NowMs();
      d.error = DeployErrorJson(
          at, Status::Unavailable("SERVER_RESTARTED", "the server stopped during step " + at,
                                  "deploy again; the app kept serving its "
                                  "previous release"));
      auto event = MakeEvent(deps_, d.workspace_id, "deployment.failed", "", d.id,
                             {{"app", d.app_id}, {"step", at}, {"reason", "server restarted"}});
      (void)deps_.store.UpdateDeployment(d, nullptr, &event);
      AppendLog(d.id, at, "failed: the server stopped during this step; deploy again", d.app_id);
      std::error_code ec;
      fs::remove_all(BuildDir(d.id), ec);
      ++failed;
    }
  }
  std::map<std::string, runtime::InstanceInfo> instances;
  for (runtime::InstanceInfo& info : deps_.runtime->List()) {
    if (info.label.starts_with("app:") || info.label.starts_with("build:")) {
      instances[info.id] = std::move(info);
    }
  }
  auto apps = deps_.store.ListAllApps();
  std::set<std::string> owned;
  int attached = 0, restarted = 0;
  std::vector<store::App> to_start;
  if (apps.ok()) {
    for (store::App& app : *apps) {
      RefreshSecrets(app.id);
      auto it = instances.find(app.instance_id);
      if (!app.instance_id.empty() && it != instances.end() &&
          it->second.state != runtime::InstanceState::kStopped) {
        owned.insert(app.instance_id);
        bool paused = it->second.state == runtime::InstanceState::kPaused;
        Launched l{app.instance_id, PortOf(deps_.store, app)};
        if (EnsureVolume(app).ok()) {
          SetRoute(app, &l, paused);
        }
        std::string status = paused ? "sleeping" : "running";
        if (app.status != status) {
          app.status = status;
          (void)deps_.store.UpdateApp(app, nullptr);
        }
        ++attached;
      } else if (app.status == "sleeping" && app.instance_id.empty()) {
        // Asleep with gateway.sleep_mode = stop: it stays asleep until a request wakes it.
        Launched l{"", PortOf(deps_.store, app)};
        SetRoute(app, &l, true);
      } else if (app.status == "running" || app.status == "sleeping" || app.status == "crashed") {
        to_start.push_back(app);
      }
    }
  }
  for (const auto& [id, info] : instances) {
    if (!owned.contains(id)) {
      (void)deps_.runtime->Remove(id);
    }
  }
  for (store::App& app : to_start) {
    std::lock_guard lock(LockFor(app.id));
    app.instance_id.clear();
    auto r = Relaunch(nullptr, app, "app.started");
    if (r.ok()) {
      ++restarted;
    } else {
      log::Warn("cannot start an app again", {{"app", app.name}, {"error", r.status().ToString()}});
      app.status = "crashed";
      (void)deps_.store.UpdateApp(app, nullptr);
    }
  }
  log::Info("apps reconciled",
            {{"attached", attached}, {"restarted", restarted}, {"deployments_failed", failed}});
}

void AppManager::SampleHistory(const std::vector<std::shared_ptr<const AppRoute>>& routes,
                               int64_t now) {
  for (const auto& route : routes) {
    std::optional<Traffic> traffic = traffic_ ? traffic_(route->app_id) : std::nullopt;
    std::optional<runtime::InstanceStats> stats;
    if (auto s = deps_.runtime->Stats(route->instance_id); s.ok()) {
      stats = *s;
    }
    history_.Sample(route->app_id, now, traffic, route->instance_id, stats);
  }
}

void AppManager::MonitorLoop() {
  int64_t last_sample = 0;
  std::unique_lock lock(monitor_mu_);
  while (!stopping_) {
    monitor_cv_.wait_for(lock, 1s, [this] { return stopping_; });
    if (stopping_) {
      break;
    }
    lock.unlock();
    std::vector<std::shared_ptr<const AppRoute>> routes;
    {
      std::lock_guard r(routes_mu_);
      for (const auto& [name, route] : routes_) {
        routes.push_back(route);
      }
    }
    int64_t now = deps_.clock.NowMs();
    if (now - last_sample >= history_.interval().count()) {
      SampleHistory(routes, now);
      last_sample = now;
    }
    for (const auto& route : routes) {
      if (route->sleeping) {
        continue;
      }
      auto app = deps_.store.GetApp(route->workspace_id, route->app_id);
      if (!app.ok() || app->instance_id != route->instance_id) {
        continue;  // deleted or switched meanwhile
      }
      std::string how;
      if (MainExited(deps_.runtime->LogDir(route->instance_id), &how)) {
        std::vector<int64_t> recent;
        {
          std::lock_guard t(touch_mu_);
          auto& list = recent_restarts_[app->id];
          std::erase_if(list, [&](int64_t t0) { return now - t0 > 60'000; });
          list.push_back(now);
          recent = list;
        }
        std::lock_guard app_lock(LockFor(app->id));
        auto current = deps_.store.GetApp(app->workspace_id, app->id);
        if (!current.ok() || current->instance_id != route->instance_id) {
          continue;
        }
        if (recent.size() > 5) {
          log::Warn("app keeps exiting: marked crashed", {{"app", app->name}});
          SetRoute(*current, nullptr, false);
          (void)deps_.runtime->Remove(current->instance_id);
          current->instance_id.clear();
          current->status = "crashed";
          auto event = MakeEvent(deps_, current->workspace_id, "app.crashed", "", current->id,
                                 {{"exit", ValidUtf8(how)}});
          (void)deps_.store.UpdateApp(*current, &event);
          continue;
        }
        current->restarts += 1;
        log::Info("app exited: starting it again",
                  {{"app", app->name}, {"exit", how}, {"restarts", current->restarts}});
        (void)Relaunch(nullptr, *current, "app.restarted_after_exit");
        continue;
      }
      if (app->sleep_after_minutes > 0) {
        int64_t last = 0;
        {
          std::lock_guard t(touch_mu_);
          auto it = last_request_ms_.find(app->id);
          if (it == last_request_ms_.end()) {
            last_request_ms_[app->id] = now;  // idle time counts from when we first saw it
            continue;
          }
          last = it->second;
        }
        if (now - last > app->sleep_after_minutes * 60'000) {
          auth::Principal system;
          system.workspace.id = app->workspace_id;
          (void)Sleep(system, app->id);
        }
      }
    }
    lock.lock();
  }
}

}  // namespace kiln::service
