#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "store/store.h"
#include "store/test_util.h"

namespace kiln::store {
namespace {

using testing::MakeEvent;
using testing::MakeKey;
using testing::MakeWorkspace;
using testing::TempDir;

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen() {
    store_.reset();  // close before opening again, as a restart would
    auto store = OpenSqliteStore(dir_.path() / "kiln.db");
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    store_ = std::move(store).value();
  }

  // Creates workspace `id` (slug = id) with a first key `id`_k0.
  void AddWorkspace(const std::string& id) {
    Status s = store_->CreateWorkspace(MakeWorkspace(id, id), MakeKey(id, id + "_k0"),
                                       MakeEvent(id, "evt_" + id, "workspace.created", id));
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  void AddKey(const std::string& ws, const std::string& id,
              std::vector<std::string> scopes = {"admin"}) {
    Status s = store_->InsertKey(MakeKey(ws, id, std::move(scopes)),
                                 MakeEvent(ws, "evt_" + id, "key.created", id));
    ASSERT_TRUE(s.ok()) << s.ToString();
  }

  std::vector<Event> AllEvents(const std::string& ws) {
    auto events = store_->ListEvents(ws, {0, 1000});
    EXPECT_TRUE(events.ok()) << events.status().ToString();
    return events.ok() ? *events : std::vector<Event>{};
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

// ---- Workspaces ----

TEST_F(SqliteStoreTest, CreateWorkspaceStoresWorkspaceKeyAndEvent) {
  Workspace ws = MakeWorkspace("ws_a", "acme");
  ws.root = true;
  ASSERT_TRUE(
      store_->CreateWorkspace(ws, MakeKey("ws_a", "key_a"), MakeEvent("ws_a", "evt_a")).ok());

  auto by_id = store_->GetWorkspace("ws_a");
  ASSERT_TRUE(by_id.ok()) << by_id.status().ToString();
  EXPECT_EQ(by_id->id, "ws_a");
  EXPECT_EQ(by_id->slug, "acme");
  EXPECT_EQ(by_id->name, "Workspace acme");
  EXPECT_TRUE(by_id->root);
  EXPECT_EQ(by_id->created_ms, ws.created_ms);
  EXPECT_GT(by_id->seq, 0);

  auto by_slug = store_->GetWorkspaceBySlug("acme");
  ASSERT_TRUE(by_slug.ok());
  EXPECT_EQ(by_slug->id, "ws_a");

  EXPECT_TRUE(store_->GetKey("ws_a", "key_a").ok());
  auto events = AllEvents("ws_a");
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].id, "evt_a");
  EXPECT_EQ(events[0].data, R"({"n":1})");

  auto count = store_->CountWorkspaces();
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 1);
}

TEST_F(SqliteStoreTest, MissingWorkspaceIsNotFoundNamingIt) {
  auto ws = store_->GetWorkspace("ws_nope");
  ASSERT_FALSE(ws.ok());
  EXPECT_EQ(ws.status().code(), Code::kNotFound);
  EXPECT_EQ(ws.status().error_code(), "WORKSPACE_NOT_FOUND");
  EXPECT_NE(ws.status().message().find("ws_nope"), std::string::npos);

  auto by_slug = store_->GetWorkspaceBySlug("nope");
  ASSERT_FALSE(by_slug.ok());
  EXPECT_EQ(by_slug.status().error_code(), "WORKSPACE_NOT_FOUND");
}

TEST_F(SqliteStoreTest, DuplicateSlugIsConflictAndLeavesNothingBehind) {
  AddWorkspace("acme");
  Status s = store_->CreateWorkspace(MakeWorkspace("ws_2", "acme"), MakeKey("ws_2", "key_2"),
                                     MakeEvent("ws_2", "evt_2"));
  EXPECT_EQ(s.code(), Code::kConflict) << s.ToString();
  EXPECT_EQ(s.error_code(), "ALREADY_EXISTS");
  EXPECT_NE(s.message().find("acme"), std::string::npos);

  EXPECT_EQ(store_->GetWorkspace("ws_2").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->FindKeyByHash("hash_of_key_2").status().code(), Code::kNotFound);
  EXPECT_TRUE(AllEvents("ws_2").empty());
}

TEST_F(SqliteStoreTest, CreateWorkspaceRollsBackWhenTheKeyCannotBeInserted) {
  AddWorkspace("ws_1");
  // The new workspace's first key reuses an existing key id: the key insert fails after the
  // workspace row went in, so the transaction must take the workspace back out.
  Status s = store_->CreateWorkspace(MakeWorkspace("ws_2", "two"), MakeKey("ws_2", "ws_1_k0"),
                                     MakeEvent("ws_2", "evt_2"));
  EXPECT_EQ(s.code(), Code::kConflict) << s.ToString();
  EXPECT_EQ(store_->GetWorkspace("ws_2").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->GetWorkspaceBySlug("two").status().code(), Code::kNotFound);
  EXPECT_TRUE(AllEvents("ws_2").empty());
  // And the store still works for the next write.
  AddWorkspace("ws_3");
}

TEST_F(SqliteStoreTest, ListWorkspacesPagesAscendingWithoutDuplicates) {
  std::set<std::string> created;
  for (int i = 0; i < 23; ++i) {
    std::string id = "ws_" + std::to_string(100 + i);
    AddWorkspace(id);
    created.insert(id);
  }
  std::set<std::string> seen;
  PageRequest page{0, 5};
  int64_t last_seq = 0;
  int pages = 0;
  for (;;) {
    auto rows = store_->ListWorkspaces(page);
    ASSERT_TRUE(rows.ok()) << rows.status().ToString();
    if (rows->empty()) {
      break;
    }
    ++pages;
    EXPECT_LE(rows->size(), 5u);
    for (const Workspace& ws : *rows) {
      EXPECT_GT(ws.seq, last_seq);
      last_seq = ws.seq;
      EXPECT_TRUE(seen.insert(ws.id).second) << "duplicate " << ws.id;
    }
    page.seq = rows->back().seq;
  }
  EXPECT_EQ(pages, 5);
  EXPECT_EQ(seen, created);
}

TEST_F(SqliteStoreTest, PageLimitBelowOneIsRejected) {
  EXPECT_EQ(store_->ListWorkspaces({0, 0}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->ListKeys("ws", {0, -1}).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->ListEvents("ws", {0, 0}).status().code(), Code::kInvalidArgument);
}

// ---- Keys ----

TEST_F(SqliteStoreTest, InsertedKeyIsFoundByHashWithEveryField) {
  AddWorkspace("ws_1");
  ApiKey key = MakeKey("ws_1", "key_x", {"apps:read", "apps:write", "admin"});
  key.expires_ms = 1'800'000'000'000;
  key.created_by = "ws_1_k0";
  key.last_used_ms = 5;
  ASSERT_TRUE(store_->InsertKey(key, MakeEvent("ws_1", "evt_x", "key.created", "key_x")).ok());

  auto found = store_->FindKeyByHash("hash_of_key_x");
  ASSERT_TRUE(found.ok()) << found.status().ToString();
  EXPECT_GT(found->seq, 0);
  EXPECT_EQ(found->id, "key_x");
  EXPECT_EQ(found->workspace_id, "ws_1");
  EXPECT_EQ(found->name, key.name);
  EXPECT_EQ(found->prefix, key.prefix);
  EXPECT_EQ(found->hash, "hash_of_key_x");
  EXPECT_EQ(found->scopes, key.scopes);
  EXPECT_EQ(found->created_ms, key.created_ms);
  EXPECT_EQ(found->last_used_ms, 5);
  EXPECT_EQ(found->expires_ms, key.expires_ms);
  EXPECT_EQ(found->revoked_ms, 0);
  EXPECT_EQ(found->created_by, "ws_1_k0");

  auto events = AllEvents("ws_1");
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].id, "evt_x");  // newest first
  EXPECT_EQ(events[0].subject, "key_x");
}

