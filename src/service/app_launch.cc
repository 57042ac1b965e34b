// Apps: starting a release on an instance (volumes, environment, health check) and the
// release garbage collection (apps.h).
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <thread>

#include "core/process.h"
#include "service/apps.h"
#include "service/operations.h"

namespace kiln::service {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

constexpr int64_t kMiB = 1 << 20;

// Whether something is mounted at `path`: it sits on another device than its parent. Two
// stats instead of reading /proc/self/mountinfo, which is asked on every apps.get (the
// volume's usage) and is long on a machine with many instances.
bool IsMountPoint(const std::string& path) {
  struct stat self {};
  struct stat parent {};
  if (::stat(path.c_str(), &self) != 0 || !S_ISDIR(self.st_mode) ||
      ::stat((path + "/..").c_str(), &parent) != 0) {
    return false;
  }
  return self.st_dev != parent.st_dev || self.st_ino == parent.st_ino;
}

}  // namespace

int64_t ParseLogRecord(std::string_view line, std::string_view* rest, char* stream) {
  size_t sp = line.find(' ');
  if (sp == std::string_view::npos || sp == 0) {
    return -1;
  }
  int64_t ms = 0;
  for (char c : line.substr(0, sp)) {
    if (c < '0' || c > '9') {
      return -1;
    }
    ms = ms * 10 + (c - '0');
  }
  if (sp + 2 > line.size()) {
    return -1;
  }
  *stream = line[sp + 1];
  *rest = sp + 3 <= line.size() ? line.substr(sp + 3) : std::string_view();
  return ms;
}

// ---- Volumes ----

Result<std::string> AppManager::EnsureVolume(const store::App& app) {
  std::string dir = VolumeDir(app);
  if (IsMountPoint(dir)) {
    return dir;
  }
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) {
    return Status::Internal("cannot create " + dir + ": " + ec.message());
  }
  std::string image = dir + ".img";
  if (!fs::exists(image)) {
    if (!fs::is_empty(dir, ec)) {
      return dir;  // a plain directory volume from a host without loop devices
    }
    std::string tmp = image + ".tmp";
    auto made = RunProcess({"truncate", "-s", std::to_string(app.data_quota_mb) + "M", tmp}, 10s);
    if (made.ok() && made->exit_code == 0) {
      made = RunProcess(
          {"mkfs.ext4", "-q", "-F", "-m", "0", "-E", "nodiscard", "-L", "kiln-data", tmp}, 60s, {},
          "e2fsprogs");
    }
    if (!made.ok() || made->exit_code != 0) {
      fs::remove(tmp, ec);
      log::Warn(
          "app volume without a quota: cannot make an ext4 image",
          {{"app", app.name}, {"error", made.ok() ? made->LastLine() : made.status().ToString()}});
      return dir;
    }
    fs::rename(tmp, image, ec);
  }
  auto mounted = RunProcess({"mount", "-o", "loop,nodev,nosuid", image, dir}, 30s);
  if (!mounted.ok() || mounted->exit_code != 0) {
    log::Warn("app volume without a quota: cannot loop-mount its image",
              {{"app", app.name},
               {"error", mounted.ok() ? mounted->LastLine() : mounted.status().ToString()}});
    return dir;
  }
  // A fresh file system has lost+found; apps expect an empty /data.
  fs::remove(dir + "/lost+found", ec);
  return dir;
}

void AppManager::UnmountVolume(const store::App& app, bool purge) {
  std::string dir = VolumeDir(app);
  if (IsMountPoint(dir)) {
    auto r = RunProcess({"umount", dir}, 30s);
    if (!r.ok() || r->exit_code != 0) {
      (void)RunProcess({"umount", "-l", dir}, 30s);
    }
  }
  if (purge) {
    std::error_code ec;
    fs::remove_all(dir, ec);
    fs::remove(dir + ".img", ec);
  }
}

void AppManager::VolumeUsage(const store::App& app, int64_t* used, int64_t* quota) {
  std::string dir = VolumeDir(app);
  struct statvfs st {};
  if (IsMountPoint(dir) && ::statvfs(dir.c_str(), &st) == 0) {
    *quota = static_cast<int64_t>(st.f_blocks) * static_cast<int64_t>(st.f_frsize);
    *used = static_cast<int64_t>(st.f_blocks - st.f_bfree) * static_cast<int64_t>(st.f_frsize);
    return;
  }
  std::error_code ec;
  *used = fs::exists(dir, ec) ? DirectorySize(dir) : 0;
}

// ---- Launching ----

