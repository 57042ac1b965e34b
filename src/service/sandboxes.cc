#include "service/sandboxes.h"

#include "service/operations.h"

#include <cmath>
#include <functional>
#include <set>

#include "core/ids.h"
#include "core/log.h"

namespace kiln::service {
namespace {

using namespace std::chrono_literals;

// A sandbox's event: its workspace, about it.
store::Event SandboxEvent(const Deps& d, const store::Sandbox& s, std::string type,
                          const std::string& actor, json::object data = {}) {
  return MakeEvent(d, s.workspace_id, std::move(type), actor, s.id, std::move(data));
}

bool IsLive(const store::Sandbox& s) { return s.status == "running" || s.status == "paused"; }

bool SameResources(const runtime::Resources& a, const runtime::Resources& b) {
  return a.memory_mb == b.memory_mb && std::llround(a.cpus * 1000) == std::llround(b.cpus * 1000) &&
         a.pids == b.pids;
}

Status NotRunning(const store::Sandbox& s) {
  return Status::Conflict("SANDBOX_NOT_RUNNING",
                          "sandbox " + s.id + " has ended (" + s.status + ")",
                          "create a new sandbox with POST /v1/sandboxes");
}

}  // namespace

runtime::Resources PoolResources(const Config& config) {
  runtime::Resources r;
  r.memory_mb = config.sandboxes.default_memory_mb;
  r.cpus = 1;
  r.pids = config.sandboxes.pids;
  return r;
}

SandboxManager::SandboxManager(const Deps& deps) : deps_(deps), templates_(deps) {
  templates_.SetBeforeRemove([this](const std::string& dir) { DrainPool(dir); });
}

SandboxManager::~SandboxManager() { Stop(); }

Status SandboxManager::Available() const {
  if (deps_.runtime != nullptr) {
    return Status::Ok();
  }
  return Status::Unavailable("RUNTIME_UNAVAILABLE",
                             "sandboxes cannot run on this server: " + deps_.runtime_error,
                             "see the server log at start-up; sandboxes need root and runc");
}

void SandboxManager::Start() {
  if (deps_.runtime == nullptr) {
    return;
  }
  templates_.Start();
  Reconcile();
  reaper_ = std::thread([this] { ReaperLoop(); });
  pooler_ = std::thread([this] { PoolLoop(); });
}

void SandboxManager::Stop() {
  {
    std::scoped_lock lock(reaper_mu_, pool_mu_);
    if (stopping_) {
      return;
    }
    stopping_ = true;
  }
  reaper_cv_.notify_all();
  pool_cv_.notify_all();
  if (reaper_.joinable()) {
    reaper_.join();
  }
  if (pooler_.joinable()) {
    pooler_.join();
  }
  templates_.Stop();
  // Pooled instances keep running: the next start takes them back into the pool.
}

std::mutex& SandboxManager::LockFor(const std::string& id) {
  return locks_[std::hash<std::string>{}(id) % locks_.size()];
}

// ---- Reconciling after a restart ----

void SandboxManager::Reconcile() {
  auto live = deps_.store.ListLiveSandboxes();
  if (!live.ok()) {
    log::Error("cannot read sandboxes to reconcile", {{"error", live.status().ToString()}});
    return;
  }
  std::map<std::string, runtime::InstanceInfo> instances;
  for (runtime::InstanceInfo& info : deps_.runtime->List()) {
    instances[info.id] = std::move(info);
  }
  int attached = 0, lost = 0, strays = 0, adopted = 0;
  std::set<std::string> owned;
  for (store::Sandbox& s : *live) {
    owned.insert(s.id);
    auto it = instances.find(s.id);
    if (it == instances.end() || it->second.state == runtime::InstanceState::kStopped) {
      std::lock_guard lock(LockFor(s.id));
      End(s, "lost", "");
      ++lost;
      continue;
    }
    // The freezer is the truth about pause; the record follows it.
    std::string actual = it->second.state == runtime::InstanceState::kPaused ? "paused" : "running";
    if (actual != s.status) {
      s.status = actual;
      (void)deps_.store.UpdateSandbox(s, nullptr);
    }
    Track(s);
    ++attached;
  }
  std::map<std::string, size_t> targets = PoolTargets();
  for (const auto& [id, info] : instances) {
    // Apps' and builds' instances are the AppManager's to reconcile.
    if (owned.contains(id) || info.label.starts_with("app:") || info.label.starts_with("build:")) {
      continue;
    }
    std::deque<std::string>& pool = pool_[info.template_name];
    if (info.label == "pool" && info.state == runtime::InstanceState::kRunning &&
        SameResources(info.resources, PoolResources(deps_.config)) &&
        pool.size() < targets[info.template_name]) {
      pool.push_back(id);
      ++adopted;
      continue;
    }
    deps_.runtime->Remove(id);
    ++strays;
  }
  log::Info("sandboxes reconciled", {{"attached", attached},
                                     {"lost", lost},
                                     {"strays_removed", strays},
                                     {"pool_adopted", adopted}});
}

// ---- Expiry ----

void SandboxManager::Track(const store::Sandbox& s) {
  {
    std::lock_guard lock(reaper_mu_);
    expiries_[s.id] = {s.workspace_id, s.expires_ms};
    if (s.status == "paused") {
      paused_.insert(s.id);
    } else {
      paused_.erase(s.id);
    }
  }
  reaper_cv_.notify_all();
}

void SandboxManager::Untrack(const std::string& id) {
  std::lock_guard lock(reaper_mu_);
  expiries_.erase(id);
  paused_.erase(id);
}

void SandboxManager::ReaperLoop() {
  std::unique_lock lock(reaper_mu_);
  while (!stopping_) {
    int64_t now = deps_.clock.NowMs();
    int64_t next = now + 60'000;
    std::vector<std::pair<std::string, std::string>> due;  // (workspace, id)
    for (const auto& [id, entry] : expiries_) {
      if (entry.second <= now) {
        due.emplace_back(entry.first, id);
      } else {
        next = std::min(next, entry.second);
      }
    }
    if (due.empty()) {
      reaper_cv_.wait_for(lock, std::chrono::milliseconds(next - now));
      continue;
    }
    lock.unlock();
    for (const auto& [workspace, id] : due) {
      std::lock_guard sandbox_lock(LockFor(id));
      auto s = deps_.store.GetSandbox(workspace, id);
      if (!s.ok() || !IsLive(*s)) {
        Untrack(id);
        continue;
      }
      if (s->expires_ms > deps_.clock.NowMs()) {
        Track(*s);  // extended meanwhile
        continue;
      }
      Status ended = End(*s, "expired", "");
      log::Info("sandbox expired", {{"sandbox", id}, {"ok", ended.ok()}});
    }
    lock.lock();
  }
}

// ---- Warm pool ----

size_t SandboxManager::pooled() const {
  std::lock_guard lock(pool_mu_);
  size_t total = 0;
  for (const auto& [dir, ids] : pool_) {
    total += ids.size();
  }
  return total;
}

std::map<std::string, size_t> SandboxManager::PoolTargets() {
  std::map<std::string, size_t> targets;
  auto size = static_cast<size_t>(deps_.config.sandboxes.pool_size);
  for (const std::string& name : PooledTemplates(deps_.config)) {
    if (size > 0 && deps_.runtime->HasTemplate(name)) {
      targets[name] = size;
    }
  }
  if (auto custom = deps_.store.ListAllTemplates(); custom.ok()) {
    for (const store::Template& t : *custom) {
      if (t.status == "ready" && t.pool_size > 0) {
        targets[t.id] = static_cast<size_t>(t.pool_size);
      }
    }
  }
  std::lock_guard lock(pool_mu_);
  for (const std::string& dir : retired_) {
    targets.erase(dir);
  }
  return targets;
}

void SandboxManager::PoolLoop() {
  std::unique_lock lock(pool_mu_);
  while (!stopping_) {
    lock.unlock();
    // Read each round: templates come and go, and a new one with a poolSize starts filling.
    std::map<std::string, size_t> targets = PoolTargets();
    lock.lock();
    std::string dir;
    for (const auto& [name, target] : targets) {
      if (pool_[name].size() < target) {
        dir = name;
        break;
      }
    }
    if (dir.empty()) {
      pool_cv_.wait_for(lock, 5s);
      continue;
    }
    lock.unlock();
    runtime::InstanceSpec spec;
    spec.id = NewId("sbx");
    spec.template_name = dir;
    spec.label = "pool";
    spec.resources = PoolResources(deps_.config);
    auto started = deps_.runtime->Start(spec);
    lock.lock();
    if (!started.ok()) {
      log::Warn("warm pool: cannot start an instance",
                {{"template", dir}, {"error", started.status().ToString()}});
      pool_cv_.wait_for(lock, 10s, [&] { return stopping_; });
      continue;
    }
    if (retired_.contains(dir)) {
      lock.unlock();
      deps_.runtime->Remove(spec.id);
      lock.lock();
      continue;
    }
    pool_[dir].push_back(spec.id);
  }
}

std::string SandboxManager::Claim(const std::string& template_dir) {
  while (true) {
    std::string id;
    {
      std::lock_guard lock(pool_mu_);
      auto it = pool_.find(template_dir);
      if (it == pool_.end() || it->second.empty() || stopping_) {
        return {};
      }
      id = it->second.front();
      it->second.pop_front();
    }
    pool_cv_.notify_all();  // refill
    auto info = deps_.runtime->Get(id);
    if (info.ok() && info->state == runtime::InstanceState::kRunning) {
      return id;
    }
    deps_.runtime->Remove(id);  // died while waiting
  }
}

void SandboxManager::DrainPool(const std::string& template_dir) {
  std::deque<std::string> ids;
  {
    std::lock_guard lock(pool_mu_);
    retired_.insert(template_dir);
    if (auto it = pool_.find(template_dir); it != pool_.end()) {
      ids = std::move(it->second);
      pool_.erase(it);
    }
  }
  for (const std::string& id : ids) {
    deps_.runtime->Remove(id);
  }
}

// ---- Operations ----

Result<store::Sandbox> SandboxManager::Create(const auth::Principal& principal,
                                              const SandboxRequest& request, bool* pooled) {
  KILN_RETURN_IF_ERROR(Available());
  KILN_ASSIGN_OR_RETURN(std::string template_dir,
                        templates_.Resolve(principal.workspace.id, request.template_name));
  *pooled = false;
  std::string id;
  if (request.network == runtime::Network::kNone) {
    id = Claim(template_dir);
    *pooled = !id.empty();
  }
  if (id.empty()) {
    id = NewId("sbx");
  }

  store::Sandbox s;
  s.id = id;
  s.workspace_id = principal.workspace.id;
  s.template_name = request.template_name;
  s.status = "running";
  s.metadata = request.metadata;
  json::object env;
  std::vector<std::string> env_list;
  for (const auto& [k, v] : request.env) {
    env[k] = v;
    env_list.push_back(k + "=" + v);
  }
  // Env values may be secrets (tokens handed to an agent's tools): sealed at rest.
  s.env_sealed = env.empty() ? "" : deps_.box.Seal(json::serialize(env), "sandbox-env:" + id);
  s.memory_mb = request.resources.memory_mb;
  s.millicpus = std::llround(request.resources.cpus * 1000);
  s.pids = request.resources.pids;
  s.network = std::string(runtime::NetworkName(request.network));
  s.created_ms = deps_.clock.NowMs();
  s.expires_ms = s.created_ms + request.timeout_s * 1000;
  s.created_by = principal.key_id;

  std::lock_guard lock(LockFor(id));
  store::SandboxQuota quota{deps_.config.sandboxes.max_per_workspace,
                            deps_.config.sandboxes.memory_mb_per_workspace};
  Status inserted =
      deps_.store.InsertSandbox(s, quota,
                                SandboxEvent(deps_, s, "sandbox.created", principal.key_id,
                                             {{"template", s.template_name}, {"pooled", *pooled}}));
  if (!inserted.ok()) {
    if (*pooled) {
      // Not ours after all: back to the pool's front, still warm.
      std::lock_guard pool_lock(pool_mu_);
      pool_[template_dir].push_front(id);
    }
    if (inserted.error_code() == "SANDBOX_LIMIT_REACHED") {
      return Status(Code::kRateLimited, inserted.error_code(), inserted.message(), inserted.hint());
    }
    if (inserted.error_code() == "MEMORY_QUOTA_EXCEEDED") {
      return Status::PermissionDenied(inserted.error_code(), inserted.message(), inserted.hint());
    }
    return inserted;
  }

  Status ready;
  if (*pooled) {
    if (!SameResources(request.resources, PoolResources(deps_.config))) {
      ready = deps_.runtime->Update(id, request.resources);
    }
    if (ready.ok() && !env_list.empty()) {
      auto client = deps_.runtime->Client(id);
      ready = client.ok() ? client->Configure(env_list) : client.status();
    }
  } else {
    runtime::InstanceSpec spec;
    spec.id = id;
    spec.template_name = template_dir;
    spec.resources = request.resources;
    spec.network = request.network;
    spec.env = env_list;
    spec.label = "sandbox";
    auto started = deps_.runtime->Start(spec);
    ready = started.ok() ? Status::Ok() : started.status();
  }
  if (!ready.ok()) {
    End(s, "failed", principal.key_id);
    return ready;
  }
  Track(s);
  return s;
}

Result<store::Sandbox> SandboxManager::Get(const std::string& workspace_id, const std::string& id) {
  return deps_.store.GetSandbox(workspace_id, id);
}

Result<store::Sandbox> SandboxManager::Live(const std::string& workspace_id,
                                            const std::string& id) {
  KILN_ASSIGN_OR_RETURN(store::Sandbox s, deps_.store.GetSandbox(workspace_id, id));
  if (!IsLive(s)) {
    return NotRunning(s);
  }
  return s;
}

Status SandboxManager::End(store::Sandbox& s, const std::string& status, const std::string& actor) {
  Untrack(s.id);
  Status removed = deps_.runtime != nullptr ? deps_.runtime->Remove(s.id) : Status::Ok();
  if (!removed.ok()) {
    log::Warn("sandbox instance not fully removed",
              {{"sandbox", s.id}, {"error", removed.ToString()}});
  }
  s.status = status;
  s.end_reason = status;
  s.ended_ms = deps_.clock.NowMs();
  store::Event event = SandboxEvent(deps_, s, "sandbox." + status, actor);
  return deps_.store.UpdateSandbox(s, &event);
}

Result<store::Sandbox> SandboxManager::Kill(const auth::Principal& principal,
                                            const std::string& id) {
  std::lock_guard lock(LockFor(id));
  KILN_ASSIGN_OR_RETURN(store::Sandbox s, deps_.store.GetSandbox(principal.workspace.id, id));
  if (!IsLive(s)) {
    return s;
  }
  KILN_RETURN_IF_ERROR(End(s, "killed", principal.key_id));
  return s;
}

Result<store::Sandbox> SandboxManager::SetPaused(const auth::Principal& principal,
                                                 const std::string& id, bool paused) {
  KILN_RETURN_IF_ERROR(Available());
  std::lock_guard lock(LockFor(id));
  KILN_ASSIGN_OR_RETURN(store::Sandbox s, Live(principal.workspace.id, id));
  std::string want = paused ? "paused" : "running";
  if (s.status == want) {
    return s;
  }
  KILN_RETURN_IF_ERROR(paused ? deps_.runtime->Pause(id) : deps_.runtime->Resume(id));
  s.status = want;
  store::Event event =
      SandboxEvent(deps_, s, paused ? "sandbox.paused" : "sandbox.resumed", principal.key_id);
  KILN_RETURN_IF_ERROR(deps_.store.UpdateSandbox(s, &event));
  Track(s);
  return s;
}

Result<store::Sandbox> SandboxManager::SetTimeout(const auth::Principal& principal,
                                                  const std::string& id, int64_t seconds) {
  std::lock_guard lock(LockFor(id));
  KILN_ASSIGN_OR_RETURN(store::Sandbox s, Live(principal.workspace.id, id));
  s.expires_ms = deps_.clock.NowMs() + seconds * 1000;
  store::Event event =
      SandboxEvent(deps_, s, "sandbox.timeout_set", principal.key_id, {{"seconds", seconds}});
  KILN_RETURN_IF_ERROR(deps_.store.UpdateSandbox(s, &event));
  Track(s);
  return s;
}

Result<runtime::InitClient> SandboxManager::Client(const std::string& workspace_id,
                                                   const std::string& id) {
  KILN_RETURN_IF_ERROR(Available());
  KILN_ASSIGN_OR_RETURN(store::Sandbox s, Live(workspace_id, id));
  if (s.status == "paused") {
    return Status::Conflict("SANDBOX_PAUSED", "sandbox " + id + " is paused",
                            "resume it first: POST /v1/sandboxes/" + id + "/resume");
  }
  return deps_.runtime->Client(id);
}

std::optional<runtime::InstanceStats> SandboxManager::Stats(const std::string& id) {
  if (deps_.runtime == nullptr) {
    return std::nullopt;
  }
  auto stats = deps_.runtime->Stats(id);
  if (!stats.ok()) {
    return std::nullopt;
  }
  return *stats;
}

std::optional<runtime::InstanceStats> SandboxManager::LimitEvents(const std::string& id) {
  if (deps_.runtime == nullptr) {
    return std::nullopt;
  }
  auto events = deps_.runtime->LimitEvents(id);
  if (!events.ok()) {
    return std::nullopt;
  }
  return *events;
}

json::object SandboxManager::ToJson(const store::Sandbox& s, bool with_usage) {
  json::value metadata = json::object();
  if (auto parsed = ParseJson(s.metadata); parsed.ok() && parsed->is_object()) {
    metadata = std::move(*parsed);
  }
  auto time_or_null = [](int64_t ms) {
    return ms == 0 ? json::value(nullptr) : json::value(FormatTime(ms));
  };
  json::object o{
      {"id", s.id},
      {"template", s.template_name},
      {"status", s.status},
      {"startedAt", FormatTime(s.created_ms)},
      {"expiresAt", IsLive(s) ? json::value(FormatTime(s.expires_ms)) : json::value(nullptr)},
      {"endedAt", time_or_null(s.ended_ms)},
      {"endReason", s.end_reason.empty() ? json::value(nullptr) : json::value(s.end_reason)},
      {"metadata", std::move(metadata)},
      {"network", s.network},
      {"resources", json::object{{"memoryMb", s.memory_mb},
                                 {"cpus", Number(static_cast<double>(s.millicpus) / 1000.0)},
                                 {"pids", s.pids}}},
  };
  if (with_usage && IsLive(s)) {
    if (auto stats = Stats(s.id)) {
      o["usage"] =
          json::object{{"memoryBytes", stats->memory_bytes},
                       {"processes", stats->pids},
                       {"cpuSeconds", Number(static_cast<double>(stats->cpu_usage_us) / 1e6)}};
      // Why processes died or forks failed: the kernel's counts at the limits.
      o["limitEvents"] =
          json::object{{"oomKills", stats->oom_kills}, {"pidsLimitHits", stats->pids_limit_hits}};
    }
  }
  return o;
}

std::shared_ptr<const AppRoute> SandboxManager::FindRoute(std::string_view id,
                                                          uint16_t port) const {
  if (deps_.runtime == nullptr) {
    return nullptr;
  }
  auto route = std::make_shared<AppRoute>();
  {
    std::lock_guard lock(reaper_mu_);
    auto it = expiries_.find(id);
    if (it == expiries_.end() || paused_.count(it->first) != 0) {
      return nullptr;  // ended, unknown or paused: nothing answers there now
    }
    route->app_id = it->first;
    route->workspace_id = it->second.first;
  }
  route->instance_id = route->app_id;
  route->name = std::to_string(port) + "-" + route->app_id;
  route->netns_path = deps_.runtime->NetnsPath(route->app_id);
  route->port = port;
  route->access_policy = deps_.config.sandboxes.port_access;
  route->sandbox = true;
  return route;
}

}  // namespace kiln::service
