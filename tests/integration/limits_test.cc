// Rate limits per key (token bucket, X-RateLimit-* headers, 429 with Retry-After) and
// Idempotency-Key replay, including after a restart (DESIGN.md §5).
#include <set>

#include "integration/server_fixture.h"

namespace kiln::testing {
namespace {

class RateLimitTest : public ServerTest {
 protected:
  std::string Config() override { return "[limits]\nrate_per_second = 2\nrate_burst = 3\n"; }
};

int IntHeader(const Reply& r, std::string_view name) {
  std::string v = r.Header(name);
  return v.empty() ? -1 : std::atoi(v.c_str());
}

TEST_F(RateLimitTest, BucketEmptiesRefillsAndIsPerKey) {
  // Two keys minted first, each with its own full bucket (the admin's is now partly spent).
  std::string a = S(MintKey("a", R"(["read"])"), "secret");
  std::string b = S(MintKey("b", R"(["read"])"), "secret");
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());

  Reply first = Call("GET", "/v1/me", a);
  ASSERT_EQ(first.status, 200) << first;
  EXPECT_EQ(IntHeader(first, "x-ratelimit-limit"), 3);
  EXPECT_EQ(IntHeader(first, "x-ratelimit-remaining"), 2);
  EXPECT_GE(IntHeader(first, "x-ratelimit-reset"), 0);
  EXPECT_LE(IntHeader(first, "x-ratelimit-reset"), 2);
  Reply second = Call("GET", "/v1/keys", a);
  EXPECT_EQ(second.status, 200) << second;
  EXPECT_EQ(IntHeader(second, "x-ratelimit-remaining"), 1);
  Reply third = Call("GET", "/v1/me", a);
  EXPECT_EQ(third.status, 200) << third;
  EXPECT_EQ(IntHeader(third, "x-ratelimit-remaining"), 0);

  Reply fourth = Call("GET", "/v1/me", a);
  ASSERT_EQ(fourth.status, 429) << fourth;
  EXPECT_EQ(fourth.ErrorCode(), "RATE_LIMITED") << fourth;
  EXPECT_FALSE(fourth.Str("/error/hint").empty());
  int retry_after = IntHeader(fourth, "retry-after");
  EXPECT_GE(retry_after, 1) << fourth.Header("retry-after");
  EXPECT_LE(retry_after, 2);
  EXPECT_EQ(IntHeader(fourth, "x-ratelimit-limit"), 3);
  EXPECT_EQ(IntHeader(fourth, "x-ratelimit-remaining"), 0);
  EXPECT_GE(IntHeader(fourth, "x-ratelimit-reset"), 1);
  EXPECT_FALSE(fourth.Header("x-request-id").empty());
  // Every operation draws from the same bucket.
  Reply refused_post = Call("POST", "/v1/auth/token", a, "{}");
  EXPECT_EQ(refused_post.status, 429) << refused_post;

  // Another key is not affected; neither is the unauthenticated health check.
  Reply other = Call("GET", "/v1/me", b);
  EXPECT_EQ(other.status, 200) << other;
  EXPECT_EQ(IntHeader(other, "x-ratelimit-remaining"), 2);
  Reply health = server().Request("GET", "/healthz");
  EXPECT_EQ(health.status, 200);
  EXPECT_FALSE(health.HasHeader("x-ratelimit-limit")) << "health checks are not rate limited";

  // After Retry-After seconds the key is served again.
  std::this_thread::sleep_for(std::chrono::seconds(std::max(retry_after, 1)));
  Reply again = Call("GET", "/v1/me", a);
  EXPECT_EQ(again.status, 200) << again;
  // /v1/me reports the limits in force.
  EXPECT_EQ(again.Int("/data/limits/burst"), 3) << again;
  const json::value* rate = again.Find("/data/limits/requestsPerSecond");
  ASSERT_TRUE(rate != nullptr && rate->is_number()) << again;
  EXPECT_EQ(rate->to_number<double>(), 2.0);
}

TEST_F(RateLimitTest, FailedAuthenticationIsNotCountedAgainstTheKey) {
  std::string a = S(MintKey("a", R"(["read"])"), "secret");
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(Call("GET", "/v1/me", "kiln_sk_wrong").status, 401);
  }
  Reply r = Call("GET", "/v1/me", a);
  EXPECT_EQ(r.status, 200) << r;
  EXPECT_EQ(IntHeader(r, "x-ratelimit-remaining"), 2);
}

class IdempotencyTest : public ServerTest {};

TEST_F(IdempotencyTest, ReplaysTheFirstResponse) {
  const std::string body = R"({"name":"idem","scopes":["read"]})";
  Reply first = Call("POST", "/v1/keys", admin_, body, {{"idempotency-key", "K-1"}});
  ASSERT_EQ(first.status, 201) << first;
  EXPECT_FALSE(first.HasHeader("idempotent-replayed")) << "the first response is no replay";
  Reply second = Call("POST", "/v1/keys", admin_, body, {{"idempotency-key", "K-1"}});
  ASSERT_EQ(second.status, 201) << second;
  EXPECT_EQ(second.Header("idempotent-replayed"), "true");
  EXPECT_EQ(second.Str("/data/id"), first.Str("/data/id"));
  EXPECT_EQ(second.Str("/data/secret"), first.Str("/data/secret"));
  EXPECT_FALSE(second.Header("x-request-id").empty());

  int idem = 0;
  for (const auto& k : ListAll("/v1/keys", admin_)) {
    idem += S(k, "name") == "idem";
  }
  EXPECT_EQ(idem, 1) << "the replay created a second key";

  // Same key, different request.
  Reply reused =
      Call("POST", "/v1/keys", admin_, R"({"name":"other"})", {{"idempotency-key", "K-1"}});
  EXPECT_EQ(reused.status, 422) << reused;
  EXPECT_EQ(reused.ErrorCode(), "IDEMPOTENCY_KEY_REUSED") << reused;
  // A new Idempotency-Key is a new request.
  Reply fresh = Call("POST", "/v1/keys", admin_, body, {{"idempotency-key", "K-2"}});
  ASSERT_EQ(fresh.status, 201) << fresh;
  EXPECT_NE(fresh.Str("/data/id"), first.Str("/data/id"));
  // Without the header there is no replay.
  Reply plain1 = Call("POST", "/v1/keys", admin_, R"({"name":"plain"})");
  Reply plain2 = Call("POST", "/v1/keys", admin_, R"({"name":"plain"})");
  EXPECT_NE(plain1.Str("/data/id"), plain2.Str("/data/id"));
}

