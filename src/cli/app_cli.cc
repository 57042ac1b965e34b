// `kiln apps …`, `kiln logs`, `kiln exec`, `kiln env …` and `kiln open`: apps from a
// terminal. `kiln deploy`, `kiln rollback` and `kiln deployments …` are in deploy_cli.cc.
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <optional>

#include "cli/internal.h"

extern char** environ;

namespace kiln::cli {
namespace {

std::string Bytes(const json::value& v) {
  return v.is_number() ? HumanBytes(static_cast<int64_t>(Num(v))) : "-";
}

// ---- apps ----

const std::vector<std::string> kAppHeader = {"NAME", "STATUS", "URL", "RELEASE", "UPDATED"};

std::vector<std::string> AppRow(const json::value& a) {
  return {S(a, "name"), S(a, "status"), S(a, "url"), S(At(a, "release"), "id"),
          ShortTime(S(a, "updatedAt"))};
}

void PrintApp(const json::value& a) {
  auto line = [](const char* label, const std::string& value) {
    std::printf("%-11s %s\n", label, value.c_str());
  };
  line("name", S(a, "name") + " (" + S(a, "id") + ")");
  line("url", S(a, "url"));
  line("status", S(a, "status"));
  const json::value& rel = At(a, "release");
  if (rel.is_object()) {
    line("release", S(rel, "id") + " (" + S(rel, "runtime") + ") from " + S(rel, "deploymentId") +
                        ", " + ShortTime(S(rel, "createdAt")));
  } else {
    line("release", "none yet: kiln deploy --app " + S(a, "name"));
  }
  const json::value& dep = At(a, "deployment");
  if (dep.is_object()) {
    line("deployment", S(dep, "id") + " " + S(dep, "status") + " (latest)");
  }
  const json::value& res = At(a, "resources");
  line("resources", NumStr(At(res, "memoryMb")) + " MiB memory, " + NumStr(At(res, "cpus")) +
                        " CPU, port " + NumStr(At(a, "port")));
  const json::value& sleep = At(a, "sleepAfterMinutes");
  line("access", S(a, "accessPolicy") + ", " +
                     (Num(sleep) > 0 ? "sleeps after " + NumStr(sleep) + " min without requests"
                                     : "never sleeps"));
  const json::value& data = At(a, "data");
  if (data.is_object()) {
    line("data",
         Bytes(At(data, "usedBytes")) + " of " + Bytes(At(data, "quotaBytes")) + " used in /data");
  }
  if (At(a, "releasesBytes").is_number()) {
    line("releases", Bytes(At(a, "releasesBytes")) + " on disk");
  }
  const json::value& stats = At(a, "stats");
  if (stats.is_object()) {
    char cpu[32];
    std::snprintf(cpu, sizeof(cpu), "%.1f s", Num(At(stats, "cpuSeconds")));
    line("usage", std::string("cpu ") + cpu + ", memory " + Bytes(At(stats, "memoryBytes")) +
                      " of " + Bytes(At(stats, "memoryLimitBytes")) + ", " +
                      NumStr(At(stats, "pids")) + " processes, " + NumStr(At(stats, "restarts")) +
                      " restarts");
  }
  line("created", S(a, "createdAt"));
  line("updated", S(a, "updatedAt"));
}

// ---- logs ----

// "--since" as given (RFC 3339), or a duration back from now: "30s", "10m", "2h", "1d".
std::string SinceParam(const std::string& since) {
  if (since.size() < 2) {
    return since;
  }
  char unit = since.back();
  std::string digits = since.substr(0, since.size() - 1);
  if (!std::all_of(digits.begin(), digits.end(), [](char c) { return std::isdigit(c) != 0; })) {
    return since;
  }
  int64_t scale = unit == 's'   ? 1000
                  : unit == 'm' ? 60'000
                  : unit == 'h' ? 3'600'000
                  : unit == 'd' ? 86'400'000
                                : 0;
  if (scale == 0) {
    return since;
  }
  int64_t now = std::chrono::duration_cast<std::chrono::milliseconds>(
                    std::chrono::system_clock::now().time_since_epoch())
                    .count();
  return FormatTime(now - std::stoll(digits) * scale);
}

void PrintAppLogLine(const json::value& l) {
  PrintLogLine(S(l, "time") + " " + S(l, "stream") + " ", S(l, "line"));
}

int AppLogs(const Output& out, const std::string& app, bool follow, int64_t lines,
            const std::string& since) {
  std::string path = AppPath(app) + "/logs?";
  if (lines > 0) {
    path += "lines=" + std::to_string(lines) + "&";
  }
  if (!since.empty()) {
    path += "since=" + http::PercentEncode(SinceParam(since)) + "&";
  }
  if (!follow) {
    path.pop_back();
    return Run(out, CallApi(LoadProfile(), "GET", path), [](const json::value& v) {
      for (const auto& l : Items(At(v, "lines"))) {
        PrintAppLogLine(l);
      }
    });
  }
  ApiCall call;
  call.path = path + "follow=1";
  call.accept = "text/event-stream";
  call.timeout = kFollowTimeout;
  std::optional<Status> stream_error;
  call.on_event = [&](const std::string& event, const json::value& raw) {
    if (event == "log") {
      if (out.json) {  // one JSON object a line, for scripts
        PrintJson(Unwrap(raw));
        std::fflush(stdout);
      } else {
        PrintAppLogLine(Unwrap(raw));
      }
    } else if (event == "error") {
      stream_error = StreamError(raw);
      return false;
    }
    return true;
  };
  auto res = Send(LoadProfile(), call);
  if (!res.ok()) {
    return ReportError(out, res.status());
  }
  return stream_error ? ReportError(out, *stream_error) : kOk;
}

// ---- open ----

// Opens `url` in the desktop's browser when there is a desktop; quietly does nothing when
// xdg-open is missing.
void OpenInBrowser(const std::string& url) {
  const char* display = std::getenv("DISPLAY");
  const char* wayland = std::getenv("WAYLAND_DISPLAY");
  if ((display == nullptr || *display == '\0') && (wayland == nullptr || *wayland == '\0')) {
    return;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, "/dev/null", O_WRONLY, 0);
  std::string program = "xdg-open";
  char* argv[] = {program.data(), const_cast<char*>(url.c_str()), nullptr};
  pid_t pid = 0;
  if (posix_spawnp(&pid, "xdg-open", &actions, nullptr, argv, environ) == 0) {
    int status = 0;
    ::waitpid(pid, &status, 0);
  }
  posix_spawn_file_actions_destroy(&actions);
}

// Option values live here: CLI11 runs the callbacks after AddAppCommands has returned, and
// only one command runs per invocation, so the commands share one.
struct State {
  std::string app, name, target, deployment, since, access, cursor, cwd;
  int64_t port = 0, memory = 0, sleep_after = -1, lines = 0, limit = 50, exec_timeout = 60000;
  double cpus = 0;
  bool yes = false, purge = false, follow = false, secret = false, build = false;
  std::vector<std::string> env, words, keys;
};

void AddAppsGroup(CLI::App& app, const std::shared_ptr<State>& st,
                  const std::function<Output()>& out, int& code) {
  auto* apps = app.add_subcommand("apps", "apps: long-running services with a URL");
  apps->require_subcommand(1);

  auto* create = apps->add_subcommand("create", "create an app (deploy code to it next)");
  create->add_option("name", st->name, "a-z, 0-9 and -; the app answers at NAME.<domain>")
      ->required();
  create->add_option("--port", st->port, "port the app listens on, given to it as $PORT (3000)");
  create->add_option("--memory", st->memory, "memory limit in MiB (256)");
  create->add_option("--cpus", st->cpus, "CPU cores (1)");
  create->add_option("--env", st->env, "KEY=VALUE for the app (repeatable)")
      ->allow_extra_args(false);  // one pair per --env: NAME after it stays NAME
  create->add_option("--access", st->access, "who may open it: public, workspace or token");
  create->add_option("--sleep-after", st->sleep_after, "minutes without requests before it sleeps");
  create->callback([st, out, &code] {
    json::object body{{"name", st->name}};
    if (st->port > 0) {
      body["port"] = st->port;
    }
    if (st->memory > 0) {
      body["memoryMb"] = st->memory;
    }
    if (st->cpus > 0) {
      body["cpus"] = Number(st->cpus);
    }
    if (!st->access.empty()) {
      body["accessPolicy"] = st->access;
    }
    if (st->sleep_after >= 0) {
      body["sleepAfterMinutes"] = st->sleep_after;
    }
    auto env = Pairs(st->env, "--env");
    if (!env.ok()) {
      ReportError(out(), env.status());
      code = kUsage;
      return;
    }
    if (!env->empty()) {
      body["env"] = std::move(*env);
    }
    json::value v = body;
    code = Run(out(), CallApi(LoadProfile(), "POST", "/v1/apps", &v), [](const json::value& a) {
      std::printf("Created app %s (%s): %s\nDeploy to it: kiln deploy DIR --app %s\n",
                  S(a, "name").c_str(), S(a, "id").c_str(), S(a, "url").c_str(),
                  S(a, "name").c_str());
    });
  });

  auto* list = apps->add_subcommand("list", "list the workspace's apps");
  list->add_option("--limit", st->limit, "rows per page (1-200)");
  list->add_option("--cursor", st->cursor, "next_cursor from a previous page");
  list->callback([st, out, &code] {
    std::string path = "/v1/apps?limit=" + std::to_string(st->limit);
    if (!st->cursor.empty()) {
      path += "&cursor=" + http::PercentEncode(st->cursor);
    }
    code = Run(out(), CallApi(LoadProfile(), "GET", path), [&](const json::value& page) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& a : Items(page)) {
        rows.push_back(AppRow(a));
      }
      PrintTable(out(), kAppHeader, rows);
      if (At(page, "has_more").is_bool() && At(page, "has_more").as_bool()) {
        std::printf("more: kiln apps list --cursor %s\n", S(page, "next_cursor").c_str());
      }
    });
  });