Result<std::vector<std::string>> AppManager::RuntimeEnvOf(const store::App& app,
                                                          const BuildPlan& plan, int64_t port) {
  std::vector<std::string> env = RuntimeEnv(plan);
  KILN_ASSIGN_OR_RETURN(std::vector<store::EnvVar> vars, deps_.store.ListEnv(app.id));
  for (const store::EnvVar& v : vars) {
    KILN_ASSIGN_OR_RETURN(std::string value,
                          deps_.box.Open(v.value_sealed, "env:" + app.id + ":" + v.key));
    env.push_back(v.key + "=" + value);
  }
  env.push_back("PORT=" + std::to_string(port));
  env.push_back("KILN_APP=" + app.name);
  env.push_back("HOME=/root");
  return env;
}

namespace {

// The last lines of an instance's main log, for saying why an app died.
std::string LogTail(const std::string& log_dir, size_t max_lines) {
  std::ifstream in(log_dir + "/main.log");
  std::vector<std::string> lines;
  std::string line;
  while (std::getline(in, line)) {
    std::string_view rest;
    char stream = 0;
    if (ParseLogRecord(line, &rest, &stream) >= 0) {
      lines.emplace_back(rest);
      if (lines.size() > max_lines) {
        lines.erase(lines.begin());
      }
    }
  }
  std::string out;
  for (const auto& l : lines) {
    out += (out.empty() ? "" : "\n") + l;
  }
  return out;
}

}  // namespace

bool MainExited(const std::string& log_dir, std::string* how) {
  for (const char* name : {"/main.log"}) {
    std::ifstream in(log_dir + name, std::ios::ate | std::ios::binary);
    if (!in) {
      continue;
    }
    auto size = static_cast<int64_t>(in.tellg());
    int64_t from = std::max<int64_t>(0, size - 4096);
    in.seekg(from);
    std::string tail(static_cast<size_t>(size - from), '\0');
    in.read(tail.data(), static_cast<std::streamsize>(tail.size()));
    size_t pos = tail.rfind(" x ");
    if (pos != std::string::npos) {
      size_t line_start = tail.rfind('\n', pos);
      line_start = line_start == std::string::npos ? 0 : line_start + 1;
      // Only a record's stream field: digits, then " x ".
      std::string_view stamp(tail.data() + line_start, pos - line_start);
      if (!stamp.empty() && stamp.find_first_not_of("0123456789") == std::string_view::npos) {
        size_t end = tail.find('\n', pos);
        *how = tail.substr(pos + 3, end == std::string::npos ? std::string::npos : end - pos - 3);
        return true;
      }
    }
  }
  return false;
}

namespace {

// One HTTP GET through `fd`; the status code, or 0 when no status line came back in time.
int HttpProbe(int fd, const std::string& path, int timeout_ms) {
  timeval tv{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  std::string request = "GET " + path +
                        " HTTP/1.1\r\nHost: localhost\r\nUser-Agent: kiln-health-check\r\n"
                        "Connection: close\r\n\r\n";
  if (::send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return 0;
  }
  std::string head;
  char buf[512];
  while (head.find("\r\n") == std::string::npos && head.size() < 4096) {
    ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      break;
    }
    head.append(buf, static_cast<size_t>(n));
  }
  // "HTTP/1.1 200 OK"
  if (head.size() < 12 || !head.starts_with("HTTP/1.")) {
    return 0;
  }
  return std::atoi(head.c_str() + 9);
}

}  // namespace

