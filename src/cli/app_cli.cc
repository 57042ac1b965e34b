// `kiln apps …`, `kiln deploy`, `kiln logs`, `kiln exec`, `kiln env …`, `kiln rollback`,
// `kiln open` and `kiln deployments …`: apps from a terminal. `kiln deploy DIR` packs the
// directory (pack.cc), uploads it, follows the build step by step and exits 0 only when the
// new release is live, so it can gate a script.
#include <fcntl.h>
#include <signal.h>
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
#include <random>

#include "cli/internal.h"

extern char** environ;

namespace kiln::cli {
namespace {

using namespace std::chrono_literals;

// Long enough for any build, and for `kiln logs -f` to run until it is interrupted.
constexpr std::chrono::milliseconds kFollowTimeout = 30 * 24h;
constexpr std::chrono::milliseconds kUploadTimeout = 10min;

// Field reads that tolerate a missing key or a non-object (null), so a field the server
// leaves out prints as "-" instead of failing the command.
const json::value& At(const json::value& v, std::string_view key) {
  static const json::value kNull;
  if (!v.is_object()) {
    return kNull;
  }
  auto it = v.as_object().find(key);
  return it == v.as_object().end() ? kNull : it->value();
}
std::string S(const json::value& v, std::string_view key) { return Str(At(v, key)); }

double Num(const json::value& v) {
  if (v.is_int64()) {
    return static_cast<double>(v.get_int64());
  }
  if (v.is_uint64()) {
    return static_cast<double>(v.get_uint64());
  }
  return v.is_double() ? v.get_double() : 0;
}
// 1 as "1", 0.5 as "0.5" (Str would print a double 1.0 as "1E0").
std::string NumStr(const json::value& v) {
  if (!v.is_number()) {
    return Str(v);
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", Num(v));
  return buf;
}
std::string Bytes(const json::value& v) {
  return v.is_number() ? HumanBytes(static_cast<int64_t>(Num(v))) : "-";
}
// Milliseconds as "1.2 s".
std::string Duration(const json::value& ms) {
  if (!ms.is_number()) {
    return "";
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.1f s", Num(ms) / 1000);
  return buf;
}
// "2026-11-24T04:31:04.123Z" as "2026-11-24 04:31:04" for tables.
std::string ShortTime(std::string t) {
  if (t.size() >= 19 && t[10] == 'T') {
    t[10] = ' ';
    t.resize(19);
  }
  return t;
}

// The rows of a list answer (the list envelope) or of a bare array.
const json::array& Items(const json::value& v) {
  static const json::array kEmpty;
  if (v.is_array()) {
    return v.as_array();
  }
  const json::value& d = At(v, "data");
  return d.is_array() ? d.as_array() : kEmpty;
}

// An event's data, unwrapped should the server put it in the {"data": …} envelope.
const json::value& Unwrap(const json::value& v) {
  const json::value& d = At(v, "data");
  return d.is_object() && !v.as_object().contains("id") ? d : v;
}

std::string AppPath(const std::string& app) { return "/v1/apps/" + http::PercentEncode(app); }
std::string DeploymentPath(const std::string& id) {
  return "/v1/deployments/" + http::PercentEncode(id);
}

int UsageError(const Output& out, const std::string& message, const std::string& hint) {
  ReportError(out, Status::InvalidArgument("USAGE", message, hint));
  return kUsage;
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

// ---- deployments ----

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

void PrintLogLine(const std::string& prefix, std::string line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
    line.pop_back();
  }
  std::printf("%s%s\n", prefix.c_str(), line.c_str());
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
      const json::value& e = At(raw, "error");
      stream_error = Status::InvalidArgument(S(e, "code"), S(e, "message"),
                                             e.is_object() ? GetString(e.as_object(), "hint") : "");
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
      const json::value& e = At(raw, "error");
      stream_error = Status::InvalidArgument(S(e, "code"), S(e, "message"),
                                             e.is_object() ? GetString(e.as_object(), "hint") : "");
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
  DeployOptions deploy;
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

void AddDeploymentsGroup(CLI::App& app, const std::shared_ptr<State>& st,
                         const std::function<Output()>& out, int& code) {
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

}  // namespace

void AddAppCommands(CLI::App& app, const bool& json_flag, int& code) {
  std::function<Output()> out = [&json_flag] { return DetectOutput(json_flag); };
  auto st = std::make_shared<State>();

  AddAppsGroup(app, st, out, code);

  auto* deploy = app.add_subcommand(
      "deploy", "deploy a directory (or --git, --url, --template) and follow the build");
  DeployOptions& d = st->deploy;
  deploy->add_option("dir", d.dir, "the app's directory (default: the current one)");
  deploy->add_option("--app", d.app, "app name, created if missing (default: DIR's name)");
  deploy->add_option("--start", d.start, "command that starts the app (default: detected)");
  deploy->add_option("--build", d.build, "build command, run after install");
  deploy->add_option("--install", d.install, "command that installs dependencies");
  deploy->add_option("--pre-start", d.pre_start, "command run before every start");
  deploy->add_option("--port", d.port, "port the app listens on ($PORT)");
  deploy->add_option("--health-path", d.health_path, "path that must answer before going live");
  deploy->add_option("--env", d.env, "KEY=VALUE for this deployment's build (repeatable)")
      ->allow_extra_args(false);  // one pair per --env, so a DIR after it stays a DIR
  deploy->add_option("--git", d.git, "deploy a git repository instead of a directory");
  deploy->add_option("--ref", d.ref, "branch, tag or commit of --git");
  deploy->add_option("--url", d.url, "deploy a tar.gz from this URL");
  deploy->add_option("--template", d.starter, "deploy a starter: node, python, static, ...");
  deploy->add_flag("--no-follow", d.no_follow, "print the deployment's id and return");
  deploy->callback([st, out, &code] { code = Deploy(out(), st->deploy); });

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

  auto* rollback = app.add_subcommand(
      "rollback", "put an earlier release back live (default: the previous one)");
  rollback->add_option("app", st->app, "app name or id")->required();
  rollback->add_option("deployment", st->deployment, "the deployment whose release to restore");
  rollback->callback([st, out, &code] {
    json::object body;
    if (!st->deployment.empty()) {
      body["deploymentId"] = st->deployment;
    }
    json::value v = body;
    code = Run(out(), CallApi(LoadProfile(), "POST", AppPath(st->app) + "/rollback", &v),
               [&](const json::value& d) {
                 std::printf("Rolled back %s: release %s is %s at %s (%s)\n", st->app.c_str(),
                             ReleaseId(d).c_str(), S(d, "status").c_str(), S(d, "url").c_str(),
                             S(d, "id").c_str());
               });
  });

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

  AddDeploymentsGroup(app, st, out, code);
}

}  // namespace kiln::cli
