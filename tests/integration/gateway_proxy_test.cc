// The gateway as a reverse proxy, against a real app (tests/fixtures/upstream) in a real
// instance: routing by Host, bodies streamed both ways without being held in memory, chunked
// coding, Expect: 100-continue, keep-alive to the client and to the app, WebSocket and SSE
// passed through, hop-by-hop and X-Kiln-* headers, upstream failures as 502/503/504 with a
// request id, and wake on request.
#include "integration/gateway_fixture.h"

namespace kiln::testing {
namespace {

class GatewayProxyTest : public GatewaySuite {
 protected:
  static void SetUpTestSuite() {
    StartSuite(
        "[apps]\nhealth_timeout_seconds = 10\ndrain_seconds = 5\n"
        "[gateway]\nupstream_timeout_ms = 2000\n",
        // `up` serves every test; `life` is stopped and put to sleep by the lifecycle tests.
        {"up", "life"});
  }
  static void TearDownTestSuite() { StopSuite(); }

  // Puts `app` back to running when an earlier test left it stopped or asleep.
  static void EnsureRunning(const std::string& app) {
    std::string status = AppStatus(app);
    if (status == "sleeping") {
      Admin("POST", "/v1/apps/" + app + "/wake");
    } else if (status != "running") {
      Admin("POST", "/v1/apps/" + app + "/start");
    }
    ASSERT_EQ(AppStatus(app), "running");
  }

  // Sends chunks of the given sizes (the pattern, continuing across chunks) and `trailers`.
  static bool SendChunks(HttpConn& conn, const std::vector<size_t>& sizes,
                         const std::string& trailers = "") {
    uint64_t offset = 0;
    for (size_t n : sizes) {
      if (!conn.Send(HttpConn::ChunkHead(n) + PatternBytes(offset, n) + "\r\n")) {
        return false;
      }
      offset += n;
    }
    return conn.Send("0\r\n" + trailers + "\r\n");
  }

  static std::string UploadHead(const std::string& target, uint64_t length) {
    return "POST " + target + " HTTP/1.1\r\nHost: " + Host("up") +
           "\r\nContent-Type: application/octet-stream\r\nContent-Length: " +
           std::to_string(length) + "\r\n\r\n";
  }
};

TEST_F(GatewayProxyTest, RoutesAppHostsInEveryFormAndOtherHostsToTheApi) {
  const std::string p = std::to_string(port());
  for (const std::string& host : {"up.localhost:" + p, "UP.LOCALHOST:" + p, "Up.Localhost.:" + p,
                                  std::string("up.localhost."), std::string("up.localhost")}) {
    SCOPED_TRACE("Host: " + host);
    HttpConn conn(port());
    auto r = conn.Exchange(RawRequest("GET", "/headers?q=a%20b&x=%2F", host));
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200) << *r;
    EXPECT_EQ(r->Str("/method"), "GET") << *r;
    // The target reaches the app byte for byte: not decoded, not re-encoded.
    EXPECT_EQ(r->Str("/url"), "/headers?q=a%20b&x=%2F") << *r;
  }
  for (const std::string& host :
       {"nope.localhost:" + p, std::string("nope.localhost"), "NOPE.localhost.:" + p}) {
    SCOPED_TRACE("Host: " + host);
    HttpConn conn(port());
    auto r = conn.Exchange(RawRequest("GET", "/", host));
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 404) << *r;
    EXPECT_EQ(r->ErrorCode(), "APP_NOT_FOUND") << *r;
    EXPECT_FALSE(r->Header("x-request-id").empty()) << *r;
  }
  // The base domain and the bare address are the API's.
  for (const std::string& host :
       {"localhost:" + p, "127.0.0.1:" + p, std::string("localhost"), "LOCALHOST.:" + p}) {
    SCOPED_TRACE("Host: " + host);
    HttpConn conn(port());
    auto r = conn.Exchange(RawRequest("GET", "/healthz", host));
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 200) << *r;
    EXPECT_EQ(r->Str("/data/status"), "ok") << "not the API's /healthz: " << *r;
  }
  // And an app's host never reaches the API: /v1/me there is the app's own 404.
  auto app = Fetch("up", "GET", "/v1/me");
  ASSERT_TRUE(app.has_value());
  EXPECT_EQ(app->status, 404) << *app;
  EXPECT_EQ(app->body, "not found\n") << *app;
}

