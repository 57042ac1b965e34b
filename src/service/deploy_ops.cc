// Deployments: create (upload, inline files, URL, git, starter), list, get, logs, cancel, and
// rollback (shared/API.md "Apps and deployments").
#include <filesystem>
#include <fstream>

#include "core/crypto.h"
#include "service/apps.h"
#include "service/operations.h"
#include "service/sources_internal.h"

namespace kiln::service {
namespace {

namespace fs = std::filesystem;

const char* kDeploymentSchema = R"js({"type": "object", "properties": {
    "id": {"type": "string"}, "app": {"type": "string"}, "appName": {"type": "string"},
    "kind": {"type": "string", "enum": ["deploy", "rollback"]},
    "status": {"type": "string", "enum": ["queued", "building", "deploying", "live", "failed", "cancelled", "superseded"]},
    "source": {"type": "object", "description": "type (upload, files, url, git, template, release) and its details"},
    "config": {"type": "object", "description": "the overrides asked for"},
    "steps": {"type": "array", "items": {"type": "object", "properties": {
        "name": {"type": "string"}, "status": {"type": "string", "enum": ["pending", "running", "ok", "failed", "skipped", "cancelled"]},
        "startedAt": {"type": "string"}, "durationMs": {"type": "integer"}, "error": {"type": "string"}}}},
    "release": {"type": ["string", "null"]},
    "error": {"type": ["object", "null"], "description": "step, code, message, hint of a failure"},
    "url": {"type": "string"}, "createdAt": {"type": "string"}, "finishedAt": {"type": ["string", "null"]}}})js";

const char* kDepIdProp = R"js("id": {"type": "string", "minLength": 1, "maxLength": 100,
    "description": "the deployment id (dep_…)"})js";

constexpr std::string_view kOverrideProps = R"js(
      "install": {"type": "string", "maxLength": 8192, "description": "shell command run in /app during the build; empty: none"},
      "build": {"type": "string", "maxLength": 8192, "description": "shell command run after install; empty: none"},
      "preStart": {"type": "string", "maxLength": 8192, "description": "shell command run before start, on every start"},
      "start": {"type": "string", "maxLength": 8192, "description": "the app's process (default: detected from the code)"},
      "port": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "the port it listens on (default: the app's)"},
      "healthCheckPath": {"type": "string", "maxLength": 2048, "pattern": "^/", "description": "GET it must answer 2xx/3xx before traffic switches (default: the port opening is enough)"},
      "env": {"type": "object", "maxProperties": 256, "additionalProperties": {"type": "string", "maxLength": 65536}, "description": "build-time variables of this deployment only"},
      "buildEgress": {"type": "boolean", "description": "let install reach the network (npm install, pip install)"})js";

// Reads the overrides from a JSON object (the body, or a multipart `config` part).
Status ReadOverrides(const json::object& in, DeployRequest* r) {
  auto str = [&](const char* key, std::optional<std::string>* out) {
    if (auto v = FindString(in, key)) {
      *out = *v;
    }
  };
  str("install", &r->overrides.install);
  str("build", &r->overrides.build);
  str("preStart", &r->overrides.pre_start);
  str("start", &r->overrides.start);
  str("healthCheckPath", &r->health_check_path);
  if (auto it = in.find("port"); it != in.end() && it->value().is_int64()) {
    KILN_RETURN_IF_ERROR(CheckPort(it->value().as_int64()));
    r->overrides.port = it->value().as_int64();
  }
  if (auto it = in.find("env"); it != in.end() && it->value().is_object()) {
    for (const auto& [k, v] : it->value().as_object()) {
      KILN_RETURN_IF_ERROR(CheckEnvKey(std::string(k)));
      if (!v.is_string()) {
        return Status::InvalidArgument("VALIDATION_FAILED",
                                       "env." + std::string(k) + ": must be a string");
      }
      r->build_env.emplace_back(std::string(k), std::string(v.as_string()));
    }
  }
  r->build_egress = GetBool(in, "buildEgress");
  return Status::Ok();
}

