// Instances: the ordered steps that make one (parent side only: everything inside the new
// namespaces is runc's and kiln-init's), the steps that take it apart, and re-reading them
// from disk after a restart.
#include "runtime/runtime.h"

#include <linux/capability.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/ids.h"
#include "core/json.h"
#include "core/log.h"
#include "core/process.h"
#include "runtime/cgroup.h"
#include "runtime/mounts.h"
#include "runtime/netns.h"
#include "runtime/oci_spec.h"
#include "runtime/runc.h"
#include "runtime/templates.h"

namespace kiln::runtime {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

constexpr std::chrono::milliseconds kInitReadyTimeout = 20s;

// What is kept in instances/ID/instance.json.
struct Meta {
  std::string id;
  std::string template_name;
  std::string label;
  Resources resources;
  Network network = Network::kNone;
  int init_pid = 0;
  int64_t init_start_ticks = 0;  // /proc/PID/stat start time: tells a reused pid apart
  int64_t started_ms = 0;
  int slirp_pid = 0;
};

json::object MetaJson(const Meta& m) {
  return {{"id", m.id},
          {"template", m.template_name},
          {"label", m.label},
          {"memoryMb", m.resources.memory_mb},
          {"cpus", m.resources.cpus},
          {"pids", m.resources.pids},
          {"network", NetworkName(m.network)},
          {"initPid", m.init_pid},
          {"initStartTicks", m.init_start_ticks},
          {"startedMs", m.started_ms},
          {"slirpPid", m.slirp_pid}};
}

Result<Meta> ReadMeta(const fs::path& file) {
  std::ifstream in(file);
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = ParseJson(text.str());
  if (!parsed.ok() || !parsed->is_object()) {
    return Status::Internal("unreadable " + file.string());
  }
  const json::object& o = parsed->as_object();
  Meta m;
  m.id = GetString(o, "id");
  m.template_name = GetString(o, "template");
  m.label = GetString(o, "label");
  m.resources.memory_mb = GetInt(o, "memoryMb", 512);
  if (auto it = o.find("cpus"); it != o.end() && it->value().is_number()) {
    m.resources.cpus = it->value().to_number<double>();
  }
  m.resources.pids = GetInt(o, "pids", 512);
  m.network = GetString(o, "network") == "egress" ? Network::kEgress : Network::kNone;
  m.init_pid = static_cast<int>(GetInt(o, "initPid"));
  m.init_start_ticks = GetInt(o, "initStartTicks");
  m.started_ms = GetInt(o, "startedMs");
  m.slirp_pid = static_cast<int>(GetInt(o, "slirpPid"));
  return m;
}

// Field 22 of /proc/PID/stat, the process's start time in clock ticks since boot; 0 when
// the process does not exist.
int64_t StartTicks(int pid) {
  if (pid <= 0) {
    return 0;
  }
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string text;
  std::getline(in, text);
  // The command name (field 2) may hold spaces; fields are counted after its ')'.
  size_t close = text.rfind(')');
  if (close == std::string::npos) {
    return 0;
  }
  std::istringstream rest(text.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && rest >> field; ++i) {
    if (i == 22) {
      return std::stoll(field);
    }
  }
  return 0;
}

// Whether this process holds capability `cap` (bit in CapEff of /proc/self/status).
bool HasCapability(int cap) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("CapEff:")) {
      uint64_t mask = std::stoull(line.substr(7), nullptr, 16);
      return (mask >> cap) & 1;
    }
  }
  return false;
}

bool ValidInstanceId(const std::string& id) {
  if (id.empty() || id.size() > 64) {
    return false;
  }
  for (char c : id) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' || c == '-')) {
      return false;
    }
  }
  return true;
}

std::vector<std::string> InitEnv(const std::string& id) {
  return {"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root",
          "HOSTNAME=" + id, "LANG=C.UTF-8", "TERM=xterm"};
}

Status NotFound(const std::string& id) {
  return Status::NotFound("INSTANCE_NOT_FOUND", "no instance " + id);
}

