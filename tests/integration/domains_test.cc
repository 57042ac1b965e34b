// Custom domains: PUT/GET /v1/apps/{app}/domains (records, validation, DOMAIN_TAKEN, replace
// semantics, certificates) and requests with a custom Host reaching the app over HTTP and
// HTTPS.
#include "integration/tls_fixture.h"

namespace kiln::testing {
namespace {

// "2027-02-22T06:27:20.000Z" as Unix milliseconds (0 when it does not parse).
int64_t ParseTime(const std::string& text) {
  std::tm tm{};
  if (strptime(text.c_str(), "%Y-%m-%dT%H:%M:%S", &tm) == nullptr) {
    return 0;
  }
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

class DomainsTest : public HttpsAppTest {
 protected:
  std::string GatewayConfig() override { return public_ip_; }

  Reply Put(const std::string& app, const std::string& domains_json) {
    return Call("PUT", "/v1/apps/" + app + "/domains", admin_,
                R"({"domains":)" + domains_json + "}");
  }
  std::vector<std::string> Names(const Reply& r) {
    std::vector<std::string> out;
    for (const auto& d : r.Array("/data/domains")) {
      out.push_back(S(d.as_object(), "domain"));
    }
    return out;
  }

  std::string public_ip_;
};

TEST_F(DomainsTest, SetAnswersRecordsAndCertificatesAndReplacesTheSet) {
  CreateApp("shop");
  Reply set = Put("shop", R"(["Shop.Example.COM.", "example.org", "shop.example.com"])");
  ASSERT_EQ(set.status, 200) << set;
  // Normalized (lower case, no trailing dot), duplicates folded, sorted.
  EXPECT_EQ(Names(set), (std::vector<std::string>{"example.org", "shop.example.com"}));
  // A subdomain: a CNAME to the app's own host.
  EXPECT_EQ(set.Str("/data/domains/1/dnsRecords/0/type"), "CNAME");
  EXPECT_EQ(set.Str("/data/domains/1/dnsRecords/0/name"), "shop.example.com");
  EXPECT_EQ(set.Str("/data/domains/1/dnsRecords/0/value"), "shop.localhost");
  // An apex needs an address record, and the server does not know its public address.
  EXPECT_TRUE(set.Array("/data/domains/0/dnsRecords").empty()) << set;
  EXPECT_NE(set.Str("/data/note").find("gateway.public_ip"), std::string::npos) << set;
  // Certificates from the local CA, issued at once (90 days).
  for (int i = 0; i < 2; ++i) {
    std::string at = "/data/domains/" + std::to_string(i) + "/certificate";
    EXPECT_EQ(set.Str(at + "/source"), "local") << set;
    EXPECT_EQ(set.Str(at + "/status"), "issued") << set;
    auto expires = ParseTime(set.Str(at + "/expiresAt"));
    int64_t days = (expires - SystemClock::Instance().NowMs()) / 86'400'000;
    EXPECT_TRUE(days >= 89 && days <= 90) << set;
    EXPECT_TRUE(set.Find(at + "/error")->is_null()) << set;
  }

  Reply got = Call("GET", "/v1/apps/shop/domains", admin_);
  ASSERT_EQ(got.status, 200) << got;
  EXPECT_EQ(got.json, set.json);

  // PUT replaces: example.org goes, www comes, shop.example.com keeps its certificate.
  std::string expires_before = set.Str("/data/domains/1/certificate/expiresAt");
  Reply replaced = Put("shop", R"(["shop.example.com", "www.example.com"])");
  ASSERT_EQ(replaced.status, 200) << replaced;
  EXPECT_EQ(Names(replaced), (std::vector<std::string>{"shop.example.com", "www.example.com"}));
  EXPECT_EQ(replaced.Str("/data/domains/0/certificate/expiresAt"), expires_before);
  EXPECT_FALSE(replaced.Has("/data/note")) << replaced;

  // The change is an event of the workspace.
  Reply events = Call("GET", "/v1/events?limit=20", admin_);
  bool found = false;
  for (const auto& e : events.Array("/data")) {
    found = found || S(e.as_object(), "type") == "app.domains_set";
  }
  EXPECT_TRUE(found) << events;

  // An empty list removes them all.
  Reply cleared = Put("shop", "[]");
  ASSERT_EQ(cleared.status, 200) << cleared;
  EXPECT_TRUE(cleared.Array("/data/domains").empty()) << cleared;
}

TEST_F(DomainsTest, BadNamesAreRefusedWithCodesAndHints) {
  CreateApp("shop");
  struct Case {
    const char* domains;
    const char* code;
  };
  for (const Case& c : std::vector<Case>{
           {R"(["1.2.3.4"])", "DOMAIN_INVALID"},
           {R"(["[::1]"])", "DOMAIN_INVALID"},
           {R"(["*.example.com"])", "DOMAIN_INVALID"},
           {R"(["shop.example.com:8080"])", "DOMAIN_INVALID"},
           {R"(["localhost"])", "DOMAIN_RESERVED"},
           {R"(["api.localhost"])", "DOMAIN_RESERVED"},
           {R"(["a.b.localhost"])", "DOMAIN_RESERVED"},
           {R"(["nodot"])", "DOMAIN_INVALID"},
           {R"(["-bad.example.com"])", "DOMAIN_INVALID"},
           {R"(["a..example.com"])", "DOMAIN_INVALID"},
           {R"(["under_score.example.com"])", "DOMAIN_INVALID"},
           {R"(["bücher.example"])", "DOMAIN_INVALID"},
           {R"([""])", "VALIDATION_FAILED"},
       }) {
    Reply r = Put("shop", c.domains);
    EXPECT_EQ(r.status, 400) << c.domains << " " << r;
    EXPECT_EQ(r.ErrorCode(), c.code) << c.domains << " " << r;
    EXPECT_FALSE(r.Str("/error/hint").empty()) << c.domains << " " << r;
  }
  std::string many = "[";
  for (int i = 0; i < 21; ++i) {
    many += (i ? "," : "") + std::string("\"d") + std::to_string(i) + ".example.com\"";
  }
  Reply limit = Put("shop", many + "]");
  EXPECT_EQ(limit.status, 400) << limit;
  EXPECT_EQ(limit.ErrorCode(), "DOMAIN_LIMIT_REACHED");
  // Nothing was attached by the refused calls.
  EXPECT_TRUE(Call("GET", "/v1/apps/shop/domains", admin_).Array("/data/domains").empty());
  EXPECT_EQ(Put("nosuchapp", R"(["x.example.com"])").ErrorCode(), "APP_NOT_FOUND");
}

TEST_F(DomainsTest, ADomainBelongsToOneAppAcrossWorkspaces) {
  CreateApp("shop");
  CreateApp("blog");
  ASSERT_EQ(Put("shop", R"(["shop.example.com"])").status, 200);
  Reply taken = Put("blog", R"(["blog.example.com", "shop.example.com"])");
  EXPECT_EQ(taken.status, 409) << taken;
  EXPECT_EQ(taken.ErrorCode(), "DOMAIN_TAKEN");
  EXPECT_NE(taken.Str("/error/message").find("shop.example.com"), std::string::npos) << taken;
  // All or nothing: blog got neither.
  EXPECT_TRUE(Call("GET", "/v1/apps/blog/domains", admin_).Array("/data/domains").empty());

  // Another workspace cannot take it either.
  Reply ws = Call("POST", "/v1/workspaces", admin_, R"({"slug":"other","name":"Other"})");
  ASSERT_EQ(ws.status, 201) << ws;
  std::string other_key = ws.Str("/data/key/secret");
  ASSERT_FALSE(other_key.empty()) << ws;
  ASSERT_EQ(Call("POST", "/v1/apps", other_key, R"({"name":"theirs"})").status, 201);
  Reply cross =
      Call("PUT", "/v1/apps/theirs/domains", other_key, R"({"domains":["shop.example.com"]})");
  EXPECT_EQ(cross.status, 409) << cross;
  EXPECT_EQ(cross.ErrorCode(), "DOMAIN_TAKEN");
  // ... and cannot see or change the first workspace's app.
  EXPECT_EQ(Call("GET", "/v1/apps/shop/domains", other_key).status, 404);

  // Once shop lets go, blog may have it.
  ASSERT_EQ(Put("shop", "[]").status, 200);
  EXPECT_EQ(Put("blog", R"(["shop.example.com"])").status, 200);
}

TEST_F(DomainsTest, TheCliSetsAndListsDomains) {
  CreateApp("shop");
  ProcessResult set = Cli({"domains", "set", "shop", "Shop.Example.com", "www.example.com"});
  ASSERT_EQ(set.exit_code, 0) << set.output;
  EXPECT_NE(set.output.find("CNAME shop.localhost"), std::string::npos) << set.output;
  ProcessResult list = Cli({"--json", "domains", "list", "shop"});
  ASSERT_EQ(list.exit_code, 0) << list.output;
  auto parsed = ParseJson(list.output);
  ASSERT_TRUE(parsed.ok()) << list.output;
  EXPECT_EQ(parsed->at("domains").as_array().size(), 2u) << list.output;
  EXPECT_EQ(parsed->at("domains").at(0).at("domain").as_string(), "shop.example.com");
  ProcessResult bad = Cli({"domains", "set", "shop", "1.2.3.4"});
  EXPECT_EQ(bad.exit_code, 1) << bad.output;
  EXPECT_NE(bad.output.find("DOMAIN_INVALID"), std::string::npos) << bad.output;
  EXPECT_EQ(Cli({"domains", "set", "shop"}).exit_code, 2);  // neither names nor --clear
  ASSERT_EQ(Cli({"domains", "set", "shop", "--clear"}).exit_code, 0);
  EXPECT_TRUE(Call("GET", "/v1/apps/shop/domains", admin_).Array("/data/domains").empty());
}

class DomainsWithPublicIpTest : public DomainsTest {
 protected:
  void SetUp() override {
    public_ip_ = "public_ip = \"203.0.113.7\"\n";
    DomainsTest::SetUp();
  }
};

TEST_F(DomainsWithPublicIpTest, AnApexGetsAnAddressRecord) {
  CreateApp("shop");
  Reply set = Put("shop", R"(["example.org", "www.example.org"])");
  ASSERT_EQ(set.status, 200) << set;
  EXPECT_EQ(set.Str("/data/domains/0/dnsRecords/0/type"), "A") << set;
  EXPECT_EQ(set.Str("/data/domains/0/dnsRecords/0/value"), "203.0.113.7");
  EXPECT_EQ(set.Str("/data/domains/1/dnsRecords/0/type"), "CNAME");
  EXPECT_FALSE(set.Has("/data/note")) << set;
}

TEST_F(DomainsTest, RequestsForACustomDomainReachTheApp) {
  DeployUpstream("shop");
  fs::path root = DownloadRoot();
  // Before it is attached, the name is not the app's.
  auto before = server().TryRequest("GET", "/headers", {}, {{"host", "shop.example.com"}});
  ASSERT_TRUE(before.ok());
  EXPECT_NE(before->status, 200) << before->body;

  ASSERT_EQ(Put("shop", R"(["shop.example.com"])").status, 200);
  // Plain HTTP, with a port and a trailing dot as clients may send them.
  for (const char* host : {"shop.example.com", "SHOP.example.com.", "shop.example.com:80"}) {
    auto r = server().TryRequest("GET", "/headers", {}, {{"host", host}});
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(r->status, 200) << host << " " << r->body;
    EXPECT_EQ(r->Str("/headers/x-forwarded-proto"), "http") << r->body;
  }
  // HTTPS with SNI: the custom domain's own certificate, verified against the local root.
  ProcessResult tls = CurlHttps("shop.example.com", tls_port_, "/headers", root.string());
  ASSERT_EQ(tls.exit_code, 0) << tls.output << "\n" << server().LogTail();
  auto seen = ParseJson(tls.output);
  ASSERT_TRUE(seen.ok()) << tls.output;
  EXPECT_EQ(GetString(seen->as_object().at("headers").as_object(), "x-forwarded-proto"), "https");
  std::string cert = ServedCertText(tls_port_, "shop.example.com");
  EXPECT_NE(cert.find("DNS:shop.example.com"), std::string::npos) << cert;

  // Detached: the name stops reaching the app.
  ASSERT_EQ(Put("shop", "[]").status, 200);
  auto after = server().TryRequest("GET", "/headers", {}, {{"host", "shop.example.com"}});
  ASSERT_TRUE(after.ok());
  EXPECT_NE(after->status, 200) << after->body;
  ProcessResult gone = CurlHttps("shop.example.com", tls_port_, "/headers", root.string());
  EXPECT_NE(gone.exit_code, 0) << "the certificate is no longer the domain's: " << gone.output;
}

}  // namespace
}  // namespace kiln::testing
