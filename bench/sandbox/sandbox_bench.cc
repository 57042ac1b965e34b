// Sandbox benchmark (DESIGN.md §9, bench/README.md "bench/sandbox"): time to interactive
// (pooled and cold), exec, 4 KiB file write and read, pause + resume and idle density, against
// a real `kiln server` running real runc instances, beside `runc run`, `runc exec` and `bwrap`
// measured in the same run. Prints a table and writes every sample to
// bench/results/sandbox.json. Nothing is asserted: the goals are printed for reading, and the
// exit status only says whether the run worked.
//
// Usage: kiln_sandbox_bench [--iterations N] [--density N] [--kiln PATH] [--results PATH]
// Needs root, runc and bwrap; bench/sandbox/run.sh builds it and runs it from the repository.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cstring>

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "core/json.h"
#include "core/process.h"
#include "http/http.h"

extern char** environ;

namespace kiln::bench {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;
using Samples = std::vector<double>;

constexpr int kWarmup = 2;  // unmeasured iterations before each measurement
constexpr int kPoolSize = 4;

volatile sig_atomic_t g_interrupted = 0;

void Note(const std::string& text) { std::fprintf(stderr, "bench/sandbox: %s\n", text.c_str()); }

Status Fail(std::string message) { return Status::Internal(std::move(message)); }

double MsSince(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

std::string ReadText(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string Trim(std::string s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back())) != 0) {
    s.pop_back();
  }
  return s;
}

// "a b c" -> {"a", "b", "c"}: command lines that read as they would in a shell.
std::vector<std::string> Words(const std::string& text) {
  std::istringstream in(text);
  std::vector<std::string> out;
  for (std::string word; in >> word;) {
    out.push_back(word);
  }
  return out;
}

std::string Fixed(double v, int digits = 2) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// Linear interpolation between the closest ranks; p in [0, 1].
double Percentile(Samples v, double p) {
  if (v.empty()) {
    return NAN;
  }
  std::sort(v.begin(), v.end());
  double rank = p * static_cast<double>(v.size() - 1);
  size_t lo = static_cast<size_t>(rank);
  size_t hi = std::min(lo + 1, v.size() - 1);
  return v[lo] + (v[hi] - v[lo]) * (rank - static_cast<double>(lo));
}

// /proc/meminfo in KiB, by name ("MemTotal").
std::map<std::string, double> MemInfo() {
  std::map<std::string, double> out;
  std::ifstream in("/proc/meminfo");
  for (std::string line; std::getline(in, line);) {
    if (size_t colon = line.find(':'); colon != std::string::npos) {
      out[line.substr(0, colon)] = std::strtod(line.c_str() + colon + 1, nullptr);
    }
  }
  return out;
}

// Cores kept busy over one second (/proc/stat): other work (a build, tests) skews every number.
double BusyCores() {
  auto sample = [] {
    std::ifstream in("/proc/stat");
    std::string cpu;
    double v[8] = {};
    in >> cpu >> v[0] >> v[1] >> v[2] >> v[3] >> v[4] >> v[5] >> v[6] >> v[7];
    double total = v[0] + v[1] + v[2] + v[3] + v[4] + v[5] + v[6] + v[7];
    return std::pair{total, total - v[3] - v[4]};  // idle and iowait are not busy
  };
  auto [total0, busy0] = sample();
  std::this_thread::sleep_for(1s);
  auto [total1, busy1] = sample();
  double share = total1 > total0 ? (busy1 - busy0) / (total1 - total0) : 0;
  return share * static_cast<double>(sysconf(_SC_NPROCESSORS_ONLN));
}

Result<fs::path> TempDir(const std::string& prefix) {
  std::string templ = (fs::temp_directory_path() / (prefix + "XXXXXX")).string();
  if (mkdtemp(templ.data()) == nullptr) {
    return Status::FromErrno("mkdtemp", errno);
  }
  return fs::path(templ);
}