  auto* info = apps->add_subcommand("info", "show an app: URL, status, release, resources");
  info->alias("get");
  info->add_option("app", st->app, "app name or id")->required();
  info->callback([st, out, &code] {
    code = Run(out(), CallApi(LoadProfile(), "GET", AppPath(st->app)), PrintApp);
  });

  auto* del = apps->add_subcommand("delete", "delete an app, its releases and deployments");
  del->add_option("app", st->app, "app name or id")->required();
  del->add_flag("-y,--yes", st->yes, "do not ask for the name to confirm");
  del->add_flag("--purge", st->purge, "also delete its /data volume");
  del->callback([st, out, &code] {
    bool ask = !st->yes;
    if (ask && !::isatty(STDIN_FILENO)) {
      code = UsageError(out(), "not deleting app " + st->app + " without confirmation",
                        "pass --yes to delete from a script");
      return;
    }
    Profile profile = LoadProfile();
    auto app = CallApi(profile, "GET", AppPath(st->app));
    if (!app.ok()) {
      code = ReportError(out(), app.status());
      return;
    }
    std::string name = S(*app, "name");
    if (ask) {
      std::fprintf(stderr, "This deletes app %s%s. Type its name to confirm: ", name.c_str(),
                   st->purge ? " and its data" : "");
      std::string typed;
      std::getline(std::cin, typed);
      if (typed != name) {
        std::fprintf(stderr, "Not deleted: the name did not match.\n");
        code = kUsage;
        return;
      }
    }
    std::string path = AppPath(name) + "?confirm=" + http::PercentEncode(name);
    if (st->purge) {
      path += "&purge=1";
    }
    code = Run(out(), CallApi(profile, "DELETE", path), [&](const json::value&) {
      std::printf("Deleted app %s%s.\n", name.c_str(), st->purge ? " and its data" : "");
    });
  });