// The `files` of a request: checked and decoded in memory, then written as a tar archive where
// an upload goes, for the deployer to unpack like one.
Status SaveInlineFiles(const Deps& d, const json::array& items, DeployRequest* r) {
  std::vector<InlineFile> files;
  files.reserve(items.size());
  for (const json::value& item : items) {
    if (!item.is_object()) {
      return Status::InvalidArgument("VALIDATION_FAILED", "files: every item must be an object",
                                     "send {\"path\": \"server.js\", \"content\": \"...\"}");
    }
    const json::object& o = item.as_object();
    InlineFile f;
    f.path = GetString(o, "path");
    f.content = GetString(o, "content");
    f.base64 = GetString(o, "encoding") == "base64";
    f.executable = GetBool(o, "executable");
    files.push_back(std::move(f));
  }
  KILN_ASSIGN_OR_RETURN(int64_t bytes, PrepareInlineFiles(files, d.config.apps.upload_max_bytes));
  std::string dir = d.config.server.data_dir + "/builds";
  std::error_code ec;
  fs::create_directories(dir, ec);
  std::string path = dir + "/" + NewId("upload") + ".tar";
  KILN_RETURN_IF_ERROR(WriteFilesArchive(files, path).status());
  r->source_type = "files";
  r->upload_path = std::move(path);
  r->upload_bytes = bytes;
  r->file_count = static_cast<int64_t>(files.size());
  return Status::Ok();
}

Status SourceConflict(std::string_view other) {
  return Status::InvalidArgument(
      "SOURCE_CONFLICT", "files and " + std::string(other) + " were both given",
      "send one source: the app's files inline in `files`, or `source` (url, git, template), "
      "or a multipart upload");
}