// Removes `dir` once no mount under it is left (grep -c DIR /proc/self/mountinfo); else keeps
// it, since removing files under a live mount would reach into what is mounted there.
Status RemoveUnmounted(const fs::path& dir, int* leftover) {
  std::ifstream in("/proc/self/mountinfo");
  *leftover = 0;
  for (std::string line; std::getline(in, line);) {
    *leftover += line.find(dir.string()) != std::string::npos ? 1 : 0;
  }
  if (*leftover != 0) {
    return Fail(std::to_string(*leftover) + " mounts left under " + dir.string() + " (kept it)");
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
  return Status::Ok();
}

// ---- child processes ----

// Starts argv (found on PATH) with stdin from /dev/null and stdout + stderr appended to `log`,
// in its own process group: Ctrl-C reaches only the benchmark, which then stops its children.
Result<pid_t> Spawn(const std::vector<std::string>& argv, const std::string& log) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attr;
  posix_spawn_file_actions_init(&actions);
  posix_spawnattr_init(&attr);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, log.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  posix_spawnattr_setpgroup(&attr, 0);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP);
  std::vector<char*> args;
  for (const auto& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  pid_t pid = 0;
  int err = posix_spawnp(&pid, args[0], &actions, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (err != 0) {
    return Status::FromErrno("posix_spawnp(" + argv[0] + ")", err);
  }
  return pid;
}

// Waits for `pid`; its exit code, 128+N when killed by signal N.
int Wait(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// Runs argv to completion; its wall time in ms. A blocking waitpid rather than RunProcess,
// which notices an exit up to 50 ms late (it polls): too coarse to time a reference.
Result<double> TimeProcess(const std::vector<std::string>& argv, const std::string& log) {
  auto start = Clock::now();
  KILN_ASSIGN_OR_RETURN(pid_t pid, Spawn(argv, log));
  int code = Wait(pid);
  double ms = MsSince(start);
  if (code != 0) {
    return Fail(argv[0] + " exited with " + std::to_string(code) + " (see " + log + ")");
  }
  return ms;
}

// Runs an untimed helper command that must succeed; its output.
Result<std::string> Run(const std::vector<std::string>& argv) {
  KILN_ASSIGN_OR_RETURN(ProcessResult r, RunProcess(argv, 120s));
  if (r.exit_code != 0) {
    return Fail(argv[0] + " " + argv[1] + " failed (" + std::to_string(r.exit_code) +
                "): " + r.LastLine());
  }
  return r.output;
}

// ---- kiln server ----

struct Reply {
  std::string body;
  json::value json;

  const json::value* Find(std::string_view pointer) const {
    boost::system::error_code ec;
    return json.find_pointer(pointer, ec);
  }
  double Number(std::string_view pointer) const {
    return Find(pointer) != nullptr && Find(pointer)->is_number()
               ? Find(pointer)->to_number<double>()
               : NAN;
  }
};

// One `kiln server` on 127.0.0.1:0 with a temporary data directory. Stop (also run by the
// destructor) sends SIGTERM, removes every instance with `kiln cleanup`, then the directory
// once no mount under it is left.
class KilnServer {
 public:
  explicit KilnServer(std::string kiln) : kiln_(std::move(kiln)) {}
  ~KilnServer() { (void)Stop(); }
  KilnServer(const KilnServer&) = delete;
  KilnServer& operator=(const KilnServer&) = delete;

  Status Start(int pool_size) {
    KILN_ASSIGN_OR_RETURN(dir_, TempDir("kiln-bench-"));
    std::ofstream(dir_ / "kiln.toml")
        << "[sandboxes]\npool_size = " << pool_size
        << "\nmin_memory_mb = 64\nmax_per_workspace = 100000\n"
           "memory_mb_per_workspace = 1073741824\n"
           "[limits]\nrate_per_second = 1000000\nrate_burst = 1000000\n[log]\nlevel = \"warn\"\n";
    KILN_ASSIGN_OR_RETURN(pid_, Spawn({kiln_, "server", "--listen", "127.0.0.1:0", "--data-dir",
                                       dir_.string(), "--config", (dir_ / "kiln.toml").string()},
                                      (dir_ / "server.log").string()));
    for (auto deadline = Clock::now() + 30s; Clock::now() < deadline;) {
      if (std::string addr = Trim(ReadText(dir_ / "kiln.addr")); addr.starts_with("http://")) {
        url_ = addr;
        key_ = Trim(ReadText(dir_ / "admin.key"));
        return Status::Ok();
      }
      if (int status = 0; waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return Fail("kiln server exited at start: " + ReadText(dir_ / "server.log"));
      }
      std::this_thread::sleep_for(10ms);
    }
    return Fail("kiln server wrote no kiln.addr within 30 s: " + ReadText(dir_ / "server.log"));
  }

  Status Stop() {
    if (dir_.empty()) {
      return Status::Ok();
    }
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      bool exited = false;
      for (auto deadline = Clock::now() + 30s; !exited && Clock::now() < deadline;) {
        int status = 0;
        exited = waitpid(pid_, &status, WNOHANG) == pid_;
        std::this_thread::sleep_for(exited ? 0ms : 10ms);
      }
      if (!exited) {
        Note("kiln server did not stop within 30 s of SIGTERM; killing it");
        kill(pid_, SIGKILL);
        Wait(pid_);
      }
      pid_ = -1;
    }
    Status cleaned = Run({kiln_, "cleanup", "--data-dir", dir_.string()}).status();
    Status removed = RemoveUnmounted(dir_, &leftover_mounts_);
    dir_.clear();
    return cleaned.ok() ? removed : cleaned;
  }

  // One request on its own connection (as the CLI does) with the admin key; not 2xx: an error.
  Result<Reply> Call(const std::string& method, const std::string& path, std::string body = {},
                     const std::string& type = "application/json") const {
    http::ClientRequest req;
    req.method = method;
    req.url = url_ + path;
    req.headers = {{"authorization", "Bearer " + key_}};
    if (!body.empty()) {
      req.headers.emplace_back("content-type", type);
    }
    req.body = std::move(body);
    req.timeout = 120s;
    KILN_ASSIGN_OR_RETURN(http::ClientResponse res, http::Fetch(req));
    if (res.status < 200 || res.status > 299) {
      return Fail(method + " " + path + ": HTTP " + std::to_string(res.status) + " " +
                  res.body.substr(0, 500));
    }
    Reply r{std::move(res.body), {}};
    if (auto parsed = ParseJson(r.body); parsed.ok()) {
      r.json = std::move(*parsed);
    }
    return r;
  }

  const fs::path& dir() const { return dir_; }
  int leftover_mounts() const { return leftover_mounts_; }
  const std::string& url() const { return url_; }
  const std::string& key() const { return key_; }

 private:
  std::string kiln_;
  fs::path dir_;
  pid_t pid_ = -1;
  std::string url_;
  std::string key_;
  int leftover_mounts_ = -1;
};

// One HTTP/1.1 connection kept open across requests, as SDKs keep theirs: the exec latency
// without a TCP handshake per call. Kiln answers non-streamed requests with Content-Length.
class KeptAlive {
 public:
  ~KeptAlive() {
    if (fd_ >= 0) {
      close(fd_);
    }
  }
  Status Connect(const std::string& url) {
    auto colon = url.rfind(':');
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(std::stoi(url.substr(colon + 1))));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (fd_ < 0 || connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return Fail("connect " + url + ": " + std::strerror(errno));
    }
    return Status::Ok();
  }
  // POSTs `body` and answers the response body (2xx only).
  Result<std::string> Post(const std::string& path, const std::string& key,
                           const std::string& body) {
    std::string request =
        "POST " + path + " HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer " + key +
        "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
        "\r\n\r\n" + body;
    if (send(fd_, request.data(), request.size(), MSG_NOSIGNAL) !=
        static_cast<ssize_t>(request.size())) {
      return Fail("send failed");
    }
    std::string in;
    char buf[8192];
    size_t head_end = std::string::npos;
    size_t length = 0;
    while (head_end == std::string::npos || in.size() < head_end + 4 + length) {
      ssize_t n = recv(fd_, buf, sizeof(buf), 0);
      if (n <= 0) {
        return Fail("connection closed");
      }
      in.append(buf, static_cast<size_t>(n));
      if (head_end == std::string::npos && (head_end = in.find("\r\n\r\n")) != std::string::npos) {
        size_t cl = in.find("Content-Length: ");
        length = cl < head_end ? std::stoul(in.substr(cl + 16)) : 0;
      }
    }
    if (in.compare(0, 10, "HTTP/1.1 2") != 0) {
      return Fail("POST " + path + ": " + in.substr(0, 200));
    }
    return in.substr(head_end + 4, length);
  }

 private:
  int fd_ = -1;
};

