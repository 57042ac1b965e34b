// Access tokens of apps and sandboxes: create (the token is answered once), list (no
// secrets), revoke (at once) (shared/API.md "access-tokens"). The gateway's `token` policy
// accepts them; access.cc checks them.
#include <functional>

#include "service/access.h"
#include "service/apps.h"
#include "service/sandboxes.h"

namespace kiln::service {
namespace {

constexpr int64_t kDefaultTtlSeconds = 86'400;
constexpr int64_t kMaxTtlSeconds = 30 * 86'400;

// What a token is for, resolved from the path in the caller's workspace.
struct Resolved {
  std::string id;    // app_... or sbx_...
  std::string url;   // what the token opens
  std::string note;  // a warning for the creator, "" for none
  Status no_create;  // why no token may be minted for it (an ended sandbox)
};

// The app or sandbox side of the operations.
struct TokenTarget {
  std::string resource;  // "apps": operation names and paths
  std::string noun;      // "app"
  std::string param;     // the path parameter naming it: "app"
  std::string prop;      // its JSON Schema property text
  std::function<Result<Resolved>(const auth::Principal&, const json::object& in)> resolve;
};

const char* kTokenSchema = R"js({"type": "object", "properties": {
    "id": {"type": "string", "description": "tok_…"},
    "kind": {"type": "string", "enum": ["share-url", "bearer"]},
    "name": {"type": "string"}, "prefix": {"type": "string", "description": "the token's first characters, to recognise it"},
    "target": {"type": "string", "description": "the app (app_…) or sandbox (sbx_…) it opens"},
    "status": {"type": "string", "enum": ["active", "expired", "revoked"]},
    "token": {"type": "string", "description": "create only: the token itself (kiln_at_…), shown this once"},
    "url": {"type": "string", "description": "create only: share-url: the URL to hand out (it carries ?kiln_token=); bearer: the URL to call with Authorization: Bearer <token>"},
    "note": {"type": "string", "description": "create only, when the token cannot open anything yet"},
    "createdAt": {"type": "string"}, "expiresAt": {"type": "string"},
    "lastUsedAt": {"type": ["string", "null"]}, "revokedAt": {"type": ["string", "null"]},
    "createdBy": {"type": ["string", "null"]}}})js";

constexpr std::string_view kTokenIdProp =
    R"js("tokenId": {"type": "string", "minLength": 1, "maxLength": 100, "description": "the token's id (tok_…)"})js";

json::object TokenJson(const store::AccessToken& t, int64_t now_ms) {
  std::string_view status = t.revoked_ms != 0        ? "revoked"
                            : now_ms >= t.expires_ms ? "expired"
                                                     : "active";
  return {{"id", t.id},
          {"kind", t.kind},
          {"name", t.name},
          {"prefix", t.prefix},
          {"target", t.target_id},
          {"status", status},
          {"createdAt", FormatTime(t.created_ms)},
          {"expiresAt", FormatTime(t.expires_ms)},
          {"lastUsedAt", TimeOrNull(t.last_used_ms)},
          {"revokedAt", TimeOrNull(t.revoked_ms)},
          {"createdBy", t.created_by.empty() ? json::value(nullptr) : json::value(t.created_by)}};
}

std::string InputWith(const TokenTarget& t, const std::string& extra,
                      const std::vector<std::string>& more_required = {}) {
  std::string required = "\"" + t.param + "\"";
  for (const std::string& r : more_required) {
    required += ", \"" + r + "\"";
  }
  return R"js({"type": "object", "additionalProperties": false, "required": [)js" + required +
         R"js(], "properties": {)js" + extra + t.prop + "}}";
}

