// Deployments (apps.h): source → detect → install → build → release → start → switch, the
// rollback path, cancellation, the deployment log, and starting and stopping the background
// work (app_monitor.cc).
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include "core/crypto.h"
#include "service/apps.h"
#include "service/operations.h"

namespace kiln::service {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

struct AppManager::Task {
  std::mutex mu;
  store::Deployment dep;  // guarded by mu
  json::array steps;      // guarded by mu
  store::App app;
  DeployRequest request;
  std::string actor;
  std::atomic<bool> cancelled{false};
  std::string build_instance;  // guarded by mu: removed on cancel
};

namespace {

json::array PendingSteps(const std::vector<std::string>& names) {
  json::array steps;
  for (const std::string& n : names) {
    steps.emplace_back(json::object{{"name", n}, {"status", "pending"}});
  }
  return steps;
}

json::object* StepOf(json::array& steps, const std::string& name) {
  for (auto& s : steps) {
    if (s.as_object().at("name").as_string() == name) {
      return &s.as_object();
    }
  }
  return nullptr;
}

}  // namespace

std::string DeployErrorJson(const std::string& step, const Status& s) {
  return ToJson(json::object{{"step", step},
                             {"code", s.error_code()},
                             {"message", ValidUtf8(s.message())},
                             {"hint", ValidUtf8(s.hint())}});
}

namespace {

// Splits a command's output into lines for the log; a partial line waits for its end.
class LineSplitter {
 public:
  explicit LineSplitter(std::function<void(std::string_view)> out) : out_(std::move(out)) {}
  void Add(std::string_view chunk) {
    buf_.append(chunk);
    size_t start = 0;
    for (size_t nl = buf_.find('\n'); nl != std::string::npos; nl = buf_.find('\n', start)) {
      out_(std::string_view(buf_).substr(start, nl - start));
      start = nl + 1;
    }
    buf_.erase(0, start);
    if (buf_.size() > 8192) {  // a very long line without newline: flush it as is
      out_(buf_);
      buf_.clear();
    }
  }
  void Flush() {
    if (!buf_.empty()) {
      out_(buf_);
      buf_.clear();
    }
  }

 private:
  std::function<void(std::string_view)> out_;
  std::string buf_;
};

}  // namespace

// ---- The deployment log ----

void AppManager::AppendLog(const std::string& dep_id, const std::string& step,
                           std::string_view text, const std::string& app_id) {
  std::string masked = Mask(app_id, std::string(text));
  std::string record;
  size_t start = 0;
  while (start <= masked.size()) {
    size_t nl = masked.find('\n', start);
    std::string_view line =
        std::string_view(masked).substr(start, nl == std::string::npos ? nl : nl - start);
    if (!line.empty() && line.back() == '\r') {
      line.remove_suffix(1);
    }
    record += std::to_string(deps_.clock.NowMs()) + " " + step + " " + ValidUtf8(line) + "\n";
    if (nl == std::string::npos) {
      break;
    }
    start = nl + 1;
  }
  {
    std::lock_guard lock(log_mu_);
    std::ofstream out(DeployLogFile(dep_id), std::ios::app | std::ios::binary);
    out << record;
    ++log_generation_;
  }
  log_cv_.notify_all();
}

std::vector<DeployLogLine> AppManager::DeployLog(const std::string& dep_id, size_t skip) {
  std::vector<DeployLogLine> out;
  std::lock_guard lock(log_mu_);
  std::ifstream in(DeployLogFile(dep_id), std::ios::binary);
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    if (n++ < skip) {
      continue;
    }
    size_t a = line.find(' ');
    size_t b = a == std::string::npos ? a : line.find(' ', a + 1);
    if (b == std::string::npos) {
      continue;
    }
    DeployLogLine l;
    l.time_ms = std::atoll(line.c_str());
    l.step = line.substr(a + 1, b - a - 1);
    l.text = line.substr(b + 1);
    out.push_back(std::move(l));
  }
  return out;
}

void AppManager::WaitForDeployChange(int ms) {
  std::unique_lock lock(log_mu_);
  uint64_t seen = log_generation_;
  log_cv_.wait_for(lock, std::chrono::milliseconds(ms), [&] { return log_generation_ != seen; });
}

