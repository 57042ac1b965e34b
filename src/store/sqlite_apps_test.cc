#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "store/sqlite_db.h"
#include "store/store.h"
#include "store/test_util.h"

namespace kiln::store {
namespace {

using testing::MakeEvent;
using testing::MakeKey;
using testing::MakeWorkspace;
using testing::TempDir;

class AppStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto s = OpenSqliteStore(path());
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    store_ = std::move(*s);
    for (const char* ws : {"ws_1", "ws_2"}) {
      ASSERT_TRUE(store_
                      ->CreateWorkspace(MakeWorkspace(ws, ws), MakeKey(ws, std::string(ws) + "_k"),
                                        MakeEvent(ws, std::string("evt_") + ws))
                      .ok());
    }
  }

  std::filesystem::path path() const { return dir_.path() / "kiln.db"; }

  static App MakeApp(const std::string& ws, const std::string& id, const std::string& name) {
    App a;
    a.id = id;
    a.workspace_id = ws;
    a.name = name;
    a.port = 8080;
    a.memory_mb = 512;
    a.millicpus = 500;
    a.access_policy = "workspace";
    a.sleep_after_minutes = 15;
    a.data_quota_mb = 2048;
    a.created_ms = 1000;
    a.updated_ms = 1000;
    a.created_by = ws + "_k";
    return a;
  }

  static Deployment MakeDeployment(const App& app, const std::string& id,
                                   const std::string& status = "queued") {
    Deployment d;
    d.id = id;
    d.workspace_id = app.workspace_id;
    d.app_id = app.id;
    d.status = status;
    d.source = R"({"type":"upload"})";
    d.config = R"({"start":"node server.js"})";
    d.created_ms = 2000;
    d.created_by = app.created_by;
    return d;
  }

  static Release MakeRelease(const App& app, const std::string& id, const std::string& dep_id) {
    Release r;
    r.id = id;
    r.workspace_id = app.workspace_id;
    r.app_id = app.id;
    r.deployment_id = dep_id;
    r.plan = R"({"runtime":"node","port":8080})";
    r.size_bytes = 4096;
    r.created_ms = 3000;
    return r;
  }

  static EnvVar Var(const std::string& key, const std::string& value, bool secret = false,
                    bool build = false) {
    return EnvVar{key, "sealed:" + value, secret, build, 4000};
  }

  Status Insert(const App& a, int64_t max_apps = 0) {
    return store_->InsertApp(a, max_apps, MakeEvent(a.workspace_id, "evt_" + a.id, "app.created"));
  }
  Status Insert(const Deployment& d) {
    return store_->InsertDeployment(d, MakeEvent(d.workspace_id, "evt_" + d.id, "deploy.created"));
  }

  // Whether `workspace_id`'s activity holds event `id`.
  bool HasEvent(const std::string& workspace_id, const std::string& id) {
    auto events = store_->ListEvents(workspace_id, {0, 1000});
    EXPECT_TRUE(events.ok()) << events.status().ToString();
    for (const Event& e : *events) {
      if (e.id == id) {
        return true;
      }
    }
    return false;
  }

  std::string StatusOf(const std::string& workspace_id, const std::string& dep_id) {
    auto d = store_->GetDeployment(workspace_id, dep_id);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? d->status : "";
  }

