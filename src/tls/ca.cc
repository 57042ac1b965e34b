// Kiln's local CA and the OpenSSL key and certificate helpers the module shares.
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/crypto.h"
#include "tls/internal.h"

namespace kiln::tls {
namespace {

namespace fs = std::filesystem;

struct BioFree {
  void operator()(BIO* b) const { BIO_free(b); }
};
using BioPtr = std::unique_ptr<BIO, BioFree>;

constexpr int64_t kDayMs = 86'400'000;
constexpr int kCaYears = 10;

std::string BioText(BIO* bio) {
  char* data = nullptr;
  long n = BIO_get_mem_data(bio, &data);
  return n > 0 ? std::string(data, static_cast<size_t>(n)) : std::string();
}

Status CaInvalid(const std::string& why) {
  return Status::Unavailable("TLS_CA_INVALID", "the local CA in " + why,
                             "restore ca.key and ca.crt from a backup, or remove both to create a "
                             "new CA (clients must then trust the new root)");
}

Result<std::string> ReadSmallFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::FromErrno("open(\"" + path + "\")", errno);
  }
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// A random positive 127-bit serial number, as CAs are expected to use.
Status SetRandomSerial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    return OpenSslError("RAND_bytes");
  }
  bytes[0] &= 0x7f;
  BIGNUM* bn = BN_bin2bn(bytes, sizeof bytes, nullptr);
  if (bn == nullptr || BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert)) == nullptr) {
    BN_free(bn);
    return OpenSslError("serial number");
  }
  BN_free(bn);
  return Status::Ok();
}

// Adds extension `nid` = `value` (the openssl.cnf syntax), with `issuer` for key identifiers.
Status AddExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (ext == nullptr) {
    return OpenSslError(std::string("extension ") + OBJ_nid2sn(nid) + "=" + value);
  }
  int ok = X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
  return ok == 1 ? Status::Ok() : OpenSslError("X509_add_ext");
}

Status SetValidity(X509* cert, int64_t not_before_ms, int64_t not_after_ms) {
  if (ASN1_TIME_set(X509_getm_notBefore(cert), static_cast<time_t>(not_before_ms / 1000)) ==
          nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert), static_cast<time_t>(not_after_ms / 1000)) ==
          nullptr) {
    return OpenSslError("certificate validity");
  }
  return Status::Ok();
}

Status SetName(X509_NAME* name, const std::string& cn) {
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>("Kiln"), -1, -1, 0) != 1 ||
      X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1,
                                 0) != 1) {
    return OpenSslError("certificate name");
  }
  return Status::Ok();
}

Result<X509Ptr> MakeRoot(EVP_PKEY* key, const std::string& name, int64_t now_ms) {
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) {
    return OpenSslError("X509_new");
  }
  KILN_RETURN_IF_ERROR(SetRandomSerial(cert.get()));
  KILN_RETURN_IF_ERROR(
      SetValidity(cert.get(), now_ms - kDayMs, now_ms + int64_t{kCaYears} * 365 * kDayMs));
  KILN_RETURN_IF_ERROR(SetName(X509_get_subject_name(cert.get()), name));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(cert.get())) != 1 ||
      X509_set_pubkey(cert.get(), key) != 1) {
    return OpenSslError("root certificate");
  }
  KILN_RETURN_IF_ERROR(
      AddExt(cert.get(), cert.get(), NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
  KILN_RETURN_IF_ERROR(
      AddExt(cert.get(), cert.get(), NID_key_usage, "critical,keyCertSign,cRLSign"));
  KILN_RETURN_IF_ERROR(AddExt(cert.get(), cert.get(), NID_subject_key_identifier, "hash"));
  if (X509_sign(cert.get(), key, EVP_sha256()) == 0) {
    return OpenSslError("signing the root certificate");
  }
  return cert;
}

std::string DefaultCaName() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0 || host[0] == '\0') {
    std::snprintf(host, sizeof host, "%s", "localhost");
  }
  return std::string("Kiln local CA ") + host;
}

}  // namespace

Status OpenSslError(std::string_view what) {
  std::string detail;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    detail += detail.empty() ? "" : "; ";
    detail += buf;
  }
  return Status::Internal(std::string(what) + ": " + (detail.empty() ? "failed" : detail));
}

