// Workspaces, API keys, tokens and the activity feed (shared/API.md "Auth and tenancy").
#include "service/operations.h"

namespace kiln::service {
namespace {

json::object WorkspaceJson(const store::Workspace& ws) {
  return {{"id", ws.id},
          {"slug", ws.slug},
          {"name", ws.name},
          {"root", ws.root},
          {"createdAt", FormatTime(ws.created_ms)}};
}

json::object KeyJson(const store::ApiKey& key, int64_t now_ms) {
  json::array scopes;
  for (const auto& s : key.scopes) {
    scopes.emplace_back(s);
  }
  std::string_view status = key.revoked_ms != 0                               ? "revoked"
                            : key.expires_ms != 0 && now_ms >= key.expires_ms ? "expired"
                                                                              : "active";
  return {
      {"id", key.id},
      {"name", key.name},
      {"prefix", key.prefix},
      {"scopes", std::move(scopes)},
      {"status", status},
      {"createdAt", FormatTime(key.created_ms)},
      {"lastUsedAt", TimeOrNull(key.last_used_ms)},
      {"expiresAt", TimeOrNull(key.expires_ms)},
      {"revokedAt", TimeOrNull(key.revoked_ms)},
      {"createdBy", key.created_by.empty() ? json::value(nullptr) : json::value(key.created_by)}};
}

json::object EventJson(const store::Event& e) {
  json::value data = json::object();
  if (auto parsed = ParseJson(e.data); parsed.ok()) {
    data = std::move(*parsed);
  }
  return {{"id", e.id},
          {"type", e.type},
          {"actor", e.actor.empty() ? json::value(nullptr) : json::value(e.actor)},
          {"subject", e.subject},
          {"data", std::move(data)},
          {"createdAt", FormatTime(e.created_ms)}};
}

const char* kKeySchema = R"({"type": "object", "properties": {
    "id": {"type": "string"}, "name": {"type": "string"}, "prefix": {"type": "string"},
    "scopes": {"type": "array", "items": {"type": "string"}},
    "status": {"type": "string", "enum": ["active", "revoked", "expired"]},
    "createdAt": {"type": "string"}, "lastUsedAt": {"type": ["string", "null"]},
    "expiresAt": {"type": ["string", "null"]}, "revokedAt": {"type": ["string", "null"]},
    "createdBy": {"type": ["string", "null"]},
    "secret": {"type": "string", "description": "the key itself; only in the answer to create"}}})";
const char* kWorkspaceSchema = R"({"type": "object", "properties": {
    "id": {"type": "string"}, "slug": {"type": "string"}, "name": {"type": "string"},
    "root": {"type": "boolean"}, "createdAt": {"type": "string"}}})";

// The key behind a minted secret: the secret is returned once and never stored.
store::ApiKey NewKey(const Deps& d, const std::string& ws, std::string name,
                     std::vector<std::string> scopes, int64_t expires_ms,
                     const std::string& created_by, std::string* secret) {
  auth::GeneratedKey g = auth::GenerateKey();
  store::ApiKey key;
  key.id = NewId("key");
  key.workspace_id = ws;
  key.name = std::move(name);
  key.prefix = g.prefix;
  key.hash = g.hash;
  key.scopes = std::move(scopes);
  key.created_ms = d.clock.NowMs();
  key.expires_ms = expires_ms;
  key.created_by = created_by;
  *secret = std::move(g.secret);
  return key;
}

// A key of the caller's workspace; another workspace's key looks exactly like a missing one.
Result<store::ApiKey> FindKey(const Deps& d, const std::string& workspace_id,
                              const std::string& id) {
  auto key = d.store.GetKey(workspace_id, id);
  if (!key.ok() && key.status().Is(Code::kNotFound)) {
    return Status::NotFound("KEY_NOT_FOUND", "no key " + id + " in this workspace",
                            "list the workspace's keys with GET /v1/keys (kiln keys list)");
  }
  return key;
}

