#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <future>
#include <stdexcept>
#include <string>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "http/http.h"

namespace kiln::http {
namespace {

using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::StartsWith;

// Echoes what the server understood of the request, so a test can check its parsing.
void Echo(const Request& request, Response& response) {
  if (request.path == "/slow") {
    std::this_thread::sleep_for(milliseconds(300));
  }
  if (request.path == "/throw") {
    throw std::runtime_error("boom");
  }
  std::string body = request.method + " " + request.path;
  for (const auto& [key, value] : request.query) {
    body += " [" + key + "=" + value + "]";
  }
  body += " body=" + request.body;
  response.status = request.method == "POST" ? 201 : 200;
  response.Set("content-type", "text/plain");
  response.Set("x-seen", std::string(request.Header("x-test")));
  response.Set("x-remote", request.remote);
  response.body = std::move(body);
}

// Stands in for the API layer: maps the code to a status and puts it in the body.
void Envelope(const Status& status, Response& response) {
  switch (status.code()) {
    case Code::kInvalidArgument:
      response.status = 400;
      break;
    case Code::kTimeout:
      response.status = 408;
      break;
    case Code::kPayloadTooLarge:
      response.status = 413;
      break;
    default:
      response.status = 500;
      break;
  }
  response.Set("content-type", "application/json");
  response.body = "{\"error\":{\"code\":\"" + status.error_code() + "\"}}";
}

class ServerTest : public ::testing::Test {
 protected:
  void Start(ServerOptions options = {}) {
    options.host = "127.0.0.1";
    options.port = 0;
    if (options.threads == 1) {
      options.threads = 2;
    }
    auto server = Server::Start(options, Echo, Envelope);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
    ASSERT_NE(server_->port(), 0);
  }

  std::string Url(std::string_view path_and_query) const {
    return "http://127.0.0.1:" + std::to_string(server_->port()) + std::string(path_and_query);
  }

  Result<ClientResponse> Get(std::string_view path_and_query) {
    ClientRequest request;
    request.url = Url(path_and_query);
    request.timeout = milliseconds(5000);
    return Fetch(request);
  }

  // A plain blocking socket, for what Fetch cannot do (keep-alive, malformed requests).
  int Connect() const {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(server_->port());
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      ::close(fd);
      return -1;
    }
    return fd;
  }

  static void SendAll(int fd, std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        return;
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
  }

  // Reads one response (headers and a Content-Length body), or what arrived before EOF or
  // the timeout. Leftover bytes stay in `pending`.
  static std::string ReadResponse(int fd, std::string& pending, milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (true) {
      size_t end = pending.find("\r\n\r\n");
      if (end != std::string::npos) {
        size_t length = 0;
        size_t cl = pending.find("Content-Length: ");
        if (cl != std::string::npos && cl < end) {
          length = std::stoul(pending.substr(cl + 16));
        }
        if (pending.size() >= end + 4 + length) {
          std::string response = pending.substr(0, end + 4 + length);
          pending.erase(0, end + 4 + length);
          return response;
        }
      }
      if (!ReadSome(fd, pending, deadline)) {
        std::string response = std::move(pending);
        pending.clear();
        return response;
      }
    }
  }

  // Reads until the server closes the connection (or the timeout); true on EOF.
  static bool ReadToEof(int fd, std::string& out, milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (ReadSome(fd, out, deadline)) {
    }
    return std::chrono::steady_clock::now() < deadline;
  }

  static bool ReadSome(int fd, std::string& out, std::chrono::steady_clock::time_point deadline) {
    auto left =
        std::chrono::duration_cast<milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      return false;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      return false;
    }
    char chunk[4096];
    ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) {
      return false;
    }
    out.append(chunk, static_cast<size_t>(n));
    return true;
  }

  std::unique_ptr<Server> server_;
};

TEST_F(ServerTest, RoundTripThroughFetch) {
  Start();
  ClientRequest request;
  request.method = "POST";
  request.url = Url("/v1/echo?a=1&b=two");
  request.headers = {{"X-Test", "hello"}};
  request.body = "payload";
  auto response = Fetch(request);
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 201);
  EXPECT_EQ(response->body, "POST /v1/echo [a=1] [b=two] body=payload");
  EXPECT_EQ(response->Header("x-seen"), "hello");
  EXPECT_EQ(response->Header("content-type"), "text/plain");
  EXPECT_EQ(response->Header("content-length"), std::to_string(response->body.size()));
  EXPECT_FALSE(response->Header("date").empty());
  EXPECT_THAT(std::string(response->Header("x-remote")), StartsWith("127.0.0.1:"));
}

