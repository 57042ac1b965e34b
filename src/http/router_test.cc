#include <gtest/gtest.h>

#include "http/http.h"

namespace kiln::http {
namespace {

Router MakeRouter() {
  Router router;
  router.Add("GET", "/v1/keys", 1);
  router.Add("POST", "/v1/keys", 2);
  router.Add("GET", "/v1/keys/{id}", 3);
  router.Add("DELETE", "/v1/keys/{id}", 4);
  router.Add("GET", "/v1/apps/{app}/deployments/{deployment}", 5);
  router.Add("GET", "/", 6);
  return router;
}

TEST(RouterTest, MatchesExactPathAndMethod) {
  Router router = MakeRouter();
  EXPECT_EQ(router.Find("GET", "/v1/keys").route, 1);
  EXPECT_EQ(router.Find("POST", "/v1/keys").route, 2);
  EXPECT_EQ(router.Find("GET", "/").route, 6);
  Router::Match m = router.Find("GET", "/v1/keys");
  EXPECT_FALSE(m.method_mismatch);
  EXPECT_TRUE(m.params.empty());
}

TEST(RouterTest, CapturesParameters) {
  Router router = MakeRouter();
  Router::Match m = router.Find("GET", "/v1/keys/key_123");
  EXPECT_EQ(m.route, 3);
  ASSERT_EQ(m.params.size(), 1u);
  EXPECT_EQ(m.params[0].first, "id");
  EXPECT_EQ(m.params[0].second, "key_123");

  m = router.Find("GET", "/v1/apps/shop/deployments/dep 1");
  EXPECT_EQ(m.route, 5);
  ASSERT_EQ(m.params.size(), 2u);
  EXPECT_EQ(m.params[0], (std::pair<std::string, std::string>("app", "shop")));
  EXPECT_EQ(m.params[1], (std::pair<std::string, std::string>("deployment", "dep 1")));
}

TEST(RouterTest, MethodMismatchListsAllowedMethods) {
  Router router = MakeRouter();
  Router::Match m = router.Find("PUT", "/v1/keys");
  EXPECT_EQ(m.route, -1);
  EXPECT_TRUE(m.method_mismatch);
  EXPECT_EQ(m.allow, "GET, POST");

  m = router.Find("PATCH", "/v1/keys/k1");
  EXPECT_EQ(m.route, -1);
  EXPECT_TRUE(m.method_mismatch);
  EXPECT_EQ(m.allow, "GET, DELETE");
}

TEST(RouterTest, NoMatch) {
  Router router = MakeRouter();
  Router::Match m = router.Find("GET", "/v1/nothing");
  EXPECT_EQ(m.route, -1);
  EXPECT_FALSE(m.method_mismatch);
  EXPECT_TRUE(m.allow.empty());
  EXPECT_EQ(router.Find("GET", "/v1/keys/a/b").route, -1);
  EXPECT_EQ(router.Find("GET", "/v1").route, -1);
  EXPECT_EQ(router.Find("GET", "").route, -1);
  EXPECT_EQ(router.Find("GET", "v1/keys").route, -1);
}

TEST(RouterTest, IsStrictAboutSlashesAndEmptyParameters) {
  Router router = MakeRouter();
  EXPECT_EQ(router.Find("GET", "/v1/keys/").route, -1);  // not /v1/keys, not {id}=""
  EXPECT_EQ(router.Find("GET", "/v1//keys").route, -1);
  EXPECT_EQ(router.Find("GET", "//").route, -1);
  EXPECT_EQ(router.Find("GET", "/v1/apps//deployments/d").route, -1);
  EXPECT_FALSE(router.Find("GET", "/v1/keys/").method_mismatch);
  // Methods are case-sensitive tokens.
  EXPECT_EQ(router.Find("get", "/v1/keys").route, -1);
}

TEST(RouterTest, FirstAddedRouteWins) {
  Router router;
  router.Add("GET", "/v1/keys/current", 1);
  router.Add("GET", "/v1/keys/{id}", 2);
  EXPECT_EQ(router.Find("GET", "/v1/keys/current").route, 1);
  EXPECT_EQ(router.Find("GET", "/v1/keys/other").route, 2);
}

}  // namespace
}  // namespace kiln::http
