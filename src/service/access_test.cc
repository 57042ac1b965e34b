// Access policies and access tokens through Service::Authorize and the operations, with a real
// SQLite store in a temporary directory and a fake clock (no runtime: no app runs here; the
// gateway's side is in tests/integration/gateway_access_test.cc).
#include "service/access.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>

#include "service/service.h"

namespace kiln::service {
namespace {

json::object Obj(std::string_view text) { return ParseJson(text)->as_object(); }

class AccessTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kiln-access-test.XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    store_ = std::move(store::OpenSqliteStore(dir_ + "/kiln.db")).value();
    admin_ = **auth::Bootstrap(*store_, dir_, clock_);
    auth_ = std::make_unique<auth::Authenticator>(*store_, "jwt-key", clock_);
    service_ = std::make_unique<Service>(
        Deps{*store_, *auth_, clock_, config_, box_, nullptr, "not in unit tests"});
    ws_ = store_->GetWorkspaceBySlug("default")->id;
    // A second tenant with its own admin key and app.
    auto other = Call(admin_, "workspaces.create", R"({"slug": "acme"})");
    ASSERT_TRUE(other.ok()) << other.status().ToString();
    other_key_ = std::string(other->at("key").at("secret").as_string());
    other_ws_ = std::string(other->at("workspace").at("id").as_string());
    app_ = CreateApp(admin_, "shop", "token");
    other_app_ = CreateApp(admin_, "blog", "token");
    acme_app_ = CreateApp(other_key_, "acme-site", "token");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Result<json::value> CallAs(const auth::Principal& principal, std::string_view op,
                             std::string_view input) {
    Context ctx{principal, "req_test", nullptr, false};
    const Operation* o = service_->Find(op);
    EXPECT_NE(o, nullptr) << op;
    if (o == nullptr) {
      return Status::NotFound("NO_OP", std::string(op));
    }
    return service_->Call(*o, ctx, Obj(input));
  }
  Result<json::value> Call(const std::string& credential, std::string_view op,
                           std::string_view input) {
    auto principal = auth_->Authenticate(credential);
    if (!principal.ok()) {
      return principal.status();
    }
    return CallAs(*principal, op, input);
  }
  std::string CreateApp(const std::string& key, const std::string& name,
                        const std::string& policy) {
    auto app = Call(key, "apps.create",
                    R"({"name": ")" + name + R"(", "accessPolicy": ")" + policy + "\"}");
    EXPECT_TRUE(app.ok()) << app.status().ToString();
    return app.ok() ? std::string(app->at("id").as_string()) : std::string();
  }
  // Mints an access token of `app` (a name); answers the create answer.
  json::object Mint(const std::string& app, const std::string& kind, int64_t ttl = 0,
                    const std::string& key = "") {
    std::string body = R"({"app": ")" + app + R"(", "kind": ")" + kind + "\"";
    if (ttl > 0) {
      body += R"(, "ttlSeconds": )" + std::to_string(ttl);
    }
    auto r = Call(key.empty() ? admin_ : key, "apps.access_tokens.create", body + "}");
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    return r.ok() ? r->as_object() : json::object();
  }
  std::string KeyId(const std::string& secret) { return auth_->Authenticate(secret)->key_id; }

  // Authorize for `target` (of the default workspace unless `ws` says otherwise).
  AccessDecision Check(std::string_view policy, const std::string& target,
                       std::string_view authorization = "", std::string_view cookie = "",
                       std::string_view query_token = "", const std::string& ws = "") {
    AccessCheck check;
    check.policy = policy;
    check.workspace_id = ws.empty() ? ws_ : ws;
    check.target_id = target;
    check.authorization = authorization;
    check.cookie = cookie;
    check.query_token = query_token;
    return service_->Authorize(check);
  }

  std::string dir_;
  FakeClock clock_;
  Config config_;
  crypto::SecretBox box_ = crypto::SecretBox::FromKey(std::string(32, 'k'));
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<auth::Authenticator> auth_;
  std::unique_ptr<Service> service_;
  std::string admin_, ws_, other_key_, other_ws_, app_, other_app_, acme_app_;
};

std::string S(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_string() ? std::string(it->value().as_string())
                                                  : std::string();
}