// What runs instances on this server (the issue's "say which in /v1/me").
json::object RuntimeJson(const Deps& d) {
  if (d.runtime == nullptr) {
    return {{"available", false}, {"error", d.runtime_error}};
  }
  const runtime::RuntimeInfo& info = d.runtime->info();
  return {{"available", true},
          {"engine", info.engine},
          {"version", info.engine_version},
          {"cgroupVersion", info.cgroup_version},
          {"egress", info.egress}};
}

void AddAuthOps(const Deps& d, std::vector<Operation>& out) {
  Operation token;
  token.name = "auth.token";
  token.summary = "Exchange the API key for a short-lived JWT";
  token.description =
      "Returns a signed JWT (HS256) that stands in for the calling API key until it expires. "
      "The token carries the key's scopes and stops working when the key is revoked. Send it "
      "as `Authorization: Bearer <token>`.";
  token.method = "POST";
  token.path = "/v1/auth/token";
  token.input = Schema(R"({"type": "object", "additionalProperties": false, "properties": {
      "expiresIn": {"type": "integer", "minimum": 1, "description": "lifetime in seconds"}}})");
  token.input["properties"].as_object()["expiresIn"].as_object()["maximum"] =
      d.config.auth.jwt_max_ttl_seconds;
  token.output = Schema(R"({"type": "object", "properties": {"token": {"type": "string"},
      "tokenType": {"type": "string"}, "expiresIn": {"type": "integer"},
      "expiresAt": {"type": "string"}}})");
  token.run = [&d](Context& ctx, const json::object& in) -> Result<json::value> {
    int ttl = static_cast<int>(GetInt(in, "expiresIn", d.config.auth.jwt_default_ttl_seconds));
    int64_t expires_ms = 0;
    KILN_ASSIGN_OR_RETURN(std::string jwt, d.auth.IssueJwt(ctx.principal, ttl, &expires_ms));
    return json::object{{"token", jwt},
                        {"tokenType", "Bearer"},
                        {"expiresIn", (expires_ms - d.clock.NowMs() + 500) / 1000},
                        {"expiresAt", FormatTime(expires_ms)}};
  };
  out.push_back(std::move(token));

  Operation me;
  me.name = "me.get";
  me.summary = "Who am I: workspace, key, limits and what this key may call";
  me.description =
      "Describes the caller: its workspace, the key (or token) in use with its scopes, the "
      "rate limits that apply, and `capabilities`, the operations this key is allowed to call. "
      "Apps verify the X-Kiln-Auth header the gateway gives them by calling it with "
      "`Authorization: Bearer <X-Kiln-Auth>`: it then answers auth \"gateway\" and `gateway` "
      "{userId, workspace, target, expiresAt}, the caller and the app or sandbox it called; "
      "such a token opens no other operation.";
  me.method = "GET";
  me.path = "/v1/me";
  me.read_only = me.idempotent = true;
  me.input = Schema(R"({"type": "object", "additionalProperties": false, "properties": {}})");
  me.output = Schema(R"({"type": "object", "properties": {"workspace": {"type": "object"},
      "key": {"type": "object"}, "auth": {"type": "string", "enum": ["key", "jwt", "gateway"]},
      "gateway": {"type": "object", "description": "X-Kiln-Auth only: userId, workspace (slug), target (app_… or sbx_…), expiresAt"},
      "limits": {"type": "object"}, "capabilities": {"type": "array", "items": {"type": "string"}},
      "runtime": {"type": "object", "description": "what runs sandboxes here: engine (runc or crun), cgroup version, egress"}}})");
  me.run = [&d, &out](Context& ctx, const json::object&) -> Result<json::value> {
    const auth::Principal& p = ctx.principal;
    if (p.via == auth::Principal::Via::kGateway) {
      // Who called the app, and nothing about the server: the app (or whoever it hands the
      // token to) learns only what the header already claimed, now verified.
      return json::object{{"auth", "gateway"},
                          {"workspace", WorkspaceJson(p.workspace)},
                          {"gateway", json::object{{"userId", p.key_id},
                                                   {"workspace", p.workspace.slug},
                                                   {"target", p.audience},
                                                   {"expiresAt", TimeOrNull(p.expires_ms)}}},
                          {"capabilities", json::array{"me.get"}}};
    }
    json::array scopes;
    for (const auto& s : auth::ScopeNames(p.scopes)) {
      scopes.emplace_back(s);
    }
    json::array capabilities;
    // `out` is the service's operation list; complete and read-only once requests arrive.
    for (const auto& op : out) {
      if (auth::HasScopes(p.scopes, op.scopes)) {
        capabilities.emplace_back(op.name);
      }
    }
    return json::object{
        {"workspace", WorkspaceJson(p.workspace)},
        {"key", json::object{{"id", p.key_id},
                             {"name", p.key_name},
                             {"prefix", p.key_prefix},
                             {"scopes", std::move(scopes)},
                             {"expiresAt", TimeOrNull(p.expires_ms)}}},
        {"auth", p.via == auth::Principal::Via::kJwt ? "jwt" : "key"},
        {"limits", json::object{{"requestsPerSecond", d.config.limits.rate_per_second},
                                {"burst", d.config.limits.rate_burst},
                                {"bodyLimitBytes", d.config.server.body_limit_bytes}}},
        {"capabilities", std::move(capabilities)},
        {"runtime", RuntimeJson(d)}};
  };
  out.push_back(std::move(me));
}