TEST_F(GatewayProxyTest, TheAppsOwnErrorsPassThroughUnchanged) {
  for (int code : {404, 500, 502, 503}) {
    auto r = Fetch("up", "GET", "/status?code=" + std::to_string(code));
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, code) << *r;
    EXPECT_EQ(r->body, "app says " + std::to_string(code) + "\n") << "replaced by the gateway";
    EXPECT_FALSE(r->Header("x-request-id").empty());
  }
}

// 64 MiB up to the app, which hashes it: the server's memory does not grow by anything near
// the body's size, so the body was streamed through, not collected first.
TEST_F(GatewayProxyTest, LargeUploadIsStreamedToTheApp) {
  constexpr uint64_t kSize = 64 * kMiB;
  const std::string want = crypto::Sha256Hex(PatternBytes(0, kSize));
  ASSERT_TRUE(Fetch("up", "GET", "/healthz").has_value());  // warm up (threads, pools)
  RssPeak rss(server().pid());
  HttpConn conn(port());
  std::atomic<bool> sent{false};
  std::thread sender(
      [&] { sent = conn.Send(UploadHead("/sink", kSize)) && conn.SendPattern(kSize); });
  auto r = conn.ReadResponse(60s);
  conn.Shutdown();
  sender.join();
  rss.Stop();
  ASSERT_TRUE(r.has_value()) << "no complete response to a 64 MiB upload";
  EXPECT_TRUE(sent) << "the upload was not taken whole; answered " << *r;
  ASSERT_EQ(r->status, 200) << *r;
  EXPECT_EQ(r->Int("/bytes"), static_cast<int64_t>(kSize)) << *r;
  EXPECT_EQ(r->Str("/sha256"), want) << *r;
  EXPECT_LT(rss.growth(), 32 * kMiB)
      << "the server's RSS grew by " << rss.growth() / kMiB << " MiB (from "
      << rss.baseline() / kMiB << " MiB) while proxying a 64 MiB upload: buffered, not streamed";
}

// 64 MiB to /echo, read back while it is still being sent: both directions stream at once.
TEST_F(GatewayProxyTest, LargeEchoComesBackIntactWhileItIsSent) {
  constexpr uint64_t kSize = 64 * kMiB;
  ASSERT_TRUE(Fetch("up", "GET", "/healthz").has_value());
  RssPeak rss(server().pid());
  HttpConn conn(port());
  std::atomic<bool> sent{false};
  std::thread sender(
      [&] { sent = conn.Send(UploadHead("/echo", kSize)) && conn.SendPattern(kSize); });
  auto head = conn.ReadHead(30s);
  PatternCheck check;
  bool complete = head.has_value() &&
                  conn.ReadBody(*head, 60s, [&](std::string_view piece) { check.Feed(piece); });
  conn.Shutdown();
  sender.join();
  rss.Stop();
  ASSERT_TRUE(head.has_value()) << "no response head to a streamed upload to /echo";
  ASSERT_EQ(head->status, 200) << head->raw;
  EXPECT_TRUE(sent);
  EXPECT_TRUE(complete) << "the echo ended after " << check.bytes() << " bytes";
  EXPECT_EQ(check.bytes(), kSize);
  EXPECT_TRUE(check.ok()) << "the echo differs from the upload at byte " << check.first_bad();
  EXPECT_LT(rss.growth(), 32 * kMiB)
      << "the server's RSS grew by " << rss.growth() / kMiB << " MiB while echoing 64 MiB";
}