Operation CreateOp(const Deps& d, AppManager& m) {
  Operation op;
  op.name = "apps.deploy";
  op.summary = "Deploy code to an app: build it and put it live with no downtime";
  op.description =
      "Starts a deployment and answers at once (202) with its record; follow it with "
      "deployments.logs. The source is one of: `files`, the app's files inline (for a client "
      "that has the code but no filesystem or archive to send, such as an agent writing an "
      "app: a few files to a few hundred); an uploaded .tar.gz (REST multipart/form-data "
      "with a `source` file part and an optional `config` JSON part); `source.url` (a tarball "
      "over http/https); `source.git` {repo, ref} (any repository git can clone); or "
      "`source.template` (a starter: node, python, static, hello). Prefer source.git or "
      "source.url for code that is already published, and an upload for a large tree. Each "
      "file of `files` has a path relative to the app's root with / between names "
      "(\"server.js\", \"public/index.html\"; no leading /, no . or ..), its content as text "
      "(encoding utf8, the default) or base64 (encoding base64, for binary files such as "
      "images), and executable: true for scripts to run; at most " +
      std::to_string(kMaxInlineFiles) + " files and " + HumanBytes(d.config.apps.upload_max_bytes) +
      " decoded in all, and the whole request at most " +
      HumanBytes(d.config.server.body_limit_bytes) +
      ". Leave out dependencies (node_modules): the build installs them from package.json or "
      "requirements.txt. The runtime is detected "
      "(package.json → node, requirements.txt/pyproject/app.py → python, go.mod → go, "
      "index.html → static, Procfile → its web line); install, build, preStart, start and port "
      "override it. The new release goes live only once it answers on its port (or "
      "healthCheckPath); if any step fails the previous release keeps serving. One deployment "
      "per app at a time: a second gets 409 DEPLOY_IN_PROGRESS.";
  op.method = "POST";
  op.path = "/v1/apps/{app}/deployments";
  op.scopes = auth::kWrite;
  op.success_status = 202;
  op.blocking = true;
  op.rest_multipart = "multipart";
  op.input = Schema(
      std::string(
          R"js({"type": "object", "additionalProperties": false, "required": ["app"], "properties": {
      "files": {"type": "array", "minItems": 1, "maxItems": )js") +
      std::to_string(kMaxInlineFiles) +
      R"js(, "description": "the app's files inline, instead of source or an upload",
          "items": {"type": "object", "additionalProperties": false, "required": ["path", "content"], "properties": {
              "path": {"type": "string", "minLength": 1, "maxLength": )js" +
      std::to_string(kMaxInlinePathBytes) +
      R"js(, "description": "relative to the app's root, / between names: public/index.html"},
              "content": {"type": "string", "description": "the file's text, or its bytes in base64"},
              "encoding": {"type": "string", "enum": ["utf8", "base64"], "default": "utf8", "description": "how content is written"},
              "executable": {"type": "boolean", "default": false, "description": "mode 755 instead of 644"}}}},
      "source": {"type": "object", "additionalProperties": false, "maxProperties": 1, "properties": {
          "url": {"type": "string", "minLength": 1, "maxLength": 4096, "description": "http(s) URL of a .tar.gz"},
          "git": {"type": "object", "additionalProperties": false, "required": ["repo"], "properties": {
              "repo": {"type": "string", "minLength": 1, "maxLength": 4096}, "ref": {"type": "string", "maxLength": 255}}},
          "template": {"type": "string", "minLength": 1, "maxLength": 64, "description": "a starter shipped with Kiln"}}},
      "multipart": {"type": "string", "description": "REST only: the multipart/form-data body"},
      "multipartType": {"type": "string", "description": "REST only: its Content-Type"},)js" +
      std::string(kOverrideProps) + "," + std::string(kAppProp) + "}}");
  op.output = Schema(kDeploymentSchema);
  op.run = [&d, &m](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(store::App app, m.Get(ctx.principal.workspace.id, GetString(in, "app")));
    DeployRequest r;
    KILN_RETURN_IF_ERROR(ReadOverrides(in, &r));
    auto source_field = in.find("source");
    bool has_source = source_field != in.end() && source_field->value().is_object() &&
                      !source_field->value().as_object().empty();
    if (auto files = in.find("files"); files != in.end()) {
      if (in.contains("multipart")) {
        return SourceConflict("a multipart upload");
      }
      if (has_source) {
        return SourceConflict("source");
      }
      if (!files->value().is_array()) {
        return Status::InvalidArgument("VALIDATION_FAILED", "files: must be an array",
                                       "send [{\"path\": \"server.js\", \"content\": \"...\"}]");
      }
      KILN_RETURN_IF_ERROR(SaveInlineFiles(d, files->value().as_array(), &r));
    } else if (auto body = FindString(in, "multipart")) {
      KILN_ASSIGN_OR_RETURN(std::vector<FormPart> parts,
                            ParseMultipart(GetString(in, "multipartType"), *body));
      const FormPart* source = nullptr;
      for (const FormPart& p : parts) {
        if (p.name == "source") {
          source = &p;
        } else if (p.name == "config") {
          auto config = ParseJson(p.data);
          if (!config.ok() || !config->is_object()) {
            return Status::InvalidArgument("CONFIG_PART_INVALID",
                                           "the `config` part is not a JSON object",
                                           "send {\"start\": \"node server.js\", ...} or omit it");
          }
          KILN_RETURN_IF_ERROR(ReadOverrides(config->as_object(), &r));
        }
      }
      if (source == nullptr || source->data.empty()) {
        return Status::InvalidArgument(
            "SOURCE_MISSING", "the upload has no `source` file part",
            "send the app as a .tar.gz in a part named source (curl -F source=@app.tgz)");
      }
      if (static_cast<int64_t>(source->data.size()) > d.config.apps.upload_max_bytes) {
        return Status::InvalidArgument("ARCHIVE_TOO_LARGE", "the upload is larger than allowed",
                                       "keep it under apps.upload_max_bytes; leave out "
                                       "node_modules and build output (.kilnignore)");
      }
      std::string dir = d.config.server.data_dir + "/builds";
      std::error_code ec;
      fs::create_directories(dir, ec);
      r.source_type = "upload";
      r.upload_path = dir + "/" + NewId("upload") + ".tar.gz";
      r.upload_bytes = static_cast<int64_t>(source->data.size());
      std::ofstream out(r.upload_path, std::ios::binary);
      out.write(source->data.data(), static_cast<std::streamsize>(source->data.size()));
      if (!out.flush()) {
        fs::remove(r.upload_path, ec);
        return Status::Unavailable("DISK_FULL", "cannot save the upload",
                                   "free disk space in the data directory");
      }
    } else if (has_source) {
      const json::object& s = source_field->value().as_object();
      if (auto url = FindString(s, "url")) {
        if (!url->starts_with("http://") && !url->starts_with("https://")) {
          return Status::InvalidArgument("SOURCE_URL_INVALID",
                                         "source.url must be an http:// or https:// URL",
                                         "point it at a .tar.gz of the app");
        }
        r.source_type = "url";
        r.url = *url;
      } else if (auto git = s.find("git"); git != s.end()) {
        r.source_type = "git";
        r.git_repo = GetString(git->value().as_object(), "repo");
        r.git_ref = GetString(git->value().as_object(), "ref");
        if (r.git_repo.starts_with("-") || r.git_ref.starts_with("-")) {
          return Status::InvalidArgument("GIT_REPO_INVALID", "repo and ref cannot start with -",
                                         "give a URL or path, and a branch, tag or commit");
        }
      } else {
        r.source_type = "template";
        r.starter = GetString(s, "template");
        auto starters = ListStarters(m.examples_dir());
        if (std::find(starters.begin(), starters.end(), r.starter) == starters.end()) {
          std::string names;
          for (const auto& n : starters) {
            names += (names.empty() ? "" : ", ") + n;
          }
          return Status::NotFound("TEMPLATE_NOT_FOUND", "no starter named \"" + r.starter + "\"",
                                  "pick one of: " + names);
        }
      }
    } else {
      return Status::InvalidArgument(
          "SOURCE_MISSING", "a deployment needs a source",
          "send the app's files inline in `files`, upload a .tar.gz (multipart part `source`), "
          "or give source.url, source.git or source.template");
    }
    std::string saved = r.upload_path;
    auto dep = m.Deploy(ctx.principal, app, std::move(r));
    if (!dep.ok()) {
      // Refused before the deployment took the saved archive over (no runtime, shutting down).
      if (!saved.empty()) {
        std::error_code ec;
        fs::remove(saved, ec);
      }
      return dep.status();
    }
    return m.DeploymentJson(*dep);
  };
  return op;
}

