#include <gtest/gtest.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "tls/internal.h"

namespace kiln::tls {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kNow = 1'800'000'000'000;
constexpr int64_t kDayMs = 86'400'000;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "kiln_tls_test.XXXXXX").string();
    EXPECT_NE(::mkdtemp(tmpl.data()), nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

int Mode(const fs::path& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0 ? static_cast<int>(st.st_mode & 0777) : -1;
}

// Verifies `cert` (with `chain`) against `root_pem` as a TLS server certificate for `host`
// at `at_ms`; answers OpenSSL's verdict (X509_V_OK when it verifies).
int Verify(const ServedCert& cert, const std::string& root_pem, const std::string& host,
           int64_t at_ms = kNow) {
  auto roots = ParseCertsPem(root_pem);
  EXPECT_TRUE(roots.ok());
  X509_STORE* store = X509_STORE_new();
  for (auto& r : *roots) {
    X509_STORE_add_cert(store, r.get());
  }
  X509_STORE_CTX* ctx = X509_STORE_CTX_new();
  X509_STORE_CTX_init(ctx, store, cert.leaf.get(), cert.chain);
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx);
  X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_SERVER);
  X509_VERIFY_PARAM_set1_host(param, host.c_str(), host.size());
  X509_VERIFY_PARAM_set_time(param, static_cast<time_t>(at_ms / 1000));
  int result = X509_verify_cert(ctx) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx);
  X509_STORE_CTX_free(ctx);
  X509_STORE_free(store);
  ERR_clear_error();
  return result;
}

std::vector<std::string> SanNames(X509* cert) {
  std::vector<std::string> out;
  auto* names =
      static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
    GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
    if (n->type == GEN_DNS) {
      const ASN1_STRING* s = n->d.dNSName;
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                       static_cast<size_t>(ASN1_STRING_length(s)));
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

TEST(LocalCaTest, CreatesARootOnceAndLoadsItAfterwards) {
  TempDir dir;
  std::string tls = (dir.path() / "tls").string();
  auto ca = LocalCa::OpenOrCreate(tls, "Kiln local CA test", kNow);
  ASSERT_TRUE(ca.ok()) << ca.status().ToString();
  EXPECT_EQ(Mode(dir.path() / "tls" / "ca.key"), 0600);
  EXPECT_EQ(Mode(dir.path() / "tls"), 0700);
  ASSERT_TRUE(fs::exists(dir.path() / "tls" / "ca.crt"));

  auto roots = ParseCertsPem((*ca)->root_pem());
  ASSERT_TRUE(roots.ok());
  X509* root = (*roots)[0].get();
  EXPECT_EQ(X509_check_ca(root), 1);
  EXPECT_NE(X509_get_key_usage(root) & KU_KEY_CERT_SIGN, 0u);
  char cn[256] = {};
  X509_NAME_get_text_by_NID(X509_get_subject_name(root), NID_commonName, cn, sizeof cn);
  EXPECT_STREQ(cn, "Kiln local CA test");
  EXPECT_EQ(EVP_PKEY_get_id(X509_get0_pubkey(root)), EVP_PKEY_EC);
  int64_t years10 = int64_t{3650} * kDayMs;
  EXPECT_GE(NotAfterMs(root), kNow + years10 - kDayMs);

  // A second start finds the same root.
  auto again = LocalCa::OpenOrCreate(tls, "another name", kNow + kDayMs);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  EXPECT_EQ((*again)->root_pem(), (*ca)->root_pem());
}

TEST(LocalCaTest, RefusesAnIncompleteOrMismatchedCa) {
  TempDir dir;
  std::string tls = (dir.path() / "tls").string();
  ASSERT_TRUE(LocalCa::OpenOrCreate(tls, "", kNow).ok());
  std::string key = (dir.path() / "tls" / "ca.key").string();
  fs::rename(key, key + ".bak");
  auto missing = LocalCa::OpenOrCreate(tls, "", kNow);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().error_code(), "TLS_CA_INVALID");
  EXPECT_NE(missing.status().message().find("ca.key is missing"), std::string::npos);

  // Another key in place of the CA's.
  auto other = NewP256Key();
  ASSERT_TRUE(other.ok());
  std::ofstream(key) << KeyPem(other->get());
  auto mismatch = LocalCa::OpenOrCreate(tls, "", kNow);
  ASSERT_FALSE(mismatch.ok());
  EXPECT_EQ(mismatch.status().error_code(), "TLS_CA_INVALID");
}

