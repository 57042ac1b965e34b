// Sandboxes: create, list, get, kill, pause, resume, timeout (shared/API.md "Sandboxes").
// Exec and files are in exec_ops.cc.
#include <thread>

#include "service/operations.h"
#include "service/sandboxes.h"

namespace kiln::service {
namespace {

const char* kSandboxSchema = R"js({"type": "object", "properties": {
    "id": {"type": "string"}, "template": {"type": "string"},
    "status": {"type": "string", "enum": ["running", "paused", "killed", "expired", "lost", "failed"]},
    "startedAt": {"type": "string"}, "expiresAt": {"type": ["string", "null"]},
    "endedAt": {"type": ["string", "null"]}, "endReason": {"type": ["string", "null"]},
    "metadata": {"type": "object"}, "network": {"type": "string", "enum": ["none", "egress"]},
    "resources": {"type": "object", "properties": {"memoryMb": {"type": "integer"},
                  "cpus": {"type": "number"}, "pids": {"type": "integer"}}},
    "usage": {"type": "object", "description": "live sandboxes: memory in use, processes, CPU time"},
    "limitEvents": {"type": "object", "description": "oomKills: processes killed at the memory limit; pidsLimitHits: forks refused at the process limit"},
    "pooled": {"type": "boolean", "description": "create only: taken from the warm pool"}}})js";

const char* kIdProp = R"js("id": {"type": "string", "minLength": 1, "maxLength": 100,
    "description": "the sandbox id (sbx_…)"
})js";

std::string IdOnly() {
  return std::string(
             R"js({"type": "object", "additionalProperties": false, "required": ["id"], "properties": {)js") +
         kIdProp + "}}";
}

Operation CreateOp(const Deps& d, SandboxManager& m) {
  const auto& cfg = d.config.sandboxes;
  Operation op;
  op.name = "sandboxes.create";
  op.summary = "Create a sandbox: an isolated Linux container to run commands in";
  op.description =
      "Starts an isolated sandbox (its own filesystem over a template, no network unless "
      "network is \"egress\", memory/CPU/process limits) and returns it running. Template "
      "\"base\" (the host's tools: sh, python3, node, git) starts in milliseconds from a warm "
      "pool; \"debian\" is a minimal Debian where apt works with egress. The sandbox is killed "
      "after `timeout` seconds unless extended. Then run commands with sandboxes.exec and "
      "read/write files with sandboxes.files.*.";
  op.method = "POST";
  op.path = "/v1/sandboxes";
  op.scopes = auth::kWrite;
  op.blocking = true;
  op.success_status = 201;
  op.input = Schema(R"js({"type": "object", "additionalProperties": false, "properties": {
      "template": {"type": "string", "minLength": 1, "maxLength": 64,
                   "description": "base (default), debian, or a custom template"},
      "timeout": {"type": "integer", "minimum": 1, "description": "seconds until it is killed"},
      "metadata": {"type": "object", "maxProperties": 32,
                   "additionalProperties": {"type": "string", "maxLength": 256},
                   "description": "your labels, filterable in list (metadata.KEY=VALUE)"},
      "env": {"type": "object", "maxProperties": 128,
              "propertyNames": {"pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "maxLength": 128},
              "additionalProperties": {"type": "string", "maxLength": 32768},
              "description": "environment of every command; values are stored encrypted"},
      "memoryMb": {"type": "integer", "description": "memory limit in MiB"},
      "cpus": {"type": "number", "description": "CPU cores (fractions allowed)"},
      "network": {"type": "string", "enum": ["none", "egress"],
                  "description": "none (default): loopback only; egress: outbound internet"}}})js");
  auto& props = op.input["properties"].as_object();
  props["timeout"].as_object()["maximum"] = cfg.max_timeout_seconds;
  props["memoryMb"].as_object()["minimum"] = cfg.min_memory_mb;
  props["memoryMb"].as_object()["maximum"] = cfg.max_memory_mb;
  props["cpus"].as_object()["exclusiveMinimum"] = 0;
  props["cpus"].as_object()["minimum"] = 0.05;
  props["cpus"].as_object()["maximum"] = cfg.max_cpus;
  op.output = Schema(kSandboxSchema);
  op.run = [&d, &m](Context& ctx, const json::object& in) -> Result<json::value> {
    SandboxRequest r;
    r.template_name = GetString(in, "template", "base");
    r.timeout_s = GetInt(in, "timeout", d.config.sandboxes.default_timeout_seconds);
    if (auto it = in.find("metadata"); it != in.end()) {
      r.metadata = json::serialize(it->value());
    }
    if (auto it = in.find("env"); it != in.end()) {
      for (const auto& [k, v] : it->value().as_object()) {
        r.env.emplace_back(std::string(k), std::string(v.as_string()));
      }
    }
    r.resources = PoolResources(d.config);
    r.resources.memory_mb = GetInt(in, "memoryMb", d.config.sandboxes.default_memory_mb);
    if (auto it = in.find("cpus"); it != in.end()) {
      r.resources.cpus = it->value().to_number<double>();
    }
    r.network =
        GetString(in, "network") == "egress" ? runtime::Network::kEgress : runtime::Network::kNone;
    bool pooled = false;
    KILN_ASSIGN_OR_RETURN(store::Sandbox s, m.Create(ctx.principal, r, &pooled));
    json::object out = m.ToJson(s, false);
    out["pooled"] = pooled;
    return out;
  };
  return op;
}