TEST(CookieValueTest, FindsTheNamedCookieOnly) {
  EXPECT_EQ(CookieValue("a=1; kiln_session=jwt.x.y; b=2", "kiln_session"), "jwt.x.y");
  EXPECT_EQ(CookieValue("kiln_session_old=1;kiln_session=\"v\"", "kiln_session"), "v");
  EXPECT_EQ(CookieValue("xkiln_session=1", "kiln_session"), "");
  EXPECT_EQ(CookieValue("", "kiln_session"), "");
  EXPECT_EQ(CookieValue("kiln_session", "kiln_session"), "");
}

TEST(BearerValueTest, TakesTheBearerSchemeInAnyCaseOnly) {
  EXPECT_EQ(BearerValue("Bearer kiln_sk_1"), "kiln_sk_1");
  EXPECT_EQ(BearerValue("bearer kiln_sk_1"), "kiln_sk_1");
  EXPECT_EQ(BearerValue("BEARER   kiln_sk_1  "), "kiln_sk_1");
  EXPECT_EQ(BearerValue("Basic a2lsbjp4"), "");
  EXPECT_EQ(BearerValue("Bearer"), "");
  EXPECT_EQ(BearerValue("Bearerkiln_sk_1"), "");
  EXPECT_EQ(BearerValue(""), "");
}

TEST_F(AccessTest, PublicIsAnonymousUnlessACredentialOfTheWorkspaceCame) {
  AccessDecision anon = Check("public", app_);
  EXPECT_EQ(anon.status, 200);
  EXPECT_TRUE(anon.user_id.empty() && anon.workspace.empty() && anon.auth_token.empty());
  EXPECT_FALSE(anon.strip_authorization);

  AccessDecision named = Check("public", app_, "Bearer " + admin_);
  EXPECT_EQ(named.status, 200);
  EXPECT_EQ(named.user_id, KeyId(admin_));
  EXPECT_EQ(named.workspace, "default");
  EXPECT_FALSE(named.auth_token.empty());
  EXPECT_TRUE(named.strip_authorization);

  // Another workspace's key, a bad key: ignored (anonymous), but Kiln's still never reach the
  // app. The app's own bearer token passes untouched.
  AccessDecision foreign = Check("public", app_, "Bearer " + other_key_);
  EXPECT_EQ(foreign.status, 200);
  EXPECT_TRUE(foreign.user_id.empty());
  EXPECT_TRUE(foreign.strip_authorization);
  AccessDecision bad = Check("public", app_, "Bearer kiln_sk_not-a-key");
  EXPECT_EQ(bad.status, 200);
  EXPECT_TRUE(bad.user_id.empty());
  EXPECT_TRUE(bad.strip_authorization);
  AccessDecision own = Check("public", app_, "Bearer the-apps-own-token");
  EXPECT_EQ(own.status, 200);
  EXPECT_FALSE(own.strip_authorization);
  AccessDecision own_jwt = Check("public", app_, "Bearer aGVh.cGF5.c2ln");
  EXPECT_FALSE(own_jwt.strip_authorization);

  // A share cookie of this app names its token, too.
  std::string token = S(Mint("shop", "share-url"), "token");
  AccessDecision shared = Check("public", app_, "", "kiln_access_" + app_ + "=" + token);
  EXPECT_EQ(shared.status, 200);
  EXPECT_TRUE(shared.user_id.starts_with("tok_"));
}