// Waits until the gauge kiln_sandbox_pool_ready in GET /metrics (Prometheus text) says the
// warm pool is full.
Status WaitForPool(const KilnServer& server) {
  const std::string gauge = "\nkiln_sandbox_pool_ready ";
  for (auto deadline = Clock::now() + 120s; Clock::now() < deadline;) {
    KILN_ASSIGN_OR_RETURN(Reply r, server.Call("GET", "/metrics"));
    size_t at = r.body.find(gauge);
    if (at == std::string::npos) {
      return Fail("no kiln_sandbox_pool_ready in /metrics");
    }
    if (std::strtod(r.body.c_str() + at + gauge.size(), nullptr) >= kPoolSize) {
      return Status::Ok();
    }
    std::this_thread::sleep_for(2ms);
  }
  return Fail("the warm pool did not refill within 120 s");
}

Result<std::string> Create(const KilnServer& server, const std::string& body, bool* pooled) {
  KILN_ASSIGN_OR_RETURN(Reply r, server.Call("POST", "/v1/sandboxes", body));
  *pooled = r.Find("/data/pooled") != nullptr && r.Find("/data/pooled")->is_bool() &&
            r.Find("/data/pooled")->as_bool();
  if (r.Find("/data/id") == nullptr || !r.Find("/data/id")->is_string()) {
    return Fail("create answered no id: " + r.body);
  }
  return std::string(r.Find("/data/id")->as_string());
}

Status ExecTrue(const KilnServer& server, const std::string& id) {
  KILN_ASSIGN_OR_RETURN(
      Reply r, server.Call("POST", "/v1/sandboxes/" + id + "/exec", R"({"command":"true"})"));
  return r.Number("/data/exitCode") == 0 ? Status::Ok() : Fail("exec true: " + r.body);
}

Status KillSandbox(const KilnServer& server, const std::string& id) {
  return server.Call("DELETE", "/v1/sandboxes/" + id).status();
}

