#pragma once
// Module-private: the gateway's access policies (DESIGN.md §6) and the access tokens that
// the `token` policy accepts (API.md access-tokens). Service::Authorize forwards here.
//
// Policies: `public` lets everyone through (and names the caller when it sent a credential of
// the target's workspace); `workspace` needs an API key, a JWT (Bearer) or a dashboard session
// cookie (kiln_session=<JWT>) of the target's workspace; `token` also takes access tokens, as
// `Authorization: Bearer kiln_at_...` (kind bearer) or as a share URL's `?kiln_token=` (kind
// share-url), which is answered with a redirect that moves the token into a cookie
// (kiln_access_<target id>) so it leaves the address bar.
//
// Access tokens are looked up by SHA-256 in an in-memory cache (kTokenCacheMs), so the hot path
// is one hash and one map lookup; Forget drops a revoked token at once. The X-Kiln-Auth token
// given to the app is cached per (caller, target) and signed again once half its life is gone.
//
// Thread-safety: every method may be called from any thread (Authorize on the gateway's I/O
// threads): the caches sit behind one mutex held for map operations only; store reads and
// signing happen outside it.

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "service/operations.h"
#include "service/service.h"

namespace kiln::service {

class AppManager;
class SandboxManager;

// "kiln_at_" + 32 random bytes, base64url: URL-safe, so it can ride in a share URL.
constexpr std::string_view kAccessTokenPrefix = "kiln_at_";
// The share URL's query parameter, and the cookie a share URL sets (name + target id).
constexpr std::string_view kShareQueryParam = "kiln_token";
constexpr std::string_view kAccessCookiePrefix = "kiln_access_";

// A token just minted: `token` is shown to its creator once, then only its hash is kept.
struct MintedToken {
  store::AccessToken row;
  std::string token;
};

class AccessManager {
 public:
  // A token lookup is trusted this long before the store is read again; revocation through
  // Revoke does not wait for it.
  static constexpr int64_t kTokenCacheMs = 30'000;
  // last_used_ms of a token is written at most this often.
  static constexpr int64_t kTouchIntervalMs = 60'000;

  AccessManager(const Deps& deps, AppManager& apps, SandboxManager& sandboxes);
  ~AccessManager();
  AccessDecision Authorize(const AccessCheck& check) const;

  // Mints a token for `target_id` (an app or a sandbox of `workspace_id`) that expires
  // `ttl_seconds` from now, recorded with an access_token.created event.
  Result<MintedToken> Create(const auth::Principal& principal, const std::string& workspace_id,
                             const std::string& target_id, const std::string& kind,
                             const std::string& name, int64_t ttl_seconds);
  Result<std::vector<store::AccessToken>> List(const std::string& workspace_id,
                                               const std::string& target_id);
  // Revokes token `id` of the target (NotFound TOKEN_NOT_FOUND) and drops it from the cache:
  // it opens nothing from the next request on. Revoking twice is OK.
  Result<store::AccessToken> Revoke(const auth::Principal& principal,
                                    const std::string& workspace_id, const std::string& target_id,
                                    const std::string& id);

  AppManager& apps() const { return apps_; }
  SandboxManager& sandboxes() const { return sandboxes_; }

 private:
  // What a token lookup found; `found` false for a token nobody minted.
  struct TokenEntry {
    bool found = false;
    store::AccessToken row;
    std::string workspace_slug;
    int64_t loaded_ms = 0;
  };
  // Where a token came from: it must be of the kind that travels that way.
  enum class TokenVia { kBearer, kQuery, kCookie };
  // The caller a credential stands for.
  struct Caller {
    std::string user_id;
    std::string workspace_id;
    std::string workspace_slug;
    int64_t expires_ms = 0;  // 0 = the credential does not expire
  };
  // A credential that did not pass: 401 or 403 with why.
  struct Refusal {
    int status = 401;
    Status error;
  };

  Result<TokenEntry> LookupToken(std::string_view token) const;
  // The caller of access token `token` presented `via` for `check`'s target, or why not.
  Result<Caller> CheckToken(std::string_view token, TokenVia via, const AccessCheck& check,
                            int* refusal_status) const;
  // The caller of an API key or JWT of `check`'s workspace, or why not. `ours` is set when the
  // credential is recognisably Kiln's (so the app must not see it).
  Result<Caller> CheckWorkspaceCredential(std::string_view credential, const AccessCheck& check,
                                          int* refusal_status, bool* ours) const;
  // Fills the identity fields of `decision` for `caller`, with a (cached) X-Kiln-Auth token.
  void Admit(const Caller& caller, const AccessCheck& check, AccessDecision& decision) const;
  std::string AuthTokenFor(const Caller& caller, std::string_view target_id, int64_t now) const;
  // The slug of workspace `id` (for messages and identity), cached; the id when unknown.
  std::string WorkspaceSlug(const std::string& id) const;
  void Forget(const std::string& token_id);

  const Deps& deps_;
  AppManager& apps_;
  SandboxManager& sandboxes_;

  struct IssuedAuth {
    std::string token;
    int64_t refresh_ms = 0;  // sign a new one from then on
  };
  struct CachedSlug {
    std::string slug;
    int64_t loaded_ms = 0;
  };
  mutable std::mutex mu_;
  mutable std::unordered_map<std::string, TokenEntry> tokens_;    // by token hash
  mutable std::unordered_map<std::string, std::string> hash_of_;  // token id -> hash
  mutable std::unordered_map<std::string, int64_t> touched_ms_;   // token id -> last written
  mutable std::unordered_map<std::string, IssuedAuth> auth_;      // caller '\n' target -> token
  mutable std::unordered_map<std::string, CachedSlug> slugs_;     // workspace id -> slug
  // Bumped by every revocation: a lookup that raced one reads the store again rather than
  // caching a row from before it.
  mutable uint64_t revocations_ = 0;
};

// apps.access_tokens.* and sandboxes.access_tokens.* (access_ops.cc).
void AddAccessOperations(const Deps& deps, AccessManager& access, AppManager& apps,
                         SandboxManager& sandboxes, std::vector<Operation>& out);

}  // namespace kiln::service
