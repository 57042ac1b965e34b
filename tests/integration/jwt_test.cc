// Short-lived JWTs from POST /v1/auth/token (shared/API.md "Auth and tenancy"): issue, use,
// expiry, revocation of the key behind them, tampering, no token-for-token exchange, limits.
#include "integration/server_fixture.h"

namespace kiln::testing {
namespace {

class JwtTest : public ServerTest {
 protected:
  std::string Config() override { return "[auth]\njwt_max_ttl_seconds = 7200\n"; }

  std::string Token(const std::string& key, const std::string& body = "{}") {
    Reply r = Call("POST", "/v1/auth/token", key, body);
    EXPECT_EQ(r.status, 200) << r;
    return r.Str("/data/token");
  }
};

std::vector<std::string> Split(const std::string& token) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (true) {
    size_t dot = token.find('.', start);
    parts.push_back(token.substr(start, dot - start));
    if (dot == std::string::npos) {
      break;
    }
    start = dot + 1;
  }
  return parts;
}

// Sleeps until just past the start of a wall-clock second, so a token with a one-second
// lifetime (JWT times are whole seconds) is used well within it.
void AlignToSecond() {
  auto now = std::chrono::system_clock::now().time_since_epoch();
  auto into = std::chrono::duration_cast<std::chrono::milliseconds>(now).count() % 1000;
  if (into > 50) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1000 - into + 20));
  }
}

TEST_F(JwtTest, IssueAndUse) {
  Reply r = Call("POST", "/v1/auth/token", admin_, "{}");
  ASSERT_EQ(r.status, 200) << r;
  std::string token = r.Str("/data/token");
  std::vector<std::string> parts = Split(token);
  ASSERT_EQ(parts.size(), 3u) << token;
  for (const auto& p : parts) {
    EXPECT_FALSE(p.empty()) << token;
  }
  EXPECT_GE(r.Int("/data/expiresIn"), 3599) << r;
  EXPECT_LE(r.Int("/data/expiresIn"), 3600) << r;
  EXPECT_EQ(r.Str("/data/tokenType"), "Bearer");
  EXPECT_FALSE(r.Str("/data/expiresAt").empty());
  EXPECT_EQ(r.body.find(admin_), std::string::npos) << "the key leaked into the token answer";
  std::string header = parts[0];
  auto decoded = crypto::Base64UrlDecode(header);
  ASSERT_TRUE(decoded.ok());
  EXPECT_NE(decoded->find("HS256"), std::string::npos) << *decoded;

  Reply me = Call("GET", "/v1/me", token);
  ASSERT_EQ(me.status, 200) << me;
  EXPECT_EQ(me.Str("/data/auth"), "jwt");
  EXPECT_EQ(me.Str("/data/workspace/slug"), "default");
  Reply key_me = Call("GET", "/v1/me", admin_);
  EXPECT_EQ(me.Str("/data/key/id"), key_me.Str("/data/key/id"));
  EXPECT_EQ(key_me.Str("/data/auth"), "key");
  ASSERT_NE(me.Find("/data/key/expiresAt"), nullptr) << me;
  EXPECT_FALSE(me.Find("/data/key/expiresAt")->is_null()) << "a token's expiry is shown";

  // A token from an admin key can do what the key can.
  Reply minted = Call("POST", "/v1/keys", token, R"({"name":"via-jwt","scopes":["read"]})");
  EXPECT_EQ(minted.status, 201) << minted;
  // Without a body too.
  Reply no_body = Call("POST", "/v1/auth/token", admin_);
  EXPECT_EQ(no_body.status, 200) << no_body;
  EXPECT_EQ(Split(no_body.Str("/data/token")).size(), 3u);
}

TEST_F(JwtTest, TokenHasTheKeysScopesOnly) {
  std::string reader = S(MintKey("reader", R"(["read"])"), "secret");
  std::string token = Token(reader);
  Reply me = Call("GET", "/v1/me", token);
  ASSERT_EQ(me.status, 200) << me;
  EXPECT_EQ(Strings(me.Array("/data/key/scopes")), std::vector<std::string>{"read"});
  EXPECT_EQ(Call("GET", "/v1/keys", token).status, 200);
  Reply mint = Call("POST", "/v1/keys", token, R"({"name":"x"})");
  EXPECT_EQ(mint.status, 403) << mint;
  EXPECT_EQ(mint.ErrorCode(), "MISSING_SCOPE") << mint;
}

TEST_F(JwtTest, ShortTokenExpires) {
  AlignToSecond();
  Reply r = Call("POST", "/v1/auth/token", admin_, R"({"expiresIn":1})");
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_EQ(r.Int("/data/expiresIn"), 1) << r;
  std::string token = r.Str("/data/token");
  Reply now = Call("GET", "/v1/me", token);
  EXPECT_EQ(now.status, 200) << "a fresh 1 s token was refused: " << now;
  std::this_thread::sleep_for(2200ms);
  Reply later = Call("GET", "/v1/me", token);
  EXPECT_EQ(later.status, 401) << later;
  EXPECT_EQ(later.ErrorCode(), "TOKEN_EXPIRED") << later;
  EXPECT_FALSE(later.Header("www-authenticate").empty());
}

