// Workspaces are the tenant boundary (DESIGN.md §5): a resource of another workspace is 404,
// never a hint that it exists. Checked on every route of src/service/tenancy_ops.cc:
// auth.token, me.get, workspaces.list/create/get, keys.list/create/get/revoke, events.list.
#include <set>

#include "integration/server_fixture.h"

namespace kiln::testing {
namespace {

class TenancyTest : public ServerTest {
 protected:
  void SetUp() override {
    ServerTest::SetUp();
    if (HasFatalFailure()) {
      return;
    }
    Reply me = Call("GET", "/v1/me", admin_);
    ASSERT_EQ(me.status, 200) << me;
    default_admin_id_ = me.Str("/data/key/id");
    default_ws_id_ = me.Str("/data/workspace/id");
    json::object reader = MintKey("default-reader", R"(["read"])");
    default_reader_id_ = S(reader, "id");
    default_reader_ = S(reader, "secret");

    Reply created = Call("POST", "/v1/workspaces", admin_, R"({"slug":"acme","name":"Acme"})");
    ASSERT_EQ(created.status, 201) << created;
    acme_ws_id_ = created.Str("/data/workspace/id");
    acme_admin_ = created.Str("/data/key/secret");
    acme_admin_id_ = created.Str("/data/key/id");
    ASSERT_TRUE(acme_admin_.starts_with("kiln_sk_")) << created;
  }

  std::set<std::string> Ids(const std::vector<json::object>& items) {
    std::set<std::string> out;
    for (const auto& o : items) {
      out.insert(S(o, "id"));
    }
    return out;
  }

  // Another workspace's resource must look exactly like a missing one.
  void ExpectLikeMissing(const Reply& theirs, const Reply& missing) {
    EXPECT_EQ(theirs.status, 404) << theirs;
    EXPECT_EQ(theirs.status, missing.status) << theirs << " vs " << missing;
    EXPECT_EQ(theirs.ErrorCode(), missing.ErrorCode()) << theirs << " vs " << missing;
  }