// Create + first exec of `true`, end to end from the client; the kill after it is not timed.
Result<double> TimeToInteractive(const KilnServer& server, bool* pooled) {
  auto start = Clock::now();
  KILN_ASSIGN_OR_RETURN(std::string id, Create(server, "{}", pooled));
  KILN_RETURN_IF_ERROR(ExecTrue(server, id));
  double ms = MsSince(start);
  KILN_RETURN_IF_ERROR(KillSandbox(server, id));
  return ms;
}

// ---- references: runc and bwrap ----

// A runc bundle made by hand: a rootfs with the host's /usr bound read-only (through the
// config's mounts) and bin, lib, lib64, sbin symlinks into it as on this merged-/usr host;
// `runc spec` defaults otherwise (network namespace included). Two configs share the rootfs:
// `true` for one-shot `runc run`, `sleep` (infinity) as the target of `runc exec`. runc keeps
// its state in DIR/runc-state; Stop force-deletes every container left there.
class RuncReference {
 public:
  ~RuncReference() { (void)Stop(); }

  Status Prepare() {
    KILN_ASSIGN_OR_RETURN(dir_, TempDir("kiln-bench-runc-"));
    for (const char* d : {"proc", "dev", "sys", "usr", "tmp", "etc", "root"}) {
      fs::create_directories(dir_ / "rootfs" / d);
    }
    for (const char* d : {"bin", "lib", "lib64", "sbin"}) {
      fs::create_symlink(std::string("usr/") + d, dir_ / "rootfs" / d);
    }
    KILN_RETURN_IF_ERROR(WriteBundle("true", {"/bin/true"}));
    return WriteBundle("sleep", {"sleep", "infinity"});
  }

  Result<double> RunTrue() {
    std::string id = "ref-" + std::to_string(next_id_++);
    return TimeProcess(Runc({"run", "--bundle", (dir_ / "true").string(), id}), Log());
  }

  Status StartSleeper() {
    KILN_ASSIGN_OR_RETURN(
        pid_t pid,
        Spawn(Runc({"run", "--detach", "--bundle", (dir_ / "sleep").string(), "sleeper"}), Log()));
    return Wait(pid) == 0 ? Status::Ok() : Fail("runc run --detach failed (see " + Log() + ")");
  }

  Result<double> ExecTrue() { return TimeProcess(Runc({"exec", "sleeper", "true"}), Log()); }

  Result<double> Bwrap() {
    return TimeProcess(Words("bwrap --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib "
                             "/lib --symlink usr/lib64 /lib64 --proc /proc --dev /dev "
                             "--unshare-all --die-with-parent /bin/true"),
                       Log());
  }

  Status Stop() {
    if (dir_.empty()) {
      return Status::Ok();
    }
    auto list = Run(Runc({"list", "--quiet"}));
    Status result = list.status();
    std::istringstream ids(list.ok() ? *list : "");
    for (std::string id; std::getline(ids, id);) {
      if (auto deleted = Run(Runc({"delete", "--force", id})); !deleted.ok()) {
        result = deleted.status();
      }
    }
    Status removed = RemoveUnmounted(dir_, &leftover_mounts_);
    dir_.clear();
    return result.ok() ? removed : result;
  }

  int leftover_mounts() const { return leftover_mounts_; }

 private:
  std::vector<std::string> Runc(std::vector<std::string> args) const {
    args.insert(args.begin(), {"runc", "--root", (dir_ / "runc-state").string()});
    return args;
  }
  std::string Log() const { return (dir_ / "runc.log").string(); }

  Status WriteBundle(const std::string& name, const std::vector<std::string>& args) {
    fs::path bundle = dir_ / name;
    fs::create_directories(bundle);
    KILN_RETURN_IF_ERROR(Run({"runc", "spec", "--bundle", bundle.string()}).status());
    KILN_ASSIGN_OR_RETURN(json::value spec, ParseJson(ReadText(bundle / "config.json")));
    json::object& config = spec.as_object();
    config["process"].as_object()["terminal"] = false;
    config["process"].as_object()["args"] = json::value_from(args);
    config["root"].as_object()["path"] = (dir_ / "rootfs").string();
    config["mounts"].as_array().push_back(
        json::object{{"destination", "/usr"},
                     {"type", "bind"},
                     {"source", "/usr"},
                     {"options", json::array{"rbind", "ro", "nosuid", "nodev"}}});
    std::ofstream(bundle / "config.json") << json::serialize(spec);
    return Status::Ok();
  }

  fs::path dir_;
  int next_id_ = 0;
  int leftover_mounts_ = -1;
};

// ---- measurements ----

struct Options {
  int iterations = 200;
  int density = 200;
  std::string kiln;
  std::string results = "bench/results/sandbox.json";
};

struct Series {
  std::string unit = "ms";
  Samples values;
};

struct Bench {
  std::map<std::string, Series> series;  // every sample, by measurement
  int pool_misses = 0;
  double busy_cores_before_start = 0;
  std::map<std::string, double> meminfo_before, meminfo_after;  // density, in KiB
  int leftover_mounts = 0;  // summed over the temporary directories
};