TEST_F(AccessTest, WorkspaceNeedsAKeyJwtOrSessionOfTheWorkspace) {
  AccessDecision none = Check("workspace", app_);
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.error.error_code(), "AUTH_REQUIRED");
  EXPECT_NE(none.error.hint().find("workspace default"), std::string::npos) << none.error.hint();

  AccessDecision key = Check("workspace", app_, "Bearer " + admin_);
  EXPECT_EQ(key.status, 200);
  EXPECT_EQ(key.user_id, KeyId(admin_));
  EXPECT_TRUE(key.strip_authorization);
  EXPECT_EQ(Check("workspace", app_, "bearer  " + admin_).status, 200);  // any case, spaces

  auto jwt = Call(admin_, "auth.token", "{}");
  ASSERT_TRUE(jwt.ok());
  std::string token = S(jwt->as_object(), "token");
  AccessDecision via_jwt = Check("workspace", app_, "Bearer " + token);
  EXPECT_EQ(via_jwt.status, 200);
  EXPECT_EQ(via_jwt.user_id, KeyId(admin_));
  EXPECT_TRUE(via_jwt.strip_authorization);
  AccessDecision session = Check("workspace", app_, "", "theme=dark; kiln_session=" + token);
  EXPECT_EQ(session.status, 200);
  EXPECT_EQ(session.workspace, "default");
  EXPECT_FALSE(session.strip_authorization);  // nothing to strip: the cookie goes anyway

  AccessDecision foreign = Check("workspace", app_, "Bearer " + other_key_);
  EXPECT_EQ(foreign.status, 403);
  EXPECT_EQ(foreign.error.error_code(), "WRONG_WORKSPACE");
  EXPECT_NE(foreign.error.message().find("acme"), std::string::npos) << foreign.error.message();
  EXPECT_EQ(foreign.error.message().find(other_key_), std::string::npos);

  EXPECT_EQ(Check("workspace", app_, "Bearer kiln_sk_nope").error.error_code(), "INVALID_API_KEY");
  // The app's own token is no attempt at all: the answer asks for a credential.
  EXPECT_EQ(Check("workspace", app_, "Bearer abc").error.error_code(), "AUTH_REQUIRED");
  // Access tokens do not open a workspace app, and nor does a share cookie.
  std::string share = S(Mint("shop", "share-url"), "token");
  std::string bearer = S(Mint("shop", "bearer"), "token");
  AccessDecision tok = Check("workspace", app_, "Bearer " + bearer);
  EXPECT_EQ(tok.status, 401);
  EXPECT_EQ(tok.error.error_code(), "ACCESS_TOKEN_NOT_ACCEPTED");
  EXPECT_TRUE(tok.strip_authorization);
  EXPECT_EQ(Check("workspace", app_, "", "kiln_access_" + app_ + "=" + share).status, 401);
  EXPECT_EQ(Check("workspace", app_, "", "", share).status, 401);

  // Revoking the key ends it, and the JWT and session that stand for it, at once.
  auto reader = Call(admin_, "keys.create", R"({"name": "r", "scopes": ["read"]})");
  ASSERT_TRUE(reader.ok());
  std::string reader_secret = S(reader->as_object(), "secret");
  std::string reader_id = S(reader->as_object(), "id");
  auto reader_jwt = Call(reader_secret, "auth.token", "{}");
  std::string reader_token = S(reader_jwt->as_object(), "token");
  EXPECT_EQ(Check("workspace", app_, "Bearer " + reader_secret).status, 200);
  EXPECT_EQ(Check("workspace", app_, "", "kiln_session=" + reader_token).status, 200);
  ASSERT_TRUE(Call(admin_, "keys.revoke",
                   R"({"id": ")" + reader_id + R"(", "confirm": ")" + reader_id + "\"}")
                  .ok());
  EXPECT_EQ(Check("workspace", app_, "Bearer " + reader_secret).error.error_code(), "KEY_REVOKED");
  AccessDecision ended = Check("workspace", app_, "", "kiln_session=" + reader_token);
  EXPECT_EQ(ended.status, 401);
  EXPECT_EQ(ended.error.error_code(), "KEY_REVOKED");
  EXPECT_NE(ended.error.hint().find("sign in"), std::string::npos);
}

TEST_F(AccessTest, TokenPolicyTakesBearerTokensOfTheRightKindAndTarget) {
  json::object minted = Mint("shop", "bearer");
  std::string token = S(minted, "token");
  EXPECT_TRUE(token.starts_with("kiln_at_"));
  EXPECT_EQ(S(minted, "url"), "http://shop.localhost:8080/");
  EXPECT_EQ(S(minted, "status"), "active");

  AccessDecision ok = Check("token", app_, "Bearer " + token);
  EXPECT_EQ(ok.status, 200);
  EXPECT_EQ(ok.user_id, S(minted, "id"));
  EXPECT_EQ(ok.workspace, "default");
  EXPECT_TRUE(ok.strip_authorization);
  EXPECT_FALSE(ok.auth_token.empty());

  // Another target of the same workspace, and a target of another workspace: 403.
  AccessDecision other = Check("token", other_app_, "Bearer " + token);
  EXPECT_EQ(other.status, 403);
  EXPECT_EQ(other.error.error_code(), "TOKEN_WRONG_TARGET");
  EXPECT_EQ(Check("token", acme_app_, "Bearer " + token, "", "", other_ws_).status, 403);
  // A bearer token in a URL is refused: it would be a share link nobody meant to make.
  AccessDecision in_url = Check("token", app_, "", "", token);
  EXPECT_EQ(in_url.status, 401);
  EXPECT_EQ(in_url.error.error_code(), "TOKEN_WRONG_KIND");
  // Made-up tokens, and no credential at all.
  EXPECT_EQ(Check("token", app_, "Bearer kiln_at_madeup").error.error_code(), "TOKEN_INVALID");
  AccessDecision none = Check("token", app_);
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.error.error_code(), "AUTH_REQUIRED");
  EXPECT_NE(none.error.hint().find("share URL"), std::string::npos);

  // Workspace credentials pass a token policy too; another workspace's do not.
  EXPECT_EQ(Check("token", app_, "Bearer " + admin_).status, 200);
  EXPECT_EQ(Check("token", app_, "Bearer " + other_key_).status, 403);
}

