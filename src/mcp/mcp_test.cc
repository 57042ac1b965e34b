#include "mcp/mcp.h"

#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <regex>
#include <set>

namespace kiln::mcp {
namespace {

json::object Obj(std::string_view text) { return ParseJson(text)->as_object(); }

// A Server over a real service and store (no runtime: instances are not needed to speak
// the protocol), driven through Handle as the listener would.
class McpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kiln-mcp-test.XXXXXX";
    dir_ = ::mkdtemp(tmpl);
    store_ = std::move(store::OpenSqliteStore(dir_ + "/kiln.db")).value();
    admin_ = **auth::Bootstrap(*store_, dir_, clock_);
    auth_ = std::make_unique<auth::Authenticator>(*store_, "jwt", clock_);
    service_ = std::make_unique<service::Service>(
        service::Deps{*store_, *auth_, clock_, config_, box_, nullptr, "not in unit tests"});
    config_.mcp.tools_page_size = 20;
    server_ = std::make_unique<Server>(Deps{*service_, *auth_, limiter_, metrics_, config_});
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  struct Answer {
    int status = 0;
    http::Headers headers;
    std::string body;
    json::object json;  // the body, when it is a JSON object
    std::string Header(std::string_view name) const {
      for (const auto& [n, v] : headers) {
        if (n == name) {
          return v;
        }
      }
      return {};
    }
  };

  Answer Send(std::string method, std::string body, http::Headers extra = {},
              const std::string& key = "") {
    http::Request req;
    req.method = std::move(method);
    req.target = req.path = "/mcp";
    req.body = std::move(body);
    req.headers = {{"host", "127.0.0.1:8080"},
                   {"authorization", "Bearer " + (key.empty() ? admin_ : key)},
                   {"content-type", "application/json"},
                   {"accept", "application/json, text/event-stream"}};
    for (auto& [n, v] : extra) {  // replaces a default of the same name
      std::erase_if(req.headers, [&](const auto& h) { return h.first == n; });
      req.headers.emplace_back(n, v);
    }
    http::Response res;
    server_->Handle(req, res);
    Answer a{res.status, res.headers, res.body, {}};
    if (auto parsed = ParseJson(res.body); parsed.ok() && parsed->is_object()) {
      a.json = parsed->as_object();
    }
    return a;
  }

  // initialize; answers the session id.
  std::string Open(const std::string& key = "") {
    Answer a = Send("POST",
                    R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
                      "protocolVersion":"2025-11-25","capabilities":{},
                      "clientInfo":{"name":"t","version":"1"}}})",
                    {}, key);
    EXPECT_EQ(a.status, 200) << a.body;
    return a.Header("Mcp-Session-Id");
  }

  Answer Call(const std::string& session, const std::string& message, const std::string& key = "") {
    return Send("POST", message, {{"mcp-session-id", session}}, key);
  }

  std::string dir_;
  FakeClock clock_;
  Config config_;
  crypto::SecretBox box_ = crypto::SecretBox::FromKey(std::string(32, 'k'));
  std::unique_ptr<store::Store> store_;
  std::unique_ptr<auth::Authenticator> auth_;
  auth::RateLimiter limiter_{1000, 1000, clock_};
  Metrics metrics_;
  std::unique_ptr<service::Service> service_;
  std::unique_ptr<Server> server_;
  std::string admin_;
};

TEST_F(McpTest, OneToolPerOperationWithSchemasAndAnnotations) {
  std::vector<json::object> tools = server_->Tools(auth::kAllScopes);
  ASSERT_EQ(tools.size(), service_->operations().size());
  std::set<std::string> names;
  std::regex snake("^[a-z][a-z0-9]*(_[a-z0-9]+)*$");
  for (size_t i = 0; i < tools.size(); ++i) {
    const json::object& t = tools[i];
    const service::Operation& op = service_->operations()[i];
    std::string name(t.at("name").as_string());
    EXPECT_EQ(name, ToolName(op.name));
    EXPECT_TRUE(std::regex_match(name, snake)) << name;
    EXPECT_LE(name.size(), 64u) << name;
    EXPECT_TRUE(names.insert(name).second) << "duplicate " << name;
    EXPECT_FALSE(t.at("description").as_string().empty()) << name;
    EXPECT_EQ(t.at("inputSchema").at("type"), "object") << name;
    if (t.contains("outputSchema")) {
      EXPECT_EQ(t.at("outputSchema").at("type"), "object") << name;
    }
    const json::object& a = t.at("annotations").as_object();
    EXPECT_EQ(a.at("readOnlyHint").as_bool(), op.read_only) << name;
    EXPECT_EQ(a.at("destructiveHint").as_bool(), op.destructive || op.method == "DELETE") << name;
    if (op.destructive) {
      EXPECT_TRUE(t.at("inputSchema").at("properties").as_object().contains("confirm")) << name;
    }
  }
  // REST-only upload fields are not offered to models.
  auto deploy = std::find_if(tools.begin(), tools.end(),
                             [](const auto& t) { return t.at("name") == "apps_deploy"; });
  ASSERT_NE(deploy, tools.end());
  EXPECT_FALSE(deploy->at("inputSchema").at("properties").as_object().contains("multipart"));
  EXPECT_TRUE(deploy->at("annotations").at("openWorldHint").as_bool());
  auto kill = std::find_if(tools.begin(), tools.end(),
                           [](const auto& t) { return t.at("name") == "sandboxes_kill"; });
  ASSERT_NE(kill, tools.end());
  EXPECT_TRUE(kill->at("annotations").at("destructiveHint").as_bool());
}

