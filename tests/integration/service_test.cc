// The service endpoints and the conventions every response follows (shared/API.md
// "Service", DESIGN.md §5): /healthz, errors in the envelope, 405 with Allow, request ids,
// /metrics and the OpenAPI document.
#include <regex>

#include "integration/server_fixture.h"

namespace kiln::testing {
namespace {

class ServiceTest : public ServerTest {};

void ExpectEnvelope(const Reply& r, const std::string& code) {
  EXPECT_EQ(r.ErrorCode(), code) << r;
  EXPECT_FALSE(r.Str("/error/message").empty()) << r;
  EXPECT_FALSE(r.Str("/error/hint").empty()) << r;
  EXPECT_FALSE(r.Str("/error/requestId").empty()) << r;
  EXPECT_EQ(r.Str("/error/requestId"), r.Header("x-request-id")) << r;
  EXPECT_TRUE(r.Header("content-type").starts_with("application/json")) << r.Header("content-type");
}

TEST_F(ServiceTest, HealthzNeedsNoAuth) {
  Reply r = server().Request("GET", "/healthz");
  EXPECT_EQ(r.status, 200) << r;
  EXPECT_EQ(r.Str("/data/status"), "ok") << r;
  EXPECT_TRUE(r.Header("content-type").starts_with("application/json"));
}

TEST_F(ServiceTest, UnknownRouteIs404InTheEnvelope) {
  Reply r = server().Request("GET", "/v1/no-such-thing");
  EXPECT_EQ(r.status, 404) << r;
  ExpectEnvelope(r, "ROUTE_NOT_FOUND");
  // Authentication comes after routing: an unknown route with a key is still 404.
  Reply with_key = Call("GET", "/v1/nope/deeper", admin_);
  EXPECT_EQ(with_key.status, 404) << with_key;
  ExpectEnvelope(with_key, "ROUTE_NOT_FOUND");
}

TEST_F(ServiceTest, WrongMethodIs405WithAllow) {
  Reply r = Call("PUT", "/v1/keys", admin_, "{}");
  EXPECT_EQ(r.status, 405) << r;
  ExpectEnvelope(r, "METHOD_NOT_ALLOWED");
  std::string allow = r.Header("allow");
  EXPECT_NE(allow.find("GET"), std::string::npos) << allow;
  EXPECT_NE(allow.find("POST"), std::string::npos) << allow;
  EXPECT_EQ(allow.find("PUT"), std::string::npos) << allow;

  Reply del = server().Request("DELETE", "/healthz");
  EXPECT_EQ(del.status, 405) << del;
  EXPECT_NE(del.Header("allow").find("GET"), std::string::npos) << del.Header("allow");

  Reply key = Call("POST", "/v1/keys/key_x", admin_, "{}");
  EXPECT_EQ(key.status, 405) << key;
  EXPECT_NE(key.Header("allow").find("DELETE"), std::string::npos) << key.Header("allow");
  EXPECT_NE(key.Header("allow").find("GET"), std::string::npos) << key.Header("allow");
}

TEST_F(ServiceTest, EveryResponseHasARequestId) {
  std::vector<Reply> replies = {
      server().Request("GET", "/healthz"),
      server().Request("GET", "/metrics"),
      server().Request("GET", "/v1/openapi.json"),
      server().Request("GET", "/v1/missing"),
      server().Request("GET", "/v1/me"),  // 401
      Call("GET", "/v1/me", admin_),
      Call("POST", "/v1/keys", admin_, "{not json"),
      Call("DELETE", "/healthz", admin_),
  };
  std::set<std::string> ids;
  for (const Reply& r : replies) {
    std::string id = r.Header("x-request-id");
    EXPECT_FALSE(id.empty()) << "no X-Request-Id on " << r;
    ids.insert(id);
  }
  EXPECT_EQ(ids.size(), replies.size()) << "request ids must be unique per request";
}

TEST_F(ServiceTest, ClientRequestIdIsEchoedWhenValid) {
  Reply r = server().Request("GET", "/healthz", "", {{"x-request-id", "trace-42_abc.1"}});
  EXPECT_EQ(r.Header("x-request-id"), "trace-42_abc.1");

  Reply err = server().Request("GET", "/v1/me", "", {{"x-request-id", "my-trace-7"}});
  EXPECT_EQ(err.status, 401) << err;
  EXPECT_EQ(err.Header("x-request-id"), "my-trace-7");
  EXPECT_EQ(err.Str("/error/requestId"), "my-trace-7") << err;

  // Anything odd is replaced rather than echoed into headers and logs.
  Reply odd = server().Request("GET", "/healthz", "", {{"x-request-id", "bad id/<script>"}});
  EXPECT_FALSE(odd.Header("x-request-id").empty());
  EXPECT_NE(odd.Header("x-request-id"), "bad id/<script>");
  Reply too_long =
      server().Request("GET", "/healthz", "", {{"x-request-id", std::string(300, 'a')}});
  EXPECT_FALSE(too_long.Header("x-request-id").empty());
  EXPECT_NE(too_long.Header("x-request-id"), std::string(300, 'a'));
}

// The value of one sample line `name{labels} value`, or -1 when absent.
double Sample(const std::string& text, const std::string& name_and_labels) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(name_and_labels + " ")) {
      return std::strtod(line.c_str() + name_and_labels.size() + 1, nullptr);
    }
  }
  return -1;
}