  for (auto [verb, what] : {std::pair{"start", "start a stopped app"},
                            std::pair{"stop", "stop an app (it stays stopped until started)"},
                            std::pair{"restart", "restart an app's process on its release"},
                            std::pair{"sleep", "put an app to sleep (a request wakes it)"},
                            std::pair{"wake", "wake a sleeping app"}}) {
    auto* cmd = apps->add_subcommand(verb, what);
    cmd->add_option("app", st->app, "app name or id")->required();
    std::string v = verb;
    cmd->callback([st, out, &code, v] {
      code = Run(out(), CallApi(LoadProfile(), "POST", AppPath(st->app) + "/" + v),
                 [](const json::value& a) {
                   std::printf("%s %s\n", S(a, "name").c_str(), S(a, "status").c_str());
                 });
    });
  }

  auto* resize = apps->add_subcommand("resize", "change an app's memory and CPU limits");
  resize->add_option("app", st->app, "app name or id")->required();
  resize->add_option("--memory", st->memory, "memory limit in MiB");
  resize->add_option("--cpus", st->cpus, "CPU cores");
  resize->callback([st, out, &code] {
    json::object body;
    if (st->memory > 0) {
      body["memoryMb"] = st->memory;
    }
    if (st->cpus > 0) {
      body["cpus"] = Number(st->cpus);
    }
    if (body.empty()) {
      code = UsageError(out(), "nothing to change", "kiln apps resize APP --memory 512 --cpus 2");
      return;
    }
    json::value v = body;
    code = Run(out(), CallApi(LoadProfile(), "PATCH", AppPath(st->app) + "/resources", &v),
               [&](const json::value& a) {
                 const json::value& r = At(a, "resources");
                 std::printf("%s: %s MiB memory, %s CPU\n", st->app.c_str(),
                             NumStr(At(r.is_object() ? r : a, "memoryMb")).c_str(),
                             NumStr(At(r.is_object() ? r : a, "cpus")).c_str());
               });
  });
}

