#pragma once
// Module-private: sandboxes, the records (store) and the instances (runtime) kept in step.
//
// The manager owns three background threads once started: the warm pool (started `base`
// instances waiting to become sandboxes), the reaper (kills sandboxes when they expire, also
// the ones that expired while the server was down) and the template builder. Start() first
// reconciles: live sandboxes whose instance is gone are marked `lost`, instances nobody owns
// are removed (or, if they were pooled, kept for the pool).
//
// Thread-safety: every method may be called from any thread. Changes to one sandbox are
// serialized by a lock striped over sandbox ids.

#include <array>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "service/service.h"
#include "service/templates.h"

namespace kiln::service {

struct SandboxRequest {
  std::string template_name = "base";
  int64_t timeout_s = 300;
  std::string metadata = "{}";  // JSON object text
  std::vector<std::pair<std::string, std::string>> env;
  runtime::Resources resources;
  runtime::Network network = runtime::Network::kNone;
};

class SandboxManager {
 public:
  explicit SandboxManager(const Deps& deps);
  ~SandboxManager();
  SandboxManager(const SandboxManager&) = delete;
  SandboxManager& operator=(const SandboxManager&) = delete;

  void Start();
  void Stop();

  // OK when instances can run here, else Unavailable RUNTIME_UNAVAILABLE saying why.
  Status Available() const;

  // Creates a sandbox, from the warm pool when one fits (`pooled` says which). Errors:
  // RateLimited SANDBOX_LIMIT_REACHED, PermissionDenied MEMORY_QUOTA_EXCEEDED, Conflict
  // TEMPLATE_BUILDING / TEMPLATE_FAILED, NotFound TEMPLATE_NOT_FOUND.
  Result<store::Sandbox> Create(const auth::Principal& principal, const SandboxRequest& request,
                                bool* pooled);
  Result<store::Sandbox> Get(const std::string& workspace_id, const std::string& id);
  // Kills and removes the instance; the record stays with status `killed`. Killing an ended
  // sandbox answers it unchanged.
  Result<store::Sandbox> Kill(const auth::Principal& principal, const std::string& id);
  // Pauses (freezes every process) or resumes a live sandbox; no change when it already is.
  Result<store::Sandbox> SetPaused(const auth::Principal& principal, const std::string& id,
                                   bool paused);
  // The sandbox now expires `seconds` from now.
  Result<store::Sandbox> SetTimeout(const auth::Principal& principal, const std::string& id,
                                    int64_t seconds);
  // The kiln-init client of a running sandbox. Errors: NotFound SANDBOX_NOT_FOUND, Conflict
  // SANDBOX_PAUSED or SANDBOX_NOT_RUNNING (it ended).
  Result<runtime::InitClient> Client(const std::string& workspace_id, const std::string& id);
  // Memory, processes and limit events of a live sandbox; nullopt when it has no instance.
  std::optional<runtime::InstanceStats> Stats(const std::string& id);
  // Only the limit events (oom kills, pids limit hits), for before and after an exec.
  std::optional<runtime::InstanceStats> LimitEvents(const std::string& id);

  json::object ToJson(const store::Sandbox& sandbox, bool with_usage);

  TemplateBuilder& templates() { return templates_; }
  // Sandboxes waiting in the warm pools now.
  size_t pooled() const;
  // The gateway's route to port `port` of running sandbox `id`, or null.
  std::shared_ptr<const AppRoute> FindRoute(std::string_view id, uint16_t port) const;

 private:
  std::mutex& LockFor(const std::string& id);
  Result<store::Sandbox> Live(const std::string& workspace_id, const std::string& id);
  // Ends a live sandbox: removes its instance and records `status` (killed, expired, lost).
  Status End(store::Sandbox& sandbox, const std::string& status, const std::string& actor);
  void Reconcile();
  void Track(const store::Sandbox& sandbox);
  void Untrack(const std::string& id);
  void ReaperLoop();
  void PoolLoop();
  // A started pool instance of `template_dir`, or empty when none is still alive.
  std::string Claim(const std::string& template_dir);
  // How many instances each template's pool should hold: the built-ins named in the config,
  // and custom templates by their poolSize.
  std::map<std::string, size_t> PoolTargets();
  // Removes the pool of a template about to be deleted, and keeps it from refilling.
  void DrainPool(const std::string& template_dir);

  const Deps& deps_;
  TemplateBuilder templates_;
  std::array<std::mutex, 64> locks_;

  // Expiry: sandbox id -> (workspace, expires_ms) of every live sandbox.
  mutable std::mutex reaper_mu_;
  std::condition_variable reaper_cv_;
  std::map<std::string, std::pair<std::string, int64_t>, std::less<>> expiries_;
  std::set<std::string, std::less<>> paused_;  // live sandboxes that are paused

  // Warm pools by runtime template directory ("base", "debian", "tpl_…"), oldest first.
  mutable std::mutex pool_mu_;
  std::condition_variable pool_cv_;
  std::map<std::string, std::deque<std::string>> pool_;
  std::set<std::string> retired_;  // templates being deleted: never refilled again

  bool stopping_ = false;  // guarded by reaper_mu_ and pool_mu_ (set under both)
  std::thread reaper_;
  std::thread pooler_;
};

// Pool instances are started with these; a sandbox that asks for others is resized on claim.
runtime::Resources PoolResources(const Config& config);

}  // namespace kiln::service
