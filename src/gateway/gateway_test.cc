// The gateway end to end: a real server whose handler is the gateway, in front of a real
// upstream server reached through ConnectInNetns with the test's own namespace.

#include "gateway/gateway.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "core/json.h"

namespace kiln::gateway {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;
using ::testing::StartsWith;

TEST(AppLabelTest, AcceptsOneLabelUnderTheBaseDomain) {
  EXPECT_EQ(Gateway::AppLabel("myapp.localhost", "localhost"), "myapp");
  EXPECT_EQ(Gateway::AppLabel("myapp.localhost:8080", "localhost"), "myapp");
  EXPECT_EQ(Gateway::AppLabel("MyApp.LocalHost.", "localhost"), "myapp");
  EXPECT_EQ(Gateway::AppLabel("my-app-2.localhost.:80", "localhost"), "my-app-2");
  EXPECT_EQ(Gateway::AppLabel("shop.apps.example.com", "apps.example.com"), "shop");
  EXPECT_EQ(Gateway::AppLabel("shop.apps.example.com", "Apps.Example.com."), "shop");
  EXPECT_EQ(Gateway::AppLabel(std::string(63, 'a') + ".localhost", "localhost"),
            std::string(63, 'a'));
}

TEST(AppLabelTest, RejectsEverythingElse) {
  for (const char* host :
       {"", "localhost", "localhost:8080", ".localhost", "a.b.localhost", "my_app.localhost",
        "myapp.localhost.evil.com", "myapplocalhost", "xlocalhost", "127.0.0.1", "127.0.0.1:8080",
        "[::1]:8080", "[::1]", "::1", "myapp.localhost:", "myapp.localhost:x",
        "myapp.localhost:80:80", "my app.localhost", "myapp..localhost"}) {
    EXPECT_EQ(Gateway::AppLabel(host, "localhost"), "") << host;
  }
  EXPECT_EQ(Gateway::AppLabel(std::string(64, 'a') + ".localhost", "localhost"), "");
  // An IPv4 address under a numeric base domain is still an address.
  EXPECT_EQ(Gateway::AppLabel("10.0.0.1", "0.0.1"), "");
  EXPECT_EQ(Gateway::AppLabel("myapp.localhost", ""), "");
}

// What the upstream app saw of one request.
struct Seen {
  std::string method;
  std::string target;
  http::Headers headers;
  std::string body;
  std::string Header(std::string_view name) const {
    for (const auto& [key, value] : headers) {
      if (key == name) {
        return value;
      }
    }
    return "<none>";
  }
};

// A port nothing listens on: bound and closed again.
uint16_t ClosedPort() {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  socklen_t len = sizeof(addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

// A listening socket on 127.0.0.1 that the test drives by hand (accept never called unless
// the test does): connects succeed, nothing answers.
class RawListener {
 public:
  RawListener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    ::listen(fd_, 16);
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
  }
  ~RawListener() { ::close(fd_); }
  RawListener(const RawListener&) = delete;
  RawListener& operator=(const RawListener&) = delete;
  int fd() const { return fd_; }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

std::shared_ptr<service::AppRoute> MakeRoute(std::string name, uint16_t port,
                                             std::string instance_id = "sbx_a") {
  auto route = std::make_shared<service::AppRoute>();
  route->app_id = "app_" + name;
  route->workspace_id = "ws_test";
  route->name = std::move(name);
  route->instance_id = std::move(instance_id);
  route->netns_path = "/proc/self/ns/net";
  route->port = port;
  return route;
}

class GatewayTest : public ::testing::Test {
 protected:
  void SetUp() override {
    http::ServerOptions options;
    options.threads = 2;
    auto upstream = http::Server::Start(
        options,
        [this](const http::Request& request, http::Response& response) {
          Upstream(request, response);
        },
        [](const Status&, http::Response& response) { response.status = 500; });
    ASSERT_TRUE(upstream.ok()) << upstream.status().ToString();
    upstream_ = std::move(upstream).value();
  }

  void TearDown() override {
    if (server_) {
      server_->Shutdown();
    }
    gateway_.reset();
    if (upstream_) {
      upstream_->Shutdown();
    }
  }

  // The app: echoes what it got, and records it.
  void Upstream(const http::Request& request, http::Response& response) {
    {
      std::lock_guard lock(mu_);
      seen_.push_back(Seen{request.method, request.target, request.headers, request.body});
    }
    if (request.path == "/big") {
      response.body = std::string(5000, 'b');
      return;
    }
    if (request.path == "/in-flight") {
      auto route = Find("myapp");
      response.body = "in_flight=" + std::to_string(route ? route->in_flight.load() : -1);
      return;
    }
    response.status = request.method == "POST" ? 201 : 200;
    response.Set("content-type", "text/plain");
    response.Set("keep-alive", "timeout=5");
    response.Set("proxy-authenticate", "Basic");
    response.Set("x-app", "yes");
    response.headers.emplace_back("set-cookie", "a=1");
    response.headers.emplace_back("set-cookie", "b=2");
    response.body = request.method + " " + request.target + " body=" + request.body;
  }

  // Starts the gateway and the server in front of it; `configure` adjusts the Deps.
  void StartGateway(const std::function<void(Deps&)>& configure = {}) {
    Deps deps;
    deps.find = [this](std::string_view name) -> std::shared_ptr<const service::AppRoute> {
      ++finds_;
      if (find_override_) {
        return find_override_(name);
      }
      return Find(name);
    };
    deps.wake = [this](const std::string& app_id) {
      std::lock_guard lock(mu_);
      woken_.push_back(app_id);
      return Status::Ok();
    };
    deps.touch = [this](const std::string& app_id) {
      std::lock_guard lock(mu_);
      touched_.push_back(app_id);
    };
    deps.threads = 4;
    deps.connect_timeout = 1s;
    deps.response_timeout = 5s;
    if (configure) {
      configure(deps);
    }
    gateway_ = std::make_unique<Gateway>(std::move(deps));
    http::ServerOptions options;
    options.threads = 2;
    auto server = http::Server::Start(
        options,
        [this](const http::Request& request, http::Response& response) {
          if (!gateway_->Handle(request, response)) {
            response.body = "api";
          }
        },
        [](const Status&, http::Response& response) { response.status = 500; });
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
  }

  std::shared_ptr<service::AppRoute> Find(std::string_view name) {
    std::lock_guard lock(mu_);
    auto it = routes_.find(std::string(name));
    return it == routes_.end() ? nullptr : it->second;
  }

  void AddRoute(std::shared_ptr<service::AppRoute> route) {
    std::lock_guard lock(mu_);
    routes_[route->name] = std::move(route);
  }

  Result<http::ClientResponse> Send(std::string method, std::string host, std::string target,
                                    http::Headers headers = {}, std::string body = {}) {
    http::ClientRequest request;
    request.method = std::move(method);
    request.url = "http://127.0.0.1:" + std::to_string(server_->port()) + target;
    request.headers = std::move(headers);
    request.headers.emplace_back("host", std::move(host));
    request.body = std::move(body);
    request.timeout = 10s;
    return http::Fetch(request);
  }

  std::vector<Seen> seen() {
    std::lock_guard lock(mu_);
    return seen_;
  }

  std::string AppHost() const { return "myapp.localhost:" + std::to_string(server_->port()); }

  std::unique_ptr<http::Server> upstream_;
  std::unique_ptr<Gateway> gateway_;
  std::unique_ptr<http::Server> server_;
  std::mutex mu_;
  std::map<std::string, std::shared_ptr<service::AppRoute>> routes_;
  std::vector<Seen> seen_;
  std::vector<std::string> woken_;
  std::vector<std::string> touched_;
  std::atomic<int> finds_{0};
  std::function<std::shared_ptr<const service::AppRoute>(std::string_view)> find_override_;
};

json::object ErrorOf(const http::ClientResponse& response) {
  auto parsed = ParseJson(response.body);
  if (!parsed.ok() || !parsed->is_object() || !parsed->as_object().contains("error")) {
    ADD_FAILURE() << "not an error envelope: " << response.body;
    return {};
  }
  return parsed->as_object().at("error").as_object();
}

TEST_F(GatewayTest, OtherHostsGoToTheApi) {
  StartGateway();
  for (const char* host : {"localhost", "127.0.0.1", "a.b.localhost", "example.com"}) {
    auto response = Send("GET", host, "/");
    ASSERT_TRUE(response.ok()) << response.status().ToString();
    EXPECT_EQ(response->body, "api") << host;
  }
  EXPECT_EQ(finds_.load(), 0);
  EXPECT_TRUE(seen().empty());
}

TEST_F(GatewayTest, ForwardsGetAndPost) {
  AddRoute(MakeRoute("myapp", upstream_->port()));
  StartGateway();

  auto get = Send("GET", AppHost(), "/hello?x=1");
  ASSERT_TRUE(get.ok()) << get.status().ToString();
  EXPECT_EQ(get->status, 200);
  EXPECT_EQ(get->body, "GET /hello?x=1 body=");
  EXPECT_EQ(get->Header("x-app"), "yes");
  EXPECT_THAT(std::string(get->Header("x-request-id")), StartsWith("req_"));
  // Hop-by-hop headers of the app's response stay behind; repeated headers all come through.
  EXPECT_EQ(get->Header("keep-alive"), "");
  EXPECT_EQ(get->Header("proxy-authenticate"), "");
  int cookies = 0;
  for (const auto& [name, value] : get->headers) {
    cookies += name == "set-cookie" ? 1 : 0;
  }
  EXPECT_EQ(cookies, 2);

  auto post =
      Send("POST", "MyApp.LocalHost", "/items", {{"content-type", "text/plain"}}, "hello body");
  ASSERT_TRUE(post.ok()) << post.status().ToString();
  EXPECT_EQ(post->status, 201);
  EXPECT_EQ(post->body, "POST /items body=hello body");

  auto requests = seen();
  ASSERT_EQ(requests.size(), 2u);
  EXPECT_EQ(requests[1].method, "POST");
  EXPECT_EQ(requests[1].body, "hello body");
  EXPECT_EQ(requests[1].Header("content-length"), "10");
  EXPECT_EQ(requests[1].Header("content-type"), "text/plain");
  std::lock_guard lock(mu_);
  EXPECT_EQ(touched_, (std::vector<std::string>{"app_myapp", "app_myapp"}));
  EXPECT_TRUE(woken_.empty());
}

TEST_F(GatewayTest, RewritesRequestHeaders) {
  AddRoute(MakeRoute("myapp", upstream_->port()));
  StartGateway();
  auto response = Send("GET", AppHost(), "/h",
                       {{"connection", "close, x-hop"},
                        {"x-hop", "1"},
                        {"keep-alive", "300"},
                        {"proxy-authorization", "Basic eA=="},
                        {"te", "trailers"},
                        {"upgrade", "h2c"},
                        {"x-kiln-user", "admin"},
                        {"X-Kiln-Request-Id", "req_forged"},
                        {"x-forwarded-for", "10.1.2.3"},
                        {"x-forwarded-host", "evil.example"},
                        {"x-custom", "kept"}});
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  ASSERT_EQ(response->status, 200) << response->body;
  auto requests = seen();
  ASSERT_EQ(requests.size(), 1u);
  const Seen& got = requests[0];
  for (const char* gone :
       {"x-hop", "keep-alive", "proxy-authorization", "te", "upgrade", "x-kiln-user"}) {
    EXPECT_EQ(got.Header(gone), "<none>") << gone;
  }
  EXPECT_EQ(got.Header("connection"), "close");
  EXPECT_EQ(got.Header("x-custom"), "kept");
  EXPECT_EQ(got.Header("host"), AppHost());
  EXPECT_EQ(got.Header("x-forwarded-for"), "10.1.2.3, 127.0.0.1");
  EXPECT_EQ(got.Header("x-forwarded-host"), AppHost());
  EXPECT_EQ(got.Header("x-forwarded-proto"), "http");
  EXPECT_EQ(got.Header("x-kiln-request-id"), std::string(response->Header("x-request-id")));
  int request_ids = 0;
  for (const auto& [name, value] : got.headers) {
    request_ids += name == "x-kiln-request-id" ? 1 : 0;
  }
  EXPECT_EQ(request_ids, 1);
}

TEST_F(GatewayTest, HeadHasNoBody) {
  AddRoute(MakeRoute("myapp", upstream_->port()));
  StartGateway();
  auto response = Send("HEAD", AppHost(), "/page");
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "");
  EXPECT_EQ(response->Header("x-app"), "yes");
  auto requests = seen();
  ASSERT_EQ(requests.size(), 1u);
  EXPECT_EQ(requests[0].method, "HEAD");

  // The connection is still in a good state for the next exchange.
  auto after = Send("GET", AppHost(), "/after");
  ASSERT_TRUE(after.ok()) << after.status().ToString();
  EXPECT_EQ(after->body, "GET /after body=");
}

TEST_F(GatewayTest, UnknownAppIsNotFound) {
  StartGateway();
  auto response = Send("GET", "nope.localhost", "/");
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 404);
  EXPECT_THAT(std::string(response->Header("content-type")), HasSubstr("application/json"));
  EXPECT_THAT(std::string(response->Header("x-request-id")), StartsWith("req_"));
  json::object error = ErrorOf(*response);
  EXPECT_EQ(GetString(error, "code"), "APP_NOT_FOUND");
  EXPECT_EQ(GetString(error, "message"), "no app named nope is running");
  EXPECT_FALSE(GetString(error, "hint").empty());

  // A browser gets a page.
  auto page =
      Send("GET", "nope.localhost", "/", {{"accept", "text/html,application/xhtml+xml,*/*;q=0.8"}});
  ASSERT_TRUE(page.ok()) << page.status().ToString();
  EXPECT_EQ(page->status, 404);
  EXPECT_THAT(std::string(page->Header("content-type")), StartsWith("text/html"));
  EXPECT_THAT(page->body, HasSubstr("no app named nope is running"));
  EXPECT_THAT(page->body, HasSubstr(std::string(page->Header("x-request-id"))));
}

TEST_F(GatewayTest, ClosedPortIsBadGateway) {
  AddRoute(MakeRoute("myapp", ClosedPort()));
  StartGateway();
  auto response = Send("GET", AppHost(), "/");
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 502);
  json::object error = ErrorOf(*response);
  EXPECT_EQ(GetString(error, "code"), "UPSTREAM_FAILED");
  EXPECT_THAT(GetString(error, "message"), HasSubstr("not answering on its port"));
  EXPECT_THAT(std::string(response->Header("x-request-id")), StartsWith("req_"));
  EXPECT_EQ(Find("myapp")->in_flight.load(), 0);
}

