// Env vars of an app: list (secrets as null), set, delete (shared/API.md "Apps and
// deployments"). Values are sealed at rest; a change applies on the next deploy or restart.
#include "core/crypto.h"
#include "service/apps.h"
#include "service/operations.h"

namespace kiln::service {
namespace {

const char* kEnvNote = "applies on the next deploy or restart (kiln apps restart APP)";

json::array EnvJson(const Deps& d, const std::string& app_id,
                    const std::vector<store::EnvVar>& vars) {
  json::array out;
  for (const store::EnvVar& v : vars) {
    json::value value = nullptr;
    if (!v.secret) {
      auto plain = d.box.Open(v.value_sealed, "env:" + app_id + ":" + v.key);
      value = plain.ok() ? json::value(ValidUtf8(*plain)) : json::value(nullptr);
    }
    out.emplace_back(json::object{{"key", v.key},
                                  {"value", value},
                                  {"secret", v.secret},
                                  {"build", v.build},
                                  {"updatedAt", TimeOrNull(v.updated_ms)}});
  }
  return out;
}

const char* kEnvListSchema = R"js({"type": "object", "properties": {
    "vars": {"type": "array", "items": {"type": "object", "properties": {
        "key": {"type": "string"}, "value": {"type": ["string", "null"], "description": "null for secrets"},
        "secret": {"type": "boolean"}, "build": {"type": "boolean", "description": "also set during install and build"},
        "updatedAt": {"type": "string"}}}},
    "note": {"type": "string"}, "restartRequired": {"type": "boolean"}}})js";

Operation ListOp(const Deps& d, AppManager& m) {
  Operation op;
  op.name = "apps.env.list";
  op.summary = "List an app's env vars (secret values are never shown)";
  op.description =
      "Answers the app's environment variables; secret ones have value null. Build-time "
      "variables (build: true) are also set during install and build.";
  op.method = "GET";
  op.path = "/v1/apps/{app}/env";
  op.scopes = auth::kRead;
  op.read_only = op.idempotent = true;
  op.input = Schema(AppOnlyWith(""));
  op.output = Schema(kEnvListSchema);
  op.run = [&d, &m](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(store::App app, m.Get(ctx.principal.workspace.id, GetString(in, "app")));
    KILN_ASSIGN_OR_RETURN(std::vector<store::EnvVar> vars, d.store.ListEnv(app.id));
    return json::object{{"vars", EnvJson(d, app.id, vars)}};
  };
  return op;
}