  std::string default_admin_id_, default_ws_id_, default_reader_, default_reader_id_;
  std::string acme_ws_id_, acme_admin_, acme_admin_id_;
};

TEST_F(TenancyTest, CreateWorkspaceAnswersItsFirstAdminKey) {
  Reply r = Call("POST", "/v1/workspaces", admin_, R"({"slug":"globex"})");
  ASSERT_EQ(r.status, 201) << r;
  EXPECT_EQ(r.Str("/data/workspace/slug"), "globex");
  EXPECT_EQ(r.Str("/data/workspace/name"), "globex") << "name defaults to the slug";
  EXPECT_TRUE(r.Str("/data/workspace/id").starts_with("ws_")) << r;
  EXPECT_FALSE(r.Find("/data/workspace/root")->as_bool()) << r;
  std::string secret = r.Str("/data/key/secret");
  EXPECT_TRUE(secret.starts_with("kiln_sk_")) << r;
  EXPECT_EQ(secret.size(), 51u);
  EXPECT_EQ(r.Str("/data/key/prefix"), secret.substr(0, 12));
  EXPECT_EQ(Strings(r.Array("/data/key/scopes")),
            (std::vector<std::string>{"read", "write", "exec", "admin"}));
  Reply me = Call("GET", "/v1/me", secret);
  ASSERT_EQ(me.status, 200) << me;
  EXPECT_EQ(me.Str("/data/workspace/slug"), "globex");
  EXPECT_EQ(me.Str("/data/key/id"), r.Str("/data/key/id"));
}

TEST_F(TenancyTest, DuplicateAndBadSlugs) {
  Reply dup = Call("POST", "/v1/workspaces", admin_, R"({"slug":"acme"})");
  EXPECT_EQ(dup.status, 409) << dup;
  EXPECT_EQ(dup.ErrorCode(), "WORKSPACE_EXISTS") << dup;
  Reply dup_default = Call("POST", "/v1/workspaces", admin_, R"({"slug":"default"})");
  EXPECT_EQ(dup_default.status, 409) << dup_default;
  EXPECT_EQ(dup_default.ErrorCode(), "WORKSPACE_EXISTS") << dup_default;
  for (const char* bad :
       {R"({"slug":"Acme2"})", R"({"slug":"ab"})", R"({"slug":"a_b_c"})", R"({"slug":"1abc"})",
        R"({"slug":"abc-"})", R"({"slug":""})", R"({"slug":"has space"})", R"({"slug":5})", R"({})",
        R"({"slug":"abcd","extra":1})"}) {
    Reply r = Call("POST", "/v1/workspaces", admin_, bad);
    EXPECT_EQ(r.status, 400) << bad << " -> " << r;
  }
  std::string long_slug = "a" + std::string(40, 'b');  // 41 characters
  EXPECT_EQ(Call("POST", "/v1/workspaces", admin_, R"({"slug":")" + long_slug + "\"}").status, 400);
  // Only default and acme exist after all that.
  EXPECT_EQ(ListAll("/v1/workspaces", admin_).size(), 2u);
}

TEST_F(TenancyTest, MeShowsTheKeysWorkspace) {
  Reply me = Call("GET", "/v1/me", acme_admin_);
  ASSERT_EQ(me.status, 200) << me;
  EXPECT_EQ(me.Str("/data/workspace/slug"), "acme");
  EXPECT_EQ(me.Str("/data/workspace/name"), "Acme");
  EXPECT_EQ(me.Str("/data/workspace/id"), acme_ws_id_);
  EXPECT_FALSE(me.Find("/data/workspace/root")->as_bool());
  EXPECT_EQ(me.Str("/data/key/id"), acme_admin_id_);
}

TEST_F(TenancyTest, KeysGetAndRevokeAcrossTenantsAre404) {
  Reply missing_get = Call("GET", "/v1/keys/key_doesnotexist", acme_admin_);
  Reply missing_del =
      Call("DELETE", "/v1/keys/key_doesnotexist?confirm=key_doesnotexist", acme_admin_);
  EXPECT_EQ(missing_get.status, 404) << missing_get;

  // acme -> default
  ExpectLikeMissing(Call("GET", "/v1/keys/" + default_admin_id_, acme_admin_), missing_get);
  ExpectLikeMissing(Call("GET", "/v1/keys/" + default_reader_id_, acme_admin_), missing_get);
  ExpectLikeMissing(Call("DELETE", "/v1/keys/" + default_reader_id_, acme_admin_), missing_del);
  ExpectLikeMissing(
      Call("DELETE", "/v1/keys/" + default_reader_id_ + "?confirm=" + default_reader_id_,
           acme_admin_),
      missing_del);
  ExpectLikeMissing(
      Call("DELETE", "/v1/keys/" + default_reader_id_ + "?confirm=default-reader", acme_admin_),
      missing_del);
  // ... and nothing happened to it.
  EXPECT_EQ(Call("GET", "/v1/me", default_reader_).status, 200);
  Reply still = Call("GET", "/v1/keys/" + default_reader_id_, admin_);
  EXPECT_EQ(still.Str("/data/status"), "active") << still;

  // default (root!) -> acme: the root workspace has no back door through /v1/keys.
  ExpectLikeMissing(Call("GET", "/v1/keys/" + acme_admin_id_, admin_), missing_get);
  json::object acme_ci = MintKey("acme-ci", R"(["read"])", acme_admin_);
  std::string acme_ci_id = S(acme_ci, "id");
  ExpectLikeMissing(Call("DELETE", "/v1/keys/" + acme_ci_id + "?confirm=" + acme_ci_id, admin_),
                    missing_del);
  EXPECT_EQ(Call("GET", "/v1/me", S(acme_ci, "secret")).status, 200);
  ExpectLikeMissing(Call("GET", "/v1/keys/" + acme_ci_id, default_reader_), missing_get);

  // Each tenant still sees its own.
  EXPECT_EQ(Call("GET", "/v1/keys/" + acme_ci_id, acme_admin_).status, 200);
  EXPECT_EQ(Call("GET", "/v1/keys/" + default_reader_id_, admin_).status, 200);
}

TEST_F(TenancyTest, KeysListAndCreateStayInTheWorkspace) {
  json::object acme_ci = MintKey("acme-ci", R"(["read","write"])", acme_admin_);
  std::set<std::string> acme = Ids(ListAll("/v1/keys", acme_admin_));
  EXPECT_EQ(acme, (std::set<std::string>{acme_admin_id_, S(acme_ci, "id")}));
  std::set<std::string> dflt = Ids(ListAll("/v1/keys", admin_));
  EXPECT_EQ(dflt, (std::set<std::string>{default_admin_id_, default_reader_id_}));
  // Paging one at a time does not leak either.
  EXPECT_EQ(Ids(ListAll("/v1/keys", acme_admin_, 1)), acme);
  // A cursor taken from default's list does not open acme's rows to default, or vice versa.
  Reply page = Call("GET", "/v1/keys?limit=1", admin_);
  ASSERT_EQ(page.status, 200) << page;
  Reply other = Call("GET", "/v1/keys?limit=200&cursor=" + page.Str("/next_cursor"), acme_admin_);
  ASSERT_EQ(other.status, 200) << other;
  for (const auto& k : other.Array("/data")) {
    EXPECT_TRUE(acme.contains(S(k.as_object(), "id"))) << json::serialize(k);
  }
  // The minted key belongs to acme.
  Reply me = Call("GET", "/v1/me", S(acme_ci, "secret"));
  EXPECT_EQ(me.Str("/data/workspace/slug"), "acme") << me;
}

TEST_F(TenancyTest, LastAdminKeyIsCountedPerWorkspace) {
  // default has its own admin key; acme's only admin key is still acme's last.
  Reply r =
      Call("DELETE", "/v1/keys/" + acme_admin_id_ + "?confirm=" + acme_admin_id_, acme_admin_);
  EXPECT_EQ(r.status, 409) << r;
  EXPECT_EQ(r.ErrorCode(), "LAST_ADMIN_KEY") << r;
  // And vice versa: acme's admin does not make default's admin revocable.
  Reply d =
      Call("DELETE", "/v1/keys/" + default_admin_id_ + "?confirm=" + default_admin_id_, admin_);
  EXPECT_EQ(d.status, 409) << d;
  EXPECT_EQ(d.ErrorCode(), "LAST_ADMIN_KEY") << d;
}

TEST_F(TenancyTest, EventsStayInTheWorkspace) {
  json::object acme_ci = MintKey("acme-ci", R"(["read"])", acme_admin_);
  json::object default_ci = MintKey("default-ci", R"(["read"])");
  std::vector<json::object> acme = ListAll("/v1/events", acme_admin_);
  std::vector<json::object> dflt = ListAll("/v1/events", admin_);
  std::set<std::string> acme_ids = Ids(acme), default_ids = Ids(dflt);
  for (const auto& id : acme_ids) {
    EXPECT_FALSE(default_ids.contains(id)) << id;
  }

  std::set<std::string> default_subjects = {default_admin_id_, default_reader_id_,
                                            S(default_ci, "id"), default_ws_id_};
  bool saw_acme_key = false;
  for (const auto& e : acme) {
    EXPECT_FALSE(default_subjects.contains(S(e, "subject"))) << json::serialize(e);
    EXPECT_NE(S(e, "actor"), default_reader_id_);
    saw_acme_key = saw_acme_key || S(e, "subject") == S(acme_ci, "id");
  }
  EXPECT_TRUE(saw_acme_key) << "acme's own key.created is missing from its feed";

  ASSERT_FALSE(acme.empty());
  EXPECT_EQ(S(acme.back(), "type"), "workspace.created");
  for (const auto& e : dflt) {
    EXPECT_NE(S(e, "subject"), S(acme_ci, "id")) << json::serialize(e);
    EXPECT_NE(S(e, "subject"), acme_admin_id_) << json::serialize(e);
  }
  // The creator's feed records the creation of acme.
  bool recorded = false;
  for (const auto& e : dflt) {
    recorded = recorded || (S(e, "type") == "workspace.created" && S(e, "subject") == acme_ws_id_);
  }
  EXPECT_TRUE(recorded);
}

// Not even as an actor, a creator or in event data: nothing acme can list names an id of the
// root workspace (its workspace id, its keys), which acme cannot see anywhere else.
TEST_F(TenancyTest, FeedNamesNoIdsOfAnotherWorkspace) {
  MintKey("acme-ci", R"(["read"])", acme_admin_);
  for (const char* path : {"/v1/events?limit=200", "/v1/keys?limit=200", "/v1/me"}) {
    Reply raw = Call("GET", path, acme_admin_);
    ASSERT_EQ(raw.status, 200) << raw;
    for (const auto& id : {default_ws_id_, default_admin_id_, default_reader_id_}) {
      EXPECT_EQ(raw.body.find(id), std::string::npos) << path << " names " << id << ": " << raw;
    }
  }
}

TEST_F(TenancyTest, WorkspacesListAndGetShowOnlyWhatTheCallerMaySee) {
  // acme sees itself only.
  std::vector<json::object> acme_list = ListAll("/v1/workspaces", acme_admin_);
  ASSERT_EQ(acme_list.size(), 1u);
  EXPECT_EQ(S(acme_list[0], "slug"), "acme");
  EXPECT_EQ(Call("GET", "/v1/workspaces/acme", acme_admin_).status, 200);
  Reply missing = Call("GET", "/v1/workspaces/nonexistent", acme_admin_);
  EXPECT_EQ(missing.status, 404) << missing;
  ExpectLikeMissing(Call("GET", "/v1/workspaces/default", acme_admin_), missing);
  // Even a cursor from before the first workspace (s0: the start) lists acme alone, and
  // one from before acme but after `default` (s1) the same: a cursor never widens the view.
  for (const char* cursor : {"czA", "czE"}) {
    Reply page = Call("GET", std::string("/v1/workspaces?cursor=") + cursor, acme_admin_);
    ASSERT_EQ(page.status, 200) << page;
    ASSERT_EQ(page.Array("/data").size(), 1u) << page;
    EXPECT_EQ(S(page.Array("/data")[0].as_object(), "slug"), "acme") << page;
  }

  // The root admin sees both, and each by slug.
  std::vector<json::object> root_list = ListAll("/v1/workspaces", admin_);
  std::set<std::string> slugs;
  for (const auto& w : root_list) {
    slugs.insert(S(w, "slug"));
  }
  EXPECT_EQ(slugs, (std::set<std::string>{"default", "acme"}));
  Reply got = Call("GET", "/v1/workspaces/acme", admin_);
  EXPECT_EQ(got.status, 200) << got;
  EXPECT_EQ(got.Str("/data/id"), acme_ws_id_);
  EXPECT_EQ(Call("GET", "/v1/workspaces/default", admin_).Str("/data/slug"), "default");
  Reply root_missing = Call("GET", "/v1/workspaces/nonexistent", admin_);
  EXPECT_EQ(root_missing.status, 404) << root_missing;

  // A non-admin key of the root workspace is an ordinary tenant.
  std::vector<json::object> reader_list = ListAll("/v1/workspaces", default_reader_);
  ASSERT_EQ(reader_list.size(), 1u);
  EXPECT_EQ(S(reader_list[0], "slug"), "default");
  ExpectLikeMissing(Call("GET", "/v1/workspaces/acme", default_reader_), missing);
}

TEST_F(TenancyTest, OnlyTheRootWorkspaceCreatesWorkspaces) {
  Reply r = Call("POST", "/v1/workspaces", acme_admin_, R"({"slug":"evil"})");
  EXPECT_EQ(r.status, 403) << r;
  EXPECT_EQ(r.ErrorCode(), "ROOT_WORKSPACE_REQUIRED") << r;
  Reply reader = Call("POST", "/v1/workspaces", default_reader_, R"({"slug":"evil"})");
  EXPECT_EQ(reader.status, 403) << reader;
  EXPECT_EQ(reader.ErrorCode(), "MISSING_SCOPE") << reader;
  EXPECT_EQ(Call("GET", "/v1/workspaces/evil", admin_).status, 404);
}

TEST_F(TenancyTest, TokensCarryTheirWorkspace) {
  Reply token = Call("POST", "/v1/auth/token", acme_admin_, "{}");
  ASSERT_EQ(token.status, 200) << token;
  std::string jwt = token.Str("/data/token");
  Reply me = Call("GET", "/v1/me", jwt);
  ASSERT_EQ(me.status, 200) << me;
  EXPECT_EQ(me.Str("/data/workspace/slug"), "acme");
  EXPECT_EQ(me.Str("/data/auth"), "jwt");
  Reply missing_get = Call("GET", "/v1/keys/key_doesnotexist", jwt);
  ExpectLikeMissing(Call("GET", "/v1/keys/" + default_admin_id_, jwt), missing_get);
  EXPECT_EQ(Ids(ListAll("/v1/keys", jwt)), (std::set<std::string>{acme_admin_id_}));
  Reply create = Call("POST", "/v1/workspaces", jwt, R"({"slug":"viajwt"})");
  EXPECT_EQ(create.status, 403) << create;
  EXPECT_EQ(create.ErrorCode(), "ROOT_WORKSPACE_REQUIRED") << create;

  // A root token still sees both workspaces.
  Reply root_token = Call("POST", "/v1/auth/token", admin_, "{}");
  ASSERT_EQ(root_token.status, 200) << root_token;
  EXPECT_EQ(ListAll("/v1/workspaces", root_token.Str("/data/token")).size(), 2u);
}

}  // namespace
}  // namespace kiln::testing