class RuntimeImpl;

// One instance: its metadata and the lock that serializes operations on it.
struct Instance {
  std::mutex mu;
  Meta meta;
  InstanceCgroup cgroup;
  bool gone = false;  // removed; a caller that waited on `mu` must not use it
};

class RuntimeImpl final : public Runtime {
 public:
  RuntimeImpl(RuntimeOptions options, CgroupHost cgroups, OciEngine engine)
      : options_(std::move(options)),
        cgroups_(std::move(cgroups)),
        engine_(std::move(engine)),
        templates_((fs::path(options_.data_dir) / "templates").string()),
        instances_dir_((fs::path(options_.data_dir) / "instances").string()) {
    info_.engine = engine_.name();
    info_.engine_version = engine_.version();
    info_.cgroup_version = cgroups_.version;
    info_.egress = !FindProgram("slirp4netns").empty() && ::access("/dev/net/tun", F_OK) == 0;
  }

  Status Prepare();
  void Load();

  const RuntimeInfo& info() const override { return info_; }
  Result<InstanceInfo> Start(const InstanceSpec& spec) override;
  Status Remove(const std::string& id) override;
  Status Pause(const std::string& id) override { return SetFrozen(id, true); }
  Status Resume(const std::string& id) override { return SetFrozen(id, false); }
  Status Update(const std::string& id, const Resources& resources) override;
  Result<InstanceInfo> Get(const std::string& id) override;
  Result<InstanceStats> Stats(const std::string& id) override;
  Result<InstanceStats> LimitEvents(const std::string& id) override;
  std::vector<InstanceInfo> List() override;
  Result<InitClient> Client(const std::string& id) override;
  std::string LogDir(const std::string& id) const override { return Dir(id) + "/run/logs"; }
  std::string NetnsPath(const std::string& id) const override { return Dir(id) + "/netns"; }

  std::vector<TemplateInfo> Templates() override { return templates_.List(); }
  bool HasTemplate(const std::string& name) override { return templates_.Has(name); }
  Status BuildDebian(const LogSink& log) override {
    std::lock_guard lock(template_mu_);
    return templates_.BuildDebian(options_.debian_mirror, options_.debian_suite, log);
  }
  Status BuildTemplate(const std::string& name, const std::string& parent,
                       const std::vector<std::string>& steps, const std::vector<std::string>& env,
                       const LogSink& log) override;
  Status RemoveTemplate(const std::string& name) override;

 private:
  std::string Dir(const std::string& id) const { return instances_dir_ + "/" + id; }
  std::shared_ptr<Instance> Find(const std::string& id);
  template <typename Body>
  auto WithInstance(const std::string& id, Body body) -> decltype(body(std::declval<Instance&>()));
  Status SetFrozen(const std::string& id, bool frozen);
  InstanceInfo Describe(const Instance& instance) const;
  InstanceState StateOf(const Instance& instance) const;
  Status WriteMeta(const Meta& meta) const;
  Status MakeInstance(const InstanceSpec& spec, Instance& instance);
  // Takes an instance apart; every step runs even when an earlier one failed.
  Status Teardown(const std::string& id, const Meta& meta);

  RuntimeOptions options_;
  CgroupHost cgroups_;
  OciEngine engine_;
  TemplateStore templates_;
  std::string instances_dir_;
  RuntimeInfo info_;
  std::mutex mu_;  // guards instances_
  std::map<std::string, std::shared_ptr<Instance>> instances_;
  std::mutex template_mu_;  // one template build or removal at a time
};

Status RuntimeImpl::Prepare() {
  for (const char* sub : {"templates", "instances", "runc"}) {
    std::error_code ec;
    fs::create_directories(fs::path(options_.data_dir) / sub, ec);
    if (ec) {
      return Status::Unavailable(
          "RUNTIME_UNAVAILABLE",
          "cannot create " + (fs::path(options_.data_dir) / sub).string() + ": " + ec.message(),
          "pass a writable --data-dir");
    }
  }
  return templates_.EnsureBase();
}