Operation SetOp(const Deps& d, AppManager& m) {
  Operation op;
  op.name = "apps.env.set";
  op.summary = "Set env vars of an app (secret ones are encrypted and never shown again)";
  op.description =
      "Upserts `vars`. Keys listed in `secret` are stored encrypted, never answered again and "
      "masked as ******** in deploy and runtime logs; keys in `build` are also set during "
      "install and build (others only when the app runs). Changes apply on the next deploy "
      "or restart.";
  op.method = "PUT";
  op.path = "/v1/apps/{app}/env";
  op.scopes = auth::kWrite;
  op.idempotent = true;
  op.input = Schema(AppOnlyWith(R"js(
      "vars": {"type": "object", "minProperties": 1, "maxProperties": 256, "additionalProperties": {"type": "string", "maxLength": 65536}},
      "secret": {"type": "array", "maxItems": 256, "items": {"type": "string"}, "description": "keys of vars that are secrets"},
      "build": {"type": "array", "maxItems": 256, "items": {"type": "string"}, "description": "keys of vars also set at build time"},)js"));
  op.output = Schema(kEnvListSchema);
  op.run = [&d, &m](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(store::App app, m.Get(ctx.principal.workspace.id, GetString(in, "app")));
    auto it = in.find("vars");
    if (it == in.end() || it->value().as_object().empty()) {
      return Status::InvalidArgument("VALIDATION_FAILED", "vars: give at least one variable",
                                     "send {\"vars\": {\"KEY\": \"value\"}}");
    }
    const json::object& vars = it->value().as_object();
    auto listed = [&](const char* field) {
      std::set<std::string> keys;
      if (auto f = in.find(field); f != in.end()) {
        for (const auto& k : f->value().as_array()) {
          keys.insert(std::string(k.as_string()));
        }
      }
      return keys;
    };
    std::set<std::string> secret = listed("secret"), build = listed("build");
    for (const auto* set : {&secret, &build}) {
      for (const std::string& k : *set) {
        if (!vars.contains(k)) {
          return Status::InvalidArgument("ENV_KEY_NOT_IN_VARS",
                                         "\"" + ValidUtf8(k) + "\" is listed but not in vars",
                                         "name only keys you set in the same call");
        }
      }
    }
    std::vector<store::EnvVar> rows;
    json::array keys;
    for (const auto& [k, v] : vars) {
      std::string key(k);
      KILN_RETURN_IF_ERROR(CheckEnvKey(key));
      if (key == "PORT") {
        return Status::InvalidArgument("ENV_KEY_RESERVED", "PORT is set by Kiln",
                                       "change the app's port instead (PATCH /v1/apps/{app})");
      }
      store::EnvVar row;
      row.key = key;
      row.value_sealed = d.box.Seal(v.as_string(), "env:" + app.id + ":" + key);
      row.secret = secret.contains(key);
      row.build = build.contains(key);
      row.updated_ms = d.clock.NowMs();
      rows.push_back(std::move(row));
      keys.emplace_back(key);  // names only: values may be secret
    }
    KILN_RETURN_IF_ERROR(d.store.SetEnv(app.id, rows,
                                        MakeEvent(d, app.workspace_id, "app.env_set",
                                                  ctx.principal.key_id, app.id, {{"keys", keys}})));
    m.RefreshSecrets(app.id);
    KILN_ASSIGN_OR_RETURN(std::vector<store::EnvVar> all, d.store.ListEnv(app.id));
    return json::object{{"vars", EnvJson(d, app.id, all)},
                        {"note", kEnvNote},
                        {"restartRequired", !app.instance_id.empty()}};
  };
  return op;
}

Operation DeleteOp(const Deps& d, AppManager& m) {
  Operation op;
  op.name = "apps.env.delete";
  op.summary = "Remove an env var of an app";
  op.description = "Removes one variable; the change applies on the next deploy or restart.";
  op.method = "DELETE";
  op.path = "/v1/apps/{app}/env/{key}";
  op.scopes = auth::kWrite;
  op.idempotent = true;
  op.input = Schema(
      AppOnlyWith(R"js("key": {"type": "string", "minLength": 1, "maxLength": 128},)js", {"key"}));
  op.output = Schema(kEnvListSchema);
  op.run = [&d, &m](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(store::App app, m.Get(ctx.principal.workspace.id, GetString(in, "app")));
    std::string key = GetString(in, "key");
    Status s = d.store.DeleteEnv(app.id, key,
                                 MakeEvent(d, app.workspace_id, "app.env_deleted",
                                           ctx.principal.key_id, app.id, {{"key", key}}));
    if (s.Is(Code::kNotFound)) {
      return Status::NotFound("ENV_NOT_FOUND", "app " + app.name + " has no env var " + key,
                              "list them with GET /v1/apps/" + app.name + "/env");
    }
    KILN_RETURN_IF_ERROR(s);
    m.RefreshSecrets(app.id);
    KILN_ASSIGN_OR_RETURN(std::vector<store::EnvVar> all, d.store.ListEnv(app.id));
    return json::object{{"vars", EnvJson(d, app.id, all)},
                        {"note", kEnvNote},
                        {"restartRequired", !app.instance_id.empty()}};
  };
  return op;
}

}  // namespace

void AddEnvOperations(const Deps& deps, AppManager& apps, std::vector<Operation>& out) {
  out.push_back(ListOp(deps, apps));
  out.push_back(SetOp(deps, apps));
  out.push_back(DeleteOp(deps, apps));
}

}  // namespace kiln::service
