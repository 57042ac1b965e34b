#include <gtest/gtest.h>

#include "store/store.h"
#include "store/test_util.h"

namespace kiln::store {
namespace {

using testing::MakeEvent;
using testing::MakeKey;
using testing::MakeWorkspace;
using testing::TempDir;

class AccessTokenStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = OpenSqliteStore(dir_.path() / "kiln.db");
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    for (const char* ws : {"ws_1", "ws_2"}) {
      ASSERT_TRUE(store_
                      ->CreateWorkspace(MakeWorkspace(ws, ws), MakeKey(ws, std::string(ws) + "_k"),
                                        MakeEvent(ws, std::string("evt_") + ws))
                      .ok());
    }
  }

  static AccessToken Token(const std::string& ws, const std::string& id, const std::string& target,
                           const std::string& kind = "share-url") {
    AccessToken t;
    t.id = id;
    t.workspace_id = ws;
    t.target_id = target;
    t.kind = kind;
    t.name = "link " + id;
    t.prefix = "kiln_at_" + id.substr(4, 4);
    t.hash = "hash_of_" + id;
    t.created_ms = 1000;
    t.expires_ms = 5000;
    t.created_by = ws + "_k";
    return t;
  }

  // Event types of the workspace, newest first.
  std::vector<std::string> EventTypes(const std::string& ws) {
    auto events = store_->ListEvents(ws, {0, 100});
    EXPECT_TRUE(events.ok());
    std::vector<std::string> out;
    for (const Event& e : events.ok() ? *events : std::vector<Event>{}) {
      out.push_back(e.type);
    }
    return out;
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(AccessTokenStoreTest, InsertFindListRoundTripWithTheEvent) {
  AccessToken t = Token("ws_1", "tok_aaaa1", "app_1", "bearer");
  t.last_used_ms = 0;
  ASSERT_TRUE(
      store_->InsertAccessToken(t, MakeEvent("ws_1", "evt_t1", "access_token.created")).ok());

  auto found = store_->FindAccessToken("hash_of_tok_aaaa1");
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_GT(found->seq, 0);
  EXPECT_EQ(found->id, "tok_aaaa1");
  EXPECT_EQ(found->workspace_id, "ws_1");
  EXPECT_EQ(found->target_id, "app_1");
  EXPECT_EQ(found->kind, "bearer");
  EXPECT_EQ(found->name, "link tok_aaaa1");
  EXPECT_EQ(found->prefix, "kiln_at_aaaa");
  EXPECT_EQ(found->created_ms, 1000);
  EXPECT_EQ(found->expires_ms, 5000);
  EXPECT_EQ(found->revoked_ms, 0);
  EXPECT_EQ(found->created_by, "ws_1_k");
  EXPECT_EQ(EventTypes("ws_1").front(), "access_token.created");

  auto missing = store_->FindAccessToken("hash_of_nothing");
  EXPECT_EQ(missing.status().error_code(), "TOKEN_NOT_FOUND");
  // The hash fingerprints a credential: it never appears in a message.
  EXPECT_EQ(missing.status().message().find("hash_of_nothing"), std::string::npos);
}

TEST_F(AccessTokenStoreTest, ListIsPerTargetAndWorkspaceNewestFirst) {
  ASSERT_TRUE(
      store_->InsertAccessToken(Token("ws_1", "tok_a0001", "app_1"), MakeEvent("ws_1", "e1")).ok());
  ASSERT_TRUE(
      store_->InsertAccessToken(Token("ws_1", "tok_a0002", "app_1"), MakeEvent("ws_1", "e2")).ok());
  ASSERT_TRUE(
      store_->InsertAccessToken(Token("ws_1", "tok_a0003", "sbx_1"), MakeEvent("ws_1", "e3")).ok());
  auto list = store_->ListAccessTokens("ws_1", "app_1");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].id, "tok_a0002");
  EXPECT_EQ((*list)[1].id, "tok_a0001");
  // Another workspace naming the same target sees none of them.
  auto other = store_->ListAccessTokens("ws_2", "app_1");
  ASSERT_TRUE(other.ok());
  EXPECT_TRUE(other->empty());
}

TEST_F(AccessTokenStoreTest, DuplicateHashIsAConflictAndRecordsNothing) {
  ASSERT_TRUE(
      store_->InsertAccessToken(Token("ws_1", "tok_b0001", "app_1"), MakeEvent("ws_1", "e1")).ok());
  AccessToken dup = Token("ws_1", "tok_b0002", "app_1");
  dup.hash = "hash_of_tok_b0001";
  Status s = store_->InsertAccessToken(dup, MakeEvent("ws_1", "e2", "access_token.created"));
  EXPECT_TRUE(s.Is(Code::kConflict)) << s.ToString();
  // The event was in the same transaction: it rolled back too.
  EXPECT_EQ(EventTypes("ws_1").size(), 2u);
}