TEST_F(SqliteStoreTest, UnknownHashIsNotFound) {
  AddWorkspace("ws_1");
  auto found = store_->FindKeyByHash("no_such_hash");
  ASSERT_FALSE(found.ok());
  EXPECT_EQ(found.status().code(), Code::kNotFound);
  EXPECT_EQ(found.status().error_code(), "KEY_NOT_FOUND");
}

TEST_F(SqliteStoreTest, DuplicateKeyHashIsConflict) {
  AddWorkspace("ws_1");
  ApiKey key = MakeKey("ws_1", "key_other");
  key.hash = "hash_of_ws_1_k0";
  Status s = store_->InsertKey(key, MakeEvent("ws_1", "evt_other"));
  EXPECT_EQ(s.code(), Code::kConflict) << s.ToString();
  EXPECT_EQ(s.error_code(), "ALREADY_EXISTS");
}

TEST_F(SqliteStoreTest, InsertKeyIntoMissingWorkspaceIsNotFound) {
  Status s = store_->InsertKey(MakeKey("ws_ghost", "key_1"), MakeEvent("ws_ghost", "evt_1"));
  EXPECT_EQ(s.code(), Code::kNotFound) << s.ToString();
  EXPECT_EQ(s.error_code(), "WORKSPACE_NOT_FOUND");
  EXPECT_EQ(store_->FindKeyByHash("hash_of_key_1").status().code(), Code::kNotFound);
}