void RuntimeImpl::Load() {
  // What a crash can leave without an instance directory: a container in the engine's state,
  // a mount, a cgroup. Instances with a directory are the callers' to reconcile.
  for (const std::string& id : engine_.List()) {
    if (!fs::exists(Dir(id))) {
      log::Warn("removing a stray container", {{"id", id}});
      engine_.Delete(id);
    }
  }
  for (const std::string& point : MountsUnder(instances_dir_)) {
    std::string rest = point.substr(instances_dir_.size() + 1);
    if (!fs::exists(Dir(rest.substr(0, rest.find('/'))) + "/instance.json")) {
      Unmount(point);
    }
  }
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(instances_dir_, ec)) {
    std::string id = entry.path().filename().string();
    auto meta = ReadMeta(entry.path() / "instance.json");
    auto instance = std::make_shared<Instance>();
    if (meta.ok()) {
      instance->meta = *meta;
    } else {
      // Half made when the server died: keep it listed (stopped) so reconciling removes it.
      instance->meta.id = id;
    }
    instance->meta.id = id;
    instance->cgroup = InstanceCgroup::ForPath(cgroups_, "/kiln/" + id);
    instances_[id] = std::move(instance);
  }
}

std::shared_ptr<Instance> RuntimeImpl::Find(const std::string& id) {
  std::lock_guard lock(mu_);
  auto it = instances_.find(id);
  return it == instances_.end() ? nullptr : it->second;
}

InstanceState RuntimeImpl::StateOf(const Instance& instance) const {
  const Meta& m = instance.meta;
  if (m.init_pid <= 0 || StartTicks(m.init_pid) != m.init_start_ticks) {
    return InstanceState::kStopped;
  }
  return instance.cgroup.Frozen() ? InstanceState::kPaused : InstanceState::kRunning;
}

InstanceInfo RuntimeImpl::Describe(const Instance& instance) const {
  const Meta& m = instance.meta;
  InstanceInfo info;
  info.id = m.id;
  info.template_name = m.template_name;
  info.label = m.label;
  info.state = StateOf(instance);
  info.resources = m.resources;
  info.network = m.network;
  info.init_pid = m.init_pid;
  info.started_ms = m.started_ms;
  return info;
}

Status RuntimeImpl::WriteMeta(const Meta& meta) const {
  return crypto::WriteFileAtomic(Dir(meta.id) + "/instance.json", json::serialize(MetaJson(meta)),
                                 0600);
}

Result<InstanceInfo> RuntimeImpl::Start(const InstanceSpec& spec) {
  if (!ValidInstanceId(spec.id)) {
    return Status::InvalidArgument("INVALID_INSTANCE_ID",
                                   "invalid instance id \"" + spec.id + "\"");
  }
  if (spec.network == Network::kEgress && !info_.egress) {
    return Status::Unavailable("EGRESS_UNAVAILABLE",
                               "network \"egress\" needs slirp4netns and /dev/net/tun",
                               "apt-get install slirp4netns, or use network \"none\"");
  }
  auto instance = std::make_shared<Instance>();
  std::unique_lock instance_lock(instance->mu);
  {
    std::lock_guard lock(mu_);
    if (instances_.contains(spec.id)) {
      return Status::Conflict("INSTANCE_EXISTS", "instance " + spec.id + " already exists");
    }
    instances_[spec.id] = instance;
  }
  Status made = MakeInstance(spec, *instance);
  if (!made.ok()) {
    log::Warn("instance start failed", {{"id", spec.id}, {"error", made.ToString()}});
    if (const char* keep = std::getenv("KILN_KEEP_FAILED_INSTANCES"); keep && *keep == '1') {
      // For debugging the runtime: the bundle stays for `runc run` by hand. Reconciling at the
      // next start removes it.
      std::lock_guard lock(mu_);
      instances_.erase(spec.id);
      return made;
    }
    Teardown(spec.id, instance->meta);
    instance->gone = true;
    std::lock_guard lock(mu_);
    instances_.erase(spec.id);
    return made;
  }
  return Describe(*instance);
}

