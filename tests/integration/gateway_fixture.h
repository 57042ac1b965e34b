#pragma once
// Helpers for the gateway's integration tests: one server per test suite with the upstream
// test app (tests/fixtures/upstream) deployed once; HttpConn, a raw HTTP/1.1 connection that
// streams (bodies go through a callback, never whole into memory unless asked) and lets a test
// control every byte; pattern bodies as the upstream app makes them; the server's RSS; and a
// minimal WebSocket client.

#include <openssl/sha.h>

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>

#include "core/crypto.h"
#include "integration/app_fixture.h"

namespace kiln::testing {

inline fs::path UpstreamDir() {
  return fs::path(__FILE__).parent_path().parent_path() / "fixtures" / "upstream";
}

// Pattern bodies: byte i of a body is i % 251 (the upstream app's /big and /chunked).
inline std::string PatternBytes(uint64_t offset, size_t n) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    out[i] = static_cast<char>((offset + i) % 251);
  }
  return out;
}

// Checks a body against the pattern as it streams by.
class PatternCheck {
 public:
  void Feed(std::string_view piece) {
    for (char c : piece) {
      if (first_bad_ < 0 && static_cast<uint8_t>(c) != bytes_ % 251) {
        first_bad_ = static_cast<int64_t>(bytes_);
      }
      ++bytes_;
    }
  }
  uint64_t bytes() const { return bytes_; }
  bool ok() const { return first_bad_ < 0; }
  int64_t first_bad() const { return first_bad_; }

 private:
  uint64_t bytes_ = 0;
  int64_t first_bad_ = -1;
};

// The resident set of a process (VmRSS), in bytes; -1 when it cannot be read.
inline int64_t RssBytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with("VmRSS:")) {
      return std::strtoll(line.c_str() + 6, nullptr, 10) * 1024;
    }
  }
  return -1;
}

