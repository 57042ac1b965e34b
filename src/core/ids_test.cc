#include "core/ids.h"

#include <gtest/gtest.h>

#include <set>
#include <string>
#include <thread>
#include <vector>

namespace kiln {
namespace {

TEST(IdsTest, NewIdHasPrefixAndTwentyBase32Chars) {
  std::string id = NewId("key");
  ASSERT_EQ(id.size(), 4u + 20u) << id;
  EXPECT_TRUE(id.starts_with("key_")) << id;
  for (char c : id.substr(4)) {
    EXPECT_NE(std::string_view("0123456789abcdefghjkmnpqrstvwxyz").find(c), std::string::npos)
        << id;
  }
  EXPECT_TRUE(LooksLikeId(id, "key"));
}

TEST(IdsTest, NewIdsAreUniqueAndUseTheWholeAlphabet) {
  std::set<std::string> ids;
  std::set<char> chars;
  for (int i = 0; i < 1000; ++i) {
    std::string id = NewId("app");
    ids.insert(id);
    chars.insert(id.begin() + 4, id.end());
  }
  EXPECT_EQ(ids.size(), 1000u);
  EXPECT_EQ(chars.size(), 32u);
}

TEST(IdsTest, RequestIdsAreUniqueAcrossThreads) {
  std::vector<std::string> a, b;
  std::thread other([&] {
    for (int i = 0; i < 5000; ++i) {
      b.push_back(NewRequestId());
    }
  });
  for (int i = 0; i < 5000; ++i) {
    a.push_back(NewRequestId());
  }
  other.join();
  std::set<std::string> all(a.begin(), a.end());
  all.insert(b.begin(), b.end());
  EXPECT_EQ(all.size(), 10000u);  // each thread seeds its own generator
  std::set<char> chars;
  for (const auto& id : all) {
    ASSERT_TRUE(LooksLikeId(id, "req")) << id;
    ASSERT_EQ(id.size(), 24u) << id;
    chars.insert(id.begin() + 4, id.end());
  }
  EXPECT_EQ(chars.size(), 32u);
}

TEST(IdsTest, LooksLikeId) {
  EXPECT_TRUE(LooksLikeId("key_abc123", "key"));
  EXPECT_TRUE(LooksLikeId("key_" + std::string(64, 'a'), "key"));
  EXPECT_FALSE(LooksLikeId("key_" + std::string(65, 'a'), "key"));
  EXPECT_FALSE(LooksLikeId("key_", "key"));
  EXPECT_FALSE(LooksLikeId("key", "key"));
  EXPECT_FALSE(LooksLikeId("app_abc", "key"));
  EXPECT_FALSE(LooksLikeId("keyabc", "key"));
  EXPECT_FALSE(LooksLikeId("key_ABC", "key"));
  EXPECT_FALSE(LooksLikeId("key_ab-c", "key"));
  EXPECT_FALSE(LooksLikeId("key_../x", "key"));
  EXPECT_FALSE(LooksLikeId("keys_abc", "key"));
}

}  // namespace
}  // namespace kiln
