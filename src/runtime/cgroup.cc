#include "runtime/cgroup.h"

#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif

namespace kiln::runtime {
namespace {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

Status WriteFile(const std::string& path, std::string_view value) {
  std::ofstream out(path);
  out << value;
  out.flush();
  if (!out) {
    return Status::FromErrno("write(\"" + path + "\")", errno);
  }
  return Status::Ok();
}

int64_t ParseInt(std::string_view text) {
  while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
    text.remove_suffix(1);
  }
  int64_t value = 0;
  std::from_chars(text.data(), text.data() + text.size(), value);
  return value;
}

// "key value" lines (memory.events, pids.events, cpu.stat, memory.oom_control).
int64_t Field(const std::string& text, std::string_view key) {
  std::istringstream in(text);
  std::string k;
  int64_t v = 0;
  while (in >> k >> v) {
    if (k == key) {
      return v;
    }
  }
  return 0;
}

// pids.max and memory.max say "max" for no limit.
int64_t LimitValue(const std::string& text) {
  return text.starts_with("max") ? -1 : ParseInt(text);
}

}  // namespace

Result<CgroupHost> DetectCgroups() {
  CgroupHost host;
  struct statfs fs {};
  if (::statfs("/sys/fs/cgroup", &fs) != 0) {
    return Status::Unavailable("CGROUPS_UNAVAILABLE", "/sys/fs/cgroup is not mounted",
                               "mount the cgroup filesystems (systemd does this at boot)");
  }
  if (fs.f_type == CGROUP2_SUPER_MAGIC) {
    host.version = 2;
    host.v2_root = "/sys/fs/cgroup";
    // The root has no memory.swap.max of its own; any child that has one shows the kernel
    // accounts swap.
    host.swap_accounting = ::access("/sys/fs/cgroup/init.scope/memory.swap.max", F_OK) == 0 ||
                           ::access("/sys/fs/cgroup/system.slice/memory.swap.max", F_OK) == 0;
    return host;
  }
  // v1 or hybrid: one hierarchy per controller, found in /proc/self/mountinfo.
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    size_t dash = line.find(" - ");
    if (dash == std::string::npos) {
      continue;
    }
    std::istringstream head(line.substr(0, dash));
    std::istringstream tail(line.substr(dash + 3));
    std::string id, parent, devs, root, point, fstype, source, options;
    head >> id >> parent >> devs >> root >> point;
    tail >> fstype >> source >> options;
    if (fstype != "cgroup") {
      continue;
    }
    std::istringstream opts(options);
    std::string opt;
    while (std::getline(opts, opt, ',')) {
      for (const char* controller : {"memory", "pids", "cpu", "cpuacct", "freezer"}) {
        if (opt == controller && !host.v1_mounts.contains(opt)) {
          host.v1_mounts[opt] = point;
        }
      }
    }
  }
  for (const char* needed : {"memory", "pids", "cpu", "freezer"}) {
    if (!host.v1_mounts.contains(needed)) {
      return Status::Unavailable(
          "CGROUPS_UNAVAILABLE",
          "the cgroup v1 controller \"" + std::string(needed) + "\" is not mounted",
          "enable it in the kernel and mount it under /sys/fs/cgroup");
    }
  }
  host.swap_accounting =
      ::access((host.v1_mounts["memory"] + "/memory.memsw.limit_in_bytes").c_str(), F_OK) == 0;
  return host;
}

InstanceCgroup InstanceCgroup::ForPath(const CgroupHost& host, const std::string& relative) {
  InstanceCgroup cg;
  cg.version_ = host.version;
  if (host.version == 2) {
    cg.dirs_[""] = host.v2_root + relative;
  } else {
    for (const auto& [controller, mount] : host.v1_mounts) {
      cg.dirs_[controller] = mount + relative;
    }
  }
  return cg;
}

Result<InstanceCgroup> InstanceCgroup::ForPid(const CgroupHost& host, int pid) {
  // Lines are "ID:CONTROLLERS:PATH"; v2 has the one line "0::PATH".
  std::string text = ReadFile("/proc/" + std::to_string(pid) + "/cgroup");
  if (text.empty()) {
    return Status::NotFound("INSTANCE_NOT_RUNNING", "process " + std::to_string(pid) + " is gone");
  }
  InstanceCgroup cg;
  cg.version_ = host.version;
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    size_t a = line.find(':');
    size_t b = line.find(':', a + 1);
    if (a == std::string::npos || b == std::string::npos) {
      continue;
    }
    std::string controllers = line.substr(a + 1, b - a - 1);
    std::string path = line.substr(b + 1);
    if (host.version == 2) {
      if (controllers.empty()) {
        cg.dirs_[""] = host.v2_root + path;
      }
      continue;
    }
    std::istringstream names(controllers);
    std::string name;
    while (std::getline(names, name, ',')) {
      if (auto it = host.v1_mounts.find(name); it != host.v1_mounts.end()) {
        cg.dirs_[name] = it->second + path;
      }
    }
  }
  return cg;
}