// The highest RSS of `pid` seen while it lives (sampled every 5 ms on a thread).
class RssPeak {
 public:
  explicit RssPeak(pid_t pid) : pid_(pid), baseline_(RssBytes(pid)), peak_(baseline_) {
    thread_ = std::thread([this] {
      while (!stop_) {
        int64_t now = RssBytes(pid_);
        int64_t seen = peak_.load();
        while (now > seen && !peak_.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
    });
  }
  ~RssPeak() { Stop(); }
  RssPeak(const RssPeak&) = delete;
  RssPeak& operator=(const RssPeak&) = delete;

  void Stop() {
    stop_ = true;
    if (thread_.joinable()) {
      thread_.join();
    }
  }
  int64_t baseline() const { return baseline_; }
  // Growth over the RSS when sampling began.
  int64_t growth() const { return peak_.load() - baseline_; }

 private:
  pid_t pid_;
  int64_t baseline_;
  std::atomic<int64_t> peak_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

constexpr int64_t kMiB = int64_t{1} << 20;

// A response head as read off the wire.
struct Head {
  int status = 0;
  http::Headers headers;  // names lower-case
  std::string raw;
  bool chunked = false;
  int64_t content_length = -1;

  std::string Header(std::string_view name) const {
    std::string want = Lower(name);
    for (const auto& [n, v] : headers) {
      if (n == want) {
        return v;
      }
    }
    return {};
  }
  bool HasHeader(std::string_view name) const {
    std::string want = Lower(name);
    for (const auto& [n, v] : headers) {
      if (n == want) {
        return true;
      }
    }
    return false;
  }
};

using std::chrono::milliseconds;
using SteadyClock = std::chrono::steady_clock;

inline int64_t MsSince(SteadyClock::time_point start) {
  return std::chrono::duration_cast<milliseconds>(SteadyClock::now() - start).count();
}

// A raw HTTP/1.1 client connection to 127.0.0.1:port. Send may run on one thread while the
// reads run on another (an upload whose echo is read as it comes).
class HttpConn {
 public:
  explicit HttpConn(uint16_t port) {
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
    // A peer that stops reading fails a send after a while instead of blocking the test.
    timeval send_timeout{30, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_SNDTIMEO, &send_timeout, sizeof send_timeout);
  }
  ~HttpConn() { Close(); }
  HttpConn(const HttpConn&) = delete;
  HttpConn& operator=(const HttpConn&) = delete;

  bool connected() const { return fd_ >= 0; }
  // True once a read saw the peer close (or reset) the connection.
  bool closed() const { return closed_; }
  void Close() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = -1;
  }
  // Ends both directions but keeps the descriptor: a Send blocked on another thread returns.
  void Shutdown() {
    if (fd_ >= 0) {
      ::shutdown(fd_, SHUT_RDWR);
    }
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

  // Sends `total` bytes of the pattern, as they are or as chunks of `chunk` bytes (chunked
  // coding) when `chunked`.
  bool SendPattern(uint64_t total, bool chunked = false, size_t chunk = 256 * 1024) {
    // A whole number of periods: a piece starting at offset `sent` is the block from
    // sent % 251 on.
    static const std::string block = PatternBytes(0, 251 * 1024);
    uint64_t sent = 0;
    while (sent < total) {
      size_t n = static_cast<size_t>(std::min<uint64_t>(
          {total - sent, static_cast<uint64_t>(chunk), static_cast<uint64_t>(block.size() - 251)}));
      std::string_view piece = std::string_view(block).substr(static_cast<size_t>(sent % 251), n);
      if (chunked && !Send(ChunkHead(n))) {
        return false;
      }
      if (!Send(piece) || (chunked && !Send("\r\n"))) {
        return false;
      }
      sent += n;
    }
    return !chunked || Send("0\r\n\r\n");
  }

  static std::string ChunkHead(size_t n) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%zx\r\n", n);
    return buf;
  }

  // Reads one response head; nullopt on timeout or close (closed() tells which).
  std::optional<Head> ReadHead(milliseconds timeout) {
    auto deadline = SteadyClock::now() + timeout;
    size_t end;
    while ((end = buf_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill(deadline)) {
        return std::nullopt;
      }
    }
    Head h;
    h.raw = buf_.substr(0, end + 4);
    buf_.erase(0, end + 4);
    if (!h.raw.starts_with("HTTP/1.")) {
      ADD_FAILURE() << "not an HTTP response: " << h.raw.substr(0, 200);
      return std::nullopt;
    }
    h.status = std::atoi(h.raw.c_str() + h.raw.find(' ') + 1);
    size_t pos = h.raw.find("\r\n") + 2;
    while (pos < end) {
      size_t eol = h.raw.find("\r\n", pos);
      std::string line = h.raw.substr(pos, eol - pos);
      size_t colon = line.find(':');
      if (colon != std::string::npos) {
        h.headers.emplace_back(Lower(line.substr(0, colon)), Trim(line.substr(colon + 1)));
      }
      pos = eol + 2;
    }
    h.chunked = Lower(h.Header("transfer-encoding")).find("chunked") != std::string::npos;
    if (h.HasHeader("content-length")) {
      h.content_length = std::strtoll(h.Header("content-length").c_str(), nullptr, 10);
    }
    return h;
  }

  // Reads the body `head` frames (chunked, Content-Length, or up to the close), handing each
  // piece to `sink`. False on timeout, or on a close before the framing says the body ends.
  bool ReadBody(const Head& head, milliseconds timeout,
                const std::function<void(std::string_view)>& sink, bool head_request = false) {
    auto deadline = SteadyClock::now() + timeout;
    if (head_request || head.status / 100 == 1 || head.status == 204 || head.status == 304) {
      return true;
    }
    if (head.chunked) {
      while (true) {
        size_t eol;
        while ((eol = buf_.find("\r\n")) == std::string::npos) {
          if (!Fill(deadline)) {
            return false;
          }
        }
        uint64_t size = std::strtoull(buf_.c_str(), nullptr, 16);
        buf_.erase(0, eol + 2);
        if (size == 0) {
          while (true) {  // trailers, up to the empty line
            while ((eol = buf_.find("\r\n")) == std::string::npos) {
              if (!Fill(deadline)) {
                return false;
              }
            }
            buf_.erase(0, eol + 2);
            if (eol == 0) {
              return true;
            }
          }
        }
        if (!Take(size, deadline, sink)) {
          return false;
        }
        while (buf_.size() < 2) {
          if (!Fill(deadline)) {
            return false;
          }
        }
        buf_.erase(0, 2);
      }
    }
    if (head.content_length >= 0) {
      return Take(static_cast<uint64_t>(head.content_length), deadline, sink);
    }
    while (true) {
      if (!buf_.empty()) {
        sink(buf_);
        buf_.clear();
      }
      if (!Fill(deadline)) {
        return closed_;
      }
    }
  }

  // The next final response (1xx heads are skipped) with its whole body; nullopt on timeout,
  // close before a complete response, or a truncated body.
  std::optional<Reply> ReadResponse(milliseconds timeout, bool head_request = false) {
    auto deadline = SteadyClock::now() + timeout;
    while (true) {
      auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now());
      auto head = ReadHead(std::max(left, milliseconds(1)));
      if (!head) {
        return std::nullopt;
      }
      if (head->status / 100 == 1 && head->status != 101) {
        continue;
      }
      Reply r;
      r.status = head->status;
      r.headers = head->headers;
      left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now());
      if (head->status != 101 &&
          !ReadBody(
              *head, std::max(left, milliseconds(1)),
              [&r](std::string_view piece) { r.body.append(piece); }, head_request)) {
        return std::nullopt;
      }
      if (auto parsed = ParseJson(r.body); parsed.ok()) {
        r.json = std::move(*parsed);
      }
      return r;
    }
  }

