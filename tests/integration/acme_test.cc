// ACME against pebble (Debian's ACME test server) on loopback: a custom domain gets a
// certificate through a real HTTP-01 challenge that pebble fetches through Kiln's gateway
// (pebble-challtestsrv answers pebble's DNS queries with 127.0.0.1), the certificate is
// served with SNI and verifies against pebble's root, and one about to expire is renewed.
#include "integration/tls_fixture.h"

namespace kiln::testing {
namespace {

class AcmeTest : public HttpsAppTest {
 protected:
  void SetUp() override {
    ASSERT_FALSE(FindProgram("pebble").empty())
        << "pebble not found: apt-get install pebble (scripts/install-deps)";
    std::string tmpl = (fs::temp_directory_path() / "kiln-pebble-XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    pebble_dir_ = tmpl;
    // Pebble's own HTTPS certificate (the package ships none); Kiln trusts it through
    // gateway.acme_ca_file.
    ProcessResult made =
        Shell("cd " + Quote(pebble_dir_.string()) +
              " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2"
              " -keyout pebble.key -out pebble.crt -subj /CN=localhost"
              " -addext subjectAltName=DNS:localhost,IP:127.0.0.1"
              " -addext basicConstraints=critical,CA:TRUE 2>&1");
    ASSERT_EQ(made.exit_code, 0) << made.output;
    acme_port_ = FreePort();
    mgmt_port_ = FreePort();
    dns_port_ = FreePort();
    HttpsAppTest::SetUp();
    if (HasFatalFailure()) {
      return;
    }
    StartPebble();
  }

  void TearDown() override {
    if (HasFailure()) {
      std::fprintf(
          stderr, "---- pebble.log (tail) ----\n%s\n",
          Shell("tail -n 40 " + Quote((pebble_dir_ / "pebble.log").string())).output.c_str());
    }
    pebble_.reset();
    dns_.reset();
    HttpsAppTest::TearDown();
    std::error_code ec;
    fs::remove_all(pebble_dir_, ec);
  }

  std::string GatewayConfig() override {
    return "acme_directory = \"https://127.0.0.1:" + std::to_string(acme_port_) + "/dir\"\n" +
           "acme_ca_file = \"" + (pebble_dir_ / "pebble.crt").string() + "\"\n" +
           "acme_email = \"ops@example.com\"\n";
  }

  // Pebble validates HTTP-01 on Kiln's HTTP port, so it starts once the server has one.
  void StartPebble() {
    std::string d = std::to_string(dns_port_);
    pebble_.reset();
    if (!dns_) {
      dns_ = std::make_unique<Daemon>(
          std::vector<std::string>{"pebble-challtestsrv", "-dns01", "127.0.0.1:" + d, "-http01", "",
                                   "-https01", "", "-tlsalpn01", "", "-management",
                                   "127.0.0.1:" + std::to_string(FreePort()), "-defaultIPv4",
                                   "127.0.0.1", "-defaultIPv6", ""},
          pebble_dir_ / "challtestsrv.log");
    }
    std::ofstream(pebble_dir_ / "pebble.json")
        << R"({"pebble": {"listenAddress": "127.0.0.1:)" << acme_port_
        << R"(", "managementListenAddress": "127.0.0.1:)" << mgmt_port_ << R"(", "certificate": ")"
        << (pebble_dir_ / "pebble.crt").string() << R"(", "privateKey": ")"
        << (pebble_dir_ / "pebble.key").string() << R"(", "httpPort": )" << server().port()
        << R"(, "tlsPort": )" << FreePort()
        << R"(, "ocspResponderURL": "", "externalAccountBindingRequired": false}})";
    // Every order really fetches the challenge (no authorization reuse); some nonces are
    // refused, so the client's badNonce retry runs too.
    pebble_ = std::make_unique<Daemon>(
        std::vector<std::string>{"pebble", "-config", (pebble_dir_ / "pebble.json").string(),
                                 "-dnsserver", "127.0.0.1:" + d},
        pebble_dir_ / "pebble.log",
        std::vector<std::string>{"PEBBLE_VA_NOSLEEP=1", "PEBBLE_AUTHZREUSE=0",
                                 "PEBBLE_WFE_NONCEREJECT=15"});
    bool up = WaitFor(
        [&] {
          return Shell("curl -sf --max-time 2 --cacert " +
                       Quote((pebble_dir_ / "pebble.crt").string()) +
                       " https://127.0.0.1:" + std::to_string(acme_port_) + "/dir")
                     .exit_code == 0;
        },
        20s);
    ASSERT_TRUE(up) << "pebble did not start: "
                    << ReadFile(pebble_dir_ / "pebble.log").substr(0, 4000);
  }

