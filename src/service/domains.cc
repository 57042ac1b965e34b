// Custom domains: validation, the domain → app map the gateway routes by, ACME HTTP-01
// answers, and the hand-off to the tls module for certificates.
#include "service/domains.h"

#include <algorithm>
#include <mutex>
#include <set>

#include "service/apps.h"

namespace kiln::service {
namespace {

Status Invalid(std::string_view text, const std::string& why, std::string hint) {
  return Status::InvalidArgument(
      "DOMAIN_INVALID", "\"" + ValidUtf8(std::string(text)) + "\" " + why, std::move(hint));
}

}  // namespace

Result<std::string> NormalizeDomain(std::string_view text, std::string_view base_domain) {
  const std::string kHint = "give a host name such as shop.example.com (letters, digits, dashes)";
  std::string d;
  d.reserve(text.size());
  for (char c : text) {
    d.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  if (d.ends_with('.')) {
    d.pop_back();
  }
  if (d.empty() || d.size() > 253) {
    return Invalid(text, "is not a domain name (1 to 253 characters)", kHint);
  }
  if (d.find('*') != std::string::npos) {
    return Invalid(text, "is a wildcard", "list each host of the app on its own");
  }
  if (d.find(':') != std::string::npos || d.find('[') != std::string::npos) {
    return Invalid(text, "is an IP address or has a port",
                   "give the host name only; the gateway listens on its own ports");
  }
  size_t labels = 0;
  bool last_all_digits = false;
  for (size_t start = 0; start <= d.size();) {
    size_t end = d.find('.', start);
    if (end == std::string::npos) {
      end = d.size();
    }
    std::string_view label(d.data() + start, end - start);
    if (label.empty() || label.size() > 63) {
      return Invalid(text, "has an empty or too long label (1 to 63 characters between dots)",
                     kHint);
    }
    last_all_digits = true;
    for (char c : label) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
      if (!ok) {
        return Invalid(text, "has a character a host name cannot have",
                       "use letters, digits and dashes; write international names in "
                       "punycode (xn--...)");
      }
      last_all_digits = last_all_digits && c >= '0' && c <= '9';
    }
    if (label.front() == '-' || label.back() == '-') {
      return Invalid(text, "has a label starting or ending with a dash", kHint);
    }
    ++labels;
    start = end + 1;
  }
  if (last_all_digits) {
    return Invalid(text, "is an IP address", "give a host name; the gateway routes by name");
  }
  std::string base(base_domain);
  if (d == base || d.ends_with("." + base)) {
    return Status::InvalidArgument(
        "DOMAIN_RESERVED",
        "\"" + d + "\" is " +
            (d == base ? "the server's base domain" : "under the base domain " + base),
        "apps are reached at APP." + base + " already; a custom domain is one of your own");
  }
  if (labels < 2) {
    return Invalid(text, "is not a fully qualified domain name",
                   "give the whole name, such as shop.example.com");
  }
  return d;
}

bool IsApexDomain(std::string_view domain) {
  return std::count(domain.begin(), domain.end(), '.') == 1;
}

DomainManager::DomainManager(const Deps& deps, AppManager& apps) : deps_(deps), apps_(apps) {
  Load();
}
DomainManager::~DomainManager() = default;

void DomainManager::Load() {
  auto all = deps_.store.ListAllDomains();
  auto apps = deps_.store.ListAllApps();
  if (!all.ok() || !apps.ok()) {
    // The server still starts; custom domains answer 404 until the next change reloads them.
    log::Error("cannot load custom domains",
               {{"error", (all.ok() ? apps.status() : all.status()).ToString()}});
    return;
  }
  std::map<std::string, std::string, std::less<>> names;  // app id → name
  for (const store::App& a : *apps) {
    names[a.id] = a.name;
  }
  std::unique_lock lock(mu_);
  owners_.clear();
  for (const store::Domain& d : *all) {
    owners_[d.domain] = Owner{d.app_id, d.workspace_id, names[d.app_id]};
  }
}

std::shared_ptr<const AppRoute> DomainManager::FindRoute(std::string_view host) const {
  Owner owner;
  {
    std::shared_lock lock(mu_);
    auto it = owners_.find(host);
    if (it == owners_.end()) {
      return nullptr;
    }
    owner = it->second;
  }
  auto route = apps_.FindRoute(owner.app_name);
  // The app was deleted (its domains with it) and another took its name: not this domain's.
  return route != nullptr && route->app_id == owner.app_id ? route : nullptr;
}

bool DomainManager::IsCustomDomain(std::string_view host) const {
  Owner owner;
  {
    std::shared_lock lock(mu_);
    auto it = owners_.find(host);
    if (it == owners_.end()) {
      return false;
    }
    owner = it->second;
  }
  // Deleting an app removes its domains from the store but not from this map: check.
  auto app = deps_.store.GetApp(owner.workspace_id, owner.app_id);
  if (app.ok()) {
    return true;
  }
  if (app.status().Is(Code::kNotFound)) {
    std::unique_lock lock(mu_);
    if (auto it = owners_.find(host); it != owners_.end() && it->second.app_id == owner.app_id) {
      owners_.erase(it);
    }
  }
  return false;
}

std::string DomainManager::Challenge(std::string_view token) const {
  std::shared_lock lock(mu_);
  auto it = challenges_.find(token);
  return it == challenges_.end() ? std::string() : it->second;
}

void DomainManager::SetChallenge(const std::string& token, const std::string& key_authorization) {
  std::unique_lock lock(mu_);
  if (key_authorization.empty()) {
    challenges_.erase(token);
  } else {
    challenges_[token] = key_authorization;
  }
}

Status DomainManager::Set(const auth::Principal& principal, const store::App& app,
                          const std::vector<std::string>& domains) {
  KILN_ASSIGN_OR_RETURN(std::vector<store::Domain> before, deps_.store.ListDomains(app.id));
  std::set<std::string> old_set, new_set(domains.begin(), domains.end());
  for (const store::Domain& d : before) {
    old_set.insert(d.domain);
  }
  std::vector<store::Domain> rows;
  json::array added, removed, listed;
  std::vector<std::string> added_names;
  const bool acme = !deps_.config.gateway.acme_directory.empty();
  for (const std::string& name : domains) {
    store::Domain row;
    row.domain = name;
    row.app_id = app.id;
    row.workspace_id = app.workspace_id;
    row.created_ms = deps_.clock.NowMs();
    row.cert_source = acme ? "acme" : "local";
    row.cert_status = "pending";
    rows.push_back(std::move(row));
    listed.emplace_back(name);
    if (!old_set.contains(name)) {
      added.emplace_back(name);
      added_names.push_back(name);
    }
  }
  for (const std::string& name : old_set) {
    if (!new_set.contains(name)) {
      removed.emplace_back(name);
    }
  }
  KILN_RETURN_IF_ERROR(deps_.store.SetDomains(
      app.workspace_id, app.id, rows,
      MakeEvent(deps_, app.workspace_id, "app.domains_set", principal.key_id, app.id,
                {{"domains", listed}, {"added", added}, {"removed", removed}})));
  std::function<void(const std::vector<std::string>&)> issue;
  {
    std::unique_lock lock(mu_);
    for (auto it = owners_.begin(); it != owners_.end();) {
      it = it->second.app_id == app.id ? owners_.erase(it) : std::next(it);
    }
    for (const std::string& name : domains) {
      owners_[name] = Owner{app.id, app.workspace_id, app.name};
    }
    issue = issue_;
  }
  if (issue && !added_names.empty()) {
    issue(added_names);
  }
  return Status::Ok();
}

void DomainManager::SetIssuer(std::function<void(const std::vector<std::string>&)> issue,
                              std::string ca_pem) {
  std::unique_lock lock(mu_);
  issue_ = std::move(issue);
  ca_pem_ = std::move(ca_pem);
}

bool DomainManager::tls_on() const {
  std::shared_lock lock(mu_);
  return static_cast<bool>(issue_);
}

std::string DomainManager::ca_pem() const {
  std::shared_lock lock(mu_);
  return ca_pem_;
}

// ---- Service ----

std::shared_ptr<const AppRoute> Service::FindDomainRoute(std::string_view host) const {
  return domains_->FindRoute(host);
}

std::string Service::AcmeChallenge(std::string_view token) const {
  return domains_->Challenge(token);
}

void Service::SetCertificateIssuer(std::function<void(const std::vector<std::string>&)> issue,
                                   std::string ca_pem) {
  domains_->SetIssuer(std::move(issue), std::move(ca_pem));
}

bool Service::IsCustomDomain(std::string_view host) const { return domains_->IsCustomDomain(host); }

Result<std::vector<store::Domain>> Service::ListAllDomains() const {
  return deps_.store.ListAllDomains();
}

Status Service::RecordCertificate(const store::Domain& domain) {
  return deps_.store.UpdateDomain(domain);
}

void Service::SetAcmeChallenge(const std::string& token, const std::string& key_authorization) {
  domains_->SetChallenge(token, key_authorization);
}

}  // namespace kiln::service
