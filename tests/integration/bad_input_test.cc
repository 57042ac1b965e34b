// What clients get wrong: bad JSON, wrong types, unknown fields, bad query values, bodies
// and headers over the limits, missing or garbage keys, and a client that stalls. Each is
// answered with the JSON error envelope, and the server keeps serving afterwards.
#include "integration/server_fixture.h"

namespace kiln::testing {
namespace {

class BadInputTest : public ServerTest {
 protected:
  std::string Config() override {
    return "[server]\n"
           "body_limit_bytes = 2048\n"
           "max_header_bytes = 4096\n"
           "header_timeout_ms = 500\n"
           // One I/O thread: a stalled client must not hold it.
           "threads = 1\n";
  }
  void TearDown() override {
    // Whatever came before, the server still answers.
    if (server_ && server_->running()) {
      Reply r = server_->Request("GET", "/healthz");
      EXPECT_EQ(r.status, 200) << "the server stopped answering: " << r;
    }
    ServerTest::TearDown();
  }
  void ExpectError(const Reply& r, int status, const std::string& code) {
    EXPECT_EQ(r.status, status) << r;
    EXPECT_EQ(r.ErrorCode(), code) << r;
    EXPECT_FALSE(r.Str("/error/message").empty()) << r;
    EXPECT_FALSE(r.Str("/error/requestId").empty()) << r;
    EXPECT_FALSE(r.Header("x-request-id").empty()) << "no X-Request-Id on " << r;
    EXPECT_TRUE(r.Header("content-type").starts_with("application/json")) << r;
    EXPECT_EQ(server().Request("GET", "/healthz").status, 200);
  }
};

TEST_F(BadInputTest, MalformedJson) {
  Reply r = Call("POST", "/v1/keys", admin_, R"({"name": "ci",)");
  ExpectError(r, 400, "INVALID_JSON");
  ExpectError(Call("POST", "/v1/keys", admin_, "not json at all"), 400, "INVALID_JSON");
  ExpectError(Call("POST", "/v1/keys", admin_, R"({"name":"a"} trailing)"), 400, "INVALID_JSON");
}

TEST_F(BadInputTest, FieldInQueryAndBodyIsRefused) {
  Reply r = Call("POST", "/v1/keys?name=fromquery", admin_, R"({"name":"frombody"})");
  ExpectError(r, 400, "DUPLICATE_FIELD");
  EXPECT_NE(r.Str("/error/message").find("name"), std::string::npos) << r;
  // Nothing was minted under either name.
  Reply keys = Call("GET", "/v1/keys", admin_);
  for (const auto& k : keys.Array("/data")) {
    EXPECT_NE(S(k.as_object(), "name"), "fromquery");
    EXPECT_NE(S(k.as_object(), "name"), "frombody");
  }
}

TEST_F(BadInputTest, ErrorsQuotingBadBytesAreStillJson) {
  // The 404 message quotes the decoded path; \xFF\xFE are not UTF-8.
  Reply r = Call("GET", "/v1/%FF%FE", admin_);
  ExpectError(r, 404, "ROUTE_NOT_FOUND");
  EXPECT_NE(r.Str("/error/message").find("\xEF\xBF\xBD"), std::string::npos) << r;
}

TEST_F(BadInputTest, BodyMustBeAnObject) {
  ExpectError(Call("POST", "/v1/keys", admin_, R"(["name", "ci"])"), 400, "BODY_NOT_OBJECT");
  ExpectError(Call("POST", "/v1/keys", admin_, R"("ci")"), 400, "BODY_NOT_OBJECT");
  ExpectError(Call("POST", "/v1/auth/token", admin_, "42"), 400, "BODY_NOT_OBJECT");
}

TEST_F(BadInputTest, WrongTypeNamesTheField) {
  Reply r = Call("POST", "/v1/keys", admin_, R"({"name": 5})");
  ExpectError(r, 400, "VALIDATION_FAILED");
  EXPECT_NE(r.Str("/error/message").find("name"), std::string::npos) << r;
  Reply scopes = Call("POST", "/v1/keys", admin_, R"({"name": "x", "scopes": "read"})");
  ExpectError(scopes, 400, "VALIDATION_FAILED");
  EXPECT_NE(scopes.Str("/error/message").find("scopes"), std::string::npos) << scopes;
  Reply ttl = Call("POST", "/v1/auth/token", admin_, R"({"expiresIn": "soon"})");
  ExpectError(ttl, 400, "VALIDATION_FAILED");
  EXPECT_NE(ttl.Str("/error/message").find("expiresIn"), std::string::npos) << ttl;
  // Nothing was created by the failed requests.
  EXPECT_EQ(ListAll("/v1/keys", admin_).size(), 1u);
}

TEST_F(BadInputTest, UnknownField) {
  Reply r = Call("POST", "/v1/keys", admin_, R"({"name": "ci", "colour": "red"})");
  ExpectError(r, 400, "UNKNOWN_FIELD");
  EXPECT_NE(r.Str("/error/message").find("colour"), std::string::npos) << r;
  EXPECT_NE(r.Str("/error/hint").find("name"), std::string::npos) << "hint lists known fields";
  ExpectError(Call("POST", "/v1/auth/token", admin_, R"({"ttl": 5})"), 400, "UNKNOWN_FIELD");
}

TEST_F(BadInputTest, BadQueryValues) {
  Reply r = Call("GET", "/v1/keys?limit=abc", admin_);
  ExpectError(r, 400, "VALIDATION_FAILED");
  EXPECT_NE(r.Str("/error/message").find("limit"), std::string::npos) << r;
  ExpectError(Call("GET", "/v1/keys?limit=5x", admin_), 400, "VALIDATION_FAILED");
  ExpectError(Call("GET", "/v1/events?limit=-1", admin_), 400, "VALIDATION_FAILED");
  ExpectError(Call("GET", "/v1/workspaces?limit=99999999999999999999", admin_), 400,
              "VALIDATION_FAILED");
  // Unknown query parameters are ignored.
  EXPECT_EQ(Call("GET", "/v1/keys?utm_source=x", admin_).status, 200);
}

TEST_F(BadInputTest, BodyOverTheLimitIs413) {
  std::string big = R"({"name": ")" + std::string(10 * 1024, 'a') + R"("})";
  Reply r = Call("POST", "/v1/keys", admin_, big);
  ExpectError(r, 413, "BODY_TOO_LARGE");
  // A chunked body has no Content-Length to refuse up front; it is cut off as it grows.
  RawClient chunked(server().port());
  ASSERT_TRUE(chunked.connected());
  std::string chunk(4096, 'a');
  std::string request = "POST /v1/keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + admin_ +
                        "\r\nTransfer-Encoding: chunked\r\n\r\n";
  for (int i = 0; i < 3; ++i) {
    request += "1000\r\n" + chunk + "\r\n";
  }
  request += "0\r\n\r\n";
  chunked.Send(request);
  auto reply = ParseRawResponse(chunked.Read(5s, nullptr, true));
  ASSERT_TRUE(reply.has_value());
  EXPECT_EQ(reply->status, 413) << *reply;
  EXPECT_EQ(reply->ErrorCode(), "BODY_TOO_LARGE") << *reply;
  // Just under the limit is read (and then refused by validation, not by the listener).
  std::string near = R"({"name": ")" + std::string(1900, 'a') + R"("})";
  Reply under = Call("POST", "/v1/keys", admin_, near);
  ExpectError(under, 400, "VALIDATION_FAILED");
}

TEST_F(BadInputTest, MissingKeyIs401WithWwwAuthenticate) {
  Reply r = server().Request("GET", "/v1/me");
  ExpectError(r, 401, "MISSING_API_KEY");
  EXPECT_TRUE(r.Header("www-authenticate").starts_with("Bearer")) << r.Header("www-authenticate");
  Reply empty_bearer = server().Request("GET", "/v1/keys", "", {{"authorization", "Bearer "}});
  EXPECT_EQ(empty_bearer.status, 401) << empty_bearer;
  Reply post = server().Request("POST", "/v1/keys", R"({"name":"x"})");
  ExpectError(post, 401, "MISSING_API_KEY");
}

TEST_F(BadInputTest, GarbageKeyIs401) {
  Reply r = Call("GET", "/v1/me", "kiln_sk_nope");
  ExpectError(r, 401, "INVALID_API_KEY");
  EXPECT_FALSE(r.Header("www-authenticate").empty());
  ExpectError(Call("GET", "/v1/me", "hunter2"), 401, "INVALID_API_KEY");
  // A real key with one character changed is as unknown as garbage.
  std::string altered = admin_;
  altered.back() = altered.back() == 'A' ? 'B' : 'A';
  ExpectError(Call("GET", "/v1/me", altered), 401, "INVALID_API_KEY");
  ExpectError(server().Request("GET", "/v1/me", "", {{"x-api-key", "kiln_sk_nope"}}), 401,
              "INVALID_API_KEY");
}

TEST_F(BadInputTest, SlowClientIsCutOffWhileOthersAreServed) {
  RawClient slow(server().port());
  ASSERT_TRUE(slow.connected());
  auto start = std::chrono::steady_clock::now();
  ASSERT_TRUE(slow.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n"));

  // Another client is served while the slow one stalls.
  Reply other = server().Request("GET", "/healthz");
  EXPECT_EQ(other.status, 200) << other;
  Reply other_auth = Call("GET", "/v1/me", admin_);
  EXPECT_EQ(other_auth.status, 200) << other_auth;

  bool closed = false;
  std::string got = slow.Read(3s, &closed);
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_TRUE(closed) << "the stalled connection was not closed; got: " << got;
  EXPECT_GE(elapsed, 400ms) << "cut off before header_timeout_ms";
  // It is told why before the connection closes.
  auto reply = ParseRawResponse(got);
  ASSERT_TRUE(reply.has_value()) << "no response before the close: " << got;
  EXPECT_EQ(reply->status, 408) << got;
  EXPECT_EQ(reply->ErrorCode(), "REQUEST_TIMEOUT") << got;
}

TEST_F(BadInputTest, SilentConnectionIsClosed) {
  RawClient idle(server().port());
  ASSERT_TRUE(idle.connected());
  bool closed = false;
  auto start = std::chrono::steady_clock::now();
  idle.Read(3s, &closed);
  EXPECT_TRUE(closed) << "a connection that never sends is held open";
  EXPECT_GE(std::chrono::steady_clock::now() - start, 400ms) << "closed before header_timeout_ms";
}

TEST_F(BadInputTest, OversizedHeaderIs431) {
  Reply r = Call("GET", "/v1/me", admin_, "", {{"x-padding", std::string(8 * 1024, 'p')}});
  ExpectError(r, 431, "HEADERS_TOO_LARGE");
  // A header under the limit is fine.
  Reply ok = Call("GET", "/v1/me", admin_, "", {{"x-padding", std::string(1024, 'p')}});
  EXPECT_EQ(ok.status, 200) << ok;
}

TEST_F(BadInputTest, MalformedRequestLineIs400) {
  RawClient c(server().port());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.Send("BLAH\x01 / HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string got = c.Read(3s, nullptr, true);
  auto reply = ParseRawResponse(got);
  ASSERT_TRUE(reply.has_value()) << got;
  EXPECT_EQ(reply->status, 400) << got;
  EXPECT_EQ(reply->ErrorCode(), "BAD_REQUEST") << got;
}

// Errors the listener detects itself (413, 431, 400, 408) wear the API's envelope, and like
// every response (DESIGN.md §5) carry X-Request-Id, the same id as the envelope's requestId.
TEST_F(BadInputTest, ListenerErrorsHaveARequestId) {
  std::vector<Reply> replies;
  replies.push_back(Call("POST", "/v1/keys", admin_, std::string(10 * 1024, ' ')));
  replies.push_back(Call("GET", "/v1/me", admin_, "", {{"x-padding", std::string(8192, 'p')}}));
  {
    RawClient c(server().port());
    c.Send("BLAH\x01 / HTTP/1.1\r\nHost: x\r\n\r\n");
    if (auto r = ParseRawResponse(c.Read(3s, nullptr, true))) {
      replies.push_back(*r);
    }
  }
  {
    RawClient c(server().port());
    c.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n");
    if (auto r = ParseRawResponse(c.Read(3s, nullptr, true))) {
      replies.push_back(*r);
    }
  }
  ASSERT_EQ(replies.size(), 4u);
  for (const Reply& r : replies) {
    EXPECT_FALSE(r.ErrorCode().empty()) << r;
    EXPECT_FALSE(r.Header("x-request-id").empty()) << "no X-Request-Id on " << r;
    EXPECT_EQ(r.Header("x-request-id"), r.Str("/error/requestId")) << r;
  }
}

}  // namespace
}  // namespace kiln::testing
