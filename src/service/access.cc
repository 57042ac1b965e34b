// Placeholder until the access policies land: public targets pass, others are refused.
#include "service/access.h"

namespace kiln::service {

AccessManager::AccessManager(const Deps& deps, AppManager& apps, SandboxManager& sandboxes)
    : deps_(deps), apps_(apps), sandboxes_(sandboxes) {}
AccessManager::~AccessManager() = default;

AccessDecision AccessManager::Authorize(const AccessCheck& check) const {
  AccessDecision decision;
  if (check.policy != "public") {
    decision.status = 401;
    decision.error = Status::Unauthenticated("AUTH_REQUIRED", "this app is not public",
                                             "send an API key of its workspace");
  }
  return decision;
}

AccessDecision Service::Authorize(const AccessCheck& check) const {
  return access_->Authorize(check);
}

void AddAccessOperations(const Deps&, AccessManager&, AppManager&, SandboxManager&,
                         std::vector<Operation>&) {}

}  // namespace kiln::service