TEST_F(McpTest, ReadOnlyKeysSeeOnlyWhatTheyMayDo) {
  std::set<std::string> visible;
  for (const auto& t : server_->Tools(auth::kRead)) {
    visible.insert(std::string(t.at("name").as_string()));
  }
  EXPECT_TRUE(visible.contains("apps_list"));
  EXPECT_TRUE(visible.contains("apps_get"));
  for (const char* hidden : {"apps_create", "apps_delete", "apps_deploy", "sandboxes_exec",
                             "keys_create", "sandboxes_kill"}) {
    EXPECT_FALSE(visible.contains(hidden)) << hidden;
  }
}

TEST_F(McpTest, InitializeNegotiatesTheVersion) {
  for (auto [asked, answered] :
       std::vector<std::pair<std::string, std::string>>{{"2025-11-25", "2025-11-25"},
                                                        {"2025-06-18", "2025-06-18"},
                                                        {"2025-03-26", "2025-03-26"},
                                                        {"2024-11-05", "2025-11-25"},
                                                        {"2099-01-01", "2025-11-25"}}) {
    Answer a = Send("POST", R"({"jsonrpc":"2.0","id":"x","method":"initialize","params":{
                                "protocolVersion":")" +
                                asked + R"(","capabilities":{}}})");
    ASSERT_EQ(a.status, 200) << a.body;
    EXPECT_EQ(a.json.at("id"), "x");
    EXPECT_EQ(a.json.at("result").at("protocolVersion").as_string(), answered) << asked;
    EXPECT_EQ(a.json.at("result").at("serverInfo").at("name"), "kiln");
    EXPECT_TRUE(a.json.at("result").at("capabilities").as_object().contains("tools"));
    EXPECT_EQ(a.Header("Mcp-Session-Id").size(), 32u);
  }
  EXPECT_EQ(server_->Sessions(), 5u);
}

TEST_F(McpTest, SessionLifecycle) {
  std::string s = Open();
  Answer note = Call(s, R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  EXPECT_EQ(note.status, 202);
  EXPECT_TRUE(note.body.empty());
  Answer ping = Call(s, R"({"jsonrpc":"2.0","id":7,"method":"ping"})");
  EXPECT_EQ(ping.status, 200);
  EXPECT_EQ(ping.json.at("result"), json::object());

  // Without the header: 400; with an unknown one: 404; with another key's: 404 too.
  EXPECT_EQ(Send("POST", R"({"jsonrpc":"2.0","id":8,"method":"ping"})").status, 400);
  EXPECT_EQ(Call("0123456789abcdef0123456789abcdef", R"({"jsonrpc":"2.0","id":9,"method":"ping"})")
                .status,
            404);
  auto other = service_->Find("keys.create");
  auto principal = auth_->Authenticate(admin_);
  service::Context ctx{*principal, "req", nullptr, false};
  auto key = service_->Call(*other, ctx, Obj(R"({"name": "other", "scopes": ["read"]})"));
  ASSERT_TRUE(key.ok()) << key.status().ToString();
  std::string other_secret(key->at("secret").as_string());
  EXPECT_EQ(Call(s, R"({"jsonrpc":"2.0","id":10,"method":"ping"})", other_secret).status, 404);

  // DELETE ends it.
  EXPECT_EQ(Send("DELETE", "", {{"mcp-session-id", s}}).status, 204);
  EXPECT_EQ(Call(s, R"({"jsonrpc":"2.0","id":11,"method":"ping"})").status, 404);
}

TEST_F(McpTest, ToolsListPagesWithACursor) {
  std::string s = Open();
  std::set<std::string> seen;
  std::string cursor;
  int pages = 0;
  do {
    std::string params = cursor.empty() ? "{}" : R"({"cursor":")" + cursor + "\"}";
    Answer a = Call(s, R"({"jsonrpc":"2.0","id":1,"method":"tools/list","params":)" + params + "}");
    ASSERT_EQ(a.status, 200) << a.body;
    const json::object& result = a.json.at("result").as_object();
    for (const auto& t : result.at("tools").as_array()) {
      EXPECT_TRUE(seen.insert(std::string(t.at("name").as_string())).second);
    }
    cursor = result.contains("nextCursor") ? std::string(result.at("nextCursor").as_string()) : "";
    ++pages;
  } while (!cursor.empty() && pages < 100);
  EXPECT_EQ(seen.size(), service_->operations().size());
  EXPECT_GT(pages, 1);
  Answer bad = Call(s, R"({"jsonrpc":"2.0","id":2,"method":"tools/list","params":{"cursor":"x"}})");
  EXPECT_EQ(bad.json.at("error").at("code"), -32602);
}

