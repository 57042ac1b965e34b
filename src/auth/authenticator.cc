#include <algorithm>

#include "auth/auth.h"

namespace kiln::auth {
namespace {

// A cached principal is reloaded after this long so renames and expiries are picked up;
// revocation does not wait for it (Forget).
constexpr int64_t kCacheTtlMs = 60'000;
// last_used_ms is written at most this often per key: a write per request would cost more
// than the request itself.
constexpr int64_t kTouchIntervalMs = 60'000;
constexpr size_t kMaxCached = 100'000;

Status BadKey() {
  return Status::Unauthenticated("INVALID_API_KEY", "the API key is not valid",
                                 "check for a copy-paste error, or mint a new key with "
                                 "`kiln keys create`");
}

}  // namespace

Authenticator::Authenticator(store::Store& store, std::string jwt_key, const Clock& clock)
    : store_(store), jwt_key_(std::move(jwt_key)), clock_(clock) {}

Result<Principal> Authenticator::Authenticate(std::string_view credential) {
  if (credential.empty()) {
    return Status::Unauthenticated(
        "MISSING_API_KEY", "this endpoint needs an API key",
        "send `Authorization: Bearer kiln_sk_...` (the first admin key is in "
        "<data_dir>/admin.key)");
  }
  if (credential.starts_with(kKeyPrefix)) {
    return FromKey(credential);
  }
  if (std::count(credential.begin(), credential.end(), '.') == 2) {
    return FromJwt(credential);
  }
  return BadKey();
}

Result<Principal> Authenticator::FromKey(std::string_view secret) {
  std::string hash = HashKey(secret);
  int64_t now = clock_.NowMs();
  bool touch = false;
  std::optional<Principal> found;
  {
    std::lock_guard lock(mu_);
    auto it = by_hash_.find(hash);
    if (it != by_hash_.end() && now - it->second.loaded_ms < kCacheTtlMs) {
      found = it->second.principal;
      int64_t& touched = touched_ms_[found->key_id];
      if (now - touched >= kTouchIntervalMs) {
        touched = now;
        touch = true;
      }
    }
  }
  if (!found) {
    auto key = store_.FindKeyByHash(hash);
    if (!key.ok()) {
      if (key.status().Is(Code::kNotFound)) {
        return BadKey();
      }
      return key.status();
    }
    KILN_ASSIGN_OR_RETURN(Principal principal, LoadPrincipal(*key));
    std::lock_guard lock(mu_);
    if (forgotten_.contains(principal.key_id)) {
      // Revoked between our read and now: the row we read is stale, and caching it would
      // keep the key alive until the cache entry expires.
      return Status::Unauthenticated("KEY_REVOKED", "the API key was revoked",
                                     "ask a workspace admin for a new key");
    }
    if (by_hash_.size() >= kMaxCached) {
      by_hash_.clear();
    }
    by_hash_[hash] = Cached{principal, now};
    hash_of_[principal.key_id] = hash;
    int64_t& touched = touched_ms_[principal.key_id];
    touch = now - touched >= kTouchIntervalMs;
    if (touch) {
      touched = now;
    }
    found = std::move(principal);
  }
  if (found->expires_ms != 0 && now >= found->expires_ms) {
    return Status::Unauthenticated("KEY_EXPIRED",
                                   "the API key expired at " + FormatTime(found->expires_ms),
                                   "mint a new key with `kiln keys create`");
  }
  if (touch) {
    Status s = store_.TouchKey(found->key_id, now);
    if (!s.ok()) {
      log::Warn("could not record key use", {{"key", found->key_id}, {"error", s.ToString()}});
    }
  }
  return *found;
}

Result<Principal> Authenticator::LoadPrincipal(const store::ApiKey& key) {
  if (key.revoked_ms != 0) {
    return Status::Unauthenticated("KEY_REVOKED",
                                   "the API key was revoked at " + FormatTime(key.revoked_ms),
                                   "ask a workspace admin for a new key");
  }
  KILN_ASSIGN_OR_RETURN(store::Workspace ws, store_.GetWorkspace(key.workspace_id));
  KILN_ASSIGN_OR_RETURN(Scopes scopes, ParseScopes(key.scopes));
  Principal p;
  p.workspace = std::move(ws);
  p.key_id = key.id;
  p.key_name = key.name;
  p.key_prefix = key.prefix;
  p.scopes = scopes;
  p.expires_ms = key.expires_ms;
  return p;
}

Result<Principal> Authenticator::FromJwt(std::string_view token) {
  std::string hash = HashKey(token);
  int64_t now = clock_.NowMs();
  {
    std::lock_guard lock(mu_);
    auto it = by_jwt_.find(hash);
    if (it != by_jwt_.end() && now - it->second.loaded_ms < kCacheTtlMs) {
      if (now < it->second.principal.expires_ms) {
        return it->second.principal;
      }
      by_jwt_.erase(it);  // expired: VerifyJwt below says so
    }
  }
  auto principal = VerifyJwtPrincipal(token);
  if (!principal.ok()) {
    return principal;
  }
  std::lock_guard lock(mu_);
  // A key revoked, or a token signed out, while we read it must not live on in the cache.
  if (!forgotten_.contains(principal->key_id) && !revoked_jwts_.contains(hash)) {
    if (by_jwt_.size() >= kMaxCached) {
      by_jwt_.clear();
    }
    by_jwt_[hash] = Cached{*principal, now};
  }
  return principal;
}

Result<Principal> Authenticator::VerifyJwtPrincipal(std::string_view token) {
  KILN_ASSIGN_OR_RETURN(JwtClaims claims, VerifyJwt(token, jwt_key_, clock_.NowSeconds()));
  if (claims.kind == kGatewayKind) {
    return FromGatewayToken(claims);
  }
  if (!claims.kind.empty()) {
    return Status::Unauthenticated("TOKEN_INVALID", "the token is of an unknown kind",
                                   "get a new token with POST /v1/auth/token");
  }
  // A signed-out session (RevokeJwt), also after a restart: read once per token, then cached.
  KILN_ASSIGN_OR_RETURN(bool revoked, store_.IsJwtRevoked(claims.jti));
  if (revoked) {
    return Status::Unauthenticated("TOKEN_REVOKED", "the token was revoked (signed out)",
                                   "sign in again, or get a new token with POST /v1/auth/token");
  }
  // The key behind a token must still be live: revoking a key ends its tokens too.
  auto key = store_.GetKey(claims.workspace_id, claims.key_id);
  if (!key.ok()) {
    if (key.status().Is(Code::kNotFound)) {
      return Status::Unauthenticated("TOKEN_INVALID", "the token's key no longer exists",
                                     "get a new token with POST /v1/auth/token");
    }
    return key.status();
  }
  KILN_ASSIGN_OR_RETURN(Principal p, LoadPrincipal(*key));
  // A token never carries more than its key holds now.
  p.scopes &= claims.scopes;
  p.via = Principal::Via::kJwt;
  p.expires_ms = claims.expires_s * 1000;
  return p;
}

Result<std::string> Authenticator::IssueJwt(const Principal& principal, int ttl_seconds,
                                            int64_t* expires_ms) {
  if (principal.via != Principal::Via::kKey) {
    return Status::PermissionDenied("JWT_NOT_EXCHANGEABLE",
                                    "a token cannot be exchanged for another token",
                                    "call POST /v1/auth/token with an API key");
  }
  JwtClaims claims;
  claims.key_id = principal.key_id;
  claims.workspace_id = principal.workspace.id;
  claims.scopes = principal.scopes;
  int64_t now_ms = clock_.NowMs();
  claims.issued_s = now_ms / 1000;
  // `exp` has whole seconds: rounding up keeps a token issued late in a second alive for its
  // whole lifetime (and at most a second more), never cut short at the next second.
  *expires_ms = now_ms + int64_t{ttl_seconds} * 1000;
  claims.expires_s = (*expires_ms + 999) / 1000;
  if (principal.expires_ms != 0 && principal.expires_ms < *expires_ms) {
    // Never outlive the key: round down instead.
    *expires_ms = principal.expires_ms;
    claims.expires_s = principal.expires_ms / 1000;
  }
  claims.jti = NewId("jti");
  return SignJwt(claims, jwt_key_);
}

Result<Principal> Authenticator::FromGatewayToken(const JwtClaims& claims) {
  // It asserts who called an app; it carries no scopes, so it can stand in for no key.
  if (claims.scopes != 0 || claims.audience.empty()) {
    return Status::Unauthenticated("TOKEN_INVALID", "the X-Kiln-Auth token's claims are invalid",
                                   "verify the X-Kiln-Auth header exactly as the app received it");
  }
  auto ws = store_.GetWorkspace(claims.workspace_id);
  if (!ws.ok()) {
    if (ws.status().Is(Code::kNotFound)) {
      return Status::Unauthenticated("TOKEN_INVALID", "the token's workspace no longer exists");
    }
    return ws.status();
  }
  Principal p;
  p.workspace = std::move(*ws);
  p.key_id = claims.key_id;
  p.scopes = 0;
  p.via = Principal::Via::kGateway;
  p.expires_ms = claims.expires_s * 1000;
  p.audience = claims.audience;
  return p;
}

std::string Authenticator::IssueGatewayToken(const std::string& user_id,
                                             const std::string& workspace_id,
                                             const std::string& target_id, int64_t expires_ms) {
  JwtClaims claims;
  claims.key_id = user_id;
  claims.workspace_id = workspace_id;
  claims.scopes = 0;
  claims.issued_s = clock_.NowSeconds();
  // Rounded down: the token never outlives what the caller asked for (a share link's expiry).
  claims.expires_s = expires_ms / 1000;
  claims.jti = NewId("jti");
  claims.kind = std::string(kGatewayKind);
  claims.audience = target_id;
  return SignJwt(claims, jwt_key_);
}

Status Authenticator::RevokeJwt(std::string_view token) {
  auto claims = VerifyJwt(token, jwt_key_, clock_.NowSeconds());
  if (!claims.ok() || claims->jti.empty()) {
    return Status::Ok();  // expired or not ours: it authenticates nothing anyway
  }
  {
    // First in memory, so that no request verifying it meanwhile caches it again.
    std::lock_guard lock(mu_);
    std::string hash = HashKey(token);
    by_jwt_.erase(hash);
    revoked_jwts_.insert(std::move(hash));
  }
  return store_.RevokeJwt(claims->jti, claims->expires_s * 1000, clock_.NowMs());
}

void Authenticator::Forget(const std::string& key_id) {
  std::lock_guard lock(mu_);
  forgotten_.insert(key_id);
  auto it = hash_of_.find(key_id);
  if (it != hash_of_.end()) {
    by_hash_.erase(it->second);
    hash_of_.erase(it);
  }
  // Revocations are rare: a scan is cheaper than an index kept on every JWT.
  std::erase_if(by_jwt_,
                [&](const auto& entry) { return entry.second.principal.key_id == key_id; });
}

}  // namespace kiln::auth