// 128 MiB down from the app to a client that stops reading for a second after the first MiB:
// the gateway holds the app back instead of reading the rest into memory.
TEST_F(GatewayProxyTest, LargeDownloadIsStreamedWithBackpressure) {
  constexpr uint64_t kSize = 128 * kMiB;
  ASSERT_TRUE(Fetch("up", "GET", "/healthz").has_value());
  RssPeak rss(server().pid());
  HttpConn conn(port());
  ASSERT_TRUE(conn.Send(RawRequest("GET", "/big?bytes=" + std::to_string(kSize), Host("up"))));
  auto head = conn.ReadHead(30s);
  ASSERT_TRUE(head.has_value()) << "no response head for /big";
  ASSERT_EQ(head->status, 200) << head->raw;
  EXPECT_EQ(head->content_length, static_cast<int64_t>(kSize)) << head->raw;
  PatternCheck check;
  bool paused = false;
  bool complete = conn.ReadBody(*head, 60s, [&](std::string_view piece) {
    check.Feed(piece);
    if (!paused && check.bytes() >= static_cast<uint64_t>(kMiB)) {
      paused = true;
      std::this_thread::sleep_for(1s);  // a slow client: the scenario, not a synchronisation
    }
  });
  rss.Stop();
  EXPECT_TRUE(complete) << "the download ended after " << check.bytes() << " bytes";
  EXPECT_EQ(check.bytes(), kSize);
  EXPECT_TRUE(check.ok()) << "the download differs from the app's body at byte "
                          << check.first_bad();
  EXPECT_LT(rss.growth(), 32 * kMiB)
      << "the server's RSS grew by " << rss.growth() / kMiB << " MiB proxying 128 MiB";
  // The connection is still good for another request.
  auto next = conn.Exchange(RawRequest("GET", "/healthz", Host("up")));
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->body, "upstream ok\n");
}

// The app reads its body at 64 MiB/s while the client could send far faster: the gateway
// passes the app's pace back to the client rather than buffering the difference.
TEST_F(GatewayProxyTest, SlowAppReaderHoldsTheClientBack) {
  constexpr uint64_t kSize = 32 * kMiB;
  const std::string want = crypto::Sha256Hex(PatternBytes(0, kSize));
  ASSERT_TRUE(Fetch("up", "GET", "/healthz").has_value());
  RssPeak rss(server().pid());
  HttpConn conn(port());
  std::atomic<bool> sent{false};
  std::thread sender([&] {
    sent = conn.Send(UploadHead("/slow-body?rate=" + std::to_string(64 * kMiB), kSize)) &&
           conn.SendPattern(kSize);
  });
  auto r = conn.ReadResponse(60s);
  conn.Shutdown();
  sender.join();
  rss.Stop();
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->status, 200) << *r;
  EXPECT_EQ(r->Int("/bytes"), static_cast<int64_t>(kSize)) << *r;
  EXPECT_EQ(r->Str("/sha256"), want);
  EXPECT_LT(rss.growth(), 16 * kMiB)
      << "the server's RSS grew by " << rss.growth() / kMiB
      << " MiB while a slow app read a 32 MiB upload: the body piled up in the gateway";
}

TEST_F(GatewayProxyTest, ChunkedRequestBodyIsForwardedWhole) {
  const std::vector<size_t> sizes = {1, 10, 4096, 70000, 3 * kMiB + 17, 5};
  uint64_t total = 0;
  for (size_t n : sizes) {
    total += n;
  }
  const std::string chunked_head = "Host: " + Host("up") +
                                   "\r\nContent-Type: application/octet-stream\r\n"
                                   "Transfer-Encoding: chunked\r\n\r\n";
  {
    HttpConn conn(port());
    ASSERT_TRUE(conn.Send("POST /sink HTTP/1.1\r\n" + chunked_head));
    ASSERT_TRUE(SendChunks(conn, sizes, "X-Checksum-Trailer: t\r\n"));
    auto r = conn.ReadResponse(30s);
    ASSERT_TRUE(r.has_value());
    ASSERT_EQ(r->status, 200) << *r;
    EXPECT_EQ(r->Int("/bytes"), static_cast<int64_t>(total)) << *r;
    EXPECT_EQ(r->Str("/sha256"), crypto::Sha256Hex(PatternBytes(0, total))) << *r;
  }
  {
    HttpConn conn(port());
    ASSERT_TRUE(conn.Send("PUT /echo HTTP/1.1\r\n" + chunked_head));
    std::thread sender([&] { SendChunks(conn, sizes); });
    auto head = conn.ReadHead(30s);
    PatternCheck check;
    bool complete = head.has_value() &&
                    conn.ReadBody(*head, 30s, [&](std::string_view piece) { check.Feed(piece); });
    conn.Shutdown();
    sender.join();
    ASSERT_TRUE(head.has_value());
    EXPECT_EQ(head->status, 200) << head->raw;
    EXPECT_TRUE(complete);
    EXPECT_EQ(check.bytes(), total);
    EXPECT_TRUE(check.ok()) << "differs at byte " << check.first_bad();
  }
}

