#include "daemon/daemon.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <mutex>
#include <thread>

#include "api/api.h"
#include "auth/auth.h"
#include "core/process.h"
#include "gateway/gateway.h"
#include "http/http.h"
#include "mcp/mcp.h"
#include "runtime/runtime.h"
#include "service/service.h"
#include "store/store.h"
#include "tls/tls.h"
#include "web/web.h"

namespace kiln::daemon {
namespace {

namespace fs = std::filesystem;

Status PrepareDataDir(const fs::path& dir) {
  std::error_code ec;
  bool created = fs::create_directories(dir, ec);
  if (ec) {
    return Status::Unavailable("DATA_DIR_UNUSABLE",
                               "cannot create data directory " + dir.string() + ": " + ec.message(),
                               "pass a writable --data-dir");
  }
  // Keys and the database live here: nobody else needs to read it. An existing directory is
  // the operator's choice (it may be ~ or /var/lib by mistake), so it is only warned about.
  struct stat st {};
  if (created) {
    if (::chmod(dir.c_str(), 0700) != 0) {
      return Status::FromErrno("chmod(\"" + dir.string() + "\")", errno);
    }
  } else if (::stat(dir.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    log::Warn(
        "data directory is readable by other users",
        {{"data_dir", dir.string()}, {"hint", "chmod 700 it; keys and the database are here"}});
  }
  if (::access(dir.c_str(), W_OK) != 0) {
    return Status::Unavailable("DATA_DIR_UNUSABLE",
                               "data directory " + dir.string() + " is not writable",
                               "pass a writable --data-dir");
  }
  return Status::Ok();
}

// One server per data directory: a second one would keep its own key cache, rate limits and
// idempotency slots, and two first starts would race to write master.key and admin.key. The
// lock is released by the kernel when the process exits, however it exits.
Result<int> LockDataDir(const fs::path& dir) {
  fs::path path = dir / "kiln.lock";
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Status::FromErrno("open(\"" + path.string() + "\")", errno);
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int err = errno;
    ::close(fd);
    if (err == EWOULDBLOCK) {
      return Status::Unavailable("DATA_DIR_IN_USE",
                                 "another kiln server is already using " + dir.string(),
                                 "stop it first, or pass another --data-dir");
    }
    return Status::FromErrno("flock(\"" + path.string() + "\")", err);
  }
  return fd;
}

// Background chores: idempotency records older than 24 h are purged.
class Housekeeper {
 public:
  explicit Housekeeper(auth::Idempotency& idempotency)
      : thread_([this, &idempotency] { Loop(idempotency); }) {}
  ~Housekeeper() {
    {
      std::lock_guard lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }

 private:
  void Loop(auth::Idempotency& idempotency) {
    std::unique_lock lock(mu_);
    while (!stop_) {
      lock.unlock();
      auto purged = idempotency.Purge();
      if (!purged.ok()) {
        log::Warn("idempotency purge failed", {{"error", purged.status().ToString()}});
      } else if (*purged > 0) {
        log::Info("idempotency records purged", {{"count", *purged}});
      }
      lock.lock();
      cv_.wait_for(lock, std::chrono::minutes(10), [this] { return stop_; });
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// `name` in the directory of the running kiln binary (kiln-init is built and installed there).
std::string AbsolutePath(const std::string& path) {
  std::error_code ec;
  fs::path absolute = fs::absolute(path, ec);
  return ec ? path : absolute.lexically_normal().string();
}

std::string BesideExecutable(const std::string& name) {
  std::error_code ec;
  fs::path self = fs::read_symlink("/proc/self/exe", ec);
  return ec ? name : (self.parent_path() / name).string();
}

int Fail(const Status& status) {
  log::Error("kiln server cannot start", {{"error", status.ToString()}});
  return 1;
}

}  // namespace

int Run(const Config& given) {
  // Paths under the data directory go to processes with other working directories (runc runs
  // in the instance's bundle), so a relative one (`make run` passes ./.kiln) is made absolute.
  Config config = given;
  config.server.data_dir = AbsolutePath(config.server.data_dir);
  log::Level level = log::Level::kInfo;
  log::ParseLevel(config.log.level, &level);
  log::Configure(level, config.log.format == "text" ? log::Format::kText : log::Format::kJson);

  // Signals are taken by sigwait below; threads started later inherit the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);

  const fs::path data_dir(config.server.data_dir);
  if (Status s = PrepareDataDir(data_dir); !s.ok()) {
    return Fail(s);
  }
  auto lock_fd = LockDataDir(data_dir);
  if (!lock_fd.ok()) {
    return Fail(lock_fd.status());
  }
  auto store = store::OpenSqliteStore(data_dir / "kiln.db");
  if (!store.ok()) {
    return Fail(store.status());
  }
  auto box = crypto::SecretBox::OpenOrCreate(data_dir / "master.key");
  if (!box.ok()) {
    return Fail(box.status());
  }
  Clock& clock = SystemClock::Instance();

  auto admin_key = auth::Bootstrap(**store, config.server.data_dir, clock);
  if (!admin_key.ok()) {
    return Fail(admin_key.status());
  }
  if (admin_key->has_value()) {
    std::printf(
        "Created workspace \"default\" and its admin key (shown once; also saved in %s):\n\n"
        "  %s\n\n",
        (data_dir / "admin.key").c_str(), (*admin_key)->c_str());
    std::fflush(stdout);
  }

  auth::Authenticator authenticator(**store, box->DeriveKey("jwt"), clock);
  auth::RateLimiter limiter(config.limits.rate_per_second, config.limits.rate_burst, clock);
  auth::Idempotency idempotency(**store, *box, clock);
  Metrics metrics;

  // Without a runtime (no root, no runc) the server still serves everything that does not
  // run code; sandbox calls then say why they cannot.
  runtime::RuntimeOptions runtime_options;
  runtime_options.data_dir = config.server.data_dir;
  runtime_options.init_path =
      config.runtime.init_path.empty() ? BesideExecutable("kiln-init") : config.runtime.init_path;
  runtime_options.engine = config.runtime.engine;
  runtime_options.debian_mirror = config.runtime.debian_mirror;
  auto runtime = runtime::Runtime::Open(runtime_options);
  std::string runtime_error;
  if (runtime.ok()) {
    const runtime::RuntimeInfo& info = (*runtime)->info();
    log::Info("runtime ready", {{"engine", info.engine},
                                {"version", info.engine_version},
                                {"cgroup_version", info.cgroup_version},
                                {"egress", info.egress}});
  } else {
    runtime_error = runtime.status().message();
    log::Warn("sandboxes and apps are unavailable", {{"error", runtime.status().ToString()}});
  }
  service::Service service({**store, authenticator, clock, config, *box,
                            runtime.ok() ? runtime->get() : nullptr, runtime_error});
  service.Start();
  api::Api api({service, authenticator, limiter, idempotency, metrics, config});
  mcp::Server mcp({service, authenticator, limiter, metrics, config});
  web::Dashboard dashboard(config.server.dashboard_dir.empty() ? BesideExecutable("web")
                                                               : config.server.dashboard_dir);

  http::ServerOptions options;
  uint16_t port = 0;
  if (Status s = SplitHostPort(config.server.listen, &options.host, &port); !s.ok()) {
    return Fail(s);
  }
  options.port = port;
  options.threads = config.server.threads > 0
                        ? config.server.threads
                        : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  options.body_limit_bytes = config.server.body_limit_bytes;
  options.max_header_bytes = config.server.max_header_bytes;
  options.header_timeout = std::chrono::milliseconds(config.server.header_timeout_ms);
  options.read_timeout = std::chrono::milliseconds(config.server.read_timeout_ms);
  options.idle_timeout = std::chrono::milliseconds(config.server.idle_timeout_ms);
  options.shutdown_grace = std::chrono::milliseconds(config.server.shutdown_grace_ms);

  gateway::Deps gateway_deps;
  gateway_deps.find = [&service](std::string_view name) { return service.FindRoute(name); };
  gateway_deps.find_sandbox = [&service](std::string_view id, uint16_t port) {
    return service.FindSandboxRoute(id, port);
  };
  gateway_deps.find_domain = [&service](std::string_view host) {
    return service.FindDomainRoute(host);
  };
  gateway_deps.app_status = [&service](std::string_view name) { return service.AppStatus(name); };
  gateway_deps.authorize = [&service](const service::AccessCheck& check) {
    return service.Authorize(check);
  };
  gateway_deps.acme_challenge = [&service](std::string_view token) {
    return service.AcmeChallenge(token);
  };
  gateway_deps.wake = [&service](const std::string& app_id) { return service.WakeApp(app_id); };
  gateway_deps.touch = [&service](const std::string& app_id) { service.TouchApp(app_id); };
  gateway_deps.base_domain = config.gateway.base_domain;
  gateway_deps.threads = config.gateway.threads;
  gateway_deps.connect_timeout = std::chrono::milliseconds(config.gateway.connect_timeout_ms);
  gateway_deps.upstream_timeout = std::chrono::milliseconds(config.gateway.upstream_timeout_ms);
  gateway_deps.tunnel_idle = std::chrono::seconds(config.gateway.websocket_idle_seconds);
  gateway_deps.idle_upstreams = config.gateway.idle_upstreams;
  gateway_deps.metrics = &metrics;
  gateway_deps.access_log = config.log.access_log;
  gateway_deps.access_log_sample_percent = config.log.access_log_sample_percent;
  gateway::Gateway gateway(std::move(gateway_deps));
  options.takeover = gateway.takeover();
  service.SetTrafficSource(
      [&gateway](const std::string& app_id) { return gateway.TrafficOf(app_id); });

  auto server = http::Server::Start(
      options,
      [&api, &mcp, &dashboard](const http::Request& req, http::Response& res) {
        if (req.path == "/mcp") {
          mcp.Handle(req, res);
        } else if (dashboard.Claims(req)) {
          dashboard.Handle(req, res);
        } else {
          api.Handle(req, res);
        }
      },
      [&api](const Status& s, http::Response& res) { api.ListenerError(s, res); });
  if (!server.ok()) {
    return Fail(server.status());
  }

  service.SetListenPort((*server)->port());

  // ---- TLS listener (src/tls): gateway.tls_port, certificates, ACME ----
  // Started after the HTTP server, which serves what it decrypts. A port in use leaves the
  // server up without HTTPS (said in the log and in the domains' answers).
  std::unique_ptr<tls::Https> https;
  if (config.gateway.tls_port != 0) {
    tls::Options o;
    o.data_dir = config.server.data_dir;
    o.host = options.host;
    o.port = static_cast<uint16_t>(config.gateway.tls_port);
    o.base_domain = config.gateway.base_domain;
    o.acme_directory = config.gateway.acme_directory;
    o.acme_email = config.gateway.acme_email;
    o.acme_ca_file = config.gateway.acme_ca_file;
    o.acme_renew_days = config.gateway.acme_renew_days;
    tls::Hooks hooks;
    hooks.is_custom_domain = [&service](std::string_view h) { return service.IsCustomDomain(h); };
    hooks.list_domains = [&service]() -> Result<std::vector<tls::DomainCertificate>> {
      KILN_ASSIGN_OR_RETURN(std::vector<store::Domain> all, service.ListAllDomains());
      std::vector<tls::DomainCertificate> out;
      for (const store::Domain& d : all) {
        out.push_back({d.domain, d.cert_source, d.cert_status, d.cert_error, d.cert_expires_ms});
      }
      return out;
    };
    hooks.record = [&service](const tls::DomainCertificate& c) {
      store::Domain d;
      d.domain = c.domain;
      d.cert_source = c.source;
      d.cert_status = c.status;
      d.cert_error = c.error;
      d.cert_expires_ms = c.expires_ms;
      return service.RecordCertificate(d);
    };
    hooks.challenge = [&service](const std::string& token, const std::string& answer) {
      service.SetAcmeChallenge(token, answer);
    };
    auto started = tls::Https::Start(std::move(o), std::move(hooks), **server, clock);
    if (started.ok()) {
      https = std::move(*started);
      tls::Https* h = https.get();
      service.SetCertificateIssuer([h](const std::vector<std::string>& d) { h->Issue(d); },
                                   https->root_pem());
      metrics.Gauge("kiln_https_connections", "HTTPS connections open",
                    [h] { return static_cast<double>(h->Connections()); });
      log::Info("HTTPS listening", {{"port", static_cast<int64_t>(https->port())},
                                    {"acme", config.gateway.acme_directory}});
    } else {
      log::Error("HTTPS is off", {{"error", started.status().ToString()}});
    }
  }
  // ---- end TLS listener ----

  auto start_ms = clock.NowMs();
  metrics.Gauge("kiln_uptime_seconds", "seconds since the server started",
                [&clock, start_ms] { return (clock.NowMs() - start_ms) / 1000.0; });
  metrics.Gauge("kiln_sandbox_pool_ready", "started sandboxes waiting in the warm pool",
                [&service] { return static_cast<double>(service.PooledSandboxes()); });
  metrics.Gauge("kiln_http_requests_in_flight", "requests being handled now",
                [&server] { return static_cast<double>((*server)->InFlight()); });
  metrics.Gauge("process_resident_memory_bytes", "resident set size", [] {
    long pages = 0, resident = 0;
    if (FILE* f = std::fopen("/proc/self/statm", "r")) {
      if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) {
        resident = 0;
      }
      std::fclose(f);
    }
    return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
  });

  std::string host =
      options.host.find(':') != std::string::npos ? "[" + options.host + "]" : options.host;
  std::string url = "http://" + host + ":" + std::to_string((*server)->port());
  // Tests and scripts that start the server on port 0 read the address from here.
  if (Status s = crypto::WriteFileAtomic(data_dir / "kiln.addr", url + "\n", 0644); !s.ok()) {
    log::Warn("cannot write kiln.addr", {{"error", s.ToString()}});
  }
  log::Info("kiln server listening", {{"url", url},
                                      {"data_dir", config.server.data_dir},
                                      {"threads", options.threads},
                                      {"pid", static_cast<int64_t>(::getpid())}});

  int exit_code = 0;
  {
    Housekeeper housekeeper(idempotency);
    int sig = 0;
    sigwait(&signals, &sig);
    log::Info(
        "shutting down: finishing requests in flight",
        {{"signal", sig == SIGTERM ? "SIGTERM" : "SIGINT"}, {"in_flight", (*server)->InFlight()}});
    if (https) {  // ---- TLS: no new connections; open ones end with the server's ----
      https->StopAccepting();
    }
    (*server)->Shutdown();
    service.SetCertificateIssuer({}, {});  // ---- TLS: stopped once the server is ----
    https.reset();
  }
  std::error_code ec;
  fs::remove(data_dir / "kiln.addr", ec);
  log::Info("kiln server stopped");
  return exit_code;
}

int Cleanup(const std::string& data_dir) {
  const fs::path dir(AbsolutePath(data_dir));
  if (!fs::exists(dir / "instances")) {
    return 0;  // nothing was ever started here
  }
  auto lock_fd = LockDataDir(dir);
  if (!lock_fd.ok()) {
    return Fail(lock_fd.status());
  }
  runtime::RuntimeOptions options;
  options.data_dir = dir.string();
  options.init_path = BesideExecutable("kiln-init");
  auto runtime = runtime::Runtime::Open(options);
  if (!runtime.ok()) {
    return Fail(runtime.status());
  }
  int removed = 0;
  int failed = 0;
  for (const runtime::InstanceInfo& info : (*runtime)->List()) {
    Status s = (*runtime)->Remove(info.id);
    if (s.ok()) {
      ++removed;
    } else {
      ++failed;
      log::Error("cannot remove instance", {{"id", info.id}, {"error", s.ToString()}});
    }
  }
  // Apps' /data volumes are loop-mounted images: unmounted once no instance holds them.
  std::string volumes = fs::absolute(dir).lexically_normal().string() + "/volumes/";
  std::vector<std::string> mounted;
  if (FILE* f = std::fopen("/proc/self/mountinfo", "r")) {
    char line[4096];
    while (std::fgets(line, sizeof line, f) != nullptr) {
      char point[2048];
      if (std::sscanf(line, "%*s %*s %*s %*s %2047s", point) == 1 &&
          std::string_view(point).starts_with(volumes)) {
        mounted.emplace_back(point);
      }
    }
    std::fclose(f);
  }
  for (const std::string& point : mounted) {
    auto r = RunProcess({"umount", point}, std::chrono::seconds(30));
    if (!r.ok() || r->exit_code != 0) {
      ++failed;
      log::Error("cannot unmount an app volume", {{"path", point}});
    }
  }
  std::printf("Removed %d instance(s) from %s.\n", removed, data_dir.c_str());
  return failed == 0 ? 0 : 1;
}

}  // namespace kiln::daemon
