// Access policies at the gateway (see access.h for the contract). Authorize runs on the
// gateway's I/O threads for every request to a private app: it reads the store only on a cache
// miss, and signs an X-Kiln-Auth token only when the cached one is half spent.
#include "service/access.h"

#include <strings.h>

#include <algorithm>
#include <optional>

#include "core/crypto.h"
#include "service/apps.h"
#include "service/sandboxes.h"

namespace kiln::service {
namespace {

// Caches are cleared whole past this size: a flood of made-up tokens must not grow memory.
constexpr size_t kMaxCached = 100'000;
// A workspace's slug is read again after this long (it names the caller to apps).
constexpr int64_t kSlugCacheMs = 60'000;

bool LooksLikeJwt(std::string_view s) { return std::count(s.begin(), s.end(), '.') == 2; }

std::string Noun(std::string_view target_id) {
  return target_id.starts_with("sbx_") ? "sandbox" : "app";
}

}  // namespace

std::string_view BearerValue(std::string_view authorization) {
  if (authorization.size() <= 7 || strncasecmp(authorization.data(), "bearer ", 7) != 0) {
    return {};
  }
  authorization.remove_prefix(7);
  while (!authorization.empty() && authorization.front() == ' ') {
    authorization.remove_prefix(1);
  }
  while (!authorization.empty() && authorization.back() == ' ') {
    authorization.remove_suffix(1);
  }
  return authorization;
}

std::string_view CookieValue(std::string_view header, std::string_view name) {
  while (!header.empty()) {
    size_t end = header.find(';');
    std::string_view pair = header.substr(0, end);
    header = end == std::string_view::npos ? std::string_view() : header.substr(end + 1);
    while (!pair.empty() && (pair.front() == ' ' || pair.front() == '\t')) {
      pair.remove_prefix(1);
    }
    size_t eq = pair.find('=');
    if (eq == std::string_view::npos || pair.substr(0, eq) != name) {
      continue;
    }
    std::string_view value = pair.substr(eq + 1);
    while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) {
      value.remove_suffix(1);
    }
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
    }
    return value;
  }
  return {};
}

AccessManager::AccessManager(const Deps& deps, AppManager& apps, SandboxManager& sandboxes)
    : deps_(deps), apps_(apps), sandboxes_(sandboxes) {}
AccessManager::~AccessManager() = default;

