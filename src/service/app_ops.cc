// Apps: create, list, get, update, delete, lifecycle, resources, runtime logs, exec and files
// (shared/API.md "Apps and deployments"). Deployments are in deploy_ops.cc, env in env_ops.cc.
#include <ctime>
#include <regex>
#include <thread>

#include "service/apps.h"
#include "service/operations.h"

namespace kiln::service {

std::optional<int64_t> ParseTimeMs(std::string_view text) {
  std::tm tm{};
  std::string t(text);
  const char* rest = strptime(t.c_str(), "%Y-%m-%dT%H:%M:%S", &tm);
  if (rest == nullptr) {
    return std::nullopt;
  }
  int64_t ms = static_cast<int64_t>(timegm(&tm)) * 1000;
  if (*rest == '.') {
    int64_t scale = 100;
    for (++rest; *rest >= '0' && *rest <= '9'; ++rest) {
      ms += (*rest - '0') * scale;
      scale /= 10;
    }
  }
  if (*rest == 'Z' || *rest == 'z') {
    ++rest;
  } else if (*rest == '+' || *rest == '-') {
    int hh = 0, mm = 0;
    if (std::sscanf(rest + 1, "%2d:%2d", &hh, &mm) != 2) {
      return std::nullopt;
    }
    int64_t offset = (hh * 60 + mm) * 60'000;
    ms += *rest == '+' ? -offset : offset;
    rest += 6;
  } else {
    return std::nullopt;
  }
  return *rest == '\0' ? std::optional<int64_t>(ms) : std::nullopt;
}

std::string AppOnlyWith(const std::string& extra, const std::vector<std::string>& more_required) {
  std::string required = "\"app\"";
  for (const std::string& r : more_required) {
    required += ", \"" + r + "\"";
  }
  return R"js({"type": "object", "additionalProperties": false, "required": [)js" + required +
         R"js(], "properties": {)js" + extra + std::string(kAppProp) + "}}";
}

Status CheckAppName(const std::string& name) {
  static const std::regex kName("^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$");
  if (!std::regex_match(name, kName)) {
    return Status::InvalidArgument(
        "APP_NAME_INVALID", "app name \"" + ValidUtf8(name) + "\" cannot be a host name",
        "use 1-63 lower-case letters, digits and dashes, starting with a letter and not ending "
        "with a dash (it becomes NAME." +
            std::string("{base_domain}") + ")");
  }
  return Status::Ok();
}

Status CheckPort(int64_t port) {
  if (port < 1024 || port > 65535) {
    return Status::InvalidArgument(
        "PORT_INVALID", "port " + std::to_string(port) + " cannot be used by an app",
        "pick a port from 1024 to 65535 (ports below 1024 are privileged); the app gets it "
        "in $PORT");
  }
  return Status::Ok();
}

Status CheckEnvKey(const std::string& key) {
  static const std::regex kKey("^[A-Z_][A-Z0-9_]*$");
  if (key.size() > 128 || !std::regex_match(key, kKey)) {
    return Status::InvalidArgument(
        "ENV_KEY_INVALID", "env key \"" + ValidUtf8(key) + "\" is not a valid variable name",
        "use upper-case letters, digits and _, not starting with a digit (e.g. DATABASE_URL)");
  }
  return Status::Ok();
}

namespace {

const char* kAppSchema = R"js({"type": "object", "properties": {
    "id": {"type": "string"}, "name": {"type": "string"}, "url": {"type": "string"},
    "status": {"type": "string", "enum": ["created", "running", "stopped", "sleeping", "crashed"]},
    "port": {"type": "integer"},
    "resources": {"type": "object", "properties": {"memoryMb": {"type": "integer"}, "cpus": {"type": "number"}}},
    "accessPolicy": {"type": "string"}, "sleepAfterMinutes": {"type": "integer"},
    "release": {"type": ["object", "null"], "description": "the release serving now: id, deploymentId, runtime, sizeBytes, createdAt"},
    "deployment": {"type": ["object", "null"], "description": "the latest deployment: id, status, createdAt"},
    "instance": {"type": ["string", "null"]},
    "data": {"type": "object", "description": "the /data volume: usedBytes, quotaBytes"},
    "releasesBytes": {"type": "integer", "description": "disk used by the releases kept"},
    "restarts": {"type": "integer", "description": "times the app's process exited and was started again"},
    "stats": {"type": ["object", "null"], "description": "get only, while running: cpuSeconds, memoryBytes, memoryLimitBytes, pids, oomKills, restarts"},
    "requests": {"type": ["object", "null"], "description": "get only: what the gateway served since the server started: total, byClass {1xx..5xx}, bytesIn, bytesOut, p50Ms, p99Ms"},
    "createdAt": {"type": "string"}, "updatedAt": {"type": "string"}}})js";