// expiresIn is a lifetime: a 1 s token issued late in a wall-clock second still lives for
// about a second, not only until the second ends.
TEST_F(JwtTest, OneSecondTokenLivesAboutASecond) {
  AlignToSecond();
  std::this_thread::sleep_for(700ms);  // now ~0.7 s into a second
  Reply r = Call("POST", "/v1/auth/token", admin_, R"({"expiresIn":1})");
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_EQ(r.Int("/data/expiresIn"), 1) << r;
  std::this_thread::sleep_for(500ms);
  Reply me = Call("GET", "/v1/me", r.Str("/data/token"));
  EXPECT_EQ(me.status, 200) << "a 1 s token was dead 0.5 s after it was issued: " << me;
}

TEST_F(JwtTest, RevokingTheKeyEndsItsTokens) {
  json::object key = MintKey("short-lived", R"(["read","write"])");
  std::string id = S(key, "id");
  std::string token = Token(S(key, "secret"));
  ASSERT_EQ(Call("GET", "/v1/me", token).status, 200);
  ASSERT_EQ(Call("DELETE", "/v1/keys/" + id + "?confirm=" + id, admin_).status, 200);
  Reply r = Call("GET", "/v1/me", token);
  EXPECT_EQ(r.status, 401) << r;
  EXPECT_EQ(r.ErrorCode(), "KEY_REVOKED") << r;
}

TEST_F(JwtTest, TamperedTokenIsInvalid) {
  std::string token = Token(admin_);
  std::vector<std::string> parts = Split(token);
  ASSERT_EQ(parts.size(), 3u);

  // One character of the signature flipped (the first: every bit of it counts).
  std::string bad_sig = token;
  size_t sig_at = parts[0].size() + parts[1].size() + 2;
  bad_sig[sig_at] = bad_sig[sig_at] == 'A' ? 'B' : 'A';
  Reply r = Call("GET", "/v1/me", bad_sig);
  EXPECT_EQ(r.status, 401) << r;
  EXPECT_EQ(r.ErrorCode(), "TOKEN_INVALID") << r;

  // The claims changed, signature kept.
  auto payload = crypto::Base64UrlDecode(parts[1]);
  ASSERT_TRUE(payload.ok());
  std::string forged = *payload;
  size_t exp = forged.find("\"exp\":");
  ASSERT_NE(exp, std::string::npos) << forged;
  forged.insert(exp + 6, "9");
  std::string bad_claims = parts[0] + "." + crypto::Base64UrlEncode(forged) + "." + parts[2];
  Reply c = Call("GET", "/v1/me", bad_claims);
  EXPECT_EQ(c.status, 401) << c;
  EXPECT_EQ(c.ErrorCode(), "TOKEN_INVALID") << c;

  // alg "none" with no signature.
  std::string none =
      crypto::Base64UrlEncode(R"({"alg":"none","typ":"JWT"})") + "." + parts[1] + ".";
  Reply n = Call("GET", "/v1/me", none);
  EXPECT_EQ(n.status, 401) << n;
  EXPECT_EQ(n.ErrorCode(), "TOKEN_INVALID") << n;

  // Signed with some other key.
  std::string signing_input = parts[0] + "." + parts[1];
  std::string other = signing_input + "." +
                      crypto::Base64UrlEncode(crypto::HmacSha256("not the key", signing_input));
  Reply o = Call("GET", "/v1/me", other);
  EXPECT_EQ(o.status, 401) << o;
  EXPECT_EQ(o.ErrorCode(), "TOKEN_INVALID") << o;

  // The original still works.
  EXPECT_EQ(Call("GET", "/v1/me", token).status, 200);
}

TEST_F(JwtTest, TokenCannotBeExchangedForAToken) {
  std::string token = Token(admin_);
  Reply r = Call("POST", "/v1/auth/token", token, "{}");
  EXPECT_EQ(r.status, 403) << r;
  EXPECT_EQ(r.ErrorCode(), "JWT_NOT_EXCHANGEABLE") << r;
}

TEST_F(JwtTest, ExpiresInIsBounded) {
  Reply over = Call("POST", "/v1/auth/token", admin_, R"({"expiresIn":7201})");
  EXPECT_EQ(over.status, 400) << over;
  EXPECT_EQ(over.ErrorCode(), "VALIDATION_FAILED") << over;
  EXPECT_NE(over.Str("/error/message").find("expiresIn"), std::string::npos) << over;
  Reply zero = Call("POST", "/v1/auth/token", admin_, R"({"expiresIn":0})");
  EXPECT_EQ(zero.status, 400) << zero;
  Reply negative = Call("POST", "/v1/auth/token", admin_, R"({"expiresIn":-5})");
  EXPECT_EQ(negative.status, 400) << negative;
  Reply max = Call("POST", "/v1/auth/token", admin_, R"({"expiresIn":7200})");
  EXPECT_EQ(max.status, 200) << max;
  EXPECT_GE(max.Int("/data/expiresIn"), 7199);
  EXPECT_LE(max.Int("/data/expiresIn"), 7200);
  // The OpenAPI document states the same bound.
  Reply doc = server().Request("GET", "/v1/openapi.json");
  EXPECT_NE(doc.body.find("7200"), std::string::npos);
}

}  // namespace
}  // namespace kiln::testing