TEST_F(GatewayProxyTest, ExpectContinueGets100ThenTheAnswer) {
  HttpConn conn(port());
  ASSERT_TRUE(conn.Send("POST /sink HTTP/1.1\r\nHost: " + Host("up") +
                        "\r\nContent-Length: 1048576\r\nExpect: 100-continue\r\n\r\n"));
  auto interim = conn.ReadHead(5s);
  ASSERT_TRUE(interim.has_value()) << "no 100 Continue: the client would wait before sending";
  EXPECT_EQ(interim->status, 100) << interim->raw;
  ASSERT_TRUE(conn.SendPattern(kMiB));
  auto r = conn.ReadResponse(10s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200) << *r;
  EXPECT_EQ(r->Int("/bytes"), kMiB) << *r;

  // A request that fails before the body is needed is answered without the body being sent.
  HttpConn nope(port());
  ASSERT_TRUE(
      nope.Send("POST /sink HTTP/1.1\r\nHost: nope.localhost\r\nContent-Length: "
                "1048576\r\nExpect: 100-continue\r\n\r\n"));
  auto missing = nope.ReadResponse(5s);
  ASSERT_TRUE(missing.has_value()) << "an unknown app waited for a body it would not use";
  EXPECT_EQ(missing->status, 404) << *missing;
}

TEST_F(GatewayProxyTest, ChunkedResponsesAndHeadKeepTheConnectionInStep) {
  HttpConn conn(port());
  ASSERT_TRUE(conn.Send(RawRequest("GET", "/chunked?n=50&size=1000", Host("up"))));
  auto head = conn.ReadHead(10s);
  ASSERT_TRUE(head.has_value());
  ASSERT_EQ(head->status, 200) << head->raw;
  PatternCheck check;
  EXPECT_TRUE(conn.ReadBody(*head, 10s, [&](std::string_view piece) { check.Feed(piece); }));
  EXPECT_EQ(check.bytes(), 50000u);
  EXPECT_TRUE(check.ok()) << "differs at byte " << check.first_bad();

  auto h = conn.Exchange(RawRequest("HEAD", "/big?bytes=12345", Host("up")), 10s, true);
  ASSERT_TRUE(h.has_value());
  EXPECT_EQ(h->status, 200) << *h;
  EXPECT_EQ(h->Header("content-length"), "12345") << "HEAD must carry the GET's length";

  // Had the gateway sent a body after HEAD, this response would be out of step.
  auto next = conn.Exchange(RawRequest("GET", "/healthz", Host("up")));
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->status, 200);
  EXPECT_EQ(next->body, "upstream ok\n");
}

// Bodies of every length around the gateway's thresholds (the first read of a response, the
// least that is spliced, a pipe's worth) arrive whole and in step on one connection, with a
// chunked answer between them that is copied instead.
TEST_F(GatewayProxyTest, BodiesOfEveryLengthArriveWholeOnOneConnection) {
  HttpConn conn(port());
  const std::vector<uint64_t> sizes = {0,     1,     3000,  4096,  4500,   16383,    16384,
                                       20000, 20480, 65535, 65536, 200000, kMiB + 3, 70000};
  for (size_t i = 0; i < sizes.size(); ++i) {
    uint64_t size = sizes[i];
    ASSERT_TRUE(conn.Send(RawRequest("GET", "/big?bytes=" + std::to_string(size), Host("up"))));
    auto head = conn.ReadHead(10s);
    ASSERT_TRUE(head.has_value()) << size << " bytes: no response head";
    ASSERT_EQ(head->status, 200) << head->raw;
    PatternCheck check;
    EXPECT_TRUE(conn.ReadBody(*head, 10s, [&](std::string_view piece) { check.Feed(piece); }))
        << size << " bytes";
    EXPECT_EQ(check.bytes(), size);
    EXPECT_TRUE(check.ok()) << size << " bytes: differs at byte " << check.first_bad();
    if (i == 6) {
      auto chunked = conn.Exchange(RawRequest("GET", "/chunked?n=40&size=3000", Host("up")));
      ASSERT_TRUE(chunked.has_value());
      EXPECT_EQ(chunked->body, PatternBytes(0, 120000));
    }
  }
  EXPECT_FALSE(conn.closed());
}