Operation CreateOp(const Deps& d, AccessManager& access, const TokenTarget& t) {
  Operation op;
  op.name = t.resource + ".access_tokens.create";
  op.summary = "Mint an access token (share link or bearer token) for " +
               std::string(t.noun == "app" ? "an app" : "a sandbox's ports");
  op.description =
      "Creates a token that opens this " + t.noun +
      " through the gateway while its access policy is `token`, until it expires (ttlSeconds, "
      "default 1 day, at most 30 days) or is revoked. kind share-url answers a `url` to hand "
      "out: opening it sets a cookie (kiln_access_<id>) and redirects to the same URL without "
      "the token. kind bearer is for programs: send `Authorization: Bearer <token>`. The token "
      "is in this answer only; lists show its prefix. The " +
      t.noun +
      " receives X-Kiln-User-Id (the token's id), X-Kiln-Workspace and X-Kiln-Auth with each "
      "request.";
  op.method = "POST";
  op.path = "/v1/" + t.resource + "/{" + t.param + "}/access-tokens";
  op.scopes = auth::kWrite;
  op.success_status = 201;
  std::string extra = R"js(
      "kind": {"type": "string", "enum": ["share-url", "bearer"], "description": "share-url: a link for browsers; bearer: a token for Authorization headers"},
      "ttlSeconds": {"type": "integer", "minimum": 1, "maximum": 2592000, "description": "lifetime in seconds; default 86400 (1 day), at most 30 days"},
      "name": {"type": "string", "maxLength": 100, "description": "a label for lists, such as who received it"},)js";
  if (t.resource == "sandboxes") {
    extra += R"js(
      "port": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "the port the url points at (the token opens every port); default 3000"},)js";
  }
  op.input = Schema(InputWith(t, extra, {"kind"}));
  op.output = Schema(kTokenSchema);
  op.run = [&d, &access, t](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(Resolved target, t.resolve(ctx.principal, in));
    KILN_RETURN_IF_ERROR(target.no_create);
    std::string kind = GetString(in, "kind");
    KILN_ASSIGN_OR_RETURN(
        MintedToken minted,
        access.Create(ctx.principal, ctx.principal.workspace.id, target.id, kind,
                      GetString(in, "name"), GetInt(in, "ttlSeconds", kDefaultTtlSeconds)));
    json::object out = TokenJson(minted.row, d.clock.NowMs());
    out["token"] = minted.token;
    out["url"] = kind == "share-url"
                     ? target.url + "?" + std::string(kShareQueryParam) + "=" + minted.token
                     : target.url;
    if (!target.note.empty()) {
      out["note"] = target.note;
    }
    return out;
  };
  return op;
}

Operation ListOp(const Deps& d, AccessManager& access, const TokenTarget& t) {
  Operation op;
  op.name = t.resource + ".access_tokens.list";
  op.summary = "List the access tokens of " + std::string(t.noun == "app" ? "an app" : "a sandbox");
  op.description =
      "Answers every access token of the " + t.noun +
      ", newest first, with its status (active, expired or revoked), expiry and last use. "
      "Tokens themselves are never shown again: `prefix` tells them apart.";
  op.method = "GET";
  op.path = "/v1/" + t.resource + "/{" + t.param + "}/access-tokens";
  op.scopes = auth::kRead;
  op.read_only = op.idempotent = true;
  op.input = Schema(InputWith(t, ""));
  op.output =
      Schema(std::string(
                 R"js({"type": "object", "properties": {"tokens": {"type": "array", "items": )js") +
             kTokenSchema + "}}}");
  op.run = [&d, &access, t](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(Resolved target, t.resolve(ctx.principal, in));
    KILN_ASSIGN_OR_RETURN(std::vector<store::AccessToken> rows,
                          access.List(ctx.principal.workspace.id, target.id));
    int64_t now = d.clock.NowMs();
    json::array tokens;
    for (const store::AccessToken& row : rows) {
      tokens.emplace_back(TokenJson(row, now));
    }
    return json::object{{"tokens", std::move(tokens)}};
  };
  return op;
}

