#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>

#include "auth/auth.h"

namespace kiln::auth {
namespace {

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/kiln-auth-test.XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class AuthTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = store::OpenSqliteStore(dir_.path() + "/kiln.db");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    auto key = Bootstrap(*store_, dir_.path(), clock_);
    ASSERT_TRUE(key.ok()) << key.status().ToString();
    ASSERT_TRUE(key->has_value());
    admin_secret_ = **key;
  }

  TempDir dir_;
  FakeClock clock_;
  std::unique_ptr<store::Store> store_;
  std::string admin_secret_;
};

TEST(ScopesTest, ParseAndNames) {
  auto s = ParseScopes({"read", "exec"});
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(*s, kRead | kExec);
  EXPECT_EQ(ScopeNames(*s), (std::vector<std::string>{"read", "exec"}));
  auto bad = ParseScopes({"read", "root"});
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().error_code(), "UNKNOWN_SCOPE");
  EXPECT_NE(bad.status().message().find("root"), std::string::npos);
}

TEST(ScopesTest, AdminImpliesEverything) {
  EXPECT_TRUE(HasScopes(kAdmin, kRead | kWrite | kExec));
  EXPECT_TRUE(HasScopes(kRead | kWrite, kRead));
  EXPECT_FALSE(HasScopes(kRead, kWrite));
  EXPECT_FALSE(HasScopes(kRead | kWrite | kExec, kAdmin));
}

TEST(KeysTest, GeneratedKeyShape) {
  GeneratedKey a = GenerateKey();
  GeneratedKey b = GenerateKey();
  EXPECT_TRUE(a.secret.starts_with("kiln_sk_"));
  EXPECT_EQ(a.secret.size(), 8u + 43u);  // 32 bytes in unpadded base64url
  EXPECT_EQ(a.prefix, a.secret.substr(0, 12));
  EXPECT_EQ(a.hash, crypto::Sha256Hex(a.secret));
  EXPECT_NE(a.secret, b.secret);
}

TEST(JwtTest, SignVerifyAndExpiry) {
  JwtClaims c{"key_a", "ws_a", kRead | kWrite, 1000, 1060, "jti_1", "", ""};
  std::string token = SignJwt(c, "k");
  auto ok = VerifyJwt(token, "k", 1059);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(ok->key_id, "key_a");
  EXPECT_EQ(ok->workspace_id, "ws_a");
  EXPECT_EQ(ok->scopes, kRead | kWrite);
  auto expired = VerifyJwt(token, "k", 1060);
  ASSERT_FALSE(expired.ok());
  EXPECT_EQ(expired.status().error_code(), "TOKEN_EXPIRED");
  auto wrong_key = VerifyJwt(token, "other", 1000);
  ASSERT_FALSE(wrong_key.ok());
  EXPECT_EQ(wrong_key.status().error_code(), "TOKEN_INVALID");
}

TEST(JwtTest, RejectsTamperingAndAlgNone) {
  JwtClaims c{"key_a", "ws_a", kRead, 1000, 2000, "jti_1", "", ""};
  std::string token = SignJwt(c, "k");
  // Raise the scopes in the payload but keep the old signature.
  size_t dot1 = token.find('.'), dot2 = token.rfind('.');
  std::string payload = *crypto::Base64UrlDecode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  size_t at = payload.find("\"read\"");
  ASSERT_NE(at, std::string::npos);
  payload.replace(at, 6, "\"admin\"");
  std::string forged =
      token.substr(0, dot1) + "." + crypto::Base64UrlEncode(payload) + token.substr(dot2);
  EXPECT_EQ(VerifyJwt(forged, "k", 1500).status().error_code(), "TOKEN_INVALID");
  // alg=none, even when "signed" with the right key, is refused.
  std::string none = crypto::Base64UrlEncode(R"({"alg":"none","typ":"JWT"})") + "." +
                     token.substr(dot1 + 1, dot2 - dot1 - 1);
  std::string none_token = none + "." + crypto::Base64UrlEncode(crypto::HmacSha256("k", none));
  EXPECT_EQ(VerifyJwt(none_token, "k", 1500).status().error_code(), "TOKEN_INVALID");
  EXPECT_FALSE(VerifyJwt("a.b", "k", 1500).ok());
  EXPECT_FALSE(VerifyJwt("a.b.c.d", "k", 1500).ok());
}