Operation ListOp(const Deps& d, SandboxManager& m) {
  Operation op;
  op.name = "sandboxes.list";
  op.summary = "List sandboxes, newest first";
  op.description =
      "Lists the workspace's sandboxes, newest first: live ones (running and paused) unless "
      "`status` asks for others (killed, expired, lost, failed, or all). `metadata` filters on "
      "labels given at create (in a query string: metadata.KEY=VALUE).";
  op.method = "GET";
  op.path = "/v1/sandboxes";
  op.scopes = auth::kRead;
  op.read_only = op.idempotent = op.paginated = true;
  op.input = Schema(std::string(R"js({"type": "object", "properties": {
      "status": {"type": "string", "enum": ["running", "paused", "killed", "expired", "lost", "failed", "all"]},
      "metadata": {"type": "object", "additionalProperties": {"type": "string"}, "description": "labels that must all match"},)js") +
                    std::string(kPageProps) + "}}");
  op.output = Schema(kSandboxSchema);
  op.run = [&d, &m](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(store::PageRequest page, PageFrom(in));
    std::string status = GetString(in, "status");
    const json::object* filter = nullptr;
    if (auto it = in.find("metadata"); it != in.end() && it->value().is_object()) {
      filter = &it->value().as_object();
    }
    auto matches = [filter](const store::Sandbox& s) {
      if (filter == nullptr || filter->empty()) {
        return true;
      }
      auto meta = ParseJson(s.metadata);
      if (!meta.ok() || !meta->is_object()) {
        return false;
      }
      for (const auto& [k, v] : *filter) {
        auto it = meta->as_object().find(k);
        if (it == meta->as_object().end() || it->value() != v) {
          return false;
        }
      }
      return true;
    };
    // Filtered in memory, page after page of the store, until this page is full.
    std::vector<store::Sandbox> rows;
    store::PageRequest scan{page.seq, std::max(page.limit + 1, 100)};
    while (static_cast<int>(rows.size()) <= page.limit) {
      KILN_ASSIGN_OR_RETURN(auto batch,
                            d.store.ListSandboxes(ctx.principal.workspace.id,
                                                  status == "all" ? "all" : status, scan));
      for (auto& s : batch) {
        if (matches(s)) {
          rows.push_back(std::move(s));
        }
      }
      if (static_cast<int>(batch.size()) < scan.limit) {
        break;
      }
      scan.seq = batch.back().seq;
    }
    return PageJson(std::move(rows), page.limit,
                    [&m](const store::Sandbox& s) { return m.ToJson(s, false); });
  };
  return op;
}

Operation GetOp(SandboxManager& m) {
  Operation op;
  op.name = "sandboxes.get";
  op.summary = "Get one sandbox, with its memory and process use";
  op.description =
      "Answers a sandbox of the workspace: status, expiry, resources and, while it lives, its "
      "memory use, process count and limit events (oomKills, pidsLimitHits) that explain "
      "killed processes or failed forks.";
  op.method = "GET";
  op.path = "/v1/sandboxes/{id}";
  op.scopes = auth::kRead;
  op.read_only = op.idempotent = true;
  op.input = Schema(IdOnly());
  op.output = Schema(kSandboxSchema);
  op.run = [&m](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(store::Sandbox s, m.Get(ctx.principal.workspace.id, GetString(in, "id")));
    return m.ToJson(s, true);
  };
  return op;
}

