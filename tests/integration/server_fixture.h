#pragma once
// Integration-test helpers (STYLE.md "Tests"): ServerProcess starts the real `kiln server`
// binary ($KILN_BIN) on 127.0.0.1:0 in a fresh temporary data directory and talks real HTTP
// to it; RawClient is a plain TCP socket for what a well-behaved client never does (stall,
// send half a request).
//
// Everything here is header-only (inline) so each *_test.cc can include it.

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "core/json.h"
#include "core/process.h"
#include "http/http.h"

namespace kiln::testing {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

inline std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

inline std::string Trim(std::string s) {
  while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) {
    s.pop_back();
  }
  size_t start = 0;
  while (start < s.size() && s[start] == ' ') {
    ++start;
  }
  return s.substr(start);
}

inline std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  }
  return out;
}

// Mode bits (permissions only) of a file, or -1.
inline int FileMode(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) {
    return -1;
  }
  return static_cast<int>(st.st_mode & 07777);
}

// An HTTP answer with its body parsed as JSON when it is JSON (else `json` is null).
struct Reply {
  int status = 0;
  http::Headers headers;  // names lower-case
  std::string body;
  json::value json;

  std::string Header(std::string_view name) const {
    std::string want = Lower(name);
    for (const auto& [n, v] : headers) {
      if (Lower(n) == want) {
        return v;
      }
    }
    return {};
  }
  bool HasHeader(std::string_view name) const {
    std::string want = Lower(name);
    for (const auto& [n, v] : headers) {
      if (Lower(n) == want) {
        return true;
      }
    }
    return false;
  }
  // JSON Pointer lookups ("/data/id"); nullptr when absent.
  const json::value* Find(std::string_view pointer) const {
    boost::system::error_code ec;
    return json.find_pointer(pointer, ec);
  }
  bool Has(std::string_view pointer) const { return Find(pointer) != nullptr; }
  std::string Str(std::string_view pointer) const {
    const json::value* v = Find(pointer);
    return v != nullptr && v->is_string() ? std::string(v->as_string()) : std::string();
  }
  int64_t Int(std::string_view pointer, int64_t dflt = -1) const {
    const json::value* v = Find(pointer);
    if (v == nullptr) {
      return dflt;
    }
    if (v->is_int64()) {
      return v->as_int64();
    }
    if (v->is_uint64()) {
      return static_cast<int64_t>(v->as_uint64());
    }
    return dflt;
  }
  // False when absent or not a boolean.
  bool Bool(std::string_view pointer) const {
    const json::value* v = Find(pointer);
    return v != nullptr && v->is_bool() && v->as_bool();
  }
  const json::array& Array(std::string_view pointer) const {
    static const json::array kEmpty;
    const json::value* v = Find(pointer);
    return v != nullptr && v->is_array() ? v->as_array() : kEmpty;
  }
  std::string ErrorCode() const { return Str("/error/code"); }
};

// For gtest messages: "HTTP 400 {...body...}".
inline std::ostream& operator<<(std::ostream& os, const Reply& r) {
  return os << "HTTP " << r.status << " " << r.body.substr(0, 2000);
}

inline http::Headers Auth(const std::string& key) { return {{"authorization", "Bearer " + key}}; }

inline std::vector<std::string> Strings(const json::array& a) {
  std::vector<std::string> out;
  for (const auto& v : a) {
    out.push_back(v.is_string() ? std::string(v.as_string()) : "?");
  }
  return out;
}

// Parses a raw HTTP/1.1 response (as RawClient reads it) into a Reply.
inline std::optional<Reply> ParseRawResponse(const std::string& raw) {
  size_t end = raw.find("\r\n\r\n");
  if (end == std::string::npos || !raw.starts_with("HTTP/1.")) {
    return std::nullopt;
  }
  Reply r;
  size_t sp = raw.find(' ');
  r.status = std::atoi(raw.c_str() + sp + 1);
  size_t pos = raw.find("\r\n") + 2;
  while (pos < end) {
    size_t eol = raw.find("\r\n", pos);
    std::string line = raw.substr(pos, eol - pos);
    size_t colon = line.find(':');
    if (colon != std::string::npos) {
      r.headers.emplace_back(Lower(line.substr(0, colon)), Trim(line.substr(colon + 1)));
    }
    pos = eol + 2;
  }
  r.body = raw.substr(end + 4);
  if (auto parsed = ParseJson(r.body); parsed.ok()) {
    r.json = std::move(*parsed);
  }
  return r;
}

