// HTTPS with SNI and certificates from Kiln's local CA, checked with the real curl and
// openssl tools against a real deployed app.
#include "integration/tls_fixture.h"

namespace kiln::testing {
namespace {

using TlsTest = HttpsAppTest;

TEST_F(TlsTest, AppsAnswerOverHttpsWithCertificatesFromTheLocalCa) {
  DeployUpstream("web");
  CreateApp("second");  // never deployed: its host still gets a certificate

  // The CA was made at first start: key private, root downloadable and the same as on disk.
  EXPECT_EQ(FileMode(server().dir() / "tls" / "ca.key"), 0600);
  fs::path root = DownloadRoot();
  EXPECT_EQ(ReadFile(root), ReadFile(server().dir() / "tls" / "ca.crt"));
  std::string subject =
      Shell("openssl x509 -noout -subject -ext basicConstraints -in " + Quote(root.string()))
          .output;
  EXPECT_NE(subject.find("Kiln local CA"), std::string::npos) << subject;
  EXPECT_NE(subject.find("CA:TRUE"), std::string::npos) << subject;

  // curl with the root: verified, SNI picks web's certificate, the app answers, and it is
  // told the request came over HTTPS.
  ProcessResult ok = CurlHttps("web.localhost", tls_port_, "/headers", root.string());
  ASSERT_EQ(ok.exit_code, 0) << ok.output << "\n" << server().LogTail();
  auto headers = ParseJson(ok.output);
  ASSERT_TRUE(headers.ok()) << ok.output;
  const json::object& seen = headers->as_object().at("headers").as_object();
  EXPECT_EQ(GetString(seen, "x-forwarded-proto"), "https") << ok.output;
  EXPECT_EQ(GetString(seen, "host"), "web.localhost:" + std::to_string(tls_port_)) << ok.output;

  // A long body arrives whole over HTTPS: the gateway splices it into the Unix socket that
  // leads to the TLS listener, and the body goes on the same connection's next response too.
  constexpr size_t kBig = (3 << 20) + 7;
  std::string big_path = "/big?bytes=" + std::to_string(kBig);
  ProcessResult big = CurlHttps("web.localhost", tls_port_, big_path, root.string());
  ASSERT_EQ(big.exit_code, 0) << big.output.substr(0, 500) << "\n" << server().LogTail();
  ASSERT_EQ(big.output.size(), kBig);
  EXPECT_TRUE(big.output == PatternBytes(0, kBig)) << "the HTTPS body differs from the app's";

  // The same app over plain HTTP says http.
  auto plain = server().TryRequest("GET", "/headers", {}, {{"host", "web.localhost"}});
  ASSERT_TRUE(plain.ok());
  EXPECT_EQ(plain->Str("/headers/x-forwarded-proto"), "http") << plain->body;

  // Without the root, curl refuses the certificate (exit 60: peer certificate cannot be
  // authenticated with known CA certificates).
  ProcessResult untrusted = CurlHttps("web.localhost", tls_port_, "/headers", "");
  EXPECT_EQ(untrusted.exit_code, 60) << untrusted.output;

  // Each host has its own certificate, and each verifies for its own name.
  std::string web = ServedCertText(tls_port_, "web.localhost");
  std::string second = ServedCertText(tls_port_, "second.localhost");
  EXPECT_NE(web.find("DNS:web.localhost"), std::string::npos) << web;
  EXPECT_EQ(web.find("DNS:second.localhost"), std::string::npos) << web;
  EXPECT_NE(second.find("DNS:second.localhost"), std::string::npos) << second;
  EXPECT_NE(second.find("TLS Web Server Authentication"), std::string::npos) << second;
  std::string verify =
      Shell("openssl s_client -connect 127.0.0.1:" + std::to_string(tls_port_) +
            " -servername second.localhost -verify_hostname second.localhost -CAfile " +
            Quote(root.string()) + " </dev/null 2>&1")
          .output;
  EXPECT_NE(verify.find("Verify return code: 0 (ok)"), std::string::npos) << verify;
  // An app that is not running answers over HTTPS too (the gateway's 404 page, verified).
  ProcessResult asleep = CurlHttps("second.localhost", tls_port_, "/", root.string());
  EXPECT_EQ(asleep.exit_code, 0) << asleep.output;

  // A name the server does not serve gets the base domain's certificate: curl reports the
  // mismatch (exit 60) instead of reaching anything.
  ProcessResult other = CurlHttps("elsewhere.example.net", tls_port_, "/", root.string());
  EXPECT_EQ(other.exit_code, 60) << other.output;
  EXPECT_NE(other.output.find("no alternative certificate subject name matches"), std::string::npos)
      << other.output;
}

TEST_F(TlsTest, TheCaSurvivesARestart) {
  fs::path before = DownloadRoot();
  std::string pem = ReadFile(before);
  ASSERT_TRUE(server().Restart());
  fs::path after = DownloadRoot();
  EXPECT_EQ(ReadFile(after), pem);
  // `kiln tls ca` prints the same file.
  ProcessResult cli = Cli({"tls", "ca"});
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_EQ(cli.output, pem);
  // Leaves issued after the restart verify against the root downloaded before it.
  std::string verify = Shell("openssl s_client -connect 127.0.0.1:" + std::to_string(tls_port_) +
                             " -servername x.localhost -verify_hostname x.localhost -CAfile " +
                             Quote(before.string()) + " </dev/null 2>&1")
                           .output;
  EXPECT_NE(verify.find("Verify return code: 0 (ok)"), std::string::npos) << verify;
}

// A TLS port that is taken leaves the server up, over plain HTTP, and says why.
class TlsPortTakenTest : public AppTest {
 protected:
  std::string Config() override {
    holder_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    ::bind(holder_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    ::listen(holder_, 1);
    ::getsockname(holder_, reinterpret_cast<sockaddr*>(&addr), &len);
    return "[gateway]\ntls_port = " + std::to_string(ntohs(addr.sin_port)) + "\n";
  }
  void TearDown() override {
    AppTest::TearDown();
    ::close(holder_);
  }
  int holder_ = -1;
};

TEST_F(TlsPortTakenTest, TheServerRunsWithoutHttps) {
  Reply ca = Call("GET", "/v1/tls/ca", admin_);
  EXPECT_EQ(ca.status, 503) << ca;
  EXPECT_EQ(ca.ErrorCode(), "TLS_OFF");
  EXPECT_NE(server().LogTail().find("ADDRESS_IN_USE"), std::string::npos) << server().LogTail();
  CreateApp("shop");
  Reply set = Call("PUT", "/v1/apps/shop/domains", admin_, R"({"domains":["shop.example.com"]})");
  ASSERT_EQ(set.status, 200) << set;
  EXPECT_EQ(set.Str("/data/domains/0/certificate/status"), "pending");
  EXPECT_NE(set.Str("/data/note").find("HTTPS is off"), std::string::npos) << set;
}

}  // namespace
}  // namespace kiln::testing