// Many requests on one client connection all succeed, and the app sees them on far fewer
// connections: the gateway keeps its connections to the app alive and reuses them.
TEST_F(GatewayProxyTest, KeepAliveToTheClientAndToTheApp) {
  const int64_t connections_before = AppStats("up").Int("/connections");
  HttpConn conn(port());
  std::set<int64_t> upstream_connections;
  int64_t most_on_one = 0;
  constexpr int kRequests = 60;
  for (int i = 0; i < kRequests; ++i) {
    auto r = conn.Exchange(RawRequest("GET", "/headers?i=" + std::to_string(i), Host("up")));
    ASSERT_TRUE(r.has_value()) << "request " << i << " on the kept-alive connection failed";
    ASSERT_EQ(r->status, 200) << "request " << i << ": " << *r;
    EXPECT_NE(Lower(r->Header("connection")), "close") << "request " << i;
    upstream_connections.insert(r->Int("/connection"));
    most_on_one = std::max(most_on_one, r->Int("/connectionRequests"));
    if (i % 10 == 5) {
      auto post = conn.Exchange(RawRequest("POST", "/sink", Host("up"), {}, "hello"));
      ASSERT_TRUE(post.has_value()) << "POST after request " << i;
      EXPECT_EQ(post->Int("/bytes"), 5) << *post;
    }
  }
  EXPECT_FALSE(conn.closed());
  const int64_t opened = AppStats("up").Int("/connections") - connections_before;
  EXPECT_LE(opened, 5) << "the app saw " << opened << " new connections for " << kRequests + 6
                       << " requests: upstream connections are not reused";
  EXPECT_LE(upstream_connections.size(), 3u);
  EXPECT_GE(most_on_one, 10) << "no upstream connection carried more than " << most_on_one
                             << " requests";
}

// The app closes idle connections after 1 s (its keepAliveTimeout): a pooled connection it
// has closed is never used for a request (or the request is retried), so nobody sees a 502.
TEST_F(GatewayProxyTest, AConnectionTheAppClosedIsNotAnError) {
  HttpConn conn(port());
  auto first = conn.Exchange(RawRequest("GET", "/healthz", Host("up")));
  ASSERT_TRUE(first.has_value());
  ASSERT_EQ(first->status, 200);
  for (const std::string method : {"GET", "POST"}) {
    SCOPED_TRACE(method);
    std::this_thread::sleep_for(1500ms);  // the app's idle timeout passes: the scenario itself
    auto again = conn.Exchange(method == "GET" ? RawRequest("GET", "/healthz", Host("up"))
                                               : RawRequest("POST", "/sink", Host("up"), {}, "x"));
    ASSERT_TRUE(again.has_value());
    EXPECT_EQ(again->status, 200) << *again;
    auto fresh = Fetch("up", "GET", "/healthz");
    ASSERT_TRUE(fresh.has_value());
    EXPECT_EQ(fresh->status, 200) << *fresh;
  }
}