AccessDecision AccessManager::Authorize(const AccessCheck& check) const {
  AccessDecision decision;
  const bool is_public = check.policy == "public";
  const bool is_token = check.policy == "token";
  if (!is_public && !is_token && check.policy != "workspace") {
    // A policy this server does not know: closed, never open.
    decision.status = 403;
    decision.error = Status::PermissionDenied(
        "ACCESS_POLICY_UNKNOWN", "this " + Noun(check.target_id) + " has an unknown access policy",
        "set it to public, workspace or token (PATCH /v1/apps/APP {\"accessPolicy\": ...})");
    return decision;
  }

  // A share URL: its token decides, and moves into a cookie so it leaves the address bar (and
  // the app never sees it in a URL).
  if (is_token && !check.query_token.empty()) {
    int status = 401;
    auto caller = CheckToken(check.query_token, TokenVia::kQuery, check, &status);
    if (!caller.ok()) {
      decision.status = status;
      decision.error = caller.status();
      return decision;
    }
    int64_t left_s = std::max<int64_t>(1, (caller->expires_ms - deps_.clock.NowMs()) / 1000);
    decision.status = 302;
    decision.set_cookie = std::string(kAccessCookiePrefix) + std::string(check.target_id) + "=" +
                          std::string(check.query_token) +
                          "; HttpOnly; SameSite=Lax; Path=/; Max-Age=" + std::to_string(left_s);
    return decision;
  }

  // The most telling refusal seen: a 403 (a good credential for something else) over a 401,
  // and the first 401 that says what was wrong over the generic one.
  std::optional<std::pair<int, Status>> refusal;
  auto refuse = [&](int status, Status error) {
    if (!refusal || status > refusal->first) {
      refusal.emplace(status, std::move(error));
    }
  };

  std::string_view bearer = BearerValue(check.authorization);
  if (bearer.starts_with(kAccessTokenPrefix)) {
    decision.strip_authorization = true;
    if (check.policy == "workspace") {
      refuse(401,
             Status::Unauthenticated(
                 "ACCESS_TOKEN_NOT_ACCEPTED",
                 "this " + Noun(check.target_id) +
                     " is private to its workspace: access tokens do not open it",
                 "send an API key of workspace " + WorkspaceSlug(std::string(check.workspace_id)) +
                     ", or ask its owner to set its access policy to token"));
    } else {
      int status = 401;
      auto caller = CheckToken(bearer, TokenVia::kBearer, check, &status);
      if (caller.ok()) {
        Admit(*caller, check, decision);
        return decision;
      }
      refuse(status, caller.status());
    }
  } else if (!bearer.empty()) {
    int status = 401;
    bool ours = false;
    auto caller = CheckWorkspaceCredential(bearer, check, &status, &ours);
    decision.strip_authorization = ours;
    if (caller.ok()) {
      Admit(*caller, check, decision);
      return decision;
    }
    // A bearer that is not Kiln's is the app's own business, not a failed attempt.
    if (ours) {
      refuse(status, caller.status());
    }
  }

  if (std::string_view session = CookieValue(check.cookie, kSessionCookie); !session.empty()) {
    int status = 401;
    bool ours = false;
    auto caller = CheckWorkspaceCredential(session, check, &status, &ours);
    if (caller.ok()) {
      Admit(*caller, check, decision);
      return decision;
    }
    refuse(status, Status(caller.status().code(), caller.status().error_code(),
                          "the dashboard session: " + caller.status().message(),
                          "sign in to the dashboard again"));
  }

  if (check.policy != "workspace") {
    std::string name = std::string(kAccessCookiePrefix) + std::string(check.target_id);
    if (std::string_view token = CookieValue(check.cookie, name); !token.empty()) {
      int status = 401;
      auto caller = CheckToken(token, TokenVia::kCookie, check, &status);
      if (caller.ok()) {
        Admit(*caller, check, decision);
        return decision;
      }
      refuse(status, caller.status());
    }
  }

  if (is_public) {
    return decision;  // anonymous: a bad credential on a public target is simply ignored
  }
  if (!refusal) {
    std::string slug = WorkspaceSlug(std::string(check.workspace_id));
    std::string noun = Noun(check.target_id);
    refuse(401, is_token ? Status::Unauthenticated(
                               "AUTH_REQUIRED", "this " + noun + " needs an access token",
                               "open its share URL again, send `Authorization: Bearer "
                               "kiln_at_...`, or an API key of workspace " +
                                   slug)
                         : Status::Unauthenticated(
                               "AUTH_REQUIRED", "this " + noun + " is private to workspace " + slug,
                               "send an API key of workspace " + slug +
                                   " (`Authorization: Bearer kiln_sk_...`) or a JWT from POST "
                                   "/v1/auth/token, or sign in to the dashboard"));
  }
  decision.status = refusal->first;
  decision.error = std::move(refusal->second);
  return decision;
}

Result<AccessManager::Caller> AccessManager::CheckWorkspaceCredential(std::string_view credential,
                                                                      const AccessCheck& check,
                                                                      int* status,
                                                                      bool* ours) const {
  *status = 401;
  *ours = credential.starts_with(auth::kKeyPrefix);
  auto principal = deps_.auth.Authenticate(credential);
  if (!principal.ok()) {
    // A JWT whose signature does not verify with our key may be the app's own; any other
    // verdict on a JWT means it was ours.
    if (!*ours && LooksLikeJwt(credential)) {
      *ours = principal.status().error_code() != "TOKEN_INVALID";
    }
    if (principal.status().Is(Code::kInternal) || principal.status().Is(Code::kUnavailable)) {
      *status = 503;
    }
    return principal.status();
  }
  *ours = true;
  std::string slug = WorkspaceSlug(std::string(check.workspace_id));
  if (principal->via == auth::Principal::Via::kGateway) {
    return Status::Unauthenticated(
        "GATEWAY_TOKEN_IDENTITY_ONLY",
        "an X-Kiln-Auth token tells an app who called it; it opens no app or sandbox",
        "send an API key of workspace " + slug + " or a JWT from POST /v1/auth/token");
  }
  if (principal->workspace.id != check.workspace_id) {
    *status = 403;
    return Status::PermissionDenied("WRONG_WORKSPACE",
                                    "the credential is of workspace " + principal->workspace.slug +
                                        ", but this " + Noun(check.target_id) +
                                        " belongs to workspace " + slug,
                                    "send an API key of workspace " + slug);
  }
  return Caller{principal->key_id, principal->workspace.id, principal->workspace.slug,
                principal->expires_ms};
}