TEST_F(AccessTest, ShareUrlRedirectsIntoACookieThatOpensLaterRequests) {
  json::object minted = Mint("shop", "share-url", 3600);
  std::string token = S(minted, "token");
  EXPECT_EQ(S(minted, "url"), "http://shop.localhost:8080/?kiln_token=" + token);

  AccessDecision first = Check("token", app_, "", "", token);
  EXPECT_EQ(first.status, 302);
  EXPECT_EQ(first.set_cookie,
            "kiln_access_" + app_ + "=" + token + "; HttpOnly; SameSite=Lax; Path=/; Max-Age=3600");
  EXPECT_TRUE(first.user_id.empty());

  clock_.AdvanceMs(600'000);
  AccessDecision later = Check("token", app_, "", "a=b; kiln_access_" + app_ + "=" + token);
  EXPECT_EQ(later.status, 200);
  EXPECT_EQ(later.user_id, S(minted, "id"));
  EXPECT_EQ(Check("token", app_, "", "", token).set_cookie.substr(0, 10), "kiln_acces");
  EXPECT_NE(Check("token", app_, "", "", token).set_cookie.find("Max-Age=3000"), std::string::npos);

  // The cookie of one app is not read for another, and a share token given to another app's
  // URL is refused.
  EXPECT_EQ(Check("token", other_app_, "", "kiln_access_" + app_ + "=" + token).status, 401);
  AccessDecision wrong = Check("token", other_app_, "", "", token);
  EXPECT_EQ(wrong.status, 403);
  EXPECT_EQ(wrong.error.error_code(), "TOKEN_WRONG_TARGET");
  // A share token sent as a bearer is the wrong kind.
  EXPECT_EQ(Check("token", app_, "Bearer " + token).error.error_code(), "TOKEN_WRONG_KIND");
}

TEST_F(AccessTest, ExpiredTokensAreRefusedEverywhere) {
  std::string share = S(Mint("shop", "share-url", 60), "token");
  std::string bearer = S(Mint("shop", "bearer", 60), "token");
  EXPECT_EQ(Check("token", app_, "Bearer " + bearer).status, 200);  // cached now
  clock_.AdvanceMs(60'000);
  for (AccessDecision d : {Check("token", app_, "Bearer " + bearer),
                           Check("token", app_, "", "kiln_access_" + app_ + "=" + share),
                           Check("token", app_, "", "", share)}) {
    EXPECT_EQ(d.status, 401);
    EXPECT_EQ(d.error.error_code(), "TOKEN_EXPIRED");
    EXPECT_NE(d.error.hint().find("new link"), std::string::npos);
  }
  auto list = Call(admin_, "apps.access_tokens.list", R"({"app": "shop"})");
  ASSERT_TRUE(list.ok());
  for (const auto& t : list->at("tokens").as_array()) {
    EXPECT_EQ(t.at("status"), "expired");
  }
}

TEST_F(AccessTest, RevokingThroughTheApiTakesEffectAtOnce) {
  json::object minted = Mint("shop", "share-url");
  std::string token = S(minted, "token"), id = S(minted, "id");
  std::string cookie = "kiln_access_" + app_ + "=" + token;
  AccessDecision before = Check("token", app_, "", cookie);
  ASSERT_EQ(before.status, 200);  // and now cached

  auto revoked =
      Call(admin_, "apps.access_tokens.revoke", R"({"app": "shop", "tokenId": ")" + id + "\"}");
  ASSERT_TRUE(revoked.ok()) << revoked.status().ToString();
  EXPECT_EQ(revoked->at("status"), "revoked");
  AccessDecision after = Check("token", app_, "", cookie);  // no clock movement
  EXPECT_EQ(after.status, 401);
  EXPECT_EQ(after.error.error_code(), "TOKEN_REVOKED");
  EXPECT_EQ(Check("token", app_, "", "", token).error.error_code(), "TOKEN_REVOKED");
  // Again: fine, nothing changes. Unknown ids and another app's tokens are not found.
  EXPECT_TRUE(
      Call(admin_, "apps.access_tokens.revoke", R"({"app": "shop", "tokenId": ")" + id + "\"}")
          .ok());
  EXPECT_EQ(
      Call(admin_, "apps.access_tokens.revoke", R"({"app": "blog", "tokenId": ")" + id + "\"}")
          .status()
          .error_code(),
      "TOKEN_NOT_FOUND");
  EXPECT_EQ(
      Call(other_key_, "apps.access_tokens.revoke", R"({"app": "shop", "tokenId": ")" + id + "\"}")
          .status()
          .error_code(),
      "APP_NOT_FOUND");
}