  // Sends `request` and reads the final response.
  std::optional<Reply> Exchange(std::string_view request, milliseconds timeout = 10s,
                                bool head_request = false) {
    if (!Send(request)) {
      return std::nullopt;
    }
    return ReadResponse(timeout, head_request);
  }

  // Everything that arrives until the peer closes or `timeout` passes.
  std::string ReadUntilClose(milliseconds timeout) {
    auto deadline = SteadyClock::now() + timeout;
    while (Fill(deadline)) {
    }
    std::string out = std::move(buf_);
    buf_.clear();
    return out;
  }

  // Exactly `n` bytes (from what was read ahead first); false on timeout or close.
  bool ReadExactly(size_t n, milliseconds timeout, std::string* out) {
    auto deadline = SteadyClock::now() + timeout;
    while (buf_.size() < n) {
      if (!Fill(deadline)) {
        return false;
      }
    }
    *out = buf_.substr(0, n);
    buf_.erase(0, n);
    return true;
  }

 private:
  bool Take(uint64_t n, SteadyClock::time_point deadline,
            const std::function<void(std::string_view)>& sink) {
    while (n > 0) {
      if (buf_.empty() && !Fill(deadline)) {
        return false;
      }
      size_t k = static_cast<size_t>(std::min<uint64_t>(n, buf_.size()));
      sink(std::string_view(buf_).substr(0, k));
      buf_.erase(0, k);
      n -= k;
    }
    return true;
  }

  // Appends what the socket has to buf_, waiting up to `deadline`; false on timeout or close.
  bool Fill(SteadyClock::time_point deadline) {
    while (fd_ >= 0 && !closed_) {
      auto left = std::chrono::duration_cast<milliseconds>(deadline - SteadyClock::now());
      if (left.count() <= 0) {
        return false;
      }
      pollfd p{fd_, POLLIN, 0};
      int ready = ::poll(&p, 1, static_cast<int>(left.count()));
      if (ready < 0 && errno == EINTR) {
        continue;
      }
      if (ready <= 0) {
        return false;
      }
      char chunk[64 * 1024];
      ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n <= 0) {
        closed_ = true;
        return false;
      }
      buf_.append(chunk, static_cast<size_t>(n));
      return true;
    }
    return false;
  }

  int fd_ = -1;
  bool closed_ = false;
  std::string buf_;
};

