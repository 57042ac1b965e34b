#include <gtest/gtest.h>

#include "service/domains.h"

namespace kiln::service {
namespace {

std::string Code(std::string_view text) {
  auto r = NormalizeDomain(text, "apps.example.net");
  return r.ok() ? "ok:" + *r : r.status().error_code();
}

TEST(NormalizeDomainTest, LowerCasesAndDropsOneTrailingDot) {
  EXPECT_EQ(Code("Shop.Example.COM."), "ok:shop.example.com");
  EXPECT_EQ(Code("xn--bcher-kva.example"), "ok:xn--bcher-kva.example");
  EXPECT_EQ(Code("a-b.c0.io"), "ok:a-b.c0.io");
  EXPECT_EQ(Code("shop.example.com.."), "DOMAIN_INVALID");
}

TEST(NormalizeDomainTest, RefusesWhatIsNotAHostName) {
  for (const char* bad :
       {"", ".", "nodot", "1.2.3.4", "10.0.0.1.", "::1", "[::1]", "*.example.com",
        "shop.example.com:443", "-a.example.com", "a-.example.com", "a..example.com",
        "under_score.example.com", "bücher.example", "sp ace.example.com", "a/b.example.com"}) {
    EXPECT_EQ(Code(bad), "DOMAIN_INVALID") << bad;
  }
  EXPECT_EQ(Code(std::string(64, 'a') + ".example.com"), "DOMAIN_INVALID");
  EXPECT_EQ(Code(std::string(63, 'a') + ".example.com"),
            "ok:" + std::string(63, 'a') + ".example.com");
  std::string long_name;
  for (int i = 0; i < 5; ++i) {
    long_name += std::string(60, 'a') + ".";
  }
  EXPECT_EQ(Code(long_name + "com"), "DOMAIN_INVALID");  // over 253 characters
}

TEST(NormalizeDomainTest, TheBaseDomainAndItsNamesAreReserved) {
  EXPECT_EQ(Code("apps.example.net"), "DOMAIN_RESERVED");
  EXPECT_EQ(Code("Shop.Apps.Example.Net."), "DOMAIN_RESERVED");
  EXPECT_EQ(Code("a.b.apps.example.net"), "DOMAIN_RESERVED");
  EXPECT_EQ(Code("notapps.example.net"), "ok:notapps.example.net");
  // The default base domain is a single label.
  EXPECT_EQ(NormalizeDomain("localhost", "localhost").status().error_code(), "DOMAIN_RESERVED");
  EXPECT_EQ(NormalizeDomain("x.localhost", "localhost").status().error_code(), "DOMAIN_RESERVED");
}

TEST(NormalizeDomainTest, ApexesHaveTwoLabels) {
  EXPECT_TRUE(IsApexDomain("example.com"));
  EXPECT_FALSE(IsApexDomain("www.example.com"));
}

}  // namespace
}  // namespace kiln::service