void AddWorkspaceOps(const Deps& d, std::vector<Operation>& out) {
  Operation list;
  list.name = "workspaces.list";
  list.summary = "List workspaces";
  list.description =
      "Lists the workspaces the caller can see: every workspace for an admin key of the root "
      "(operator) workspace, otherwise only the caller's own.";
  list.method = "GET";
  list.path = "/v1/workspaces";
  list.scopes = auth::kRead;
  list.read_only = list.idempotent = list.paginated = true;
  list.input = Schema("{\"type\": \"object\", \"properties\": {" + std::string(kPageProps) + "}}");
  list.output = Schema(kWorkspaceSchema);
  list.run = [&d](Context& ctx, const json::object& in) -> Result<json::value> {
    const auth::Principal& p = ctx.principal;
    KILN_ASSIGN_OR_RETURN(store::PageRequest page, PageFrom(in));
    std::vector<store::Workspace> rows;
    if (p.workspace.root && auth::HasScopes(p.scopes, auth::kAdmin)) {
      KILN_ASSIGN_OR_RETURN(rows, d.store.ListWorkspaces({page.seq, page.limit + 1}));
    } else if (page.seq < p.workspace.seq) {
      rows.push_back(p.workspace);
    }
    return PageJson(std::move(rows), page.limit, WorkspaceJson);
  };
  out.push_back(std::move(list));

  Operation create;
  create.name = "workspaces.create";
  create.summary = "Create a workspace and its first admin key";
  create.description =
      "Creates a tenant: a workspace whose resources no other workspace can see. Answers the "
      "workspace and its first admin key; the key's `secret` is shown only in this answer. "
      "Needs an admin key of the root (operator) workspace.";
  create.method = "POST";
  create.path = "/v1/workspaces";
  create.scopes = auth::kAdmin;
  create.success_status = 201;
  create.input = Schema(R"({"type": "object", "additionalProperties": false, "required": ["slug"],
      "properties": {
        "slug": {"type": "string", "pattern": "^[a-z][a-z0-9-]{1,38}[a-z0-9]$",
                 "description": "3-40 characters: lower-case letters, digits and dashes, starting with a letter"},
        "name": {"type": "string", "minLength": 1, "maxLength": 100}}})");
  create.output = Schema(R"({"type": "object", "properties": {"workspace": {"type": "object"},
      "key": {"type": "object"}}})");
  create.run = [&d](Context& ctx, const json::object& in) -> Result<json::value> {
    const auth::Principal& p = ctx.principal;
    if (!p.workspace.root) {
      return Status::PermissionDenied("ROOT_WORKSPACE_REQUIRED",
                                      "only the root workspace can create workspaces",
                                      "use an admin key of the `default` workspace");
    }
    store::Workspace ws;
    ws.id = NewId("ws");
    ws.slug = GetString(in, "slug");
    ws.name = GetString(in, "name", ws.slug);
    ws.created_ms = d.clock.NowMs();
    std::string secret;
    store::ApiKey key =
        NewKey(d, ws.id, "admin", auth::ScopeNames(auth::kAllScopes), 0, "", &secret);
    // The new workspace's feed must not name ids of the creator's workspace, which the new
    // tenant cannot see anywhere else: its event has no actor (the operator did it).
    store::Event event = MakeEvent(d, ws.id, "workspace.created", "", ws.id, {{"slug", ws.slug}});
    Status s = d.store.CreateWorkspace(ws, key, event);
    if (s.Is(Code::kConflict)) {
      return Status::Conflict("WORKSPACE_EXISTS", "workspace \"" + ws.slug + "\" already exists",
                              "pick another slug");
    }
    KILN_RETURN_IF_ERROR(s);
    // The creator's own feed records it too; a failure here loses a log line, not data.
    (void)d.store.AppendEvent(
        MakeEvent(d, p.workspace.id, "workspace.created", p.key_id, ws.id, {{"slug", ws.slug}}));
    json::object key_json = KeyJson(key, d.clock.NowMs());
    key_json["secret"] = secret;
    return json::object{{"workspace", WorkspaceJson(ws)}, {"key", std::move(key_json)}};
  };
  out.push_back(std::move(create));

  Operation get;
  get.name = "workspaces.get";
  get.summary = "Get one workspace by slug";
  get.description = "Answers one workspace the caller can see, by its slug.";
  get.method = "GET";
  get.path = "/v1/workspaces/{slug}";
  get.scopes = auth::kRead;
  get.read_only = get.idempotent = true;
  get.input = Schema(R"({"type": "object", "required": ["slug"], "properties": {
      "slug": {"type": "string", "minLength": 1, "maxLength": 64}}})");
  get.output = Schema(kWorkspaceSchema);
  get.run = [&d](Context& ctx, const json::object& in) -> Result<json::value> {
    const auth::Principal& p = ctx.principal;
    std::string slug = GetString(in, "slug");
    auto not_found = Status::NotFound("WORKSPACE_NOT_FOUND", "no workspace \"" + slug + "\"",
                                      "list the workspaces you can see with GET /v1/workspaces");
    if (slug == p.workspace.slug) {
      return json::value(WorkspaceJson(p.workspace));
    }
    if (!p.workspace.root || !auth::HasScopes(p.scopes, auth::kAdmin)) {
      return not_found;
    }
    auto ws = d.store.GetWorkspaceBySlug(slug);
    if (!ws.ok()) {
      return ws.status().Is(Code::kNotFound) ? not_found : ws.status();
    }
    return json::value(WorkspaceJson(*ws));
  };
  out.push_back(std::move(get));
}