TEST_F(ServerTest, ClientConnectionReusesItsSocketAndReconnectsWhenTheServerClosedIt) {
  ServerOptions options;
  options.idle_timeout = milliseconds(200);
  Start(options);
  ClientConnection connection;
  ClientRequest request;
  request.method = "POST";
  request.url = Url("/v1/echo");
  request.timeout = milliseconds(5000);
  std::vector<std::string> remotes;
  for (std::string body : {"one", "two"}) {
    request.body = body;
    auto response = connection.Fetch(request);
    ASSERT_TRUE(response.ok()) << response.status().ToString();
    EXPECT_EQ(response->body, "POST /v1/echo body=" + body);
    remotes.emplace_back(response->Header("x-remote"));
  }
  EXPECT_EQ(remotes[0], remotes[1]);  // the same client port: one connection

  // The server closes the idle connection; the next request goes out on a new one.
  std::this_thread::sleep_for(milliseconds(500));
  request.body = "three";
  auto response = connection.Fetch(request);
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->body, "POST /v1/echo body=three");
  EXPECT_NE(std::string(response->Header("x-remote")), remotes[0]);
}

TEST_F(ServerTest, ClientConnectionCallsOnInterruptOnceWhenItsFdTurnsReadable) {
  Start();
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ASSERT_EQ(::write(fds[1], "x", 1), 1);  // readable all along: the wait sees it at once
  ClientConnection connection;
  ClientRequest request;
  request.url = Url("/v1/echo");
  request.timeout = milliseconds(5000);
  int interrupts = 0;
  request.interrupt_fd = fds[0];
  request.on_interrupt = [&] { ++interrupts; };
  auto response = connection.Fetch(request);
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->body, "GET /v1/echo body=");
  EXPECT_EQ(interrupts, 1);  // once, and the answer still came
  ::close(fds[0]);
  ::close(fds[1]);
}

TEST_F(ServerTest, ClientConnectionThatSpinsStillWaitsForASlowAnswer) {
  Start();
  ClientConnection connection;
  ClientRequest request;
  request.timeout = milliseconds(5000);
  request.spin = std::chrono::microseconds(200);
  // Answered within the spin, and long after it (then the wait blocks): both arrive whole.
  for (std::string path : {"/v1/echo", "/slow", "/v1/echo"}) {
    request.url = Url(path);
    auto start = std::chrono::steady_clock::now();
    auto response = connection.Fetch(request);
    ASSERT_TRUE(response.ok()) << path << ": " << response.status().ToString();
    EXPECT_EQ(response->body, "GET " + path + " body=");
    if (path == "/slow") {
      EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(300));
    }
  }
  // A spinning wait still gives up at the timeout.
  request.url = Url("/slow");
  request.timeout = milliseconds(100);
  auto late = connection.Fetch(request);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().error_code(), "TIMEOUT") << late.status().ToString();
}

TEST_F(ServerTest, DecodesPathAndQuery) {
  Start();
  auto response = Get("/files/a%20b/c+d?name=J%C3%BCrgen+M&plus=%2B&flag&=v");
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body,
            "GET /files/a b/c+d [name=J\xC3\xBCrgen M] [plus=+] [flag=] [=v] body=");
}