std::string AppOnly(const std::string& extra = {}) { return AppOnlyWith(extra); }

Operation CreateOp(const Deps& d, AppManager& m) {
  Operation op;
  op.name = "apps.create";
  op.summary = "Create an app: a named service that deployments put live at its own URL";
  op.description =
      "Creates an app. It gets the URL http://NAME.{base_domain} once a deployment is live "
      "(apps.deploy). The app's process listens on `port` (given to it as $PORT); `env` sets "
      "runtime variables (use apps.env.set for secrets); each app has a persistent /data "
      "volume of dataQuotaMb that survives deploys and restarts.";
  op.method = "POST";
  op.path = "/v1/apps";
  op.scopes = auth::kWrite;
  op.success_status = 201;
  op.input = Schema(
      R"js({"type": "object", "additionalProperties": false, "required": ["name"], "properties": {
      "name": {"type": "string", "minLength": 1, "maxLength": 63, "description": "DNS label: lower-case letters, digits, dashes"},
      "port": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "the port the app listens on, default 3000"},
      "memoryMb": {"type": "integer", "minimum": 16, "description": "memory limit, default 256"},
      "cpus": {"type": "number", "exclusiveMinimum": 0, "description": "CPU cores, default 1"},
      "env": {"type": "object", "maxProperties": 256, "additionalProperties": {"type": "string", "maxLength": 65536}},
      "accessPolicy": {"type": "string", "enum": ["public", "workspace", "token"]},
      "sleepAfterMinutes": {"type": "integer", "minimum": 0, "maximum": 525600, "description": "freeze after this long without requests; 0 = never"},
      "dataQuotaMb": {"type": "integer", "minimum": 16, "description": "size of the /data volume"}}})js");
  op.output = Schema(kAppSchema);
  op.run = [&d, &m](Context& ctx, const json::object& in) -> Result<json::value> {
    store::App app;
    app.name = GetString(in, "name");
    KILN_RETURN_IF_ERROR(CheckAppName(app.name));
    app.port = GetInt(in, "port", 3000);
    KILN_RETURN_IF_ERROR(CheckPort(app.port));
    app.memory_mb = GetInt(in, "memoryMb", d.config.apps.default_memory_mb);
    double cpus = in.contains("cpus") ? in.at("cpus").to_number<double>() : 1.0;
    app.millicpus = static_cast<int64_t>(cpus * 1000 + 0.5);
    app.access_policy = GetString(in, "accessPolicy", "public");
    app.sleep_after_minutes = GetInt(in, "sleepAfterMinutes", 0);
    app.data_quota_mb = GetInt(in, "dataQuotaMb", d.config.apps.data_quota_mb);
    std::vector<std::pair<std::string, std::string>> env;
    if (auto it = in.find("env"); it != in.end()) {
      for (const auto& [k, v] : it->value().as_object()) {
        KILN_RETURN_IF_ERROR(CheckEnvKey(std::string(k)));
        env.emplace_back(std::string(k), std::string(v.as_string()));
      }
    }
    KILN_ASSIGN_OR_RETURN(store::App created, m.Create(ctx.principal, app, env));
    return m.AppJson(created, false);
  };
  return op;
}

