// Apps: records, routes, lifecycle, volumes, runtime logs (apps.h). Deployments and the
// background work are in deployer.cc.
#include "service/apps.h"

#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "core/crypto.h"
#include "core/process.h"
#include "service/operations.h"

namespace kiln::service {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr int64_t kMiB = 1 << 20;

std::string FormatCpus(double cpus) { return ToJson(Number(cpus)); }

bool IsMountPoint(const std::string& path) {
  std::ifstream mounts("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mounts, line)) {
    // Field 5 is the mount point (spaces escaped as \040; our paths have none).
    size_t pos = 0;
    for (int field = 0; field < 4 && pos != std::string::npos; ++field) {
      pos = line.find(' ', pos + 1);
    }
    if (pos == std::string::npos) {
      continue;
    }
    size_t end = line.find(' ', pos + 1);
    if (line.substr(pos + 1, end - pos - 1) == path) {
      return true;
    }
  }
  return false;
}

int64_t ParseRecordTime(std::string_view line, std::string_view* rest, char* stream) {
  size_t sp = line.find(' ');
  if (sp == std::string_view::npos || sp == 0) {
    return -1;
  }
  int64_t ms = 0;
  for (char c : line.substr(0, sp)) {
    if (c < '0' || c > '9') {
      return -1;
    }
    ms = ms * 10 + (c - '0');
  }
  if (sp + 2 > line.size()) {
    return -1;
  }
  *stream = line[sp + 1];
  *rest = sp + 3 <= line.size() ? line.substr(sp + 3) : std::string_view();
  return ms;
}

}  // namespace

AppManager::AppManager(const Deps& deps) : deps_(deps) {}

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
  return out;
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
  std::lock_guard lock(routes_mu_);
  auto it = routes_.find(name);
  return it == routes_.end() ? nullptr : it->second;
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
    next->netns_path = deps_.runtime->NetnsPath(launched->instance_id);
    next->port = static_cast<uint16_t>(launched->port);
    next->access_policy = app.access_policy;
    next->sleeping = sleeping;
  }
  std::lock_guard lock(routes_mu_);
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
  auto app = deps_.store.GetApp(route->workspace_id, app_id);
  if (!app.ok()) {
    return app.status();
  }
  return Wake(auth::Principal{}, app->id).status();
}

void AppManager::Touch(const std::string& app_id) {
  std::lock_guard lock(touch_mu_);
  last_request_ms_[app_id] = deps_.clock.NowMs();
}

// ---- Volumes ----

Result<std::string> AppManager::EnsureVolume(const store::App& app) {
  std::string dir = VolumeDir(app);
  if (IsMountPoint(dir)) {
    return dir;
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return Status::Internal("cannot create " + dir + ": " + ec.message());
  }
  std::string image = dir + ".img";
  if (!fs::exists(image)) {
    if (!fs::is_empty(dir, ec)) {
      return dir;  // a plain directory volume from a host without loop devices
    }
    std::string tmp = image + ".tmp";
    auto made = RunProcess({"truncate", "-s", std::to_string(app.data_quota_mb) + "M", tmp}, 10s);
    if (made.ok() && made->exit_code == 0) {
      made = RunProcess(
          {"mkfs.ext4", "-q", "-F", "-m", "0", "-E", "nodiscard", "-L", "kiln-data", tmp}, 60s, {},
          "e2fsprogs");
    }
    if (!made.ok() || made->exit_code != 0) {
      fs::remove(tmp, ec);
      log::Warn(
          "app volume without a quota: cannot make an ext4 image",
          {{"app", app.name}, {"error", made.ok() ? made->LastLine() : made.status().ToString()}});
      return dir;
    }
    fs::rename(tmp, image, ec);
  }
  auto mounted = RunProcess({"mount", "-o", "loop,nodev,nosuid", image, dir}, 30s);
  if (!mounted.ok() || mounted->exit_code != 0) {
    log::Warn("app volume without a quota: cannot loop-mount its image",
              {{"app", app.name},
               {"error", mounted.ok() ? mounted->LastLine() : mounted.status().ToString()}});
    return dir;
  }
  // A fresh file system has lost+found; apps expect an empty /data.
  fs::remove(dir + "/lost+found", ec);
  return dir;
}

void AppManager::UnmountVolume(const store::App& app, bool purge) {
  std::string dir = VolumeDir(app);
  if (IsMountPoint(dir)) {
    auto r = RunProcess({"umount", dir}, 30s);
    if (!r.ok() || r->exit_code != 0) {
      (void)RunProcess({"umount", "-l", dir}, 30s);
    }
  }
  if (purge) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    fs::remove(dir + ".img", ec);
  }
}

