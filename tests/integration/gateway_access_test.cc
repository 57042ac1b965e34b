// Access policies through the real gateway, with a real deployed app (tests/fixtures/upstream,
// whose GET /headers answers the request as the app saw it): public, workspace and token
// policies; share URLs that become cookies; expiry and revocation; what the app receives
// (never Kiln's credentials or client-sent X-Kiln-* headers; the caller's identity and an
// X-Kiln-Auth token that GET /v1/me verifies and that opens nothing else).
#include "integration/gateway_fixture.h"

namespace kiln::testing {
namespace {

class GatewayAccessTest : public GatewaySuite {
 protected:
  static void SetUpTestSuite() {
    StartSuite("[apps]\nhealth_timeout_seconds = 10\ndrain_seconds = 5\n",
               {"open", "private", "shared"});
    if (!ready_) {
      return;
    }
    ready_ = false;
    for (const auto& [app, policy] :
         {std::pair{"private", "workspace"}, std::pair{"shared", "token"}}) {
      Reply r = Admin("PATCH", std::string("/v1/apps/") + app,
                      std::string(R"({"accessPolicy":")") + policy + "\"}");
      if (r.status != 200) {
        ADD_FAILURE() << "set the policy of " << app << ": " << r;
        return;
      }
    }
    // Another tenant, whose key must open nothing of the default workspace.
    Reply acme = Admin("POST", "/v1/workspaces", R"({"slug":"acme"})");
    if (acme.status != 201) {
      ADD_FAILURE() << "create workspace acme: " << acme;
      return;
    }
    acme_key_ = acme.Str("/data/key/secret");
    admin_id_ = Admin("GET", "/v1/me").Str("/data/key/id");
    ready_ = !acme_key_.empty() && !admin_id_.empty();
  }
  static void TearDownTestSuite() { StopSuite(); }

  // GET /headers of `app` with raw header lines; the reply (the app's view when it was reached).
  static Reply Get(const std::string& app, const std::vector<std::string>& headers = {},
                   const std::string& target = "/headers") {
    auto r = Fetch(app, "GET", target, headers);
    return r ? *r : Reply{};
  }
  static std::string Seen(const Reply& r, const std::string& header) {
    return r.Str("/headers/" + header);
  }
  static bool SawHeader(const Reply& r, const std::string& header) {
    return r.Has("/headers/" + header);
  }
  static std::string App(const std::string& name) {
    return Admin("GET", "/v1/apps/" + name).Str("/data/id");
  }
  // POST /v1/apps/{app}/access-tokens; the `data` of the 201.
  static Reply Mint(const std::string& app, const std::string& body) {
    Reply r = Admin("POST", "/v1/apps/" + app + "/access-tokens", body);
    EXPECT_EQ(r.status, 201) << r;
    return r;
  }
  // The name=value part of a Set-Cookie header.
  static std::string CookiePair(const std::string& set_cookie) {
    return set_cookie.substr(0, set_cookie.find(';'));
  }