void AddEnvGroup(CLI::App& app, const std::shared_ptr<State>& st,
                 const std::function<Output()>& out, int& code) {
  auto* env = app.add_subcommand("env", "an app's environment variables");
  env->require_subcommand(1);

  auto* set =
      env->add_subcommand("set", "set variables (they apply on the next deploy or restart)");
  set->add_option("app", st->app, "app name or id")->required();
  set->add_option("vars", st->keys, "KEY=VALUE ...")->required();
  set->add_flag("--secret", st->secret, "never show the values again");
  set->add_flag("--build", st->build, "also give them to install and build");
  set->callback([st, out, &code] {
    auto vars = Pairs(st->keys, "kiln env set APP");
    if (!vars.ok()) {
      ReportError(out(), vars.status());
      code = kUsage;
      return;
    }
    json::array keys;
    for (const auto& [k, v] : *vars) {
      keys.emplace_back(k);
    }
    json::object body{{"vars", *vars}};
    if (st->secret) {
      body["secret"] = keys;
    }
    if (st->build) {
      body["build"] = keys;
    }
    json::value v = body;
    code = Run(out(), CallApi(LoadProfile(), "PUT", AppPath(st->app) + "/env", &v),
               [&](const json::value& r) {
                 std::printf("Set %s on %s.\n", Str(keys).c_str(), st->app.c_str());
                 if (At(r, "note").is_string()) {
                   std::printf("%s\n", S(r, "note").c_str());
                 }
               });
  });

  auto* unset = env->add_subcommand("unset", "remove variables");
  unset->add_option("app", st->app, "app name or id")->required();
  unset->add_option("keys", st->keys, "KEY ...")->required();
  unset->callback([st, out, &code] {
    Profile profile = LoadProfile();
    for (const auto& key : st->keys) {
      code = Run(out(),
                 CallApi(profile, "DELETE", AppPath(st->app) + "/env/" + http::PercentEncode(key)),
                 [&](const json::value& r) {
                   std::printf("Removed %s from %s.\n", key.c_str(), st->app.c_str());
                   if (At(r, "note").is_string()) {
                     std::printf("%s\n", S(r, "note").c_str());
                   }
                 });
      if (code != kOk) {
        return;
      }
    }
  });

  auto* list = env->add_subcommand("list", "list variables (secret values are not shown)");
  list->add_option("app", st->app, "app name or id")->required();
  list->callback([st, out, &code] {
    code = Run(
        out(), CallApi(LoadProfile(), "GET", AppPath(st->app) + "/env"), [&](const json::value& v) {
          // The server answers {"vars": [...]}; a bare array is taken too.
          const json::value& vars = At(v, "vars");
          std::vector<std::vector<std::string>> rows;
          for (const auto& e : Items(vars.is_array() ? vars : v)) {
            bool secret = At(e, "secret").is_bool() && At(e, "secret").as_bool();
            bool build = At(e, "build").is_bool() && At(e, "build").as_bool();
            rows.push_back(
                {S(e, "key"), secret ? "(secret)" : S(e, "value"), build ? "build+run" : "run"});
          }
          PrintTable(out(), {"KEY", "VALUE", "USED BY"}, rows);
        });
  });
}

}  // namespace