// The steps, in order. Each returns a status; Start undoes them all on the first failure.
Status RuntimeImpl::MakeInstance(const InstanceSpec& spec, Instance& instance) {
  KILN_ASSIGN_OR_RETURN(TemplateLayout layout, templates_.Layout(spec.template_name));
  Meta& meta = instance.meta;
  meta.id = spec.id;
  meta.template_name = spec.template_name;
  meta.label = spec.label;
  meta.resources = spec.resources;
  meta.network = spec.network;
  instance.cgroup = InstanceCgroup::ForPath(cgroups_, "/kiln/" + spec.id);

  // 1. Directories: the bundle, the overlay's upper and work, the socket and log directory.
  fs::path dir = Dir(spec.id);
  std::error_code ec;
  if (!fs::create_directory(dir, ec)) {
    return Status::Conflict("INSTANCE_EXISTS", "instance directory " + dir.string() + " exists");
  }
  for (const char* sub : {"rootfs", "upper", "work", "run", "run/logs", "etc"}) {
    fs::create_directory(dir / sub, ec);
    if (ec) {
      return Status::Internal("mkdir " + (dir / sub).string() + ": " + ec.message());
    }
  }
  KILN_RETURN_IF_ERROR(WriteMeta(meta));

  // 2. Files every instance gets its own copy of.
  std::string nameserver =
      spec.network == Network::kEgress ? "nameserver 10.0.2.3\n" : "# no network\n";
  KILN_RETURN_IF_ERROR(crypto::WriteFileAtomic(dir / "etc/hostname", spec.id + "\n", 0644));
  KILN_RETURN_IF_ERROR(crypto::WriteFileAtomic(
      dir / "etc/hosts", "127.0.0.1\tlocalhost " + spec.id + "\n::1\tlocalhost\n", 0644));
  KILN_RETURN_IF_ERROR(crypto::WriteFileAtomic(dir / "etc/resolv.conf", nameserver, 0644));

  // 3. Network namespace (with loopback up), and egress through slirp4netns when asked.
  KILN_RETURN_IF_ERROR(CreateNetns((dir / "netns").string()));
  if (spec.network == Network::kEgress) {
    KILN_ASSIGN_OR_RETURN(meta.slirp_pid,
                          StartEgress((dir / "netns").string(), (dir / "slirp.log").string()));
    KILN_RETURN_IF_ERROR(WriteMeta(meta));
  }

  // 4. Root filesystem: the template's layers under a fresh upper.
  KILN_RETURN_IF_ERROR(MountOverlay(layout.layers, (dir / "upper").string(),
                                    (dir / "work").string(), (dir / "rootfs").string()));

  // 5. The OCI bundle.
  OciSpecInput in;
  in.id = spec.id;
  in.rootfs = (dir / "rootfs").string();
  in.args = {"/.kiln/init", "--socket", "/run/kiln/init.sock", "--log-dir", "/run/kiln/logs",
             "--cwd",       spec.cwd};
  if (!spec.main.empty()) {
    in.args.push_back("--");
    in.args.insert(in.args.end(), spec.main.begin(), spec.main.end());
  }
  in.env = InitEnv(spec.id);
  in.env.insert(in.env.end(), spec.env.begin(), spec.env.end());
  for (const std::string& host : layout.host_binds) {
    in.binds.push_back({host, host, true});
  }
  in.binds.push_back({options_.init_path, "/.kiln/init", true});
  in.binds.push_back({(dir / "run").string(), "/run/kiln", false});
  for (const char* file : {"hostname", "hosts", "resolv.conf"}) {
    in.binds.push_back({(dir / "etc" / file).string(), std::string("/etc/") + file, false});
  }
  in.binds.insert(in.binds.end(), spec.mounts.begin(), spec.mounts.end());
  in.netns_path = (dir / "netns").string();
  in.cgroups_path = "/kiln/" + spec.id;
  in.resources = spec.resources;
  in.limit_swap = cgroups_.swap_accounting;
  in.protect_init = HasCapability(CAP_SYS_RESOURCE);
  if (!in.protect_init) {
    rlimit files{};
    if (::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_max != RLIM_INFINITY) {
      in.max_open_files =
          std::min<int64_t>(in.max_open_files, static_cast<int64_t>(files.rlim_max));
    }
  }
  KILN_RETURN_IF_ERROR(
      crypto::WriteFileAtomic(dir / "config.json", json::serialize(BuildOciSpec(in)), 0600));

  // 6. Run it, and wait for kiln-init to answer on its socket.
  KILN_RETURN_IF_ERROR(engine_.Run(spec.id, dir.string(), (dir / "init.pid").string(),
                                   (dir / "container.log").string()));
  std::ifstream pid_file(dir / "init.pid");
  pid_file >> meta.init_pid;
  meta.init_start_ticks = StartTicks(meta.init_pid);
  meta.started_ms = SystemClock::Instance().NowMs();
  KILN_RETURN_IF_ERROR(WriteMeta(meta));
  if (auto actual = InstanceCgroup::ForPid(cgroups_, meta.init_pid); actual.ok()) {
    instance.cgroup = *actual;
  }
  Status ready = WaitForInit((dir / "run").string(), kInitReadyTimeout);
  if (!ready.ok()) {
    std::ifstream log(dir / "container.log");
    std::stringstream text;
    text << log.rdbuf();
    return Status::Internal("the instance's init did not start: " + ready.message() +
                            (text.str().empty() ? "" : "; container log: " + text.str()));
  }
  return Status::Ok();
}

