// `kiln deploy`, `kiln rollback`, `kiln deployments …` and the build log of
// `kiln logs --deployment`. `kiln deploy DIR` packs the directory (pack.cc), uploads it,
// follows the build step by step and exits 0 only when the new release is live, so it can
// gate a script.
#include <signal.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <random>

#include "cli/internal.h"

namespace kiln::cli {
namespace {

using namespace std::chrono_literals;

constexpr std::chrono::milliseconds kUploadTimeout = 10min;

// Milliseconds as "1.2 s".
std::string Duration(const json::value& ms) {
  if (!ms.is_number()) {
    return "";
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f s", Num(ms) / 1000);
  return buf;
}

std::string DeploymentPath(const std::string& id) {
  return "/v1/deployments/" + http::PercentEncode(id);
}

bool Finished(const std::string& status) {
  return status == "live" || status == "failed" || status == "cancelled" || status == "superseded";
}

std::string ReleaseId(const json::value& d) {
  const json::value& rel = At(d, "release");
  return rel.is_object() ? S(rel, "id") : Str(rel);
}

std::string SourceText(const json::value& d) {
  const json::value& src = At(d, "source");
  if (!src.is_object()) {
    return Str(src);
  }
  std::string text = S(src, "type");
  for (const auto& [k, v] : src.as_object()) {
    if (k != "type" && !v.is_null()) {
      text += " " + std::string(k) + "=" + (v.is_number() ? NumStr(v) : Str(v));
    }
  }
  return text;
}

void PrintDeployment(const Output& out, const json::value& d) {
  auto line = [](const char* label, const std::string& value) {
    std::printf("%-9s %s\n", label, value.c_str());
  };
  line("id", S(d, "id") + " (" + S(d, "kind") + ")");
  line("app", S(d, "appName") + " (" + S(d, "app") + ")");
  line("status", S(d, "status"));
  line("source", SourceText(d));
  line("release", ReleaseId(d));
  line("url", S(d, "url"));
  line("created", S(d, "createdAt"));
  line("finished", S(d, "finishedAt"));
  std::vector<std::vector<std::string>> rows;
  for (const auto& step : Items(At(d, "steps"))) {
    const json::value& err = At(step, "error");
    rows.push_back({S(step, "name"), S(step, "status"), Duration(At(step, "durationMs")),
                    err.is_null() ? "" : (err.is_object() ? S(err, "message") : Str(err))});
  }
  if (!rows.empty()) {
    std::printf("\n");
    PrintTable(out, {"STEP", "STATUS", "TIME", "ERROR"}, rows);
  }
  const json::value& err = At(d, "error");
  if (err.is_object()) {
    std::printf("\nerror at %s: %s (%s)\n", S(err, "step").c_str(), S(err, "message").c_str(),
                S(err, "code").c_str());
    if (At(err, "hint").is_string()) {
      std::printf("hint: %s\n", S(err, "hint").c_str());
    }
  }
}

// How a followed (or fetched) deployment ended, as the exit code: 0 live, 1 anything else,
// with the failed step, code, message and hint on stderr.
int ReportDeployment(const Output& out, const json::value& d) {
  std::string status = S(d, "status");
  if (out.json) {
    PrintJson(d);
    return status == "live" ? kOk : kApiError;
  }
  if (status == "live") {
    std::printf("==> %s is live at %s (release %s)\n", S(d, "appName").c_str(),
                Bold(out, S(d, "url")).c_str(), ReleaseId(d).c_str());
    std::fflush(stdout);
    return kOk;
  }
  std::fflush(stdout);
  std::string message = "deployment " + S(d, "id") + " " + status;
  const json::value& err = At(d, "error");
  if (err.is_object()) {
    if (At(err, "step").is_string()) {
      message += " at step " + S(err, "step");
    }
    message += ": " + S(err, "message");
    return ReportError(
        out, Status::InvalidArgument(S(err, "code"), message, GetString(err.as_object(), "hint")));
  }
  std::string hint = status == "superseded"  ? "a newer deployment of the app took its place"
                     : status == "cancelled" ? "deploy again with kiln deploy"
                                             : "";
  return ReportError(out, Status::InvalidArgument("DEPLOYMENT_" + status, message, hint));
}

// While a deployment is followed, Ctrl-C stops following and nothing else: the deployment
// goes on on the server. The handler may only make async-signal-safe calls, so its message
// is written out beforehand.
char g_interrupt_message[512];
size_t g_interrupt_length = 0;

extern "C" void StopFollowing(int) {
  ssize_t n = ::write(STDERR_FILENO, g_interrupt_message, g_interrupt_length);
  (void)n;
  ::_exit(130);
}

class InterruptNotice {
 public:
  explicit InterruptNotice(const std::string& deployment_id) {
    int n = std::snprintf(g_interrupt_message, sizeof(g_interrupt_message),
                          "\nStopped following; the deployment goes on.\n"
                          "Follow it again: kiln logs --deployment %s -f\n",
                          deployment_id.c_str());
    g_interrupt_length =
        static_cast<size_t>(std::clamp(n, 0, static_cast<int>(sizeof(g_interrupt_message)) - 1));
    struct sigaction sa {};
    sa.sa_handler = StopFollowing;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGINT, &sa, &old_);
  }
  ~InterruptNotice() { ::sigaction(SIGINT, &old_, nullptr); }
  InterruptNotice(const InterruptNotice&) = delete;
  InterruptNotice& operator=(const InterruptNotice&) = delete;

 private:
  struct sigaction old_ {};
};

void PrintStep(const Output& out, const json::value& step) {
  std::string name = S(step, "name"), status = S(step, "status");
  if (status == "running") {
    std::printf("==> %s\n", Bold(out, name).c_str());
  } else if (status != "pending") {
    std::string shown = status;
    if (out.color) {
      shown = (status == "ok"       ? "\033[32m"
               : status == "failed" ? "\033[31m"
                                    : "\033[2m") +
              status + "\033[0m";
    }
    std::string time = Duration(At(step, "durationMs"));
    std::printf("==> %s%s %s\n", name.c_str(), time.empty() ? "" : (" (" + time + ")").c_str(),
                shown.c_str());
  }
  std::fflush(stdout);
}

// Prints a deployment's steps and build log as they happen until it ends; answers as
// ReportDeployment. With --json only the final deployment is printed.
int FollowDeployment(const Output& out, const std::string& id) {
  ApiCall call;
  call.path = DeploymentPath(id) + "/logs?follow=1";
  call.accept = "text/event-stream";
  call.timeout = kFollowTimeout;
  json::value final_deployment;
  std::optional<Status> stream_error;
  call.on_event = [&](const std::string& event, const json::value& raw) {
    const json::value& data = Unwrap(raw);
    if (event == "end") {
      final_deployment = data;
      return false;
    }
    if (event == "error") {
      stream_error = StreamError(raw);
      return false;
    }
    if (!out.json && event == "step") {
      PrintStep(out, data);
    } else if (!out.json && event == "log") {
      PrintLogLine("    ", S(data, "line"));
    }
    return true;
  };
  auto notice = std::make_unique<InterruptNotice>(id);
  auto res = Send(LoadProfile(), call);
  notice.reset();
  if (!res.ok()) {
    return ReportError(out, res.status());
  }
  if (stream_error) {
    return ReportError(out, *stream_error);
  }
  if (final_deployment.is_null()) {
    // The stream closed without its `end` event (a server restart, a proxy): ask.
    auto d = CallApi(LoadProfile(), "GET", DeploymentPath(id));
    if (!d.ok()) {
      return ReportError(out, d.status());
    }
    if (!Finished(S(*d, "status"))) {
      return ReportError(
          out, Status::Unavailable(
                   "STREAM_ENDED",
                   "the log stream ended while deployment " + id + " is " + S(*d, "status"),
                   "follow it again: kiln logs --deployment " + id + " -f"));
    }
    final_deployment = std::move(*d);
  }
  return ReportDeployment(out, final_deployment);
}

// ---- deploy ----

struct DeployOptions {
  std::string dir, app, start, build, install, pre_start, health_path, git, ref, url, starter;
  int64_t port = 0;
  std::vector<std::string> env;
  bool no_follow = false;
};

std::string RandomBoundary() {
  std::random_device rd;
  std::string b = "kiln-";
  const char* hex = "0123456789abcdef";
  for (int i = 0; i < 32; ++i) {
    b += hex[rd() % 16];
  }
  return b;
}

// The multipart/form-data body of an upload: the archive as `source`, the overrides (when
// any) as `config`.
std::string MultipartBody(const std::string& boundary, const std::string& archive,
                          const json::object& config) {
  std::string body = "--" + boundary +
                     "\r\nContent-Disposition: form-data; name=\"source\"; "
                     "filename=\"app.tar.gz\"\r\nContent-Type: application/gzip\r\n\r\n";
  body += archive;
  if (!config.empty()) {
    body += "\r\n--" + boundary +
            "\r\nContent-Disposition: form-data; name=\"config\"\r\n"
            "Content-Type: application/json\r\n\r\n" +
            json::serialize(config);
  }
  body += "\r\n--" + boundary + "--\r\n";
  return body;
}

// Makes sure app `name` exists: creates it (with `port` when set) on APP_NOT_FOUND.
Status EnsureApp(const Output& out, const std::string& name, int64_t port) {
  Profile profile = LoadProfile();
  auto app = CallApi(profile, "GET", AppPath(name));
  if (app.ok()) {
    return Status::Ok();
  }
  const std::string& code = app.status().error_code();
  if (code != "APP_NOT_FOUND" && code != "NOT_FOUND") {
    return app.status();
  }
  json::object body{{"name", name}};
  if (port > 0) {
    body["port"] = port;
  }
  json::value v = body;
  auto created = CallApi(profile, "POST", "/v1/apps", &v);
  if (!created.ok()) {
    return created.status();
  }
  if (!out.json) {
    std::printf("Created app %s\n", name.c_str());
  }
  return Status::Ok();
}

int Deploy(const Output& out, const DeployOptions& o) {
  int remote = !o.git.empty() + !o.url.empty() + !o.starter.empty();
  if (remote > 1 || (remote == 1 && !o.dir.empty())) {
    return UsageError(out, "give one source: a DIR, --git, --url or --template",
                      "kiln deploy ./myapp, or kiln deploy --git REPO --app NAME");
  }
  if (!o.ref.empty() && o.git.empty()) {
    return UsageError(out, "--ref goes with --git", "kiln deploy --git REPO --ref main");
  }
  json::object config;
  for (auto [field, value] : {std::pair{"install", &o.install}, std::pair{"build", &o.build},
                              std::pair{"preStart", &o.pre_start}, std::pair{"start", &o.start},
                              std::pair{"healthCheckPath", &o.health_path}}) {
    if (!value->empty()) {
      config[field] = *value;
    }
  }
  if (o.port > 0) {
    config["port"] = o.port;
  }
  auto env = Pairs(o.env, "--env");
  if (!env.ok()) {
    ReportError(out, env.status());
    return kUsage;
  }
  if (!env->empty()) {
    config["env"] = std::move(*env);
  }

  std::string name = o.app;
  if (name.empty() && !o.url.empty()) {
    return UsageError(out, "--url needs --app NAME", "kiln deploy --url URL --app myapp");
  }
  if (name.empty() && !o.git.empty()) {
    std::string repo = o.git;
    while (!repo.empty() && repo.back() == '/') {
      repo.pop_back();
    }
    repo = repo.substr(repo.find_last_of("/:") + 1);
    if (repo.ends_with(".git")) {
      repo.resize(repo.size() - 4);
    }
    name = AppNameFromDir(repo);
  } else if (name.empty() && !o.starter.empty()) {
    name = AppNameFromDir(o.starter);
  } else if (name.empty()) {
    name = AppNameFromDir(o.dir.empty() ? "." : o.dir);
  }

  ApiCall call;
  call.method = "POST";
  call.path = AppPath(name) + "/deployments";
  call.timeout = kUploadTimeout;
  std::string what;
  if (remote == 0) {
    std::string dir = o.dir.empty() ? "." : o.dir;
    auto pack = PackDirectory(dir);
    if (!pack.ok()) {
      return ReportError(out, pack.status());
    }
    for (const auto& w : pack->warnings) {
      std::fprintf(stderr, "warning: %s\n", w.c_str());
    }
    std::string boundary = RandomBoundary();
    while (pack->archive.find(boundary) != std::string::npos) {
      boundary = RandomBoundary();
    }
    call.content_type = "multipart/form-data; boundary=" + boundary;
    call.body = MultipartBody(boundary, pack->archive, config);
    what = dir + " (" + std::to_string(pack->files) + " files, " + HumanBytes(pack->bytes) + ", " +
           HumanBytes(static_cast<int64_t>(pack->archive.size())) + " packed)";
  } else {
    json::object source;
    if (!o.git.empty()) {
      json::object git{{"repo", o.git}};
      if (!o.ref.empty()) {
        git["ref"] = o.ref;
      }
      source["git"] = std::move(git);
      what = o.git + (o.ref.empty() ? "" : "@" + o.ref);
    } else if (!o.url.empty()) {
      source["url"] = o.url;
      what = o.url;
    } else {
      source["template"] = o.starter;
      what = "template " + o.starter;
    }
    config["source"] = std::move(source);
    call.body = json::serialize(config);
  }

  if (Status s = EnsureApp(out, name, o.port); !s.ok()) {
    return ReportError(out, s);
  }
  auto res = Send(LoadProfile(), call);
  if (!res.ok()) {
    return ReportError(out, res.status());
  }
  auto parsed = ParseJson(res->body);
  if (!parsed.ok()) {
    return ReportError(out, parsed.status());
  }
  json::value deployment = Unwrap(*parsed);
  std::string id = S(deployment, "id");
  if (!out.json) {
    std::printf("==> deploying %s from %s as %s\n", Bold(out, name).c_str(), what.c_str(),
                id.c_str());
    std::fflush(stdout);
  }
  if (o.no_follow) {
    if (out.json) {
      PrintJson(deployment);
    } else {
      std::printf("Follow it: kiln logs --deployment %s -f\n", id.c_str());
    }
    return kOk;
  }
  return FollowDeployment(out, id);
}

}  // namespace

int DeploymentLogs(const Output& out, const std::string& id, bool follow) {
  if (follow) {
    return FollowDeployment(out, id);
  }
  return Run(out, CallApi(LoadProfile(), "GET", DeploymentPath(id) + "/logs"),
             [](const json::value& v) {
               std::string step;
               for (const auto& l : Items(At(v, "lines"))) {
                 if (S(l, "step") != step) {
                   step = S(l, "step");
                   std::printf("==> %s\n", step.c_str());
                 }
                 PrintLogLine("    ", S(l, "line"));
               }
               std::printf("==> deployment %s\n", S(v, "status").c_str());
             });
}

void AddDeployCommand(CLI::App& app, const bool& json_flag, int& code) {
  auto* deploy = app.add_subcommand(
      "deploy", "deploy a directory (or --git, --url, --template) and follow the build");
  // Option values live here: CLI11 runs the callback after this function has returned.
  auto d = std::make_shared<DeployOptions>();
  deploy->add_option("dir", d->dir, "the app's directory (default: the current one)");
  deploy->add_option("--app", d->app, "app name, created if missing (default: DIR's name)");
  deploy->add_option("--start", d->start, "command that starts the app (default: detected)");
  deploy->add_option("--build", d->build, "build command, run after install");
  deploy->add_option("--install", d->install, "command that installs dependencies");
  deploy->add_option("--pre-start", d->pre_start, "command run before every start");
  deploy->add_option("--port", d->port, "port the app listens on ($PORT)");
  deploy->add_option("--health-path", d->health_path, "path that must answer before going live");
  deploy->add_option("--env", d->env, "KEY=VALUE for this deployment's build (repeatable)")
      ->allow_extra_args(false);  // one pair per --env, so a DIR after it stays a DIR
  deploy->add_option("--git", d->git, "deploy a git repository instead of a directory");
  deploy->add_option("--ref", d->ref, "branch, tag or commit of --git");
  deploy->add_option("--url", d->url, "deploy a tar.gz from this URL");
  deploy->add_option("--template", d->starter, "deploy a starter: node, python, static, ...");
  deploy->add_flag("--no-follow", d->no_follow, "print the deployment's id and return");
  deploy->callback([d, &json_flag, &code] { code = Deploy(DetectOutput(json_flag), *d); });
}

void AddRollbackCommand(CLI::App& app, const bool& json_flag, int& code) {
  struct Options {
    std::string app, deployment;
  };
  auto st = std::make_shared<Options>();
  auto* rollback = app.add_subcommand(
      "rollback", "put an earlier release back live (default: the previous one)");
  rollback->add_option("app", st->app, "app name or id")->required();
  rollback->add_option("deployment", st->deployment, "the deployment whose release to restore");
  rollback->callback([st, &json_flag, &code] {
    json::object body;
    if (!st->deployment.empty()) {
      body["deploymentId"] = st->deployment;
    }
    json::value v = body;
    code = Run(DetectOutput(json_flag),
               CallApi(LoadProfile(), "POST", AppPath(st->app) + "/rollback", &v),
               [&](const json::value& d) {
                 std::printf("Rolled back %s: release %s is %s at %s (%s)\n", st->app.c_str(),
                             ReleaseId(d).c_str(), S(d, "status").c_str(), S(d, "url").c_str(),
                             S(d, "id").c_str());
               });
  });
}

void AddDeploymentsCommands(CLI::App& app, const bool& json_flag, int& code) {
  struct Options {
    std::string app, deployment, cursor;
    int64_t limit = 50;
  };
  auto st = std::make_shared<Options>();
  std::function<Output()> out = [&json_flag] { return DetectOutput(json_flag); };
  auto* deps = app.add_subcommand("deployments", "an app's deployments and their steps");
  deps->require_subcommand(1);

  auto* list = deps->add_subcommand("list", "list an app's deployments, newest first");
  list->add_option("app", st->app, "app name or id")->required();
  list->add_option("--limit", st->limit, "rows per page (1-200)");
  list->add_option("--cursor", st->cursor, "next_cursor from a previous page");
  list->callback([st, out, &code] {
    std::string path = AppPath(st->app) + "/deployments?limit=" + std::to_string(st->limit);
    if (!st->cursor.empty()) {
      path += "&cursor=" + http::PercentEncode(st->cursor);
    }
    code = Run(out(), CallApi(LoadProfile(), "GET", path), [&](const json::value& page) {
      std::vector<std::vector<std::string>> rows;
      for (const auto& d : Items(page)) {
        rows.push_back({S(d, "id"), S(d, "kind"), S(d, "status"), SourceText(d), ReleaseId(d),
                        ShortTime(S(d, "createdAt"))});
      }
      PrintTable(out(), {"ID", "KIND", "STATUS", "SOURCE", "RELEASE", "CREATED"}, rows);
      if (At(page, "has_more").is_bool() && At(page, "has_more").as_bool()) {
        std::printf("more: kiln deployments list %s --cursor %s\n", st->app.c_str(),
                    S(page, "next_cursor").c_str());
      }
    });
  });

  auto* get = deps->add_subcommand("get", "show a deployment and its steps");
  get->add_option("deployment", st->deployment, "dep_…")->required();
  get->callback([st, out, &code] {
    code = Run(out(), CallApi(LoadProfile(), "GET", DeploymentPath(st->deployment)),
               [&](const json::value& d) { PrintDeployment(out(), d); });
  });

  auto* cancel = deps->add_subcommand("cancel", "stop a deployment in progress");
  cancel->add_option("deployment", st->deployment, "dep_…")->required();
  cancel->callback([st, out, &code] {
    code = Run(out(), CallApi(LoadProfile(), "POST", DeploymentPath(st->deployment) + "/cancel"),
               [](const json::value& d) {
                 std::printf("%s %s\n", S(d, "id").c_str(), S(d, "status").c_str());
               });
  });
}

}  // namespace kiln::cli