Operation ListOp(AppManager& m) {
  Operation op;
  op.name = "apps.list";
  op.summary = "List the workspace's apps";
  op.description = "Lists apps, oldest first, with status, URL and the release serving now.";
  op.method = "GET";
  op.path = "/v1/apps";
  op.scopes = auth::kRead;
  op.read_only = op.idempotent = op.paginated = true;
  op.input = Schema(std::string(R"js({"type": "object", "properties": {)js") +
                    std::string(kPageProps) + "}}");
  op.output = Schema(kAppSchema);
  op.run = [&m](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(store::PageRequest page, PageFrom(in));
    int limit = page.limit;
    page.limit += 1;
    KILN_ASSIGN_OR_RETURN(std::vector<store::App> apps,
                          m.deps().store.ListApps(ctx.principal.workspace.id, page));
    return PageJson(std::move(apps), limit,
                    [&m](const store::App& a) { return m.AppJson(a, false); });
  };
  return op;
}

Operation GetOp(AppManager& m) {
  Operation op;
  op.name = "apps.get";
  op.summary = "Get one app with its release, data volume use and live stats";
  op.description =
      "Answers an app by id or name: status, URL, the release serving now, resources, /data "
      "use, disk used by releases, and while it runs CPU, memory and restarts.";
  op.method = "GET";
  op.path = "/v1/apps/{app}";
  op.scopes = auth::kRead;
  op.read_only = op.idempotent = true;
  op.input = Schema(AppOnly());
  op.output = Schema(kAppSchema);
  op.run = [&m](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(store::App app, m.Get(ctx.principal.workspace.id, GetString(in, "app")));
    return m.AppJson(app, true);
  };
  return op;
}

Operation UpdateOp(AppManager& m) {
  Operation op;
  op.name = "apps.update";
  op.summary = "Change an app's settings (port, memory, cpus, access policy, sleep)";
  op.description =
      "Applies the fields it knows (port, memoryMb, cpus, accessPolicy, sleepAfterMinutes) and "
      "answers {app, applied, ignored}: fields that cannot change this way (name, id, ...) are "
      "listed in ignored. memoryMb and cpus apply to the running instance at once; port applies "
      "from the next deploy or restart.";
  op.method = "PATCH";
  op.path = "/v1/apps/{app}";
  op.scopes = auth::kWrite;
  op.idempotent = true;
  op.input = Schema(std::string(R"js({"type": "object", "required": ["app"], "properties": {
      "port": {"type": "integer", "minimum": 1, "maximum": 65535},
      "memoryMb": {"type": "integer", "minimum": 16},
      "cpus": {"type": "number", "exclusiveMinimum": 0},
      "accessPolicy": {"type": "string", "enum": ["public", "workspace", "token"]},
      "sleepAfterMinutes": {"type": "integer", "minimum": 0, "maximum": 525600},)js") +
                    std::string(kAppProp) + "}}");
  op.output = Schema(R"js({"type": "object", "properties": {"app": {"type": "object"},
      "applied": {"type": "array", "items": {"type": "string"}},
      "ignored": {"type": "array", "items": {"type": "string"}}}})js");
  op.run = [&m](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(store::App app, m.Get(ctx.principal.workspace.id, GetString(in, "app")));
    json::array applied, ignored;
    for (const auto& [k, v] : in) {
      std::string key(k);
      if (key == "app") {
        continue;
      }
      if (key == "port") {
        KILN_RETURN_IF_ERROR(CheckPort(v.as_int64()));
        app.port = v.as_int64();
      } else if (key == "memoryMb") {
        if (v.as_int64() > m.deps().config.apps.max_memory_mb) {
          return Status::InvalidArgument(
              "APP_MEMORY_TOO_LARGE", "memoryMb is above this server's limit",
              "ask for at most " + std::to_string(m.deps().config.apps.max_memory_mb));
        }
        app.memory_mb = v.as_int64();
      } else if (key == "cpus") {
        app.millicpus = static_cast<int64_t>(v.to_number<double>() * 1000 + 0.5);
      } else if (key == "accessPolicy") {
        app.access_policy = std::string(v.as_string());
      } else if (key == "sleepAfterMinutes") {
        app.sleep_after_minutes = v.as_int64();
      } else {
        ignored.emplace_back(key);
        continue;
      }
      applied.emplace_back(key);
    }
    KILN_ASSIGN_OR_RETURN(store::App updated, m.Update(ctx.principal, app));
    return json::object{
        {"app", m.AppJson(updated, false)}, {"applied", applied}, {"ignored", ignored}};
  };
  return op;
}