Status RuntimeImpl::Teardown(const std::string& id, const Meta& meta) {
  fs::path dir = Dir(id);
  Status first;
  auto keep = [&first](Status s) {
    if (!s.ok() && first.ok()) {
      first = std::move(s);
    }
  };
  // A frozen container cannot be killed: thaw first (harmless when not frozen).
  InstanceCgroup cgroup = InstanceCgroup::ForPath(cgroups_, "/kiln/" + id);
  cgroup.Thaw();
  keep(engine_.Delete(id));
  StopEgress(meta.slirp_pid);
  // Whatever is still mounted under the instance (the root, the netns file), deepest first.
  for (const std::string& point : MountsUnder(dir.string())) {
    keep(Unmount(point));
  }
  keep(DestroyNetns((dir / "netns").string()));
  cgroup.RemoveLeftovers();
  keep(RemoveTree(dir.string()));
  return first;
}

Status RuntimeImpl::Remove(const std::string& id) {
  std::shared_ptr<Instance> instance = Find(id);
  if (!instance) {
    // Not known, but maybe something is left on disk or in the engine (a crash mid-start).
    const char* keep = std::getenv("KILN_KEEP_FAILED_INSTANCES");
    if (ValidInstanceId(id) && fs::exists(Dir(id)) && !(keep && *keep == '1')) {
      return Teardown(id, Meta{});
    }
    return Status::Ok();
  }
  std::lock_guard lock(instance->mu);
  if (instance->gone) {
    return Status::Ok();
  }
  Status s = Teardown(id, instance->meta);
  instance->gone = true;
  {
    std::lock_guard map_lock(mu_);
    instances_.erase(id);
  }
  if (!s.ok()) {
    log::Warn("instance removal left something behind", {{"id", id}, {"error", s.ToString()}});
  }
  return s;
}

// Runs `body` on instance `id` under its lock; NotFound when there is no such instance (or it
// was removed while the caller waited for the lock).
template <typename Body>
auto RuntimeImpl::WithInstance(const std::string& id, Body body)
    -> decltype(body(std::declval<Instance&>())) {
  std::shared_ptr<Instance> instance = Find(id);
  if (!instance) {
    return NotFound(id);
  }
  std::lock_guard lock(instance->mu);
  if (instance->gone) {
    return NotFound(id);
  }
  return body(*instance);
}

