// Placeholder until custom domains land.
#include "service/domains.h"

namespace kiln::service {

DomainManager::DomainManager(const Deps& deps, AppManager& apps) : deps_(deps), apps_(apps) {}
DomainManager::~DomainManager() = default;

std::shared_ptr<const AppRoute> DomainManager::FindRoute(std::string_view) const { return nullptr; }
std::string DomainManager::Challenge(std::string_view) const { return {}; }

std::shared_ptr<const AppRoute> Service::FindDomainRoute(std::string_view host) const {
  return domains_->FindRoute(host);
}
std::string Service::AcmeChallenge(std::string_view token) const {
  return domains_->Challenge(token);
}

void AddDomainOperations(const Deps&, DomainManager&, AppManager&, std::vector<Operation>&) {}

}  // namespace kiln::service
