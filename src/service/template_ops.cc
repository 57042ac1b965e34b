// Templates (shared/API.md "Sandboxes and templates").
#include <chrono>
#include <fstream>
#include <thread>

#include "service/operations.h"
#include "service/sandboxes.h"

namespace kiln::service {
namespace {

using namespace std::chrono_literals;

const char* kTemplateSchema = R"js({"type": "object", "properties": {
    "name": {"type": "string"}, "description": {"type": ["string", "null"]},
    "base": {"type": ["string", "null"], "description": "the template it is built on"},
    "builtin": {"type": "boolean"},
    "status": {"type": "string", "enum": ["ready", "building", "failed", "not_built"]},
    "error": {"type": "string"}, "steps": {"type": "array"},
    "size": {"type": ["integer", "null"], "description": "bytes of its own layer"},
    "createdAt": {"type": "string"}, "builtAt": {"type": ["string", "null"]}}})js";

const char* kNameProp = R"js("name": {"type": "string", "minLength": 1, "maxLength": 64})js";

Operation ListOp(SandboxManager& m) {
  Operation op;
  op.name = "templates.list";
  op.summary = "List the templates sandboxes can start from";
  op.description =
      "Lists the built-in templates (base, debian) and the workspace's own, with their status "
      "(ready, building, failed, not_built) and size.";
  op.method = "GET";
  op.path = "/v1/templates";
  op.scopes = auth::kRead;
  op.read_only = op.idempotent = true;
  op.input = Schema(R"js({"type": "object", "properties": {}})js");
  op.output = Schema(std::string(R"js({"type": "array", "items": )js") + kTemplateSchema + "}");
  op.run = [&m](Context& ctx, const json::object&) -> Result<json::value> {
    return m.templates().List(ctx.principal.workspace.id);
  };
  return op;
}

Operation CreateOp(const Deps& d, SandboxManager& m) {
  Operation op;
  op.name = "templates.create";
  op.summary = "Build a custom template from a base and shell steps";
  op.description =
      "Builds template `name` in the background: starts a sandbox from `from` (base, debian or "
      "one of yours) with network egress, runs each step's `run` with /bin/sh -c in order, and "
      "keeps the resulting filesystem. Answers at once with status building; follow the build "
      "log with templates.logs. A failing step fails the build.";
  op.method = "POST";
  op.path = "/v1/templates";
  op.scopes = auth::kWrite;
  op.blocking = true;
  op.success_status = 202;
  op.input = Schema(
      R"js({"type": "object", "additionalProperties": false, "required": ["name", "steps"], "properties": {
      "name": {"type": "string", "pattern": "^[a-z][a-z0-9-]{0,38}[a-z0-9]$",
               "description": "2-40 characters: lower-case letters, digits and dashes"},
      "from": {"type": "string", "minLength": 1, "maxLength": 64, "description": "base (default), debian, or one of yours"},
      "steps": {"type": "array", "minItems": 1, "maxItems": 100, "items": {"type": "object",
                "additionalProperties": false, "required": ["run"],
                "properties": {"run": {"type": "string", "minLength": 1, "maxLength": 65536}}}},
      "env": {"type": "object", "maxProperties": 128,
              "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "maxLength": 128},
              "additionalProperties": {"type": "string", "maxLength": 32768}},
      "poolSize": {"type": "integer", "minimum": 0, "maximum": 16,
                   "description": "sandboxes of it kept started, so that create takes milliseconds (default 0)"}}})js");
  op.output = Schema(kTemplateSchema);
  op.run = [&d, &m](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_RETURN_IF_ERROR(m.Available());
    (void)d;
    std::vector<std::string> steps;
    for (const auto& s : in.at("steps").as_array()) {
      steps.emplace_back(s.as_object().at("run").as_string());
    }
    std::vector<std::string> env;
    if (auto it = in.find("env"); it != in.end()) {
      for (const auto& [k, v] : it->value().as_object()) {
        env.push_back(std::string(k) + "=" + std::string(v.as_string()));
      }
    }
    KILN_ASSIGN_OR_RETURN(json::object t, m.templates().Create(ctx.principal, GetString(in, "name"),
                                                               GetString(in, "from", "base"), steps,
                                                               env, GetInt(in, "poolSize", 0)));
    return t;
  };
  return op;
}

Operation GetOp(SandboxManager& m) {
  Operation op;
  op.name = "templates.get";
  op.summary = "Get one template and its build status";
  op.description = "Answers a template by name: its status, base, steps and size.";
  op.method = "GET";
  op.path = "/v1/templates/{name}";
  op.scopes = auth::kRead;
  op.read_only = op.idempotent = true;
  op.input = Schema(
      std::string(
          R"js({"type": "object", "additionalProperties": false, "required": ["name"], "properties": {)js") +
      kNameProp + "}}");
  op.output = Schema(kTemplateSchema);
  op.run = [&m](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(json::object t,
                          m.templates().Get(ctx.principal.workspace.id, GetString(in, "name")));
    return t;
  };
  return op;
}