TEST_F(AccessTokenStoreTest, BadRowsAreRefused) {
  AccessToken kind = Token("ws_1", "tok_c0001", "app_1", "cookie");
  EXPECT_EQ(store_->InsertAccessToken(kind, MakeEvent("ws_1", "e1")).error_code(),
            "INVALID_ARGUMENT");
  AccessToken forever = Token("ws_1", "tok_c0002", "app_1");
  forever.expires_ms = 0;
  EXPECT_EQ(store_->InsertAccessToken(forever, MakeEvent("ws_1", "e2")).error_code(),
            "INVALID_ARGUMENT");
}

TEST_F(AccessTokenStoreTest, RevokeIsScopedToTargetAndWorkspaceAndRecordedOnce) {
  ASSERT_TRUE(
      store_->InsertAccessToken(Token("ws_1", "tok_d0001", "app_1"), MakeEvent("ws_1", "e1")).ok());
  // Another workspace, or another target, cannot revoke it.
  EXPECT_EQ(store_->RevokeAccessToken("ws_2", "app_1", "tok_d0001", 2000, MakeEvent("ws_2", "r1"))
                .error_code(),
            "TOKEN_NOT_FOUND");
  EXPECT_EQ(store_->RevokeAccessToken("ws_1", "app_2", "tok_d0001", 2000, MakeEvent("ws_1", "r2"))
                .error_code(),
            "TOKEN_NOT_FOUND");
  EXPECT_EQ(store_->RevokeAccessToken("ws_1", "app_1", "tok_nope", 2000, MakeEvent("ws_1", "r3"))
                .error_code(),
            "TOKEN_NOT_FOUND");
  EXPECT_EQ(store_->FindAccessToken("hash_of_tok_d0001")->revoked_ms, 0);

  ASSERT_TRUE(store_
                  ->RevokeAccessToken("ws_1", "app_1", "tok_d0001", 2000,
                                      MakeEvent("ws_1", "r4", "access_token.revoked"))
                  .ok());
  // Still found (so the gateway can say it was revoked), with the time.
  EXPECT_EQ(store_->FindAccessToken("hash_of_tok_d0001")->revoked_ms, 2000);
  EXPECT_EQ(EventTypes("ws_1").front(), "access_token.revoked");

  // Again: OK, the first revocation stands and no second event is written.
  ASSERT_TRUE(
      store_->RevokeAccessToken("ws_1", "app_1", "tok_d0001", 3000, MakeEvent("ws_1", "r5")).ok());
  EXPECT_EQ(store_->FindAccessToken("hash_of_tok_d0001")->revoked_ms, 2000);
  EXPECT_EQ(EventTypes("ws_1").size(), 3u);

  EXPECT_EQ(store_->RevokeAccessToken("ws_1", "app_1", "tok_d0001", 0, MakeEvent("ws_1", "r6"))
                .error_code(),
            "INVALID_ARGUMENT");
}

TEST_F(AccessTokenStoreTest, TouchNeverGoesBack) {
  ASSERT_TRUE(
      store_->InsertAccessToken(Token("ws_1", "tok_e0001", "app_1"), MakeEvent("ws_1", "e1")).ok());
  ASSERT_TRUE(store_->TouchAccessToken("tok_e0001", 4000).ok());
  EXPECT_EQ(store_->FindAccessToken("hash_of_tok_e0001")->last_used_ms, 4000);
  ASSERT_TRUE(store_->TouchAccessToken("tok_e0001", 3000).ok());
  EXPECT_EQ(store_->FindAccessToken("hash_of_tok_e0001")->last_used_ms, 4000);
  EXPECT_EQ(store_->TouchAccessToken("tok_nope", 1).error_code(), "TOKEN_NOT_FOUND");
}

TEST_F(AccessTokenStoreTest, DeletingTheAppDeletesItsTokens) {
  App app;
  app.id = "app_del";
  app.workspace_id = "ws_1";
  app.name = "del";
  app.created_ms = app.updated_ms = 1;
  ASSERT_TRUE(store_->InsertApp(app, 0, MakeEvent("ws_1", "a1")).ok());
  ASSERT_TRUE(
      store_->InsertAccessToken(Token("ws_1", "tok_f0001", "app_del"), MakeEvent("ws_1", "e1"))
          .ok());
  ASSERT_TRUE(store_->DeleteApp("ws_1", "app_del", MakeEvent("ws_1", "a2")).ok());
  EXPECT_EQ(store_->FindAccessToken("hash_of_tok_f0001").status().error_code(), "TOKEN_NOT_FOUND");
}

}  // namespace
}  // namespace kiln::store