TEST_F(GatewayTest, StalledAppIsGatewayTimeout) {
  RawListener stalled;  // accepts connections in the kernel, never answers
  AddRoute(MakeRoute("myapp", stalled.port()));
  StartGateway([](Deps& deps) { deps.response_timeout = 300ms; });
  auto start = std::chrono::steady_clock::now();
  auto response = Send("GET", AppHost(), "/");
  auto took = std::chrono::steady_clock::now() - start;
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 504);
  EXPECT_EQ(GetString(ErrorOf(*response), "code"), "UPSTREAM_TIMEOUT");
  EXPECT_GE(took, 290ms);
  EXPECT_LT(took, 3s);
  EXPECT_EQ(Find("myapp")->in_flight.load(), 0);
}

TEST_F(GatewayTest, MalformedOrTruncatedResponseIsBadGateway) {
  for (std::string reply : {std::string("this is not http\r\n\r\n"),
                            std::string("HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nshort")}) {
    RawListener app;
    std::thread answer([&] {
      int fd = ::accept4(app.fd(), nullptr, nullptr, SOCK_CLOEXEC);
      char buf[4096];
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      (void)n;
      ::send(fd, reply.data(), reply.size(), MSG_NOSIGNAL);
      ::close(fd);
    });
    AddRoute(MakeRoute("myapp", app.port()));
    if (!server_) {
      StartGateway();
    }
    auto response = Send("GET", AppHost(), "/");
    answer.join();
    ASSERT_TRUE(response.ok()) << response.status().ToString();
    EXPECT_EQ(response->status, 502) << reply;
    EXPECT_EQ(GetString(ErrorOf(*response), "code"), "UPSTREAM_FAILED");
  }
}

