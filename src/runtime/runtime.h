#pragma once
// runtime: instances, the isolated containers every sandbox and app runs in (DESIGN.md §3).
//
// An instance is an OCI bundle run by runc (or crun where the host is pure cgroup v2), with an
// overlay root over a read-only template, its own network namespace, cgroup limits for memory,
// pids and CPU, no_new_privs, a reduced capability set and a seccomp filter. kiln-init is its
// PID 1 and serves exec and file operations on a unix socket in the instance's host directory
// (see runtime/init_client.h); nothing on the exec path goes through runc.
//
// Instances outlive the server: their state is kept on disk under <data_dir>/instances, and
// Open() picks them up again. Thread-safety: every method may be called from any thread;
// operations on one instance are serialized by a per-instance lock, different instances do not
// wait for each other. Errors: NotFound INSTANCE_NOT_FOUND, Conflict INSTANCE_PAUSED /
// INSTANCE_NOT_RUNNING, Unavailable for a missing OCI runtime or kernel feature (with a hint),
// Internal for unexpected failures of runc or the kernel (with their message).

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "runtime/init_client.h"

namespace kiln::runtime {

enum class Network {
  kNone,    // a network namespace with only loopback: nothing reaches in or out
  kEgress,  // plus outbound connections through a user-mode NAT (slirp4netns)
};
std::string_view NetworkName(Network network);

struct Resources {
  int64_t memory_mb = 512;  // memory limit (swap included)
  double cpus = 1;          // CPU time per wall second, in cores
  int64_t pids = 512;       // most processes and threads at once
};

// A directory mounted into an instance.
struct BindMount {
  std::string source;       // host path
  std::string destination;  // path inside the instance
  bool read_only = true;
};

struct InstanceSpec {
  std::string id;             // sbx_…; also the hostname
  std::string template_name;  // a template directory name: "base", "debian", "tpl_…"
  Resources resources;
  Network network = Network::kNone;
  std::vector<std::string> env;   // "K=V", the default environment of every exec
  std::vector<std::string> main;  // argv of a main process kiln-init supervises (apps); empty: none
  std::vector<BindMount> mounts;  // extra mounts (an app's release and data volume)
  std::string cwd = "/root";      // default working directory of execs and the main process
  std::string label;              // free text kept with the instance ("pool", "sandbox", "build")
};

enum class InstanceState { kRunning, kPaused, kStopped };
std::string_view InstanceStateName(InstanceState state);

struct InstanceInfo {
  std::string id;
  std::string template_name;
  std::string label;
  InstanceState state = InstanceState::kStopped;
  Resources resources;
  Network network = Network::kNone;
  int init_pid = 0;        // host pid of kiln-init
  int64_t started_ms = 0;  // wall-clock time the instance started
};

struct InstanceStats {
  int64_t memory_bytes = 0;
  int64_t memory_limit_bytes = 0;
  int64_t pids = 0;
  int64_t pids_limit = 0;
  int64_t cpu_usage_us = 0;
  int64_t oom_kills = 0;        // processes the kernel killed at the memory limit
  int64_t pids_limit_hits = 0;  // forks refused at the pids limit
};

struct TemplateInfo {
  std::string name;        // directory name
  std::string parent;      // template it was built on, empty for base and debian
  int64_t size_bytes = 0;  // its own layer on disk
  int64_t built_ms = 0;
};

struct RuntimeOptions {
  std::string data_dir;   // instances/ and templates/ live here
  std::string init_path;  // the kiln-init binary, bind-mounted into every instance
  std::string engine;     // "runc", "crun" or "" (detect)
  std::string debian_mirror = "http://deb.debian.org/debian";
  std::string debian_suite = "bookworm";
};

// What Open found on the machine; shown in /v1/me capabilities and logged at start.
struct RuntimeInfo {
  std::string engine;          // "runc" or "crun"
  std::string engine_version;  // "runc version 1.1.5"
  int cgroup_version = 1;      // 1 (v1 or hybrid) or 2 (unified)
  bool egress = false;         // slirp4netns is installed: Network::kEgress works
};

// Opens a TCP connection to 127.0.0.1:`port` inside the network namespace at `netns_path`:
// the calling thread enters the namespace, makes the socket and goes back to its own (the
// socket stays in the instance's namespace), then connects within `timeout`. Answers the
// connected socket in blocking mode (the caller owns it). Errors: Unavailable
// CONNECT_REFUSED (nothing listens), CONNECT_TIMEOUT, NETNS_UNAVAILABLE (no such namespace).
Result<int> ConnectInNetns(const std::string& netns_path, uint16_t port,
                           std::chrono::milliseconds timeout);
// A new TCP socket (non-blocking, close-on-exec, unconnected) that lives in the network
// namespace at `netns_path`, for a caller that connects it asynchronously. Errors as above.
Result<int> SocketInNetns(const std::string& netns_path);

using LogSink = std::function<void(std::string_view line)>;

class Runtime {
 public:
  // Checks the machine (root, an OCI runtime, overlayfs, cgroups, kiln-init), creates the
  // directories and the `base` template when missing, and loads the instances on disk.
  // Errors: Unavailable RUNTIME_UNAVAILABLE with what to install or fix.
  static Result<std::unique_ptr<Runtime>> Open(const RuntimeOptions& options);
  virtual ~Runtime() = default;

