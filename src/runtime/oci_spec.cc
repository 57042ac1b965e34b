#include "runtime/oci_spec.h"

#include <cmath>

namespace kiln::runtime {
namespace {

// Docker's default set without CAP_NET_RAW (no raw sockets, no ICMP spoofing) and without
// CAP_MKNOD and CAP_AUDIT_WRITE, which sandboxes do not need. Root inside an instance can
// still own files, bind low ports, change users and kill its own processes.
constexpr const char* kCapabilities[] = {
    "CAP_CHOWN",   "CAP_DAC_OVERRIDE",     "CAP_FOWNER",    "CAP_FSETID",
    "CAP_KILL",    "CAP_SETGID",           "CAP_SETUID",    "CAP_SETPCAP",
    "CAP_SETFCAP", "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT"};

json::array Strings(const std::vector<std::string>& items) {
  json::array out;
  for (const auto& s : items) {
    out.emplace_back(s);
  }
  return out;
}

json::object Mount(std::string destination, std::string type, std::string source,
                   json::array options) {
  return {{"destination", std::move(destination)},
          {"type", std::move(type)},
          {"source", std::move(source)},
          {"options", std::move(options)}};
}

json::array Mounts(const OciSpecInput& in) {
  json::array mounts = {
      Mount("/proc", "proc", "proc", {"nosuid", "noexec", "nodev"}),
      Mount("/dev", "tmpfs", "tmpfs", {"nosuid", "strictatime", "mode=755", "size=65536k"}),
      Mount("/dev/pts", "devpts", "devpts",
            {"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}),
      Mount("/dev/shm", "tmpfs", "shm", {"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}),
      Mount("/dev/mqueue", "mqueue", "mqueue", {"nosuid", "noexec", "nodev"}),
      Mount("/sys", "sysfs", "sysfs", {"nosuid", "noexec", "nodev", "ro"}),
      Mount("/sys/fs/cgroup", "cgroup", "cgroup", {"nosuid", "noexec", "nodev", "relatime", "ro"}),
  };
  for (const BindMount& b : in.binds) {
    json::array options = {"rbind", b.read_only ? "ro" : "rw", "nosuid", "nodev"};
    mounts.push_back(Mount(b.destination, "bind", b.source, std::move(options)));
  }
  return mounts;
}

json::object ResourcesJson(const OciSpecInput& in) {
  int64_t memory = in.resources.memory_mb * 1024 * 1024;
  json::object mem = {{"limit", memory}};
  if (in.limit_swap) {
    mem["swap"] = memory;  // memory + swap: no swap beyond the memory limit
  }
  constexpr int64_t kPeriod = 100'000;  // µs
  auto quota = static_cast<int64_t>(std::llround(in.resources.cpus * kPeriod));
  return {
      {"memory", std::move(mem)},
      {"pids", json::object{{"limit", in.resources.pids}}},
      {"cpu", json::object{{"quota", quota}, {"period", kPeriod}}},
      // Deny every device node; runc adds the harmless defaults (null, zero, random, tty…).
      {"devices", json::array{json::object{{"allow", false}, {"access", "rwm"}}}},
  };
}

}  // namespace

json::object BuildOciSpec(const OciSpecInput& in) {
  json::array caps;
  for (const char* c : kCapabilities) {
    caps.emplace_back(c);
  }
  json::object process = {
      {"terminal", false},
      {"user", json::object{{"uid", 0}, {"gid", 0}}},
      {"args", Strings(in.args)},
      {"env", Strings(in.env)},
      {"cwd", "/"},
      {"capabilities", json::object{{"bounding", caps},
                                    {"effective", caps},
                                    {"permitted", caps},
                                    {"inheritable", json::array()},
                                    {"ambient", json::array()}}},
      {"rlimits",
       json::array{json::object{
           {"type", "RLIMIT_NOFILE"}, {"hard", in.max_open_files}, {"soft", in.max_open_files}}}},
      {"noNewPrivileges", true},
  };
  if (in.protect_init) {
    // kiln-init is never the one the kernel picks at the memory limit; it resets its children
    // to 0.
    process["oomScoreAdj"] = -1000;
  }
  json::object linux = {
      {"namespaces", json::array{json::object{{"type", "pid"}},
                                 json::object{{"type", "network"}, {"path", in.netns_path}},
                                 json::object{{"type", "ipc"}}, json::object{{"type", "uts"}},
                                 json::object{{"type", "mount"}}}},
      {"cgroupsPath", in.cgroups_path},
      {"resources", ResourcesJson(in)},
      {"seccomp", SeccompProfile()},
      {"maskedPaths", json::array{"/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                                  "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                                  "/proc/sched_debug", "/sys/firmware", "/proc/scsi"}},
      {"readonlyPaths",
       json::array{"/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"}},
  };
  return {{"ociVersion", "1.0.2"},
          {"process", std::move(process)},
          {"root", json::object{{"path", in.rootfs}, {"readonly", false}}},
          {"hostname", in.id},
          {"mounts", Mounts(in)},
          {"linux", std::move(linux)}};
}

}  // namespace kiln::runtime