TEST_F(GatewayTest, LargeResponseIsBadGateway) {
  AddRoute(MakeRoute("myapp", upstream_->port()));
  StartGateway([](Deps& deps) { deps.response_limit_bytes = 1000; });
  auto response = Send("GET", AppHost(), "/big");
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 502);
  EXPECT_THAT(GetString(ErrorOf(*response), "message"), HasSubstr("larger than 1000 bytes"));
}

TEST_F(GatewayTest, RetriesOnceOnASwitchedRoute) {
  // A deploy switched the app from instance A (now stopped) to instance B while the request
  // was on its way: the first lookup still gives A.
  auto old_route = MakeRoute("myapp", ClosedPort(), "sbx_old");
  auto new_route = MakeRoute("myapp", upstream_->port(), "sbx_new");
  std::atomic<int> lookups{0};
  find_override_ = [&](std::string_view) -> std::shared_ptr<const service::AppRoute> {
    return lookups++ == 0 ? old_route : new_route;
  };
  StartGateway();
  auto response = Send("GET", AppHost(), "/switched");
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "GET /switched body=");
  EXPECT_EQ(lookups.load(), 2);
  EXPECT_EQ(old_route->in_flight.load(), 0);
  EXPECT_EQ(new_route->in_flight.load(), 0);

  // The same route on the second lookup: no retry, a 502.
  find_override_ = [&](std::string_view) -> std::shared_ptr<const service::AppRoute> {
    return old_route;
  };
  auto failed = Send("GET", AppHost(), "/");
  ASSERT_TRUE(failed.ok()) << failed.status().ToString();
  EXPECT_EQ(failed->status, 502);
}