  virtual const RuntimeInfo& info() const = 0;

  // Instances.
  // Starts an instance and returns once kiln-init answers. On any failure, everything made so
  // far is removed again. Errors: Conflict INSTANCE_EXISTS, NotFound TEMPLATE_NOT_FOUND.
  virtual Result<InstanceInfo> Start(const InstanceSpec& spec) = 0;
  // Kills every process and removes the container, cgroups, mounts, network namespace and
  // files. Idempotent: removing a missing instance is OK.
  virtual Status Remove(const std::string& id) = 0;
  virtual Status Pause(const std::string& id) = 0;   // freezes every process (cgroup freezer)
  virtual Status Resume(const std::string& id) = 0;  // thaws them
  virtual Status Update(const std::string& id, const Resources& resources) = 0;
  virtual Result<InstanceInfo> Get(const std::string& id) = 0;
  virtual Result<InstanceStats> Stats(const std::string& id) = 0;
  // Only oom_kills and pids_limit_hits: two small reads, cheap enough around every exec.
  virtual Result<InstanceStats> LimitEvents(const std::string& id) = 0;
  // Every instance on disk, in no particular order.
  virtual std::vector<InstanceInfo> List() = 0;
  // The client for exec and files. Calls on a paused instance would hang: callers check
  // state first (Get) and refuse with INSTANCE_PAUSED.
  virtual Result<InitClient> Client(const std::string& id) = 0;
  // Host path of the instance's main-process logs (main.log, main.log.1).
  virtual std::string LogDir(const std::string& id) const = 0;
  // Host path of the instance's network namespace file (for setns by the gateway).
  virtual std::string NetnsPath(const std::string& id) const = 0;

  // Templates.
  virtual std::vector<TemplateInfo> Templates() = 0;
  virtual bool HasTemplate(const std::string& name) = 0;
  // Builds `debian` with debootstrap (minutes; progress lines go to `log`). Idempotent.
  virtual Status BuildDebian(const LogSink& log) = 0;
  // Builds template `name` on `parent`: starts an instance with egress, runs each step with
  // /bin/sh -c, and keeps its changes as the new template's layer. A failing step fails the
  // build (its output is in the log) and leaves nothing behind.
  virtual Status BuildTemplate(const std::string& name, const std::string& parent,
                               const std::vector<std::string>& steps,
                               const std::vector<std::string>& env, const LogSink& log) = 0;
  // Refused (Conflict TEMPLATE_IN_USE) while an instance or another template uses it.
  virtual Status RemoveTemplate(const std::string& name) = 0;
};

}  // namespace kiln::runtime
