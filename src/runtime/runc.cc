#include "runtime/runc.h"

#include <cmath>
#include <fstream>

#include "core/json.h"
#include "core/process.h"

namespace kiln::runtime {
namespace {

using namespace std::chrono_literals;

std::string FirstLine(const std::string& text) { return text.substr(0, text.find('\n')); }

}  // namespace

Result<OciEngine> OciEngine::Detect(const std::string& preference, int cgroup_version,
                                    const std::string& state_root) {
  std::vector<std::string> candidates;
  if (!preference.empty()) {
    candidates = {preference};
  } else if (cgroup_version == 2) {
    candidates = {"crun", "runc"};
  } else {
    candidates = {"runc"};
  }
  for (const std::string& name : candidates) {
    std::string path = FindProgram(name);
    if (path.empty()) {
      continue;
    }
    auto version = RunProcess({path, "--version"}, 10s);
    if (!version.ok() || version->exit_code != 0) {
      continue;
    }
    OciEngine engine;
    engine.name_ = name;
    engine.path_ = path;
    engine.version_ = FirstLine(version->output);
    engine.state_root_ = state_root;
    return engine;
  }
  std::string wanted = preference.empty() ? "runc" : preference;
  std::string hint = "apt-get install " + wanted;
  if (preference == "crun" && cgroup_version == 1) {
    hint = "crun needs a pure cgroup v2 host; use runc here (apt-get install runc)";
  }
  return Status::Unavailable("RUNTIME_UNAVAILABLE", "no usable OCI runtime (" + wanted + ") found",
                             hint);
}

std::vector<std::string> OciEngine::Command(std::initializer_list<std::string> args) const {
  std::vector<std::string> argv = {path_, "--root", state_root_};
  argv.insert(argv.end(), args);
  return argv;
}

Status OciEngine::Run(const std::string& id, const std::string& bundle, const std::string& pid_file,
                      const std::string& log_file) const {
  ProcessOptions options;
  // The container keeps the engine's stdout/stderr for its lifetime: a file, never a pipe.
  options.output_file = log_file;
  options.cwd = bundle;
  auto run =
      RunProcess(Command({"run", "--detach", "--pid-file", pid_file, "--bundle", bundle, id}), 60s,
                 options, name_);
  if (!run.ok()) {
    return run.status();
  }
  if (run->exit_code != 0 || run->timed_out) {
    // The engine's own complaint is the last thing it wrote; the instance directory (and the
    // log with it) is removed on failure, so the message carries it.
    std::ifstream in(log_file);
    std::string line, last;
    while (std::getline(in, line)) {
      if (!line.empty()) {
        last = line;
      }
    }
    return Status::Internal(name_ + " run failed (exit " + std::to_string(run->exit_code) +
                            "): " + (last.empty() ? "no output" : last));
  }
  return Status::Ok();
}

Status OciEngine::Delete(const std::string& id) const {
  auto del = RunProcess(Command({"delete", "--force", id}), 30s, {}, name_);
  if (!del.ok()) {
    return del.status();
  }
  if (del->exit_code != 0 && del->output.find("does not exist") == std::string::npos &&
      del->output.find("not found") == std::string::npos) {
    return Status::Internal(name_ + " delete " + id + " failed: " + del->LastLine());
  }
  return Status::Ok();
}

Status OciEngine::Update(const std::string& id, const Resources& resources, bool limit_swap) const {
  int64_t memory = resources.memory_mb * 1024 * 1024;
  constexpr int64_t kPeriod = 100'000;
  auto quota = static_cast<int64_t>(std::llround(resources.cpus * kPeriod));
  std::vector<std::string> argv = Command(
      {"update", "--memory", std::to_string(memory), "--pids-limit", std::to_string(resources.pids),
       "--cpu-period", std::to_string(kPeriod), "--cpu-quota", std::to_string(quota)});
  if (limit_swap) {
    argv.insert(argv.end(), {"--memory-swap", std::to_string(memory)});
  }
  argv.push_back(id);
  auto update = RunProcess(argv, 30s, {}, name_);
  if (!update.ok()) {
    return update.status();
  }
  if (update->exit_code != 0) {
    return Status::Conflict("RESIZE_FAILED", "cannot apply the new limits: " + update->LastLine(),
                            "a memory limit below what the instance uses now cannot be set");
  }
  return Status::Ok();
}

std::vector<std::string> OciEngine::List() const {
  std::vector<std::string> ids;
  auto list = RunProcess(Command({"list", "--format", "json"}), 30s, {}, name_);
  if (!list.ok() || list->exit_code != 0) {
    return ids;
  }
  auto parsed = ParseJson(list->output);
  if (!parsed.ok() || !parsed->is_array()) {
    return ids;
  }
  for (const auto& c : parsed->as_array()) {
    if (c.is_object()) {
      ids.push_back(GetString(c.as_object(), "id"));
    }
  }
  return ids;
}

}  // namespace kiln::runtime