Result<store::Deployment> AppManager::GetDeployment(const std::string& workspace_id,
                                                    const std::string& id) {
  auto dep = deps_.store.GetDeployment(workspace_id, id);
  if (!dep.ok() && dep.status().Is(Code::kNotFound)) {
    return Status::NotFound("DEPLOYMENT_NOT_FOUND", "no deployment " + id + " in this workspace",
                            "list an app's deployments with GET /v1/apps/{app}/deployments");
  }
  return dep;
}

// ---- Deploy ----

Result<store::Deployment> AppManager::Deploy(const auth::Principal& principal,
                                             const store::App& app, DeployRequest request) {
  KILN_RETURN_IF_ERROR(Available());
  auto task = std::make_shared<Task>();
  store::Deployment& dep = task->dep;
  dep.id = NewId("dep");
  dep.workspace_id = app.workspace_id;
  dep.app_id = app.id;
  dep.kind = "deploy";
  dep.status = "queued";
  json::object source{{"type", request.source_type}};
  if (request.source_type == "upload") {
    source["bytes"] = request.upload_bytes;
  } else if (request.source_type == "files") {
    source["count"] = request.file_count;
    source["bytes"] = request.upload_bytes;
  } else if (request.source_type == "url") {
    source["url"] = request.url;
  } else if (request.source_type == "git") {
    source["repo"] = request.git_repo;
    source["ref"] = request.git_ref;
  } else {
    source["template"] = request.starter;
  }
  dep.source = ToJson(source);
  json::object config;
  const PlanOverrides& o = request.overrides;
  auto put = [&](const char* key, const std::optional<std::string>& v) {
    if (v) {
      config[key] = *v;
    }
  };
  put("install", o.install);
  put("build", o.build);
  put("preStart", o.pre_start);
  put("start", o.start);
  put("healthCheckPath", request.health_check_path);
  if (o.port) {
    config["port"] = *o.port;
  }
  if (request.build_egress) {
    config["buildEgress"] = true;
  }
  if (!request.build_env.empty()) {
    json::array keys;  // values may be secret: only the names are kept in the record
    for (const auto& [k, v] : request.build_env) {
      keys.emplace_back(k);
    }
    config["buildEnv"] = std::move(keys);
  }
  dep.config = ToJson(config);
  task->steps =
      PendingSteps({"source", "detect", "install", "build", "release", "start", "switch"});
  dep.steps = ToJson(task->steps);
  dep.created_ms = deps_.clock.NowMs();
  dep.created_by = principal.key_id;
  task->app = app;
  task->actor = principal.key_id;

  std::error_code ec;
  fs::create_directories(BuildDir(dep.id), ec);
  fs::create_directories(deps_.config.server.data_dir + "/deployments", ec);
  Status inserted = deps_.store.InsertDeployment(
      dep, MakeEvent(deps_, app.workspace_id, "deployment.created", principal.key_id, dep.id,
                     {{"app", app.id}, {"source", request.source_type}}));
  if (!inserted.ok()) {
    fs::remove_all(BuildDir(dep.id), ec);
    if (!request.upload_path.empty()) {
      fs::remove(request.upload_path, ec);
    }
    return inserted;
  }
  if (!request.upload_path.empty()) {
    std::string archive = BuildDir(dep.id) + "/source.tar.gz";
    fs::rename(request.upload_path, archive, ec);
    request.upload_path = archive;
  }
  task->request = std::move(request);
  AppendLog(dep.id, "source", "deployment " + dep.id + " of " + app.name + " queued", app.id);
  {
    std::lock_guard lock(tasks_mu_);
    tasks_[dep.id] = task;
  }
  store::Deployment answer = dep;
  if (!builds_->Submit([this, task] { RunDeployment(task); })) {
    return Status::Unavailable("SERVER_STOPPING", "the server is shutting down",
                               "deploy again once it is back");
  }
  return answer;
}

