#pragma once
// auth: who is calling and what they may do (DESIGN.md §2, §5). Workspaces are the tenant
// boundary; API keys ("kiln_sk_" + 32 random bytes, base64url) carry scopes; only the
// SHA-256 of a key is stored. JWTs (HS256) are short-lived stand-ins for a key.
//
// Thread-safety: Authenticator, RateLimiter and Idempotency are safe to call from any
// thread; their caches use internal locks held for a map operation only.

#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "core/core.h"
#include "store/store.h"

namespace kiln::auth {

// Scopes as a bit set. `admin` implies every other scope.
enum Scope : uint8_t {
  kRead = 1,
  kWrite = 2,
  kExec = 4,
  kAdmin = 8,
};
using Scopes = uint8_t;
constexpr Scopes kAllScopes = kRead | kWrite | kExec | kAdmin;

// ["read","write"] -> bits; InvalidArgument UNKNOWN_SCOPE naming the bad entry.
Result<Scopes> ParseScopes(const std::vector<std::string>& names);
std::vector<std::string> ScopeNames(Scopes scopes);
bool HasScopes(Scopes held, Scopes needed);

struct Principal {
  store::Workspace workspace;
  std::string key_id;
  std::string key_name;
  std::string key_prefix;
  Scopes scopes = 0;
  // kGateway: an X-Kiln-Auth token, which the gateway gives an app to name its caller. It
  // holds no scopes and opens GET /v1/me only; key_id is then the caller's user id (key_... or
  // tok_...) and `audience` the app or sandbox it was given to.
  enum class Via { kKey, kJwt, kGateway } via = Via::kKey;
  int64_t expires_ms = 0;  // JWT expiry, or the key's own expiry; 0 = none
  std::string audience;
};

// A freshly generated key: `secret` is shown to the user once and then forgotten.
struct GeneratedKey {
  std::string secret;  // kiln_sk_...
  std::string hash;    // hex SHA-256 of secret
  std::string prefix;  // first 12 characters of secret
};
GeneratedKey GenerateKey();
std::string HashKey(std::string_view secret);
constexpr std::string_view kKeyPrefix = "kiln_sk_";

struct JwtClaims {
  std::string key_id;
  std::string workspace_id;
  Scopes scopes = 0;
  int64_t issued_s = 0;
  int64_t expires_s = 0;
  std::string jti;
  // "" for API tokens (POST /v1/auth/token), kGatewayKind for X-Kiln-Auth tokens; a token of
  // another kind is refused.
  std::string kind;
  std::string audience;  // `aud`: the app or sandbox an X-Kiln-Auth token was given to
};
constexpr std::string_view kGatewayKind = "gateway";
// HS256 compact JWS. Verify checks the header (alg must be HS256), signature and expiry:
// Unauthenticated TOKEN_INVALID or TOKEN_EXPIRED.
std::string SignJwt(const JwtClaims& claims, std::string_view key);
Result<JwtClaims> VerifyJwt(std::string_view token, std::string_view key, int64_t now_s);

// Turns the credential of a request into a Principal. Verified keys and JWTs are cached by
// hash so the common path costs one SHA-256 and a map lookup (the gateway checks a session
// cookie on every request to a private app); Forget() drops a revoked key, and the JWTs that
// stand in for it, at once.
class Authenticator {
 public:
  Authenticator(store::Store& store, std::string jwt_key, const Clock& clock);

  // `credential` is the bearer value or X-API-Key value (empty when none was sent).
  Result<Principal> Authenticate(std::string_view credential);
  Result<std::string> IssueJwt(const Principal& principal, int ttl_seconds, int64_t* expires_ms);
  // An X-Kiln-Auth token: names caller `user_id` of `workspace_id` to `target_id` until
  // `expires_ms` (rounded down to a second). Authenticate answers it as a kGateway principal.
  std::string IssueGatewayToken(const std::string& user_id, const std::string& workspace_id,
                                const std::string& target_id, int64_t expires_ms);
  // Ends a JWT before its expiry (signing out of the dashboard): it authenticates nothing from
  // now on, also after a restart. OK for a token that is expired or not Kiln's.
  Status RevokeJwt(std::string_view token);
  // Called after a key's revocation commits: drops it from the cache and keeps a concurrent
  // lookup that read the row before the revocation from caching it.
  void Forget(const std::string& key_id);