TEST_F(McpTest, ToolCallsAnswerLikeRest) {
  std::string s = Open();
  Answer list = Call(s, R"({"jsonrpc":"2.0","id":1,"method":"tools/call",
                            "params":{"name":"keys_list","arguments":{}}})");
  ASSERT_EQ(list.status, 200) << list.body;
  const json::object& r = list.json.at("result").as_object();
  EXPECT_FALSE(r.contains("isError"));
  EXPECT_EQ(r.at("structuredContent").at("items").as_array().size(), 1u);  // the admin key
  // structuredContent is what outputSchema says (clients such as the official SDK check).
  const json::object* schema = nullptr;
  std::vector<json::object> tools = server_->Tools(auth::kAllScopes);
  for (const auto& t : tools) {
    if (t.at("name") == "keys_list") {
      schema = &t.at("outputSchema").as_object();
    }
  }
  ASSERT_NE(schema, nullptr);
  EXPECT_TRUE(service::Validate(*schema, r.at("structuredContent"), "").ok());
  // The text copy is the same JSON.
  EXPECT_EQ(*ParseJson(r.at("content").at(0).at("text").as_string()), r.at("structuredContent"));

  // A failing operation: a result with isError and REST's code and hint, not a protocol error.
  Answer missing = Call(s, R"({"jsonrpc":"2.0","id":2,"method":"tools/call",
                               "params":{"name":"keys_get","arguments":{"id":"key_nope"}}})");
  ASSERT_EQ(missing.status, 200);
  const json::object& m = missing.json.at("result").as_object();
  EXPECT_EQ(m.at("isError"), true);
  json::value envelope = *ParseJson(m.at("content").at(0).at("text").as_string());
  EXPECT_EQ(envelope.at("error").at("code"), "KEY_NOT_FOUND") << envelope;
  EXPECT_FALSE(envelope.at("error").at("hint").as_string().empty());

  // Bad arguments are the model's to fix: isError with the validation message.
  Answer invalid = Call(s, R"({"jsonrpc":"2.0","id":3,"method":"tools/call",
                               "params":{"name":"keys_create","arguments":{"name":"x","nmae":"y"}}})");
  json::value why =
      *ParseJson(invalid.json.at("result").at("content").at(0).at("text").as_string());
  EXPECT_EQ(why.at("error").at("code"), "UNKNOWN_FIELD") << why;

  // Destructive tools want the exact name.
  Answer revoke = Call(s, R"({"jsonrpc":"2.0","id":4,"method":"tools/call",
                              "params":{"name":"keys_revoke","arguments":{"id":"x","confirm":"y"}}})");
  EXPECT_EQ(revoke.json.at("result").at("isError"), true);

  // Unknown tools and malformed params are protocol errors.
  Answer unknown = Call(s, R"({"jsonrpc":"2.0","id":5,"method":"tools/call",
                               "params":{"name":"nope","arguments":{}}})");
  EXPECT_EQ(unknown.json.at("error").at("code"), -32602);
  Answer args = Call(s, R"({"jsonrpc":"2.0","id":6,"method":"tools/call",
                            "params":{"name":"keys_list","arguments":[1]}})");
  EXPECT_EQ(args.json.at("error").at("code"), -32602);
  Answer method = Call(s, R"({"jsonrpc":"2.0","id":7,"method":"resources/list"})");
  EXPECT_EQ(method.json.at("error").at("code"), -32601);
}