// Runs `step` kWarmup times unmeasured, then `n` times, appending the times it answers to
// series keys[0], keys[1], ...; about ten progress lines go to stderr.
Status Repeat(Bench& bench, int n, const std::vector<std::string>& keys,
              const std::function<Result<Samples>()>& step) {
  for (int i = -kWarmup; i < n; ++i) {
    if (g_interrupted != 0) {
      return Fail("interrupted");
    }
    KILN_ASSIGN_OR_RETURN(Samples times, step());
    if (i < 0) {
      continue;
    }
    std::string line = std::to_string(i + 1) + "/" + std::to_string(n) + ", p50 so far:";
    for (size_t k = 0; k < keys.size(); ++k) {
      bench.series[keys[k]].values.push_back(times[k]);
      line += " " + keys[k] + " " + Fixed(Percentile(bench.series[keys[k]].values, 0.5)) + " ms";
    }
    if ((i + 1) % std::max(1, n / 10) == 0) {
      Note(line);
    }
  }
  return Status::Ok();
}

// 1a. Pooled time to interactive: before each create, the pool is full again.
Status MeasurePooled(const Options& opt, Bench& bench) {
  KilnServer server(opt.kiln);
  KILN_RETURN_IF_ERROR(server.Start(kPoolSize));
  int iteration = -kWarmup;
  KILN_RETURN_IF_ERROR(Repeat(bench, opt.iterations, {"tti_pooled"}, [&]() -> Result<Samples> {
    KILN_RETURN_IF_ERROR(WaitForPool(server));
    bool pooled = false;
    KILN_ASSIGN_OR_RETURN(double ms, TimeToInteractive(server, &pooled));
    bench.pool_misses += !pooled && iteration >= 0 ? 1 : 0;
    ++iteration;
    return Samples{ms};
  }));
  KILN_RETURN_IF_ERROR(server.Stop());
  bench.leftover_mounts += server.leftover_mounts();
  return Status::Ok();
}

// 2-4. Exec beside runc exec, file write and read, pause + resume, in one running sandbox.
Status MeasureRunning(const Options& opt, const KilnServer& server, RuncReference& runc,
                      Bench& bench) {
  bool pooled = false;
  KILN_ASSIGN_OR_RETURN(std::string id, Create(server, "{}", &pooled));
  KILN_RETURN_IF_ERROR(runc.StartSleeper());
  const std::string base = "/v1/sandboxes/" + id;
  KeptAlive connection;
  KILN_RETURN_IF_ERROR(connection.Connect(server.url()));
  KILN_RETURN_IF_ERROR(Repeat(
      bench, opt.iterations, {"exec", "exec_kept_alive", "runc_exec"}, [&]() -> Result<Samples> {
        auto start = Clock::now();
        KILN_RETURN_IF_ERROR(ExecTrue(server, id));
        double exec = MsSince(start);
        start = Clock::now();
        KILN_ASSIGN_OR_RETURN(std::string answer, connection.Post(base + "/exec", server.key(),
                                                                  R"({"command":"true"})"));
        double kept = MsSince(start);
        if (answer.find("\"exitCode\":0") == std::string::npos) {
          return Fail("exec over the kept-alive connection: " + answer);
        }
        KILN_ASSIGN_OR_RETURN(double runc_exec, runc.ExecTrue());
        return Samples{exec, kept, runc_exec};
      }));
  const std::string data(4096, 'k');
  KILN_RETURN_IF_ERROR(
      Repeat(bench, opt.iterations, {"file_write", "file_read"}, [&]() -> Result<Samples> {
        auto start = Clock::now();
        KILN_RETURN_IF_ERROR(
            server.Call("PUT", base + "/files?path=/root/f", data, "application/octet-stream")
                .status());
        double write = MsSince(start);
        start = Clock::now();
        KILN_ASSIGN_OR_RETURN(Reply read, server.Call("GET", base + "/files?path=/root/f"));
        double read_ms = MsSince(start);
        return read.body == data ? Result<Samples>(Samples{write, read_ms})
                                 : Fail("read back: " + read.body);
      }));
  KILN_RETURN_IF_ERROR(Repeat(bench, opt.iterations, {"pause_resume"}, [&]() -> Result<Samples> {
    auto start = Clock::now();
    KILN_RETURN_IF_ERROR(server.Call("POST", base + "/pause").status());
    KILN_RETURN_IF_ERROR(server.Call("POST", base + "/resume").status());
    return Samples{MsSince(start)};
  }));
  KILN_RETURN_IF_ERROR(ExecTrue(server, id));  // it did resume
  return KillSandbox(server, id);
}