void AppManager::RunDeployment(std::shared_ptr<Task> task) {
  store::Deployment& dep = task->dep;
  struct Untrack {
    AppManager* m;
    std::string id;
    ~Untrack() {
      std::lock_guard lock(m->tasks_mu_);
      m->tasks_.erase(id);
    }
  } untrack{this, dep.id};
  const std::string app_id = task->app.id;
  std::string current_step;
  auto log = [&](const std::string& text) { AppendLog(dep.id, current_step, text, app_id); };
  auto save = [&](const store::App* app, const store::Event* event) {
    std::lock_guard lock(task->mu);
    dep.steps = ToJson(task->steps);
    Status s = deps_.store.UpdateDeployment(dep, app, event);
    if (!s.ok()) {
      log::Error("cannot record a deployment", {{"deployment", dep.id}, {"error", s.ToString()}});
    }
    std::lock_guard wake(log_mu_);
    ++log_generation_;
    log_cv_.notify_all();
    return s;
  };
  auto step_started = std::chrono::steady_clock::now();
  auto begin = [&](const std::string& name) {
    current_step = name;
    step_started = std::chrono::steady_clock::now();
    {
      std::lock_guard lock(task->mu);
      json::object* s = StepOf(task->steps, name);
      (*s)["status"] = "running";
      (*s)["startedAt"] = TimeOrNull(deps_.clock.NowMs());
    }
    save(nullptr, nullptr);
  };
  auto end = [&](const std::string& status, const Status* error = nullptr) {
    auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                  std::chrono::steady_clock::now() - step_started)
                  .count();
    std::lock_guard lock(task->mu);
    json::object* s = StepOf(task->steps, current_step);
    (*s)["status"] = status;
    (*s)["durationMs"] = ms;
    if (error != nullptr) {
      (*s)["error"] = ValidUtf8(error->message());
    }
  };
  auto skip = [&](const std::string& name) {
    std::lock_guard lock(task->mu);
    (*StepOf(task->steps, name))["status"] = "skipped";
  };
  std::string build_dir = BuildDir(dep.id);
  std::string app_dir = build_dir + "/app";
  auto finish_failed = [&](const Status& why) {
    bool cancelled = task->cancelled.load();
    end(cancelled ? "cancelled" : "failed", cancelled ? nullptr : &why);
    {
      std::lock_guard lock(task->mu);
      for (auto& s : task->steps) {
        if (s.as_object().at("status").as_string() == "pending") {
          s.as_object()["status"] = cancelled ? "cancelled" : "skipped";
        }
      }
      dep.status = cancelled ? "cancelled" : "failed";
      if (!cancelled) {
        dep.error = DeployErrorJson(current_step, why);
      }
      dep.finished_ms = deps_.clock.NowMs();
    }
    log(cancelled
            ? "cancelled"
            : "failed: " + why.message() + (why.hint().empty() ? "" : "\nhint: " + why.hint()));
    auto event =
        MakeEvent(deps_, dep.workspace_id, cancelled ? "deployment.cancelled" : "deployment.failed",
                  task->actor, dep.id, {{"app", app_id}, {"step", current_step}});
    save(nullptr, &event);
    std::error_code ec;
    fs::remove_all(build_dir, ec);
  };
  auto check_cancel = [&]() -> Status {
    return task->cancelled.load() ? Status::Conflict("DEPLOYMENT_CANCELLED", "cancelled")
                                  : Status::Ok();
  };

  {
    std::lock_guard lock(task->mu);
    dep.status = "building";
  }
  // ---- source ----
  begin("source");
  if (Status s = check_cancel(); !s.ok()) {
    return finish_failed(s);
  }
  const DeployRequest& req = task->request;
  ExtractLimits limits;
  limits.max_bytes = deps_.config.apps.unpacked_max_bytes;
  limits.max_entries = deps_.config.apps.unpacked_max_entries;
  Status got;
  auto source_log = [&](std::string_view line) { log(std::string(line)); };
  if (req.source_type == "upload" || req.source_type == "files" || req.source_type == "url") {
    std::string archive = build_dir + "/source.tar.gz";
    if (req.source_type == "url") {
      log("fetching " + req.url);
      got = FetchUrl(req.url, archive, deps_.config.apps.upload_max_bytes, 120'000, source_log);
    }
    if (got.ok()) {
      std::error_code ec;
      log(req.source_type == "files"
              ? "unpacking " + std::to_string(req.file_count) + " inline files"
              : "unpacking " + std::to_string(fs::file_size(archive, ec)) + " bytes");
      got = ExtractArchive(archive, app_dir, limits);
      fs::remove(archive, ec);
    }
  } else if (req.source_type == "git") {
    log("cloning " + req.git_repo + (req.git_ref.empty() ? "" : " at " + req.git_ref));
    std::string commit;
    got = GitCheckout(req.git_repo, req.git_ref, app_dir, 300'000, &commit, source_log);
    if (got.ok()) {
      log("checked out " + commit);
    }
  } else {
    log("starter " + req.starter);
    got = CopyStarter(examples_dir_, req.starter, app_dir);
  }
  if (!got.ok()) {
    return finish_failed(got);
  }
  end("ok");

  // ---- detect ----
  begin("detect");
  auto plan = DetectPlan(app_dir, req.overrides);
  if (!plan.ok()) {
    return finish_failed(plan.status());
  }
  log("runtime: " + plan->runtime);
  for (const auto& [what, command] : {std::pair<std::string, std::string>{"install", plan->install},
                                      {"build", plan->build},
                                      {"preStart", plan->pre_start},
                                      {"start", plan->start}}) {
    if (!command.empty()) {
      auto origin = plan->origin.find(what);
      log(what + ": " + command +
          (origin == plan->origin.end() ? "" : "  (from " + origin->second + ")"));
    }
  }
  end("ok");

  // ---- install, build ----
  if (plan->install.empty() && plan->build.empty()) {
    skip("install");
    skip("build");
  } else {
    std::vector<std::string> env = RuntimeEnv(*plan);
    env.push_back("HOME=/root");
    env.push_back("CI=1");
    auto vars = deps_.store.ListEnv(app_id);
    if (vars.ok()) {
      for (const store::EnvVar& v : *vars) {
        if (v.build) {
          auto plain = deps_.box.Open(v.value_sealed, "env:" + app_id + ":" + v.key);
          if (plain.ok()) {
            env.push_back(v.key + "=" + *plain);
          }
        }
      }
    }
    for (const auto& [k, v] : req.build_env) {
      env.push_back(k + "=" + v);
    }
    runtime::InstanceSpec spec;
    spec.id = NewId("ins");
    spec.template_name = "base";
    spec.resources.memory_mb = std::max<int64_t>(task->app.memory_mb, 1024);
    spec.resources.cpus = std::max(1.0, static_cast<double>(task->app.millicpus) / 1000.0);
    spec.resources.pids = deps_.config.sandboxes.pids;
    spec.network = req.build_egress ? runtime::Network::kEgress : runtime::Network::kNone;
    spec.env = env;
    spec.mounts.push_back({fs::absolute(app_dir).string(), "/app", false});
    spec.cwd = "/app";
    spec.label = "build:" + dep.id;
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::seconds(deps_.config.apps.build_timeout_seconds);
    std::string instance;
    for (const char* name : {"install", "build"}) {
      const std::string& command = std::string(name) == "install" ? plan->install : plan->build;
      if (command.empty()) {
        skip(name);
        continue;
      }
      begin(name);
      if (Status s = check_cancel(); !s.ok()) {
        return finish_failed(s);
      }
      if (instance.empty()) {
        auto started = deps_.runtime->Start(spec);
        if (!started.ok()) {
          return finish_failed(started.status());
        }
        instance = started->id;
        {
          std::lock_guard lock(task->mu);
          task->build_instance = instance;
        }
        // Cancel reads build_instance after setting the flag: one of us sees the other.
        if (task->cancelled.load()) {
          (void)deps_.runtime->Remove(instance);
          return finish_failed(check_cancel());
        }
      }
      log("$ " + command);
      auto client = deps_.runtime->Client(instance);
      runtime::ExecRequest exec;
      exec.argv = {"/bin/sh", "-c", command};
      exec.cwd = "/app";
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                      deadline - std::chrono::steady_clock::now())
                      .count();
      exec.timeout_ms = std::max<int64_t>(1000, left);
      LineSplitter lines([&](std::string_view l) { log(std::string(l)); });
      auto result = client.ok() ? client->Exec(exec,
                                               [&](int, std::string_view chunk) {
                                                 lines.Add(chunk);
                                                 return !task->cancelled.load();
                                               })
                                : Result<runtime::ExecResult>(client.status());
      lines.Flush();
      Status failed;
      if (task->cancelled.load()) {
        failed = Status::Conflict("DEPLOYMENT_CANCELLED", "cancelled");
      } else if (!result.ok()) {
        failed = result.status();
      } else if (result->timed_out) {
        failed = Status::Unprocessable(
            "BUILD_TIMEOUT",
            std::string(name) + " did not finish within the build time limit (" +
                std::to_string(deps_.config.apps.build_timeout_seconds) + " s)",
            "make it faster, or raise apps.build_timeout_seconds");
      } else if (result->exit_code != 0) {
        std::string code = std::string(name) == "install" ? "INSTALL_FAILED" : "BUILD_FAILED";
        failed = Status::Unprocessable(
            code, "`" + command + "` exited with " + std::to_string(result->exit_code),
            result->exit_code == 127
                ? "a program it runs is not installed in the build instance; override `" +
                      std::string(name) + "`, or install it in a custom template"
                : "its output is in the deployment log (kiln logs --deployment " + dep.id + ")");
      }
      if (!failed.ok()) {
        (void)deps_.runtime->Remove(instance);
        return finish_failed(failed);
      }
      end("ok");
    }
    if (!instance.empty()) {
      (void)deps_.runtime->Remove(instance);
      std::lock_guard lock(task->mu);
      task->build_instance.clear();
    }
  }

  // ---- release ----
  begin("release");
  store::Release release;
  release.id = NewId("rel");
  release.workspace_id = dep.workspace_id;
  release.app_id = app_id;
  release.deployment_id = dep.id;
  json::object plan_json{{"runtime", plan->runtime},
                         {"start", plan->start},
                         {"preStart", plan->pre_start},
                         {"port", plan->port}};
  if (req.health_check_path) {
    plan_json["healthCheckPath"] = *req.health_check_path;
  }
  release.plan = ToJson(plan_json);
  release.created_ms = deps_.clock.NowMs();
  {
    std::error_code ec;
    std::string dest = ReleaseDir(app_id, release.id);
    fs::create_directories(fs::path(dest).parent_path(), ec);
    fs::rename(app_dir, dest, ec);
    if (ec) {
      return finish_failed(
          Status::Internal("cannot move the build to " + dest + ": " + ec.message()));
    }
    release.size_bytes = DirectorySize(dest);
    if (Status s = deps_.store.InsertRelease(release); !s.ok()) {
      fs::remove_all(dest, ec);
      return finish_failed(s);
    }
    fs::remove_all(build_dir, ec);
  }
  {
    std::lock_guard lock(task->mu);
    dep.release_id = release.id;
    dep.status = "deploying";
  }
  log("release " + release.id + " (" + std::to_string(release.size_bytes) + " bytes)");
  end("ok");

  // ---- start, switch ----
  begin("start");
  auto fresh = deps_.store.GetApp(dep.workspace_id, app_id);
  if (!fresh.ok()) {
    return finish_failed(fresh.status());
  }
  auto launched = Launch(*fresh, release, &task->cancelled, log);
  if (!launched.ok()) {
    return finish_failed(launched.status());
  }
  end("ok");
  begin("switch");
  std::shared_ptr<const AppRoute> old;
  {
    std::lock_guard app_lock(LockFor(app_id));
    auto app = deps_.store.GetApp(dep.workspace_id, app_id);
    if (!app.ok() || task->cancelled.load()) {
      (void)deps_.runtime->Remove(launched->instance_id);
      return finish_failed(app.ok() ? check_cancel() : app.status());
    }
    auto replaced = GoLive(*app, *launched, release.id, [&](const store::App& live) {
      end("ok");
      {
        std::lock_guard lock(task->mu);
        dep.status = "live";
        dep.finished_ms = deps_.clock.NowMs();
      }
      auto event = MakeEvent(deps_, dep.workspace_id, "deployment.live", task->actor, dep.id,
                             {{"app", app_id}, {"release", release.id}});
      return save(&live, &event);
    });
    if (!replaced.ok()) {
      return finish_failed(replaced.status());
    }
    old = *replaced;
    log("live at " + Url(*app));
  }
  Retire(old);
}