Result<PkeyPtr> NewP256Key() {
  PkeyPtr key(EVP_EC_gen("P-256"));
  if (!key) {
    return OpenSslError("generating an EC P-256 key");
  }
  return key;
}

std::string KeyPem(EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr);
  return BioText(bio.get());
}

std::string CertPem(X509* cert) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  return BioText(bio.get());
}

Result<PkeyPtr> ParseKeyPem(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  PkeyPtr key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    ERR_clear_error();
    return Status::InvalidArgument("TLS_KEY_INVALID", "not a PEM private key");
  }
  return key;
}

Result<std::vector<X509Ptr>> ParseCertsPem(std::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  std::vector<X509Ptr> certs;
  while (X509* cert = PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr)) {
    certs.emplace_back(cert);
  }
  ERR_clear_error();  // the end of the input reads as an error
  if (certs.empty()) {
    return Status::InvalidArgument("TLS_CERT_INVALID", "no PEM certificate found");
  }
  return certs;
}

int64_t NotAfterMs(const X509* cert) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) != 1) {
    return 0;
  }
  return static_cast<int64_t>(timegm(&tm)) * 1000;
}

Result<PkeyPtr> LoadOrCreateKey(const std::string& path) {
  std::error_code ec;
  if (fs::exists(path, ec)) {
    KILN_ASSIGN_OR_RETURN(std::string pem, ReadSmallFile(path));
    auto key = ParseKeyPem(pem);
    if (!key.ok()) {
      return Status::Unavailable("TLS_KEY_INVALID", path + " is not a PEM private key",
                                 "restore it, or remove it to create a new one");
    }
    return key;
  }
  fs::create_directories(fs::path(path).parent_path(), ec);
  KILN_ASSIGN_OR_RETURN(PkeyPtr key, NewP256Key());
  KILN_RETURN_IF_ERROR(crypto::WriteFileAtomic(path, KeyPem(key.get()), 0600));
  return key;
}

ServedCert::~ServedCert() { sk_X509_pop_free(chain, X509_free); }

Result<std::shared_ptr<const ServedCert>> MakeServedCert(std::string_view chain_pem,
                                                         std::string_view key_pem) {
  KILN_ASSIGN_OR_RETURN(std::vector<X509Ptr> certs, ParseCertsPem(chain_pem));
  KILN_ASSIGN_OR_RETURN(PkeyPtr key, ParseKeyPem(key_pem));
  if (X509_check_private_key(certs[0].get(), key.get()) != 1) {
    ERR_clear_error();
    return Status::InvalidArgument("TLS_KEY_MISMATCH", "the key is not the certificate's");
  }
  auto served = std::make_shared<ServedCert>();
  served->not_after_ms = NotAfterMs(certs[0].get());
  served->chain = sk_X509_new_null();
  for (size_t i = 1; i < certs.size(); ++i) {
    sk_X509_push(served->chain, certs[i].release());
  }
  served->leaf = std::move(certs[0]);
  served->key = std::move(key);
  return std::shared_ptr<const ServedCert>(std::move(served));
}

LocalCa::LocalCa(X509Ptr cert, PkeyPtr key)
    : cert_(std::move(cert)), key_(std::move(key)), root_pem_(CertPem(cert_.get())) {}

