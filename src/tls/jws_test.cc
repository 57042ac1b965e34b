#include <gtest/gtest.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/x509v3.h>

#include "core/crypto.h"
#include "core/json.h"
#include "tls/internal.h"

namespace kiln::tls {
namespace {

std::string B64(std::string_view text) {
  auto raw = crypto::Base64UrlDecode(text);
  EXPECT_TRUE(raw.ok()) << text;
  return raw.ok() ? *raw : std::string();
}

// The public key a JWK describes, rebuilt from its x and y alone.
PkeyPtr KeyFromJwk(const json::object& jwk) {
  std::string point = "\x04" + B64(GetString(jwk, "x")) + B64(GetString(jwk, "y"));
  OSSL_PARAM_BLD* bld = OSSL_PARAM_BLD_new();
  OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0);
  OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point.data(), point.size());
  OSSL_PARAM* params = OSSL_PARAM_BLD_to_param(bld);
  EVP_PKEY_CTX* ctx = EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr);
  EVP_PKEY* key = nullptr;
  EVP_PKEY_fromdata_init(ctx);
  EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params);
  EVP_PKEY_CTX_free(ctx);
  OSSL_PARAM_free(params);
  OSSL_PARAM_BLD_free(bld);
  return PkeyPtr(key);
}

// Verifies a raw (r || s) ES256 signature with `key`.
bool VerifyEs256(EVP_PKEY* key, std::string_view data, const std::string& raw) {
  if (raw.size() != 64) {
    return false;
  }
  ECDSA_SIG* sig = ECDSA_SIG_new();
  ECDSA_SIG_set0(sig, BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr),
                 BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr));
  unsigned char* der = nullptr;
  int der_len = i2d_ECDSA_SIG(sig, &der);
  ECDSA_SIG_free(sig);
  EVP_MD_CTX* md = EVP_MD_CTX_new();
  bool ok = EVP_DigestVerifyInit(md, nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestVerify(md, der, static_cast<size_t>(der_len),
                             reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  EVP_MD_CTX_free(md);
  OPENSSL_free(der);
  ERR_clear_error();
  return ok;
}

TEST(JwsTest, JwkIsCanonicalAndDescribesTheKey) {
  auto key = NewP256Key();
  ASSERT_TRUE(key.ok());
  std::string jwk = JwkJson(key->get());
  // RFC 7638: required members only, sorted, no white space.
  EXPECT_TRUE(jwk.starts_with(R"({"crv":"P-256","kty":"EC","x":")")) << jwk;
  EXPECT_EQ(jwk.find(' '), std::string::npos);
  auto parsed = ParseJson(jwk);
  ASSERT_TRUE(parsed.ok());
  const json::object& o = parsed->as_object();
  EXPECT_EQ(o.size(), 4u);
  EXPECT_EQ(B64(GetString(o, "x")).size(), 32u);
  EXPECT_EQ(B64(GetString(o, "y")).size(), 32u);
  // The thumbprint is the SHA-256 of exactly that text.
  auto digest = crypto::Sha256(jwk);
  EXPECT_EQ(JwkThumbprint(key->get()),
            crypto::Base64UrlEncode(
                std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size())));
  EXPECT_EQ(JwkThumbprint(key->get()).size(), 43u);

  // A signature by the key verifies with the key rebuilt from the JWK alone.
  PkeyPtr pub = KeyFromJwk(o);
  ASSERT_NE(pub, nullptr);
  auto sig = SignEs256(key->get(), "hello");
  ASSERT_TRUE(sig.ok());
  EXPECT_TRUE(VerifyEs256(pub.get(), "hello", *sig));
  EXPECT_FALSE(VerifyEs256(pub.get(), "hellO", *sig));
}

TEST(JwsTest, FlattenedJwsSignsProtectedDotPayload) {
  auto key = NewP256Key();
  ASSERT_TRUE(key.ok());
  std::string header = R"({"alg":"ES256","nonce":"n1","url":"https://ca/new-order","kid":"k"})";
  auto jws = Jws(key->get(), header, R"({"identifiers":[]})");
  ASSERT_TRUE(jws.ok());
  auto parsed = ParseJson(*jws);
  ASSERT_TRUE(parsed.ok()) << *jws;
  const json::object& o = parsed->as_object();
  EXPECT_EQ(B64(GetString(o, "protected")), header);
  EXPECT_EQ(B64(GetString(o, "payload")), R"({"identifiers":[]})");
  std::string sig = B64(GetString(o, "signature"));
  EXPECT_TRUE(
      VerifyEs256(key->get(), GetString(o, "protected") + "." + GetString(o, "payload"), sig));

  // POST-as-GET: an empty payload member.
  auto get = Jws(key->get(), header, "");
  ASSERT_TRUE(get.ok());
  EXPECT_NE(get->find(R"("payload":"")"), std::string::npos) << *get;
}

TEST(JwsTest, CsrNamesTheDomainAndIsSignedByTheKey) {
  auto key = NewP256Key();
  ASSERT_TRUE(key.ok());
  auto der = CsrDer(key->get(), "shop.example.com");
  ASSERT_TRUE(der.ok()) << der.status().ToString();
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der->data());
  X509_REQ* req = d2i_X509_REQ(nullptr, &p, static_cast<long>(der->size()));
  ASSERT_NE(req, nullptr);
  EXPECT_EQ(X509_REQ_verify(req, key->get()), 1);
  STACK_OF(X509_EXTENSION)* exts = X509_REQ_get_extensions(req);
  bool found = false;
  for (int i = 0; i < sk_X509_EXTENSION_num(exts); ++i) {
    X509_EXTENSION* ext = sk_X509_EXTENSION_value(exts, i);
    if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) != NID_subject_alt_name) {
      continue;
    }
    auto* names = static_cast<GENERAL_NAMES*>(X509V3_EXT_d2i(ext));
    ASSERT_EQ(sk_GENERAL_NAME_num(names), 1);
    GENERAL_NAME* n = sk_GENERAL_NAME_value(names, 0);
    ASSERT_EQ(n->type, GEN_DNS);
    EXPECT_EQ(std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.dNSName))),
              "shop.example.com");
    GENERAL_NAMES_free(names);
    found = true;
  }
  EXPECT_TRUE(found);
  sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
  X509_REQ_free(req);
}

}  // namespace
}  // namespace kiln::tls