TEST_F(SqliteStoreTest, KeyAndEventCommitTogetherOrNotAtAll) {
  AddWorkspace("ws_1");
  // The event id is taken, so the event insert fails after the key went in.
  Status s = store_->InsertKey(MakeKey("ws_1", "key_new"), MakeEvent("ws_1", "evt_ws_1"));
  EXPECT_EQ(s.code(), Code::kConflict) << s.ToString();
  EXPECT_EQ(store_->FindKeyByHash("hash_of_key_new").status().code(), Code::kNotFound);
  EXPECT_EQ(store_->GetKey("ws_1", "key_new").status().code(), Code::kNotFound);
}

TEST_F(SqliteStoreTest, ScopeWithWhitespaceIsRejected) {
  AddWorkspace("ws_1");
  Status s = store_->InsertKey(MakeKey("ws_1", "key_1", {"apps read"}), MakeEvent("ws_1", "e"));
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  s = store_->InsertKey(MakeKey("ws_1", "key_1", {""}), MakeEvent("ws_1", "e"));
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->FindKeyByHash("hash_of_key_1").status().code(), Code::kNotFound);
}

TEST_F(SqliteStoreTest, GetKeyStaysInsideItsWorkspace) {
  AddWorkspace("ws_1");
  AddWorkspace("ws_2");
  AddKey("ws_2", "key_b");
  EXPECT_TRUE(store_->GetKey("ws_2", "key_b").ok());

  auto other = store_->GetKey("ws_1", "key_b");
  ASSERT_FALSE(other.ok());
  EXPECT_EQ(other.status().code(), Code::kNotFound);
  EXPECT_EQ(other.status().error_code(), "KEY_NOT_FOUND");
  EXPECT_NE(other.status().message().find("key_b"), std::string::npos);
}