Result<AccessManager::TokenEntry> AccessManager::LookupToken(std::string_view token) const {
  std::string hash = crypto::Sha256Hex(token);
  int64_t now = deps_.clock.NowMs();
  uint64_t generation = 0;
  {
    std::lock_guard lock(mu_);
    auto it = tokens_.find(hash);
    if (it != tokens_.end() && now - it->second.loaded_ms < kTokenCacheMs) {
      return it->second;
    }
    generation = revocations_;
  }
  for (int attempt = 0;; ++attempt) {
    TokenEntry entry;
    entry.loaded_ms = now;
    auto row = deps_.store.FindAccessToken(hash);
    if (row.ok()) {
      entry.found = true;
      entry.row = std::move(*row);
      entry.workspace_slug = WorkspaceSlug(entry.row.workspace_id);
    } else if (!row.status().Is(Code::kNotFound)) {
      return row.status();
    }
    std::lock_guard lock(mu_);
    if (revocations_ == generation) {
      if (tokens_.size() >= kMaxCached) {
        tokens_.clear();
        hash_of_.clear();
      }
      if (entry.found) {
        hash_of_[entry.row.id] = hash;
      }
      tokens_[hash] = entry;
      return entry;
    }
    // A revocation committed while we read: the row may be from before it. Read again; after
    // a second race answer without caching (the row read after a Forget is current).
    generation = revocations_;
    if (attempt >= 1) {
      return entry;
    }
  }
}

Result<AccessManager::Caller> AccessManager::CheckToken(std::string_view token, TokenVia via,
                                                        const AccessCheck& check,
                                                        int* status) const {
  *status = 401;
  auto entry = LookupToken(token);
  if (!entry.ok()) {
    *status = 503;
    return Status::Unavailable("ACCESS_CHECK_FAILED", "the access token could not be checked",
                               "try again in a moment");
  }
  const std::string noun = Noun(check.target_id);
  if (!entry->found) {
    return Status::Unauthenticated(
        "TOKEN_INVALID", "the access token is not valid",
        "check for a copy-paste error, or ask the " + noun + "'s owner for a new link or token");
  }
  const store::AccessToken& t = entry->row;
  int64_t now = deps_.clock.NowMs();
  if (t.target_id != check.target_id || t.workspace_id != check.workspace_id) {
    *status = 403;
    return Status::PermissionDenied(
        "TOKEN_WRONG_TARGET", "the access token opens another app or sandbox, not this " + noun,
        "ask the " + noun + "'s owner for a link to this one");
  }
  if (t.revoked_ms != 0) {
    return Status::Unauthenticated("TOKEN_REVOKED",
                                   "the access token was revoked at " + FormatTime(t.revoked_ms),
                                   "ask the " + noun + "'s owner for a new link or token");
  }
  if (now >= t.expires_ms) {
    return Status::Unauthenticated("TOKEN_EXPIRED",
                                   "the access token expired at " + FormatTime(t.expires_ms),
                                   "ask the " + noun + "'s owner for a new link or token");
  }
  bool bearer = via == TokenVia::kBearer;
  if ((t.kind == "bearer") != bearer) {
    return Status::Unauthenticated(
        "TOKEN_WRONG_KIND",
        bearer ? "a share-URL token was sent as a bearer token"
               : "a bearer token was sent in a URL or cookie",
        bearer ? "open the share URL in a browser, or mint a bearer token (kind bearer)"
               : "send it as `Authorization: Bearer kiln_at_...`, or mint a share URL "
                 "(kind share-url)");
  }
  bool touch = false;
  {
    std::lock_guard lock(mu_);
    int64_t& touched = touched_ms_[t.id];
    if (now - touched >= kTouchIntervalMs) {
      touched = now;
      touch = true;
    }
  }
  if (touch) {
    // A record for people (lastUsedAt), not control state: a failure is only logged.
    Status s = deps_.store.TouchAccessToken(t.id, now);
    if (!s.ok() && !s.Is(Code::kNotFound)) {
      log::Warn("could not record access token use", {{"token", t.id}, {"error", s.ToString()}});
    }
  }
  return Caller{t.id, t.workspace_id, entry->workspace_slug, t.expires_ms};
}

void AccessManager::Admit(const Caller& caller, const AccessCheck& check,
                          AccessDecision& decision) const {
  decision.status = 200;
  decision.user_id = caller.user_id;
  decision.workspace = caller.workspace_slug;
  decision.auth_token = AuthTokenFor(caller, check.target_id, deps_.clock.NowMs());
}