  // An app of ws_1 with one live deployment, its release and two env vars.
  App InsertDeployedApp(const std::string& id, const std::string& name) {
    App a = MakeApp("ws_1", id, name);
    EXPECT_TRUE(Insert(a).ok());
    Deployment d = MakeDeployment(a, "dep_" + name);
    EXPECT_TRUE(Insert(d).ok());
    EXPECT_TRUE(store_->InsertRelease(MakeRelease(a, "rel_" + name, d.id)).ok());
    d.status = "live";
    d.release_id = "rel_" + name;
    d.finished_ms = 2500;
    EXPECT_TRUE(store_->UpdateDeployment(d, nullptr, nullptr).ok());
    EXPECT_TRUE(store_
                    ->SetEnv(a.id, {Var("A", "1"), Var("B", "2", true)},
                             MakeEvent("ws_1", "evt_env_" + name, "app.env.set"))
                    .ok());
    return a;
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

std::vector<std::string> Ids(const auto& rows) {
  std::vector<std::string> ids;
  for (const auto& row : rows) {
    ids.push_back(row.id);
  }
  return ids;
}

// ---- Apps ----

TEST_F(AppStoreTest, InsertThenGetByIdOrNameReturnsEveryField) {
  ASSERT_TRUE(Insert(MakeApp("ws_1", "app_1", "hello")).ok());
  EXPECT_TRUE(HasEvent("ws_1", "evt_app_1"));
  for (const char* ref : {"app_1", "hello"}) {
    auto got = store_->GetApp("ws_1", ref);
    ASSERT_TRUE(got.ok()) << ref << ": " << got.status().ToString();
    EXPECT_GT(got->seq, 0);
    EXPECT_EQ(got->id, "app_1");
    EXPECT_EQ(got->workspace_id, "ws_1");
    EXPECT_EQ(got->name, "hello");
    EXPECT_EQ(got->port, 8080);
    EXPECT_EQ(got->memory_mb, 512);
    EXPECT_EQ(got->millicpus, 500);
    EXPECT_EQ(got->access_policy, "workspace");
    EXPECT_EQ(got->sleep_after_minutes, 15);
    EXPECT_EQ(got->data_quota_mb, 2048);
    EXPECT_EQ(got->status, "created");
    EXPECT_EQ(got->release_id, "");
    EXPECT_EQ(got->instance_id, "");
    EXPECT_EQ(got->restarts, 0);
    EXPECT_EQ(got->created_ms, 1000);
    EXPECT_EQ(got->updated_ms, 1000);
    EXPECT_EQ(got->created_by, "ws_1_k");
  }
  auto missing = store_->GetApp("ws_1", "nope");
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_EQ(missing.status().error_code(), "APP_NOT_FOUND");
  EXPECT_NE(missing.status().message().find("nope"), std::string::npos);
}

TEST_F(AppStoreTest, AnotherWorkspacesAppIsNotFound) {
  ASSERT_TRUE(Insert(MakeApp("ws_1", "app_1", "hello")).ok());
  // The same answer as for an app that never existed, by id and by name.
  EXPECT_EQ(store_->GetApp("ws_2", "app_1").status().error_code(), "APP_NOT_FOUND");
  EXPECT_EQ(store_->GetApp("ws_2", "hello").status().error_code(), "APP_NOT_FOUND");
  EXPECT_TRUE(store_->ListApps("ws_2", {0, 100})->empty());
  App hijack = MakeApp("ws_2", "app_1", "hello");
  hijack.status = "stopped";
  EXPECT_EQ(store_->UpdateApp(hijack, nullptr).error_code(), "APP_NOT_FOUND");
  EXPECT_EQ(store_->DeleteApp("ws_2", "app_1", MakeEvent("ws_2", "evt_del")).error_code(),
            "APP_NOT_FOUND");
  EXPECT_FALSE(HasEvent("ws_2", "evt_del"));
  auto still = store_->GetApp("ws_1", "app_1");
  ASSERT_TRUE(still.ok());
  EXPECT_EQ(still->status, "created");
}

TEST_F(AppStoreTest, NamesAreUniqueAcrossWorkspaces) {
  ASSERT_TRUE(Insert(MakeApp("ws_1", "app_1", "hello")).ok());
  for (const char* ws : {"ws_1", "ws_2"}) {
    Status taken = Insert(MakeApp(ws, std::string("app_dup_") + ws, "hello"));
    EXPECT_EQ(taken.code(), Code::kConflict) << ws;
    EXPECT_EQ(taken.error_code(), "APP_EXISTS") << taken.ToString();
    EXPECT_NE(taken.message().find("hello"), std::string::npos) << taken.message();
    EXPECT_NE(taken.hint(), "");
    // Nothing of the refused insert is left: no row, no event.
    EXPECT_FALSE(HasEvent(ws, std::string("evt_app_dup_") + ws));
  }
  EXPECT_TRUE(store_->ListApps("ws_2", {0, 100})->empty());
  EXPECT_EQ(store_->ListAllApps()->size(), 1u);
  EXPECT_TRUE(Insert(MakeApp("ws_2", "app_2", "hello-2")).ok());
  EXPECT_EQ(Insert(MakeApp("ws_2", "app_2", "hello-3")).code(), Code::kConflict)
      << "ids are unique";
}

TEST_F(AppStoreTest, AppLimitIsCheckedWithTheInsert) {
  ASSERT_TRUE(Insert(MakeApp("ws_1", "app_1", "a1"), 2).ok());
  ASSERT_TRUE(Insert(MakeApp("ws_1", "app_2", "a2"), 2).ok());
  Status over = Insert(MakeApp("ws_1", "app_3", "a3"), 2);
  EXPECT_EQ(over.code(), Code::kConflict);
  EXPECT_EQ(over.error_code(), "APP_LIMIT_REACHED") << over.ToString();
  EXPECT_NE(over.hint(), "");
  EXPECT_EQ(store_->GetApp("ws_1", "a3").status().error_code(), "APP_NOT_FOUND");
  // Other workspaces count their own; 0 is no limit.
  EXPECT_TRUE(Insert(MakeApp("ws_2", "app_4", "a4"), 2).ok());
  EXPECT_TRUE(Insert(MakeApp("ws_1", "app_5", "a5"), 0).ok());
  // A deleted app no longer counts.
  ASSERT_TRUE(store_->DeleteApp("ws_1", "app_1", MakeEvent("ws_1", "evt_d1")).ok());
  ASSERT_TRUE(store_->DeleteApp("ws_1", "app_2", MakeEvent("ws_1", "evt_d2")).ok());
  EXPECT_TRUE(Insert(MakeApp("ws_1", "app_6", "a6"), 2).ok());
}

TEST_F(AppStoreTest, ConcurrentInsertsNeverPassTheLimit) {
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int i = 0; i < 12; ++i) {
    threads.emplace_back([&, i] {
      std::string n = std::to_string(i);
      if (Insert(MakeApp("ws_1", "app_c" + n, "c" + n), 3).ok()) {
        ++ok;
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  EXPECT_EQ(ok.load(), 3);
  EXPECT_EQ(store_->ListApps("ws_1", {0, 100})->size(), 3u);
}

TEST_F(AppStoreTest, ListAppsOldestFirstWithPages) {
  for (int i = 0; i < 5; ++i) {
    std::string n = std::to_string(i);
    ASSERT_TRUE(Insert(MakeApp("ws_1", "app_" + n, "app-" + n)).ok());
  }
  ASSERT_TRUE(Insert(MakeApp("ws_2", "app_other", "other")).ok());
  auto all = store_->ListApps("ws_1", {0, 100});
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(Ids(*all), (std::vector<std::string>{"app_0", "app_1", "app_2", "app_3", "app_4"}));

  auto first = store_->ListApps("ws_1", {0, 2});
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(Ids(*first), (std::vector<std::string>{"app_0", "app_1"}));
  auto second = store_->ListApps("ws_1", {first->back().seq, 2});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(Ids(*second), (std::vector<std::string>{"app_2", "app_3"}));
  EXPECT_EQ(store_->ListApps("ws_1", {0, 0}).status().error_code(), "INVALID_LIMIT");

  auto everywhere = store_->ListAllApps();
  ASSERT_TRUE(everywhere.ok());
  EXPECT_EQ(everywhere->size(), 6u);
  EXPECT_EQ(everywhere->back().id, "app_other");
}

TEST_F(AppStoreTest, UpdateAppWritesAllButIdentityAndCreation) {
  ASSERT_TRUE(Insert(MakeApp("ws_1", "app_1", "hello")).ok());
  App a = *store_->GetApp("ws_1", "hello");
  a.name = "renamed";
  a.created_ms = 1;
  a.created_by = "someone";
  a.port = 9000;
  a.memory_mb = 1024;
  a.millicpus = 2000;
  a.access_policy = "token";
  a.sleep_after_minutes = 0;
  a.data_quota_mb = 4096;
  a.status = "running";
  a.release_id = "rel_1";
  a.instance_id = "ins_1";
  a.restarts = 3;
  a.updated_ms = 5000;
  Event event = MakeEvent("ws_1", "evt_upd", "app.updated");
  ASSERT_TRUE(store_->UpdateApp(a, &event).ok());
  EXPECT_TRUE(HasEvent("ws_1", "evt_upd"));

  auto got = store_->GetApp("ws_1", "app_1");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->name, "hello");
  EXPECT_EQ(got->created_ms, 1000);
  EXPECT_EQ(got->created_by, "ws_1_k");
  EXPECT_EQ(got->port, 9000);
  EXPECT_EQ(got->memory_mb, 1024);
  EXPECT_EQ(got->millicpus, 2000);
  EXPECT_EQ(got->access_policy, "token");
  EXPECT_EQ(got->sleep_after_minutes, 0);
  EXPECT_EQ(got->data_quota_mb, 4096);
  EXPECT_EQ(got->status, "running");
  EXPECT_EQ(got->release_id, "rel_1");
  EXPECT_EQ(got->instance_id, "ins_1");
  EXPECT_EQ(got->restarts, 3);
  EXPECT_EQ(got->updated_ms, 5000);

  App missing = MakeApp("ws_1", "app_none", "none");
  Event lost = MakeEvent("ws_1", "evt_lost");
  EXPECT_EQ(store_->UpdateApp(missing, &lost).error_code(), "APP_NOT_FOUND");
  EXPECT_FALSE(HasEvent("ws_1", "evt_lost")) << "the event goes only with the change";
}

TEST_F(AppStoreTest, DeleteAppRemovesDeploymentsReleasesAndEnv) {
  App doomed = InsertDeployedApp("app_1", "doomed");
  App kept = InsertDeployedApp("app_2", "kept");
  ASSERT_TRUE(Insert(MakeDeployment(doomed, "dep_doomed_2")).ok()) << "an active one too";

  ASSERT_TRUE(store_->DeleteApp("ws_1", "app_1", MakeEvent("ws_1", "evt_del", "app.deleted")).ok());
  EXPECT_TRUE(HasEvent("ws_1", "evt_del"));
  EXPECT_EQ(store_->GetApp("ws_1", "app_1").status().error_code(), "APP_NOT_FOUND");
  EXPECT_EQ(store_->GetDeployment("ws_1", "dep_doomed").status().error_code(),
            "DEPLOYMENT_NOT_FOUND");
  EXPECT_TRUE(store_->ListDeployments("app_1", {0, 100})->empty());
  EXPECT_FALSE(store_->ActiveDeployment("app_1")->has_value());
  EXPECT_TRUE(store_->ListReleases("app_1")->empty());
  EXPECT_EQ(store_->GetRelease("app_1", "rel_doomed").status().error_code(), "RELEASE_NOT_FOUND");
  EXPECT_TRUE(store_->ListEnv("app_1")->empty());
  auto active = store_->ListActiveDeployments();
  ASSERT_TRUE(active.ok());
  EXPECT_TRUE(active->empty()) << "dep_doomed_2 went with its app";

  // The other app keeps everything.
  EXPECT_TRUE(store_->GetApp("ws_1", "kept").ok());
  EXPECT_EQ(store_->ListDeployments(kept.id, {0, 100})->size(), 1u);
  EXPECT_EQ(store_->ListReleases(kept.id)->size(), 1u);
  EXPECT_EQ(store_->ListEnv(kept.id)->size(), 2u);

  // Gone for good: a second delete is NotFound, and the name is free again.
  Status again = store_->DeleteApp("ws_1", "app_1", MakeEvent("ws_1", "evt_del2"));
  EXPECT_EQ(again.error_code(), "APP_NOT_FOUND");
  EXPECT_FALSE(HasEvent("ws_1", "evt_del2"));
  EXPECT_TRUE(Insert(MakeApp("ws_2", "app_3", "doomed")).ok());
}

TEST_F(AppStoreTest, DataSurvivesReopen) {
  InsertDeployedApp("app_1", "hello");
  store_.reset();
  auto s = OpenSqliteStore(path());
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  store_ = std::move(*s);
  EXPECT_EQ(store_->GetApp("ws_1", "hello")->id, "app_1");
  EXPECT_EQ(StatusOf("ws_1", "dep_hello"), "live");
  EXPECT_EQ(store_->GetRelease("app_1", "rel_hello")->deployment_id, "dep_hello");
  EXPECT_EQ(store_->ListEnv("app_1")->size(), 2u);
  EXPECT_TRUE(store_->CheckIntegrity().ok());
}

// ---- Deployments ----

TEST_F(AppStoreTest, InsertAndGetDeploymentWithItsWorkspace) {
  App a = MakeApp("ws_1", "app_1", "hello");
  ASSERT_TRUE(Insert(a).ok());
  Deployment d = MakeDeployment(a, "dep_1");
  d.kind = "rollback";
  ASSERT_TRUE(Insert(d).ok());
  EXPECT_TRUE(HasEvent("ws_1", "evt_dep_1"));
  auto got = store_->GetDeployment("ws_1", "dep_1");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_GT(got->seq, 0);
  EXPECT_EQ(got->app_id, "app_1");
  EXPECT_EQ(got->kind, "rollback");
  EXPECT_EQ(got->status, "queued");
  EXPECT_EQ(got->source, R"({"type":"upload"})");
  EXPECT_EQ(got->config, R"({"start":"node server.js"})");
  EXPECT_EQ(got->steps, "[]") << "JSON columns hold JSON even when left empty";
  EXPECT_EQ(got->release_id, "");
  EXPECT_EQ(got->error, "");
  EXPECT_EQ(got->created_ms, 2000);
  EXPECT_EQ(got->finished_ms, 0);
  EXPECT_EQ(got->created_by, "ws_1_k");

  auto other = store_->GetDeployment("ws_2", "dep_1");
  EXPECT_EQ(other.status().code(), Code::kNotFound);
  EXPECT_EQ(other.status().error_code(), "DEPLOYMENT_NOT_FOUND");
  EXPECT_EQ(store_->GetDeployment("ws_1", "dep_none").status().error_code(),
            "DEPLOYMENT_NOT_FOUND");

  // A deployment names an app of its own workspace.
  Deployment foreign = MakeDeployment(a, "dep_2");
  foreign.workspace_id = "ws_2";
  EXPECT_EQ(Insert(foreign).error_code(), "APP_NOT_FOUND");
  EXPECT_FALSE(HasEvent("ws_2", "evt_dep_2"));
  Deployment orphan = MakeDeployment(MakeApp("ws_1", "app_none", "none"), "dep_3");
  EXPECT_EQ(Insert(orphan).error_code(), "APP_NOT_FOUND");
}

TEST_F(AppStoreTest, ASecondActiveDeploymentIsRefused) {
  App a = MakeApp("ws_1", "app_1", "hello");
  App b = MakeApp("ws_1", "app_2", "other");
  ASSERT_TRUE(Insert(a).ok());
  ASSERT_TRUE(Insert(b).ok());
  Deployment first = MakeDeployment(a, "dep_first");
  ASSERT_TRUE(Insert(first).ok());

  for (const char* status : {"queued", "building", "deploying"}) {
    first.status = status;
    ASSERT_TRUE(store_->UpdateDeployment(first, nullptr, nullptr).ok());
    Status refused = Insert(MakeDeployment(a, "dep_second"));
    EXPECT_EQ(refused.code(), Code::kConflict) << status;
    EXPECT_EQ(refused.error_code(), "DEPLOY_IN_PROGRESS") << refused.ToString();
    EXPECT_EQ(refused.message(), "app hello already has deployment dep_first in progress");
    EXPECT_NE(refused.hint().find("GET /v1/deployments/dep_first"), std::string::npos)
        << refused.hint();
    EXPECT_NE(refused.hint().find("POST /v1/deployments/dep_first/cancel"), std::string::npos)
        << refused.hint();
  }
  EXPECT_EQ(store_->GetDeployment("ws_1", "dep_second").status().error_code(),
            "DEPLOYMENT_NOT_FOUND");
  EXPECT_FALSE(HasEvent("ws_1", "evt_dep_second"));
  // Another app deploys at the same time.
  EXPECT_TRUE(Insert(MakeDeployment(b, "dep_b")).ok());

  // Once the first one ends, the next may start.
  first.status = "cancelled";
  first.finished_ms = 2100;
  ASSERT_TRUE(store_->UpdateDeployment(first, nullptr, nullptr).ok());
  EXPECT_TRUE(Insert(MakeDeployment(a, "dep_second")).ok());
  // And the ended one cannot come back while the new one runs.
  first.status = "queued";
  first.finished_ms = 0;
  Status back = store_->UpdateDeployment(first, nullptr, nullptr);
  EXPECT_EQ(back.error_code(), "DEPLOY_IN_PROGRESS") << back.ToString();
  EXPECT_NE(back.message().find("dep_second"), std::string::npos) << back.message();
  EXPECT_EQ(StatusOf("ws_1", "dep_first"), "cancelled");
}

TEST_F(AppStoreTest, TheSchemaItselfAllowsOneActiveDeploymentPerApp) {
  App a = MakeApp("ws_1", "app_1", "hello");
  ASSERT_TRUE(Insert(a).ok());
  ASSERT_TRUE(Insert(MakeDeployment(a, "dep_1", "building")).ok());
  // A write that skips the store's check (another tool, a future bug) still cannot add one.
  auto db = sqlite::Db::Open(path().string(), /*read_only=*/false);
  ASSERT_TRUE(db.ok()) << db.status().ToString();
  auto raw_insert = [&db](std::string_view id, std::string_view status) -> Status {
    auto stmt = (*db)->Prepare(
        {"test",
         "INSERT INTO deployments (id, workspace_id, app_id, kind, status, created_ms) "
         "VALUES (?, 'ws_1', 'app_1', 'deploy', ?, 1)"});
    if (!stmt.ok()) {
      return stmt.status();
    }
    return stmt->Bind(1, id).Bind(2, status).Run();
  };
  Status raw = raw_insert("dep_raw", "queued");
  EXPECT_EQ(raw.code(), Code::kConflict) << raw.ToString();
  // Ended ones are not limited.
  EXPECT_TRUE(raw_insert("dep_raw2", "failed").ok());
  EXPECT_TRUE(raw_insert("dep_raw3", "live").ok());
}

TEST_F(AppStoreTest, ActiveDeploymentAndListActiveDeployments) {
  App a = MakeApp("ws_1", "app_1", "hello");
  App b = MakeApp("ws_2", "app_2", "other");
  App c = MakeApp("ws_2", "app_3", "idle");
  for (const App& app : {a, b, c}) {
    ASSERT_TRUE(Insert(app).ok());
  }
  EXPECT_FALSE(store_->ActiveDeployment(a.id)->has_value());

  Deployment done = MakeDeployment(a, "dep_done");
  ASSERT_TRUE(Insert(done).ok());
  done.status = "failed";
  done.error = R"({"step":"build","code":"BUILD_FAILED","message":"exit 1"})";
  done.finished_ms = 2200;
  ASSERT_TRUE(store_->UpdateDeployment(done, nullptr, nullptr).ok());
  ASSERT_TRUE(Insert(MakeDeployment(a, "dep_a")).ok());
  ASSERT_TRUE(Insert(MakeDeployment(b, "dep_b")).ok());

  auto active = store_->ActiveDeployment(a.id);
  ASSERT_TRUE(active.ok()) << active.status().ToString();
  ASSERT_TRUE(active->has_value());
  EXPECT_EQ((*active)->id, "dep_a");
  EXPECT_FALSE(store_->ActiveDeployment(c.id)->has_value());

  auto all = store_->ListActiveDeployments();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(Ids(*all), (std::vector<std::string>{"dep_a", "dep_b"}));
  EXPECT_EQ(store_->GetDeployment("ws_1", "dep_done")->error, done.error);
}

TEST_F(AppStoreTest, ListDeploymentsNewestFirstWithPages) {
  App a = MakeApp("ws_1", "app_1", "hello");
  App b = MakeApp("ws_1", "app_2", "other");
  ASSERT_TRUE(Insert(a).ok());
  ASSERT_TRUE(Insert(b).ok());
  for (int i = 0; i < 5; ++i) {
    Deployment d = MakeDeployment(a, "dep_" + std::to_string(i));
    ASSERT_TRUE(Insert(d).ok());
    d.status = "failed";
    ASSERT_TRUE(store_->UpdateDeployment(d, nullptr, nullptr).ok());
  }
  ASSERT_TRUE(Insert(MakeDeployment(b, "dep_b")).ok());

  auto all = store_->ListDeployments(a.id, {0, 100});
  ASSERT_TRUE(all.ok()) << all.status().ToString();
  EXPECT_EQ(Ids(*all), (std::vector<std::string>{"dep_4", "dep_3", "dep_2", "dep_1", "dep_0"}));
  auto first = store_->ListDeployments(a.id, {0, 2});
  ASSERT_TRUE(first.ok());
  EXPECT_EQ(Ids(*first), (std::vector<std::string>{"dep_4", "dep_3"}));
  auto second = store_->ListDeployments(a.id, {first->back().seq, 2});
  ASSERT_TRUE(second.ok());
  EXPECT_EQ(Ids(*second), (std::vector<std::string>{"dep_2", "dep_1"}));
  EXPECT_EQ(store_->ListDeployments(a.id, {0, 0}).status().error_code(), "INVALID_LIMIT");
}

TEST_F(AppStoreTest, GoingLiveSupersedesThePreviousLiveDeployment) {
  App a = InsertDeployedApp("app_1", "hello");  // dep_hello is live
  InsertDeployedApp("app_2", "other");          // dep_other is live, another app
  Deployment failed = MakeDeployment(a, "dep_failed");
  ASSERT_TRUE(Insert(failed).ok());
  failed.status = "failed";
  ASSERT_TRUE(store_->UpdateDeployment(failed, nullptr, nullptr).ok());

  Deployment next = MakeDeployment(a, "dep_next");
  ASSERT_TRUE(Insert(next).ok());
  ASSERT_TRUE(store_->InsertRelease(MakeRelease(a, "rel_next", next.id)).ok());
  next.status = "deploying";
  next.steps = R"([{"name":"build","status":"done"}])";
  ASSERT_TRUE(store_->UpdateDeployment(next, nullptr, nullptr).ok());
  EXPECT_EQ(StatusOf("ws_1", "dep_hello"), "live") << "not superseded before the new one is live";

  next.status = "live";
  next.release_id = "rel_next";
  next.finished_ms = 9000;
  App serving = *store_->GetApp("ws_1", "app_1");
  serving.status = "running";
  serving.release_id = "rel_next";
  serving.instance_id = "ins_next";
  serving.updated_ms = 9000;
  Event event = MakeEvent("ws_1", "evt_live", "deploy.live", next.id);
  ASSERT_TRUE(store_->UpdateDeployment(next, &serving, &event).ok());

  EXPECT_EQ(StatusOf("ws_1", "dep_next"), "live");
  EXPECT_EQ(StatusOf("ws_1", "dep_hello"), "superseded");
  EXPECT_EQ(StatusOf("ws_1", "dep_failed"), "failed") << "only live ones are superseded";
  EXPECT_EQ(StatusOf("ws_1", "dep_other"), "live") << "another app's live deployment stays";
  auto got = store_->GetDeployment("ws_1", "dep_next");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->release_id, "rel_next");
  EXPECT_EQ(got->steps, R"([{"name":"build","status":"done"}])");
  EXPECT_EQ(got->finished_ms, 9000);
  auto app = store_->GetApp("ws_1", "app_1");
  ASSERT_TRUE(app.ok());
  EXPECT_EQ(app->release_id, "rel_next");
  EXPECT_EQ(app->instance_id, "ins_next");
  EXPECT_EQ(app->status, "running");
  EXPECT_TRUE(HasEvent("ws_1", "evt_live"));
  EXPECT_FALSE(store_->ActiveDeployment(a.id)->has_value());
}

TEST_F(AppStoreTest, UpdateDeploymentIsOneTransaction) {
  App a = InsertDeployedApp("app_1", "hello");  // dep_hello is live
  Deployment next = MakeDeployment(a, "dep_next");
  ASSERT_TRUE(Insert(next).ok());
  next.status = "live";
  next.release_id = "rel_hello";
  // The app write fails (the app is not in that workspace): nothing of the update may remain.
  App wrong = *store_->GetApp("ws_1", "app_1");
  wrong.workspace_id = "ws_2";
  wrong.status = "running";
  Event event = MakeEvent("ws_1", "evt_live");
  Status s = store_->UpdateDeployment(next, &wrong, &event);
  EXPECT_EQ(s.error_code(), "APP_NOT_FOUND") << s.ToString();
  EXPECT_EQ(StatusOf("ws_1", "dep_next"), "queued");
  EXPECT_EQ(StatusOf("ws_1", "dep_hello"), "live");
  EXPECT_EQ(store_->GetApp("ws_1", "app_1")->status, "created");
  EXPECT_FALSE(HasEvent("ws_1", "evt_live"));

  // The app given must be the deployment's own.
  App other = MakeApp("ws_1", "app_2", "other");
  ASSERT_TRUE(Insert(other).ok());
  EXPECT_EQ(store_->UpdateDeployment(next, &other, nullptr).code(), Code::kInvalidArgument);
  EXPECT_EQ(StatusOf("ws_1", "dep_next"), "queued");
}

TEST_F(AppStoreTest, UpdateOfAMissingDeploymentIsNotFound) {
  App a = MakeApp("ws_1", "app_1", "hello");
  ASSERT_TRUE(Insert(a).ok());
  Deployment d = MakeDeployment(a, "dep_1");
  EXPECT_EQ(store_->UpdateDeployment(d, nullptr, nullptr).error_code(), "DEPLOYMENT_NOT_FOUND");
  ASSERT_TRUE(Insert(d).ok());
  // Not through another workspace either.
  Deployment foreign = d;
  foreign.workspace_id = "ws_2";
  foreign.status = "failed";
  EXPECT_EQ(store_->UpdateDeployment(foreign, nullptr, nullptr).error_code(),
            "DEPLOYMENT_NOT_FOUND");
  EXPECT_EQ(StatusOf("ws_1", "dep_1"), "queued");
}

// ---- Releases ----

TEST_F(AppStoreTest, ReleasesInsertGetListAndUpdate) {
  App a = MakeApp("ws_1", "app_1", "hello");
  App b = MakeApp("ws_1", "app_2", "other");
  ASSERT_TRUE(Insert(a).ok());
  ASSERT_TRUE(Insert(b).ok());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(store_->InsertRelease(MakeRelease(a, "rel_" + std::to_string(i), "dep_x")).ok());
  }
  ASSERT_TRUE(store_->InsertRelease(MakeRelease(b, "rel_b", "dep_y")).ok());

  auto got = store_->GetRelease(a.id, "rel_1");
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  EXPECT_GT(got->seq, 0);
  EXPECT_EQ(got->workspace_id, "ws_1");
  EXPECT_EQ(got->deployment_id, "dep_x");
  EXPECT_EQ(got->plan, R"({"runtime":"node","port":8080})");
  EXPECT_EQ(got->size_bytes, 4096);
  EXPECT_EQ(got->status, "ready");
  EXPECT_EQ(got->created_ms, 3000);
  // Scoped to its app.
  EXPECT_EQ(store_->GetRelease(b.id, "rel_1").status().error_code(), "RELEASE_NOT_FOUND");
  EXPECT_EQ(store_->GetRelease(a.id, "rel_none").status().code(), Code::kNotFound);

  auto list = store_->ListReleases(a.id);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(Ids(*list), (std::vector<std::string>{"rel_2", "rel_1", "rel_0"}));

  Release gone = *got;
  gone.status = "deleted";
  gone.size_bytes = 0;
  gone.plan = "{}";  // immutable: not written
  ASSERT_TRUE(store_->UpdateRelease(gone).ok());
  auto after = store_->GetRelease(a.id, "rel_1");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->status, "deleted");
  EXPECT_EQ(after->size_bytes, 0);
  EXPECT_EQ(after->plan, R"({"runtime":"node","port":8080})");
  EXPECT_EQ(store_->ListReleases(a.id)->size(), 3u) << "the row stays for history";

  Release missing = MakeRelease(a, "rel_none", "dep_x");
  EXPECT_EQ(store_->UpdateRelease(missing).error_code(), "RELEASE_NOT_FOUND");
  Release foreign = MakeRelease(a, "rel_f", "dep_x");
  foreign.workspace_id = "ws_2";
  EXPECT_EQ(store_->InsertRelease(foreign).error_code(), "APP_NOT_FOUND");
  EXPECT_EQ(store_->InsertRelease(MakeRelease(a, "rel_0", "dep_z")).code(), Code::kConflict)
      << "ids are unique";
}

// ---- Env vars ----

TEST_F(AppStoreTest, SetEnvUpsertsByKeyAndListsSorted) {
  App a = MakeApp("ws_1", "app_1", "hello");
  App b = MakeApp("ws_1", "app_2", "other");
  ASSERT_TRUE(Insert(a).ok());
  ASSERT_TRUE(Insert(b).ok());
  EXPECT_TRUE(store_->ListEnv(a.id)->empty());
  ASSERT_TRUE(
      store_->SetEnv(a.id, {Var("ZED", "z"), Var("ALPHA", "1")}, MakeEvent("ws_1", "evt_e1")).ok());
  EXPECT_TRUE(HasEvent("ws_1", "evt_e1"));
  EnvVar changed = Var("ALPHA", "2", /*secret=*/true, /*build=*/true);
  changed.updated_ms = 4500;
  ASSERT_TRUE(
      store_->SetEnv(a.id, {changed, Var("MIDDLE", "m")}, MakeEvent("ws_1", "evt_e2")).ok());
  ASSERT_TRUE(store_->SetEnv(b.id, {Var("ALPHA", "b")}, MakeEvent("ws_1", "evt_e3")).ok());

  auto env = store_->ListEnv(a.id);
  ASSERT_TRUE(env.ok()) << env.status().ToString();
  ASSERT_EQ(env->size(), 3u);
  EXPECT_EQ((*env)[0].key, "ALPHA");
  EXPECT_EQ((*env)[0].value_sealed, "sealed:2");
  EXPECT_TRUE((*env)[0].secret);
  EXPECT_TRUE((*env)[0].build);
  EXPECT_EQ((*env)[0].updated_ms, 4500);
  EXPECT_EQ((*env)[1].key, "MIDDLE");
  EXPECT_FALSE((*env)[1].secret);
  EXPECT_FALSE((*env)[1].build);
  EXPECT_EQ((*env)[2].key, "ZED");
  EXPECT_EQ((*env)[2].value_sealed, "sealed:z");
  auto other = store_->ListEnv(b.id);
  ASSERT_TRUE(other.ok());
  ASSERT_EQ(other->size(), 1u);
  EXPECT_EQ((*other)[0].value_sealed, "sealed:b") << "each app has its own";

  EXPECT_EQ(store_->SetEnv("app_none", {Var("A", "1")}, MakeEvent("ws_1", "evt_e4")).error_code(),
            "APP_NOT_FOUND");
  EXPECT_FALSE(HasEvent("ws_1", "evt_e4"));
}

TEST_F(AppStoreTest, DeleteEnvRemovesOneKey) {
  App a = InsertDeployedApp("app_1", "hello");  // A and B
  ASSERT_TRUE(store_->DeleteEnv(a.id, "A", MakeEvent("ws_1", "evt_rm")).ok());
  EXPECT_TRUE(HasEvent("ws_1", "evt_rm"));
  auto env = store_->ListEnv(a.id);
  ASSERT_TRUE(env.ok());
  ASSERT_EQ(env->size(), 1u);
  EXPECT_EQ((*env)[0].key, "B");

  Status again = store_->DeleteEnv(a.id, "A", MakeEvent("ws_1", "evt_rm2"));
  EXPECT_EQ(again.code(), Code::kNotFound);
  EXPECT_EQ(again.error_code(), "ENV_NOT_FOUND");
  EXPECT_FALSE(HasEvent("ws_1", "evt_rm2"));
  EXPECT_EQ(store_->DeleteEnv("app_none", "B", MakeEvent("ws_1", "evt_rm3")).error_code(),
            "ENV_NOT_FOUND");
  EXPECT_EQ(store_->ListEnv(a.id)->size(), 1u);
}

}  // namespace
}  // namespace kiln::store