// 5. Density: N idle sandboxes of 64 MiB; host memory, kiln-init RSS, cgroup memory.
Status MeasureDensity(const Options& opt, const KilnServer& server, Bench& bench) {
  std::this_thread::sleep_for(1s);  // let the kills of the earlier steps settle
  bench.meminfo_before = MemInfo();
  std::vector<std::string> ids;
  Status status;
  for (int i = 0; i < opt.density && status.ok(); ++i) {
    bool pooled = false;
    auto start = Clock::now();
    auto id = Create(server, R"({"memoryMb":64})", &pooled);
    bench.series["density_create"].values.push_back(MsSince(start));
    status = g_interrupted != 0 ? Fail("interrupted") : id.status();
    if (id.ok()) {
      ids.push_back(*id);
    }
    if ((i + 1) % std::max(1, opt.density / 10) == 0) {
      Note("density: " + std::to_string(i + 1) + "/" + std::to_string(opt.density) + " created");
    }
  }
  if (status.ok()) {
    std::this_thread::sleep_for(2s);  // idle
    bench.meminfo_after = MemInfo();
    // MiB per sandbox that the sum of /proc/meminfo `fields` grew by (a leading '-' subtracts).
    auto growth = [&](const std::string& key, const std::vector<std::string>& fields) {
      double kib = 0;
      for (const auto& f : fields) {
        double sign = f[0] == '-' ? -1 : 1;
        std::string name = f.substr(f[0] == '-' ? 1 : 0);
        kib += sign * (bench.meminfo_after[name] - bench.meminfo_before[name]);
      }
      bench.series[key] = {"MiB", {kib / 1024 / static_cast<double>(ids.size())}};
    };
    growth("density_host_memory", {"MemTotal", "-MemAvailable"});
    growth("density_kernel_memory", {"SUnreclaim", "PageTables", "KernelStack", "Percpu"});
    Series& rss = bench.series["density_init_rss"] = {"MiB", {}};
    Series& cgroup = bench.series["density_cgroup_memory"] = {"MiB", {}};
    for (const auto& id : ids) {
      std::string pid = Trim(ReadText(server.dir() / "instances" / id / "init.pid"));
      std::string proc = ReadText("/proc/" + pid + "/status");
      size_t at = proc.find("\nVmRSS:");
      rss.values.push_back(at == std::string::npos ? NAN
                                                   : std::strtod(&proc[at + 7], nullptr) / 1024);
      auto r = server.Call("GET", "/v1/sandboxes/" + id);
      cgroup.values.push_back(r.ok() ? r->Number("/data/usage/memoryBytes") / 1048576 : NAN);
    }
  }
  Note("density: killing " + std::to_string(ids.size()) + " sandboxes");
  for (const auto& id : ids) {
    if (Status killed = KillSandbox(server, id); !killed.ok() && status.ok()) {
      status = killed;
    }
  }
  return status;
}

// A server without a pool: 1b. cold time to interactive, interleaved with the references so
// that drift on the machine falls on all three alike; then 2-5.
Status MeasureOnColdServer(const Options& opt, Bench& bench) {
  RuncReference runc;
  KILN_RETURN_IF_ERROR(runc.Prepare());
  KilnServer server(opt.kiln);
  KILN_RETURN_IF_ERROR(server.Start(0));
  KILN_RETURN_IF_ERROR(
      Repeat(bench, opt.iterations, {"tti_cold", "runc_run", "bwrap"}, [&]() -> Result<Samples> {
        bool pooled = false;
        KILN_ASSIGN_OR_RETURN(double cold, TimeToInteractive(server, &pooled));
        KILN_ASSIGN_OR_RETURN(double run, runc.RunTrue());
        KILN_ASSIGN_OR_RETURN(double bwrap, runc.Bwrap());
        return Samples{cold, run, bwrap};
      }));
  KILN_RETURN_IF_ERROR(MeasureRunning(opt, server, runc, bench));
  KILN_RETURN_IF_ERROR(MeasureDensity(opt, server, bench));
  KILN_RETURN_IF_ERROR(server.Stop());
  KILN_RETURN_IF_ERROR(runc.Stop());
  bench.leftover_mounts += server.leftover_mounts() + runc.leftover_mounts();
  return Status::Ok();
}

// ---- report ----

json::object Machine(const Options& opt) {
  utsname u{};
  uname(&u);
  std::string cpu = ReadText("/proc/cpuinfo");
  size_t at = cpu.find("model name");
  cpu = at == std::string::npos ? "?" : cpu.substr(cpu.find(':', at) + 2);
  auto first_line = [](const std::string& command) {
    auto r = RunProcess(Words(command), 10s);
    return r.ok() ? Trim(r->output.substr(0, r->output.find('\n'))) : std::string("?");
  };
  char date[32];
  std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&now));
  return json::object{
      {"nproc", sysconf(_SC_NPROCESSORS_ONLN)},
      {"kernel", std::string(u.release) + " " + u.version},
      {"cpu_model", Trim(cpu.substr(0, cpu.find('\n')))},
      {"mem_total_kib", MemInfo()["MemTotal"]},
      {"cgroup_v2_unified", fs::exists("/sys/fs/cgroup/cgroup.controllers")},
      {"runc_version", first_line("runc --version")},
      {"bwrap_version", first_line("bwrap --version")},
      {"date", date},
      {"git_commit", first_line("git rev-parse HEAD")},
      {"git_dirty", !first_line("git status --porcelain --untracked-files=no").empty()},
      {"kiln", opt.kiln},
  };
}

