// The dashboard on the real server (issue "Step 6"): its files served beside the API on the
// one listener, and the sign-in session (POST/GET/DELETE /v1/auth/session) whose cookie
// authenticates the API, with the CSRF check on everything that changes state.
#include "integration/server_fixture.h"

namespace kiln::testing {
namespace {

constexpr const char* kIndex = "<!doctype html><title>Kiln</title><script src=/assets/app-1a2b.js>";
constexpr const char* kScript = "console.log('kiln')";

// A built dashboard in a temporary directory, named by server.dashboard_dir.
class DashboardTest : public ServerTest {
 protected:
  std::string Config() override {
    std::string templ = (fs::temp_directory_path() / "kiln-dash-XXXXXX").string();
    EXPECT_NE(::mkdtemp(templ.data()), nullptr);
    web_ = templ;
    Fill();
    return "[server]\ndashboard_dir = \"" + web_.string() + "\"\n";
  }
  virtual void Fill() {
    std::ofstream(web_ / "index.html") << kIndex;
    fs::create_directories(web_ / "assets");
    std::ofstream(web_ / "assets" / "app-1a2b.js") << kScript;
    fs::create_directories(web_ / "private");
    std::ofstream(web_ / "private" / "secret.txt") << "not reachable";
    fs::create_symlink("/etc/passwd", web_ / "assets" / "link-out.txt");
  }
  void TearDown() override {
    ServerTest::TearDown();
    std::error_code ec;
    fs::remove_all(web_, ec);
  }

  std::string Origin() { return "http://127.0.0.1:" + std::to_string(server().port()); }

