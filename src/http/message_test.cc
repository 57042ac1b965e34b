#include <gtest/gtest.h>

#include "http/http.h"

namespace kiln::http {
namespace {

TEST(MessageTest, PercentDecode) {
  auto decoded = PercentDecode("a%20b%2Fc%C3%BC+d");
  ASSERT_TRUE(decoded.ok());
  EXPECT_EQ(*decoded, "a b/c\xC3\xBC+d");  // '+' is not a space outside query strings

  for (const char* bad : {"%", "%2", "%zz", "abc%G0", "%%"}) {
    auto result = PercentDecode(bad);
    ASSERT_FALSE(result.ok()) << bad;
    EXPECT_EQ(result.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(result.status().error_code(), "INVALID_ENCODING");
  }
}

TEST(MessageTest, PercentEncodeKeepsOnlyUnreserved) {
  EXPECT_EQ(PercentEncode("AZaz09-._~"), "AZaz09-._~");
  EXPECT_EQ(PercentEncode("a b/c?d=e&f+%"), "a%20b%2Fc%3Fd%3De%26f%2B%25");
  EXPECT_EQ(PercentEncode("\xC3\xBC"), "%C3%BC");
  auto round_trip = PercentDecode(PercentEncode("x y/\xFF"));
  ASSERT_TRUE(round_trip.ok());
  EXPECT_EQ(*round_trip, "x y/\xFF");
}

TEST(MessageTest, HeaderLookupIgnoresCase) {
  Request request;
  request.headers = {{"content-type", "application/json"}, {"x-a", "1"}, {"x-a", "2"}};
  EXPECT_EQ(request.Header("Content-Type"), "application/json");
  EXPECT_EQ(request.Header("x-a"), "1");
  EXPECT_EQ(request.Header("missing"), "");

  ClientResponse response;
  response.headers = {{"retry-after", "3"}};
  EXPECT_EQ(response.Header("Retry-After"), "3");
}

TEST(MessageTest, QueryReturnsFirstValue) {
  Request request;
  request.query = {{"limit", "2"}, {"limit", "3"}, {"empty", ""}};
  EXPECT_EQ(request.Query("limit"), "2");
  EXPECT_EQ(request.Query("empty"), "");
  EXPECT_EQ(request.Query("cursor"), std::nullopt);
}

TEST(MessageTest, SetReplacesHeaderOfSameName) {
  Response response;
  response.Set("Content-Type", "text/plain");
  response.Set("x-request-id", "r1");
  response.Set("content-type", "application/json");
  ASSERT_EQ(response.headers.size(), 2u);
  EXPECT_EQ(response.headers[0].second, "application/json");
  EXPECT_EQ(response.headers[1].second, "r1");
}

TEST(MessageTest, StatusReason) {
  EXPECT_EQ(StatusReason(200), "OK");
  EXPECT_EQ(StatusReason(404), "Not Found");
  EXPECT_EQ(StatusReason(413), "Content Too Large");
  EXPECT_EQ(StatusReason(431), "Request Header Fields Too Large");
  EXPECT_EQ(StatusReason(503), "Service Unavailable");
  EXPECT_FALSE(StatusReason(299).empty());
}

}  // namespace
}  // namespace kiln::http