Status RuntimeImpl::SetFrozen(const std::string& id, bool frozen) {
  return WithInstance(id, [&](Instance& instance) -> Status {
    if (StateOf(instance) == InstanceState::kStopped) {
      return Status::Conflict("INSTANCE_NOT_RUNNING", "instance " + id + " is not running");
    }
    return frozen ? instance.cgroup.Freeze() : instance.cgroup.Thaw();
  });
}

Status RuntimeImpl::Update(const std::string& id, const Resources& resources) {
  return WithInstance(id, [&](Instance& instance) -> Status {
    KILN_RETURN_IF_ERROR(engine_.Update(id, resources, cgroups_.swap_accounting));
    instance.meta.resources = resources;
    return WriteMeta(instance.meta);
  });
}

Result<InstanceInfo> RuntimeImpl::Get(const std::string& id) {
  return WithInstance(
      id, [&](Instance& instance) -> Result<InstanceInfo> { return Describe(instance); });
}

Result<InstanceStats> RuntimeImpl::Stats(const std::string& id) {
  return WithInstance(id, [&](Instance& instance) { return instance.cgroup.Stats(); });
}

Result<InstanceStats> RuntimeImpl::LimitEvents(const std::string& id) {
  return WithInstance(id, [&](Instance& instance) -> Result<InstanceStats> {
    return instance.cgroup.LimitEvents();
  });
}

std::vector<InstanceInfo> RuntimeImpl::List() {
  std::vector<std::shared_ptr<Instance>> all;
  {
    std::lock_guard lock(mu_);
    for (const auto& [id, instance] : instances_) {
      all.push_back(instance);
    }
  }
  std::vector<InstanceInfo> out;
  for (const auto& instance : all) {
    // try_lock: an instance being started or removed is skipped rather than waited for.
    std::unique_lock lock(instance->mu, std::try_to_lock);
    if (lock.owns_lock() && !instance->gone) {
      out.push_back(Describe(*instance));
    }
  }
  return out;
}

Result<InitClient> RuntimeImpl::Client(const std::string& id) {
  if (!Find(id)) {
    return NotFound(id);
  }
  return InitClient(Dir(id) + "/run");
}

Status RuntimeImpl::BuildTemplate(const std::string& name, const std::string& parent,
                                  const std::vector<std::string>& steps,
                                  const std::vector<std::string>& env, const LogSink& log) {
  if (!ValidTemplateName(name)) {
    return Status::InvalidArgument("INVALID_TEMPLATE_NAME",
                                   "invalid template name \"" + name + "\"",
                                   "use lower-case letters, digits, '-' and '_'");
  }
  std::lock_guard lock(template_mu_);
  if (templates_.Has(name)) {
    return Status::Conflict("TEMPLATE_EXISTS", "template \"" + name + "\" already exists");
  }
  InstanceSpec spec;
  spec.id = "build-" + name;
  spec.template_name = parent;
  spec.label = "build";
  spec.network = info_.egress ? Network::kEgress : Network::kNone;
  spec.resources.memory_mb = 2048;
  spec.resources.cpus = 2;
  spec.resources.pids = 4096;
  spec.env = env;
  Remove(spec.id);  // a build that died with the server
  if (log) {
    log("starting a build instance from \"" + parent + "\" (network " +
        std::string(NetworkName(spec.network)) + ")");
  }
  KILN_ASSIGN_OR_RETURN(InstanceInfo started, Start(spec));
  (void)started;
  Status result;
  for (size_t i = 0; i < steps.size() && result.ok(); ++i) {
    if (log) {
      log("step " + std::to_string(i + 1) + "/" + std::to_string(steps.size()) + ": " + steps[i]);
    }
    ExecRequest exec;
    exec.argv = {"/bin/sh", "-c", steps[i]};
    exec.timeout_ms = 30 * 60 * 1000;
    exec.max_bytes = 1 << 20;
    std::string pending;
    auto sink = [&](int, std::string_view chunk) {
      pending.append(chunk);
      size_t nl;
      while ((nl = pending.find('\n')) != std::string::npos) {
        if (log) {
          log(pending.substr(0, nl));
        }
        pending.erase(0, nl + 1);
      }
      return true;
    };
    auto ran = InitClient(Dir(spec.id) + "/run").Exec(exec, sink);
    if (!pending.empty() && log) {
      log(pending);
    }
    if (!ran.ok()) {
      result = ran.status();
    } else if (ran->exit_code != 0) {
      result = Status::Unprocessable("TEMPLATE_STEP_FAILED",
                                     "step " + std::to_string(i + 1) + " (" + steps[i] +
                                         ") exited with " + std::to_string(ran->exit_code),
                                     "fix the step; its output is in the build log");
    }
  }
  if (result.ok()) {
    // Stop everything before taking the upper layer: no process may write to it any more.
    fs::path dir = Dir(spec.id);
    result = engine_.Delete(spec.id);
    if (result.ok()) {
      result = Unmount((dir / "rootfs").string());
    }
    if (result.ok()) {
      result = templates_.Commit(name, parent, (dir / "upper").string());
    }
  }
  Remove(spec.id);
  if (log) {
    log(result.ok() ? "template \"" + name + "\" is ready" : "build failed: " + result.message());
  }
  return result;
}