TEST_F(SqliteStoreTest, RevokeKeyOnceThenNotFound) {
  AddWorkspace("ws_1");
  AddKey("ws_1", "key_r");
  Status s = store_->RevokeKey("ws_1", "key_r", 1'700'000'100'000,
                               MakeEvent("ws_1", "evt_rev", "key.revoked", "key_r"), "");
  ASSERT_TRUE(s.ok()) << s.ToString();

  auto key = store_->GetKey("ws_1", "key_r");
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(key->revoked_ms, 1'700'000'100'000);
  EXPECT_EQ(AllEvents("ws_1").front().type, "key.revoked");

  s = store_->RevokeKey("ws_1", "key_r", 1'700'000'200'000,
                        MakeEvent("ws_1", "evt_rev2", "key.revoked", "key_r"), "");
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_EQ(s.error_code(), "KEY_NOT_FOUND");
  // The first revocation time stands, and the failed attempt recorded no event.
  EXPECT_EQ(store_->GetKey("ws_1", "key_r")->revoked_ms, 1'700'000'100'000);
  for (const Event& e : AllEvents("ws_1")) {
    EXPECT_NE(e.id, "evt_rev2");
  }
}

TEST_F(SqliteStoreTest, RevokeFromAnotherWorkspaceIsNotFoundAndChangesNothing) {
  AddWorkspace("ws_1");
  AddWorkspace("ws_2");
  AddKey("ws_2", "key_b");
  Status s = store_->RevokeKey("ws_1", "key_b", 1'700'000'100'000, MakeEvent("ws_1", "evt_r"), "");
  EXPECT_EQ(s.code(), Code::kNotFound);
  EXPECT_EQ(store_->GetKey("ws_2", "key_b")->revoked_ms, 0);
  EXPECT_EQ(store_->RevokeKey("ws_2", "key_b", 0, MakeEvent("ws_2", "evt_r"), "").code(),
            Code::kInvalidArgument);
}

TEST_F(SqliteStoreTest, RevokedJwtsAreKeptUntilTheyWouldHaveExpired) {
  EXPECT_FALSE(*store_->IsJwtRevoked("jti_a"));
  ASSERT_TRUE(store_->RevokeJwt("jti_a", 5000, 1000).ok());
  ASSERT_TRUE(store_->RevokeJwt("jti_a", 5000, 1000).ok());  // twice: no error
  ASSERT_TRUE(store_->RevokeJwt("jti_b", 9000, 1000).ok());
  EXPECT_TRUE(*store_->IsJwtRevoked("jti_a"));
  EXPECT_TRUE(*store_->IsJwtRevoked("jti_b"));
  EXPECT_FALSE(*store_->IsJwtRevoked("jti_c"));
  // A later revocation drops the rows of tokens that expired meanwhile (they fail anyway).
  ASSERT_TRUE(store_->RevokeJwt("jti_c", 20000, 6000).ok());
  EXPECT_FALSE(*store_->IsJwtRevoked("jti_a"));
  EXPECT_TRUE(*store_->IsJwtRevoked("jti_b"));
  EXPECT_TRUE(*store_->IsJwtRevoked("jti_c"));
}

TEST_F(SqliteStoreTest, TouchKeyMovesLastUsedForwardOnly) {
  AddWorkspace("ws_1");
  ASSERT_TRUE(store_->TouchKey("ws_1_k0", 2000).ok());
  EXPECT_EQ(store_->GetKey("ws_1", "ws_1_k0")->last_used_ms, 2000);
  ASSERT_TRUE(store_->TouchKey("ws_1_k0", 1000).ok());  // a late, older touch
  EXPECT_EQ(store_->GetKey("ws_1", "ws_1_k0")->last_used_ms, 2000);
  EXPECT_EQ(store_->TouchKey("key_nope", 3000).code(), Code::kNotFound);
}