TEST_F(ServiceTest, MetricsArePrometheusTextWithRouteLabels) {
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(server().Request("GET", "/healthz").status, 200);
  }
  EXPECT_EQ(Call("GET", "/v1/me", admin_).status, 200);
  EXPECT_EQ(Call("GET", "/v1/keys/key_nothere", admin_).status, 404);
  EXPECT_EQ(server().Request("GET", "/v1/unknown/abc123").status, 404);

  Reply r = server().Request("GET", "/metrics");
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_TRUE(r.Header("content-type").starts_with("text/plain")) << r.Header("content-type");
  const std::string& m = r.body;
  EXPECT_NE(m.find("# TYPE kiln_http_requests_total counter"), std::string::npos) << m;
  EXPECT_NE(m.find("# HELP kiln_http_requests_total "), std::string::npos) << m;
  EXPECT_GE(Sample(m, R"(kiln_http_requests_total{route="/healthz",method="GET",code="200"})"), 3)
      << m;
  EXPECT_GE(Sample(m, R"(kiln_http_requests_total{route="/v1/me",method="GET",code="200"})"), 1)
      << m;
  // The route label is the pattern, not the path: ids do not explode the series count.
  EXPECT_GE(Sample(m, R"(kiln_http_requests_total{route="/v1/keys/{id}",method="GET",code="404"})"),
            1)
      << m;
  EXPECT_EQ(m.find("key_nothere"), std::string::npos) << m;
  EXPECT_EQ(m.find("abc123"), std::string::npos) << m;
  EXPECT_NE(m.find("kiln_http_request_duration_seconds_bucket{"), std::string::npos) << m;
  EXPECT_NE(m.find("kiln_uptime_seconds"), std::string::npos) << m;

  // Every non-comment line is `name{labels} value` or `name value`.
  std::regex sample(
      R"(^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\]|\\.)*",?)*\})? [-+0-9.eEinfINFaN]+$)");
  std::istringstream in(m);
  std::string line;
  int samples = 0;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#') {
      continue;
    }
    EXPECT_TRUE(std::regex_match(line, sample)) << "not a Prometheus sample: " << line;
    ++samples;
  }
  EXPECT_GT(samples, 5);
}

TEST_F(ServiceTest, OpenApiDocumentListsTheRoutes) {
  Reply r = server().Request("GET", "/v1/openapi.json");
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_TRUE(r.Header("content-type").starts_with("application/json"));
  EXPECT_EQ(r.Str("/openapi"), "3.1.0") << r.body.substr(0, 200);
  EXPECT_TRUE(r.Has("/info/title"));
  const std::vector<std::pair<std::string, std::vector<std::string>>> want = {
      {"/v1/keys", {"get", "post"}},
      {"/v1/keys/{id}", {"get", "delete"}},
      {"/v1/me", {"get"}},
      {"/v1/auth/token", {"post"}},
      {"/v1/workspaces", {"get", "post"}},
      {"/v1/workspaces/{slug}", {"get"}},
      {"/v1/events", {"get"}},
      {"/v1/sandboxes", {"get", "post"}},
      {"/v1/sandboxes/{id}", {"get", "delete"}},
      {"/v1/sandboxes/{id}/exec", {"post"}},
      {"/v1/sandboxes/{id}/files", {"get", "put", "delete"}},
      {"/v1/sandboxes/{id}/files/list", {"get"}},
      {"/v1/sandboxes/{id}/pause", {"post"}},
      {"/v1/sandboxes/{id}/resume", {"post"}},
      {"/v1/sandboxes/{id}/timeout", {"post"}},
      {"/v1/templates", {"get", "post"}},
      {"/v1/templates/{name}", {"get", "delete"}},
      {"/v1/templates/{name}/logs", {"get"}},
  };
  const json::value* paths = r.Find("/paths");
  ASSERT_TRUE(paths != nullptr && paths->is_object()) << r.body.substr(0, 500);
  for (const auto& [path, methods] : want) {
    auto it = paths->as_object().find(path);
    ASSERT_NE(it, paths->as_object().end()) << "no path " << path;
    for (const auto& m : methods) {
      EXPECT_TRUE(it->value().is_object() && it->value().as_object().contains(m))
          << path << " lacks " << m;
    }
  }
  // Operation ids come from the operation names.
  const json::value* create = r.Find("/paths/~1v1~1keys/post/operationId");
  ASSERT_NE(create, nullptr);
  EXPECT_EQ(*create, "keys_create");
  // Bytes are described as bytes: a file upload's body and a download's answer.
  EXPECT_EQ(r.Str("/paths/~1v1~1sandboxes~1{id}~1files/put/requestBody/content/"
                  "application~1octet-stream/schema/format"),
            "binary");
  EXPECT_EQ(r.Str("/paths/~1v1~1sandboxes~1{id}~1files/get/responses/200/content/"
                  "application~1octet-stream/schema/format"),
            "binary");
  // The upload's other fields are query parameters.
  bool path_in_query = false;
  for (const auto& p : r.Array("/paths/~1v1~1sandboxes~1{id}~1files/put/parameters")) {
    path_in_query =
        path_in_query || (p.as_object().at("name") == "path" && p.as_object().at("in") == "query");
  }
  EXPECT_TRUE(path_in_query);
  // Exec can stream.
  EXPECT_TRUE(
      r.Has("/paths/~1v1~1sandboxes~1{id}~1exec/post/responses/200/content/"
            "text~1event-stream"));
}

}  // namespace
}  // namespace kiln::testing