using Row = std::array<std::string, 6>;  // measurement, p50, p99, ratio, goal, met

void PrintTable(const std::vector<Row>& rows) {
  size_t width[6] = {};
  for (const Row& r : rows) {
    for (size_t c = 0; c < 6; ++c) {
      width[c] = std::max(width[c], r[c].size());
    }
  }
  for (size_t i = 0; i < rows.size(); ++i) {
    std::string line = "|", rule = "|";
    for (size_t c = 0; c < 6; ++c) {
      std::string pad(width[c] - rows[i][c].size(), ' ');
      line += " " + (c >= 1 && c <= 3 ? pad + rows[i][c] : rows[i][c] + pad) + " |";
      rule += std::string(width[c] + 2, '-') + "|";
    }
    std::printf("%s\n%s", line.c_str(), i == 0 ? (rule + "\n").c_str() : "");
  }
}

// Prints the table and answers the JSON report.
json::object Report(const Options& opt, const Bench& b) {
  auto p50 = [&](const std::string& key) { return Percentile(b.series.at(key).values, 0.5); };
  json::object measurements, ratios;
  std::vector<Row> rows = {
      {"measurement", "p50 ms", "p99 ms", "ratio vs reference", "goal", "met"}};
  // One row; `ref`: the reference its ratio (of medians) is to; `goal`: its text, `met`.
  auto row = [&](const std::string& label, const std::string& key, const std::string& ref,
                 const std::string& goal, bool met) {
    const Series& s = b.series.at(key);
    double p99 = Percentile(s.values, 0.99);
    json::object m{
        {"unit", s.unit}, {"p50", p50(key)}, {"p99", p99}, {"samples", json::value_from(s.values)}};
    std::string unit = s.unit == "ms" ? "" : " " + s.unit;
    std::string ratio = ref.empty() ? "" : Fixed(p50(key) / p50(ref), 3) + "x";
    if (!ref.empty() && ref != key) {
      ratios[key + "_vs_" + ref] = p50(key) / p50(ref);
      std::string name = ref;
      std::replace(name.begin(), name.end(), '_', ' ');
      ratio += " " + name;
    }
    if (!goal.empty()) {
      m["goal"] = goal;
      m["met"] = met;
    }
    measurements[key] = std::move(m);
    rows.push_back({label, Fixed(p50(key), 2) + unit, s.values.size() > 1 ? Fixed(p99) + unit : "-",
                    ratio, goal,
                    goal.empty() ? ""
                    : met        ? "met"
                                 : "NOT met"});
  };
  double exec_ratio = p50("exec_kept_alive") / p50("runc_exec");
  row("time to interactive, pooled", "tti_pooled", "runc_run", "p50 <= 10 ms",
      p50("tti_pooled") <= 10);
  row("time to interactive, cold", "tti_cold", "runc_run", "p50 <= 1.5x runc run",
      p50("tti_cold") <= 1.5 * p50("runc_run"));
  row("runc run /bin/true (reference)", "runc_run", "runc_run", "", false);
  row("bwrap /bin/true (reference)", "bwrap", "runc_run", "", false);
  row("exec true (kept-alive connection)", "exec_kept_alive", "runc_exec",
      "p50 <= 2 ms and >= 10x faster than runc exec",
      p50("exec_kept_alive") <= 2 && exec_ratio <= 0.1);
  row("exec true (new connection per call)", "exec", "runc_exec", "", false);
  row("runc exec true (reference)", "runc_exec", "runc_exec", "", false);
  row("file write 4 KiB", "file_write", "", "p50 <= 1 ms", p50("file_write") <= 1);
  row("file read 4 KiB", "file_read", "", "p50 <= 1 ms", p50("file_read") <= 1);
  row("pause + resume", "pause_resume", "", "p50 <= 5 ms", p50("pause_resume") <= 5);
  row("density: create, 64 MiB (cold)", "density_create", "", "", false);
  row("density: host memory per sandbox *", "density_host_memory", "", "<= 2 MiB",
      p50("density_host_memory") <= 2);
  row("density: kiln-init VmRSS", "density_init_rss", "", "p50 <= 1 MiB",
      p50("density_init_rss") <= 1);
  row("density: cgroup memory (usage)", "density_cgroup_memory", "", "", false);
  row("density: kernel memory per sandbox **", "density_kernel_memory", "", "", false);

  size_t n = b.series.at("density_init_rss").values.size();
  std::printf("\nSandbox benchmark: %d iterations (after %d warm-up), %zu idle sandboxes\n\n",
              opt.iterations, kWarmup, n);
  PrintTable(rows);
  auto used = [](std::map<std::string, double> m) { return m["MemTotal"] - m["MemAvailable"]; };
  std::printf(
      "\n* (MemTotal - MemAvailable after - before) / N = (%.0f - %.0f KiB) / %zu: includes kernel "
      "objects (cgroups, namespaces, mounts, page tables), the server's own growth and whatever "
      "else the machine did meanwhile.\n** The growth of SUnreclaim + PageTables + KernelStack + "
      "Percpu in /proc/meminfo, per sandbox: the kernel's share, less disturbed by other "
      "processes.\n"
      "Pooled creates that missed the pool: %d of %d. CPU busy before the start: %.2f cores of "
      "%ld.\nMounts left under the temporary directories after kiln cleanup and runc delete "
      "(grep -c DIR /proc/self/mountinfo): %d.\n",
      used(b.meminfo_after), used(b.meminfo_before), n, b.pool_misses, opt.iterations,
      b.busy_cores_before_start, sysconf(_SC_NPROCESSORS_ONLN), b.leftover_mounts);

  return json::object{
      {"benchmark", "sandbox"},
      {"machine", Machine(opt)},
      {"config", json::object{{"iterations", opt.iterations},
                              {"warmup_iterations", kWarmup},
                              {"density", opt.density},
                              {"pool_size", kPoolSize},
                              {"http", "one connection per request (http::Fetch, as the CLI)"}}},
      {"busy_cores_before_start", b.busy_cores_before_start},
      {"measurements", std::move(measurements)},
      {"ratios", std::move(ratios)},
      {"pool_misses", b.pool_misses},
      {"meminfo_kib_before_density", json::value_from(b.meminfo_before)},
      {"meminfo_kib_after_density", json::value_from(b.meminfo_after)},
      {"notes", json::object{{"density_host_memory",
                              "(MemTotal - MemAvailable) after - before, over N: includes kernel "
                              "objects (cgroups, namespaces, mounts)"},
                             {"density_kernel_memory",
                              "SUnreclaim + PageTables + KernelStack + Percpu, after - before, "
                              "over N"}}},
      {"leftover_mounts", b.leftover_mounts},
  };
}