void AddKeyOps(const Deps& d, std::vector<Operation>& out) {
  Operation list;
  list.name = "keys.list";
  list.summary = "List the workspace's API keys (metadata only)";
  list.description =
      "Lists the API keys of the caller's workspace, oldest first, including revoked ones. "
      "Secrets are never shown; `prefix` identifies a key.";
  list.method = "GET";
  list.path = "/v1/keys";
  list.scopes = auth::kRead;
  list.read_only = list.idempotent = list.paginated = true;
  list.input = Schema("{\"type\": \"object\", \"properties\": {" + std::string(kPageProps) + "}}");
  list.output = Schema(kKeySchema);
  list.run = [&d](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(store::PageRequest page, PageFrom(in));
    KILN_ASSIGN_OR_RETURN(auto rows,
                          d.store.ListKeys(ctx.principal.workspace.id, {page.seq, page.limit + 1}));
    int64_t now = d.clock.NowMs();
    return PageJson(std::move(rows), page.limit,
                    [now](const store::ApiKey& k) { return KeyJson(k, now); });
  };
  out.push_back(std::move(list));

  Operation create;
  create.name = "keys.create";
  create.summary = "Mint an API key (the secret is shown once)";
  create.description =
      "Mints an API key for the caller's workspace with the given scopes (read, write, exec, "
      "admin; default read, write, exec). The answer's `secret` is the key itself: it is shown "
      "only here and only its SHA-256 is stored. A key can never get a scope its creator lacks.";
  create.method = "POST";
  create.path = "/v1/keys";
  create.scopes = auth::kAdmin;
  create.success_status = 201;
  create.input = Schema(R"({"type": "object", "additionalProperties": false, "required": ["name"],
      "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 64,
                 "description": "a label such as \"ci\"; no control characters"},
        "scopes": {"type": "array", "minItems": 1, "uniqueItems": true,
                   "items": {"type": "string", "enum": ["read", "write", "exec", "admin"]}},
        "expiresInSeconds": {"type": "integer", "minimum": 60, "maximum": 315360000}}})");
  create.output = Schema(kKeySchema);
  create.run = [&d](Context& ctx, const json::object& in) -> Result<json::value> {
    const auth::Principal& p = ctx.principal;
    std::string name = GetString(in, "name");
    for (unsigned char c : name) {
      if (c < 0x20 || c == 0x7f) {
        return Status::InvalidArgument("VALIDATION_FAILED",
                                       "name: must not hold control characters",
                                       "use a plain label such as \"ci\"");
      }
    }
    std::vector<std::string> names = {"read", "write", "exec"};
    if (auto it = in.find("scopes"); it != in.end()) {
      names.clear();
      for (const auto& s : it->value().as_array()) {
        names.emplace_back(s.as_string());
      }
    }
    KILN_ASSIGN_OR_RETURN(auth::Scopes scopes, auth::ParseScopes(names));
    if (!auth::HasScopes(p.scopes, scopes)) {
      return Status::PermissionDenied("SCOPE_ESCALATION",
                                      "a key cannot mint a key with scopes it does not hold",
                                      "mint it with a key that holds those scopes");
    }
    int64_t expires = GetInt(in, "expiresInSeconds", 0);
    std::string secret;
    store::ApiKey key = NewKey(d, p.workspace.id, name, auth::ScopeNames(scopes),
                               expires ? d.clock.NowMs() + expires * 1000 : 0, p.key_id, &secret);
    json::array scope_json;
    for (const auto& s : key.scopes) {
      scope_json.emplace_back(s);
    }
    KILN_RETURN_IF_ERROR(
        d.store.InsertKey(key, MakeEvent(d, p.workspace.id, "key.created", p.key_id, key.id,
                                         {{"name", key.name}, {"scopes", std::move(scope_json)}})));
    json::object answer = KeyJson(key, d.clock.NowMs());
    answer["secret"] = secret;
    return answer;
  };
  out.push_back(std::move(create));

  Operation get;
  get.name = "keys.get";
  get.summary = "Get one API key's metadata";
  get.description = "Answers one key of the caller's workspace by id (never its secret).";
  get.method = "GET";
  get.path = "/v1/keys/{id}";
  get.scopes = auth::kRead;
  get.read_only = get.idempotent = true;
  get.input = Schema(R"({"type": "object", "required": ["id"], "properties": {
      "id": {"type": "string", "minLength": 1, "maxLength": 100}}})");
  get.output = Schema(kKeySchema);
  get.run = [&d](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(store::ApiKey key,
                          FindKey(d, ctx.principal.workspace.id, GetString(in, "id")));
    return json::value(KeyJson(key, d.clock.NowMs()));
  };
  out.push_back(std::move(get));

  Operation revoke;
  revoke.name = "keys.revoke";
  revoke.summary = "Revoke an API key";
  revoke.description =
      "Revokes a key of the caller's workspace at once: it and every JWT minted from it stop "
      "working. Needs `confirm` set to the key's id or name. The last admin key of a "
      "workspace cannot be revoked, so nobody is locked out.";
  revoke.method = "DELETE";
  revoke.path = "/v1/keys/{id}";
  revoke.scopes = auth::kAdmin;
  revoke.destructive = revoke.idempotent = true;
  revoke.input = Schema(R"({"type": "object", "required": ["id"], "properties": {
      "id": {"type": "string", "minLength": 1, "maxLength": 100},
      "confirm": {"type": "string", "description": "the key's id or name"}}})");
  revoke.output = Schema(kKeySchema);
  revoke.run = [&d](Context& ctx, const json::object& in) -> Result<json::value> {
    const auth::Principal& p = ctx.principal;
    KILN_ASSIGN_OR_RETURN(store::ApiKey key, FindKey(d, p.workspace.id, GetString(in, "id")));
    std::string confirm = GetString(in, "confirm");
    if (confirm != key.id && confirm != key.name) {
      return ConfirmRequired("revoking key \"" + key.name + "\"", key.id);
    }
    if (key.revoked_ms != 0) {
      return json::value(KeyJson(key, d.clock.NowMs()));
    }
    bool is_admin = std::find(key.scopes.begin(), key.scopes.end(), "admin") != key.scopes.end();
    key.revoked_ms = d.clock.NowMs();
    Status s = d.store.RevokeKey(
        p.workspace.id, key.id, key.revoked_ms,
        MakeEvent(d, p.workspace.id, "key.revoked", p.key_id, key.id, {{"name", key.name}}),
        is_admin ? "admin" : "");
    if (s.Is(Code::kConflict)) {
      return Status::Conflict("LAST_ADMIN_KEY",
                              "key \"" + key.name + "\" is the workspace's last admin key",
                              "mint another admin key first, so the workspace stays reachable");
    }
    KILN_RETURN_IF_ERROR(s);
    d.auth.Forget(key.id);
    return json::value(KeyJson(key, d.clock.NowMs()));
  };
  out.push_back(std::move(revoke));
}

