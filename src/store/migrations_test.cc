#include "store/migrations.h"

#include <gtest/gtest.h>

#include <fstream>

#include "store/sqlite_db.h"
#include "store/store.h"
#include "store/test_util.h"

namespace kiln::store {
namespace {

using testing::MakeEvent;
using testing::MakeKey;
using testing::MakeWorkspace;
using testing::TempDir;

// Opens the file directly, beside the store, to look at what the migrations left.
std::unique_ptr<sqlite::Db> RawOpen(const std::filesystem::path& path) {
  auto db = sqlite::Db::Open(path.string(), /*read_only=*/false);
  EXPECT_TRUE(db.ok()) << db.status().ToString();
  return std::move(db).value();
}

int64_t QueryInt(sqlite::Db& db, std::string_view sql) {
  auto stmt = db.Prepare({"test query", sql});
  EXPECT_TRUE(stmt.ok()) << stmt.status().ToString();
  auto row = stmt->Step();
  EXPECT_TRUE(row.ok() && *row) << sql;
  return stmt->Int64(0);
}

// Control state must survive a power cut, not just a crash: WAL with synchronous=FULL on every
// connection the store opens (a kill -9 test cannot tell FULL from OFF, the page cache
// survives it).
TEST(SqliteDbTest, ConnectionsUseWalAndFullSync) {
  TempDir dir;
  for (bool read_only : {false, true}) {
    auto db = sqlite::Db::Open((dir.path() / "kiln.db").string(), read_only);
    ASSERT_TRUE(db.ok()) << db.status().ToString();
    auto mode = (*db)->Prepare({"journal mode", "PRAGMA journal_mode"});
    ASSERT_TRUE(mode.ok());
    ASSERT_TRUE(*mode->Step());
    EXPECT_EQ(mode->Text(0), "wal") << (read_only ? "reader" : "writer");
    EXPECT_EQ(QueryInt(**db, "PRAGMA synchronous"), 2) << "2 is FULL";
    EXPECT_EQ(QueryInt(**db, "PRAGMA foreign_keys"), 1);
  }
}

TEST(MigrationsTest, VersionsAreConsecutiveFromOne) {
  int expected = 1;
  for (const Migration& m : Migrations()) {
    EXPECT_EQ(m.version, expected++);
    EXPECT_NE(std::string(m.name), "");
  }
  EXPECT_EQ(LatestSchemaVersion(), expected - 1);
}

TEST(MigrationsTest, FreshDatabaseGetsEverySchemaVersionAndTable) {
  TempDir dir;
  auto path = dir.path() / "kiln.db";
  {
    auto store = OpenSqliteStore(path);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
  }
  auto db = RawOpen(path);
  EXPECT_EQ(QueryInt(*db, "SELECT MAX(version) FROM schema_migrations"), LatestSchemaVersion());
  EXPECT_EQ(QueryInt(*db, "SELECT COUNT(*) FROM schema_migrations"), LatestSchemaVersion());
  EXPECT_GT(QueryInt(*db, "SELECT MIN(applied_at) FROM schema_migrations"), 1'600'000'000'000);
  for (const char* table :
       {"workspaces", "api_keys", "events", "idempotency", "sandboxes", "templates", "apps",
        "deployments", "releases", "app_env", "access_tokens", "app_domains", "revoked_jwts"}) {
    auto stmt = db->Prepare({"test", "SELECT COUNT(*) FROM sqlite_master WHERE name = ?"});
    ASSERT_TRUE(stmt.ok());
    auto row = stmt->Bind(1, std::string_view(table)).Step();
    ASSERT_TRUE(row.ok() && *row);
    EXPECT_EQ(stmt->Int64(0), 1) << table;
  }
  for (const char* index : {"api_keys_workspace_seq", "events_workspace_seq", "idempotency_created",
                            "sandboxes_workspace_seq", "sandboxes_live", "apps_workspace_seq",
                            "deployments_app_seq", "deployments_one_active", "releases_app_seq"}) {
    auto stmt = db->Prepare(
        {"test", "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name = ?"});
    ASSERT_TRUE(stmt.ok());
    auto row = stmt->Bind(1, std::string_view(index)).Step();
    ASSERT_TRUE(row.ok() && *row);
    EXPECT_EQ(stmt->Int64(0), 1) << index;
  }
}

TEST(MigrationsTest, ReopenAppliesNothingTwiceAndKeepsData) {
  TempDir dir;
  auto path = dir.path() / "kiln.db";
  {
    auto store = OpenSqliteStore(path);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    ASSERT_TRUE((*store)
                    ->CreateWorkspace(MakeWorkspace("ws_1", "one"), MakeKey("ws_1", "key_1"),
                                      MakeEvent("ws_1", "evt_1"))
                    .ok());
  }
  for (int i = 0; i < 2; ++i) {
    auto store = OpenSqliteStore(path);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    auto count = (*store)->CountWorkspaces();
    ASSERT_TRUE(count.ok());
    EXPECT_EQ(*count, 1);
  }
  auto db = RawOpen(path);
  EXPECT_EQ(QueryInt(*db, "SELECT COUNT(*) FROM schema_migrations"), LatestSchemaVersion());
}

TEST(MigrationsTest, DatabaseFromANewerKilnIsRefused) {
  TempDir dir;
  auto path = dir.path() / "kiln.db";
  ASSERT_TRUE(OpenSqliteStore(path).ok());
  const int future = LatestSchemaVersion() + 1;
  {
    auto db = RawOpen(path);
    auto stmt = db->Prepare({"test", "INSERT INTO schema_migrations VALUES (?, 'future', 0)"});
    ASSERT_TRUE(stmt.ok());
    ASSERT_TRUE(stmt->Bind(1, int64_t{future}).Run().ok());
  }
  auto store = OpenSqliteStore(path);
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Code::kUnavailable);
  EXPECT_EQ(store.status().error_code(), "DB_TOO_NEW");
  EXPECT_NE(store.status().message().find("version " + std::to_string(future)), std::string::npos)
      << store.status().message();
  EXPECT_NE(store.status().hint(), "");
}

TEST(MigrationsTest, OpenCreatesTheMissingDataDir) {
  TempDir dir;
  auto path = dir.path() / "a" / "b" / "kiln.db";
  auto store = OpenSqliteStore(path);
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  EXPECT_TRUE(std::filesystem::exists(path));
}

TEST(MigrationsTest, UnopenablePathIsAnErrorNotACrash) {
  TempDir dir;
  // The "directory" is a regular file, so neither mkdir nor open can succeed.
  auto blocker = dir.path() / "file";
  { std::ofstream(blocker) << "x"; }
  auto store = OpenSqliteStore(blocker / "kiln.db");
  ASSERT_FALSE(store.ok());
  EXPECT_EQ(store.status().code(), Code::kInternal);
}

}  // namespace
}  // namespace kiln::store