// ---- Cancel, rollback ----

Result<store::Deployment> AppManager::Cancel(const auth::Principal& principal,
                                             const std::string& dep_id) {
  KILN_ASSIGN_OR_RETURN(store::Deployment dep, GetDeployment(principal.workspace.id, dep_id));
  if (dep.status != "queued" && dep.status != "building" && dep.status != "deploying") {
    return Status::Conflict("DEPLOYMENT_FINISHED", "deployment " + dep.id + " is " + dep.status,
                            "only queued, building or deploying deployments can be cancelled");
  }
  std::shared_ptr<Task> task;
  {
    std::lock_guard lock(tasks_mu_);
    auto it = tasks_.find(dep_id);
    if (it != tasks_.end()) {
      task = it->second;
    }
  }
  if (!task) {  // nothing runs it (a rollback in its last step): record the end
    dep.status = "cancelled";
    dep.finished_ms = deps_.clock.NowMs();
    KILN_RETURN_IF_ERROR(deps_.store.UpdateDeployment(dep, nullptr, nullptr));
    return dep;
  }
  task->cancelled = true;
  std::string build_instance;
  {
    std::lock_guard lock(task->mu);
    build_instance = task->build_instance;
  }
  if (!build_instance.empty()) {
    (void)deps_.runtime->Remove(build_instance);  // ends a command that prints nothing
  }
  // Answer once the deployment has ended (quickly: every step checks for cancellation).
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (std::chrono::steady_clock::now() < deadline) {
    KILN_ASSIGN_OR_RETURN(dep, GetDeployment(principal.workspace.id, dep_id));
    if (dep.status != "queued" && dep.status != "building" && dep.status != "deploying") {
      break;
    }
    WaitForDeployChange(100);
  }
  return dep;
}