Operation DeleteOp(AppManager& m) {
  Operation op;
  op.name = "apps.delete";
  op.summary = "Delete an app (its /data volume is kept unless purge)";
  op.description =
      "Stops the app, removes its releases, deployments and env vars. Needs `confirm` with the "
      "app's exact name. The /data volume is kept (a new app of the same name finds it) unless "
      "`purge` is true.";
  op.method = "DELETE";
  op.path = "/v1/apps/{app}";
  op.scopes = auth::kWrite;
  op.destructive = true;
  op.blocking = true;
  op.input =
      Schema(AppOnly(R"js("confirm": {"type": "string", "description": "the app's exact name"},
      "purge": {"type": "boolean", "description": "also delete the /data volume"},)js"));
  op.output = Schema(R"js({"type": "object", "properties": {"name": {"type": "string"},
      "deleted": {"type": "boolean"}, "dataKept": {"type": "boolean"}}})js");
  op.run = [&m](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(store::App app, m.Get(ctx.principal.workspace.id, GetString(in, "app")));
    if (GetString(in, "confirm") != app.name) {
      return ConfirmRequired("deleting app \"" + app.name + "\"", app.name);
    }
    bool purge = GetBool(in, "purge");
    KILN_RETURN_IF_ERROR(m.Delete(ctx.principal, app, purge));
    return json::object{{"name", app.name}, {"deleted", true}, {"dataKept", !purge}};
  };
  return op;
}

using LifecycleFn = Result<store::App> (AppManager::*)(const auth::Principal&, const std::string&);

Operation LifecycleOp(AppManager& m, const std::string& verb, LifecycleFn fn,
                      const std::string& summary, const std::string& description) {
  Operation op;
  op.name = "apps." + verb;
  op.summary = summary;
  op.description = description;
  op.method = "POST";
  op.path = "/v1/apps/{app}/" + verb;
  op.scopes = auth::kWrite;
  op.idempotent = true;
  op.blocking = true;
  op.input = Schema(AppOnly());
  op.output = Schema(kAppSchema);
  op.run = [&m, fn](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(store::App app, (m.*fn)(ctx.principal, GetString(in, "app")));
    return m.AppJson(app, false);
  };
  return op;
}