Status RuntimeImpl::RemoveTemplate(const std::string& name) {
  std::lock_guard lock(template_mu_);
  if (!templates_.Has(name)) {
    return Status::NotFound("TEMPLATE_NOT_FOUND", "no template \"" + name + "\"");
  }
  if (!templates_.Children(name).empty()) {
    return Status::Conflict("TEMPLATE_IN_USE",
                            "template \"" + name + "\" is the parent of another template",
                            "remove the templates built on it first");
  }
  for (const InstanceInfo& i : List()) {
    if (i.template_name == name) {
      return Status::Conflict("TEMPLATE_IN_USE",
                              "template \"" + name + "\" is used by instance " + i.id,
                              "kill the sandboxes and stop the apps that use it first");
    }
  }
  return templates_.Remove(name);
}

}  // namespace

std::string_view NetworkName(Network network) {
  return network == Network::kEgress ? "egress" : "none";
}

std::string_view InstanceStateName(InstanceState state) {
  switch (state) {
    case InstanceState::kRunning:
      return "running";
    case InstanceState::kPaused:
      return "paused";
    case InstanceState::kStopped:
      return "stopped";
  }
  return "stopped";
}

Result<std::unique_ptr<Runtime>> Runtime::Open(const RuntimeOptions& options) {
  if (::geteuid() != 0) {
    return Status::Unavailable("RUNTIME_UNAVAILABLE",
                               "sandboxes and apps need root (mounts, namespaces, cgroups)",
                               "run `kiln server` as root (sudo), or use only the API features "
                               "that do not run code");
  }
  if (::access(options.init_path.c_str(), X_OK) != 0) {
    return Status::Unavailable("RUNTIME_UNAVAILABLE", "kiln-init not found at " + options.init_path,
                               "build it (make) and keep it beside the kiln binary");
  }
  KILN_ASSIGN_OR_RETURN(CgroupHost cgroups, DetectCgroups());
  std::string state_root = (fs::path(options.data_dir) / "runc").string();
  KILN_ASSIGN_OR_RETURN(OciEngine engine,
                        OciEngine::Detect(options.engine, cgroups.version, state_root));
  auto runtime = std::make_unique<RuntimeImpl>(options, std::move(cgroups), std::move(engine));
  KILN_RETURN_IF_ERROR(runtime->Prepare());
  runtime->Load();
  return std::unique_ptr<Runtime>(std::move(runtime));
}

}  // namespace kiln::runtime