TEST_F(GatewayProxyTest, WebSocketEchoesTextAndBinaryAndCloses) {
  HttpConn conn(port());
  const std::string key = crypto::Base64Encode(crypto::RandomBytes(16));
  ASSERT_TRUE(conn.Send("GET /ws HTTP/1.1\r\nHost: " + Host("up") +
                        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " +
                        key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"));
  auto head = conn.ReadHead(5s);
  ASSERT_TRUE(head.has_value()) << "no answer to the upgrade";
  ASSERT_EQ(head->status, 101) << head->raw;
  EXPECT_EQ(Lower(head->Header("upgrade")), "websocket") << head->raw;
  EXPECT_NE(Lower(head->Header("connection")).find("upgrade"), std::string::npos) << head->raw;
  EXPECT_EQ(head->Header("sec-websocket-accept"), WsAccept(key)) << head->raw;

  auto echo = [&](int opcode, const std::string& payload) {
    ASSERT_TRUE(conn.Send(WsFrame(opcode, payload)));
    auto m = ReadWsFrame(conn, 5s);
    ASSERT_TRUE(m.has_value()) << "no echo of a frame with opcode " << opcode;
    EXPECT_EQ(m->opcode, opcode == 0x9 ? 0xa : opcode);
    EXPECT_TRUE(m->payload == payload) << "payload of " << payload.size() << " bytes differs";
  };
  echo(0x1, "hello, \xE2\x98\x83");
  echo(0x2, PatternBytes(0, 256));
  echo(0x2, PatternBytes(7, 300000));  // a 64-bit length
  echo(0x9, "ping");                   // answered by a pong
  // A tunnel with no traffic for longer than upstream_timeout_ms is not a late answer.
  std::this_thread::sleep_for(2500ms);
  echo(0x1, "still here");

  ASSERT_TRUE(conn.Send(WsFrame(0x8, std::string("\x03\xe8", 2))));
  auto close = ReadWsFrame(conn, 5s);
  ASSERT_TRUE(close.has_value()) << "no close frame back";
  EXPECT_EQ(close->opcode, 0x8);
  EXPECT_EQ(close->payload, std::string("\x03\xe8", 2));
  conn.ReadUntilClose(5s);
  EXPECT_TRUE(conn.closed()) << "the tunnel stayed open after the close handshake";
}

TEST_F(GatewayProxyTest, ServerSentEventsArriveOneByOne) {
  HttpConn conn(port());
  ASSERT_TRUE(conn.Send(
      RawRequest("GET", "/sse?n=5&interval=200", Host("up"), {"Accept: text/event-stream"})));
  auto head = conn.ReadHead(5s);
  ASSERT_TRUE(head.has_value()) << "no response head before the first event";
  ASSERT_EQ(head->status, 200) << head->raw;
  EXPECT_TRUE(head->Header("content-type").starts_with("text/event-stream")) << head->raw;
  auto start = SteadyClock::now();
  std::vector<int64_t> arrived;
  std::vector<std::string> events;
  std::string text;
  EXPECT_TRUE(conn.ReadBody(*head, 10s, [&](std::string_view piece) {
    text.append(piece);
    for (size_t end; (end = text.find("\n\n")) != std::string::npos;) {
      arrived.push_back(MsSince(start));
      events.push_back(text.substr(0, end));
      text.erase(0, end + 2);
    }
  }));
  ASSERT_EQ(events.size(), 5u) << text;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_TRUE(events[i].starts_with("id: " + std::to_string(i))) << events[i];
  }
  // The app sends one every 200 ms; held back and sent together they would arrive at once.
  EXPECT_GE(arrived[4] - arrived[0], 600)
      << "events arrived at " << arrived[0] << ", " << arrived[1] << ", " << arrived[2] << ", "
      << arrived[3] << ", " << arrived[4] << " ms";
}

TEST_F(GatewayProxyTest, HopByHopAndClientKilnHeadersAreNotForwarded) {
  HttpConn conn(port());
  auto r = conn.Exchange(RawRequest("GET", "/headers", Host("up"),
                                    {
                                        "Connection: keep-alive, X-Drop-Me",
                                        "X-Drop-Me: 1",
                                        "Keep-Alive: timeout=5",
                                        "TE: trailers, deflate",
                                        "Proxy-Authorization: Basic Zm9vOmJhcg==",
                                        "Proxy-Connection: keep-alive",
                                        "X-Kiln-User-Id: usr_forged",
                                        "X-Kiln-Workspace: ws_forged",
                                        "X-Kiln-Auth: forged",
                                        "X-Kiln-Request-Id: req_forged",
                                        "x-kiln-anything: forged",
                                        "X-Forwarded-For: 203.0.113.7",
                                        "X-Forwarded-Host: evil.example",
                                        "X-Forwarded-Proto: https",
                                        "X-Custom: kept",
                                    }));
  ASSERT_TRUE(r.has_value());
  ASSERT_EQ(r->status, 200) << *r;
  const json::value* seen_value = r->Find("/headers");
  ASSERT_TRUE(seen_value != nullptr && seen_value->is_object()) << *r;
  const json::object& seen = seen_value->as_object();
  auto header = [&](const char* name) { return S(seen, name); };
  for (const char* name :
       {"x-drop-me", "keep-alive", "proxy-authorization", "proxy-connection", "x-kiln-user-id",
        "x-kiln-workspace", "x-kiln-auth", "x-kiln-anything"}) {
    EXPECT_FALSE(seen.contains(name)) << name << " reached the app: " << header(name);
  }
  EXPECT_EQ(Lower(header("connection")).find("x-drop-me"), std::string::npos);
  EXPECT_EQ(header("te").find("deflate"), std::string::npos) << "TE was forwarded";
  EXPECT_EQ(header("x-custom"), "kept");
  // The request id: the gateway's own, the same the client gets, never the client's.
  EXPECT_FALSE(header("x-kiln-request-id").empty());
  EXPECT_EQ(header("x-kiln-request-id"), r->Header("x-request-id"));
  EXPECT_EQ(header("x-kiln-request-id").find("forged"), std::string::npos);
  EXPECT_EQ(header("x-forwarded-host"), Host("up"));
  EXPECT_EQ(header("x-forwarded-proto"), "http");
  std::string forwarded_for = header("x-forwarded-for");
  EXPECT_EQ(Trim(forwarded_for.substr(forwarded_for.rfind(',') + 1)), "127.0.0.1")
      << "X-Forwarded-For must end with the client's address: " << forwarded_for;
  // Each request has its own id.
  auto second = conn.Exchange(RawRequest("GET", "/headers", Host("up")));
  ASSERT_TRUE(second.has_value());
  EXPECT_NE(second->Str("/headers/x-kiln-request-id"), header("x-kiln-request-id"));

  // The app's hop-by-hop headers do not reach the client either.
  auto hop = Fetch("up", "GET", "/hop-response");
  ASSERT_TRUE(hop.has_value());
  EXPECT_EQ(hop->status, 200);
  EXPECT_EQ(hop->Header("x-kept"), "yes");
  EXPECT_FALSE(hop->HasHeader("x-app-hop")) << "a header the app's Connection names was passed on";
  EXPECT_FALSE(hop->HasHeader("keep-alive"));
  EXPECT_FALSE(hop->HasHeader("proxy-connection"));
  EXPECT_EQ(Lower(hop->Header("connection")).find("x-app-hop"), std::string::npos);
}

// Only a WebSocket upgrade is passed on: an h2c upgrade is a plain request to the app (which
// would answer 400 "unexpected upgrade" to one that reached it with Upgrade).
TEST_F(GatewayProxyTest, UpgradeOtherThanWebSocketIsNotForwarded) {
  auto r = Fetch("up", "GET", "/headers",
                 {"Connection: Upgrade, HTTP2-Settings", "Upgrade: h2c",
                  "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"});
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200) << *r;
  EXPECT_FALSE(r->Has("/headers/upgrade")) << *r;
  EXPECT_FALSE(r->Has("/headers/http2-settings")) << *r;
}

