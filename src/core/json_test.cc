#include "core/json.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

TEST(JsonTest, ParseAndSerialize) {
  auto v = ParseJson(R"({"name":"ci","n":3})");
  ASSERT_TRUE(v.ok()) << v.status().ToString();
  EXPECT_EQ(GetString(v->as_object(), "name"), "ci");
  EXPECT_EQ(ToJson(*v), R"({"name":"ci","n":3})");
}

TEST(JsonTest, InvalidJsonIsInvalidArgument) {
  for (std::string_view bad : {"", "{", "{\"a\":}", "[1,]", "{} x"}) {
    auto v = ParseJson(bad);
    ASSERT_FALSE(v.ok()) << bad;
    EXPECT_EQ(v.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(v.status().error_code(), "INVALID_JSON");
    EXPECT_TRUE(v.status().message().starts_with("request body is not valid JSON: "))
        << v.status().message();
  }
  auto v = ParseJson("{\"a\": tru}");
  ASSERT_FALSE(v.ok());
  EXPECT_NE(v.status().message().find("at byte"), std::string::npos) << v.status().message();
}

TEST(JsonTest, TolerantReaders) {
  auto v = ParseJson(
      R"({"s":"x","i":-5,"u":18446744073709551615,"d":7.0,"f":7.5,"b":true,"big":1e300})");
  ASSERT_TRUE(v.ok());
  const json::object& o = v->as_object();
  EXPECT_EQ(GetString(o, "s"), "x");
  EXPECT_EQ(GetString(o, "i", "dflt"), "dflt");
  EXPECT_EQ(GetString(o, "missing", "dflt"), "dflt");
  EXPECT_EQ(GetInt(o, "i"), -5);
  EXPECT_EQ(GetInt(o, "d"), 7);
  EXPECT_EQ(GetInt(o, "f", 9), 9);
  EXPECT_EQ(GetInt(o, "u", 9), 9);
  EXPECT_EQ(GetInt(o, "big", 9), 9);
  EXPECT_EQ(GetInt(o, "s", 9), 9);
  EXPECT_TRUE(GetBool(o, "b"));
  EXPECT_TRUE(GetBool(o, "s", true));
  EXPECT_FALSE(GetBool(o, "missing"));
  EXPECT_EQ(FindString(o, "s"), "x");
  EXPECT_EQ(FindString(o, "i"), std::nullopt);
  EXPECT_EQ(FindString(o, "missing"), std::nullopt);

  json::object o2;
  o2["u"] = uint64_t{42};
  EXPECT_EQ(GetInt(o2, "u"), 42);
}

TEST(JsonTest, ValidUtf8KeepsGoodTextAndReplacesBadBytes) {
  EXPECT_EQ(ValidUtf8("plain /v1/keys"), "plain /v1/keys");
  EXPECT_EQ(ValidUtf8("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x94\xA5"),
            "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x94\xA5");
  const std::string kBad = "\xEF\xBF\xBD";
  EXPECT_EQ(ValidUtf8("/v1/\xFF\xFE"), "/v1/" + kBad + kBad);
  EXPECT_EQ(ValidUtf8("\xC0\xAF"), kBad + kBad);             // overlong '/'
  EXPECT_EQ(ValidUtf8("\xED\xA0\x80"), kBad + kBad + kBad);  // a UTF-16 surrogate
  EXPECT_EQ(ValidUtf8("ab\xE2\x82"), "ab" + kBad + kBad);    // cut short
  // Whatever goes in, the result serializes to JSON text that parses back.
  std::string text = json::serialize(json::value(ValidUtf8("x\x80\xF5\x90y")));
  EXPECT_TRUE(ParseJson(text).ok()) << text;
}

}  // namespace
}  // namespace kiln
