#pragma once
// Module-private: custom domains of apps (API.md domains), the map the gateway routes them
// by, and the ACME HTTP-01 challenges waiting to be answered. Service::FindDomainRoute and
// Service::AcmeChallenge forward here.

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "service/operations.h"
#include "service/service.h"

namespace kiln::service {

class AppManager;

class DomainManager {
 public:
  DomainManager(const Deps& deps, AppManager& apps);
  ~DomainManager();
  std::shared_ptr<const AppRoute> FindRoute(std::string_view host) const;
  std::string Challenge(std::string_view token) const;

 private:
  const Deps& deps_;
  AppManager& apps_;
};

// apps.domains.get / apps.domains.set.
void AddDomainOperations(const Deps& deps, DomainManager& domains, AppManager& apps,
                         std::vector<Operation>& out);

}  // namespace kiln::service