Operation ListOp(AppManager& m) {
  Operation op;
  op.name = "apps.deployments";
  op.summary = "List an app's deployments, newest first";
  op.description = "Lists the deployments of an app, newest first, with status and steps.";
  op.method = "GET";
  op.path = "/v1/apps/{app}/deployments";
  op.scopes = auth::kRead;
  op.read_only = op.idempotent = op.paginated = true;
  op.input = Schema(std::string(R"js({"type": "object", "required": ["app"], "properties": {)js") +
                    std::string(kPageProps) + "," + std::string(kAppProp) + "}}");
  op.output = Schema(kDeploymentSchema);
  op.run = [&m](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(store::App app, m.Get(ctx.principal.workspace.id, GetString(in, "app")));
    KILN_ASSIGN_OR_RETURN(store::PageRequest page, PageFrom(in));
    int limit = page.limit;
    page.limit += 1;
    KILN_ASSIGN_OR_RETURN(std::vector<store::Deployment> deps,
                          m.deps().store.ListDeployments(app.id, page));
    return PageJson(std::move(deps), limit,
                    [&m](const store::Deployment& dep) { return m.DeploymentJson(dep); });
  };
  return op;
}

Operation GetOp(AppManager& m) {
  Operation op;
  op.name = "deployments.get";
  op.summary = "Get a deployment: status, steps with durations, and why it failed";
  op.description =
      "Answers a deployment: status (queued, building, deploying, live, failed, cancelled, "
      "superseded), each step with its status and duration, the release it made, and for a "
      "failure the step, code, message and hint.";
  op.method = "GET";
  op.path = "/v1/deployments/{id}";
  op.scopes = auth::kRead;
  op.read_only = op.idempotent = true;
  op.input = Schema(
      std::string(
          R"js({"type": "object", "additionalProperties": false, "required": ["id"], "properties": {)js") +
      kDepIdProp + "}}");
  op.output = Schema(kDeploymentSchema);
  op.run = [&m](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(store::Deployment dep,
                          m.GetDeployment(ctx.principal.workspace.id, GetString(in, "id")));
    return m.DeploymentJson(dep);
  };
  return op;
}

bool Active(const std::string& status) {
  return status == "queued" || status == "building" || status == "deploying";
}

