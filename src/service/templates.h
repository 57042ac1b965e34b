#pragma once
// Module-private: templates as users see them. `base` and `debian` are built in (debian is
// made with debootstrap the first time someone asks for it); custom templates belong to a
// workspace, are built in the background from {from, steps, env}, and keep a build log that
// can be followed while it grows.
//
// Thread-safety: every method may be called from any thread.

#include <functional>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <vector>

#include "core/worker_pool.h"
#include "service/service.h"

namespace kiln::service {

class TemplateBuilder {
 public:
  explicit TemplateBuilder(const Deps& deps);
  ~TemplateBuilder();

  // Marks builds that a server stop interrupted as failed.
  void Start();
  // Waits for running builds to finish.
  void Stop();

  // The runtime template a sandbox of `workspace_id` gets for `name`. Asking for `debian`
  // before it exists starts its build. Errors: NotFound TEMPLATE_NOT_FOUND, Conflict
  // TEMPLATE_BUILDING (retry later) or TEMPLATE_FAILED.
  Result<std::string> Resolve(const std::string& workspace_id, const std::string& name);

  // Records template `name` and builds it in the background (202 to the caller).
  Result<json::object> Create(const auth::Principal& principal, const std::string& name,
                              const std::string& from, const std::vector<std::string>& steps,
                              const std::vector<std::string>& env, int64_t pool_size);
  // Called with a template's directory before it is removed (its warm pool must go first).
  void SetBeforeRemove(std::function<void(const std::string&)> before_remove) {
    before_remove_ = std::move(before_remove);
  }
  json::array List(const std::string& workspace_id);
  Result<json::object> Get(const std::string& workspace_id, const std::string& name);
  // Refused with Conflict TEMPLATE_IN_USE while a live sandbox or another template uses it.
  Status Delete(const auth::Principal& principal, const std::string& name);

  // The build log of `name` in `workspace_id`; `building` says whether lines may still come.
  Result<std::string> LogPath(const std::string& workspace_id, const std::string& name,
                              bool* building);

 private:
  std::string LogFile(const std::string& key) const;
  void StartDebianBuild();
  json::object BuiltinJson(const std::string& name);
  json::object CustomJson(const store::Template& t);

  const Deps& deps_;
  std::function<void(const std::string&)> before_remove_;
  std::unique_ptr<WorkerPool> builds_ = std::make_unique<WorkerPool>(2);  // null once stopped
  std::mutex mu_;
  bool debian_building_ = false;  // guarded by mu_
  std::string debian_error_;      // guarded by mu_; why the last debian build failed
};

}  // namespace kiln::service