std::string InstanceCgroup::Dir(const std::string& controller) const {
  auto it = dirs_.find(version_ == 2 ? "" : controller);
  if (it == dirs_.end() && version_ == 1 && controller == "cpuacct") {
    it = dirs_.find("cpu");  // cpu,cpuacct are often one hierarchy
  }
  return it == dirs_.end() ? std::string() : it->second;
}

Status InstanceCgroup::Freeze() const {
  std::string dir = Dir("freezer");
  if (version_ == 2) {
    KILN_RETURN_IF_ERROR(WriteFile(dir + "/cgroup.freeze", "1"));
  } else {
    KILN_RETURN_IF_ERROR(WriteFile(dir + "/freezer.state", "FROZEN"));
  }
  // Freezing is asynchronous: a task in an uninterruptible sleep freezes when it leaves it.
  for (int i = 0; i < 2000; ++i) {
    if (Frozen()) {
      return Status::Ok();
    }
    std::this_thread::sleep_for(std::chrono::microseconds(100 + i * 10));
  }
  return Status::Unavailable("FREEZE_TIMEOUT", "the instance's processes did not freeze in time",
                             "retry; a process stuck in the kernel (I/O) delays freezing");
}

Status InstanceCgroup::Thaw() const {
  std::string dir = Dir("freezer");
  if (version_ == 2) {
    return WriteFile(dir + "/cgroup.freeze", "0");
  }
  return WriteFile(dir + "/freezer.state", "THAWED");
}

bool InstanceCgroup::Frozen() const {
  std::string dir = Dir("freezer");
  if (version_ == 2) {
    return Field(ReadFile(dir + "/cgroup.events"), "frozen") == 1;
  }
  return ReadFile(dir + "/freezer.state").starts_with("FROZEN");
}

Result<InstanceStats> InstanceCgroup::Stats() const {
  InstanceStats s;
  if (version_ == 2) {
    std::string dir = Dir("");
    s.memory_bytes = ParseInt(ReadFile(dir + "/memory.current"));
    s.memory_limit_bytes = LimitValue(ReadFile(dir + "/memory.max"));
    s.pids = ParseInt(ReadFile(dir + "/pids.current"));
    s.pids_limit = LimitValue(ReadFile(dir + "/pids.max"));
    s.cpu_usage_us = Field(ReadFile(dir + "/cpu.stat"), "usage_usec");
    s.oom_kills = Field(ReadFile(dir + "/memory.events"), "oom_kill");
    s.pids_limit_hits = Field(ReadFile(dir + "/pids.events"), "max");
    return s;
  }
  std::string memory = Dir("memory");
  std::string pids = Dir("pids");
  s.memory_bytes = ParseInt(ReadFile(memory + "/memory.usage_in_bytes"));
  s.memory_limit_bytes = ParseInt(ReadFile(memory + "/memory.limit_in_bytes"));
  s.oom_kills = Field(ReadFile(memory + "/memory.oom_control"), "oom_kill");
  s.pids = ParseInt(ReadFile(pids + "/pids.current"));
  s.pids_limit = LimitValue(ReadFile(pids + "/pids.max"));
  s.pids_limit_hits = Field(ReadFile(pids + "/pids.events"), "max");
  s.cpu_usage_us = ParseInt(ReadFile(Dir("cpuacct") + "/cpuacct.usage")) / 1000;
  return s;
}

InstanceStats InstanceCgroup::LimitEvents() const {
  InstanceStats s;
  if (version_ == 2) {
    s.oom_kills = Field(ReadFile(Dir("") + "/memory.events"), "oom_kill");
    s.pids_limit_hits = Field(ReadFile(Dir("") + "/pids.events"), "max");
  } else {
    s.oom_kills = Field(ReadFile(Dir("memory") + "/memory.oom_control"), "oom_kill");
    s.pids_limit_hits = Field(ReadFile(Dir("pids") + "/pids.events"), "max");
  }
  return s;
}

void InstanceCgroup::RemoveLeftovers() const {
  for (const auto& [controller, dir] : dirs_) {
    ::rmdir(dir.c_str());  // fails harmlessly when runc removed it, or if processes remain
  }
}

}  // namespace kiln::runtime
