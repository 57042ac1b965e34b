// The dashboard's sign-in (REST only, as it is about an HTTP cookie): POST, GET and DELETE
// /v1/auth/session, and the session cookie as a credential for the whole API with its CSRF
// check.
//
// A session is a JWT of the API key the user signed in with, kept in an HttpOnly,
// SameSite=Strict cookie: page scripts cannot read it, and browsers do not send it with
// requests started by other sites. As a second lock, a request authenticated by the cookie
// that changes something must carry `X-Kiln-CSRF: 1` (a header no cross-site form can set
// and no cross-origin script can send without a CORS preflight, which this server never
// grants) and, when it has an Origin, come from this server's own.
#include <algorithm>
#include <cctype>
#include <optional>
#include <string>

#include "api/internal.h"

namespace kiln::api {
namespace {

// Twelve hours of work without signing in again, unless the config allows JWTs less.
constexpr int kSessionSeconds = 12 * 3600;

constexpr std::string_view kCsrfHeader = "x-kiln-csrf";

bool ChangesState(std::string_view method) {
  return method != "GET" && method != "HEAD" && method != "OPTIONS";
}

// "host:port" of `authority` ("localhost:8080", "[::1]:80", "example.com"), lower-case,
// with `default_port` where it names none. Empty when it is not an authority.
std::string Authority(std::string_view authority, std::string_view default_port) {
  if (authority.empty() || authority.find_first_of("/?#@ ") != std::string_view::npos) {
    return {};
  }
  std::string_view host = authority;
  std::string_view port;
  size_t colon = authority.rfind(':');
  size_t bracket = authority.rfind(']');
  if (colon != std::string_view::npos && (bracket == std::string_view::npos || colon > bracket)) {
    host = authority.substr(0, colon);
    port = authority.substr(colon + 1);
  }
  if (host.empty()) {
    return {};
  }
  std::string out;
  for (char c : host) {
    out += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  out += ':';
  out += port.empty() ? default_port : port;
  return out;
}

// Whether the request's Origin, when it has one, is this server as the client reached it
// (its Host header). Browsers send Origin with every cross-origin request that changes
// something, so a foreign page is caught here even where SameSite is not honoured.
bool SameOrigin(const http::Request& req) {
  std::string_view origin = req.Header("origin");
  if (origin.empty()) {
    return true;
  }
  std::string_view port = "80";
  if (origin.starts_with("https://")) {
    origin.remove_prefix(8);
    port = "443";
  } else if (origin.starts_with("http://")) {
    origin.remove_prefix(7);
  } else {
    return false;  // "null" (a sandboxed frame, a file) or another scheme
  }
  std::string from = Authority(origin, port);
  // A Host without a port was reached on the scheme's default port.
  return !from.empty() && from == Authority(req.Header("host"), port);
}

Status CsrfFailed(std::string message) {
  return Status::PermissionDenied(
      "CSRF_CHECK_FAILED", std::move(message),
      "requests that change something with the dashboard's session cookie must send the "
      "header `X-Kiln-CSRF: 1` from the dashboard's own origin; scripts and tools should send "
      "`Authorization: Bearer <API key>` instead");
}

// The session cookie `value` for `max_age` seconds (0: remove it).
std::string SessionCookie(std::string_view value, int64_t max_age, bool tls) {
  std::string out(service::kSessionCookie);
  out += '=';
  out += value;
  out += "; Path=/; HttpOnly; SameSite=Strict; Max-Age=";
  out += std::to_string(std::max<int64_t>(max_age, 0));
  if (tls) {
    out += "; Secure";
  }
  return out;
}

json::object SessionJson(const auth::Principal& p, int64_t expires_ms) {
  json::array scopes;
  for (const auto& s : auth::ScopeNames(p.scopes)) {
    scopes.emplace_back(s);
  }
  return json::object{
      {"workspace",
       json::object{
           {"id", p.workspace.id}, {"slug", p.workspace.slug}, {"name", p.workspace.name}}},
      {"key", json::object{{"id", p.key_id}, {"name", p.key_name}, {"scopes", std::move(scopes)}}},
      {"expiresAt", FormatTime(expires_ms)}};
}

Status NotSignedIn() {
  return Status::Unauthenticated(
      "UNAUTHENTICATED", "not signed in",
      "sign in with an API key: POST /v1/auth/session {\"apiKey\": \"kiln_sk_...\"}");
}

// A session cookie that did not authenticate, said as the session's so the dashboard knows
// to go back to its sign-in page.
Status SessionRefused(const Status& why) {
  if (!why.Is(Code::kUnauthenticated)) {
    return why;  // the store failed, not the session
  }
  if (why.error_code() == "TOKEN_EXPIRED") {
    return Status::Unauthenticated("SESSION_EXPIRED", "the dashboard session expired",
                                   "sign in again");
  }
  return Status::Unauthenticated(
      "SESSION_INVALID", "the dashboard session is not valid: " + why.message(), "sign in again");
}

}  // namespace

CallerCredential Credential(const http::Request& req) {
  if (std::string_view bearer = service::BearerValue(req.Header("authorization"));
      !bearer.empty()) {
    return {bearer, false};
  }
  if (std::string_view key = req.Header("x-api-key"); !key.empty()) {
    return {key, false};
  }
  return {service::CookieValue(req.Header("cookie"), service::kSessionCookie), true};
}

Result<auth::Principal> Api::Impl::Caller(const http::Request& req) {
  CallerCredential credential = Credential(req);
  if (!credential.from_cookie || credential.value.empty()) {
    return deps.auth.Authenticate(credential.value);
  }
  // The cookie holds what POST /v1/auth/session set, a JWT; never a key itself (nothing of
  // ours puts one there), nor the X-Kiln-Auth token an app was given.
  if (credential.value.starts_with(auth::kKeyPrefix)) {
    return SessionRefused(Status::Unauthenticated("TOKEN_INVALID", "it holds an API key"));
  }
  auto principal = deps.auth.Authenticate(credential.value);
  if (!principal.ok()) {
    return SessionRefused(principal.status());
  }
  if (principal->via != auth::Principal::Via::kJwt) {
    return SessionRefused(Status::Unauthenticated("TOKEN_INVALID", "it is not a session token"));
  }
  if (ChangesState(req.method)) {
    if (req.Header(kCsrfHeader) != "1") {
      return CsrfFailed(req.method + " " + req.path +
                        " with the session cookie needs the header X-Kiln-CSRF: 1");
    }
    if (!SameOrigin(req)) {
      return CsrfFailed("the request comes from another origin (" +
                        ValidUtf8(req.Header("origin")) + ") than this server");
    }
  }
  return principal;
}

void Api::Impl::Session(Api& api, int route, const http::Request& req,
                        const std::string& request_id, http::Response& res) {
  res.Set("Cache-Control", "no-store");
  if (route != session_get && !SameOrigin(req)) {
    // Signing a victim's browser in to the attacker's workspace (or out) from another page.
    api.Error(CsrfFailed("the request comes from another origin (" +
                         ValidUtf8(req.Header("origin")) + ") than this server"),
              request_id, res);
    return;
  }

  if (route == session_delete) {
    // Signed out whatever the cookie held: the browser forgets it, and the server its token,
    // so that a copy of the cookie taken elsewhere ends too.
    std::string_view cookie = service::CookieValue(req.Header("cookie"), service::kSessionCookie);
    if (!cookie.empty() && !cookie.starts_with(auth::kKeyPrefix)) {
      if (Status revoked = deps.auth.RevokeJwt(cookie); !revoked.ok()) {
        api.Error(revoked, request_id, res);
        return;
      }
    }
    res.status = 204;
    res.Set("Set-Cookie", SessionCookie("", 0, req.tls));
    return;
  }

  if (route == session_get) {
    std::string_view cookie = service::CookieValue(req.Header("cookie"), service::kSessionCookie);
    Result<auth::Principal> principal = NotSignedIn();
    if (!cookie.empty()) {
      http::Request plain;  // the cookie alone, whatever else the request carries
      plain.method = "GET";
      plain.headers.emplace_back("cookie", std::string(req.Header("cookie")));
      principal = Caller(plain);
    }
    if (!principal.ok()) {
      if (!cookie.empty() && principal.status().Is(Code::kUnauthenticated)) {
        res.Set("Set-Cookie", SessionCookie("", 0, req.tls));
      }
      api.Error(principal.status(), request_id, res);
      return;
    }
    res.Set("Content-Type", std::string(kJson));
    res.body =
        json::serialize(json::object{{"data", SessionJson(*principal, principal->expires_ms)}});
    return;
  }

  // POST: sign in with an API key.
  auto body = ParseJson(req.body.empty() ? std::string_view("{}") : std::string_view(req.body));
  if (!body.ok()) {
    api.Error(body.status(), request_id, res);
    return;
  }
  std::optional<std::string> key;
  if (body->is_object()) {
    key = FindString(body->as_object(), "apiKey");
  }
  if (!key || key->empty()) {
    api.Error(Status::InvalidArgument("VALIDATION_FAILED", "apiKey: required",
                                      "send {\"apiKey\": \"kiln_sk_...\"} (the first admin key is "
                                      "in <data_dir>/admin.key)"),
              request_id, res);
    return;
  }
  if (!key->starts_with(auth::kKeyPrefix)) {
    api.Error(Status::Unauthenticated("INVALID_API_KEY", "sign-in takes an API key",
                                      "paste a key that starts with kiln_sk_ (mint one with "
                                      "`kiln keys create`)"),
              request_id, res);
    return;
  }
  auto principal = deps.auth.Authenticate(*key);
  if (!principal.ok()) {
    api.Error(principal.status(), request_id, res);
    return;
  }
  int ttl = std::max(1, std::min(kSessionSeconds, deps.config.auth.jwt_max_ttl_seconds));
  int64_t expires_ms = 0;
  auto jwt = deps.auth.IssueJwt(*principal, ttl, &expires_ms);
  if (!jwt.ok()) {
    api.Error(jwt.status(), request_id, res);
    return;
  }
  // The cookie lives as long as the token; shorter when the key itself expires sooner.
  int64_t max_age = ttl;
  if (principal->expires_ms != 0 && expires_ms == principal->expires_ms) {
    max_age = (expires_ms - SystemClock::Instance().NowMs()) / 1000;
  }
  res.Set("Set-Cookie", SessionCookie(*jwt, max_age, req.tls));
  res.Set("Content-Type", std::string(kJson));
  res.body = json::serialize(json::object{{"data", SessionJson(*principal, expires_ms)}});
  log::Info("dashboard sign-in", {{"request_id", request_id},
                                  {"workspace", principal->workspace.slug},
                                  {"key", principal->key_id},
                                  {"remote", req.remote}});
}

json::object SessionPathItem() {
  json::object session_schema{
      {"type", "object"},
      {"properties",
       json::object{
           {"workspace", json::object{{"type", "object"},
                                      {"description", "id, slug and name of the workspace"}}},
           {"key", json::object{{"type", "object"},
                                {"description", "id, name and scopes of the key signed in with"}}},
           {"expiresAt", json::object{{"type", "string"}, {"format", "date-time"}}}}}};
  json::object envelope{{"type", "object"},
                        {"required", json::array{"data"}},
                        {"properties", json::object{{"data", session_schema}}}};
  auto ok = [&](std::string description) {
    return json::object{
        {"description", std::move(description)},
        {"content", json::object{{"application/json", json::object{{"schema", envelope}}}}}};
  };
  json::object error{
      {"description", "error"},
      {"content",
       json::object{
           {"application/json",
            json::object{{"schema", json::object{{"$ref", "#/components/schemas/Error"}}}}}}}};
  json::object body{
      {"required", true},
      {"content",
       json::object{
           {"application/json",
            json::object{
                {"schema",
                 json::object{
                     {"type", "object"},
                     {"required", json::array{"apiKey"}},
                     {"properties",
                      json::object{{"apiKey", json::object{{"type", "string"},
                                                           {"description",
                                                            "an API key, kiln_sk_…"}}}}}}}}}}}};
  return json::object{
      {"post",
       json::object{
           {"operationId", "auth_session_create"},
           {"summary", "Sign in to the dashboard"},
           {"description",
            "Checks the API key and answers with a session cookie `kiln_session` (HttpOnly, "
            "SameSite=Strict) holding a JWT of the key for 12 hours (at most "
            "auth.jwt_max_ttl_seconds). The cookie then authenticates every API call; calls that "
            "change something must also send `X-Kiln-CSRF: 1` (403 CSRF_CHECK_FAILED otherwise)."},
           {"tags", json::array{"auth"}},
           {"security", json::array{}},
           {"requestBody", std::move(body)},
           {"responses", json::object{{"200", ok("signed in; Set-Cookie carries the session")},
                                      {"default", error}}}}},
      {"get",
       json::object{{"operationId", "auth_session_get"},
                    {"summary", "The dashboard session of the cookie"},
                    {"description",
                     "401 SESSION_EXPIRED, SESSION_INVALID or UNAUTHENTICATED when "
                     "there is no valid session: sign in again."},
                    {"tags", json::array{"auth"}},
                    {"security", json::array{json::object{{"session", json::array{}}}}},
                    {"responses", json::object{{"200", ok("the session")}, {"default", error}}}}},
      {"delete",
       json::object{{"operationId", "auth_session_delete"},
                    {"summary", "Sign out of the dashboard"},
                    {"description", "Removes the session cookie (Max-Age=0)."},
                    {"tags", json::array{"auth"}},
                    {"security", json::array{}},
                    {"responses", json::object{{"204", json::object{{"description", "signed out"}}},
                                               {"default", error}}}}}};
}

}  // namespace kiln::api