// A plain blocking TCP connection to the server.
class RawClient {
 public:
  explicit RawClient(uint16_t port) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ < 0 || ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      ADD_FAILURE() << "cannot connect to 127.0.0.1:" << port << ": " << std::strerror(errno);
      Close();
      return;
    }
    int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }
  ~RawClient() { Close(); }
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  void Close() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = -1;
  }

  bool Send(std::string_view data) {
    while (!data.empty() && fd_ >= 0) {
      ssize_t n = ::send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        return false;
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return data.empty();
  }

  // Reads until the peer closes (`*closed` = true), a complete response has arrived (when
  // `stop_at_response`), or `timeout` passes.
  std::string Read(std::chrono::milliseconds timeout, bool* closed = nullptr,
                   bool stop_at_response = false) {
    std::string out;
    if (closed != nullptr) {
      *closed = false;
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (fd_ >= 0) {
      if (stop_at_response && Complete(out)) {
        break;
      }
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (left.count() <= 0) {
        break;
      }
      pollfd p{fd_, POLLIN, 0};
      int ready = ::poll(&p, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR) {
        continue;
      }
      if (ready <= 0) {
        break;
      }
      char buf[8192];
      ssize_t n = ::recv(fd_, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        if (closed != nullptr) {
          *closed = true;
        }
        break;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    return out;
  }

  // A whole response: head plus Content-Length bytes of body.
  static bool Complete(const std::string& raw) {
    size_t end = raw.find("\r\n\r\n");
    if (end == std::string::npos) {
      return false;
    }
    std::string head = Lower(raw.substr(0, end));
    size_t cl = head.find("\r\ncontent-length:");
    size_t length = cl == std::string::npos ? 0 : std::strtoul(head.c_str() + cl + 17, nullptr, 10);
    return raw.size() >= end + 4 + length;
  }

 private:
  int fd_ = -1;
};

// The real `kiln server` in a child process.
class ServerProcess {
 public:
  // `config` is TOML written to DIR/kiln.toml and passed with --config (none when empty).
  // Without a [sandboxes] section of its own, a test server keeps no warm pool: most tests
  // never start a sandbox, and a pool would cost each of them two containers.
  explicit ServerProcess(std::string config = {}) : config_(std::move(config)) {
    std::string templ = (fs::temp_directory_path() / "kiln-it-XXXXXX").string();
    if (::mkdtemp(templ.data()) == nullptr) {
      ADD_FAILURE() << "mkdtemp: " << std::strerror(errno);
    }
    dir_ = templ;
    if (config_.find("[sandboxes]") == std::string::npos) {
      config_ += "\n[sandboxes]\npool_size = 0\n";
    }
    std::ofstream(dir_ / "kiln.toml") << config_;
  }

  ~ServerProcess() {
    if (running()) {
      // SIGTERM so the data directory is left as a clean stop leaves it; SIGKILL if stuck.
      ::kill(pid_, SIGTERM);
      if (WaitExit(5s) == kStillRunning) {
        Kill9();
      }
    }
    if (::testing::Test::HasFailure()) {
      PrintLogTail();
    }
    // Instances outlive their server by design; a test must not leave any behind.
    RemoveInstances();
    const char* keep = std::getenv("KILN_TEST_KEEP");
    if (keep != nullptr && *keep == '1') {
      std::fprintf(stderr, "[kiln] kept data dir %s\n", dir_.c_str());
    } else {
      std::error_code ec;
      fs::remove_all(dir_, ec);
    }
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  static constexpr int kStillRunning = -1000;

  // `kiln cleanup` on the data directory (the server must be stopped).
  void RemoveInstances() {
    if (!fs::exists(dir_ / "instances")) {
      return;
    }
    auto r = RunProcess({Binary(), "cleanup", "--data-dir", dir_.string()}, 60s);
    if (!r.ok() || r->exit_code != 0) {
      ADD_FAILURE() << "kiln cleanup failed: " << (r.ok() ? r->output : r.status().ToString());
    }
  }

  static std::string Binary() {
    const char* bin = std::getenv("KILN_BIN");
    if (bin != nullptr && *bin != '\0') {
      return bin;
    }
    return fs::exists("./kiln") ? fs::absolute("./kiln").string() : std::string();
  }

  // Starts the server and waits (up to 10 s) for DIR/kiln.addr. On failure, records a test
  // failure with the log tail and returns false.
  [[nodiscard]] bool Start() {
    if (running()) {
      ADD_FAILURE() << "Start: the server is already running";
      return false;
    }
    std::string bin = Binary();
    if (bin.empty()) {
      ADD_FAILURE() << "KILN_BIN is not set (the path of the kiln binary)";
      return false;
    }
    fs::path addr = dir_ / "kiln.addr";
    std::error_code ec;
    fs::remove(addr, ec);

    // Everything the child needs is built before fork: after it, only exec-safe calls.
    std::vector<std::string> args = {bin,           "server",     "--listen",
                                     "127.0.0.1:0", "--data-dir", dir_.string()};
    if (!config_.empty()) {
      args.push_back("--config");
      args.push_back((dir_ / "kiln.toml").string());
    }
    std::vector<char*> argv;
    for (auto& a : args) {
      argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    std::string log = (dir_ / "server.log").string();
    std::string dir = dir_.string();

    pid_t pid = ::fork();
    if (pid < 0) {
      ADD_FAILURE() << "fork: " << std::strerror(errno);
      return false;
    }
    if (pid == 0) {
      int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
      if (fd >= 0) {
        ::dup2(fd, STDOUT_FILENO);
        ::dup2(fd, STDERR_FILENO);
      }
      int null = ::open("/dev/null", O_RDONLY);
      if (null >= 0) {
        ::dup2(null, STDIN_FILENO);
      }
      // The data dir as working directory: no stray ./kiln.toml is picked up.
      if (::chdir(dir.c_str()) != 0) {
        ::_exit(126);
      }
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    pid_ = pid;

    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < deadline) {
      if (fs::exists(addr)) {
        std::string text = Trim(ReadFile(addr));
        if (text.starts_with("http://") && text.rfind(':') > 6) {
          url_ = text;
          port_ = static_cast<uint16_t>(std::atoi(text.c_str() + text.rfind(':') + 1));
          if (admin_key_.empty()) {
            admin_key_ = Trim(ReadFile(dir_ / "admin.key"));
          }
          return true;
        }
      }
      int status = 0;
      if (::waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        ADD_FAILURE() << "kiln server exited during start-up (status " << Describe(status) << ")\n"
                      << LogTail();
        return false;
      }
      std::this_thread::sleep_for(10ms);
    }
    ADD_FAILURE() << "kiln server did not write " << addr << " within 10 s\n" << LogTail();
    Kill9();
    return false;
  }

  // SIGTERM, then waits for the exit; returns the exit code (128+signal when killed by one).
  int Stop(std::chrono::milliseconds timeout = 20s) {
    if (!running()) {
      return kStillRunning;
    }
    Terminate();
    int code = WaitExit(timeout);
    if (code == kStillRunning) {
      ADD_FAILURE() << "kiln server did not exit within " << timeout.count() << " ms of SIGTERM\n"
                    << LogTail();
      Kill9();
    }
    return code;
  }

  void Terminate() {
    if (running()) {
      ::kill(pid_, SIGTERM);
    }
  }

  // Waits for the child to exit; its exit code, or kStillRunning after `timeout`.
  int WaitExit(std::chrono::milliseconds timeout) {
    if (!running()) {
      return kStillRunning;
    }
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      int status = 0;
      pid_t r = ::waitpid(pid_, &status, WNOHANG);
      if (r == pid_) {
        pid_ = -1;
        if (WIFEXITED(status)) {
          return WEXITSTATUS(status);
        }
        if (WIFSIGNALED(status)) {
          return 128 + WTERMSIG(status);
        }
        return -1;
      }
      if (std::chrono::steady_clock::now() >= deadline) {
        return kStillRunning;
      }
      std::this_thread::sleep_for(5ms);
    }
  }

  void Kill9() {
    if (!running()) {
      return;
    }
    ::kill(pid_, SIGKILL);
    int status = 0;
    ::waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  // Stops (SIGTERM) if running and starts again on the same data directory.
  [[nodiscard]] bool Restart() {
    if (running()) {
      int code = Stop();
      EXPECT_EQ(code, 0) << "exit code of the stopped server";
    }
    return Start();
  }

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  const std::string& url() const { return url_; }
  uint16_t port() const { return port_; }
  const fs::path& dir() const { return dir_; }
  // The bootstrap admin key from DIR/admin.key (read at the first start).
  const std::string& admin_key() const { return admin_key_; }

  // One HTTP exchange; a transport failure is a Status.
  Result<Reply> TryRequest(const std::string& method, const std::string& path,
                           const std::string& body = {}, const http::Headers& headers = {},
                           std::chrono::milliseconds timeout = 10s) const {
    http::ClientRequest req;
    req.method = method;
    req.url = url_ + path;
    req.headers = headers;
    req.body = body;
    req.timeout = timeout;
    if (!body.empty()) {
      bool has_type = false;
      for (const auto& [n, v] : headers) {
        has_type = has_type || Lower(n) == "content-type";
      }
      if (!has_type) {
        req.headers.emplace_back("content-type", "application/json");
      }
    }
    auto res = http::Fetch(req);
    if (!res.ok()) {
      return res.status();
    }
    Reply r;
    r.status = res->status;
    r.headers = std::move(res->headers);
    r.body = std::move(res->body);
    if (auto parsed = ParseJson(r.body); parsed.ok()) {
      r.json = std::move(*parsed);
    }
    return r;
  }

  // As TryRequest; a transport failure is a test failure (and status 0).
  Reply Request(const std::string& method, const std::string& path, const std::string& body = {},
                const http::Headers& headers = {}) const {
    auto r = TryRequest(method, path, body, headers);
    if (!r.ok()) {
      ADD_FAILURE() << method << " " << path << ": " << r.status().ToString();
      return Reply{};
    }
    return std::move(*r);
  }

  // Request with `Authorization: Bearer key` plus `extra` headers.
  Reply Call(const std::string& method, const std::string& path, const std::string& key,
             const std::string& body = {}, http::Headers extra = {}) const {
    http::Headers headers = Auth(key);
    for (auto& h : extra) {
      headers.push_back(std::move(h));
    }
    return Request(method, path, body, headers);
  }

  std::string LogTail(size_t lines = 40) const {
    std::string text = ReadFile(dir_ / "server.log");
    size_t pos = text.size();
    for (size_t n = 0; n <= lines && pos > 0;) {
      pos = text.rfind('\n', pos - 1);
      if (pos == std::string::npos) {
        pos = 0;
        break;
      }
      ++n;
    }
    return "---- server.log (" + (dir_ / "server.log").string() + ", tail) ----\n" +
           text.substr(pos) + "\n---- end of server.log ----";
  }
  void PrintLogTail() const { std::fprintf(stderr, "%s\n", LogTail().c_str()); }

 private:
  static std::string Describe(int status) {
    if (WIFEXITED(status)) {
      return "exit " + std::to_string(WEXITSTATUS(status));
    }
    if (WIFSIGNALED(status)) {
      return "signal " + std::to_string(WTERMSIG(status));
    }
    return std::to_string(status);
  }

  std::string config_;
  fs::path dir_;
  pid_t pid_ = -1;
  std::string url_;
  uint16_t port_ = 0;
  std::string admin_key_;
};

// A test fixture with one running server; override Config() for a kiln.toml.
class ServerTest : public ::testing::Test {
 protected:
  virtual std::string Config() { return {}; }
  void SetUp() override {
    server_.emplace(Config());
    ASSERT_TRUE(server_->Start());
    admin_ = server_->admin_key();
    ASSERT_TRUE(admin_.starts_with("kiln_sk_")) << "admin.key holds \"" << admin_ << "\"";
  }
  void TearDown() override { server_.reset(); }

  ServerProcess& server() { return *server_; }
  Reply Call(const std::string& method, const std::string& path, const std::string& key,
             const std::string& body = {}, http::Headers extra = {}) {
    return server_->Call(method, path, key, body, std::move(extra));
  }
  // POST /v1/keys with the admin key; answers the `data` object (id, secret, ...).
  json::object MintKey(const std::string& name, const std::string& scopes_json = "",
                       const std::string& key = "") {
    std::string body = R"({"name":")" + name + "\"";
    if (!scopes_json.empty()) {
      body += R"(,"scopes":)" + scopes_json;
    }
    body += "}";
    Reply r = Call("POST", "/v1/keys", key.empty() ? admin_ : key, body);
    EXPECT_EQ(r.status, 201) << r;
    const json::value* d = r.Find("/data");
    return d != nullptr && d->is_object() ? d->as_object() : json::object();
  }
  // Every item of a paginated list, following next_cursor (`limit` per page).
  std::vector<json::object> ListAll(const std::string& path, const std::string& key,
                                    int limit = 200) {
    std::vector<json::object> out;
    std::string cursor;
    for (int page = 0; page < 10000; ++page) {
      std::string target = path + (path.find('?') == std::string::npos ? "?" : "&") +
                           "limit=" + std::to_string(limit);
      if (!cursor.empty()) {
        target += "&cursor=" + http::PercentEncode(cursor);
      }
      Reply r = Call("GET", target, key);
      EXPECT_EQ(r.status, 200) << r;
      if (r.status != 200) {
        break;
      }
      for (const auto& item : r.Array("/data")) {
        out.push_back(item.as_object());
      }
      const json::value* more = r.Find("/has_more");
      if (more == nullptr || !more->is_bool() || !more->as_bool()) {
        break;
      }
      cursor = r.Str("/next_cursor");
      EXPECT_FALSE(cursor.empty()) << "has_more without next_cursor: " << r;
      if (cursor.empty()) {
        break;
      }
    }
    return out;
  }

  std::optional<ServerProcess> server_;
  std::string admin_;
};

inline std::string S(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_string() ? std::string(it->value().as_string())
                                                  : std::string();
}

}  // namespace kiln::testing