 private:
  Result<Principal> FromKey(std::string_view secret);
  Result<Principal> FromJwt(std::string_view token);
  Result<Principal> VerifyJwtPrincipal(std::string_view token);
  Result<Principal> FromGatewayToken(const JwtClaims& claims);
  Result<Principal> LoadPrincipal(const store::ApiKey& key);

  struct Cached {
    Principal principal;
    int64_t loaded_ms = 0;
  };
  store::Store& store_;
  std::string jwt_key_;
  const Clock& clock_;
  std::mutex mu_;
  std::unordered_map<std::string, Cached> by_hash_;       // key hash -> principal
  std::unordered_map<std::string, Cached> by_jwt_;        // JWT hash -> principal
  std::unordered_map<std::string, std::string> hash_of_;  // key id -> key hash
  std::unordered_map<std::string, int64_t> touched_ms_;   // key id -> last_used written
  std::unordered_set<std::string> forgotten_;             // revoked key ids, never cached
  std::unordered_set<std::string> revoked_jwts_;          // hashes of revoked JWTs, never cached
};

// Token buckets per key: `rate` tokens per second up to `burst`.
class RateLimiter {
 public:
  RateLimiter(double rate, int burst, const Clock& clock);
  struct Decision {
    bool allowed = true;
    int limit = 0;          // X-RateLimit-Limit: the burst size
    int remaining = 0;      // X-RateLimit-Remaining
    int reset_s = 0;        // X-RateLimit-Reset: seconds until the bucket is full again
    int retry_after_s = 0;  // Retry-After when not allowed
  };
  Decision Take(const std::string& key_id);

 private:
  int SecondsFor(double tokens) const;  // time to refill `tokens`, at most a day
  struct Bucket {
    double tokens;
    int64_t updated_ms;
  };
  double rate_;
  int burst_;
  const Clock& clock_;
  std::mutex mu_;
  std::unordered_map<std::string, Bucket> buckets_;
};

// Idempotency-Key replay for 24 h (DESIGN.md §5). Responses are stored sealed because
// they may hold secrets (a minted key).
class Idempotency {
 public:
  static constexpr int64_t kTtlMs = 24LL * 3600 * 1000;
  Idempotency(store::Store& store, const crypto::SecretBox& box, const Clock& clock);

  struct Replay {
    int status = 0;
    std::string body;
  };
  // Proceed: nothing stored yet (the key is now held until Finish/Abandon).
  // Replay: the stored response. Errors: Unprocessable IDEMPOTENCY_KEY_REUSED when the
  // request differs, Conflict IDEMPOTENCY_IN_PROGRESS while the first is still running.
  Result<std::optional<Replay>> Begin(const std::string& key_id, const std::string& idem_key,
                                      const std::string& request_hash);
  void Finish(const std::string& key_id, const std::string& idem_key,
              const std::string& request_hash, int status, const std::string& body);
  void Abandon(const std::string& key_id, const std::string& idem_key);
  Result<int64_t> Purge();

 private:
  store::Store& store_;
  const crypto::SecretBox& box_;
  const Clock& clock_;
  std::mutex mu_;
  std::unordered_set<std::string> in_flight_;
};

// First start: when the store has no workspace, creates workspace `default` (root) and an
// admin key, writes the key to `<data_dir>/admin.key` (0600) and returns it; otherwise
// returns nullopt.
Result<std::optional<std::string>> Bootstrap(store::Store& store, const std::string& data_dir,
                                             const Clock& clock);

}  // namespace kiln::auth