Result<AppManager::Launched> AppManager::Launch(
    const store::App& app, const store::Release& release, const std::atomic<bool>* cancelled,
    const std::function<void(const std::string&)>& log) {
  KILN_RETURN_IF_ERROR(Available());
  KILN_ASSIGN_OR_RETURN(json::value plan_json, ParseJson(release.plan));
  const json::object& pj = plan_json.as_object();
  BuildPlan plan;
  plan.runtime = GetString(pj, "runtime");
  plan.start = GetString(pj, "start");
  plan.pre_start = GetString(pj, "preStart");
  int64_t port = GetInt(pj, "port", 0);
  if (port == 0) {
    port = app.port;
  }
  std::string health_path = GetString(pj, "healthCheckPath");
  KILN_ASSIGN_OR_RETURN(std::string volume, EnsureVolume(app));
  KILN_ASSIGN_OR_RETURN(std::vector<std::string> env, RuntimeEnvOf(app, plan, port));

  runtime::InstanceSpec spec;
  spec.id = NewId("ins");
  spec.template_name = "base";
  spec.resources.memory_mb = app.memory_mb;
  spec.resources.cpus = static_cast<double>(app.millicpus) / 1000.0;
  spec.resources.pids = deps_.config.sandboxes.pids;
  spec.env = std::move(env);
  // A plain command is exec'd so that the app is the process kiln-init watches; a shell line
  // with its own sequencing (a; b, a && b) runs as written.
  std::string first = plan.start.substr(0, plan.start.find_first_of(" \t"));
  static const std::set<std::string> kBuiltins = {
      "exit",  "cd", "export", ".",     "source", "set", "eval", "exec",
      "unset", "if", "for",    "while", "case",   "{",   "(",    "trap"};
  bool plain = plan.start.find_first_of(";&|\n") == std::string::npos && !kBuiltins.contains(first);
  std::string start = plain ? "exec " + plan.start : plan.start;
  std::string script =
      plan.pre_start.empty() ? start : "set -e\n" + plan.pre_start + "\nset +e\n" + start;
  spec.main = {"/bin/sh", "-c", script};
  spec.mounts.push_back({ReleaseDir(app.id, release.id), "/app", true});
  spec.mounts.push_back({volume, "/data", false});
  spec.cwd = "/app";
  spec.label = "app:" + app.id;
  auto started_at = std::chrono::steady_clock::now();
  KILN_ASSIGN_OR_RETURN(runtime::InstanceInfo info, deps_.runtime->Start(spec));
  log("instance " + info.id + " started; waiting for port " + std::to_string(port) +
      (health_path.empty() ? "" : " and " + health_path));

  auto fail = [&](Status s) -> Result<Launched> {
    (void)deps_.runtime->Remove(info.id);
    return s;
  };
  std::string netns = deps_.runtime->NetnsPath(info.id);
  std::string log_dir = deps_.runtime->LogDir(info.id);
  auto deadline = started_at + std::chrono::seconds(deps_.config.apps.health_timeout_seconds);
  auto wait = 2ms;
  int last_status = 0;
  while (true) {
    if (cancelled != nullptr && cancelled->load()) {
      return fail(Status::Conflict("DEPLOYMENT_CANCELLED", "the deployment was cancelled"));
    }
    std::string how;
    if (MainExited(log_dir, &how)) {
      std::string tail = Mask(app.id, LogTail(log_dir, 20));
      return fail(Status::Unprocessable("APP_CRASHED",
                                        "the app's process " + how + " before it answered" +
                                            (tail.empty() ? std::string() : ":\n" + tail),
                                        "run its start command (`" + plan.start +
                                            "`) locally, or look at kiln logs " + app.name));
    }
    auto fd = runtime::ConnectInNetns(netns, static_cast<uint16_t>(port), 500ms);
    if (fd.ok()) {
      int status = health_path.empty() ? 200 : HttpProbe(*fd, health_path, 2000);
      ::close(*fd);
      if (status >= 200 && status < 400) {
        auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - started_at)
                      .count();
        log("healthy after " + std::to_string(ms) + " ms" +
            (health_path.empty() ? " (port open)"
                                 : " (GET " + health_path + " → " + std::to_string(status) + ")"));
        return Launched{info.id, port};
      }
      last_status = status;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      if (last_status != 0) {
        return fail(Status::Unprocessable(
            "HEALTH_CHECK_FAILED",
            "GET " + health_path + " answered " + std::to_string(last_status) + " for " +
                std::to_string(deps_.config.apps.health_timeout_seconds) + " s",
            "make " + health_path +
                " answer 2xx when the app is ready, or change "
                "healthCheckPath"));
      }
      std::string tail = Mask(app.id, LogTail(log_dir, 10));
      return fail(Status::Unprocessable(
          "HEALTH_CHECK_TIMEOUT",
          "the app did not answer on port " + std::to_string(port) + " within " +
              std::to_string(deps_.config.apps.health_timeout_seconds) + " s" +
              (tail.empty() ? std::string() : "; its output:\n" + tail),
          "listen on the port in $PORT (" + std::to_string(port) +
              ") on 0.0.0.0 or 127.0.0.1, or set `port` to the one it uses"));
    }
    std::this_thread::sleep_for(wait);
    wait = std::min<std::chrono::milliseconds>(wait * 2, 50ms);
  }
}

void AppManager::CollectReleases(const store::App& app) {
  auto releases = deps_.store.ListReleases(app.id);
  if (!releases.ok()) {
    return;
  }
  int kept = 0;
  for (store::Release& r : *releases) {
    if (r.status != "ready" || r.id == app.release_id) {
      continue;
    }
    if (kept < deps_.config.apps.releases_kept) {
      ++kept;
      continue;
    }
    std::error_code ec;
    fs::remove_all(ReleaseDir(app.id, r.id), ec);
    r.status = "deleted";
    (void)deps_.store.UpdateRelease(r);
  }
}

}  // namespace kiln::service