TEST_F(SqliteStoreTest, ListKeysIncludesRevokedAndPagesWithoutDuplicates) {
  AddWorkspace("ws_1");
  AddWorkspace("ws_2");
  std::set<std::string> expected = {"ws_1_k0"};
  for (int i = 0; i < 17; ++i) {
    std::string id = "key_" + std::to_string(i);
    AddKey("ws_1", id);
    expected.insert(id);
    AddKey("ws_2", "other_" + std::to_string(i));  // interleaved, must not show up
  }
  ASSERT_TRUE(store_->RevokeKey("ws_1", "key_3", 99, MakeEvent("ws_1", "evt_rev"), "").ok());

  std::set<std::string> seen;
  bool saw_revoked = false;
  PageRequest page{0, 4};
  int64_t last_seq = 0;
  for (;;) {
    auto rows = store_->ListKeys("ws_1", page);
    ASSERT_TRUE(rows.ok()) << rows.status().ToString();
    if (rows->empty()) {
      break;
    }
    EXPECT_LE(rows->size(), 4u);
    for (const ApiKey& key : *rows) {
      EXPECT_EQ(key.workspace_id, "ws_1");
      EXPECT_GT(key.seq, last_seq);
      last_seq = key.seq;
      EXPECT_TRUE(seen.insert(key.id).second) << "duplicate " << key.id;
      if (key.id == "key_3") {
        saw_revoked = key.revoked_ms == 99;
      }
    }
    page.seq = rows->back().seq;
  }
  EXPECT_EQ(seen, expected);
  EXPECT_TRUE(saw_revoked);
}

TEST_F(SqliteStoreTest, GuardedRevokeKeepsOneKeyWithTheScope) {
  AddWorkspace("ws_1");  // its first key, ws_1_k0, has scope "admin"
  AddWorkspace("ws_2");
  AddKey("ws_1", "k_near", {"admin:read", "deploy"});  // not "admin": whole tokens only
  AddKey("ws_2", "k_other", {"admin"});                // another workspace's does not count
  ApiKey expired = MakeKey("ws_1", "k_expired", {"admin"});
  expired.expires_ms = 1000;  // long gone at the revocation times below
  ASSERT_TRUE(store_->InsertKey(expired, MakeEvent("ws_1", "evt_exp")).ok());

  // ws_1_k0 is the last live admin key: refused, and nothing changed or was recorded.
  Status s = store_->RevokeKey("ws_1", "ws_1_k0", 5000, MakeEvent("ws_1", "evt_r1"), "admin");
  EXPECT_EQ(s.code(), Code::kConflict) << s.ToString();
  EXPECT_EQ(s.error_code(), "LAST_KEY_WITH_SCOPE");
  EXPECT_EQ(store_->GetKey("ws_1", "ws_1_k0")->revoked_ms, 0);
  for (const Event& e : AllEvents("ws_1")) {
    EXPECT_NE(e.id, "evt_r1");
  }

  // With a second admin key, one of the two may go, then the other is the last.
  AddKey("ws_1", "k_admin2", {"read", "admin"});
  ASSERT_TRUE(
      store_->RevokeKey("ws_1", "ws_1_k0", 6000, MakeEvent("ws_1", "evt_r2"), "admin").ok());
  EXPECT_EQ(
      store_->RevokeKey("ws_1", "k_admin2", 7000, MakeEvent("ws_1", "evt_r3"), "admin").code(),
      Code::kConflict);
  // Without a guard the same revocation goes through.
  EXPECT_TRUE(store_->RevokeKey("ws_1", "k_admin2", 8000, MakeEvent("ws_1", "evt_r4"), "").ok());
}

// ---- Events ----

