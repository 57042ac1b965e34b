#pragma once
// Module-private: the gateway's access policies (DESIGN.md §6) and the access tokens that
// the `token` policy accepts (API.md access-tokens). Service::Authorize forwards here.

#include <vector>

#include "service/operations.h"
#include "service/service.h"

namespace kiln::service {

class AppManager;
class SandboxManager;

class AccessManager {
 public:
  AccessManager(const Deps& deps, AppManager& apps, SandboxManager& sandboxes);
  ~AccessManager();
  AccessDecision Authorize(const AccessCheck& check) const;

 private:
  const Deps& deps_;
  AppManager& apps_;
  SandboxManager& sandboxes_;
};

// apps.access_tokens.* (and the sandbox counterparts).
void AddAccessOperations(const Deps& deps, AccessManager& access, AppManager& apps,
                         SandboxManager& sandboxes, std::vector<Operation>& out);

}  // namespace kiln::service
