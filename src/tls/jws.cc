// The signed messages of ACME: ES256 JWS (RFC 7515, 7518 §3.4), JWK thumbprints (RFC 7638)
// and certificate signing requests.
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "core/crypto.h"
#include "tls/internal.h"

namespace kiln::tls {
namespace {

struct BnFree {
  void operator()(BIGNUM* b) const { BN_free(b); }
};
using BnPtr = std::unique_ptr<BIGNUM, BnFree>;

std::string Coordinate(EVP_PKEY* key, const char* name) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) {
    ERR_clear_error();
    return {};
  }
  BnPtr bn(raw);
  unsigned char buf[32];
  if (BN_bn2binpad(bn.get(), buf, sizeof buf) != sizeof buf) {
    return {};
  }
  return crypto::Base64UrlEncode(std::string_view(reinterpret_cast<char*>(buf), sizeof buf));
}

}  // namespace

std::string JwkJson(EVP_PKEY* key) {
  // RFC 7638 §3.2: the required members only, in lexicographic order, no white space. The
  // same text serves as the `jwk` header, so the thumbprint always matches what was sent.
  return R"({"crv":"P-256","kty":"EC","x":")" + Coordinate(key, OSSL_PKEY_PARAM_EC_PUB_X) +
         R"(","y":")" + Coordinate(key, OSSL_PKEY_PARAM_EC_PUB_Y) + R"("})";
}

std::string JwkThumbprint(EVP_PKEY* key) {
  auto digest = crypto::Sha256(JwkJson(key));
  return crypto::Base64UrlEncode(
      std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

Result<std::string> SignEs256(EVP_PKEY* key, std::string_view data) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> md(EVP_MD_CTX_new(), EVP_MD_CTX_free);
  size_t len = 0;
  if (!md || EVP_DigestSignInit(md.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(md.get(), nullptr, &len, reinterpret_cast<const unsigned char*>(data.data()),
                     data.size()) != 1) {
    return OpenSslError("ES256 signature");
  }
  std::string der(len, '\0');
  if (EVP_DigestSign(md.get(), reinterpret_cast<unsigned char*>(der.data()), &len,
                     reinterpret_cast<const unsigned char*>(data.data()), data.size()) != 1) {
    return OpenSslError("ES256 signature");
  }
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> sig(
      d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len)), ECDSA_SIG_free);
  if (!sig) {
    return OpenSslError("ES256 signature (DER)");
  }
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  unsigned char raw[64];
  if (BN_bn2binpad(r, raw, 32) != 32 || BN_bn2binpad(s, raw + 32, 32) != 32) {
    return Status::Internal("ES256 signature: r or s longer than 32 bytes");
  }
  return std::string(reinterpret_cast<char*>(raw), sizeof raw);
}

Result<std::string> Jws(EVP_PKEY* key, const std::string& protected_json,
                        const std::string& payload) {
  std::string protected64 = crypto::Base64UrlEncode(protected_json);
  std::string payload64 = crypto::Base64UrlEncode(payload);
  KILN_ASSIGN_OR_RETURN(std::string sig, SignEs256(key, protected64 + "." + payload64));
  // base64url text needs no JSON escaping.
  return R"({"protected":")" + protected64 + R"(","payload":")" + payload64 + R"(","signature":")" +
         crypto::Base64UrlEncode(sig) + R"("})";
}

Result<std::string> CsrDer(EVP_PKEY* key, const std::string& domain) {
  std::unique_ptr<X509_REQ, decltype(&X509_REQ_free)> req(X509_REQ_new(), X509_REQ_free);
  if (!req || X509_REQ_set_version(req.get(), 0) != 1 ||
      X509_NAME_add_entry_by_txt(X509_REQ_get_subject_name(req.get()), "CN", MBSTRING_UTF8,
                                 reinterpret_cast<const unsigned char*>(domain.c_str()), -1, -1,
                                 0) != 1 ||
      X509_REQ_set_pubkey(req.get(), key) != 1) {
    return OpenSslError("certificate request");
  }
  X509_EXTENSION* san =
      X509V3_EXT_conf_nid(nullptr, nullptr, NID_subject_alt_name, ("DNS:" + domain).c_str());
  if (san == nullptr) {
    return OpenSslError("certificate request: subjectAltName");
  }
  STACK_OF(X509_EXTENSION)* exts = sk_X509_EXTENSION_new_null();
  sk_X509_EXTENSION_push(exts, san);
  int added = X509_REQ_add_extensions(req.get(), exts);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  if (added != 1 || X509_REQ_sign(req.get(), key, EVP_sha256()) == 0) {
    return OpenSslError("certificate request: signing");
  }
  int len = i2d_X509_REQ(req.get(), nullptr);
  if (len <= 0) {
    return OpenSslError("certificate request: DER");
  }
  std::string der(static_cast<size_t>(len), '\0');
  unsigned char* out = reinterpret_cast<unsigned char*>(der.data());
  i2d_X509_REQ(req.get(), &out);
  return der;
}

}  // namespace kiln::tls