TEST(RateLimiterTest, BurstThenRefill) {
  FakeClock clock;
  RateLimiter limiter(2, 3, clock);
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(limiter.Take("k").allowed) << i;
  }
  auto denied = limiter.Take("k");
  EXPECT_FALSE(denied.allowed);
  EXPECT_EQ(denied.limit, 3);
  EXPECT_EQ(denied.remaining, 0);
  EXPECT_GE(denied.retry_after_s, 1);
  EXPECT_TRUE(limiter.Take("other").allowed);  // buckets are per key
  clock.AdvanceMs(500);                        // 2/s: one token back
  EXPECT_TRUE(limiter.Take("k").allowed);
  EXPECT_FALSE(limiter.Take("k").allowed);
  clock.AdvanceMs(60'000);  // never more than the burst
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(limiter.Take("k").allowed) << i;
  }
  EXPECT_FALSE(limiter.Take("k").allowed);
}

TEST_F(AuthTest, BootstrapOnceWithPrivateKeyFile) {
  struct stat st {};
  ASSERT_EQ(::stat((dir_.path() + "/admin.key").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto again = Bootstrap(*store_, dir_.path(), clock_);
  ASSERT_TRUE(again.ok());
  EXPECT_FALSE(again->has_value());
  EXPECT_EQ(*store_->CountWorkspaces(), 1);
}

TEST_F(AuthTest, KeyAuthenticationRevocationAndJwt) {
  Authenticator auth(*store_, "jwt-key", clock_);
  auto admin = auth.Authenticate(admin_secret_);
  ASSERT_TRUE(admin.ok()) << admin.status().ToString();
  EXPECT_EQ(admin->workspace.slug, "default");
  EXPECT_TRUE(admin->workspace.root);
  EXPECT_EQ(admin->scopes, kAllScopes);

  EXPECT_EQ(auth.Authenticate("").status().error_code(), "MISSING_API_KEY");
  EXPECT_EQ(auth.Authenticate("kiln_sk_nope").status().error_code(), "INVALID_API_KEY");
  EXPECT_EQ(auth.Authenticate("garbage").status().error_code(), "INVALID_API_KEY");

  // A read key, a JWT for it; revoking the key ends both, even while cached.
  GeneratedKey g = GenerateKey();
  store::ApiKey k;
  k.id = NewId("key");
  k.workspace_id = admin->workspace.id;
  k.name = "reader";
  k.prefix = g.prefix;
  k.hash = g.hash;
  k.scopes = {"read"};
  k.created_ms = clock_.NowMs();
  store::Event e{0, NewId("evt"), k.workspace_id, "key.created", "", k.id, "{}", k.created_ms};
  ASSERT_TRUE(store_->InsertKey(k, e).ok());
  auto reader = auth.Authenticate(g.secret);
  ASSERT_TRUE(reader.ok());
  EXPECT_EQ(reader->scopes, kRead);
  int64_t expires_ms = 0;
  auto jwt = auth.IssueJwt(*reader, 60, &expires_ms);
  ASSERT_TRUE(jwt.ok());
  EXPECT_EQ(expires_ms, clock_.NowMs() / 1000 * 1000 + 60'000);
  auto via_jwt = auth.Authenticate(*jwt);
  ASSERT_TRUE(via_jwt.ok()) << via_jwt.status().ToString();
  EXPECT_EQ(via_jwt->via, Principal::Via::kJwt);
  EXPECT_EQ(via_jwt->key_id, k.id);
  EXPECT_EQ(auth.IssueJwt(*via_jwt, 60, &expires_ms).status().error_code(), "JWT_NOT_EXCHANGEABLE");

  clock_.AdvanceMs(61'000);
  EXPECT_EQ(auth.Authenticate(*jwt).status().error_code(), "TOKEN_EXPIRED");

  // Revoking ends the key at once, although the authenticator still caches it.
  EXPECT_TRUE(auth.Authenticate(g.secret).ok());
  store::Event revoked{0,  NewId("evt"), k.workspace_id, "key.revoked",
                       "", k.id,         "{}",           clock_.NowMs()};
  ASSERT_TRUE(store_->RevokeKey(k.workspace_id, k.id, clock_.NowMs(), revoked, "").ok());
  auth.Forget(k.id);
  EXPECT_EQ(auth.Authenticate(g.secret).status().error_code(), "KEY_REVOKED");
}

// A lookup that read the key's row just before a revocation committed must not cache it: the
// stale row says "active", but Forget() has already run. Forget without revoking the row
// stands in for that interleaving.
TEST_F(AuthTest, ForgottenKeyIsNotCachedFromAStaleRead) {
  Authenticator auth(*store_, "jwt-key", clock_);
  GeneratedKey g = GenerateKey();
  store::ApiKey k;
  k.id = NewId("key");
  k.workspace_id = store_->GetWorkspaceBySlug("default")->id;
  k.name = "racy";
  k.prefix = g.prefix;
  k.hash = g.hash;
  k.scopes = {"read"};
  k.created_ms = clock_.NowMs();
  store::Event e{0, NewId("evt"), k.workspace_id, "key.created", "", k.id, "{}", k.created_ms};
  ASSERT_TRUE(store_->InsertKey(k, e).ok());
  auth.Forget(k.id);
  EXPECT_EQ(auth.Authenticate(g.secret).status().error_code(), "KEY_REVOKED");
  EXPECT_EQ(auth.Authenticate(g.secret).status().error_code(), "KEY_REVOKED");
}

// JWTs are cached like keys (the gateway checks a session cookie per request); revoking the
// key behind one still ends it at once.
TEST_F(AuthTest, CachedJwtEndsWithItsKey) {
  Authenticator auth(*store_, "jwt-key", clock_);
  GeneratedKey g = GenerateKey();
  store::ApiKey k;
  k.id = NewId("key");
  k.workspace_id = store_->GetWorkspaceBySlug("default")->id;
  k.name = "session";
  k.prefix = g.prefix;
  k.hash = g.hash;
  k.scopes = {"read"};
  k.created_ms = clock_.NowMs();
  store::Event e{0, NewId("evt"), k.workspace_id, "key.created", "", k.id, "{}", k.created_ms};
  ASSERT_TRUE(store_->InsertKey(k, e).ok());
  auto key = auth.Authenticate(g.secret);
  ASSERT_TRUE(key.ok());
  int64_t expires_ms = 0;
  auto jwt = auth.IssueJwt(*key, 600, &expires_ms);
  ASSERT_TRUE(jwt.ok());
  ASSERT_TRUE(auth.Authenticate(*jwt).ok());
  // Revoke the row behind the authenticator's back: the cached JWT still passes (that is the
  // cache at work, for up to a minute) ...
  store::Event revoked{0, NewId("evt"), k.workspace_id, "key.revoked", "", k.id, "{}", 1};
  ASSERT_TRUE(store_->RevokeKey(k.workspace_id, k.id, clock_.NowMs(), revoked, "").ok());
  EXPECT_TRUE(auth.Authenticate(*jwt).ok());
  // ... until Forget, which the revoke operation calls after its commit.
  auth.Forget(k.id);
  EXPECT_EQ(auth.Authenticate(*jwt).status().error_code(), "KEY_REVOKED");
  // A cached token still expires on time.
  auto other = auth.Authenticate(admin_secret_);
  ASSERT_TRUE(other.ok());
  auto short_jwt = auth.IssueJwt(*other, 5, &expires_ms);
  ASSERT_TRUE(auth.Authenticate(*short_jwt).ok());
  clock_.AdvanceMs(5'000);
  EXPECT_EQ(auth.Authenticate(*short_jwt).status().error_code(), "TOKEN_EXPIRED");
}

TEST_F(AuthTest, RevokedJwtEndsAtOnceAndAfterARestart) {
  Authenticator auth(*store_, "jwt-key", clock_);
  auto admin = auth.Authenticate(admin_secret_);
  ASSERT_TRUE(admin.ok());
  int64_t expires_ms = 0;
  auto jwt = auth.IssueJwt(*admin, 600, &expires_ms);
  auto other = auth.IssueJwt(*admin, 600, &expires_ms);
  ASSERT_TRUE(jwt.ok() && other.ok());
  ASSERT_TRUE(auth.Authenticate(*jwt).ok());  // verified and cached
  ASSERT_TRUE(auth.RevokeJwt(*jwt).ok());
  EXPECT_EQ(auth.Authenticate(*jwt).status().error_code(), "TOKEN_REVOKED");
  EXPECT_TRUE(auth.Authenticate(*other).ok());  // another token of the same key lives on
  // A new authenticator (the server restarted) reads the revocation from the store.
  Authenticator restarted(*store_, "jwt-key", clock_);
  EXPECT_EQ(restarted.Authenticate(*jwt).status().error_code(), "TOKEN_REVOKED");
  EXPECT_TRUE(restarted.Authenticate(*other).ok());
  // Tokens that are not Kiln's, or expired, revoke nothing and fail nothing.
  EXPECT_TRUE(auth.RevokeJwt("a.b.c").ok());
  clock_.AdvanceMs(601'000);
  EXPECT_TRUE(auth.RevokeJwt(*other).ok());
}

// X-Kiln-Auth tokens name an app's caller: they authenticate as a scope-less kGateway
// principal that cannot be exchanged for a JWT, and a JWT of another kind is refused.
TEST_F(AuthTest, GatewayTokensNameTheCallerAndHoldNoScopes) {
  Authenticator auth(*store_, "jwt-key", clock_);
  std::string ws = store_->GetWorkspaceBySlug("default")->id;
  int64_t expires_ms = clock_.NowMs() + 300'000;
  std::string token = auth.IssueGatewayToken("key_caller", ws, "app_target", expires_ms);
  auto p = auth.Authenticate(token);
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->via, Principal::Via::kGateway);
  EXPECT_EQ(p->key_id, "key_caller");
  EXPECT_EQ(p->workspace.slug, "default");
  EXPECT_EQ(p->audience, "app_target");
  EXPECT_EQ(p->scopes, 0);
  EXPECT_EQ(p->expires_ms, expires_ms / 1000 * 1000);
  int64_t jwt_expiry = 0;
  EXPECT_EQ(auth.IssueJwt(*p, 60, &jwt_expiry).status().error_code(), "JWT_NOT_EXCHANGEABLE");

  // Signed with another server's key, or expired: refused.
  Authenticator other(*store_, "other-key", clock_);
  EXPECT_EQ(other.Authenticate(token).status().error_code(), "TOKEN_INVALID");
  clock_.AdvanceMs(300'001);
  Status expired = auth.Authenticate(token).status();
  EXPECT_EQ(expired.error_code(), "TOKEN_EXPIRED");
  EXPECT_NE(expired.hint().find("X-Kiln-Auth"), std::string::npos) << expired.hint();

  // A gateway token that claims scopes, or a token of an unknown kind, is never believed.
  JwtClaims c;
  c.key_id = "key_caller";
  c.workspace_id = ws;
  c.expires_s = clock_.NowSeconds() + 60;
  c.kind = "gateway";
  c.audience = "app_target";
  c.scopes = kAdmin;
  EXPECT_EQ(auth.Authenticate(SignJwt(c, "jwt-key")).status().error_code(), "TOKEN_INVALID");
  c.scopes = 0;
  c.kind = "session-v9";
  EXPECT_EQ(auth.Authenticate(SignJwt(c, "jwt-key")).status().error_code(), "TOKEN_INVALID");
  c.kind = "gateway";
  c.audience = "";
  EXPECT_EQ(auth.Authenticate(SignJwt(c, "jwt-key")).status().error_code(), "TOKEN_INVALID");
}

TEST_F(AuthTest, IdempotencyReplaysSealedResponses) {
  auto box = crypto::SecretBox::FromKey(std::string(32, 'x'));
  Idempotency idem(*store_, box, clock_);
  auto first = idem.Begin("key_a", "K1", "hash1");
  ASSERT_TRUE(first.ok());
  EXPECT_FALSE(first->has_value());
  // A second caller while the first still runs is told to wait.
  EXPECT_EQ(idem.Begin("key_a", "K1", "hash1").status().error_code(), "IDEMPOTENCY_IN_PROGRESS");
  idem.Finish("key_a", "K1", "hash1", 201, R"({"data":{"secret":"kiln_sk_s3cret"}})");

  auto stored = store_->GetIdempotency("key_a", "K1");
  ASSERT_TRUE(stored.ok() && stored->has_value());
  EXPECT_EQ((*stored)->sealed_body.find("s3cret"), std::string::npos);  // sealed at rest

  auto replay = idem.Begin("key_a", "K1", "hash1");
  ASSERT_TRUE(replay.ok() && replay->has_value());
  EXPECT_EQ((*replay)->status, 201);
  EXPECT_EQ((*replay)->body, R"({"data":{"secret":"kiln_sk_s3cret"}})");
  EXPECT_EQ(idem.Begin("key_a", "K1", "hash2").status().error_code(), "IDEMPOTENCY_KEY_REUSED");
  // Another key's Idempotency-Key space is separate.
  auto other = idem.Begin("key_b", "K1", "hash2");
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(other->has_value());
  idem.Abandon("key_b", "K1");

  // After 24 h the record is gone and the key can be used afresh.
  clock_.AdvanceMs(Idempotency::kTtlMs + 1);
  auto purged = idem.Purge();
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(*purged, 1);
  auto fresh = idem.Begin("key_a", "K1", "hash2");
  ASSERT_TRUE(fresh.ok());
  EXPECT_FALSE(fresh->has_value());
}

}  // namespace
}  // namespace kiln::auth
