#pragma once
// Module-private: the pieces of tls/ and the OpenSSL types they share.
//   ca.cc        LocalCa: Kiln's root and the leaf certificates it issues; PEM helpers
//   certs.cc     Certificates: which certificate a host gets (SNI), caches, ACME files
//   listener.cc  Listener: TLS handshakes and the byte pump to the HTTP server
//   jws.cc       ES256 JWS, JWK thumbprints, CSRs (RFC 7515, 7638, 8555)
//   acme.cc      AcmeClient: one certificate order against an ACME server, over libcurl
//   https.cc     Https: the above put together, and the certificate thread

#include <openssl/evp.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"
#include "tls/tls.h"

namespace kiln::tls {

struct PkeyFree {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct X509Free {
  void operator()(X509* p) const { X509_free(p); }
};
struct SslCtxFree {
  void operator()(SSL_CTX* p) const { SSL_CTX_free(p); }
};
using PkeyPtr = std::unique_ptr<EVP_PKEY, PkeyFree>;
using X509Ptr = std::unique_ptr<X509, X509Free>;
using SslCtxPtr = std::unique_ptr<SSL_CTX, SslCtxFree>;

// The OpenSSL error queue (emptied) as a Status naming `what`.
Status OpenSslError(std::string_view what);

// ---- keys and certificates (ca.cc) ----
Result<PkeyPtr> NewP256Key();
std::string KeyPem(EVP_PKEY* key);  // PKCS#8
std::string CertPem(X509* cert);
Result<PkeyPtr> ParseKeyPem(std::string_view pem);
// Every certificate in `pem`, in order; InvalidArgument when there is none.
Result<std::vector<X509Ptr>> ParseCertsPem(std::string_view pem);
int64_t NotAfterMs(const X509* cert);
// A private key file: read, or created (0600) when missing.
Result<PkeyPtr> LoadOrCreateKey(const std::string& path);

// A certificate with its key and the chain after it, as one SSL_use_cert_and_key call takes
// them. Immutable once built; shared by the connections that use it.
struct ServedCert {
  X509Ptr leaf;
  PkeyPtr key;
  STACK_OF(X509) * chain = nullptr;  // owned; intermediates, may be empty
  int64_t not_after_ms = 0;
  ServedCert() = default;
  ServedCert(const ServedCert&) = delete;
  ServedCert& operator=(const ServedCert&) = delete;
  ~ServedCert();
};
// A ServedCert from a PEM chain (leaf first) and its key; InvalidArgument when the key is not
// the leaf's.
Result<std::shared_ptr<const ServedCert>> MakeServedCert(std::string_view chain_pem,
                                                         std::string_view key_pem);

// Kiln's own CA: an EC P-256 root valid for 10 years in <dir>/ca.key (0600) and ca.crt.
// Leaves: EC P-256, SAN DNS:host, serverAuth, valid kLeafDays (from an hour ago, for clocks
// a little behind). Thread-safe; immutable after OpenOrCreate.
class LocalCa {
 public:
  static constexpr int kLeafDays = 90;
  // Creates the CA when neither file exists; refuses (TLS_CA_INVALID) when only one does,
  // when they do not parse or do not belong together: clients trust the old root, so it is
  // never replaced behind their back.
  static Result<std::unique_ptr<LocalCa>> OpenOrCreate(const std::string& dir,
                                                       const std::string& name, int64_t now_ms);
  Result<std::shared_ptr<const ServedCert>> Issue(const std::string& host, int64_t now_ms) const;
  const std::string& root_pem() const { return root_pem_; }

 private:
  LocalCa(X509Ptr cert, PkeyPtr key);
  X509Ptr cert_;
  PkeyPtr key_;
  std::string root_pem_;
};

// ---- which certificate a host gets (certs.cc) ----
// Thread-safe: ForHost runs on the listener's threads, the rest on the certificate thread.
class Certificates {
 public:
  // The most local-CA leaves kept in memory; past it the least recently issued go.
  static constexpr size_t kMaxCachedLeaves = 4096;

  Certificates(const LocalCa& ca, std::string base_domain,
               std::function<bool(std::string_view)> is_custom_domain, const Clock& clock);