Operation ResourcesOp(AppManager& m) {
  Operation op;
  op.name = "apps.resources";
  op.summary = "Resize an app's memory and CPU on the running instance";
  op.description =
      "Sets memoryMb and/or cpus; the running instance gets the new limits at once (no "
      "restart), and later instances keep them.";
  op.method = "PATCH";
  op.path = "/v1/apps/{app}/resources";
  op.scopes = auth::kWrite;
  op.idempotent = true;
  op.blocking = true;
  op.input = Schema(AppOnly(R"js("memoryMb": {"type": "integer", "minimum": 16},
      "cpus": {"type": "number", "exclusiveMinimum": 0},)js"));
  op.output = Schema(kAppSchema);
  op.run = [&m](Context& ctx, const json::object& in) -> Result<json::value> {
    std::optional<int64_t> memory;
    std::optional<double> cpus;
    if (in.contains("memoryMb")) {
      memory = in.at("memoryMb").as_int64();
    }
    if (in.contains("cpus")) {
      cpus = in.at("cpus").to_number<double>();
    }
    KILN_ASSIGN_OR_RETURN(store::App app,
                          m.Resize(ctx.principal, GetString(in, "app"), memory, cpus));
    return m.AppJson(app, true);
  };
  return op;
}

// The optional `since` of logs and stats, in ms (0 when absent).
Result<int64_t> SinceMs(const json::object& in) {
  auto s = FindString(in, "since");
  if (!s) {
    return int64_t{0};
  }
  auto ms = ParseTimeMs(*s);
  if (!ms) {
    return Status::InvalidArgument("TIME_INVALID",
                                   "since: \"" + ValidUtf8(*s) + "\" is not an RFC 3339 time",
                                   "use a time like 2026-11-24T10:00:00Z");
  }
  return *ms;
}

Operation LogsOp(const Deps& d, AppManager& m) {
  Operation op;
  op.name = "apps.logs";
  op.summary = "The app's output (stdout and stderr, with times); followable";
  op.description =
      "Answers the last `lines` lines (default 200) the app's process wrote, each with time and "
      "stream, newer than `since` (RFC 3339) when given. As a stream (Server-Sent Events, or "
      "follow=true), sends each new line as a `log` event as it is written, across restarts "
      "and deploys, until the caller goes away. Secret env values are masked.";
  op.method = "GET";
  op.path = "/v1/apps/{app}/logs";
  op.scopes = auth::kRead;
  op.read_only = op.idempotent = op.blocking = op.streaming = true;
  op.final_event = "end";
  op.input = Schema(AppOnly(R"js("lines": {"type": "integer", "minimum": 1, "maximum": 10000},
      "since": {"type": "string", "maxLength": 40, "description": "RFC 3339 time"},
      "follow": {"type": "boolean", "description": "REST: stream (same as Accept: text/event-stream)"},)js"));
  op.output = Schema(R"js({"type": "object", "properties": {"lines": {"type": "array", "items":
      {"type": "object", "properties": {"time": {"type": "string"}, "stream": {"type": "string"}, "line": {"type": "string"}}}}}})js");
  op.run = [&d, &m](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(store::App app, m.Get(ctx.principal.workspace.id, GetString(in, "app")));
    KILN_ASSIGN_OR_RETURN(int64_t since, SinceMs(in));
    auto to_json = [](const AppLogLine& l) {
      return json::object{{"time", TimeOrNull(l.time_ms)}, {"stream", l.stream}, {"line", l.text}};
    };
    int64_t offset = -1;
    std::string instance;
    auto lines =
        m.Logs(app, static_cast<size_t>(GetInt(in, "lines", 200)), since, &offset, &instance);
    if (!ctx.emit) {
      json::array out;
      for (const auto& l : lines) {
        out.emplace_back(to_json(l));
      }
      return json::object{{"lines", std::move(out)}};
    }
    while (true) {
      for (const auto& l : lines) {
        if (!ctx.emit("log", to_json(l))) {
          return json::object{{"lines", json::array{}}};
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      // A keep-alive comment would be nicer; an empty event tells a gone caller apart.
      if (!ctx.emit("", nullptr)) {
        return json::object{{"lines", json::array{}}};
      }
      auto fresh = m.Get(app.workspace_id, app.id);
      if (!fresh.ok()) {
        return json::object{{"lines", json::array{}}};
      }
      app = *fresh;
      lines = m.Logs(app, 0, since, &offset, &instance);
    }
    (void)d;
  };
  return op;
}

Operation StatsOp(AppManager& m) {
  Operation op;
  op.name = "apps.stats";
  op.summary = "The app's request rate, latency, CPU and memory over the last hour";
  op.description =
      "Answers one point per interval (apps.stats_interval_seconds, 10 by default) for the last "
      "hour the app ran, oldest first: requests in that interval and per second, 4xx and 5xx "
      "answers, body bytes in and out, p50/p99 latency of that interval's requests (ms), mean "
      "CPU cores used, and memory. With `since` (RFC 3339), only points after it. Kept in "
      "memory: a server restart starts the history over.";
  op.method = "GET";
  op.path = "/v1/apps/{app}/stats";
  op.scopes = auth::kRead;
  op.read_only = op.idempotent = true;
  op.input = Schema(AppOnly(
      R"js("since": {"type": "string", "maxLength": 40, "description": "RFC 3339 time"},)js"));
  op.output = Schema(R"js({"type": "object", "properties": {
      "app": {"type": "string"}, "intervalSeconds": {"type": "integer"},
      "windowSeconds": {"type": "integer"},
      "points": {"type": "array", "items": {"type": "object", "properties": {
        "time": {"type": "string"}, "seconds": {"type": "number"},
        "requests": {"type": "integer"}, "rps": {"type": "number"},
        "clientErrors": {"type": "integer"}, "errors": {"type": "integer"},
        "bytesIn": {"type": "integer"}, "bytesOut": {"type": "integer"},
        "p50Ms": {"type": "number"}, "p99Ms": {"type": "number"},
        "cpuCores": {"type": ["number", "null"]}, "memoryBytes": {"type": ["integer", "null"]},
        "memoryLimitBytes": {"type": ["integer", "null"]}}}}}})js");
  op.run = [&m](Context& ctx, const json::object& in) -> Result<json::value> {
    KILN_ASSIGN_OR_RETURN(store::App app, m.Get(ctx.principal.workspace.id, GetString(in, "app")));
    KILN_ASSIGN_OR_RETURN(int64_t since, SinceMs(in));
    return m.StatsJson(app, since);
  };
  return op;
}

}  // namespace