std::string AccessManager::AuthTokenFor(const Caller& caller, std::string_view target_id,
                                        int64_t now) const {
  std::string key = caller.user_id + '\n' + std::string(target_id);
  {
    std::lock_guard lock(mu_);
    auto it = auth_.find(key);
    if (it != auth_.end() && now < it->second.refresh_ms) {
      return it->second.token;
    }
  }
  int64_t expires = now + int64_t{deps_.config.gateway.auth_token_ttl_seconds} * 1000;
  if (caller.expires_ms != 0 && caller.expires_ms < expires) {
    expires = caller.expires_ms;  // never vouch for a caller past its credential
  }
  std::string token = deps_.auth.IssueGatewayToken(caller.user_id, caller.workspace_id,
                                                   std::string(target_id), expires);
  std::lock_guard lock(mu_);
  if (auth_.size() >= kMaxCached) {
    auth_.clear();
  }
  auth_[key] = IssuedAuth{token, now + (expires - now) / 2};
  return token;
}

std::string AccessManager::WorkspaceSlug(const std::string& id) const {
  int64_t now = deps_.clock.NowMs();
  {
    std::lock_guard lock(mu_);
    auto it = slugs_.find(id);
    if (it != slugs_.end() && now - it->second.loaded_ms < kSlugCacheMs) {
      return it->second.slug;
    }
  }
  auto ws = deps_.store.GetWorkspace(id);
  if (!ws.ok()) {
    return id;
  }
  std::lock_guard lock(mu_);
  if (slugs_.size() >= kMaxCached) {
    slugs_.clear();
  }
  slugs_[id] = CachedSlug{ws->slug, now};
  return ws->slug;
}

void AccessManager::Forget(const std::string& token_id) {
  std::lock_guard lock(mu_);
  ++revocations_;
  auto it = hash_of_.find(token_id);
  if (it != hash_of_.end()) {
    tokens_.erase(it->second);
    hash_of_.erase(it);
  }
}

// ---- Tokens (operations) ----

Result<MintedToken> AccessManager::Create(const auth::Principal& principal,
                                          const std::string& workspace_id,
                                          const std::string& target_id, const std::string& kind,
                                          const std::string& name, int64_t ttl_seconds) {
  MintedToken minted;
  minted.token = std::string(kAccessTokenPrefix) + crypto::Base64UrlEncode(crypto::RandomBytes(32));
  store::AccessToken& t = minted.row;
  t.id = NewId("tok");
  t.workspace_id = workspace_id;
  t.target_id = target_id;
  t.kind = kind;
  t.name = name;
  t.prefix = minted.token.substr(0, 12);
  t.hash = crypto::Sha256Hex(minted.token);
  t.created_ms = deps_.clock.NowMs();
  t.expires_ms = t.created_ms + ttl_seconds * 1000;
  t.created_by = principal.key_id;
  KILN_RETURN_IF_ERROR(deps_.store.InsertAccessToken(
      t, MakeEvent(deps_, workspace_id, "access_token.created", principal.key_id, t.id,
                   {{"target", target_id},
                    {"kind", kind},
                    {"name", name},
                    {"expiresAt", FormatTime(t.expires_ms)}})));
  std::lock_guard lock(mu_);
  tokens_.erase(t.hash);  // in case someone presented it before it existed
  return minted;
}

Result<std::vector<store::AccessToken>> AccessManager::List(const std::string& workspace_id,
                                                            const std::string& target_id) {
  return deps_.store.ListAccessTokens(workspace_id, target_id);
}

Result<store::AccessToken> AccessManager::Revoke(const auth::Principal& principal,
                                                 const std::string& workspace_id,
                                                 const std::string& target_id,
                                                 const std::string& id) {
  KILN_RETURN_IF_ERROR(
      deps_.store.RevokeAccessToken(workspace_id, target_id, id, deps_.clock.NowMs(),
                                    MakeEvent(deps_, workspace_id, "access_token.revoked",
                                              principal.key_id, id, {{"target", target_id}})));
  Forget(id);
  KILN_ASSIGN_OR_RETURN(std::vector<store::AccessToken> all, List(workspace_id, target_id));
  for (store::AccessToken& t : all) {
    if (t.id == id) {
      return std::move(t);
    }
  }
  return Status::NotFound("TOKEN_NOT_FOUND", "no access token " + id);
}

AccessDecision Service::Authorize(const AccessCheck& check) const {
  return access_->Authorize(check);
}

}  // namespace kiln::service