TEST_F(IdempotencyTest, DifferentQueryIsADifferentRequest) {
  // Query parameters are part of a POST's input (the API merges them with the body), so a
  // request that differs only in its query is a different request: never a replay of the
  // first one's answer.
  Reply first = Call("POST", "/v1/keys?name=first", admin_, "{}", {{"idempotency-key", "Q"}});
  ASSERT_EQ(first.status, 201) << first;
  EXPECT_EQ(first.Str("/data/name"), "first") << first;
  Reply second = Call("POST", "/v1/keys?name=second", admin_, "{}", {{"idempotency-key", "Q"}});
  EXPECT_EQ(second.status, 422)
      << "a request for key \"second\" was answered with the replay of key \"first\": " << second;
  EXPECT_EQ(second.ErrorCode(), "IDEMPOTENCY_KEY_REUSED") << second;
  // The same query again is the same request: replayed.
  Reply again = Call("POST", "/v1/keys?name=first", admin_, "{}", {{"idempotency-key", "Q"}});
  EXPECT_EQ(again.status, 201) << again;
  EXPECT_EQ(again.Str("/data/id"), first.Str("/data/id")) << again;
}

TEST_F(IdempotencyTest, KeysAreScopedToTheCallingApiKey) {
  json::object other_admin = MintKey("admin2", R"(["admin"])");
  const std::string body = R"({"name":"scoped"})";
  Reply mine = Call("POST", "/v1/keys", admin_, body, {{"idempotency-key", "shared"}});
  ASSERT_EQ(mine.status, 201) << mine;
  Reply theirs =
      Call("POST", "/v1/keys", S(other_admin, "secret"), body, {{"idempotency-key", "shared"}});
  ASSERT_EQ(theirs.status, 201) << theirs;
  EXPECT_FALSE(theirs.HasHeader("idempotent-replayed")) << "another key got my replay";
  EXPECT_NE(theirs.Str("/data/id"), mine.Str("/data/id"));
  EXPECT_NE(theirs.Str("/data/secret"), mine.Str("/data/secret"));
}

TEST_F(IdempotencyTest, ErrorsAreReplayedToo) {
  // A 4xx answer is the answer: replayed, not retried.
  Reply first = Call("POST", "/v1/workspaces", admin_, R"({"slug":"default"})",
                     {{"idempotency-key", "ws-1"}});
  EXPECT_EQ(first.status, 409) << first;
  Reply second = Call("POST", "/v1/workspaces", admin_, R"({"slug":"default"})",
                      {{"idempotency-key", "ws-1"}});
  EXPECT_EQ(second.status, 409) << second;
  EXPECT_EQ(second.ErrorCode(), "WORKSPACE_EXISTS");
  EXPECT_EQ(second.Header("idempotent-replayed"), "true");
  Reply too_long = Call("POST", "/v1/keys", admin_, R"({"name":"x"})",
                        {{"idempotency-key", std::string(300, 'k')}});
  EXPECT_EQ(too_long.status, 400) << too_long;
}

TEST_F(IdempotencyTest, ReplaySurvivesARestart) {
  const std::string body = R"({"name":"durable-idem"})";
  Reply first = Call("POST", "/v1/keys", admin_, body, {{"idempotency-key", "restart-K"}});
  ASSERT_EQ(first.status, 201) << first;
  ASSERT_TRUE(server().Restart());
  Reply replay = Call("POST", "/v1/keys", admin_, body, {{"idempotency-key", "restart-K"}});
  ASSERT_EQ(replay.status, 201) << replay;
  EXPECT_EQ(replay.Header("idempotent-replayed"), "true");
  EXPECT_EQ(replay.Str("/data/id"), first.Str("/data/id"));
  EXPECT_EQ(replay.Str("/data/secret"), first.Str("/data/secret"));
  int count = 0;
  for (const auto& k : ListAll("/v1/keys", admin_)) {
    count += S(k, "name") == "durable-idem";
  }
  EXPECT_EQ(count, 1);
  Reply reused =
      Call("POST", "/v1/keys", admin_, R"({"name":"x"})", {{"idempotency-key", "restart-K"}});
  EXPECT_EQ(reused.status, 422) << reused;
  // The stored response is sealed: the minted secret is not in the database in clear.
  std::string db = ReadFile(server().dir() / "kiln.db") + ReadFile(server().dir() / "kiln.db-wal");
  EXPECT_EQ(db.find(first.Str("/data/secret")), std::string::npos)
      << "a minted secret is stored in clear in kiln.db";
}

}  // namespace
}  // namespace kiln::testing