TEST_F(GatewayProxyTest, AnAppThatNeverAnswersIs504) {
  const int64_t hangs = AppStats("up").Int("/paths/~1hang", 0);
  auto start = SteadyClock::now();
  auto r = Fetch("up", "GET", "/hang", {}, {}, 15s);
  const int64_t took = MsSince(start);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 504) << *r;
  EXPECT_EQ(r->ErrorCode(), "UPSTREAM_TIMEOUT") << *r;
  EXPECT_FALSE(r->Header("x-request-id").empty());
  EXPECT_GE(took, 1500) << "answered before upstream_timeout_ms (2000)";
  EXPECT_LE(took, 8000) << "upstream_timeout_ms is 2000";
  EXPECT_EQ(AppStats("up").Int("/paths/~1hang", 0), hangs + 1)
      << "the request never reached the app";

  // A browser gets a page that names the request id.
  auto page = Fetch("up", "GET", "/hang", {"Accept: text/html"}, {}, 15s);
  ASSERT_TRUE(page.has_value());
  EXPECT_EQ(page->status, 504);
  EXPECT_TRUE(page->Header("content-type").starts_with("text/html")) << *page;
  EXPECT_FALSE(page->Header("x-request-id").empty());
  EXPECT_NE(page->body.find(page->Header("x-request-id")), std::string::npos) << *page;
}