Result<store::Deployment> AppManager::Rollback(const auth::Principal& principal,
                                               const store::App& app, const std::string& dep_id) {
  KILN_RETURN_IF_ERROR(Available());
  std::string release_id;
  std::string target_dep = dep_id;
  if (!dep_id.empty()) {
    KILN_ASSIGN_OR_RETURN(store::Deployment target, GetDeployment(app.workspace_id, dep_id));
    if (target.app_id != app.id || target.release_id.empty()) {
      return Status::InvalidArgument(
          "ROLLBACK_TARGET_INVALID",
          "deployment " + dep_id + " has no release of app " + app.name + " to go back to",
          "pick a deployment of this app that went live (GET /v1/apps/" + app.name +
              "/deployments)");
    }
    release_id = target.release_id;
  } else {
    KILN_ASSIGN_OR_RETURN(std::vector<store::Deployment> history,
                          deps_.store.ListDeployments(app.id, {0, 200}));
    for (const store::Deployment& d : history) {
      if ((d.status == "superseded" || d.status == "live") && !d.release_id.empty() &&
          d.release_id != app.release_id) {
        release_id = d.release_id;
        target_dep = d.id;
        break;
      }
    }
    if (release_id.empty()) {
      return Status::Conflict("NO_PREVIOUS_RELEASE",
                              "app " + app.name + " has no earlier release to roll back to",
                              "deploy a new version instead");
    }
  }
  KILN_ASSIGN_OR_RETURN(store::Release release, deps_.store.GetRelease(app.id, release_id));
  if (release.status != "ready") {
    return Status::Conflict("RELEASE_GONE",
                            "release " + release.id + " was removed by garbage collection",
                            "redeploy that version, or keep more with apps.releases_kept");
  }
  auto task = std::make_shared<Task>();
  store::Deployment& dep = task->dep;
  dep.id = NewId("dep");
  dep.workspace_id = app.workspace_id;
  dep.app_id = app.id;
  dep.kind = "rollback";
  dep.status = "deploying";
  dep.source = ToJson(
      json::object{{"type", "release"}, {"release", release.id}, {"deploymentId", target_dep}});
  dep.config = "{}";
  dep.release_id = release.id;
  task->steps = PendingSteps({"start", "switch"});
  dep.steps = ToJson(task->steps);
  dep.created_ms = deps_.clock.NowMs();
  dep.created_by = principal.key_id;
  KILN_RETURN_IF_ERROR(deps_.store.InsertDeployment(
      dep, MakeEvent(deps_, app.workspace_id, "deployment.created", principal.key_id, dep.id,
                     {{"app", app.id}, {"source", "rollback"}})));
  {
    std::lock_guard lock(tasks_mu_);
    tasks_[dep.id] = task;
  }
  auto t0 = std::chrono::steady_clock::now();
  auto record_step = [&](const std::string& name, const std::string& status, const Status* error) {
    json::object* s = StepOf(task->steps, name);
    (*s)["status"] = status;
    (*s)["startedAt"] = TimeOrNull(deps_.clock.NowMs());
    (*s)["durationMs"] =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
            .count();
    if (error != nullptr) {
      (*s)["error"] = ValidUtf8(error->message());
    }
    dep.steps = ToJson(task->steps);
  };
  auto log = [&](const std::string& text) { AppendLog(dep.id, "start", text, app.id); };
  log("rolling back to release " + release.id + " of deployment " + target_dep);
  auto launched = Launch(app, release, &task->cancelled, log);
  auto untrack = [&] {
    std::lock_guard lock(tasks_mu_);
    tasks_.erase(dep.id);
  };
  if (!launched.ok()) {
    bool cancelled = task->cancelled.load();
    record_step("start", cancelled ? "cancelled" : "failed", &launched.status());
    (*StepOf(task->steps, "switch"))["status"] = "skipped";
    dep.steps = ToJson(task->steps);
    dep.status = cancelled ? "cancelled" : "failed";
    dep.error = cancelled ? "" : DeployErrorJson("start", launched.status());
    dep.finished_ms = deps_.clock.NowMs();
    auto event = MakeEvent(deps_, dep.workspace_id, "deployment.failed", principal.key_id, dep.id,
                           {{"app", app.id}, {"step", "start"}});
    (void)deps_.store.UpdateDeployment(dep, nullptr, &event);
    untrack();
    return launched.status();
  }
  record_step("start", "ok", nullptr);
  t0 = std::chrono::steady_clock::now();
  std::shared_ptr<const AppRoute> old;
  {
    std::lock_guard app_lock(LockFor(app.id));
    auto current = deps_.store.GetApp(app.workspace_id, app.id);
    if (!current.ok()) {
      (void)deps_.runtime->Remove(launched->instance_id);
      untrack();
      return current.status();
    }
    auto record = [&](const store::App& live) {
      record_step("switch", "ok", nullptr);
      dep.status = "live";
      dep.finished_ms = deps_.clock.NowMs();
      auto event = MakeEvent(deps_, dep.workspace_id, "deployment.live", principal.key_id, dep.id,
                             {{"app", app.id}, {"release", release.id}, {"rollback", true}});
      return deps_.store.UpdateDeployment(dep, &live, &event);
    };
    auto replaced = GoLive(*current, *launched, release.id, record);
    if (!replaced.ok()) {
      untrack();
      return replaced.status();
    }
    old = *replaced;
    AppendLog(dep.id, "switch", "live at " + Url(app), app.id);
  }
  untrack();
  if (old) {
    std::thread([this, old] { Retire(old); }).detach();
  }
  return dep;
}