TEST(LocalCaTest, LeavesVerifyForTheirHostOnly) {
  TempDir dir;
  auto ca = LocalCa::OpenOrCreate((dir.path() / "tls").string(), "", kNow);
  ASSERT_TRUE(ca.ok());
  auto leaf = (*ca)->Issue("shop.localhost", kNow);
  ASSERT_TRUE(leaf.ok()) << leaf.status().ToString();
  const ServedCert& cert = **leaf;

  EXPECT_EQ(Verify(cert, (*ca)->root_pem(), "shop.localhost"), X509_V_OK);
  EXPECT_EQ(Verify(cert, (*ca)->root_pem(), "blog.localhost"), X509_V_ERR_HOSTNAME_MISMATCH);
  EXPECT_EQ(SanNames(cert.leaf.get()), std::vector<std::string>{"shop.localhost"});
  EXPECT_EQ(X509_check_ca(cert.leaf.get()), 0);
  EXPECT_NE(X509_get_extended_key_usage(cert.leaf.get()) & XKU_SSL_SERVER, 0u);
  EXPECT_EQ(X509_check_private_key(cert.leaf.get(), cert.key.get()), 1);
  EXPECT_EQ(EVP_PKEY_get_id(cert.key.get()), EVP_PKEY_EC);
  // 90 days, and not before the issuing time (with an hour for clocks behind).
  EXPECT_EQ(cert.not_after_ms, kNow + 90 * kDayMs);
  EXPECT_EQ(Verify(cert, (*ca)->root_pem(), "shop.localhost", kNow + 91 * kDayMs),
            X509_V_ERR_CERT_HAS_EXPIRED);
  EXPECT_EQ(Verify(cert, (*ca)->root_pem(), "shop.localhost", kNow - 2 * 3'600'000),
            X509_V_ERR_CERT_NOT_YET_VALID);

  // Another CA's root does not verify it.
  TempDir other_dir;
  auto other = LocalCa::OpenOrCreate((other_dir.path() / "tls").string(), "", kNow);
  ASSERT_TRUE(other.ok());
  EXPECT_NE(Verify(cert, (*other)->root_pem(), "shop.localhost"), X509_V_OK);

  // Names that are not host names are refused (they would go into openssl.cnf syntax).
  EXPECT_FALSE((*ca)->Issue("a,DNS:evil.com", kNow).ok());
  EXPECT_FALSE((*ca)->Issue("", kNow).ok());
}

TEST(ServedCertTest, ChecksTheKeyAgainstTheLeaf) {
  TempDir dir;
  auto ca = LocalCa::OpenOrCreate((dir.path() / "tls").string(), "", kNow);
  ASSERT_TRUE(ca.ok());
  auto leaf = (*ca)->Issue("a.example.com", kNow);
  ASSERT_TRUE(leaf.ok());
  std::string chain = CertPem((*leaf)->leaf.get()) + (*ca)->root_pem();
  auto served = MakeServedCert(chain, KeyPem((*leaf)->key.get()));
  ASSERT_TRUE(served.ok()) << served.status().ToString();
  EXPECT_EQ(sk_X509_num((*served)->chain), 1);
  EXPECT_EQ((*served)->not_after_ms, (*leaf)->not_after_ms);
  auto other = NewP256Key();
  ASSERT_TRUE(other.ok());
  auto mismatch = MakeServedCert(chain, KeyPem(other->get()));
  ASSERT_FALSE(mismatch.ok());
  EXPECT_EQ(mismatch.status().error_code(), "TLS_KEY_MISMATCH");
  EXPECT_FALSE(MakeServedCert("not a certificate", KeyPem(other->get())).ok());
}

class CertificatesTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto ca = LocalCa::OpenOrCreate((dir_.path() / "tls").string(), "", clock_.NowMs());
    ASSERT_TRUE(ca.ok());
    ca_ = std::move(*ca);
    certs_ = std::make_unique<Certificates>(
        *ca_, "localhost", [this](std::string_view host) { return host == custom_; }, clock_);
  }

  std::vector<std::string> Names(std::string_view sni) {
    auto cert = certs_->ForHost(sni);
    EXPECT_NE(cert, nullptr);
    return cert ? SanNames(cert->leaf.get()) : std::vector<std::string>{};
  }

  TempDir dir_;
  FakeClock clock_{kNow};
  std::unique_ptr<LocalCa> ca_;
  std::unique_ptr<Certificates> certs_;
  std::string custom_ = "shop.example.com";
};

TEST_F(CertificatesTest, EachServedHostGetsItsOwnCertificate) {
  EXPECT_EQ(Names("hello.localhost"), std::vector<std::string>{"hello.localhost"});
  EXPECT_EQ(Names("3000-sbx_abc.localhost"), std::vector<std::string>{"3000-sbx_abc.localhost"});
  EXPECT_EQ(Names("Hello.LOCALHOST."), std::vector<std::string>{"hello.localhost"});
  EXPECT_EQ(Names("localhost"), std::vector<std::string>{"localhost"});
  EXPECT_EQ(Names("shop.example.com"), std::vector<std::string>{"shop.example.com"});
}

TEST_F(CertificatesTest, UnknownNamesGetTheBaseDomainsCertificate) {
  EXPECT_EQ(Names(""), std::vector<std::string>{"localhost"});
  EXPECT_EQ(Names("other.example.com"), std::vector<std::string>{"localhost"});
  EXPECT_EQ(Names("a.b.localhost"), std::vector<std::string>{"localhost"});
  EXPECT_EQ(Names("-bad.localhost"), std::vector<std::string>{"localhost"});
  EXPECT_EQ(Names("evillocalhost"), std::vector<std::string>{"localhost"});
}

TEST_F(CertificatesTest, CachesLeavesAndReissuesThemBeforeExpiry) {
  auto first = certs_->ForHost("shop.example.com");
  EXPECT_EQ(certs_->ForHost("shop.example.com"), first);  // cached
  clock_.AdvanceMs(59 * kDayMs);
  EXPECT_EQ(certs_->ForHost("shop.example.com"), first);
  clock_.AdvanceMs(2 * kDayMs);  // under a third of 90 days left
  auto renewed = certs_->ForHost("shop.example.com");
  EXPECT_NE(renewed, first);
  EXPECT_EQ(renewed->not_after_ms, clock_.NowMs() + 90 * kDayMs);
}

TEST_F(CertificatesTest, ADetachedDomainLosesItsCertificatesAtOnce) {
  TempDir other;
  auto foreign = LocalCa::OpenOrCreate((other.path() / "tls").string(), "", clock_.NowMs());
  ASSERT_TRUE(foreign.ok());
  auto acme = (*foreign)->Issue("shop.example.com", clock_.NowMs());
  ASSERT_TRUE(acme.ok());
  EXPECT_EQ(Names("shop.example.com"), std::vector<std::string>{"shop.example.com"});
  certs_->SetAcme("shop.example.com", *acme);
  custom_ = "";  // detached from its app
  EXPECT_EQ(Names("shop.example.com"), std::vector<std::string>{"localhost"});
  custom_ = "shop.example.com";
  EXPECT_EQ(certs_->ForHost("shop.example.com"), *acme);
}

TEST_F(CertificatesTest, AnAcmeCertificateTakesPrecedenceWhileValid) {
  TempDir other;
  auto foreign = LocalCa::OpenOrCreate((other.path() / "tls").string(), "", clock_.NowMs());
  ASSERT_TRUE(foreign.ok());
  auto acme = (*foreign)->Issue("shop.example.com", clock_.NowMs());
  ASSERT_TRUE(acme.ok());
  certs_->SetAcme("shop.example.com", *acme);
  EXPECT_EQ(certs_->ForHost("shop.example.com"), *acme);
  EXPECT_NE(certs_->ForHost("blog.localhost"), *acme);
  clock_.AdvanceMs(91 * kDayMs);  // expired: the local CA's again
  auto after = certs_->ForHost("shop.example.com");
  EXPECT_NE(after, *acme);
  EXPECT_EQ(Verify(*after, ca_->root_pem(), "shop.example.com", clock_.NowMs()), X509_V_OK);
}

}  // namespace
}  // namespace kiln::tls