// The lookup cache is real: a revocation that bypasses the API (another process on the same
// database) is seen once the entry is older than kTokenCacheMs.
TEST_F(AccessTest, TokenLookupsAreCachedForAShortTime) {
  json::object minted = Mint("shop", "bearer");
  std::string auth = "Bearer " + S(minted, "token");
  ASSERT_EQ(Check("token", app_, auth).status, 200);
  store::Event e{0, NewId("evt"), ws_, "access_token.revoked", "", S(minted, "id"), "{}", 1};
  ASSERT_TRUE(store_->RevokeAccessToken(ws_, app_, S(minted, "id"), clock_.NowMs(), e).ok());
  EXPECT_EQ(Check("token", app_, auth).status, 200);
  clock_.AdvanceMs(AccessManager::kTokenCacheMs);
  EXPECT_EQ(Check("token", app_, auth).error.error_code(), "TOKEN_REVOKED");
}

TEST_F(AccessTest, LastUseIsRecordedAtMostOncePerMinute) {
  json::object minted = Mint("shop", "bearer");
  std::string auth = "Bearer " + S(minted, "token");
  auto last_used = [&]() -> std::string {
    auto list = Call(admin_, "apps.access_tokens.list", R"({"app": "shop"})");
    const json::value& v = list->at("tokens").as_array().at(0).at("lastUsedAt");
    return v.is_string() ? std::string(v.as_string()) : "null";
  };
  EXPECT_EQ(last_used(), "null");
  ASSERT_EQ(Check("token", app_, auth).status, 200);
  std::string first = last_used();
  EXPECT_EQ(first, FormatTime(clock_.NowMs()));
  clock_.AdvanceMs(30'000);
  ASSERT_EQ(Check("token", app_, auth).status, 200);
  EXPECT_EQ(last_used(), first);
  clock_.AdvanceMs(30'000);
  ASSERT_EQ(Check("token", app_, auth).status, 200);
  EXPECT_EQ(last_used(), FormatTime(clock_.NowMs()));
}

TEST_F(AccessTest, XKilnAuthNamesTheCallerAndOpensOnlyMe) {
  AccessDecision d = Check("workspace", app_, "Bearer " + admin_);
  ASSERT_EQ(d.status, 200);
  auto principal = auth_->Authenticate(d.auth_token);
  ASSERT_TRUE(principal.ok()) << principal.status().ToString();
  EXPECT_EQ(principal->via, auth::Principal::Via::kGateway);
  EXPECT_EQ(principal->key_id, d.user_id);
  EXPECT_EQ(principal->audience, app_);
  EXPECT_EQ(principal->expires_ms,
            (clock_.NowMs() + config_.gateway.auth_token_ttl_seconds * 1000) / 1000 * 1000);

  auto me = CallAs(*principal, "me.get", "{}");
  ASSERT_TRUE(me.ok()) << me.status().ToString();
  EXPECT_EQ(me->at("auth"), "gateway");
  EXPECT_EQ(me->at("gateway").at("userId").as_string(), d.user_id);
  EXPECT_EQ(me->at("gateway").at("workspace"), "default");
  EXPECT_EQ(me->at("gateway").at("target").as_string(), app_);
  EXPECT_EQ(me->at("capabilities").as_array().size(), 1u);
  EXPECT_FALSE(me->as_object().contains("key"));

  // Every other operation refuses it before looking at its input, even those needing no
  // scope (auth.token).
  for (const Operation& op : service_->operations()) {
    if (op.name == "me.get") {
      continue;
    }
    auto r = CallAs(*principal, op.name, "{}");
    EXPECT_EQ(r.status().error_code(), "GATEWAY_TOKEN_IDENTITY_ONLY") << op.name;
  }
  // Nor does it open an app as a credential.
  AccessDecision replayed = Check("workspace", other_app_, "Bearer " + d.auth_token);
  EXPECT_EQ(replayed.status, 401);
  EXPECT_EQ(replayed.error.error_code(), "GATEWAY_TOKEN_IDENTITY_ONLY");
  EXPECT_TRUE(replayed.strip_authorization);
}

TEST_F(AccessTest, XKilnAuthIsCachedAndReissuedAtHalfLife) {
  std::string auth = "Bearer " + admin_;
  std::string first = Check("workspace", app_, auth).auth_token;
  EXPECT_EQ(Check("workspace", app_, auth).auth_token, first);
  // Per target: another app gets its own.
  std::string other = Check("workspace", other_app_, auth).auth_token;
  EXPECT_NE(other, first);
  EXPECT_EQ(auth_->Authenticate(other)->audience, other_app_);
  clock_.AdvanceMs(config_.gateway.auth_token_ttl_seconds * 500 - 1000);
  EXPECT_EQ(Check("workspace", app_, auth).auth_token, first);
  clock_.AdvanceMs(1000);
  std::string second = Check("workspace", app_, auth).auth_token;
  EXPECT_NE(second, first);
  EXPECT_TRUE(auth_->Authenticate(second).ok());

  // Never past the credential: a token with a minute left gets an X-Kiln-Auth for a minute.
  json::object minted = Mint("shop", "bearer", 60);
  AccessDecision d = Check("token", app_, "Bearer " + S(minted, "token"));
  auto p = auth_->Authenticate(d.auth_token);
  ASSERT_TRUE(p.ok());
  EXPECT_LE(p->expires_ms, clock_.NowMs() + 60'000);
}

TEST_F(AccessTest, OperationsValidateRecordAndNeverShowTheToken) {
  // Scopes: minting and revoking need write, listing read.
  auto reader = Call(admin_, "keys.create", R"({"name": "r", "scopes": ["read"]})");
  std::string read_key = S(reader->as_object(), "secret");
  EXPECT_EQ(Call(read_key, "apps.access_tokens.create", R"({"app": "shop", "kind": "bearer"})")
                .status()
                .error_code(),
            "MISSING_SCOPE");
  EXPECT_TRUE(Call(read_key, "apps.access_tokens.list", R"({"app": "shop"})").ok());

  // Input: kind is required and known; ttl at most 30 days; default one day.
  EXPECT_EQ(Call(admin_, "apps.access_tokens.create", R"({"app": "shop"})").status().error_code(),
            "VALIDATION_FAILED");
  EXPECT_EQ(Call(admin_, "apps.access_tokens.create", R"({"app": "shop", "kind": "cookie"})")
                .status()
                .error_code(),
            "VALIDATION_FAILED");
  EXPECT_EQ(Call(admin_, "apps.access_tokens.create",
                 R"({"app": "shop", "kind": "bearer", "ttlSeconds": 2592001})")
                .status()
                .error_code(),
            "VALIDATION_FAILED");
  EXPECT_EQ(Call(admin_, "apps.access_tokens.create", R"({"app": "nope", "kind": "bearer"})")
                .status()
                .error_code(),
            "APP_NOT_FOUND");
  auto created = Call(admin_, "apps.access_tokens.create",
                      R"({"app": "shop", "kind": "share-url", "name": "for bob"})");
  ASSERT_TRUE(created.ok());
  std::string token = S(created->as_object(), "token");
  EXPECT_EQ(S(created->as_object(), "expiresAt"), FormatTime(clock_.NowMs() + 86'400'000));
  EXPECT_EQ(S(created->as_object(), "prefix"), token.substr(0, 12));
  EXPECT_FALSE(created->as_object().contains("note"));  // the app's policy is token

  // A workspace app gets a note that its tokens open nothing yet.
  CreateApp(admin_, "intranet", "workspace");
  EXPECT_NE(S(Mint("intranet", "bearer"), "note").find("accessPolicy"), std::string::npos);

  // The list, the events and the store hold no token.
  auto list = Call(admin_, "apps.access_tokens.list", R"({"app": "shop"})");
  ASSERT_TRUE(list.ok());
  std::string text = json::serialize(*list);
  EXPECT_EQ(text.find(token), std::string::npos);
  EXPECT_EQ(text.find(token.substr(12)), std::string::npos);
  EXPECT_EQ(list->at("tokens").as_array().size(), 1u);
  EXPECT_EQ(list->at("tokens").as_array()[0].at("name"), "for bob");
  auto events = Call(admin_, "events.list", "{}");
  ASSERT_TRUE(events.ok()) << events.status().ToString();
  std::string events_text = json::serialize(*events);
  EXPECT_NE(events_text.find("access_token.created"), std::string::npos);
  EXPECT_EQ(events_text.find(token.substr(12)), std::string::npos);
  auto row = store_->FindAccessToken(crypto::Sha256Hex(token));
  ASSERT_TRUE(row.ok());
  EXPECT_EQ(row->hash, crypto::Sha256Hex(token));
  // Another workspace cannot list this app's tokens.
  EXPECT_EQ(Call(other_key_, "apps.access_tokens.list", R"({"app": "shop"})").status().error_code(),
            "APP_NOT_FOUND");
}

TEST_F(AccessTest, SandboxTokensOpenTheSandboxAndNameItsPort) {
  store::Sandbox s;
  s.id = NewId("sbx");
  s.workspace_id = ws_;
  s.template_name = "base";
  s.status = "running";
  s.metadata = "{}";
  s.network = "none";
  s.created_ms = clock_.NowMs();
  s.expires_ms = clock_.NowMs() + 3'600'000;
  store::Event e{0, NewId("evt"), ws_, "sandbox.created", "", s.id, "{}", s.created_ms};
  ASSERT_TRUE(store_->InsertSandbox(s, {}, e).ok());

  auto created = Call(admin_, "sandboxes.access_tokens.create",
                      R"({"id": ")" + s.id + R"(", "kind": "share-url", "port": 8000})");
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  std::string token = S(created->as_object(), "token");
  EXPECT_EQ(S(created->as_object(), "url"),
            "http://8000-" + s.id + ".localhost:8080/?kiln_token=" + token);
  EXPECT_EQ(S(created->as_object(), "target"), s.id);
  EXPECT_EQ(Check("token", s.id, "", "", token).status, 302);
  EXPECT_EQ(Check("token", s.id, "", "kiln_access_" + s.id + "=" + token).status, 200);
  EXPECT_EQ(Check("token", app_, "", "", token).status, 403);

  auto listed = Call(admin_, "sandboxes.access_tokens.list", R"({"id": ")" + s.id + "\"}");
  ASSERT_TRUE(listed.ok());
  EXPECT_EQ(listed->at("tokens").as_array().size(), 1u);
  ASSERT_TRUE(
      Call(admin_, "sandboxes.access_tokens.revoke",
           R"({"id": ")" + s.id + R"(", "tokenId": ")" + S(created->as_object(), "id") + "\"}")
          .ok());
  EXPECT_EQ(Check("token", s.id, "", "kiln_access_" + s.id + "=" + token).error.error_code(),
            "TOKEN_REVOKED");

  // An ended sandbox gets no new tokens.
  s.status = "killed";
  s.ended_ms = clock_.NowMs();
  s.end_reason = "killed";
  ASSERT_TRUE(store_->UpdateSandbox(s, nullptr).ok());
  EXPECT_EQ(Call(admin_, "sandboxes.access_tokens.create",
                 R"({"id": ")" + s.id + R"(", "kind": "bearer"})")
                .status()
                .error_code(),
            "SANDBOX_ENDED");
}

TEST_F(AccessTest, UnknownPolicyIsClosed) {
  AccessDecision d = Check("friends-only", app_, "Bearer " + admin_);
  EXPECT_EQ(d.status, 403);
  EXPECT_EQ(d.error.error_code(), "ACCESS_POLICY_UNKNOWN");
}

}  // namespace
}  // namespace kiln::service