TEST_F(GatewayTest, InFlightCountsTheExchange) {
  AddRoute(MakeRoute("myapp", upstream_->port()));
  StartGateway();
  auto response = Send("GET", AppHost(), "/in-flight");
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->body, "in_flight=1");
  EXPECT_EQ(Find("myapp")->in_flight.load(), 0);
}

TEST_F(GatewayTest, WakesASleepingApp) {
  auto asleep = MakeRoute("myapp", upstream_->port());
  asleep->sleeping = true;
  AddRoute(asleep);
  auto awake = MakeRoute("myapp", upstream_->port());
  find_override_ = [&](std::string_view name) -> std::shared_ptr<const service::AppRoute> {
    std::lock_guard lock(mu_);
    return woken_.empty() ? routes_[std::string(name)] : awake;
  };
  StartGateway();
  auto response = Send("GET", AppHost(), "/");
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 200);
  std::lock_guard lock(mu_);
  EXPECT_EQ(woken_, (std::vector<std::string>{"app_myapp"}));
  EXPECT_EQ(touched_, (std::vector<std::string>{"app_myapp"}));
}

TEST_F(GatewayTest, FailedWakeIsUnavailable) {
  auto asleep = MakeRoute("myapp", upstream_->port());
  asleep->sleeping = true;
  AddRoute(asleep);
  StartGateway([](Deps& deps) {
    deps.wake = [](const std::string&) {
      return Status::Internal("thawing the cgroup: Device or resource busy");
    };
  });
  auto response = Send("GET", AppHost(), "/");
  ASSERT_TRUE(response.ok()) << response.status().ToString();
  EXPECT_EQ(response->status, 503);
  json::object error = ErrorOf(*response);
  EXPECT_EQ(GetString(error, "code"), "APP_UNAVAILABLE");
  EXPECT_THAT(GetString(error, "message"), HasSubstr("Device or resource busy"));
  EXPECT_TRUE(seen().empty());
  EXPECT_EQ(asleep->in_flight.load(), 0);
}

TEST_F(GatewayTest, ConcurrentRequests) {
  AddRoute(MakeRoute("myapp", upstream_->port()));
  StartGateway();
  std::vector<std::thread> clients;
  std::atomic<int> ok{0};
  for (int i = 0; i < 16; ++i) {
    clients.emplace_back([&, i] {
      auto response = Send("GET", AppHost(), "/n/" + std::to_string(i));
      if (response.ok() && response->body == "GET /n/" + std::to_string(i) + " body=") {
        ++ok;
      }
    });
  }
  for (auto& client : clients) {
    client.join();
  }
  EXPECT_EQ(ok.load(), 16);
  EXPECT_EQ(Find("myapp")->in_flight.load(), 0);
}

}  // namespace
}  // namespace kiln::gateway