Status ParseArgs(int argc, char** argv, Options& opt) {
  for (int i = 1; i < argc; i += 2) {
    std::string arg = argv[i];
    std::string value = i + 1 < argc ? argv[i + 1] : "";
    if ((arg == "--iterations" || arg == "--density") && std::atoi(value.c_str()) > 0) {
      (arg == "--iterations" ? opt.iterations : opt.density) = std::atoi(value.c_str());
    } else if (arg == "--kiln" && !value.empty()) {
      opt.kiln = fs::absolute(value).string();
    } else if (arg == "--results" && !value.empty()) {
      opt.results = value;
    } else {
      return Fail(
          "usage: kiln_sandbox_bench [--iterations N] [--density N] [--kiln PATH] "
          "[--results PATH]");
    }
  }
  if (opt.kiln.empty()) {
    opt.kiln = (fs::read_symlink("/proc/self/exe").parent_path() / "kiln").string();
  }
  if (geteuid() != 0) {
    return Fail("sandboxes need root: run it as root");
  }
  for (const char* program : {"runc", "bwrap"}) {
    if (FindProgram(program).empty()) {
      return Fail(std::string(program) + " is not installed (make deps)");
    }
  }
  return access(opt.kiln.c_str(), X_OK) == 0 ? Status::Ok() : Fail("no kiln binary at " + opt.kiln);
}

int Main(int argc, char** argv) {
  Options opt;
  Bench bench;
  Status status = ParseArgs(argc, argv, opt);
  if (status.ok()) {
    struct sigaction sa {};
    sa.sa_handler = [](int) { g_interrupted = 1; };
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    bench.busy_cores_before_start = BusyCores();
    if (bench.busy_cores_before_start > 0.25) {
      Note("warning: the machine is not idle (" + Fixed(bench.busy_cores_before_start) +
           " cores busy before the start); other work skews every number");
    }
    Note("pooled server (pool_size = 4), " + std::to_string(opt.iterations) + " iterations");
    status = MeasurePooled(opt, bench);
  }
  if (status.ok()) {
    Note("server without a pool, beside runc and bwrap");
    status = MeasureOnColdServer(opt, bench);
  }
  if (!status.ok()) {
    Note("failed: " + status.ToString());
    return 1;
  }
  json::object report = Report(opt, bench);
  fs::create_directories(fs::absolute(opt.results).parent_path());
  std::ofstream(opt.results) << json::serialize(report) << "\n";
  std::printf("\nEvery sample: %s\n", opt.results.c_str());
  return 0;
}

}  // namespace
}  // namespace kiln::bench

int main(int argc, char** argv) { return kiln::bench::Main(argc, argv); }