TEST_F(McpTest, ReadOnlyKeyCannotCallWriteTools) {
  auto principal = auth_->Authenticate(admin_);
  service::Context ctx{*principal, "req", nullptr, false};
  auto key = service_->Call(*service_->Find("keys.create"), ctx,
                            Obj(R"({"name": "reader", "scopes": ["read"]})"));
  ASSERT_TRUE(key.ok());
  std::string reader(key->at("secret").as_string());
  std::string s = Open(reader);
  Answer list = Call(s, R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})", reader);
  for (const auto& t : list.json.at("result").at("tools").as_array()) {
    EXPECT_TRUE(t.at("annotations").at("readOnlyHint").as_bool() || t.at("name") == "auth_token" ||
                t.at("name") == "me_get")
        << t.at("name");
  }
  Answer call = Call(s, R"({"jsonrpc":"2.0","id":2,"method":"tools/call",
                            "params":{"name":"keys_create","arguments":{"name":"x"}}})",
                     reader);
  json::value why = *ParseJson(call.json.at("result").at("content").at(0).at("text").as_string());
  EXPECT_EQ(why.at("error").at("code"), "MISSING_SCOPE");
}

TEST_F(McpTest, TransportRefusals) {
  std::string s = Open();
  const std::string ping = R"({"jsonrpc":"2.0","id":1,"method":"ping"})";
  // DNS rebinding: a foreign Host or Origin is refused before anything else.
  EXPECT_EQ(Send("POST", ping, {{"host", "evil.example.com"}}).status, 403);
  EXPECT_EQ(
      Send("POST", ping, {{"mcp-session-id", s}, {"origin", "http://evil.example.com"}}).status,
      403);
  Answer local = Send("POST", ping, {{"mcp-session-id", s}, {"origin", "http://localhost:3000"}});
  EXPECT_EQ(local.status, 200);
  EXPECT_EQ(local.Header("Access-Control-Allow-Origin"), "http://localhost:3000");
  EXPECT_NE(local.Header("Access-Control-Expose-Headers").find("Mcp-Session-Id"),
            std::string::npos);
  Answer preflight = Send("OPTIONS", "", {{"origin", "http://localhost:3000"}});
  EXPECT_EQ(preflight.status, 204);
  EXPECT_NE(preflight.Header("Access-Control-Allow-Headers").find("Mcp-Session-Id"),
            std::string::npos);

  // Credentials as for REST.
  Answer anonymous = Send("POST", ping, {{"authorization", ""}});
  EXPECT_EQ(anonymous.status, 401);
  EXPECT_EQ(anonymous.Header("WWW-Authenticate"), "Bearer");

  // Headers and bodies.
  EXPECT_EQ(Send("POST", ping, {{"mcp-session-id", s}, {"content-type", "text/plain"}}).status,
            415);
  EXPECT_EQ(Send("POST", ping, {{"mcp-session-id", s}, {"accept", "text/html"}}).status, 406);
  EXPECT_EQ(
      Send("POST", ping, {{"mcp-session-id", s}, {"mcp-protocol-version", "1999-01-01"}}).status,
      400);
  EXPECT_EQ(
      Send("POST", ping, {{"mcp-session-id", s}, {"mcp-protocol-version", "2025-06-18"}}).status,
      200);
  Answer parse = Send("POST", "{nope", {{"mcp-session-id", s}});
  EXPECT_EQ(parse.status, 400);
  EXPECT_EQ(parse.json.at("error").at("code"), -32700);
  Answer batch = Send("POST", "[" + ping + "]", {{"mcp-session-id", s}});
  EXPECT_EQ(batch.status, 400);
  EXPECT_EQ(batch.json.at("error").at("code"), -32600);
  EXPECT_EQ(Send("POST", R"({"id":1,"method":"ping"})", {{"mcp-session-id", s}}).status, 400);
  // A newer revision's probe gets a plain 4xx, so the client falls back to initialize.
  Answer discover = Send("POST", R"({"jsonrpc":"2.0","id":1,"method":"server/discover"})");
  EXPECT_GE(discover.status, 400);
  EXPECT_LT(discover.status, 500);
  // GET only resumes a stream; there is none outside a request.
  EXPECT_EQ(Send("GET", "", {{"mcp-session-id", s}}).status, 405);
  EXPECT_EQ(Send("GET", "", {{"mcp-session-id", s}, {"accept", "application/json"}}).status, 406);
  EXPECT_EQ(Send("GET", "", {{"mcp-session-id", s}, {"last-event-id", "9_3"}}).status, 400);
  EXPECT_EQ(Send("PUT", ping).status, 405);
}

TEST_F(McpTest, AnswersToUnknownQuestionsAreAccepted) {
  std::string s = Open();
  Answer a = Call(s, R"({"jsonrpc":"2.0","id":"kiln-99","result":{}})");
  EXPECT_EQ(a.status, 202);
  Answer bad = Call(s, R"({"jsonrpc":"2.0","id":"kiln-99"})");
  EXPECT_EQ(bad.status, 400);
}

}  // namespace
}  // namespace kiln::mcp