void AppManager::VolumeUsage(const store::App& app, int64_t* used, int64_t* quota) {
  std::string dir = VolumeDir(app);
  struct statvfs st {};
  if (IsMountPoint(dir) && ::statvfs(dir.c_str(), &st) == 0) {
    *quota = static_cast<int64_t>(st.f_blocks) * static_cast<int64_t>(st.f_frsize);
    *used = static_cast<int64_t>(st.f_blocks - st.f_bfree) * static_cast<int64_t>(st.f_frsize);
    return;
  }
  std::error_code ec;
  *used = fs::exists(dir, ec) ? DirectorySize(dir) : 0;
}

// ---- Launching ----

Result<std::vector<std::string>> AppManager::RuntimeEnvOf(const store::App& app,
                                                          const BuildPlan& plan, int64_t port) {
  std::vector<std::string> env = RuntimeEnv(plan);
  KILN_ASSIGN_OR_RETURN(std::vector<store::EnvVar> vars, deps_.store.ListEnv(app.id));
  for (const store::EnvVar& v : vars) {
    KILN_ASSIGN_OR_RETURN(std::string value,
                          deps_.box.Open(v.value_sealed, "env:" + app.id + ":" + v.key));
    env.push_back(v.key + "=" + value);
  }
  env.push_back("PORT=" + std::to_string(port));
  env.push_back("KILN_APP=" + app.name);
  env.push_back("HOME=/root");
  return env;
}

namespace {

// The last lines of an instance's main log, for saying why an app died.
std::string LogTail(const std::string& log_dir, size_t max_lines) {
  std::ifstream in(log_dir + "/main.log");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    std::string_view rest;
    char stream = 0;
    if (ParseRecordTime(line, &rest, &stream) >= 0) {
      lines.emplace_back(rest);
      if (lines.size() > max_lines) {
        lines.erase(lines.begin());
      }
    }
  }
  std::string out;
  for (const auto& l : lines) {
    out += (out.empty() ? "" : "\n") + l;
  }
  return out;
}

// Whether the main process has exited (kiln-init wrote its `x` record).
bool MainExited(const std::string& log_dir, std::string* how) {
  for (const char* name : {"/main.log"}) {
    std::ifstream in(log_dir + name, std::ios::ate | std::ios::binary);
    if (!in) {
      continue;
    }
    auto size = static_cast<int64_t>(in.tellg());
    int64_t from = std::max<int64_t>(0, size - 4096);
    in.seekg(from);
    std::string tail(static_cast<size_t>(size - from), '\0');
    in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
    size_t pos = tail.rfind(" x ");
    if (pos != std::string::npos) {
      size_t line_start = tail.rfind('\n', pos);
      line_start = line_start == std::string::npos ? 0 : line_start + 1;
      // Only a record's stream field: digits, then " x ".
      std::string_view stamp(tail.data() + line_start, pos - line_start);
      if (!stamp.empty() && stamp.find_first_not_of("0123456789") == std::string_view::npos) {
        size_t end = tail.find('\n', pos);
        *how = tail.substr(pos + 3, end == std::string::npos ? std::string::npos : end - pos - 3);
        return true;
      }
    }
  }
  return false;
}

// One HTTP GET through `fd`; the status code, or 0 when no status line came back in time.
int HttpProbe(int fd, const std::string& path, int timeout_ms) {
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::string request = "GET " + path +
                        " HTTP/1.1\r\nHost: localhost\r\nUser-Agent: kiln-health-check\r\n"
                        "Connection: close\r\n\r\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return 0;
  }
  std::string head;
  char buf[512];
  while (head.find("\r\n") == std::string::npos && head.size() < 4096) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      break;
    }
    head.append(buf, static_cast<size_t>(n));
  }
  // "HTTP/1.1 200 OK"
  if (head.size() < 12 || !head.starts_with("HTTP/1.")) {
    return 0;
  }
  return std::atoi(head.c_str() + 9);
}

}  // namespace