TEST_F(GatewayProxyTest, AWebSocketAppThatNeverAnswersIs504) {
  HttpConn conn(port());
  ASSERT_TRUE(conn.Send("GET /ws-silent HTTP/1.1\r\nHost: " + Host("up") +
                        "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " +
                        crypto::Base64Encode(crypto::RandomBytes(16)) +
                        "\r\nSec-WebSocket-Version: 13\r\n\r\n"));
  auto start = SteadyClock::now();
  auto r = conn.ReadResponse(15s);
  const int64_t took = MsSince(start);
  ASSERT_TRUE(r.has_value()) << "no answer within 15 s (upstream_timeout_ms is 2000)";
  EXPECT_EQ(r->status, 504) << *r;
  EXPECT_EQ(r->ErrorCode(), "UPSTREAM_TIMEOUT") << *r;
  EXPECT_FALSE(r->Header("x-request-id").empty());
  EXPECT_GE(took, 1500);
  EXPECT_LE(took, 8000);
}

// The app promises 100000 bytes, sends 1000 and drops the connection: the client sees the
// response cut short and its connection closed at once (not a hang until a timeout, and not
// a response that looks complete), and the next requests are served.
TEST_F(GatewayProxyTest, AnAppClosingMidResponseClosesTheClientConnection) {
  HttpConn conn(port());
  auto start = SteadyClock::now();
  ASSERT_TRUE(conn.Send(RawRequest("GET", "/close-mid", Host("up"))));
  auto head = conn.ReadHead(5s);
  ASSERT_TRUE(head.has_value()) << "no response head (closed: " << conn.closed() << ")";
  if (head->status == 200) {
    uint64_t got = 0;
    bool complete = conn.ReadBody(*head, 5s, [&](std::string_view piece) { got += piece.size(); });
    EXPECT_FALSE(complete) << "a truncated response was passed on as complete (" << got
                           << " bytes)";
    EXPECT_LT(got, 100000u);
    EXPECT_TRUE(conn.closed()) << "the client's connection was left open after " << got << " bytes";
  } else {
    // Seen before any of it was passed on, the failure may be answered as such.
    EXPECT_EQ(head->status, 502) << head->raw;
  }
  EXPECT_LT(MsSince(start), 1500) << "the close was noticed only by a timeout";
  for (int i = 0; i < 3; ++i) {
    auto next = Fetch("up", "GET", "/healthz");
    ASSERT_TRUE(next.has_value());
    EXPECT_EQ(next->status, 200) << *next;
  }
}

// A stopped app is unavailable (503, not 404: it exists) and a request does not start it.
TEST_F(GatewayProxyTest, AStoppedAppIs503AndStaysStopped) {
  EnsureRunning("life");
  ASSERT_EQ(Admin("POST", "/v1/apps/life/stop").Str("/data/status"), "stopped");
  auto r = Fetch("life", "GET", "/healthz");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 503) << *r;
  EXPECT_EQ(r->ErrorCode(), "APP_UNAVAILABLE") << *r;
  EXPECT_FALSE(r->Header("x-request-id").empty()) << *r;
  EXPECT_EQ(AppStatus("life"), "stopped");
  ASSERT_EQ(Admin("POST", "/v1/apps/life/start").Str("/data/status"), "running");
  auto back = Fetch("life", "GET", "/healthz");
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->status, 200) << *back;
}

// A sleeping app is woken by a request, which is answered (its body included) with no error.
TEST_F(GatewayProxyTest, ASleepingAppWakesOnRequest) {
  EnsureRunning("life");
  ASSERT_EQ(Admin("POST", "/v1/apps/life/sleep").Str("/data/status"), "sleeping");
  const std::string body = PatternBytes(0, kMiB);
  auto r = Fetch("life", "POST", "/sink", {"Content-Type: application/octet-stream"}, body, 30s);
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200) << *r;
  EXPECT_EQ(r->Int("/bytes"), kMiB) << *r;
  EXPECT_EQ(r->Str("/sha256"), crypto::Sha256Hex(body)) << *r;
  EXPECT_EQ(AppStatus("life"), "running");

  ASSERT_EQ(Admin("POST", "/v1/apps/life/sleep").Str("/data/status"), "sleeping");
  auto get = Fetch("life", "GET", "/healthz", {}, {}, 30s);
  ASSERT_TRUE(get.has_value());
  EXPECT_EQ(get->status, 200) << *get;
  EXPECT_EQ(get->body, "upstream ok\n");
  EXPECT_EQ(AppStatus("life"), "running");
}

}  // namespace
}  // namespace kiln::testing