void AddEventOps(const Deps& d, std::vector<Operation>& out) {
  Operation list;
  list.name = "events.list";
  list.summary = "Activity feed of the workspace, newest first";
  list.description =
      "Lists what happened in the caller's workspace (keys minted and revoked, workspaces "
      "created, and later deploys and sandboxes), newest first, with who did it.";
  list.method = "GET";
  list.path = "/v1/events";
  list.scopes = auth::kRead;
  list.read_only = list.idempotent = list.paginated = true;
  list.input = Schema("{\"type\": \"object\", \"properties\": {" + std::string(kPageProps) + "}}");
  list.output = Schema(R"({"type": "object", "properties": {"id": {"type": "string"},
      "type": {"type": "string"}, "actor": {"type": ["string", "null"]},
      "subject": {"type": "string"}, "data": {"type": "object"}, "createdAt": {"type": "string"}}})");
  list.run = [&d](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(store::PageRequest page, PageFrom(in));
    KILN_ASSIGN_OR_RETURN(
        auto rows, d.store.ListEvents(ctx.principal.workspace.id, {page.seq, page.limit + 1}));
    return PageJson(std::move(rows), page.limit, EventJson);
  };
  out.push_back(std::move(list));
}

}  // namespace

store::Event MakeEvent(const Deps& d, const std::string& ws, std::string type,
                       const std::string& actor, const std::string& subject, json::object data) {
  store::Event e;
  e.id = NewId("evt");
  e.workspace_id = ws;
  e.type = std::move(type);
  e.actor = actor;
  e.subject = subject;
  e.data = json::serialize(data);
  e.created_ms = d.clock.NowMs();
  return e;
}

json::value TimeOrNull(int64_t ms) {
  return ms == 0 ? json::value(nullptr) : json::value(FormatTime(ms));
}

Result<store::PageRequest> PageFrom(const json::object& in) {
  store::PageRequest page;
  page.limit = static_cast<int>(GetInt(in, "limit", 50));
  if (auto cursor = FindString(in, "cursor"); cursor && !cursor->empty()) {
    KILN_ASSIGN_OR_RETURN(page.seq, DecodeCursor(*cursor));
  }
  return page;
}

Status ConfirmRequired(const std::string& what, const std::string& id) {
  return Status::Conflict("CONFIRMATION_REQUIRED", what + " needs ?confirm=" + id,
                          "repeat the request with ?confirm=" + id + " to show you mean it");
}

void AddTenancyOperations(const Deps& deps, std::vector<Operation>& out) {
  AddAuthOps(deps, out);
  AddWorkspaceOps(deps, out);
  AddKeyOps(deps, out);
  AddEventOps(deps, out);
}

}  // namespace kiln::service
