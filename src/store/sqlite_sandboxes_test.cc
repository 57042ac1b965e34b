#include <gtest/gtest.h>

#include <set>
#include <thread>

#include "store/store.h"
#include "store/test_util.h"

namespace kiln::store {
namespace {

using testing::MakeEvent;
using testing::MakeKey;
using testing::MakeWorkspace;
using testing::TempDir;

class SandboxStoreTest : public ::testing::Test {
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

  Sandbox Make(const std::string& ws, const std::string& id, int64_t memory_mb = 256) {
    Sandbox b;
    b.id = id;
    b.workspace_id = ws;
    b.template_name = "base";
    b.status = "running";
    b.metadata = R"({"owner":"ci"})";
    b.memory_mb = memory_mb;
    b.millicpus = 1000;
    b.pids = 512;
    b.network = "none";
    b.created_ms = 1000;
    b.expires_ms = 301000;
    return b;
  }

  Status Insert(const Sandbox& b, SandboxQuota quota = {}) {
    return store_->InsertSandbox(b, quota, MakeEvent(b.workspace_id, "evt_" + b.id));
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(SandboxStoreTest, InsertGetAndWorkspaceIsolation) {
  ASSERT_TRUE(Insert(Make("ws_1", "sbx_a")).ok());
  auto got = store_->GetSandbox("ws_1", "sbx_a");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_EQ(got->template_name, "base");
  EXPECT_EQ(got->metadata, R"({"owner":"ci"})");
  EXPECT_EQ(got->expires_ms, 301000);
  // Another workspace cannot see it: the same answer as for a sandbox that never existed.
  auto other = store_->GetSandbox("ws_2", "sbx_a");
  EXPECT_EQ(other.status().error_code(), "SANDBOX_NOT_FOUND");
  EXPECT_EQ(store_->GetSandbox("ws_2", "sbx_none").status().error_code(), "SANDBOX_NOT_FOUND");
  EXPECT_EQ(Insert(Make("ws_2", "sbx_a")).code(), Code::kConflict) << "ids are unique";
}

TEST_F(SandboxStoreTest, QuotaIsCheckedWithTheInsert) {
  SandboxQuota quota{2, 600};
  ASSERT_TRUE(Insert(Make("ws_1", "sbx_1", 256), quota).ok());
  Status over_memory = Insert(Make("ws_1", "sbx_2", 512), quota);
  EXPECT_EQ(over_memory.error_code(), "MEMORY_QUOTA_EXCEEDED") << over_memory.ToString();
  ASSERT_TRUE(Insert(Make("ws_1", "sbx_3", 256), quota).ok());
  Status over_count = Insert(Make("ws_1", "sbx_4", 1), quota);
  EXPECT_EQ(over_count.error_code(), "SANDBOX_LIMIT_REACHED") << over_count.ToString();
  // Other workspaces have their own.
  EXPECT_TRUE(Insert(Make("ws_2", "sbx_5", 256), quota).ok());
  // An ended sandbox no longer counts.
  Sandbox ended = *store_->GetSandbox("ws_1", "sbx_1");
  ended.status = "killed";
  ended.ended_ms = 5000;
  ASSERT_TRUE(store_->UpdateSandbox(ended, nullptr).ok());
  EXPECT_TRUE(Insert(Make("ws_1", "sbx_6", 256), quota).ok());
}

TEST_F(SandboxStoreTest, ConcurrentInsertsNeverPassTheQuota) {
  SandboxQuota quota{5, 0};
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 20; ++i) {
    threads.emplace_back([&, i] {
      if (Insert(Make("ws_1", "sbx_c" + std::to_string(i)), quota).ok()) {
        ++ok;
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(ok.load(), 5);
  EXPECT_EQ(store_->ListSandboxes("ws_1", "", {0, 100})->size(), 5u);
}

TEST_F(SandboxStoreTest, ListFiltersNewestFirstAndPages) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(Insert(Make("ws_1", "sbx_" + std::to_string(i))).ok());
  }
  ASSERT_TRUE(Insert(Make("ws_2", "sbx_other")).ok());
  Sandbox paused = *store_->GetSandbox("ws_1", "sbx_1");
  paused.status = "paused";
  ASSERT_TRUE(store_->UpdateSandbox(paused, nullptr).ok());
  Sandbox killed = *store_->GetSandbox("ws_1", "sbx_2");
  killed.status = "killed";
  killed.ended_ms = 9;
  killed.end_reason = "killed";
  ASSERT_TRUE(store_->UpdateSandbox(killed, nullptr).ok());

  auto live = store_->ListSandboxes("ws_1", "", {0, 100});
  ASSERT_TRUE(live.ok());
  std::vector<std::string> ids;
  for (const auto& b : *live) {
    ids.push_back(b.id);
  }
  EXPECT_EQ(ids, (std::vector<std::string>{"sbx_4", "sbx_3", "sbx_1", "sbx_0"}));
  EXPECT_EQ(store_->ListSandboxes("ws_1", "paused", {0, 100})->size(), 1u);
  EXPECT_EQ(store_->ListSandboxes("ws_1", "killed", {0, 100})->front().end_reason, "killed");
  EXPECT_EQ(store_->ListSandboxes("ws_1", "all", {0, 100})->size(), 5u);

  // Pages: two at a time, each continuing before the last seq seen.
  auto first = store_->ListSandboxes("ws_1", "all", {0, 2});
  ASSERT_EQ(first->size(), 2u);
  auto second = store_->ListSandboxes("ws_1", "all", {first->back().seq, 2});
  ASSERT_EQ(second->size(), 2u);
  EXPECT_EQ(second->front().id, "sbx_2");

  auto everywhere = store_->ListLiveSandboxes();
  ASSERT_TRUE(everywhere.ok());
  EXPECT_EQ(everywhere->size(), 5u);  // 4 in ws_1, 1 in ws_2
}

TEST_F(SandboxStoreTest, UpdateOfAMissingSandboxIsNotFound) {
  EXPECT_EQ(store_->UpdateSandbox(Make("ws_1", "sbx_x"), nullptr).error_code(),
            "SANDBOX_NOT_FOUND");
  ASSERT_TRUE(Insert(Make("ws_1", "sbx_y")).ok());
  // Not through another workspace either.
  EXPECT_EQ(store_->UpdateSandbox(Make("ws_2", "sbx_y"), nullptr).error_code(),
            "SANDBOX_NOT_FOUND");
}

TEST_F(SandboxStoreTest, TemplatesAreUniquePerWorkspace) {
  Template t;
  t.id = "tpl_1";
  t.workspace_id = "ws_1";
  t.name = "py";
  t.parent = "debian";
  t.steps = R"([{"run":"apt-get install -y python3"}])";
  t.status = "building";
  t.created_ms = 5;
  ASSERT_TRUE(store_->InsertTemplate(t, MakeEvent("ws_1", "evt_t1")).ok());
  Template dup = t;
  dup.id = "tpl_2";
  EXPECT_EQ(store_->InsertTemplate(dup, MakeEvent("ws_1", "evt_t2")).error_code(),
            "TEMPLATE_EXISTS");
  dup.workspace_id = "ws_2";
  EXPECT_TRUE(store_->InsertTemplate(dup, MakeEvent("ws_2", "evt_t3")).ok());

  t.status = "ready";
  t.built_ms = 77;
  ASSERT_TRUE(store_->UpdateTemplate(t).ok());
  auto got = store_->GetTemplate("ws_1", "py");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->status, "ready");
  EXPECT_EQ(got->built_ms, 77);
  EXPECT_EQ(store_->ListTemplates("ws_1")->size(), 1u);
  EXPECT_EQ(store_->ListAllTemplates()->size(), 2u);
  ASSERT_TRUE(store_->DeleteTemplate("ws_1", "py", MakeEvent("ws_1", "evt_t4")).ok());
  EXPECT_EQ(store_->GetTemplate("ws_1", "py").status().error_code(), "TEMPLATE_NOT_FOUND");
  EXPECT_TRUE(store_->GetTemplate("ws_2", "py").ok());
}

}  // namespace
}  // namespace kiln::store
