#include <gtest/gtest.h>

#include <limits>

#include "store/store.h"
#include "store/test_util.h"

namespace kiln::store {
namespace {

using testing::MakeEvent;
using testing::MakeKey;
using testing::MakeWorkspace;
using testing::TempDir;

class DomainStoreTest : public ::testing::Test {
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
    AddApp("ws_1", "app_a", "shop");
    AddApp("ws_1", "app_b", "blog");
    AddApp("ws_2", "app_c", "other");
  }

  void AddApp(const std::string& ws, const std::string& id, const std::string& name) {
    App a;
    a.id = id;
    a.workspace_id = ws;
    a.name = name;
    a.created_ms = a.updated_ms = 1000;
    ASSERT_TRUE(store_->InsertApp(a, 0, MakeEvent(ws, "evt_" + id)).ok());
  }

  static std::vector<Domain> Domains(std::initializer_list<const char*> names) {
    std::vector<Domain> out;
    for (const char* n : names) {
      Domain d;
      d.domain = n;
      d.created_ms = 5000;
      out.push_back(d);
    }
    return out;
  }

  Status Set(const std::string& ws, const std::string& app,
             std::initializer_list<const char*> names, const std::string& event_id) {
    return store_->SetDomains(ws, app, Domains(names),
                              MakeEvent(ws, event_id, "app.domains_set", app));
  }

  std::vector<std::string> Names(const std::string& app) {
    auto list = store_->ListDomains(app);
    EXPECT_TRUE(list.ok()) << list.status().ToString();
    std::vector<std::string> out;
    for (const Domain& d : list.ok() ? *list : std::vector<Domain>{}) {
      out.push_back(d.domain);
    }
    return out;
  }

  size_t EventCount(const std::string& ws) {
    auto events = store_->ListEvents(ws, {std::numeric_limits<int64_t>::max(), 200});
    return events.ok() ? events->size() : 0;
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

TEST_F(DomainStoreTest, SetReplacesTheSetAndRecordsAnEvent) {
  size_t before = EventCount("ws_1");
  ASSERT_TRUE(Set("ws_1", "app_a", {"shop.example.com", "www.example.com"}, "evt_d1").ok());
  EXPECT_EQ(Names("app_a"), (std::vector<std::string>{"shop.example.com", "www.example.com"}));
  EXPECT_EQ(EventCount("ws_1"), before + 1);

  ASSERT_TRUE(Set("ws_1", "app_a", {"www.example.com", "new.example.com"}, "evt_d2").ok());
  EXPECT_EQ(Names("app_a"), (std::vector<std::string>{"new.example.com", "www.example.com"}));

  ASSERT_TRUE(Set("ws_1", "app_a", {}, "evt_d3").ok());
  EXPECT_TRUE(Names("app_a").empty());
  EXPECT_EQ(EventCount("ws_1"), before + 3);
}

TEST_F(DomainStoreTest, RowsCarryTheirAppAndCertificateDefaults) {
  ASSERT_TRUE(Set("ws_1", "app_a", {"shop.example.com"}, "evt_d1").ok());
  auto list = store_->ListDomains("app_a");
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  const Domain& d = (*list)[0];
  EXPECT_EQ(d.app_id, "app_a");
  EXPECT_EQ(d.workspace_id, "ws_1");
  EXPECT_EQ(d.created_ms, 5000);
  EXPECT_EQ(d.cert_source, "local");
  EXPECT_EQ(d.cert_status, "pending");
  EXPECT_EQ(d.cert_expires_ms, 0);
}

TEST_F(DomainStoreTest, ADomainOfAnotherAppIsTakenAndNothingChanges) {
  ASSERT_TRUE(Set("ws_2", "app_c", {"taken.example.com"}, "evt_d1").ok());
  ASSERT_TRUE(Set("ws_1", "app_a", {"shop.example.com"}, "evt_d2").ok());
  size_t before = EventCount("ws_1");
  Status s = Set("ws_1", "app_a", {"free.example.com", "taken.example.com"}, "evt_d3");
  EXPECT_TRUE(s.Is(Code::kConflict)) << s.ToString();
  EXPECT_EQ(s.error_code(), "DOMAIN_TAKEN");
  EXPECT_NE(s.message().find("taken.example.com"), std::string::npos) << s.message();
  // The transaction rolled back: the old set and no event.
  EXPECT_EQ(Names("app_a"), std::vector<std::string>{"shop.example.com"});
  EXPECT_EQ(Names("app_c"), std::vector<std::string>{"taken.example.com"});
  EXPECT_EQ(EventCount("ws_1"), before);
}

TEST_F(DomainStoreTest, AnAppOfAnotherWorkspaceIsNotFound) {
  Status s = Set("ws_1", "app_c", {"x.example.com"}, "evt_d1");
  EXPECT_TRUE(s.Is(Code::kNotFound)) << s.ToString();
  EXPECT_TRUE(Names("app_c").empty());
}

TEST_F(DomainStoreTest, UpdateWritesCertificateFieldsThatASetKeeps) {
  ASSERT_TRUE(Set("ws_1", "app_a", {"shop.example.com"}, "evt_d1").ok());
  Domain d;
  d.domain = "shop.example.com";
  d.cert_source = "acme";
  d.cert_status = "issued";
  d.cert_expires_ms = 99'000;
  ASSERT_TRUE(store_->UpdateDomain(d).ok());
  // Setting the same domain again (with another added) keeps its certificate.
  ASSERT_TRUE(Set("ws_1", "app_a", {"shop.example.com", "b.example.com"}, "evt_d2").ok());
  auto all = store_->ListAllDomains();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 2u);
  EXPECT_EQ((*all)[1].domain, "shop.example.com");
  EXPECT_EQ((*all)[1].cert_source, "acme");
  EXPECT_EQ((*all)[1].cert_status, "issued");
  EXPECT_EQ((*all)[1].cert_expires_ms, 99'000);
  EXPECT_EQ((*all)[0].cert_status, "pending");

  d.domain = "nobody.example.com";
  Status s = store_->UpdateDomain(d);
  EXPECT_TRUE(s.Is(Code::kNotFound)) << s.ToString();
  EXPECT_EQ(s.error_code(), "DOMAIN_NOT_FOUND");
}

TEST_F(DomainStoreTest, DeletingTheAppFreesItsDomains) {
  ASSERT_TRUE(Set("ws_1", "app_a", {"shop.example.com"}, "evt_d1").ok());
  ASSERT_TRUE(store_->DeleteApp("ws_1", "app_a", MakeEvent("ws_1", "evt_del")).ok());
  ASSERT_TRUE(Set("ws_1", "app_b", {"shop.example.com"}, "evt_d2").ok());
  EXPECT_EQ(Names("app_b"), std::vector<std::string>{"shop.example.com"});
}

}  // namespace
}  // namespace kiln::store