  static inline std::string acme_key_;
  static inline std::string admin_id_;
};

TEST_F(GatewayAccessTest, PublicAppIsOpenAndNamesACallerOfItsWorkspace) {
  Reply anon = Get("open");
  ASSERT_EQ(anon.status, 200) << anon;
  EXPECT_FALSE(Seen(anon, "x-kiln-request-id").empty());
  EXPECT_FALSE(SawHeader(anon, "x-kiln-user-id"));
  EXPECT_FALSE(SawHeader(anon, "x-kiln-auth"));

  Reply named = Get("open", {"Authorization: Bearer " + admin_});
  ASSERT_EQ(named.status, 200) << named;
  EXPECT_EQ(Seen(named, "x-kiln-user-id"), admin_id_);
  EXPECT_EQ(Seen(named, "x-kiln-workspace"), "default");
  EXPECT_FALSE(Seen(named, "x-kiln-auth").empty());
  EXPECT_FALSE(SawHeader(named, "authorization")) << "the app saw Kiln's API key";

  // Another workspace's key is ignored (and still never reaches the app); the app's own
  // bearer token passes through untouched.
  Reply foreign = Get("open", {"Authorization: Bearer " + acme_key_});
  ASSERT_EQ(foreign.status, 200) << foreign;
  EXPECT_FALSE(SawHeader(foreign, "x-kiln-user-id"));
  EXPECT_FALSE(SawHeader(foreign, "authorization"));
  Reply own = Get("open", {"Authorization: Bearer the-apps-own-token"});
  ASSERT_EQ(own.status, 200) << own;
  EXPECT_EQ(Seen(own, "authorization"), "Bearer the-apps-own-token");
  EXPECT_FALSE(SawHeader(own, "x-kiln-user-id"));
}

TEST_F(GatewayAccessTest, WorkspaceAppNeedsAKeyJwtOrSessionOfItsWorkspace) {
  // What reached the app (/stats of a workspace app needs a key, too).
  auto requests = [] {
    auto r = Fetch("private", "GET", "/stats", {"Authorization: Bearer " + admin_});
    return r ? r->Int("/requests") : -1;
  };
  int64_t before = requests();

  Reply none = Get("private");
  EXPECT_EQ(none.status, 401) << none;
  EXPECT_EQ(none.ErrorCode(), "AUTH_REQUIRED") << none;
  EXPECT_NE(none.Str("/error/hint").find("workspace default"), std::string::npos) << none;
  Reply foreign = Get("private", {"Authorization: Bearer " + acme_key_});
  EXPECT_EQ(foreign.status, 403) << foreign;
  EXPECT_EQ(foreign.ErrorCode(), "WRONG_WORKSPACE") << foreign;
  Reply bad = Get("private", {"Authorization: Bearer kiln_sk_not-a-real-key"});
  EXPECT_EQ(bad.status, 401) << bad;
  EXPECT_EQ(requests(), before) << "a refused request reached the app";

  Reply key = Get("private", {"Authorization: Bearer " + admin_});
  ASSERT_EQ(key.status, 200) << key;
  EXPECT_EQ(Seen(key, "x-kiln-user-id"), admin_id_);
  EXPECT_FALSE(SawHeader(key, "authorization"));

  Reply jwt = Admin("POST", "/v1/auth/token", "{}");
  ASSERT_EQ(jwt.status, 200) << jwt;
  std::string token = jwt.Str("/data/token");
  Reply via_jwt = Get("private", {"Authorization: Bearer " + token});
  ASSERT_EQ(via_jwt.status, 200) << via_jwt;
  EXPECT_EQ(Seen(via_jwt, "x-kiln-user-id"), admin_id_);

  // The dashboard's session cookie opens it; Kiln's cookies never reach the app, the app's
  // own cookies do.
  Reply session =
      Get("private", {"Cookie: theme=dark; kiln_session=" + token + "; kiln_access_x=y; lang=en"});
  ASSERT_EQ(session.status, 200) << session;
  EXPECT_EQ(Seen(session, "x-kiln-workspace"), "default");
  EXPECT_EQ(Seen(session, "cookie"), "theme=dark; lang=en");
}

TEST_F(GatewayAccessTest, BearerAccessTokenOpensATokenApp) {
  Reply refused = Get("shared");
  EXPECT_EQ(refused.status, 401) << refused;
  EXPECT_EQ(refused.ErrorCode(), "AUTH_REQUIRED");

  Reply minted = Mint("shared", R"({"kind":"bearer","name":"ci"})");
  std::string token = minted.Str("/data/token");
  ASSERT_TRUE(token.starts_with("kiln_at_")) << minted;
  EXPECT_EQ(minted.Str("/data/url"), "http://shared.localhost:" + std::to_string(port()) + "/");

  Reply ok = Get("shared", {"Authorization: Bearer " + token});
  ASSERT_EQ(ok.status, 200) << ok;
  EXPECT_EQ(Seen(ok, "x-kiln-user-id"), minted.Str("/data/id"));
  EXPECT_EQ(Seen(ok, "x-kiln-workspace"), "default");
  EXPECT_FALSE(SawHeader(ok, "authorization")) << "the app saw the access token";

  // It opens this app only; workspace keys open a token app too.
  Reply elsewhere = Get("private", {"Authorization: Bearer " + token});
  EXPECT_EQ(elsewhere.status, 401) << elsewhere;
  EXPECT_EQ(Get("shared", {"Authorization: Bearer " + admin_}).status, 200);
  EXPECT_EQ(Get("shared", {"Authorization: Bearer " + acme_key_}).status, 403);

  // The list shows it without the token.
  Reply list = Admin("GET", "/v1/apps/shared/access-tokens");
  ASSERT_EQ(list.status, 200) << list;
  EXPECT_EQ(list.body.find(token), std::string::npos);
  EXPECT_EQ(list.body.find(token.substr(12)), std::string::npos);
  EXPECT_NE(list.body.find(minted.Str("/data/prefix")), std::string::npos);
}

TEST_F(GatewayAccessTest, ShareUrlRedirectsIntoACookieThatOpensTheApp) {
  Reply minted = Mint("shared", R"({"kind":"share-url","ttlSeconds":3600})");
  std::string url = minted.Str("/data/url");
  std::string token = minted.Str("/data/token");
  ASSERT_EQ(url, "http://shared.localhost:" + std::to_string(port()) + "/?kiln_token=" + token);

  Reply first = Get("shared", {}, "/headers?kiln_token=" + token + "&page=2");
  ASSERT_EQ(first.status, 302) << first;
  EXPECT_EQ(first.Header("location"), "/headers?page=2");
  std::string set_cookie = first.Header("set-cookie");
  std::string app_id = App("shared");
  EXPECT_TRUE(set_cookie.starts_with("kiln_access_" + app_id + "=" + token + ";")) << set_cookie;
  for (const char* attr : {"HttpOnly", "SameSite=Lax", "Path=/", "Max-Age="}) {
    EXPECT_NE(set_cookie.find(attr), std::string::npos) << attr << " in " << set_cookie;
  }

  Reply later =
      Get("shared", {"Cookie: " + CookiePair(set_cookie) + "; theme=dark"}, "/headers?page=2");
  ASSERT_EQ(later.status, 200) << later;
  EXPECT_EQ(Seen(later, "x-kiln-user-id"), minted.Str("/data/id"));
  EXPECT_EQ(Seen(later, "cookie"), "theme=dark");
  EXPECT_EQ(later.Str("/url"), "/headers?page=2");

  // The cookie is for this app only, and a share link of one app does not open another.
  Reply other = Get("private", {"Cookie: " + CookiePair(set_cookie)});
  EXPECT_EQ(other.status, 401) << other;
  EXPECT_EQ(Get("shared", {"Authorization: Bearer " + token}).ErrorCode(), "TOKEN_WRONG_KIND");
}

TEST_F(GatewayAccessTest, ExpiredTokenIsRefused) {
  Reply minted = Mint("shared", R"({"kind":"bearer","ttlSeconds":1})");
  std::string auth = "Authorization: Bearer " + minted.Str("/data/token");
  // Its expiry is a second away: wait for the refusal rather than for a fixed time.
  auto deadline = SteadyClock::now() + 10s;
  Reply r;
  while (SteadyClock::now() < deadline) {
    r = Get("shared", {auth});
    if (r.status != 200) {
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(r.status, 401) << r;
  EXPECT_EQ(r.ErrorCode(), "TOKEN_EXPIRED") << r;
  EXPECT_FALSE(r.Str("/error/hint").empty());
  Reply list = Admin("GET", "/v1/apps/shared/access-tokens");
  bool listed_expired = false;
  for (const auto& t : list.Array("/data/tokens")) {
    listed_expired |=
        t.at("id").as_string() == minted.Str("/data/id") && t.at("status").as_string() == "expired";
  }
  EXPECT_TRUE(listed_expired) << list;
}

TEST_F(GatewayAccessTest, RevokedTokenStopsWorkingAtOnce) {
  Reply share = Mint("shared", R"({"kind":"share-url"})");
  Reply bearer = Mint("shared", R"({"kind":"bearer"})");
  Reply first = Get("shared", {}, "/headers?kiln_token=" + share.Str("/data/token"));
  ASSERT_EQ(first.status, 302) << first;
  std::string cookie = "Cookie: " + CookiePair(first.Header("set-cookie"));
  std::string auth = "Authorization: Bearer " + bearer.Str("/data/token");
  ASSERT_EQ(Get("shared", {cookie}).status, 200);
  ASSERT_EQ(Get("shared", {auth}).status, 200);

  for (const Reply* t : {&share, &bearer}) {
    Reply revoked = Admin("DELETE", "/v1/apps/shared/access-tokens/" + t->Str("/data/id"));
    ASSERT_EQ(revoked.status, 200) << revoked;
    EXPECT_EQ(revoked.Str("/data/status"), "revoked");
  }
  // No wait: the very next requests are refused.
  Reply by_cookie = Get("shared", {cookie});
  EXPECT_EQ(by_cookie.status, 401) << by_cookie;
  EXPECT_EQ(by_cookie.ErrorCode(), "TOKEN_REVOKED");
  Reply by_bearer = Get("shared", {auth});
  EXPECT_EQ(by_bearer.status, 401) << by_bearer;
  EXPECT_EQ(by_bearer.ErrorCode(), "TOKEN_REVOKED");
  Reply by_link = Get("shared", {}, "/headers?kiln_token=" + share.Str("/data/token"));
  EXPECT_EQ(by_link.status, 401) << by_link;
  EXPECT_EQ(by_link.ErrorCode(), "TOKEN_REVOKED");
}

TEST_F(GatewayAccessTest, ClientSentKilnHeadersNeverReachTheApp) {
  std::vector<std::string> forged = {"X-Kiln-User-Id: key_forged", "X-Kiln-Workspace: forged",
                                     "X-Kiln-Auth: forged.token.here", "x-kiln-request-id: mine",
                                     "X-Kiln-Anything: else"};
  Reply anon = Get("open", forged);
  ASSERT_EQ(anon.status, 200) << anon;
  EXPECT_FALSE(SawHeader(anon, "x-kiln-user-id"));
  EXPECT_FALSE(SawHeader(anon, "x-kiln-workspace"));
  EXPECT_FALSE(SawHeader(anon, "x-kiln-auth"));
  EXPECT_FALSE(SawHeader(anon, "x-kiln-anything"));
  EXPECT_NE(Seen(anon, "x-kiln-request-id"), "mine");

  std::vector<std::string> with_key = forged;
  with_key.push_back("Authorization: Bearer " + admin_);
  Reply named = Get("private", with_key);
  ASSERT_EQ(named.status, 200) << named;
  EXPECT_EQ(Seen(named, "x-kiln-user-id"), admin_id_);  // the real one, alone
  EXPECT_EQ(Seen(named, "x-kiln-workspace"), "default");
  EXPECT_NE(Seen(named, "x-kiln-auth"), "forged.token.here");
  EXPECT_EQ(Seen(named, "x-kiln-auth").find("forged"), std::string::npos);
}

TEST_F(GatewayAccessTest, XKilnAuthVerifiesWithMeAndOpensNothingElse) {
  Reply seen = Get("private", {"Authorization: Bearer " + admin_});
  ASSERT_EQ(seen.status, 200) << seen;
  std::string auth = Seen(seen, "x-kiln-auth");
  ASSERT_FALSE(auth.empty());

  Reply me = server().Call("GET", "/v1/me", auth);
  ASSERT_EQ(me.status, 200) << me;
  EXPECT_EQ(me.Str("/data/auth"), "gateway");
  EXPECT_EQ(me.Str("/data/gateway/userId"), admin_id_);
  EXPECT_EQ(me.Str("/data/gateway/workspace"), "default");
  EXPECT_EQ(me.Str("/data/gateway/target"), App("private"));
  EXPECT_FALSE(me.Str("/data/gateway/expiresAt").empty());

  // Nothing else: not the API (not even the scope-less token exchange), not another app.
  Reply apps = server().Call("GET", "/v1/apps", auth);
  EXPECT_EQ(apps.status, 403) << apps;
  EXPECT_EQ(apps.ErrorCode(), "GATEWAY_TOKEN_IDENTITY_ONLY");
  Reply exchange = server().Call("POST", "/v1/auth/token", auth, "{}");
  EXPECT_EQ(exchange.status, 403) << exchange;
  Reply mint = server().Call("POST", "/v1/apps/shared/access-tokens", auth, R"({"kind":"bearer"})");
  EXPECT_EQ(mint.status, 403) << mint;
  Reply replayed = Get("shared", {"Authorization: Bearer " + auth});
  EXPECT_EQ(replayed.status, 401) << replayed;
  EXPECT_EQ(replayed.ErrorCode(), "GATEWAY_TOKEN_IDENTITY_ONLY");
  // A tampered one is refused.
  std::string tampered = auth;
  tampered[tampered.size() - 2] = tampered[tampered.size() - 2] == 'A' ? 'B' : 'A';
  EXPECT_EQ(server().Call("GET", "/v1/me", tampered).status, 401);
}

}  // namespace
}  // namespace kiln::testing
