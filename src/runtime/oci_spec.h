#pragma once
// Module-private: the OCI runtime configuration (config.json) of an instance, and its
// seccomp filter. Pure functions of their input: no files are touched here.

#include <string>
#include <vector>

#include "core/json.h"
#include "runtime/runtime.h"

namespace kiln::runtime {

struct OciSpecInput {
  std::string id;                 // container id and hostname
  std::string rootfs;             // absolute path of the mounted overlay root
  std::vector<std::string> args;  // kiln-init and its arguments
  std::vector<std::string> env;   // kiln-init's environment (inherited by the main process)
  std::vector<BindMount> binds;   // host directories and files, in mount order
  std::string netns_path;         // the prepared network namespace
  std::string cgroups_path;       // "/kiln/<id>"
  Resources resources;
  bool limit_swap = true;  // memory.swap = memory.limit (no swap beyond the limit) when supported
  // kiln-init at oom_score_adj -1000, so the kernel never picks it at the memory limit; needs
  // CAP_SYS_RESOURCE, which some hosts (nested VMs) do not grant even to root.
  bool protect_init = true;
  int64_t max_open_files = 65536;  // RLIMIT_NOFILE; above the server's own hard limit only
                                   // with CAP_SYS_RESOURCE
};

// config.json as a JSON object (OCI runtime spec 1.0.2).
json::object BuildOciSpec(const OciSpecInput& in);

// The seccomp section: everything allowed except what lets a process leave or reshape its
// sandbox (mounts, namespaces, kernel modules, kexec, bpf, keyrings, clocks, reboot), which
// fails with EPERM. clone3 fails with ENOSYS so libc falls back to clone, whose namespace
// flags can be filtered.
json::object SeccompProfile();

}  // namespace kiln::runtime