TEST_F(SqliteStoreTest, ListEventsPagesNewestFirstWithoutDuplicates) {
  AddWorkspace("ws_1");
  AddWorkspace("ws_2");
  std::set<std::string> expected = {"evt_ws_1"};
  for (int i = 0; i < 21; ++i) {
    std::string id = "evt_" + std::to_string(i);
    ASSERT_TRUE(store_->AppendEvent(MakeEvent("ws_1", id, "app.created")).ok());
    expected.insert(id);
    ASSERT_TRUE(store_->AppendEvent(MakeEvent("ws_2", "x" + id, "app.created")).ok());
  }
  std::set<std::string> seen;
  std::vector<std::string> order;
  PageRequest page{0, 4};
  int64_t last_seq = INT64_MAX;
  for (;;) {
    auto rows = store_->ListEvents("ws_1", page);
    ASSERT_TRUE(rows.ok()) << rows.status().ToString();
    if (rows->empty()) {
      break;
    }
    EXPECT_LE(rows->size(), 4u);
    for (const Event& e : *rows) {
      EXPECT_EQ(e.workspace_id, "ws_1");
      EXPECT_LT(e.seq, last_seq);
      last_seq = e.seq;
      EXPECT_TRUE(seen.insert(e.id).second) << "duplicate " << e.id;
      order.push_back(e.id);
    }
    page.seq = rows->back().seq;
  }
  EXPECT_EQ(seen, expected);
  EXPECT_EQ(order.front(), "evt_20");
  EXPECT_EQ(order.back(), "evt_ws_1");
}

TEST_F(SqliteStoreTest, EmptyEventDataIsStoredAsEmptyObject) {
  AddWorkspace("ws_1");
  Event event = MakeEvent("ws_1", "evt_empty");
  event.data.clear();
  ASSERT_TRUE(store_->AppendEvent(event).ok());
  EXPECT_EQ(AllEvents("ws_1").front().data, "{}");
}

// ---- Durability ----

TEST_F(SqliteStoreTest, EverythingSurvivesCloseAndReopen) {
  AddWorkspace("ws_1");
  AddKey("ws_1", "key_p", {"apps", "deploy"});
  ASSERT_TRUE(store_->RevokeKey("ws_1", "ws_1_k0", 77, MakeEvent("ws_1", "evt_rev"), "").ok());
  ASSERT_TRUE(store_->TouchKey("key_p", 1234).ok());
  IdempotencyRecord record{"key_p", "idem-1", "rh", 201, "sealed", 500};
  ASSERT_TRUE(store_->PutIdempotency(record).ok());

  Reopen();

  EXPECT_TRUE(store_->GetWorkspace("ws_1").ok());
  auto key = store_->FindKeyByHash("hash_of_key_p");
  ASSERT_TRUE(key.ok());
  EXPECT_EQ(key->scopes, (std::vector<std::string>{"apps", "deploy"}));
  EXPECT_EQ(key->last_used_ms, 1234);
  EXPECT_EQ(store_->GetKey("ws_1", "ws_1_k0")->revoked_ms, 77);
  EXPECT_EQ(AllEvents("ws_1").size(), 3u);
  auto idem = store_->GetIdempotency("key_p", "idem-1");
  ASSERT_TRUE(idem.ok() && idem->has_value());
  EXPECT_EQ((*idem)->status, 201);
  EXPECT_TRUE(store_->CheckIntegrity().ok());
}

// ---- Idempotency ----

TEST_F(SqliteStoreTest, IdempotencyPutGetReplaceAndPurge) {
  auto missing = store_->GetIdempotency("key_1", "idem-a");
  ASSERT_TRUE(missing.ok());
  EXPECT_FALSE(missing->has_value());

  ASSERT_TRUE(store_->PutIdempotency({"key_1", "idem-a", "hash-a", 0, "", 100}).ok());
  ASSERT_TRUE(store_->PutIdempotency({"key_1", "idem-a", "hash-a", 201, "body-a", 100}).ok());
  ASSERT_TRUE(store_->PutIdempotency({"key_1", "idem-b", "hash-b", 200, "body-b", 200}).ok());
  ASSERT_TRUE(store_->PutIdempotency({"key_2", "idem-a", "hash-c", 409, "body-c", 300}).ok());

  auto got = store_->GetIdempotency("key_1", "idem-a");
  ASSERT_TRUE(got.ok() && got->has_value());
  EXPECT_EQ((*got)->key_id, "key_1");
  EXPECT_EQ((*got)->idem_key, "idem-a");
  EXPECT_EQ((*got)->request_hash, "hash-a");
  EXPECT_EQ((*got)->status, 201);  // replaced
  EXPECT_EQ((*got)->sealed_body, "body-a");
  EXPECT_EQ((*got)->created_ms, 100);
  // The same Idempotency-Key under another API key is a different record.
  EXPECT_EQ((*store_->GetIdempotency("key_2", "idem-a"))->status, 409);

  auto purged = store_->PurgeIdempotency(250);  // strictly older than 250
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(*purged, 2);
  EXPECT_FALSE(store_->GetIdempotency("key_1", "idem-a")->has_value());
  EXPECT_FALSE(store_->GetIdempotency("key_1", "idem-b")->has_value());
  EXPECT_TRUE(store_->GetIdempotency("key_2", "idem-a")->has_value());
  EXPECT_EQ(*store_->PurgeIdempotency(250), 0);
}