// A request as bytes: `headers` are sent as given (raw lines without CRLF), after Host.
inline std::string RawRequest(std::string_view method, std::string_view target,
                              std::string_view host, const std::vector<std::string>& headers = {},
                              std::string_view body = {}) {
  std::string out = std::string(method) + " " + std::string(target) + " HTTP/1.1\r\n";
  if (!host.empty()) {
    out += "Host: " + std::string(host) + "\r\n";
  }
  for (const auto& h : headers) {
    out += h + "\r\n";
  }
  if (!body.empty() || method == "POST" || method == "PUT") {
    out += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  out += "\r\n";
  out.append(body);
  return out;
}

// WebSocket (RFC 6455): the client side of the handshake and of framing.
inline std::string WsAccept(std::string_view key) {
  std::string text = std::string(key) + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
  unsigned char digest[SHA_DIGEST_LENGTH];
  ::SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return crypto::Base64Encode(std::string_view(reinterpret_cast<char*>(digest), sizeof digest));
}

// A client frame: FIN, `opcode`, masked as clients must.
inline std::string WsFrame(int opcode, std::string_view payload) {
  std::string out;
  out += static_cast<char>(0x80 | opcode);
  if (payload.size() < 126) {
    out += static_cast<char>(0x80 | payload.size());
  } else if (payload.size() < 65536) {
    out += static_cast<char>(0x80 | 126);
    out += static_cast<char>(payload.size() >> 8);
    out += static_cast<char>(payload.size() & 0xff);
  } else {
    out += static_cast<char>(0x80 | 127);
    for (int shift = 56; shift >= 0; shift -= 8) {
      out += static_cast<char>((static_cast<uint64_t>(payload.size()) >> shift) & 0xff);
    }
  }
  std::string mask = crypto::RandomBytes(4);
  out += mask;
  for (size_t i = 0; i < payload.size(); ++i) {
    out += static_cast<char>(payload[i] ^ mask[i & 3]);
  }
  return out;
}

struct WsMessage {
  int opcode = -1;
  std::string payload;
};

// The next server frame (unmasked); nullopt on timeout or close.
inline std::optional<WsMessage> ReadWsFrame(HttpConn& conn, milliseconds timeout) {
  std::string head;
  if (!conn.ReadExactly(2, timeout, &head)) {
    return std::nullopt;
  }
  WsMessage m;
  m.opcode = static_cast<uint8_t>(head[0]) & 0x0f;
  uint64_t len = static_cast<uint8_t>(head[1]) & 0x7f;
  bool masked = (static_cast<uint8_t>(head[1]) & 0x80) != 0;
  std::string ext;
  if (len == 126 || len == 127) {
    size_t n = len == 126 ? 2 : 8;
    if (!conn.ReadExactly(n, timeout, &ext)) {
      return std::nullopt;
    }
    len = 0;
    for (char c : ext) {
      len = (len << 8) | static_cast<uint8_t>(c);
    }
  }
  std::string mask;
  if (masked && !conn.ReadExactly(4, timeout, &mask)) {
    return std::nullopt;
  }
  if (!conn.ReadExactly(static_cast<size_t>(len), timeout, &m.payload)) {
    return std::nullopt;
  }
  for (size_t i = 0; masked && i < m.payload.size(); ++i) {
    m.payload[i] = static_cast<char>(m.payload[i] ^ mask[i & 3]);
  }
  return m;
}

// One `kiln server` for a whole test suite, with the upstream app deployed under each name
// of Apps(): deploying once per suite keeps the suite fast. A derived suite defines
//   static void SetUpTestSuite() { StartSuite(config, {"up", ...}); }
//   static void TearDownTestSuite() { StopSuite(); }
class GatewaySuite : public ::testing::Test {
 protected:
  static void StartSuite(const std::string& config, const std::vector<std::string>& apps) {
    ready_ = false;
    server_.emplace(config);
    if (!server_->Start()) {
      return;
    }
    admin_ = server_->admin_key();
    // Deploy every app at once (the server builds two at a time), then wait for each.
    std::string archive = TarGz(UpstreamDir());
    std::vector<std::string> deployments;
    for (const auto& app : apps) {
      Reply created = Admin("POST", "/v1/apps", R"({"name":")" + app + "\"}");
      if (created.status != 201) {
        ADD_FAILURE() << "create app " << app << ": " << created;
        return;
      }
      Reply up = Upload(app, archive);
      if (up.status != 202) {
        ADD_FAILURE() << "deploy " << app << ": " << up;
        return;
      }
      deployments.push_back(up.Str("/data/id"));
    }
    for (const auto& id : deployments) {
      Reply done = WaitDeployment(id);
      if (done.Str("/data/status") != "live") {
        ADD_FAILURE() << "deployment " << id << " is not live: " << done << "\n"
                      << server_->LogTail(60);
        return;
      }
    }
    ready_ = true;
  }
  static void StopSuite() { server_.reset(); }

  void SetUp() override {
    ASSERT_TRUE(server_ && server_->running() && ready_)
        << "the suite's server or its apps did not start (see the suite's set-up failure)";
  }
  void TearDown() override {
    if (HasFailure() && server_) {
      std::fprintf(stderr, "%s\n", server_->LogTail(60).c_str());
    }
  }

  static ServerProcess& server() { return *server_; }
  static uint16_t port() { return server_->port(); }
  // The Host header of an app, with the listener's port as a browser sends it.
  static std::string Host(const std::string& app) {
    return app + ".localhost:" + std::to_string(port());
  }

  static Reply Admin(const std::string& method, const std::string& path,
                     const std::string& body = {}) {
    return server_->Call(method, path, admin_, body);
  }

  // One request through the gateway on a new connection; nullopt (and a failure) when no
  // complete response came within `timeout`.
  static std::optional<Reply> Fetch(const std::string& app, const std::string& method,
                                    const std::string& target,
                                    const std::vector<std::string>& headers = {},
                                    const std::string& body = {}, milliseconds timeout = 10s) {
    HttpConn conn(port());
    auto r = conn.Exchange(RawRequest(method, target, Host(app), headers, body), timeout,
                           method == "HEAD");
    EXPECT_TRUE(r.has_value()) << method << " " << target << " on " << app
                               << ": no complete response within " << timeout.count() << " ms";
    return r;
  }

  // The upstream app's counters (GET /stats through the gateway).
  static Reply AppStats(const std::string& app) {
    auto r = Fetch(app, "GET", "/stats");
    EXPECT_TRUE(r && r->status == 200) << (r ? r->body : "no response");
    return r ? *r : Reply{};
  }
  static int64_t AppRequests(const std::string& app) { return AppStats(app).Int("/requests"); }

  static std::string AppStatus(const std::string& app) {
    return Admin("GET", "/v1/apps/" + app).Str("/data/status");
  }

 private:
  static Reply Upload(const std::string& app, const std::string& archive) {
    std::string boundary = "kiln-gateway-test-3b9e";
    std::string body = "--" + boundary +
                       "\r\nContent-Disposition: form-data; name=\"source\"; "
                       "filename=\"app.tar.gz\"\r\nContent-Type: application/gzip\r\n\r\n" +
                       archive + "\r\n--" + boundary + "--\r\n";
    return server_->Call("POST", "/v1/apps/" + app + "/deployments", admin_, body,
                         {{"content-type", "multipart/form-data; boundary=" + boundary}});
  }
  static Reply WaitDeployment(const std::string& id) {
    auto deadline = SteadyClock::now() + 90s;
    Reply r;
    while (SteadyClock::now() < deadline) {
      r = Admin("GET", "/v1/deployments/" + id);
      std::string s = r.Str("/data/status");
      if (s != "queued" && s != "building" && s != "deploying") {
        return r;
      }
      std::this_thread::sleep_for(50ms);
    }
    return r;
  }

 protected:
  static inline std::optional<ServerProcess> server_;
  static inline std::string admin_;
  static inline bool ready_ = false;
};

}  // namespace kiln::testing