Result<AppManager::Launched> AppManager::Launch(
    const store::App& app, const store::Release& release, const std::atomic<bool>* cancelled,
    const std::function<void(const std::string&)>& log) {
  KILN_RETURN_IF_ERROR(Available());
  KILN_ASSIGN_OR_RETURN(json::value plan_json, ParseJson(release.plan));
  const json::object& pj = plan_json.as_object();
  BuildPlan plan;
  plan.runtime = GetString(pj, "runtime");
  plan.start = GetString(pj, "start");
  plan.pre_start = GetString(pj, "preStart");
  int64_t port = GetInt(pj, "port", 0);
  if (port == 0) {
    port = app.port;
  }
  std::string health_path = GetString(pj, "healthCheckPath");
  KILN_ASSIGN_OR_RETURN(std::string volume, EnsureVolume(app));
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> env, RuntimeEnvOf(app, plan, port));

  runtime::InstanceSpec spec;
  spec.id = NewId("ins");
  spec.template_name = "base";
  spec.resources.memory_mb = app.memory_mb;
  spec.resources.cpus = static_cast<double>(app.millicpus) / 1000.0;
  spec.resources.pids = deps_.config.sandboxes.pids;
  spec.env = std::move(env);
  // A plain command is exec'd so that the app is the process kiln-init watches; a shell line
  // with its own sequencing (a; b, a && b) runs as written.
  std::string first = plan.start.substr(0, plan.start.find_first_of(" \t"));
  static const std::set<std::string> kBuiltins = {
      "exit",  "cd", "export", ".",     "source", "set", "eval", "exec",
      "unset", "if", "for",    "while", "case",   "{",   "(",    "trap"};
  bool plain = plan.start.find_first_of(";&|\n") == std::string::npos && !kBuiltins.contains(first);
  std::string start = plain ? "exec " + plan.start : plan.start;
  std::string script =
      plan.pre_start.empty() ? start : "set -e\n" + plan.pre_start + "\nset +e\n" + start;
  spec.main = {"/bin/sh", "-c", script};
  spec.mounts.push_back({ReleaseDir(app.id, release.id), "/app", true});
  spec.mounts.push_back({volume, "/data", false});
  spec.cwd = "/app";
  spec.label = "app:" + app.id;
  auto started_at = std::chrono::steady_clock::now();
  KILN_ASSIGN_OR_RETURN(runtime::InstanceInfo info, deps_.runtime->Start(spec));
  log("instance " + info.id + " started; waiting for port " + std::to_string(port) +
      (health_path.empty() ? "" : " and " + health_path));

  auto fail = [&](Status s) -> Result<Launched> {
    (void)deps_.runtime->Remove(info.id);
    return s;
  };
  std::string netns = deps_.runtime->NetnsPath(info.id);
  std::string log_dir = deps_.runtime->LogDir(info.id);
  auto deadline = started_at + std::chrono::seconds(deps_.config.apps.health_timeout_seconds);
  auto wait = 2ms;
  int last_status = 0;
  while (true) {
    if (cancelled != nullptr && cancelled->load()) {
      return fail(Status::Conflict("DEPLOYMENT_CANCELLED", "the deployment was cancelled"));
    }
    std::string how;
    if (MainExited(log_dir, &how)) {
      std::string tail = Mask(app.id, LogTail(log_dir, 20));
      return fail(Status::Unprocessable("APP_CRASHED",
                                        "the app's process " + how + " before it answered" +
                                            (tail.empty() ? std::string() : ":\n" + tail),
                                        "run its start command (`" + plan.start +
                                            "`) locally, or look at kiln logs " + app.name));
    }
    auto fd = runtime::ConnectInNetns(netns, static_cast<uint16_t>(port), 500ms);
    if (fd.ok()) {
      int status = health_path.empty() ? 200 : HttpProbe(*fd, health_path, 2000);
      ::close(*fd);
      if (status >= 200 && status < 400) {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - started_at)
                      .count();
        log("healthy after " + std::to_string(ms) + " ms" +
            (health_path.empty() ? " (port open)"
                                 : " (GET " + health_path + " → " + std::to_string(status) + ")"));
        return Launched{info.id, port};
      }
      last_status = status;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      if (last_status != 0) {
        return fail(Status::Unprocessable(
            "HEALTH_CHECK_FAILED",
            "GET " + health_path + " answered " + std::to_string(last_status) + " for " +
                std::to_string(deps_.config.apps.health_timeout_seconds) + " s",
            "make " + health_path +
                " answer 2xx when the app is ready, or change "
                "healthCheckPath"));
      }
      std::string tail = Mask(app.id, LogTail(log_dir, 10));
      return fail(Status::Unprocessable(
          "HEALTH_CHECK_TIMEOUT",
          "the app did not answer on port " + std::to_string(port) + " within " +
              std::to_string(deps_.config.apps.health_timeout_seconds) + " s" +
              (tail.empty() ? std::string() : "; its output:\n" + tail),
          "listen on the port in $PORT (" + std::to_string(port) +
              ") on 0.0.0.0 or 127.0.0.1, or set `port` to the one it uses"));
    }
    std::this_thread::sleep_for(wait);
    wait = std::min<std::chrono::milliseconds>(wait * 2, 50ms);
  }
}

