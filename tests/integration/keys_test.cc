// API keys end to end (shared/API.md "Auth and tenancy"): mint, list, authenticate, scopes,
// revoke with confirmation, the last-admin guard, pagination and the activity feed.
#include <map>
#include <set>

#include "integration/server_fixture.h"

namespace kiln::testing {
namespace {

class KeysTest : public ServerTest {
 protected:
  std::string AdminId() {
    Reply me = Call("GET", "/v1/me", admin_);
    EXPECT_EQ(me.status, 200) << me;
    return me.Str("/data/key/id");
  }
};

TEST_F(KeysTest, AdminListsKeysInTheListEnvelope) {
  Reply r = Call("GET", "/v1/keys", admin_);
  ASSERT_EQ(r.status, 200) << r;
  ASSERT_TRUE(r.Find("/data") != nullptr && r.Find("/data")->is_array()) << r;
  ASSERT_TRUE(r.Find("/has_more") != nullptr && r.Find("/has_more")->is_bool()) << r;
  ASSERT_TRUE(r.Find("/next_cursor") != nullptr) << r;
  EXPECT_FALSE(r.Find("/has_more")->as_bool());
  EXPECT_TRUE(r.Find("/next_cursor")->is_null()) << r;
  ASSERT_EQ(r.Array("/data").size(), 1u) << r;
  const json::object& admin = r.Array("/data")[0].as_object();
  EXPECT_EQ(S(admin, "name"), "admin");
  EXPECT_EQ(S(admin, "status"), "active");
  EXPECT_EQ(S(admin, "prefix"), admin_.substr(0, 12));
  EXPECT_TRUE(S(admin, "id").starts_with("key_")) << S(admin, "id");
  EXPECT_EQ(Strings(admin.at("scopes").as_array()),
            (std::vector<std::string>{"read", "write", "exec", "admin"}));
  EXPECT_EQ(r.body.find(admin_), std::string::npos) << "the admin secret leaked into the list";
}

TEST_F(KeysTest, MintedKeyIsShownOnceAndWorks) {
  Reply created = Call("POST", "/v1/keys", admin_, R"({"name":"ci","scopes":["read"]})");
  ASSERT_EQ(created.status, 201) << created;
  std::string id = created.Str("/data/id");
  std::string secret = created.Str("/data/secret");
  EXPECT_TRUE(id.starts_with("key_")) << id;
  EXPECT_TRUE(secret.starts_with("kiln_sk_")) << secret;
  EXPECT_EQ(secret.size(), 8u + 43u) << secret;  // kiln_sk_ + base64url(32 bytes)
  EXPECT_EQ(secret.find_first_not_of(
                "kiln_sk_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-"),
            std::string::npos)
      << secret;
  EXPECT_EQ(created.Str("/data/prefix"), secret.substr(0, 12));
  EXPECT_EQ(created.Str("/data/name"), "ci");
  EXPECT_EQ(created.Str("/data/status"), "active");
  EXPECT_EQ(Strings(created.Array("/data/scopes")), std::vector<std::string>{"read"});
  EXPECT_EQ(created.Str("/data/createdBy"), AdminId());

  // Never again: not in the list, not in the single-key view.
  Reply list = Call("GET", "/v1/keys", admin_);
  ASSERT_EQ(list.status, 200) << list;
  EXPECT_EQ(list.body.find(secret), std::string::npos) << list;
  EXPECT_EQ(list.body.find(secret.substr(12)), std::string::npos) << list;
  bool listed = false;
  for (const auto& k : list.Array("/data")) {
    EXPECT_FALSE(k.as_object().contains("secret")) << json::serialize(k);
    listed = listed || S(k.as_object(), "id") == id;
  }
  EXPECT_TRUE(listed) << list;
  Reply one = Call("GET", "/v1/keys/" + id, admin_);
  ASSERT_EQ(one.status, 200) << one;
  EXPECT_FALSE(one.Has("/data/secret")) << one;
  EXPECT_EQ(one.body.find(secret), std::string::npos);
  EXPECT_EQ(one.Str("/data/name"), "ci");

  // The key authenticates, through either header.
  Reply me = Call("GET", "/v1/me", secret);
  ASSERT_EQ(me.status, 200) << me;
  EXPECT_EQ(me.Str("/data/auth"), "key");
  EXPECT_EQ(me.Str("/data/key/id"), id);
  EXPECT_EQ(me.Str("/data/key/name"), "ci");
  EXPECT_EQ(me.Str("/data/key/prefix"), secret.substr(0, 12));
  EXPECT_EQ(Strings(me.Array("/data/key/scopes")), std::vector<std::string>{"read"});
  EXPECT_EQ(me.Str("/data/workspace/slug"), "default");
  std::vector<std::string> caps = Strings(me.Array("/data/capabilities"));
  EXPECT_NE(std::find(caps.begin(), caps.end(), "keys.list"), caps.end());
  EXPECT_EQ(std::find(caps.begin(), caps.end(), "keys.create"), caps.end())
      << "a read key cannot mint keys, so keys.create is not a capability";
  Reply via_header = server().Request("GET", "/v1/me", "", {{"x-api-key", secret}});
  EXPECT_EQ(via_header.status, 200) << via_header;
  EXPECT_EQ(via_header.Str("/data/key/id"), id);
}

TEST_F(KeysTest, ReadKeyCannotMint) {
  std::string secret = S(MintKey("reader", R"(["read"])"), "secret");
  Reply r = Call("POST", "/v1/keys", secret, R"({"name":"sneaky"})");
  EXPECT_EQ(r.status, 403) << r;
  EXPECT_EQ(r.ErrorCode(), "MISSING_SCOPE") << r;
  EXPECT_NE(r.Str("/error/message").find("admin"), std::string::npos) << r;
  // Nor revoke.
  Reply revoke = Call("DELETE", "/v1/keys/" + AdminId() + "?confirm=" + AdminId(), secret);
  EXPECT_EQ(revoke.status, 403) << revoke;
  EXPECT_EQ(revoke.ErrorCode(), "MISSING_SCOPE") << revoke;
  // A write+read key is not an admin either.
  std::string writer = S(MintKey("writer", R"(["write","read"])"), "secret");
  Reply w = Call("POST", "/v1/keys", writer, R"({"name":"x","scopes":["read"]})");
  EXPECT_EQ(w.status, 403) << w;
  EXPECT_EQ(w.ErrorCode(), "MISSING_SCOPE") << w;
  // Only two keys were minted besides the bootstrap admin.
  EXPECT_EQ(ListAll("/v1/keys", admin_).size(), 3u);
}

TEST_F(KeysTest, AdminMintsAnyScopesAndDefaults) {
  json::object all = MintKey("all", R"(["read","write","exec","admin"])");
  EXPECT_EQ(Strings(all.at("scopes").as_array()),
            (std::vector<std::string>{"read", "write", "exec", "admin"}));
  json::object dflt = MintKey("default-scopes");
  EXPECT_EQ(Strings(dflt.at("scopes").as_array()),
            (std::vector<std::string>{"read", "write", "exec"}));
  // A minted admin key can mint in turn.
  json::object child = MintKey("child", R"(["exec"])", S(all, "secret"));
  EXPECT_EQ(S(child, "createdBy"), S(all, "id"));

  Reply unknown = Call("POST", "/v1/keys", admin_, R"({"name":"x","scopes":["root"]})");
  EXPECT_EQ(unknown.status, 400) << unknown;
  Reply empty = Call("POST", "/v1/keys", admin_, R"({"name":"x","scopes":[]})");
  EXPECT_EQ(empty.status, 400) << empty;
  Reply dup = Call("POST", "/v1/keys", admin_, R"({"name":"x","scopes":["read","read"]})");
  EXPECT_EQ(dup.status, 400) << dup;
  Reply noname = Call("POST", "/v1/keys", admin_, R"({"scopes":["read"]})");
  EXPECT_EQ(noname.status, 400) << noname;
  EXPECT_NE(noname.Str("/error/message").find("name"), std::string::npos) << noname;
  Reply control = Call("POST", "/v1/keys", admin_, R"({"name":"a\nb"})");
  EXPECT_EQ(control.status, 400) << control;
}

TEST_F(KeysTest, KeysCanExpire) {
  Reply r = Call("POST", "/v1/keys", admin_, R"({"name":"temp","expiresInSeconds":120})");
  ASSERT_EQ(r.status, 201) << r;
  EXPECT_FALSE(r.Str("/data/expiresAt").empty()) << r;
  EXPECT_EQ(r.Str("/data/status"), "active");
  Reply me = Call("GET", "/v1/me", r.Str("/data/secret"));
  ASSERT_EQ(me.status, 200) << me;
  EXPECT_EQ(me.Str("/data/key/expiresAt"), r.Str("/data/expiresAt"));
  // A token never outlives its key.
  Reply token = Call("POST", "/v1/auth/token", r.Str("/data/secret"), R"({"expiresIn":3600})");
  ASSERT_EQ(token.status, 200) << token;
  EXPECT_LE(token.Int("/data/expiresIn"), 120) << token;
  EXPECT_EQ(Call("POST", "/v1/keys", admin_, R"({"name":"t","expiresInSeconds":59})").status, 400);
  Reply never = Call("GET", "/v1/keys/" + AdminId(), admin_);
  ASSERT_NE(never.Find("/data/expiresAt"), nullptr);
  EXPECT_TRUE(never.Find("/data/expiresAt")->is_null()) << never;
}

TEST_F(KeysTest, RevokeNeedsConfirmationThenKeyStopsWorking) {
  json::object key = MintKey("ci", R"(["read"])");
  std::string id = S(key, "id"), secret = S(key, "secret");
  // Used once, so the authenticator has it cached: revocation must still apply at once.
  ASSERT_EQ(Call("GET", "/v1/me", secret).status, 200);

  Reply no_confirm = Call("DELETE", "/v1/keys/" + id, admin_);
  EXPECT_EQ(no_confirm.status, 409) << no_confirm;
  EXPECT_EQ(no_confirm.ErrorCode(), "CONFIRMATION_REQUIRED") << no_confirm;
  EXPECT_NE(no_confirm.Str("/error/hint").find("confirm=" + id), std::string::npos) << no_confirm;
  Reply wrong = Call("DELETE", "/v1/keys/" + id + "?confirm=nope", admin_);
  EXPECT_EQ(wrong.status, 409) << wrong;
  EXPECT_EQ(wrong.ErrorCode(), "CONFIRMATION_REQUIRED") << wrong;
  ASSERT_EQ(Call("GET", "/v1/me", secret).status, 200) << "an unconfirmed revoke did something";

  Reply revoked = Call("DELETE", "/v1/keys/" + id + "?confirm=" + id, admin_);
  ASSERT_EQ(revoked.status, 200) << revoked;
  EXPECT_EQ(revoked.Str("/data/status"), "revoked");
  EXPECT_EQ(revoked.Str("/data/id"), id);
  EXPECT_FALSE(revoked.Str("/data/revokedAt").empty()) << revoked;

  Reply denied = Call("GET", "/v1/me", secret);
  EXPECT_EQ(denied.status, 401) << denied;
  EXPECT_EQ(denied.ErrorCode(), "KEY_REVOKED") << denied;
  EXPECT_FALSE(denied.Header("www-authenticate").empty());

  // Revoking again is idempotent; the list shows it revoked.
  Reply again = Call("DELETE", "/v1/keys/" + id + "?confirm=" + id, admin_);
  EXPECT_EQ(again.status, 200) << again;
  EXPECT_EQ(again.Str("/data/status"), "revoked");
  Reply one = Call("GET", "/v1/keys/" + id, admin_);
  EXPECT_EQ(one.Str("/data/status"), "revoked") << one;

  // Confirming by name works too.
  json::object named = MintKey("by-name", R"(["read"])");
  Reply by_name = Call("DELETE", "/v1/keys/" + S(named, "id") + "?confirm=by-name", admin_);
  EXPECT_EQ(by_name.status, 200) << by_name;

  Reply missing = Call("DELETE", "/v1/keys/key_doesnotexist?confirm=key_doesnotexist", admin_);
  EXPECT_EQ(missing.status, 404) << missing;
}

TEST_F(KeysTest, LastAdminKeyCannotBeRevoked) {
  std::string admin_id = AdminId();
  Reply last = Call("DELETE", "/v1/keys/" + admin_id + "?confirm=" + admin_id, admin_);
  EXPECT_EQ(last.status, 409) << last;
  EXPECT_EQ(last.ErrorCode(), "LAST_ADMIN_KEY") << last;
  EXPECT_EQ(Call("GET", "/v1/me", admin_).status, 200);

  // With a second admin key the first can go; then the second is the last one.
  json::object second = MintKey("admin2", R"(["admin"])");
  Reply first_gone =
      Call("DELETE", "/v1/keys/" + admin_id + "?confirm=" + admin_id, S(second, "secret"));
  EXPECT_EQ(first_gone.status, 200) << first_gone;
  EXPECT_EQ(Call("GET", "/v1/me", admin_).status, 401);
  std::string id2 = S(second, "id");
  Reply self = Call("DELETE", "/v1/keys/" + id2 + "?confirm=" + id2, S(second, "secret"));
  EXPECT_EQ(self.status, 409) << self;
  EXPECT_EQ(self.ErrorCode(), "LAST_ADMIN_KEY") << self;
  EXPECT_EQ(Call("GET", "/v1/me", S(second, "secret")).status, 200);
}

// Two admins revoking each other at the same moment must not both succeed: the last-admin
// check and the revocation have to be one atomic step, or the workspace is locked out.
TEST_F(KeysTest, ConcurrentRevokesKeepOneAdmin) {
  int lockouts = 0;
  for (int round = 0; round < 30 && lockouts == 0; ++round) {
    Reply ws = Call("POST", "/v1/workspaces", admin_,
                    R"({"slug":"race-)" + std::to_string(round) + R"("})");
    ASSERT_EQ(ws.status, 201) << ws;
    std::string x = ws.Str("/data/key/secret"), x_id = ws.Str("/data/key/id");
    json::object y = MintKey("admin-y", R"(["admin"])", x);
    std::string y_id = S(y, "id");
    Reply rx, ry;
    std::thread tx(
        [&] { rx = Call("DELETE", "/v1/keys/" + x_id + "?confirm=" + x_id, S(y, "secret")); });
    std::thread ty([&] { ry = Call("DELETE", "/v1/keys/" + y_id + "?confirm=" + y_id, x); });
    tx.join();
    ty.join();
    bool x_ok = Call("GET", "/v1/me", x).status == 200;
    bool y_ok = Call("GET", "/v1/me", S(y, "secret")).status == 200;
    if (!x_ok && !y_ok) {
      ++lockouts;
      ADD_FAILURE() << "round " << round << ": both admin keys were revoked: " << rx << " / " << ry;
    }
  }
  EXPECT_EQ(lockouts, 0);
}

TEST_F(KeysTest, PaginationVisitsEveryKeyOnce) {
  std::set<std::string> want = {AdminId()};
  for (int i = 0; i < 5; ++i) {
    want.insert(S(MintKey("page-" + std::to_string(i)), "id"));
  }

  std::map<std::string, int> seen;
  std::string cursor;
  int pages = 0;
  while (true) {
    std::string path = "/v1/keys?limit=2";
    if (!cursor.empty()) {
      path += "&cursor=" + http::PercentEncode(cursor);
    }
    Reply r = Call("GET", path, admin_);
    ASSERT_EQ(r.status, 200) << r;
    ++pages;
    ASSERT_LE(r.Array("/data").size(), 2u) << r;
    for (const auto& k : r.Array("/data")) {
      ++seen[S(k.as_object(), "id")];
    }
    ASSERT_TRUE(r.Find("/has_more") != nullptr) << r;
    if (!r.Find("/has_more")->as_bool()) {
      EXPECT_TRUE(r.Find("/next_cursor")->is_null()) << r;
      break;
    }
    cursor = r.Str("/next_cursor");
    ASSERT_FALSE(cursor.empty()) << r;
    ASSERT_LT(pages, 10) << "pagination does not end";
  }
  EXPECT_EQ(pages, 3);
  EXPECT_EQ(seen.size(), want.size());
  for (const auto& id : want) {
    EXPECT_EQ(seen[id], 1) << id;
  }

  Reply bad = Call("GET", "/v1/keys?cursor=garbage!!", admin_);
  EXPECT_EQ(bad.status, 400) << bad;
  EXPECT_EQ(bad.ErrorCode(), "INVALID_CURSOR") << bad;
  Reply bad2 = Call("GET", "/v1/keys?cursor=eHl6", admin_);  // base64url of "xyz"
  EXPECT_EQ(bad2.status, 400) << bad2;
  EXPECT_EQ(bad2.ErrorCode(), "INVALID_CURSOR") << bad2;
  EXPECT_EQ(Call("GET", "/v1/keys?limit=0", admin_).status, 400);
  EXPECT_EQ(Call("GET", "/v1/keys?limit=201", admin_).status, 400);
  EXPECT_EQ(Call("GET", "/v1/keys?limit=200", admin_).status, 200);
}

// 19 digits overflow a 64-bit sequence number: not a cursor this server issued (and not a
// wrapped-around negative one that restarts or empties the list).
TEST_F(KeysTest, OverflowingCursorIsInvalid) {
  MintKey("one");
  std::string huge = crypto::Base64UrlEncode("s9999999999999999999");
  Reply keys = Call("GET", "/v1/keys?cursor=" + huge, admin_);
  EXPECT_EQ(keys.status, 400) << keys;
  EXPECT_EQ(keys.ErrorCode(), "INVALID_CURSOR") << keys;
  Reply events = Call("GET", "/v1/events?cursor=" + huge, admin_);
  EXPECT_EQ(events.status, 400) << events;
  EXPECT_EQ(events.ErrorCode(), "INVALID_CURSOR") << events;
  // The largest sequence number that fits is a valid (empty) position.
  std::string max = crypto::Base64UrlEncode("s9223372036854775807");
  Reply end = Call("GET", "/v1/keys?cursor=" + max, admin_);
  EXPECT_EQ(end.status, 200) << end;
  EXPECT_TRUE(end.Array("/data").empty()) << end;
}

TEST_F(KeysTest, EventsFeedIsNewestFirstWithActor) {
  std::string admin_id = AdminId();
  json::object key = MintKey("feed", R"(["read"])");
  std::string id = S(key, "id");
  ASSERT_EQ(Call("DELETE", "/v1/keys/" + id + "?confirm=" + id, admin_).status, 200);

  Reply r = Call("GET", "/v1/events", admin_);
  ASSERT_EQ(r.status, 200) << r;
  const json::array& events = r.Array("/data");
  ASSERT_GE(events.size(), 3u) << r;
  const json::object& newest = events[0].as_object();
  EXPECT_EQ(S(newest, "type"), "key.revoked") << r;
  EXPECT_EQ(S(newest, "subject"), id);
  EXPECT_EQ(S(newest, "actor"), admin_id);
  EXPECT_TRUE(S(newest, "id").starts_with("evt_"));
  const json::object& second = events[1].as_object();
  EXPECT_EQ(S(second, "type"), "key.created") << r;
  EXPECT_EQ(S(second, "subject"), id);
  EXPECT_EQ(S(second, "actor"), admin_id);
  EXPECT_EQ(S(second.at("data").as_object(), "name"), "feed");
  const json::object& oldest = events.back().as_object();
  EXPECT_EQ(S(oldest, "type"), "workspace.created") << r;
  EXPECT_TRUE(oldest.at("actor").is_null()) << "the bootstrap has no actor";
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_GE(S(events[i - 1].as_object(), "createdAt"), S(events[i].as_object(), "createdAt"));
  }

  // The feed pages newest first too, each event once.
  std::vector<std::string> walked;
  for (const auto& e : ListAll("/v1/events", admin_, 1)) {
    walked.push_back(S(e, "id"));
  }
  std::vector<std::string> all;
  for (const auto& e : events) {
    all.push_back(S(e.as_object(), "id"));
  }
  EXPECT_EQ(walked, all);
}

}  // namespace
}  // namespace kiln::testing