  // Signs in with `key`; answers the Cookie header value ("kiln_session=...").
  std::string SignIn(const std::string& key) {
    Reply r = server().Request("POST", "/v1/auth/session", R"({"apiKey":")" + key + "\"}");
    EXPECT_EQ(r.status, 200) << r;
    std::string set = r.Header("set-cookie");
    return set.substr(0, set.find(';'));
  }
  Reply WithCookie(const std::string& method, const std::string& path, const std::string& cookie,
                   const std::string& body = {}, http::Headers extra = {}) {
    extra.emplace_back("cookie", cookie);
    return server().Request(method, path, body, extra);
  }
  // What a raw request line gets, for paths a URL library would normalise.
  std::optional<Reply> Raw(const std::string& target) {
    RawClient c(server().port());
    c.Send("GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    return ParseRawResponse(c.Read(5s));
  }

  fs::path web_;
};

void ExpectSecurityHeaders(const Reply& r) {
  EXPECT_EQ(r.Header("content-security-policy"),
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
      << r;
  EXPECT_EQ(r.Header("x-content-type-options"), "nosniff");
  EXPECT_EQ(r.Header("referrer-policy"), "no-referrer");
  EXPECT_EQ(r.Header("x-frame-options"), "DENY");
}

TEST_F(DashboardTest, ServesFilesBesideTheApi) {
  Reply index = server().Request("GET", "/");
  ASSERT_EQ(index.status, 200) << index;
  EXPECT_EQ(index.body, kIndex);
  EXPECT_EQ(index.Header("content-type"), "text/html; charset=utf-8");
  EXPECT_EQ(index.Header("cache-control"), "no-cache");
  ExpectSecurityHeaders(index);

  Reply js = server().Request("GET", "/assets/app-1a2b.js");
  ASSERT_EQ(js.status, 200) << js;
  EXPECT_EQ(js.body, kScript);
  EXPECT_EQ(js.Header("content-type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(js.Header("cache-control"), "public, max-age=31536000, immutable");
  ExpectSecurityHeaders(js);
  std::string etag = js.Header("etag");
  ASSERT_FALSE(etag.empty());
  Reply again = server().Request("GET", "/assets/app-1a2b.js", {}, {{"if-none-match", etag}});
  EXPECT_EQ(again.status, 304) << again;
  EXPECT_TRUE(again.body.empty());

  Reply head = server().Request("HEAD", "/assets/app-1a2b.js");
  EXPECT_EQ(head.status, 200);
  EXPECT_EQ(head.Header("content-length"), std::to_string(std::string(kScript).size()));
  EXPECT_TRUE(head.body.empty());

  // In-app routes are the page's: index.html, which routes them itself.
  for (const char* route : {"/apps", "/apps/shop", "/sandboxes/sbx_1/files", "/keys/"}) {
    Reply r = server().Request("GET", route);
    EXPECT_EQ(r.status, 200) << route << " " << r;
    EXPECT_EQ(r.body, kIndex) << route;
  }
  Reply missing = server().Request("GET", "/assets/app-ffff.js");
  EXPECT_EQ(missing.status, 404) << missing;
  EXPECT_EQ(missing.Header("content-type"), "text/html; charset=utf-8");
  EXPECT_TRUE(missing.json.is_null()) << "a missing asset is a page, not JSON";
  ExpectSecurityHeaders(missing);

  // Out of the directory: "..", encoded or not, and a symlink leading out.
  for (const char* target : {"/../etc/passwd", "/assets/%2e%2e/%2e%2e/etc/passwd",
                             "/assets/..%2f..%2fetc/passwd", "/assets/link-out.txt"}) {
    auto r = Raw(target);
    ASSERT_TRUE(r.has_value()) << target;
    EXPECT_TRUE(r->status == 400 || r->status == 404) << target << " " << *r;
    EXPECT_EQ(r->body.find("root:"), std::string::npos) << target;
  }

  // The API keeps its own answers, JSON to the last 404.
  EXPECT_EQ(server().Request("GET", "/healthz").Str("/data/status"), "ok");
  EXPECT_EQ(Call("GET", "/v1/me", admin_).status, 200);
  for (const char* path : {"/v1/nope", "/v1", "/v1/apps/x/y/z"}) {
    Reply r = server().Request("GET", path);
    EXPECT_EQ(r.status, 404) << path << " " << r;
    EXPECT_EQ(r.ErrorCode(), "ROUTE_NOT_FOUND") << path;
    EXPECT_TRUE(r.Header("content-type").starts_with("application/json")) << path;
  }
  Reply unauth = server().Request("GET", "/v1/apps");
  EXPECT_EQ(unauth.status, 401);
  EXPECT_EQ(unauth.ErrorCode(), "MISSING_API_KEY");
  // Methods other than GET and HEAD are not the dashboard's.
  Reply post = server().Request("POST", "/apps", "{}");
  EXPECT_EQ(post.status, 404) << post;
  EXPECT_EQ(post.ErrorCode(), "ROUTE_NOT_FOUND");
  EXPECT_TRUE(server().Request("GET", "/metrics").body.find("kiln_http_requests_total") !=
              std::string::npos);
}

TEST_F(DashboardTest, SignInWithAKey) {
  Reply wrong =
      server().Request("POST", "/v1/auth/session",
                       R"({"apiKey":"kiln_sk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"})");
  EXPECT_EQ(wrong.status, 401) << wrong;
  EXPECT_EQ(wrong.ErrorCode(), "INVALID_API_KEY");
  EXPECT_FALSE(wrong.Str("/error/hint").empty());
  EXPECT_FALSE(wrong.HasHeader("set-cookie"));

  Reply missing = server().Request("POST", "/v1/auth/session", R"({"key":"x"})");
  EXPECT_EQ(missing.status, 400) << missing;
  EXPECT_EQ(missing.ErrorCode(), "VALIDATION_FAILED");
  EXPECT_EQ(server().Request("POST", "/v1/auth/session", "not json").status, 400);

  // Only keys sign in: a JWT (even a valid one) is not a key.
  std::string jwt = Call("POST", "/v1/auth/token", admin_, "{}").Str("/data/token");
  Reply with_jwt = server().Request("POST", "/v1/auth/session", R"({"apiKey":")" + jwt + "\"}");
  EXPECT_EQ(with_jwt.status, 401) << with_jwt;

  // From another site's page: refused, so no one is signed in to someone else's workspace.
  Reply foreign = server().Request("POST", "/v1/auth/session", R"({"apiKey":")" + admin_ + "\"}",
                                   {{"origin", "https://evil.example"}});
  EXPECT_EQ(foreign.status, 403) << foreign;
  EXPECT_EQ(foreign.ErrorCode(), "CSRF_CHECK_FAILED");

  Reply ok = server().Request("POST", "/v1/auth/session", R"({"apiKey":")" + admin_ + "\"}",
                              {{"origin", Origin()}});
  ASSERT_EQ(ok.status, 200) << ok;
  EXPECT_EQ(ok.Str("/data/workspace/slug"), "default");
  EXPECT_TRUE(ok.Str("/data/workspace/id").starts_with("ws_"));
  EXPECT_TRUE(ok.Has("/data/workspace/name"));
  EXPECT_TRUE(ok.Str("/data/key/id").starts_with("key_"));
  std::vector<std::string> scopes = Strings(ok.Array("/data/key/scopes"));
  EXPECT_NE(std::find(scopes.begin(), scopes.end(), "admin"), scopes.end()) << ok;
  EXPECT_FALSE(ok.Str("/data/expiresAt").empty());
  EXPECT_EQ(ok.body.find(admin_), std::string::npos) << "the key is never sent back";
  EXPECT_EQ(ok.Header("cache-control"), "no-store");
  std::string set = ok.Header("set-cookie");
  EXPECT_TRUE(set.starts_with("kiln_session=")) << set;
  EXPECT_NE(set.find("; HttpOnly"), std::string::npos) << set;
  EXPECT_NE(set.find("; SameSite=Strict"), std::string::npos) << set;
  EXPECT_NE(set.find("; Path=/"), std::string::npos) << set;
  EXPECT_NE(set.find("; Max-Age=43200"), std::string::npos) << set;  // 12 h
  EXPECT_EQ(set.find("Secure"), std::string::npos) << "plain HTTP: " << set;
  std::string cookie = set.substr(0, set.find(';'));

  Reply session = WithCookie("GET", "/v1/auth/session", cookie);
  ASSERT_EQ(session.status, 200) << session;
  EXPECT_EQ(session.Str("/data/workspace/slug"), "default");
  EXPECT_EQ(session.Str("/data/key/id"), ok.Str("/data/key/id"));
  EXPECT_FALSE(session.Str("/data/expiresAt").empty());

  Reply none = server().Request("GET", "/v1/auth/session");
  EXPECT_EQ(none.status, 401) << none;
  EXPECT_EQ(none.ErrorCode(), "UNAUTHENTICATED");

  // The routes are described in the OpenAPI document.
  Reply doc = server().Request("GET", "/v1/openapi.json");
  EXPECT_TRUE(doc.Has("/paths/~1v1~1auth~1session/post")) << doc.body.substr(0, 300);
  EXPECT_TRUE(doc.Has("/paths/~1v1~1auth~1session/delete"));
  EXPECT_EQ(doc.Str("/components/securitySchemes/session/in"), "cookie");
}

TEST_F(DashboardTest, CookieAuthenticatesTheApiWithCsrfCheck) {
  std::string cookie = SignIn(admin_);
  ASSERT_FALSE(cookie.empty());

  Reply list = WithCookie("GET", "/v1/apps", cookie);
  EXPECT_EQ(list.status, 200) << list;
  EXPECT_EQ(WithCookie("GET", "/v1/me", cookie).Str("/data/auth"), "jwt");

  // Changing something with the cookie alone: refused, and nothing is created.
  Reply bare = WithCookie("POST", "/v1/apps", cookie, R"({"name":"shop"})");
  EXPECT_EQ(bare.status, 403) << bare;
  EXPECT_EQ(bare.ErrorCode(), "CSRF_CHECK_FAILED");
  EXPECT_NE(bare.Str("/error/hint").find("X-Kiln-CSRF"), std::string::npos) << bare;
  Reply wrong_value =
      WithCookie("POST", "/v1/apps", cookie, R"({"name":"shop"})", {{"x-kiln-csrf", "0"}});
  EXPECT_EQ(wrong_value.status, 403) << wrong_value;
  Reply foreign = WithCookie("POST", "/v1/apps", cookie, R"({"name":"shop"})",
                             {{"x-kiln-csrf", "1"}, {"origin", "http://evil.localhost:8080"}});
  EXPECT_EQ(foreign.status, 403) << foreign;
  EXPECT_EQ(foreign.ErrorCode(), "CSRF_CHECK_FAILED");
  Reply other_port = WithCookie("POST", "/v1/apps", cookie, R"({"name":"shop"})",
                                {{"x-kiln-csrf", "1"}, {"origin", "http://127.0.0.1:1"}});
  EXPECT_EQ(other_port.status, 403) << other_port;
  EXPECT_EQ(Call("GET", "/v1/apps", admin_).Array("/data").size(), 0u) << "nothing was created";

  Reply created =
      WithCookie("POST", "/v1/apps", cookie, R"({"name":"shop"})", {{"x-kiln-csrf", "1"}});
  EXPECT_EQ(created.status, 201) << created;
  Reply same_origin = WithCookie("POST", "/v1/apps", cookie, R"({"name":"blog"})",
                                 {{"x-kiln-csrf", "1"}, {"origin", Origin()}});
  EXPECT_EQ(same_origin.status, 201) << same_origin;
  EXPECT_EQ(Call("GET", "/v1/apps", admin_).Array("/data").size(), 2u);

  // A bearer credential needs no CSRF header, whatever cookie comes along.
  Reply bearer =
      server().Request("POST", "/v1/apps", R"({"name":"api"})",
                       {{"authorization", "Bearer " + admin_}, {"cookie", "kiln_session=garbage"}});
  EXPECT_EQ(bearer.status, 201) << bearer;

  // Signing out clears the cookie, and ends its token: a copy of the cookie kept elsewhere
  // no longer signs anything in.
  Reply out = WithCookie("DELETE", "/v1/auth/session", cookie);
  EXPECT_EQ(out.status, 204) << out;
  std::string cleared = out.Header("set-cookie");
  EXPECT_TRUE(cleared.starts_with("kiln_session=;")) << cleared;
  EXPECT_NE(cleared.find("Max-Age=0"), std::string::npos) << cleared;
  Reply copied = WithCookie("GET", "/v1/apps", cookie);
  EXPECT_EQ(copied.status, 401) << copied;
  EXPECT_EQ(copied.ErrorCode(), "SESSION_INVALID") << copied;
  EXPECT_NE(copied.Str("/error/message").find("signed out"), std::string::npos) << copied;
  EXPECT_EQ(WithCookie("GET", "/v1/auth/session", cookie).status, 401);

  // Cookies that are not a session: 401, said as the session's so the page signs in again.
  for (const std::string& bad : {std::string("kiln_session=garbage"),
                                 std::string("kiln_session=a.b.c"), "kiln_session=" + admin_}) {
    Reply r = WithCookie("GET", "/v1/apps", bad);
    EXPECT_EQ(r.status, 401) << bad << " " << r;
    EXPECT_EQ(r.ErrorCode(), "SESSION_INVALID") << bad;
    Reply s = WithCookie("GET", "/v1/auth/session", bad);
    EXPECT_EQ(s.status, 401) << bad << " " << s;
    EXPECT_NE(s.Header("set-cookie").find("Max-Age=0"), std::string::npos) << s;
  }
}

TEST_F(DashboardTest, ExpiredOrRevokedSessionIsRefused) {
  // A session is a JWT: one with a 1 s lifetime stands in for a session that ran out.
  std::string jwt = Call("POST", "/v1/auth/token", admin_, R"({"expiresIn":1})").Str("/data/token");
  ASSERT_FALSE(jwt.empty());
  std::string cookie = "kiln_session=" + jwt;
  EXPECT_EQ(WithCookie("GET", "/v1/apps", cookie).status, 200);
  std::this_thread::sleep_for(2200ms);
  Reply r = WithCookie("GET", "/v1/apps", cookie);
  EXPECT_EQ(r.status, 401) << r;
  EXPECT_EQ(r.ErrorCode(), "SESSION_EXPIRED");
  Reply s = WithCookie("GET", "/v1/auth/session", cookie);
  EXPECT_EQ(s.status, 401) << s;
  EXPECT_EQ(s.ErrorCode(), "SESSION_EXPIRED");

  // Revoking the key ends the sessions signed in with it.
  json::object key = MintKey("laptop", R"(["read"])");
  std::string secret(key["secret"].as_string());
  std::string session = SignIn(secret);
  EXPECT_EQ(WithCookie("GET", "/v1/apps", session).status, 200);
  std::string id(key["id"].as_string());
  EXPECT_EQ(Call("DELETE", "/v1/keys/" + id + "?confirm=" + id, admin_).status, 200);
  Reply revoked = WithCookie("GET", "/v1/apps", session);
  EXPECT_EQ(revoked.status, 401) << revoked;
  EXPECT_EQ(revoked.ErrorCode(), "SESSION_INVALID");
}

// A server whose dashboard was never built says so on its pages; the API still works.
class DashboardNotBuiltTest : public DashboardTest {
 protected:
  void Fill() override {}
};

TEST_F(DashboardNotBuiltTest, SaysHowToBuild) {
  Reply r = server().Request("GET", "/");
  EXPECT_EQ(r.status, 503) << r;
  EXPECT_EQ(r.Header("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(r.body.find("make"), std::string::npos) << r;
  EXPECT_EQ(r.body.find(web_.string()), std::string::npos) << "no server paths in the page";
  ExpectSecurityHeaders(r);
  EXPECT_EQ(Call("GET", "/v1/me", admin_).status, 200);
  EXPECT_EQ(server().Request("GET", "/healthz").status, 200);
}

}  // namespace
}  // namespace kiln::testing