void AddAppOperations(const Deps& deps, AppManager& apps, std::vector<Operation>& out) {
  out.push_back(CreateOp(deps, apps));
  out.push_back(ListOp(apps));
  out.push_back(GetOp(apps));
  out.push_back(UpdateOp(apps));
  out.push_back(DeleteOp(apps));
  out.push_back(LifecycleOp(apps, "start", &AppManager::StartApp, "Start a stopped app",
                            "Starts the app's current release on a new instance and waits until "
                            "it answers on its port. A sleeping app is woken instead."));
  out.push_back(LifecycleOp(apps, "stop", &AppManager::StopApp, "Stop an app",
                            "Stops the app's instance; its URL answers 404 until it is started "
                            "or deployed again. Its /data volume stays."));
  out.push_back(LifecycleOp(apps, "restart", &AppManager::Restart,
                            "Restart an app with no downtime (and pick up env changes)",
                            "Starts the current release on a new instance with the current env "
                            "vars, switches traffic once it answers, then stops the old one."));
  out.push_back(LifecycleOp(apps, "sleep", &AppManager::Sleep, "Put an app to sleep (freeze it)",
                            "Freezes every process of the app: it uses no CPU until woken (wake, "
                            "or a request to its URL). Memory stays allocated."));
  out.push_back(LifecycleOp(apps, "wake", &AppManager::Wake, "Wake a sleeping app",
                            "Thaws a sleeping app's processes; it answers again at once."));
  out.push_back(ResourcesOp(apps));
  out.push_back(LogsOp(deps, apps));
  out.push_back(StatsOp(apps));
  ExecTarget target;
  target.resource = "apps";
  target.noun = "app";
  target.a_noun = "an app's running instance";
  target.param = "app";
  target.id_prop = std::string(kAppProp);
  target.home = "/app";
  target.client = [&apps](const std::string& ws, const std::string& ref,
                          std::string* instance) -> Result<runtime::InitClient> {
    std::string id;
    auto client = apps.Client(ws, ref, &id);
    if (instance != nullptr) {
      *instance = id;
    }
    return client;
  };
  target.limit_events = [&deps](const std::string& instance) {
    std::optional<runtime::InstanceStats> out;
    if (deps.runtime != nullptr && !instance.empty()) {
      auto s = deps.runtime->LimitEvents(instance);
      if (s.ok()) {
        out = *s;
      }
    }
    return out;
  };
  AddExecOperations(deps, target, out);
}

}  // namespace kiln::service