Operation KillOp(SandboxManager& m) {
  Operation op;
  op.name = "sandboxes.kill";
  op.summary = "Kill a sandbox and remove everything in it";
  op.description =
      "Kills every process of the sandbox and deletes its filesystem. The record stays "
      "(status killed). Killing an ended sandbox changes nothing.";
  op.method = "DELETE";
  op.path = "/v1/sandboxes/{id}";
  op.scopes = auth::kWrite;
  op.idempotent = op.blocking = true;
  op.input = Schema(IdOnly());
  op.output = Schema(kSandboxSchema);
  op.run = [&m](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(store::Sandbox s, m.Kill(ctx.principal, GetString(in, "id")));
    return m.ToJson(s, false);
  };
  return op;
}

Operation TimeoutOp(const Deps& d, SandboxManager& m) {
  Operation op;
  op.name = "sandboxes.timeout";
  op.summary = "Set when a sandbox expires: `timeout` seconds from now";
  op.description =
      "Extends (or shortens) a live sandbox's life: it will be killed `timeout` seconds from "
      "now.";
  op.method = "POST";
  op.path = "/v1/sandboxes/{id}/timeout";
  op.scopes = auth::kWrite;
  op.idempotent = true;
  op.input = Schema(
      std::string(
          R"js({"type": "object", "additionalProperties": false, "required": ["id", "timeout"], "properties": {
      "timeout": {"type": "integer", "minimum": 1, "description": "seconds from now"},)js") +
      kIdProp + "}}");
  op.input["properties"].as_object()["timeout"].as_object()["maximum"] =
      d.config.sandboxes.max_timeout_seconds;
  op.output = Schema(kSandboxSchema);
  op.run = [&m](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(store::Sandbox s,
                          m.SetTimeout(ctx.principal, GetString(in, "id"), GetInt(in, "timeout")));
    return m.ToJson(s, false);
  };
  return op;
}

Operation PauseOp(SandboxManager& m, bool pause) {
  Operation op;
  op.name = pause ? "sandboxes.pause" : "sandboxes.resume";
  op.summary = pause ? "Freeze every process of a sandbox" : "Thaw a paused sandbox";
  op.description = pause ? "Freezes every process of the sandbox (they use no CPU; memory is "
                           "kept) until sandboxes.resume. Exec and files answer 409 meanwhile."
                         : "Lets the processes of a paused sandbox run again where they stopped.";
  op.method = "POST";
  op.path = pause ? "/v1/sandboxes/{id}/pause" : "/v1/sandboxes/{id}/resume";
  op.scopes = auth::kWrite;
  op.idempotent = op.blocking = true;
  op.input = Schema(IdOnly());
  op.output = Schema(kSandboxSchema);
  op.run = [&m, pause](Context& ctx, const json::object& in) -> Result<json::value> {
    std::string id = GetString(in, "id");
    KILN_ASSIGN_OR_RETURN(store::Sandbox s, m.SetPaused(ctx.principal, id, pause));
    return m.ToJson(s, false);
  };
  return op;
}

}  // namespace

void AddSandboxOperations(const Deps& deps, SandboxManager& sandboxes,
                          std::vector<Operation>& out) {
  out.push_back(CreateOp(deps, sandboxes));
  out.push_back(ListOp(deps, sandboxes));
  out.push_back(GetOp(sandboxes));
  out.push_back(KillOp(sandboxes));
  out.push_back(TimeoutOp(deps, sandboxes));
  out.push_back(PauseOp(sandboxes, true));
  out.push_back(PauseOp(sandboxes, false));
  ExecTarget target;
  target.resource = "sandboxes";
  target.noun = "sandbox";
  target.a_noun = "a sandbox";
  target.param = "id";
  target.id_prop = R"js("id": {"type": "string", "minLength": 1, "maxLength": 100,
    "description": "the sandbox id (sbx_…)"})js";
  target.home = "/root";
  target.client = [&sandboxes](const std::string& ws, const std::string& id,
                               std::string* instance) -> Result<runtime::InitClient> {
    if (instance != nullptr) {
      *instance = id;  // a sandbox's instance has the sandbox's id
    }
    return sandboxes.Client(ws, id);
  };
  target.limit_events = [&sandboxes](const std::string& id) { return sandboxes.LimitEvents(id); };
  AddExecOperations(deps, target, out);
}

}  // namespace kiln::service