Operation RevokeOp(const Deps& d, AccessManager& access, const TokenTarget& t) {
  Operation op;
  op.name = t.resource + ".access_tokens.revoke";
  op.summary = "Revoke an access token at once";
  op.description =
      "Revokes the token: from the next request on it opens nothing, and browsers holding its "
      "cookie are refused (TOKEN_REVOKED). Revoking a revoked token changes nothing.";
  op.method = "DELETE";
  op.path = "/v1/" + t.resource + "/{" + t.param + "}/access-tokens/{tokenId}";
  op.scopes = auth::kWrite;
  op.idempotent = true;
  op.input = Schema(InputWith(t, std::string(kTokenIdProp) + ",", {"tokenId"}));
  op.output = Schema(kTokenSchema);
  op.run = [&d, &access, t](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(Resolved target, t.resolve(ctx.principal, in));
    std::string id = GetString(in, "tokenId");
    auto revoked = access.Revoke(ctx.principal, ctx.principal.workspace.id, target.id, id);
    if (!revoked.ok() && revoked.status().Is(Code::kNotFound)) {
      return Status::NotFound("TOKEN_NOT_FOUND", "no access token " + id + " of this " + t.noun,
                              "list its tokens with GET /v1/" + t.resource + "/" +
                                  GetString(in, t.param) + "/access-tokens");
    }
    KILN_RETURN_IF_ERROR(revoked.status());
    return TokenJson(*revoked, d.clock.NowMs());
  };
  return op;
}

TokenTarget AppTarget(AppManager& apps) {
  TokenTarget t;
  t.resource = "apps";
  t.noun = "app";
  t.param = "app";
  t.prop = std::string(kAppProp);
  t.resolve = [&apps](const auth::Principal& p, const json::object& in) -> Result<Resolved> {
    KILN_ASSIGN_OR_RETURN(store::App app, apps.Get(p.workspace.id, GetString(in, "app")));
    Resolved r{app.id, apps.Url(app), "", Status::Ok()};
    if (app.access_policy != "token") {
      r.note = "app " + app.name + "'s access policy is " + app.access_policy +
               ": access tokens open it once it is token (PATCH /v1/apps/" + app.name +
               " {\"accessPolicy\": \"token\"})";
    }
    return r;
  };
  return t;
}

TokenTarget SandboxTarget(AppManager& apps, SandboxManager& sandboxes) {
  TokenTarget t;
  t.resource = "sandboxes";
  t.noun = "sandbox";
  t.param = "id";
  t.prop =
      R"js("id": {"type": "string", "minLength": 1, "maxLength": 100, "description": "the sandbox id (sbx_…)"})js";
  t.resolve = [&apps, &sandboxes](const auth::Principal& p,
                                  const json::object& in) -> Result<Resolved> {
    KILN_ASSIGN_OR_RETURN(store::Sandbox s, sandboxes.Get(p.workspace.id, GetString(in, "id")));
    // A sandbox port is served at {port}-{sandbox}.{base_domain}: the same URL scheme as an
    // app whose host label is that.
    store::App host;
    host.name = std::to_string(GetInt(in, "port", 3000)) + "-" + s.id;
    Resolved r{s.id, apps.Url(host), "", Status::Ok()};
    if (s.status != "running" && s.status != "paused") {
      // Its tokens can still be listed and revoked; a new one could open nothing.
      r.no_create =
          Status::Conflict("SANDBOX_ENDED", "sandbox " + s.id + " has ended (" + s.status + ")",
                           "create a new sandbox (POST /v1/sandboxes)");
    }
    return r;
  };
  return t;
}

}  // namespace

void AddAccessOperations(const Deps& deps, AccessManager& access, AppManager& apps,
                         SandboxManager& sandboxes, std::vector<Operation>& out) {
  for (const TokenTarget& t : {AppTarget(apps), SandboxTarget(apps, sandboxes)}) {
    out.push_back(CreateOp(deps, access, t));
    out.push_back(ListOp(deps, access, t));
    out.push_back(RevokeOp(deps, access, t));
  }
}

}  // namespace kiln::service