TEST_F(ServerTest, BadEscapeInTargetIs400) {
  Start();
  int fd = Connect();
  ASSERT_GE(fd, 0);
  SendAll(fd, "GET /x?a=%zz HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string pending;
  std::string response = ReadResponse(fd, pending, milliseconds(5000));
  EXPECT_THAT(response, StartsWith("HTTP/1.1 400 "));
  EXPECT_THAT(response, HasSubstr("Connection: close"));
  ::close(fd);
}

TEST_F(ServerTest, KeepAliveServesSeveralRequestsOnOneConnection) {
  Start();
  int fd = Connect();
  ASSERT_GE(fd, 0);
  std::string pending;
  SendAll(fd, "GET /one HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string first = ReadResponse(fd, pending, milliseconds(5000));
  EXPECT_THAT(first, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(first, HasSubstr("GET /one body="));
  EXPECT_THAT(first, ::testing::Not(HasSubstr("Connection: close")));

  // Two pipelined requests in one write, the second with a body.
  SendAll(fd,
          "GET /two HTTP/1.1\r\nHost: x\r\n\r\n"
          "POST /three HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc");
  std::string second = ReadResponse(fd, pending, milliseconds(5000));
  std::string third = ReadResponse(fd, pending, milliseconds(5000));
  EXPECT_THAT(second, HasSubstr("GET /two body="));
  EXPECT_THAT(third, StartsWith("HTTP/1.1 201 "));
  EXPECT_THAT(third, HasSubstr("POST /three body=abc"));
  ::close(fd);
}

TEST_F(ServerTest, ConnectionCloseIsHonoured) {
  Start();
  int fd = Connect();
  ASSERT_GE(fd, 0);
  SendAll(fd, "GET /bye HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string all;
  EXPECT_TRUE(ReadToEof(fd, all, milliseconds(5000)));
  EXPECT_THAT(all, HasSubstr("Connection: close"));
  EXPECT_THAT(all, HasSubstr("GET /bye body="));
  ::close(fd);
}

TEST_F(ServerTest, Http10KeepAliveIsExplicit) {
  Start();
  int fd = Connect();
  ASSERT_GE(fd, 0);
  std::string pending;
  SendAll(fd, "GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  EXPECT_THAT(ReadResponse(fd, pending, milliseconds(5000)), HasSubstr("Connection: keep-alive"));
  SendAll(fd, "GET /b HTTP/1.0\r\n\r\n");
  std::string all = pending;
  EXPECT_TRUE(ReadToEof(fd, all, milliseconds(5000)));
  EXPECT_THAT(all, HasSubstr("GET /b body="));
  EXPECT_THAT(all, HasSubstr("Connection: close"));
  ::close(fd);
}

TEST_F(ServerTest, BodyOverTheLimitIs413) {
  ServerOptions options;
  options.body_limit_bytes = 1024;
  Start(options);
  ClientRequest request;
  request.method = "POST";
  request.url = Url("/upload");
  request.body = std::string(4096, 'x');
  auto response = Fetch(request);
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 413);
  EXPECT_THAT(response->body, HasSubstr("BODY_TOO_LARGE"));
  EXPECT_EQ(response->Header("connection"), "close");

  // A body at the limit is fine.
  request.body = std::string(1024, 'x');
  response = Fetch(request);
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->status, 201);
}

TEST_F(ServerTest, DeclaredOversizedBodyIsRefusedBeforeItIsSent) {
  ServerOptions options;
  options.body_limit_bytes = 1024;
  Start(options);
  int fd = Connect();
  ASSERT_GE(fd, 0);
  // The body never comes: the answer must not wait for it.
  SendAll(fd, "PUT /big HTTP/1.1\r\nHost: x\r\nContent-Length: 100000000\r\n\r\n");
  std::string pending;
  std::string response = ReadResponse(fd, pending, milliseconds(5000));
  EXPECT_THAT(response, StartsWith("HTTP/1.1 413 "));
  ::close(fd);
}

TEST_F(ServerTest, ChunkedBodyOverTheLimitIs413) {
  ServerOptions options;
  options.body_limit_bytes = 16;
  Start(options);
  int fd = Connect();
  ASSERT_GE(fd, 0);
  SendAll(fd,
          "POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
          "20\r\n0123456789abcdef0123456789abcdef\r\n0\r\n\r\n");
  std::string pending;
  EXPECT_THAT(ReadResponse(fd, pending, milliseconds(5000)), StartsWith("HTTP/1.1 413 "));
  ::close(fd);
}

TEST_F(ServerTest, HeadersOverTheLimitAre431) {
  ServerOptions options;
  options.max_header_bytes = 1024;
  Start(options);
  ClientRequest request;
  request.url = Url("/h");
  request.headers = {{"X-Big", std::string(4096, 'y')}};
  auto response = Fetch(request);
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 431);
  EXPECT_THAT(response->body, HasSubstr("HEADERS_TOO_LARGE"));

  request.headers = {{"X-Small", std::string(100, 'y')}};
  response = Fetch(request);
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->status, 200);
}

TEST_F(ServerTest, MalformedRequestsAre400) {
  Start();
  for (const char* raw : {
           "GARBAGE\r\n\r\n",
           "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
           "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n",
           "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
           "GET / HTTP/1.1\r\nBad Header: x\r\n\r\n",
           "GET / HTTP/1.1\r\n\r\n",  // no Host
           "GET / HTTP/2.0\r\nHost: x\r\n\r\n",
       }) {
    int fd = Connect();
    ASSERT_GE(fd, 0);
    SendAll(fd, raw);
    std::string all;
    EXPECT_TRUE(ReadToEof(fd, all, milliseconds(5000))) << raw;
    EXPECT_THAT(all, StartsWith("HTTP/1.1 400 ")) << raw;
    EXPECT_THAT(all, HasSubstr("BAD_REQUEST")) << raw;
    ::close(fd);
  }
}

TEST_F(ServerTest, StalledClientGets408WhileOthersAreServed) {
  ServerOptions options;
  options.threads = 1;  // the stalled and the healthy client share the one thread
  options.header_timeout = milliseconds(300);
  auto server = Server::Start(options, Echo, Envelope);
  ASSERT_TRUE(server.ok());
  server_ = std::move(server).value();

  int fd = Connect();
  ASSERT_GE(fd, 0);
  auto start = std::chrono::steady_clock::now();
  SendAll(fd, "GET /stall HTTP/1.1\r\nHost: x\r\n");  // half a header, then nothing

  auto other = Get("/other");
  ASSERT_TRUE(other.ok());
  EXPECT_EQ(other->status, 200);
  pollfd p{fd, POLLIN, 0};
  EXPECT_EQ(::poll(&p, 1, 0), 0) << "the stalled client was answered before the other one";

  std::string all;
  EXPECT_TRUE(ReadToEof(fd, all, milliseconds(3000)));
  auto elapsed = std::chrono::steady_clock::now() - start;
  EXPECT_THAT(all, StartsWith("HTTP/1.1 408 "));
  EXPECT_THAT(all, HasSubstr("REQUEST_TIMEOUT"));
  EXPECT_GE(elapsed, milliseconds(300));
  EXPECT_LT(elapsed, milliseconds(2500));
  ::close(fd);
}

TEST_F(ServerTest, SilentConnectionIsClosedWithoutAResponse) {
  ServerOptions options;
  options.header_timeout = milliseconds(200);
  Start(options);
  int fd = Connect();
  ASSERT_GE(fd, 0);
  std::string all;
  EXPECT_TRUE(ReadToEof(fd, all, milliseconds(3000)));
  EXPECT_EQ(all, "");
  ::close(fd);
}

TEST_F(ServerTest, IdleKeepAliveConnectionIsClosedAfterIdleTimeout) {
  ServerOptions options;
  options.idle_timeout = milliseconds(200);
  Start(options);
  int fd = Connect();
  ASSERT_GE(fd, 0);
  std::string pending;
  SendAll(fd, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(ReadResponse(fd, pending, milliseconds(5000)), StartsWith("HTTP/1.1 200 "));
  auto start = std::chrono::steady_clock::now();
  std::string rest;
  EXPECT_TRUE(ReadToEof(fd, rest, milliseconds(3000)));
  EXPECT_EQ(rest, "");
  EXPECT_GE(std::chrono::steady_clock::now() - start, milliseconds(150));
  ::close(fd);
}

TEST_F(ServerTest, ExpectContinueGetsInterimResponse) {
  Start();
  int fd = Connect();
  ASSERT_GE(fd, 0);
  SendAll(fd, "POST /up HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  std::string pending;
  EXPECT_EQ(ReadResponse(fd, pending, milliseconds(5000)), "HTTP/1.1 100 Continue\r\n\r\n");
  SendAll(fd, "hello");
  std::string response = ReadResponse(fd, pending, milliseconds(5000));
  EXPECT_THAT(response, StartsWith("HTTP/1.1 201 "));
  EXPECT_THAT(response, HasSubstr("POST /up body=hello"));
  ::close(fd);
}

TEST_F(ServerTest, HeadOmitsTheBody) {
  Start();
  int fd = Connect();
  ASSERT_GE(fd, 0);
  SendAll(fd,
          "HEAD /h HTTP/1.1\r\nHost: x\r\n\r\n"
          "GET /next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  std::string all;
  EXPECT_TRUE(ReadToEof(fd, all, milliseconds(5000)));
  // The HEAD response announces the GET-sized body but sends none, so the next response
  // follows its blank line directly.
  EXPECT_THAT(all, HasSubstr("Content-Length: 13\r\n"));
  EXPECT_THAT(all, HasSubstr("\r\n\r\nHTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(all, HasSubstr("GET /next body="));
  ::close(fd);
}

TEST_F(ServerTest, HandlerExceptionIs500) {
  Start();
  auto response = Get("/throw");
  ASSERT_TRUE(response.ok());
  EXPECT_EQ(response->status, 500);
  EXPECT_THAT(response->body, HasSubstr("INTERNAL"));
  auto after = Get("/fine");
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(after->status, 200);
}

TEST_F(ServerTest, ShutdownLetsARequestInFlightFinish) {
  Start();
  auto slow = std::async(std::launch::async, [this] { return Get("/slow"); });
  auto wait_until = std::chrono::steady_clock::now() + milliseconds(2000);
  while (server_->InFlight() == 0 && std::chrono::steady_clock::now() < wait_until) {
    std::this_thread::sleep_for(milliseconds(5));
  }
  ASSERT_EQ(server_->InFlight(), 1);
  uint16_t port = server_->port();

  server_->Shutdown();
  auto response = slow.get();
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "GET /slow body=");
  EXPECT_EQ(response->Header("connection"), "close");
  EXPECT_EQ(server_->InFlight(), 0);

  ClientRequest request;
  request.url = "http://127.0.0.1:" + std::to_string(port) + "/after";
  request.timeout = milliseconds(2000);
  auto refused = Fetch(request);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().error_code(), "CONNECT_FAILED");
  EXPECT_THAT(refused.status().message(), HasSubstr("Connection refused"));
  server_->Shutdown();  // idempotent
}

TEST_F(ServerTest, ShutdownClosesIdleConnectionsPromptly) {
  ServerOptions options;
  options.shutdown_grace = milliseconds(10000);
  Start(options);
  int fd = Connect();
  ASSERT_GE(fd, 0);
  std::string pending;
  SendAll(fd, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(ReadResponse(fd, pending, milliseconds(5000)), StartsWith("HTTP/1.1 200 "));

  auto start = std::chrono::steady_clock::now();
  server_->Shutdown();
  EXPECT_LT(std::chrono::steady_clock::now() - start, milliseconds(5000));  // well before grace
  std::string rest;
  EXPECT_TRUE(ReadToEof(fd, rest, milliseconds(1000)));
  EXPECT_EQ(rest, "");
  ::close(fd);
}

TEST_F(ServerTest, ShutdownCutsConnectionsAfterTheGracePeriod) {
  ServerOptions options;
  options.shutdown_grace = milliseconds(200);
  options.header_timeout = milliseconds(10000);
  Start(options);
  int fd = Connect();
  ASSERT_GE(fd, 0);
  SendAll(fd, "GET /stall HTTP/1.1\r\n");  // busy: a request has started
  std::this_thread::sleep_for(milliseconds(50));
  auto start = std::chrono::steady_clock::now();
  server_->Shutdown();
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, milliseconds(200));
  EXPECT_LT(took, milliseconds(5000));
  std::string rest;
  EXPECT_TRUE(ReadToEof(fd, rest, milliseconds(1000)));
  ::close(fd);
}

TEST_F(ServerTest, SecondServerOnTheSamePortFails) {
  Start();
  ServerOptions options;
  options.port = server_->port();
  auto second = Server::Start(options, Echo, Envelope);
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kUnavailable);
  EXPECT_EQ(second.status().error_code(), "LISTEN_FAILED");
  EXPECT_THAT(second.status().message(), HasSubstr("127.0.0.1:" + std::to_string(server_->port())));
  EXPECT_THAT(second.status().message(), HasSubstr("in use"));
}

TEST(FetchTest, RejectsUnsupportedUrls) {
  for (const char* url : {"https://example.com/", "ftp://x/", "not a url", "http:///path"}) {
    ClientRequest request;
    request.url = url;
    auto response = Fetch(request);
    ASSERT_FALSE(response.ok()) << url;
    EXPECT_EQ(response.status().error_code(), "UNSUPPORTED_URL") << url;
  }
}

TEST(FetchTest, TimesOutOnASilentServer) {
  // A listening socket that never answers: the connection completes in the kernel.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);
  ASSERT_EQ(::listen(fd, 4), 0);
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);

  ClientRequest request;
  request.url = "http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/";
  request.timeout = milliseconds(200);
  auto start = std::chrono::steady_clock::now();
  auto response = Fetch(request);
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_FALSE(response.ok());
  EXPECT_EQ(response.status().error_code(), "TIMEOUT");
  EXPECT_LT(took, milliseconds(2000));
  ::close(fd);
}

}  // namespace
}  // namespace kiln::http
