#include "service/service.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <set>

namespace kiln::service {
namespace {

json::object Obj(std::string_view text) { return ParseJson(text)->as_object(); }

TEST(ValidateTest, TypesRequiredAndUnknownFields) {
  json::object schema = Obj(R"({"type": "object", "additionalProperties": false,
      "required": ["name"], "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 4},
        "n": {"type": "integer", "minimum": 1, "maximum": 5},
        "tags": {"type": "array", "uniqueItems": true, "items": {"type": "string", "enum": ["a", "b"]}},
        "slug": {"type": "string", "pattern": "^[a-z]+$"}}})");
  EXPECT_TRUE(Validate(schema, Obj(R"({"name": "ok", "n": 3, "tags": ["a", "b"]})"), "").ok());

  Status missing = Validate(schema, Obj(R"({"n": 1})"), "");
  EXPECT_EQ(missing.error_code(), "VALIDATION_FAILED");
  EXPECT_EQ(missing.message(), "name: is required");

  Status type = Validate(schema, Obj(R"({"name": 5})"), "");
  EXPECT_EQ(type.message(), "name: must be a string (got integer)");

  Status unknown = Validate(schema, Obj(R"({"name": "x", "nmae": 1})"), "");
  EXPECT_EQ(unknown.error_code(), "UNKNOWN_FIELD");
  EXPECT_NE(unknown.hint().find("name, n, tags, slug"), std::string::npos) << unknown.hint();

  EXPECT_FALSE(Validate(schema, Obj(R"({"name": ""})"), "").ok());
  EXPECT_FALSE(Validate(schema, Obj(R"({"name": "toolong"})"), "").ok());
  EXPECT_TRUE(Validate(schema, Obj(R"({"name": "ééé"})"), "").ok());  // characters, not bytes
  EXPECT_EQ(Validate(schema, Obj(R"({"name": "x", "n": 9})"), "").message(),
            "n: must be at most 5");
  EXPECT_EQ(Validate(schema, Obj(R"({"name": "x", "tags": ["a", "c"]})"), "").message(),
            "tags[1]: must be one of \"a\", \"b\"");
  EXPECT_FALSE(Validate(schema, Obj(R"({"name": "x", "tags": ["a", "a"]})"), "").ok());
  EXPECT_FALSE(Validate(schema, Obj(R"({"name": "x", "slug": "Bad"})"), "").ok());
  EXPECT_FALSE(Validate(schema, json::value(json::array{}), "").ok());
}

TEST(ValidateTest, MapsOfStrings) {
  // env and metadata: any names matching a pattern, each value a string, a bounded count.
  json::object schema = Obj(R"({"type": "object", "maxProperties": 3,
      "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$"},
      "additionalProperties": {"type": "string", "maxLength": 5}})");
  EXPECT_TRUE(Validate(schema, Obj(R"({"A": "1", "b_2": "xyz"})"), "env").ok());
  Status value = Validate(schema, Obj(R"({"A": 1})"), "env");
  EXPECT_EQ(value.message(), "env.A: must be a string (got integer)");
  Status name = Validate(schema, Obj(R"({"A-B": "1"})"), "env");
  EXPECT_EQ(name.error_code(), "VALIDATION_FAILED");
  EXPECT_NE(name.message().find("env.A-B (name)"), std::string::npos) << name.message();
  EXPECT_FALSE(Validate(schema, Obj(R"({"A": "123456"})"), "env").ok());
  Status many = Validate(schema, Obj(R"({"A": "", "B": "", "C": "", "D": ""})"), "env");
  EXPECT_EQ(many.message(), "env: must have at most 3 fields");
}

TEST(CursorTest, RoundTripAndGarbage) {
  auto seq = DecodeCursor(EncodeCursor(12345));
  ASSERT_TRUE(seq.ok());
  EXPECT_EQ(*seq, 12345);
  EXPECT_EQ(DecodeCursor("not a cursor!").status().error_code(), "INVALID_CURSOR");
  EXPECT_EQ(DecodeCursor(crypto::Base64UrlEncode("s12x")).status().error_code(), "INVALID_CURSOR");
}

class ServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kiln-service-test.XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    store_ = std::move(store::OpenSqliteStore(dir_ + "/kiln.db")).value();
    admin_secret_ = **auth::Bootstrap(*store_, dir_, clock_);
    auth_ = std::make_unique<auth::Authenticator>(*store_, "jwt", clock_);
    // No runtime: these tests cover the tenancy operations and the definitions.
    service_ = std::make_unique<Service>(
        Deps{*store_, *auth_, clock_, config_, box_, nullptr, "not in unit tests"});
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  Result<json::value> Call(const std::string& secret, std::string_view op, std::string_view input) {
    auto principal = auth_->Authenticate(secret);
    if (!principal.ok()) {
      return principal.status();
    }
    Context ctx{*principal, "req_test", nullptr, false};
    const Operation* o = service_->Find(op);
    EXPECT_NE(o, nullptr) << op;
    return service_->Call(*o, ctx, Obj(input));
  }

  std::string dir_;
  FakeClock clock_;
  Config config_;
  crypto::SecretBox box_ = crypto::SecretBox::FromKey(std::string(32, 'k'));
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<auth::Authenticator> auth_;
  std::unique_ptr<Service> service_;
  std::string admin_secret_;
};

