// Which certificate a TLS client gets for the name it asked for.
#include "core/log.h"
#include "tls/internal.h"

namespace kiln::tls {
namespace {

constexpr int64_t kDayMs = 86'400'000;

// A host label as the gateway routes them: apps' names, and {port}-{sandbox id}, whose ids
// carry an underscore ("3000-sbx_k2...").
bool IsLabel(std::string_view label) {
  if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') {
    return false;
  }
  for (char c : label) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
      return false;
    }
  }
  return true;
}

}  // namespace

std::string NormalizeHost(std::string_view name) {
  std::string host;
  host.reserve(name.size());
  for (char c : name) {
    host.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
  }
  if (host.ends_with('.')) {
    host.pop_back();
  }
  return host;
}

Certificates::Certificates(const LocalCa& ca, std::string base_domain,
                           std::function<bool(std::string_view)> is_custom_domain,
                           const Clock& clock)
    : ca_(ca),
      base_domain_(std::move(base_domain)),
      is_custom_domain_(std::move(is_custom_domain)),
      clock_(clock) {}

bool Certificates::Served(std::string_view host) const {
  if (host.empty() || host.size() > 253) {
    return false;
  }
  if (host == base_domain_) {
    return true;
  }
  if (host.size() > base_domain_.size() + 1 && host.ends_with(base_domain_) &&
      host[host.size() - base_domain_.size() - 1] == '.') {
    // One label under the base domain: an app, or a sandbox port ({port}-{sandbox}). Any
    // such label gets a certificate, whether or not something answers there now: an app
    // asleep or being deployed is still served (and the cost is one signature).
    return IsLabel(host.substr(0, host.size() - base_domain_.size() - 1));
  }
  return is_custom_domain_ && is_custom_domain_(host);
}

Result<std::shared_ptr<const ServedCert>> Certificates::Local(const std::string& host) {
  int64_t now = clock_.NowMs();
  // Re-issued once two thirds of its life have passed, like ACME clients renew.
  const int64_t renew_before = int64_t{LocalCa::kLeafDays} * kDayMs / 3;
  {
    std::lock_guard lock(mu_);
    auto it = local_.find(host);
    if (it != local_.end() && it->second->not_after_ms - now > renew_before) {
      return it->second;
    }
  }
  // Issued outside the lock: two handshakes for a new host may both issue, and the second
  // replaces the first, which is cheaper than making every other handshake wait.
  KILN_ASSIGN_OR_RETURN(std::shared_ptr<const ServedCert> cert, ca_.Issue(host, now));
  std::lock_guard lock(mu_);
  if (local_.size() >= kMaxCachedLeaves && !local_.contains(host)) {
    auto oldest = local_.begin();
    for (auto it = local_.begin(); it != local_.end(); ++it) {
      if (it->second->not_after_ms < oldest->second->not_after_ms) {
        oldest = it;
      }
    }
    local_.erase(oldest);
  }
  local_[host] = cert;
  return cert;
}

void Certificates::SetAcme(const std::string& domain, std::shared_ptr<const ServedCert> cert) {
  std::lock_guard lock(mu_);
  if (cert) {
    acme_[domain] = std::move(cert);
  } else {
    acme_.erase(domain);
  }
}

std::shared_ptr<const ServedCert> Certificates::Acme(const std::string& domain) const {
  std::lock_guard lock(mu_);
  auto it = acme_.find(domain);
  return it == acme_.end() ? nullptr : it->second;
}

std::shared_ptr<const ServedCert> Certificates::ForHost(std::string_view sni) {
  std::string host = NormalizeHost(sni);
  // Served() asks about custom domains every time (a map read and a store read, on this
  // handshake thread): a domain detached from its app stops getting its certificate at once.
  if (!host.empty() && Served(host)) {
    if (auto acme = Acme(host); acme && acme->not_after_ms > clock_.NowMs()) {
      return acme;
    }
    auto cert = Local(host);
    if (cert.ok()) {
      return *cert;
    }
    log::Error("cannot issue a certificate", {{"host", host}, {"error", cert.status().ToString()}});
  }
  // No name, or one this server does not serve: the base domain's certificate. The client
  // reports a name mismatch, which says more than a failed handshake would, and clients that
  // send no SNI at all (old tools, bare IPs) can still reach the API.
  auto fallback = Local(base_domain_);
  if (!fallback.ok()) {
    log::Error("cannot issue a certificate",
               {{"host", base_domain_}, {"error", fallback.status().ToString()}});
    return nullptr;
  }
  return *fallback;
}

}  // namespace kiln::tls