void AddAppCommands(CLI::App& app, const bool& json_flag, int& code) {
  std::function<Output()> out = [&json_flag] { return DetectOutput(json_flag); };
  auto st = std::make_shared<State>();

  AddAppsGroup(app, st, out, code);

  AddDeployCommand(app, json_flag, code);

  auto* logs = app.add_subcommand("logs", "an app's output, or a deployment's build log");
  logs->add_option("app", st->app, "app name or id");
  logs->add_option("--deployment", st->deployment, "a deployment's build log instead (dep_…)");
  logs->add_flag("-f,--follow", st->follow, "keep printing as lines come (Ctrl-C stops)");
  logs->add_option("--lines", st->lines, "how many recent lines (default 200)");
  logs->add_option("--since", st->since, "from this time on: RFC 3339, or 30s, 10m, 2h, 1d ago");
  logs->callback([st, out, &code] {
    if (!st->deployment.empty()) {
      code = DeploymentLogs(out(), st->deployment, st->follow);
    } else if (st->app.empty()) {
      code = UsageError(out(), "which app's logs?",
                        "kiln logs APP, or kiln logs --deployment DEP for a build log");
    } else {
      code = AppLogs(out(), st->app, st->follow, st->lines, st->since);
    }
  });

  auto* exec = app.add_subcommand(
      "exec", "run a command in an app or a sandbox (sbx_…) and stream its output");
  exec->add_option("target", st->target, "app name or id, or a sandbox id (sbx_…)")->required();
  exec->add_option("command", st->words, "the command, after --")->required();
  exec->add_option("--cwd", st->cwd, "working directory");
  exec->add_option("--env", st->env, "KEY=VALUE (repeatable)")->allow_extra_args(false);
  exec->add_option("--timeout-ms", st->exec_timeout, "kill it after this long (default 60000)");
  exec->callback([st, out, &code] {
    std::string target = st->target.starts_with("sbx_")
                             ? "/v1/sandboxes/" + http::PercentEncode(st->target)
                             : AppPath(st->target);
    code = ExecCommand(out(), target, st->words, st->cwd, st->env, st->exec_timeout);
  });

  AddEnvGroup(app, st, out, code);

  AddRollbackCommand(app, json_flag, code);

  auto* open = app.add_subcommand("open", "print an app's URL and open it in the browser");
  open->add_option("app", st->app, "app name or id")->required();
  open->callback([st, out, &code] {
    auto a = CallApi(LoadProfile(), "GET", AppPath(st->app));
    code = Run(out(), a, [](const json::value& v) { std::printf("%s\n", S(v, "url").c_str()); });
    if (a.ok() && At(*a, "url").is_string()) {
      std::fflush(stdout);
      OpenInBrowser(S(*a, "url"));
    }
  });

  AddDeploymentsCommands(app, json_flag, code);
}

}  // namespace kiln::cli