TEST_F(ServiceTest, OperationsAreWellFormed) {
  for (const auto& op : service_->operations()) {
    EXPECT_FALSE(op.summary.empty()) << op.name;
    EXPECT_FALSE(op.description.empty()) << op.name;
    EXPECT_EQ(op.input.at("type"), "object") << op.name;
    EXPECT_TRUE(op.path.starts_with("/v1/")) << op.name;
    EXPECT_TRUE(op.run) << op.name;
    // Destructive operations take the confirmation they demand.
    if (op.destructive) {
      EXPECT_TRUE(op.input.at("properties").as_object().contains("confirm")) << op.name;
    }
  }
}

TEST_F(ServiceTest, KeysCreateRevokeWithConfirmationAndScopes) {
  auto created = Call(admin_secret_, "keys.create", R"({"name": "ci", "scopes": ["read"]})");
  ASSERT_TRUE(created.ok()) << created.status().ToString();
  std::string secret(created->at("secret").as_string());
  std::string id(created->at("id").as_string());

  // A read key can list but not mint, and nobody mints above their own scopes.
  EXPECT_TRUE(Call(secret, "keys.list", "{}").ok());
  EXPECT_EQ(Call(secret, "keys.create", R"({"name": "x"})").status().error_code(), "MISSING_SCOPE");

  EXPECT_EQ(Call(admin_secret_, "keys.revoke", "{\"id\": \"" + id + "\"}").status().error_code(),
            "CONFIRMATION_REQUIRED");
  auto revoked =
      Call(admin_secret_, "keys.revoke", "{\"id\": \"" + id + "\", \"confirm\": \"ci\"}");
  ASSERT_TRUE(revoked.ok()) << revoked.status().ToString();
  EXPECT_EQ(revoked->at("status"), "revoked");
  EXPECT_EQ(Call(secret, "keys.list", "{}").status().error_code(), "KEY_REVOKED");

  // The bootstrap admin key is the last admin key: revoking it would lock everyone out.
  auto me = Call(admin_secret_, "me.get", "{}");
  std::string admin_id(me->at("key").at("id").as_string());
  EXPECT_EQ(Call(admin_secret_, "keys.revoke",
                 "{\"id\": \"" + admin_id + "\", \"confirm\": \"" + admin_id + "\"}")
                .status()
                .error_code(),
            "LAST_ADMIN_KEY");
}

TEST_F(ServiceTest, WorkspacesAreIsolated) {
  auto acme = Call(admin_secret_, "workspaces.create", R"({"slug": "acme"})");
  ASSERT_TRUE(acme.ok()) << acme.status().ToString();
  std::string acme_secret(acme->at("key").at("secret").as_string());
  EXPECT_EQ(Call(admin_secret_, "workspaces.create", R"({"slug": "acme"})").status().error_code(),
            "WORKSPACE_EXISTS");
  EXPECT_EQ(Call(admin_secret_, "workspaces.create", R"({"slug": "A"})").status().error_code(),
            "VALIDATION_FAILED");

  auto admin_me = Call(admin_secret_, "me.get", "{}");
  std::string default_key(admin_me->at("key").at("id").as_string());
  EXPECT_EQ(
      Call(acme_secret, "keys.get", "{\"id\": \"" + default_key + "\"}").status().error_code(),
      "KEY_NOT_FOUND");
  EXPECT_EQ(Call(acme_secret, "workspaces.get", R"({"slug": "default"})").status().error_code(),
            "WORKSPACE_NOT_FOUND");
  EXPECT_EQ(Call(acme_secret, "workspaces.create", R"({"slug": "evil"})").status().error_code(),
            "ROOT_WORKSPACE_REQUIRED");
  auto mine = Call(acme_secret, "workspaces.list", "{}");
  ASSERT_TRUE(mine.ok());
  ASSERT_EQ(mine->at("items").as_array().size(), 1u);
  EXPECT_EQ(mine->at("items").as_array()[0].at("slug"), "acme");
  auto all = Call(admin_secret_, "workspaces.list", "{}");
  EXPECT_EQ(all->at("items").as_array().size(), 2u);
  auto keys = Call(acme_secret, "keys.list", "{}");
  ASSERT_EQ(keys->at("items").as_array().size(), 1u);
}

TEST_F(ServiceTest, PaginationWalksEveryKeyOnce) {
  for (int i = 0; i < 6; ++i) {
    ASSERT_TRUE(
        Call(admin_secret_, "keys.create", "{\"name\": \"k" + std::to_string(i) + "\"}").ok());
  }
  std::set<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    std::string input =
        "{\"limit\": 3" + (cursor.empty() ? "" : ", \"cursor\": \"" + cursor + "\"") + "}";
    auto page = Call(admin_secret_, "keys.list", input);
    ASSERT_TRUE(page.ok()) << page.status().ToString();
    for (const auto& k : page->at("items").as_array()) {
      EXPECT_TRUE(seen.insert(std::string(k.at("id").as_string())).second);
    }
    cursor =
        page->at("next_cursor").is_string() ? std::string(page->at("next_cursor").as_string()) : "";
    ++pages;
  } while (!cursor.empty());
  EXPECT_EQ(seen.size(), 7u);  // the bootstrap admin key and six more
  EXPECT_EQ(pages, 3);
}

}  // namespace
}  // namespace kiln::service