void AppManager::CollectReleases(const store::App& app) {
  auto releases = deps_.store.ListReleases(app.id);
  if (!releases.ok()) {
    return;
  }
  int kept = 0;
  for (store::Release& r : *releases) {
    if (r.status != "ready" || r.id == app.release_id) {
      continue;
    }
    if (kept < deps_.config.apps.releases_kept) {
      ++kept;
      continue;
    }
    std::error_code ec;
    fs::remove_all(ReleaseDir(app.id, r.id), ec);
    r.status = "deleted";
    (void)deps_.store.UpdateRelease(r);
  }
}

// ---- Lifecycle ----

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
  std::shared_ptr<const AppRoute> old = SetRoute(app, &*launched, false);
  std::string old_instance = app.instance_id;
  app.instance_id = launched->instance_id;
  app.status = "running";
  app.updated_ms = deps_.clock.NowMs();
  auto event = MakeEvent(deps_, app.workspace_id, event_type,
                         principal != nullptr ? principal->key_id : std::string(), app.id,
                         {{"instance", app.instance_id}});
  KILN_RETURN_IF_ERROR(deps_.store.UpdateApp(app, &event));
  if (old) {
    std::thread([this, old] { Retire(old); }).detach();
  } else if (!old_instance.empty()) {
    (void)deps_.runtime->Remove(old_instance);
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
  KILN_RETURN_IF_ERROR(Available());
  KILN_ASSIGN_OR_RETURN(store::App app, Get(principal.workspace.id, app_ref));
  std::lock_guard lock(LockFor(app.id));
  KILN_ASSIGN_OR_RETURN(app, Get(principal.workspace.id, app_ref));
  if (app.status == "sleeping") {
    return app;
  }
  if (app.status != "running" || app.instance_id.empty()) {
    return Status::Conflict("APP_NOT_RUNNING", "app " + app.name + " is " + app.status,
                            "start it first (kiln apps start " + app.name + ")");
  }
  KILN_RETURN_IF_ERROR(deps_.runtime->Pause(app.instance_id));
  Launched l{app.instance_id, 0};
  if (auto route = FindRoute(app.name)) {
    l.port = route->port;
  }
  SetRoute(app, &l, true);
  app.status = "sleeping";
  app.updated_ms = deps_.clock.NowMs();
  auto event = MakeEvent(deps_, app.workspace_id, "app.slept", principal.key_id, app.id, {});
  KILN_RETURN_IF_ERROR(deps_.store.UpdateApp(app, &event));
  return app;
}

Result<store::App> AppManager::Wake(const auth::Principal& principal, const std::string& app_ref) {
  KILN_RETURN_IF_ERROR(Available());
  std::string ws = principal.workspace.id;
  if (ws.empty()) {  // the gateway wakes by app id, on behalf of nobody
    std::lock_guard lock(routes_mu_);
    for (const auto& [name, r] : routes_) {
      if (r->app_id == app_ref) {
        ws = r->workspace_id;
      }
    }
  }
  KILN_ASSIGN_OR_RETURN(store::App app, Get(ws, app_ref));
  std::lock_guard lock(LockFor(app.id));
  KILN_ASSIGN_OR_RETURN(app, Get(ws, app_ref));
  if (app.status == "running") {
    return app;
  }
  if (app.status != "sleeping" || app.instance_id.empty()) {
    return Status::Conflict("APP_NOT_SLEEPING", "app " + app.name + " is " + app.status,
                            "start it instead (kiln apps start " + app.name + ")");
  }
  KILN_RETURN_IF_ERROR(deps_.runtime->Resume(app.instance_id));
  Launched l{app.instance_id, 0};
  if (auto route = FindRoute(app.name)) {
    l.port = route->port;
  }
  SetRoute(app, &l, false);
  Touch(app.id);
  app.status = "running";
  app.updated_ms = deps_.clock.NowMs();
  auto event = MakeEvent(deps_, app.workspace_id, "app.woke", principal.key_id, app.id, {});
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
      int64_t t = ParseRecordTime(line, &rest, &stream);
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