Operation DeleteOp(SandboxManager& m) {
  Operation op;
  op.name = "templates.delete";
  op.summary = "Delete a custom template";
  op.description =
      "Deletes one of the workspace's templates and its files. Needs `confirm` set to its "
      "name. Refused while a live sandbox or another template uses it.";
  op.method = "DELETE";
  op.path = "/v1/templates/{name}";
  op.scopes = auth::kWrite;
  op.destructive = op.idempotent = op.blocking = true;
  op.input = Schema(
      std::string(
          R"js({"type": "object", "additionalProperties": false, "required": ["name"], "properties": {
      "confirm": {"type": "string", "description": "the template's name"},)js") +
      kNameProp + "}}");
  op.output = Schema(
      R"js({"type": "object", "properties": {"name": {"type": "string"}, "deleted": {"type": "boolean"}}})js");
  op.run = [&m](Context& ctx, const json::object& in) -> Result<json::value> {
    std::string name = GetString(in, "name");
    // Looked up first, so a missing template is a 404 and not a confirmation error.
    KILN_ASSIGN_OR_RETURN(json::object t, m.templates().Get(ctx.principal.workspace.id, name));
    (void)t;
    if (GetString(in, "confirm") != name) {
      return ConfirmRequired("deleting template \"" + name + "\"", name);
    }
    KILN_RETURN_IF_ERROR(m.templates().Delete(ctx.principal, name));
    return json::object{{"name", name}, {"deleted", true}};
  };
  return op;
}

Operation LogsOp(SandboxManager& m) {
  Operation op;
  op.name = "templates.logs";
  op.summary = "The build log of a template (followable while it builds)";
  op.description =
      "Answers the lines of a template's build log so far and whether the build is still "
      "running. As a stream (Server-Sent Events), sends each line as a `line` event as it is "
      "written, until the build ends.";
  op.method = "GET";
  op.path = "/v1/templates/{name}/logs";
  op.scopes = auth::kRead;
  op.read_only = op.idempotent = op.blocking = op.streaming = true;
  op.final_event = "end";
  op.input = Schema(
      std::string(
          R"js({"type": "object", "additionalProperties": false, "required": ["name"], "properties": {
      "follow": {"type": "boolean", "description": "REST: stream until the build ends (same as Accept: text/event-stream)"
},)js") +
      kNameProp + "}}");
  op.output = Schema(
      R"js({"type": "object", "properties": {"lines": {"type": "array", "items": {"type": "string"}},
      "building": {"type": "boolean"}, "status": {"type": "string"}}})js");
  op.run = [&m](Context& ctx, const json::object& in) -> Result<json::value> {
    std::string name = GetString(in, "name");
    bool building = false;
    KILN_ASSIGN_OR_RETURN(std::string path,
                          m.templates().LogPath(ctx.principal.workspace.id, name, &building));
    std::ifstream file(path);
    std::vector<std::string> lines;
    std::string line;
    auto read_new = [&] {
      // Lines are written whole and flushed, so a partial last line is still being written:
      // wait for its newline.
      std::streampos mark = file.tellg();
      while (std::getline(file, line)) {
        if (file.eof()) {
          file.clear();
          file.seekg(mark);
          break;
        }
        mark = file.tellg();
        if (ctx.emit) {
          if (!ctx.emit("line", json::object{{"text", ValidUtf8(line)}})) {
            return false;
          }
        } else {
          lines.push_back(ValidUtf8(line));
        }
      }
      file.clear();
      return true;
    };
    bool open = read_new();
    while (ctx.emit && open && building) {
      std::this_thread::sleep_for(200ms);
      m.templates().LogPath(ctx.principal.workspace.id, name, &building);
      open = read_new();
    }
    json::array out;
    for (auto& l : lines) {
      out.emplace_back(std::move(l));
    }
    auto t = m.templates().Get(ctx.principal.workspace.id, name);
    std::string status = t.ok() ? GetString(*t, "status") : "gone";
    return json::object{{"lines", std::move(out)}, {"building", building}, {"status", status}};
  };
  return op;
}

}  // namespace

void AddTemplateOperations(const Deps& deps, SandboxManager& sandboxes,
                           std::vector<Operation>& out) {
  out.push_back(ListOp(sandboxes));
  out.push_back(CreateOp(deps, sandboxes));
  out.push_back(GetOp(sandboxes));
  out.push_back(DeleteOp(sandboxes));
  out.push_back(LogsOp(sandboxes));
}

}  // namespace kiln::service