// ---- Background work ----

void AppManager::Start() {
  if (deps_.runtime == nullptr) {
    return;
  }
  examples_dir_ = deps_.config.apps.examples_dir;
  if (examples_dir_.empty()) {
    // Beside the binary when installed, or the source tree's when run from build/.
    std::error_code ec;
    fs::path exe = fs::read_symlink("/proc/self/exe", ec).parent_path();
    for (const fs::path& candidate :
         {exe / "examples", exe.parent_path() / "examples", fs::path("/usr/share/kiln/examples")}) {
      if (fs::is_directory(candidate, ec)) {
        examples_dir_ = candidate.string();
        break;
      }
    }
  }
  builds_ = std::make_unique<WorkerPool>(static_cast<size_t>(deps_.config.apps.concurrent_builds));
  Reconcile();
  monitor_ = std::thread([this] { MonitorLoop(); });
}

void AppManager::Stop() {
  {
    std::lock_guard lock(monitor_mu_);
    if (stopping_) {
      return;
    }
    stopping_ = true;
  }
  monitor_cv_.notify_all();
  if (monitor_.joinable()) {
    monitor_.join();
  }
  // Deployments in flight end now (recorded as cancelled; the next start would fail them).
  std::vector<std::shared_ptr<Task>> running;
  {
    std::lock_guard lock(tasks_mu_);
    for (auto& [id, t] : tasks_) {
      running.push_back(t);
    }
  }
  for (auto& t : running) {
    t->cancelled = true;
    std::string instance;
    {
      std::lock_guard lock(t->mu);
      instance = t->build_instance;
    }
    if (!instance.empty() && deps_.runtime != nullptr) {
      (void)deps_.runtime->Remove(instance);
    }
  }
  builds_.reset();
}

}  // namespace kiln::service