// ---- Concurrency ----

TEST_F(SqliteStoreTest, ConcurrentWritersAndReadersLoseNothing) {
  AddWorkspace("ws_c");
  constexpr int kWriters = 4;
  constexpr int kReaders = 4;
  constexpr int kKeysPerWriter = 200;
  auto key_id = [](int w, int i) { return "key_" + std::to_string(w) + "_" + std::to_string(i); };

  std::atomic<int> committed[kWriters] = {};
  std::atomic<int> writers_done{0};
  std::atomic<int> failures{0};
  std::atomic<int64_t> lookups{0};

  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      for (int i = 0; i < kKeysPerWriter; ++i) {
        std::string id = key_id(w, i);
        Status s = store_->InsertKey(MakeKey("ws_c", id), MakeEvent("ws_c", "evt_" + id));
        if (!s.ok()) {
          ADD_FAILURE() << s.ToString();
          ++failures;
        }
        committed[w].store(i + 1);
      }
      ++writers_done;
    });
  }
  for (int r = 0; r < kReaders; ++r) {
    threads.emplace_back([&, r] {
      unsigned n = static_cast<unsigned>(r);
      while (writers_done.load() < kWriters) {
        n = n * 1103515245u + 12345u;
        int w = static_cast<int>(n % kWriters);
        int upto = committed[w].load();
        if (upto == 0) {
          continue;
        }
        std::string id = key_id(w, static_cast<int>((n >> 8) % static_cast<unsigned>(upto)));
        // A committed write is visible to every read that starts after it.
        auto found = store_->FindKeyByHash("hash_of_" + id);
        if (!found.ok() || found->id != id) {
          ADD_FAILURE() << id << ": " << found.status().ToString();
          ++failures;
        }
        auto page = store_->ListKeys("ws_c", {0, 10});
        if (!page.ok() || page->empty()) {
          ++failures;
        }
        ++lookups;
      }
    });
  }
  for (std::thread& t : threads) {
    t.join();
  }

  EXPECT_EQ(failures.load(), 0);
  EXPECT_GT(lookups.load(), 0);
  auto all = store_->ListKeys("ws_c", {0, 10'000});
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 1u + kWriters * kKeysPerWriter);
  std::set<std::string> ids;
  for (const ApiKey& key : *all) {
    ids.insert(key.id);
  }
  for (int w = 0; w < kWriters; ++w) {
    for (int i = 0; i < kKeysPerWriter; ++i) {
      EXPECT_TRUE(ids.count(key_id(w, i))) << key_id(w, i);
    }
  }
  EXPECT_EQ(AllEvents("ws_c").size(), 1u + kWriters * kKeysPerWriter);
  Status integrity = store_->CheckIntegrity();
  EXPECT_TRUE(integrity.ok()) << integrity.ToString();
}

TEST_F(SqliteStoreTest, FreshStorePassesIntegrityCheck) {
  Status s = store_->CheckIntegrity();
  EXPECT_TRUE(s.ok()) << s.ToString();
}

}  // namespace
}  // namespace kiln::store
