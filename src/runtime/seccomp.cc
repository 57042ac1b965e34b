// The seccomp filter of every instance (see oci_spec.h for the policy).
#include <cerrno>
#include <cstdint>

#include "runtime/oci_spec.h"

namespace kiln::runtime {
namespace {

// Syscalls that fail with EPERM. Most already fail without CAP_SYS_ADMIN and friends; the
// filter is the second wall, and it also closes what needs no capability at all (unshare of a
// user namespace, the new mount API on a user namespace's mounts, userfaultfd, perf).
constexpr const char* kDenied[] = {
    // mounts and root switching
    "mount", "umount", "umount2", "pivot_root", "fsopen", "fsconfig", "fsmount", "fspick",
    "move_mount", "open_tree", "mount_setattr",
    // namespaces
    "unshare", "setns",
    // kernel modules and replacing the kernel
    "init_module", "finit_module", "delete_module", "create_module", "kexec_load",
    "kexec_file_load",
    // kernel facilities with a long record of privilege escalations
    "bpf", "perf_event_open", "userfaultfd", "keyctl", "add_key", "request_key", "lookup_dcookie",
    "open_by_handle_at", "name_to_handle_at",
    // machine-wide state
    "reboot", "swapon", "swapoff", "syslog", "acct", "settimeofday", "clock_settime",
    "clock_adjtime", "adjtimex", "quotactl", "sethostname", "setdomainname", "iopl", "ioperm",
    "vhangup", "nfsservctl", "get_kernel_syms", "query_module", "uselib", "vm86", "vm86old"};

// clone(2) flags that create namespaces.
constexpr uint64_t kNamespaceFlags[] = {
    0x00020000,  // CLONE_NEWNS
    0x02000000,  // CLONE_NEWCGROUP
    0x04000000,  // CLONE_NEWUTS
    0x08000000,  // CLONE_NEWIPC
    0x10000000,  // CLONE_NEWUSER
    0x20000000,  // CLONE_NEWPID
    0x40000000,  // CLONE_NEWNET
    0x00000080,  // CLONE_NEWTIME
};

json::array Architectures() {
#if defined(__x86_64__)
  return {"SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"};
#elif defined(__aarch64__)
  return {"SCMP_ARCH_AARCH64", "SCMP_ARCH_ARM"};
#else
  return {};
#endif
}

}  // namespace

json::object SeccompProfile() {
  json::array syscalls;
  json::array denied;
  for (const char* name : kDenied) {
    denied.emplace_back(name);
  }
  syscalls.push_back(json::object{
      {"names", std::move(denied)}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", EPERM}});
  // Rules for one syscall are OR-ed: any namespace bit set in clone's flags (argument 0 on
  // every supported architecture) is refused.
  for (uint64_t flag : kNamespaceFlags) {
    syscalls.push_back(json::object{
        {"names", json::array{"clone"}},
        {"action", "SCMP_ACT_ERRNO"},
        {"errnoRet", EPERM},
        {"args",
         json::array{json::object{
             {"index", 0}, {"value", flag}, {"valueTwo", flag}, {"op", "SCMP_CMP_MASKED_EQ"}}}}});
  }
  syscalls.push_back(json::object{
      {"names", json::array{"clone3"}}, {"action", "SCMP_ACT_ERRNO"}, {"errnoRet", ENOSYS}});
  return json::object{{"defaultAction", "SCMP_ACT_ALLOW"},
                      {"architectures", Architectures()},
                      {"syscalls", std::move(syscalls)}};
}

}  // namespace kiln::runtime