Operation LogsOp(AppManager& m) {
  Operation op;
  op.name = "deployments.logs";
  op.summary = "A deployment's log (steps and build output); followable until it ends";
  op.description =
      "Answers the deployment's log lines so far ({time, step, line}) and its status. As a "
      "stream (Server-Sent Events, or follow=true), sends `log` events as lines are written "
      "and `step` events as steps change, then a final `end` event with the deployment. "
      "Secret env values are masked.";
  op.method = "GET";
  op.path = "/v1/deployments/{id}/logs";
  op.scopes = auth::kRead;
  op.read_only = op.idempotent = op.blocking = op.streaming = true;
  op.final_event = "end";
  op.input = Schema(
      std::string(
          R"js({"type": "object", "additionalProperties": false, "required": ["id"], "properties": {
      "follow": {"type": "boolean", "description": "REST: stream until the deployment ends"},)js") +
      kDepIdProp + "}}");
  op.output = Schema(
      R"js({"type": "object", "description": "JSON: {lines, status}; stream: the deployment"})js");
  op.run = [&m](Context& ctx, const json::object& in) -> Result<json::value> {
    std::string ws = ctx.principal.workspace.id;
    KILN_ASSIGN_OR_RETURN(store::Deployment dep, m.GetDeployment(ws, GetString(in, "id")));
    auto line_json = [](const DeployLogLine& l) {
      return json::object{{"time", TimeOrNull(l.time_ms)}, {"step", l.step}, {"line", l.text}};
    };
    if (!ctx.emit) {
      json::array lines;
      for (const auto& l : m.DeployLog(dep.id, 0)) {
        lines.emplace_back(line_json(l));
      }
      return json::object{{"lines", std::move(lines)}, {"status", dep.status}};
    }
    size_t seen = 0;
    std::map<std::string, std::string> step_status;
    while (true) {
      // Status first, then the log: the lines written before it ended are all sent.
      KILN_ASSIGN_OR_RETURN(dep, m.GetDeployment(ws, dep.id));
      auto lines = m.DeployLog(dep.id, seen);
      seen += lines.size();
      for (const auto& l : lines) {
        // A step is announced before its first line, even when this poll also saw it end.
        if (step_status[l.step].empty()) {
          step_status[l.step] = "running";
          if (!ctx.emit("step", json::object{{"name", l.step}, {"status", "running"}})) {
            return m.DeploymentJson(dep);
          }
        }
        if (!ctx.emit("log", line_json(l))) {
          return m.DeploymentJson(dep);
        }
      }
      auto steps = ParseJson(dep.steps);
      if (steps.ok() && steps->is_array()) {
        for (const auto& s : steps->as_array()) {
          const json::object& o = s.as_object();
          std::string name = GetString(o, "name"), status = GetString(o, "status");
          if (step_status[name] != status && status != "pending") {
            step_status[name] = status;
            if (!ctx.emit("step", o)) {
              return m.DeploymentJson(dep);
            }
          }
        }
      }
      if (!Active(dep.status)) {
        return m.DeploymentJson(dep);
      }
      m.WaitForDeployChange(250);
      if (!ctx.emit("", nullptr)) {
        return m.DeploymentJson(dep);
      }
    }
  };
  return op;
}

Operation CancelOp(AppManager& m) {
  Operation op;
  op.name = "deployments.cancel";
  op.summary = "Cancel a deployment in progress (the live release keeps serving)";
  op.description =
      "Stops a queued, building or deploying deployment: its build is killed, its new instance "
      "removed, and the app keeps serving what it served. Answers the deployment once it has "
      "ended (status cancelled). A finished deployment gets 409 DEPLOYMENT_FINISHED.";
  op.method = "POST";
  op.path = "/v1/deployments/{id}/cancel";
  op.scopes = auth::kWrite;
  op.blocking = true;
  op.input = Schema(
      std::string(
          R"js({"type": "object", "additionalProperties": false, "required": ["id"], "properties": {)js") +
      kDepIdProp + "}}");
  op.output = Schema(kDeploymentSchema);
  op.run = [&m](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(store::Deployment dep, m.Cancel(ctx.principal, GetString(in, "id")));
    return m.DeploymentJson(dep);
  };
  return op;
}

Operation RollbackOp(AppManager& m) {
  Operation op;
  op.name = "apps.rollback";
  op.summary = "Roll an app back to an earlier release, without rebuilding";
  op.description =
      "Starts the release of `deploymentId` (default: the one live before the current one) on "
      "a new instance, switches traffic once it answers, and answers the new deployment record "
      "(kind rollback, status live). Releases removed by garbage collection cannot come back "
      "(409 RELEASE_GONE).";
  op.method = "POST";
  op.path = "/v1/apps/{app}/rollback";
  op.scopes = auth::kWrite;
  op.blocking = true;
  op.input = Schema(AppOnlyWith(
      R"js("deploymentId": {"type": "string", "maxLength": 100, "description": "a deployment of this app that went live"},)js"));
  op.output = Schema(kDeploymentSchema);
  op.run = [&m](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(store::App app, m.Get(ctx.principal.workspace.id, GetString(in, "app")));
    KILN_ASSIGN_OR_RETURN(store::Deployment dep,
                          m.Rollback(ctx.principal, app, GetString(in, "deploymentId")));
    return m.DeploymentJson(dep);
  };
  return op;
}

}  // namespace

void AddDeployOperations(const Deps& deps, AppManager& apps, std::vector<Operation>& out) {
  out.push_back(CreateOp(deps, apps));
  out.push_back(ListOp(apps));
  out.push_back(GetOp(apps));
  out.push_back(LogsOp(apps));
  out.push_back(CancelOp(apps));
  out.push_back(RollbackOp(apps));
}

}  // namespace kiln::service