  // Pebble's issuing root, from its management interface.
  fs::path PebbleRoot() {
    fs::path path = pebble_dir_ / "issuer-root.pem";
    ProcessResult r =
        Shell("curl -sSf --max-time 10 --cacert " + Quote((pebble_dir_ / "pebble.crt").string()) +
              " -o " + Quote(path.string()) + " https://127.0.0.1:" + std::to_string(mgmt_port_) +
              "/roots/0");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return path;
  }

  // Waits for the domain's certificate to reach `status` (failing early on "failed");
  // answers the domain's JSON.
  Reply WaitForCertificate(const std::string& app, const std::string& status) {
    Reply r;
    bool reached = WaitFor(
        [&] {
          r = Call("GET", "/v1/apps/" + app + "/domains", admin_);
          std::string s = r.Str("/data/domains/0/certificate/status");
          return s == status || s == "failed";
        },
        90s);
    EXPECT_TRUE(reached) << r;
    EXPECT_EQ(r.Str("/data/domains/0/certificate/status"), status) << r << "\n"
                                                                   << server().LogTail(30);
    return r;
  }

  fs::path pebble_dir_;
  uint16_t acme_port_ = 0, mgmt_port_ = 0, dns_port_ = 0;
  std::unique_ptr<Daemon> dns_, pebble_;
};

std::string Serial(const std::string& cert_text) {
  size_t at = cert_text.find("serial=");
  return at == std::string::npos ? std::string() : Trim(cert_text.substr(at + 7));
}

TEST_F(AcmeTest, ACustomDomainGetsACertificateFromTheAcmeServerAndServesIt) {
  DeployUpstream("shop");
  Reply set = Call("PUT", "/v1/apps/shop/domains", admin_, R"({"domains":["shop.example.com"]})");
  ASSERT_EQ(set.status, 200) << set;
  EXPECT_EQ(set.Str("/data/domains/0/certificate/source"), "acme") << set;

  Reply issued = WaitForCertificate("shop", "issued");
  EXPECT_TRUE(issued.Find("/data/domains/0/certificate/error")->is_null()) << issued;
  EXPECT_FALSE(issued.Str("/data/domains/0/certificate/expiresAt").empty()) << issued;
  // Pebble fetched the challenge over HTTP from Kiln's gateway.
  std::string pebble_log = ReadFile(pebble_dir_ / "pebble.log");
  EXPECT_NE(pebble_log.find("http://shop.example.com:" + std::to_string(server().port()) +
                            "/.well-known/acme-challenge/"),
            std::string::npos);

  // Served with SNI, verified against pebble's root, reaching the app.
  fs::path root = PebbleRoot();
  ProcessResult ok = CurlHttps("shop.example.com", tls_port_, "/headers", root.string());
  ASSERT_EQ(ok.exit_code, 0) << ok.output << "\n" << server().LogTail();
  auto seen = ParseJson(ok.output);
  ASSERT_TRUE(seen.ok()) << ok.output;
  EXPECT_EQ(GetString(seen->as_object().at("headers").as_object(), "x-forwarded-proto"), "https");
  // It is the ACME certificate, not the local CA's.
  fs::path local = DownloadRoot();
  EXPECT_EQ(CurlHttps("shop.example.com", tls_port_, "/headers", local.string()).exit_code, 60);
  // App hosts keep their local-CA certificates.
  EXPECT_EQ(CurlHttps("shop.localhost", tls_port_, "/headers", local.string()).exit_code, 0);

  // Kept on disk, the key private.
  fs::path dir = server().dir() / "tls" / "acme";
  EXPECT_EQ(FileMode(dir / "account.key"), 0600);
  EXPECT_EQ(FileMode(dir / "shop.example.com" / "key.pem"), 0600);
  EXPECT_TRUE(ReadFile(dir / "shop.example.com" / "cert.pem").starts_with("-----BEGIN"));

  // After a restart it is served from disk, without a new order.
  std::string serial = Serial(ServedCertText(tls_port_, "shop.example.com"));
  ASSERT_FALSE(serial.empty());
  size_t orders = pebble_log.size();
  ASSERT_TRUE(server().Restart());
  EXPECT_EQ(Serial(ServedCertText(tls_port_, "shop.example.com")), serial);
  EXPECT_EQ(CurlHttps("shop.example.com", tls_port_, "/headers", root.string()).exit_code, 0);
  Reply after = Call("GET", "/v1/apps/shop/domains", admin_);
  EXPECT_EQ(after.Str("/data/domains/0/certificate/status"), "issued") << after;
  EXPECT_EQ(ReadFile(pebble_dir_ / "pebble.log").substr(orders).find("POST /order-plz"),
            std::string::npos);
}

TEST_F(AcmeTest, ACertificateAboutToExpireIsRenewedAtStartAndFailuresAreRetried) {
  DeployUpstream("shop");
  ASSERT_EQ(
      Call("PUT", "/v1/apps/shop/domains", admin_, R"({"domains":["shop.example.com"]})").status,
      200);
  WaitForCertificate("shop", "issued");
  ASSERT_EQ(server().Stop(), 0);

  // Replace the certificate with one that expires in 10 days (inside acme_renew_days = 30).
  fs::path dir = server().dir() / "tls" / "acme" / "shop.example.com";
  ProcessResult made =
      Shell("cd " + Quote(dir.string()) +
            " && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 10"
            " -keyout key.pem -out cert.pem -subj /CN=shop.example.com"
            " -addext subjectAltName=DNS:shop.example.com 2>&1");
  ASSERT_EQ(made.exit_code, 0) << made.output;
  std::string short_lived =
      Serial(Shell("openssl x509 -noout -serial -in " + Quote((dir / "cert.pem").string())).output);

  // The ACME server is down when Kiln starts: the renewal fails, is recorded with its error,
  // and the old certificate is still served meanwhile.
  pebble_.reset();
  ASSERT_TRUE(server().Start());
  Reply failed = WaitForCertificate("shop", "failed");
  EXPECT_NE(failed.Str("/data/domains/0/certificate/error").find("directory"), std::string::npos)
      << failed;
  EXPECT_EQ(Serial(ServedCertText(tls_port_, "shop.example.com")), short_lived);

  // Back up (on the server's new HTTP port): the retry renews it.
  StartPebble();
  fs::path root = PebbleRoot();
  bool renewed = WaitFor(
      [&] {
        std::string now = Serial(ServedCertText(tls_port_, "shop.example.com"));
        return !now.empty() && now != short_lived;
      },
      120s);
  ASSERT_TRUE(renewed) << server().LogTail();
  ProcessResult ok = CurlHttps("shop.example.com", tls_port_, "/headers", root.string());
  EXPECT_EQ(ok.exit_code, 0) << ok.output;
  Reply r = WaitForCertificate("shop", "issued");
  EXPECT_TRUE(r.Find("/data/domains/0/certificate/error")->is_null()) << r;
  std::tm tm{};
  std::string at = r.Str("/data/domains/0/certificate/expiresAt");
  ASSERT_NE(strptime(at.c_str(), "%Y-%m-%dT%H:%M:%S", &tm), nullptr) << r;
  int64_t days =
      (static_cast<int64_t>(timegm(&tm)) * 1000 - SystemClock::Instance().NowMs()) / 86'400'000;
  EXPECT_GT(days, 30) << r;
}

}  // namespace
}  // namespace kiln::testing