Result<std::unique_ptr<LocalCa>> LocalCa::OpenOrCreate(const std::string& dir,
                                                       const std::string& name, int64_t now_ms) {
  const std::string key_path = dir + "/ca.key", cert_path = dir + "/ca.crt";
  std::error_code ec;
  bool has_key = fs::exists(key_path, ec), has_cert = fs::exists(cert_path, ec);
  if (!has_key && !has_cert) {
    fs::create_directories(dir, ec);
    if (ec) {
      return Status::Unavailable("TLS_CA_INVALID", "cannot create " + dir + ": " + ec.message(),
                                 "make the data directory writable");
    }
    ::chmod(dir.c_str(), 0700);
    KILN_ASSIGN_OR_RETURN(PkeyPtr key, NewP256Key());
    KILN_ASSIGN_OR_RETURN(X509Ptr cert,
                          MakeRoot(key.get(), name.empty() ? DefaultCaName() : name, now_ms));
    // The key first: a crash between the two leaves a key without a certificate, which the
    // next start reports instead of silently making a second root.
    KILN_RETURN_IF_ERROR(crypto::WriteFileAtomic(key_path, KeyPem(key.get()), 0600));
    KILN_RETURN_IF_ERROR(crypto::WriteFileAtomic(cert_path, CertPem(cert.get()), 0644));
    return std::unique_ptr<LocalCa>(new LocalCa(std::move(cert), std::move(key)));
  }
  if (!has_key || !has_cert) {
    return CaInvalid(dir + " is incomplete: " + (has_key ? "ca.crt" : "ca.key") + " is missing");
  }
  KILN_ASSIGN_OR_RETURN(std::string key_pem, ReadSmallFile(key_path));
  KILN_ASSIGN_OR_RETURN(std::string cert_pem, ReadSmallFile(cert_path));
  auto key = ParseKeyPem(key_pem);
  auto certs = ParseCertsPem(cert_pem);
  if (!key.ok() || !certs.ok()) {
    return CaInvalid(dir + " does not parse (" +
                     (key.ok() ? certs.status().message() : key.status().message()) + ")");
  }
  X509Ptr cert = std::move((*certs)[0]);
  if (X509_check_private_key(cert.get(), key->get()) != 1) {
    ERR_clear_error();
    return CaInvalid(dir + ": ca.key is not the key of ca.crt");
  }
  return std::unique_ptr<LocalCa>(new LocalCa(std::move(cert), std::move(*key)));
}

Result<std::shared_ptr<const ServedCert>> LocalCa::Issue(const std::string& host,
                                                         int64_t now_ms) const {
  // The name goes into an extension written in openssl.cnf syntax: nothing but a host name.
  if (host.empty() || host.size() > 253 ||
      host.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789.-_") != std::string::npos) {
    return Status::InvalidArgument("TLS_HOST_INVALID",
                                   "a certificate is issued for host names only");
  }
  KILN_ASSIGN_OR_RETURN(PkeyPtr key, NewP256Key());
  X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) {
    return OpenSslError("X509_new");
  }
  KILN_RETURN_IF_ERROR(SetRandomSerial(cert.get()));
  int64_t not_after = std::min(now_ms + int64_t{kLeafDays} * kDayMs, NotAfterMs(cert_.get()));
  KILN_RETURN_IF_ERROR(SetValidity(cert.get(), now_ms - 3'600'000, not_after));
  KILN_RETURN_IF_ERROR(SetName(X509_get_subject_name(cert.get()), host));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(cert_.get())) != 1 ||
      X509_set_pubkey(cert.get(), key.get()) != 1) {
    return OpenSslError("leaf certificate");
  }
  KILN_RETURN_IF_ERROR(AddExt(cert.get(), cert_.get(), NID_basic_constraints, "critical,CA:FALSE"));
  KILN_RETURN_IF_ERROR(AddExt(cert.get(), cert_.get(), NID_key_usage, "critical,digitalSignature"));
  KILN_RETURN_IF_ERROR(AddExt(cert.get(), cert_.get(), NID_ext_key_usage, "serverAuth"));
  KILN_RETURN_IF_ERROR(
      AddExt(cert.get(), cert_.get(), NID_subject_alt_name, ("DNS:" + host).c_str()));
  KILN_RETURN_IF_ERROR(AddExt(cert.get(), cert_.get(), NID_subject_key_identifier, "hash"));
  KILN_RETURN_IF_ERROR(AddExt(cert.get(), cert_.get(), NID_authority_key_identifier, "keyid"));
  if (X509_sign(cert.get(), key_.get(), EVP_sha256()) == 0) {
    return OpenSslError("signing a leaf certificate");
  }
  auto served = std::make_shared<ServedCert>();
  served->not_after_ms = NotAfterMs(cert.get());
  served->leaf = std::move(cert);
  served->key = std::move(key);
  // No chain: clients that trust the root have it, and the others fail either way.
  served->chain = sk_X509_new_null();
  return std::shared_ptr<const ServedCert>(std::move(served));
}

}  // namespace kiln::tls
