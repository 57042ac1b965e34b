#pragma once
// Module-private: custom domains of apps (API.md domains), the map the gateway routes them
// by, and the ACME HTTP-01 challenges waiting to be answered. Service::FindDomainRoute and
// Service::AcmeChallenge forward here.
//
// Thread-safety: every method may be called from any thread. The domain map and the
// challenges are read on the gateway's I/O threads, so each is a map behind a shared lock;
// the store stays the source of truth (DOMAIN_TAKEN is decided in its transaction).

#include <functional>
#include <map>
#include <memory>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "service/operations.h"
#include "service/service.h"

namespace kiln::service {

class AppManager;

// `text` as a custom domain: lower-cased, one trailing dot dropped, checked to be a DNS name
// of two labels or more that is no IP address, no wildcard and not `base_domain` or under
// it. Errors: InvalidArgument DOMAIN_INVALID, DOMAIN_RESERVED.
Result<std::string> NormalizeDomain(std::string_view text, std::string_view base_domain);

// Whether `domain` (normalized) is an apex (example.com): it cannot have a CNAME record.
// Without a public-suffix list, two labels are taken to be an apex.
bool IsApexDomain(std::string_view domain);

// The most custom domains one app may have.
constexpr size_t kMaxDomainsPerApp = 20;

class DomainManager {
 public:
  DomainManager(const Deps& deps, AppManager& apps);
  ~DomainManager();

  std::shared_ptr<const AppRoute> FindRoute(std::string_view host) const;
  bool IsCustomDomain(std::string_view host) const;
  std::string Challenge(std::string_view token) const;
  void SetChallenge(const std::string& token, const std::string& key_authorization);

  // Replaces the domains of `app` (already normalized, no duplicates) and records the event;
  // then asks for certificates of the domains it added.
  Status Set(const auth::Principal& principal, const store::App& app,
             const std::vector<std::string>& domains);

  void SetIssuer(std::function<void(const std::vector<std::string>&)> issue, std::string ca_pem);
  // Whether HTTPS runs (an issuer was given), and the local CA's root.
  bool tls_on() const;
  std::string ca_pem() const;

 private:
  struct Owner {
    std::string app_id;
    std::string workspace_id;
    std::string app_name;
  };
  void Load();

  const Deps& deps_;
  AppManager& apps_;

  mutable std::shared_mutex mu_;
  // guarded by mu_; domain → app (IsCustomDomain drops those of deleted apps)
  mutable std::map<std::string, Owner, std::less<>> owners_;
  std::map<std::string, std::string, std::less<>> challenges_;  // guarded by mu_; token → answer
  std::function<void(const std::vector<std::string>&)> issue_;  // guarded by mu_
  std::string ca_pem_;                                          // guarded by mu_
};

// apps.domains.get / apps.domains.set, tls.ca.get.
void AddDomainOperations(const Deps& deps, DomainManager& domains, AppManager& apps,
                         std::vector<Operation>& out);

}  // namespace kiln::service
