// The gateway's pure parts: Host matching, header helpers, error pages, and a deterministic
// fuzz run over its parsers of client input. The proxy itself is tested end to end against
// real apps in tests/integration/gateway_*_test.cc.

#include "gateway/gateway.h"

#include <random>
#include <string>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "gateway/fuzz_checks.h"
#include "gateway/internal.h"

namespace kiln::gateway {
namespace {

using ::testing::HasSubstr;
using Kind = HostMatch::Kind;

TEST(MatchHostTest, AppsUnderTheBaseDomain) {
  for (const char* host :
       {"shop.localhost", "shop.localhost:8080", "SHOP.LocalHost.", "shop.localhost.:80"}) {
    HostMatch m = MatchHost(host, "localhost");
    EXPECT_EQ(m.kind, Kind::kApp) << host;
    EXPECT_EQ(m.label, "shop") << host;
    EXPECT_EQ(m.host, "shop.localhost") << host;
  }
  EXPECT_EQ(MatchHost("shop.apps.example.com", "apps.example.com").label, "shop");
  EXPECT_EQ(MatchHost(std::string(63, 'a') + ".localhost", "localhost").kind, Kind::kApp);
}

TEST(MatchHostTest, SandboxPorts) {
  HostMatch m = MatchHost("3000-sbx_0123456789abcdefghjk.localhost:8080", "localhost");
  EXPECT_EQ(m.kind, Kind::kSandbox);
  EXPECT_EQ(m.port, 3000);
  EXPECT_EQ(m.label, "sbx_0123456789abcdefghjk");
  // The DNS-clean spelling without the underscore names the same sandbox.
  HostMatch clean = MatchHost("8080-0123456789abcdefghjk.localhost", "localhost");
  EXPECT_EQ(clean.kind, Kind::kSandbox);
  EXPECT_EQ(clean.label, "sbx_0123456789abcdefghjk");
  // Port 0, a port over 65535 or an id of the wrong length or alphabet is an app label or
  // nothing.
  EXPECT_NE(MatchHost("0-sbx_0123456789abcdefghjk.localhost", "localhost").kind, Kind::kSandbox);
  EXPECT_NE(MatchHost("70000-0123456789abcdefghjk.localhost", "localhost").kind, Kind::kSandbox);
  EXPECT_NE(MatchHost("3000-0123456789abcdefghji.localhost", "localhost").kind, Kind::kSandbox);
}

TEST(MatchHostTest, CustomDomainsAndTheApi) {
  EXPECT_EQ(MatchHost("www.example.org", "localhost").kind, Kind::kCustom);
  EXPECT_EQ(MatchHost("WWW.Example.org.:443", "localhost").host, "www.example.org");
  for (const char* api : {"localhost", "localhost:8080", "127.0.0.1:8080", "[::1]:8080", "",
                          "a.b.localhost", "-x.localhost", "x_y.localhost", "bad host.localhost",
                          "shop.localhost:80x", "shop.localhost:", "example", "apps.example.com"}) {
    Kind kind = MatchHost(api, "apps.example.com").kind;
    if (std::string_view(api) == "a.b.localhost" || std::string_view(api) == "-x.localhost" ||
        std::string_view(api) == "x_y.localhost" || std::string_view(api) == "bad host.localhost") {
      continue;  // well-formed or not, under another base these are judged below
    }
    EXPECT_EQ(kind, Kind::kNone) << api;
  }
  for (const char* api :
       {"a.b.localhost", "-x.localhost", "x_y.localhost", "localhost", "shop.localhost:99999x"}) {
    EXPECT_EQ(MatchHost(api, "localhost").kind, Kind::kNone) << api;
  }
}

TEST(HeaderHelpersTest, KilnCookiesNeverReachApps) {
  EXPECT_EQ(internal::StripKilnCookies("a=1; kiln_session=x; b=2; KILN_access_app=y"), "a=1; b=2");
  EXPECT_EQ(internal::StripKilnCookies("kiln_session=x"), "");
  EXPECT_EQ(internal::StripKilnCookies(" theme=dark ;lang=en"), "theme=dark; lang=en");
}

TEST(HeaderHelpersTest, ShareTokenLeavesTheTarget) {
  EXPECT_EQ(internal::QueryToken("/p?a=1&kiln_token=abc%2Bd&b=2"), "abc+d");
  EXPECT_EQ(internal::QueryToken("/p?kiln_tokens=x"), "");
  EXPECT_EQ(internal::WithoutToken("/p?a=1&kiln_token=abc&b=2"), "/p?a=1&b=2");
  EXPECT_EQ(internal::WithoutToken("/?kiln_token=abc"), "/");
  EXPECT_EQ(internal::WithoutToken("/docs?kiln_tokens=1"), "/docs?kiln_tokens=1");
}

TEST(HeaderHelpersTest, ConnectionListsAndClientAddress) {
  EXPECT_TRUE(internal::ListHas("keep-alive, Upgrade", "upgrade"));
  EXPECT_FALSE(internal::ListHas("keep-alive, Upgraded", "upgrade"));
  EXPECT_TRUE(internal::IsHopByHop("Proxy-Authorization"));
  EXPECT_FALSE(internal::IsHopByHop("Authorization"));
  EXPECT_EQ(internal::ClientIp("203.0.113.7:5123"), "203.0.113.7");
  EXPECT_EQ(internal::ClientIp("[::1]:5123"), "::1");
}

TEST(ErrorPagesTest, JsonForClientsHtmlForBrowsersWithTheRequestId) {
  Status why = Status::NotFound("APP_NOT_FOUND", "no app named <x> is running", "deploy it");
  std::string json = internal::ErrorResponse(why, false, "req_1", true, "Date: x\r\n");
  EXPECT_THAT(json, ::testing::StartsWith("HTTP/1.1 404 Not Found\r\n"));
  EXPECT_THAT(json, HasSubstr("X-Request-Id: req_1\r\n"));
  EXPECT_THAT(json, HasSubstr("\"code\":\"APP_NOT_FOUND\""));
  EXPECT_THAT(json, ::testing::Not(HasSubstr("Connection: close")));
  std::string html = internal::ErrorResponse(why, true, "req_2", false, "");
  EXPECT_THAT(html, HasSubstr("text/html"));
  EXPECT_THAT(html, HasSubstr("&lt;x&gt;"));  // escaped, never markup from the request
  EXPECT_THAT(html, HasSubstr("Connection: close\r\n"));
  EXPECT_TRUE(internal::WantsHtml("text/html,application/xhtml+xml"));
  EXPECT_FALSE(internal::WantsHtml("application/json, text/html"));
  EXPECT_EQ(internal::HttpStatus(Status::Unavailable("UPSTREAM_TIMEOUT", "x")), 504);
  EXPECT_EQ(internal::HttpStatus(Status::Unavailable("UPSTREAM_FAILED", "x")), 502);
  EXPECT_EQ(internal::HttpStatus(Status::InvalidArgument("HEADERS_TOO_LARGE", "x")), 431);
}

// The same properties the libFuzzer target checks, over a seed corpus, its mutations and
// random strings; deterministic, so a failure reproduces.
TEST(FuzzTest, ParsersKeepTheirPropertiesOnArbitraryInput) {
  std::vector<std::string> seeds = {"shop.localhost:8080",
                                    "3000-sbx_0123456789abcdefghjk.localhost",
                                    "www.example.org.",
                                    "/p?a=1&kiln_token=x&kiln_token=y&&b",
                                    "a=1; kiln_session=x;;kiln_=; b",
                                    "[::1]:80",
                                    "x.apps.example.com",
                                    "keep-alive, Upgrade , te"};
  std::mt19937_64 rng(20261124);
  const std::string alphabet = "abcdefghjkz0123456789-_.:;=&?%/ []\r\n\tKILNkiln_token";
  int runs = 0;
  for (int i = 0; i < 200'000; ++i) {
    std::string input;
    if (i % 3 == 0) {
      size_t n = rng() % 80;
      for (size_t k = 0; k < n; ++k) {
        input += (i % 6 == 0) ? static_cast<char>(rng() % 256) : alphabet[rng() % alphabet.size()];
      }
    } else {
      input = seeds[rng() % seeds.size()];
      for (int edits = static_cast<int>(rng() % 4) + 1; edits > 0; --edits) {
        size_t at = input.empty() ? 0 : rng() % (input.size() + 1);
        switch (rng() % 3) {
          case 0:
            input.insert(at, 1, alphabet[rng() % alphabet.size()]);
            break;
          case 1:
            if (at < input.size()) {
              input.erase(at, 1);
            }
            break;
          default:
            if (at < input.size()) {
              input[at] = static_cast<char>(rng() % 256);
            }
        }
      }
    }
    fuzz::CheckOne(input);
    ++runs;
  }
  EXPECT_EQ(runs, 200'000);
}

}  // namespace
}  // namespace kiln::gateway
