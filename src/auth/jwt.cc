#include <boost/json.hpp>

#include "auth/auth.h"

namespace kiln::auth {
namespace json = boost::json;
namespace {

constexpr std::string_view kHeader = R"({"alg":"HS256","typ":"JWT"})";

Status Invalid(std::string message) {
  return Status::Unauthenticated("TOKEN_INVALID", std::move(message),
                                 "get a new token with POST /v1/auth/token");
}

}  // namespace

std::string SignJwt(const JwtClaims& claims, std::string_view key) {
  json::object payload;
  payload["sub"] = claims.key_id;
  payload["ws"] = claims.workspace_id;
  json::array scopes;
  for (const auto& s : ScopeNames(claims.scopes)) {
    scopes.emplace_back(s);
  }
  payload["scopes"] = std::move(scopes);
  payload["iat"] = claims.issued_s;
  payload["exp"] = claims.expires_s;
  payload["jti"] = claims.jti;
  if (!claims.kind.empty()) {
    payload["kind"] = claims.kind;
  }
  if (!claims.audience.empty()) {
    payload["aud"] = claims.audience;
  }
  std::string signing_input =
      crypto::Base64UrlEncode(kHeader) + "." + crypto::Base64UrlEncode(json::serialize(payload));
  std::string signature = crypto::Base64UrlEncode(crypto::HmacSha256(key, signing_input));
  return signing_input + "." + signature;
}

Result<JwtClaims> VerifyJwt(std::string_view token, std::string_view key, int64_t now_s) {
  size_t dot1 = token.find('.');
  size_t dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
  if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
    return Invalid("the token is not a JWT (expected three dot-separated parts)");
  }
  std::string_view signing_input = token.substr(0, dot2);
  auto signature = crypto::Base64UrlDecode(token.substr(dot2 + 1));
  // The signature is checked before anything in the token is believed, header included.
  if (!signature.ok() ||
      !crypto::ConstantTimeEquals(*signature, crypto::HmacSha256(key, signing_input))) {
    return Invalid("the token's signature does not verify");
  }
  auto header = crypto::Base64UrlDecode(token.substr(0, dot1));
  auto payload = crypto::Base64UrlDecode(token.substr(dot1 + 1, dot2 - dot1 - 1));
  if (!header.ok() || !payload.ok()) {
    return Invalid("the token is not valid base64url");
  }
  boost::system::error_code ec;
  json::value h = json::parse(*header, ec);
  if (ec || !h.is_object() || !h.as_object().contains("alg") ||
      h.as_object().at("alg") != "HS256") {
    return Invalid("the token's algorithm must be HS256");
  }
  json::value p = json::parse(*payload, ec);
  if (ec || !p.is_object()) {
    return Invalid("the token's claims are not a JSON object");
  }
  const json::object& o = p.as_object();
  JwtClaims claims;
  auto str = [&](std::string_view k) -> std::string {
    auto it = o.find(k);
    return it != o.end() && it->value().is_string() ? std::string(it->value().as_string())
                                                    : std::string();
  };
  auto num = [&](std::string_view k) -> int64_t {
    auto it = o.find(k);
    return it != o.end() && it->value().is_int64() ? it->value().as_int64() : 0;
  };
  claims.key_id = str("sub");
  claims.workspace_id = str("ws");
  claims.jti = str("jti");
  claims.kind = str("kind");
  claims.audience = str("aud");
  claims.issued_s = num("iat");
  claims.expires_s = num("exp");
  std::vector<std::string> names;
  if (auto it = o.find("scopes"); it != o.end() && it->value().is_array()) {
    for (const auto& s : it->value().as_array()) {
      if (s.is_string()) {
        names.emplace_back(s.as_string());
      }
    }
  }
  auto scopes = ParseScopes(names);
  if (!scopes.ok() || claims.key_id.empty() || claims.workspace_id.empty() ||
      claims.expires_s == 0) {
    return Invalid("the token's claims are incomplete");
  }
  claims.scopes = *scopes;
  if (now_s >= claims.expires_s) {
    return Status::Unauthenticated(
        "TOKEN_EXPIRED", "the token expired at " + FormatTime(claims.expires_s * 1000),
        claims.kind == kGatewayKind
            ? "X-Kiln-Auth tokens are short-lived: verify the one of the request being served"
            : "get a new token with POST /v1/auth/token");
  }
  return claims;
}

}  // namespace kiln::auth