  // The certificate for a ClientHello's server name (empty when none was sent). Never null
  // unless the local CA cannot issue at all.
  std::shared_ptr<const ServedCert> ForHost(std::string_view sni);

  // Whether the gateway serves `host` (lower-case): the base domain, one label under it, or
  // a custom domain.
  bool Served(std::string_view host) const;
  // The local CA's certificate for `host`: cached, or issued now (and when the cached one
  // has less than a third of its life left).
  Result<std::shared_ptr<const ServedCert>> Local(const std::string& host);
  // An ACME certificate for `domain` (preferred over the local CA's from now on), or none.
  void SetAcme(const std::string& domain, std::shared_ptr<const ServedCert> cert);
  std::shared_ptr<const ServedCert> Acme(const std::string& domain) const;

 private:
  const LocalCa& ca_;
  const std::string base_domain_;
  const std::function<bool(std::string_view)> is_custom_domain_;
  const Clock& clock_;
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<const ServedCert>, std::less<>> local_;  // guarded
  std::map<std::string, std::shared_ptr<const ServedCert>, std::less<>> acme_;   // guarded
};

// Normalizes a server name: lower-case, one trailing dot dropped.
std::string NormalizeHost(std::string_view name);

// ---- the listener (listener.cc) ----
struct ListenerOptions {
  std::string host;
  uint16_t port = 0;
  int threads = 2;
  int max_connections = 10'000;
  std::chrono::milliseconds handshake_timeout{10'000};
  // A connection whose output to the client makes no progress for this long is closed.
  std::chrono::milliseconds write_stall_timeout{60'000};
};

class Listener {
 public:
  // `select` picks the certificate for a server name ("" when the client sent none); it
  // runs on the listener's threads during handshakes.
  static Result<std::unique_ptr<Listener>> Start(
      const ListenerOptions& options,
      std::function<std::shared_ptr<const ServedCert>(std::string_view)> select,
      http::Server& server);
  virtual ~Listener() = default;
  virtual uint16_t port() const = 0;
  virtual void StopAccepting() = 0;
  // Connections open now (handshaking or pumping).
  virtual int64_t Connections() const = 0;
};

// ---- ACME messages (jws.cc) ----
// The public key as a JWK with members in the order RFC 7638 hashes them.
std::string JwkJson(EVP_PKEY* key);
// base64url(SHA-256(JwkJson)): the account's part of every HTTP-01 key authorization.
std::string JwkThumbprint(EVP_PKEY* key);
// ES256 over `data`: r and s as 32 bytes each (JWS wants them raw, not DER).
Result<std::string> SignEs256(EVP_PKEY* key, std::string_view data);
// A flattened JWS: {"protected", "payload", "signature"}. `payload` empty means POST-as-GET.
Result<std::string> Jws(EVP_PKEY* key, const std::string& protected_json,
                        const std::string& payload);
// A PKCS#10 request (DER) for `domain` (CN and SAN) signed with `key`.
Result<std::string> CsrDer(EVP_PKEY* key, const std::string& domain);

// ---- ACME (acme.cc) ----
struct AcmeOptions {
  std::string directory;
  std::string email;
  std::string ca_file;
  std::string account_key_path;
  // Publishes / withdraws an HTTP-01 answer.
  std::function<void(const std::string& token, const std::string& key_authorization)> challenge;
  // Sleeps up to `ms`; false (at once) when the server is stopping, which ends the order.
  std::function<bool(std::chrono::milliseconds)> wait;
  // Longest wait for an authorization or an order to be decided.
  std::chrono::seconds order_timeout{180};
};

struct IssuedChain {
  std::string chain_pem;  // leaf first
  std::string key_pem;
  int64_t not_after_ms = 0;
};

class AcmeClient {
 public:
  explicit AcmeClient(AcmeOptions options);
  ~AcmeClient();
  // One order for `domain` (RFC 8555 §7.4): account (created once per client), order,
  // HTTP-01 authorization, finalize with a new key's CSR, download. Errors say which step
  // failed and carry the server's problem detail.
  Result<IssuedChain> Obtain(const std::string& domain);

 private:
  Result<IssuedChain> ObtainOnce(const std::string& domain);
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::tls
