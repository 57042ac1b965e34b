// What abusive or broken clients send to an app's host: slowloris heads, stalled bodies,
// oversized or too many headers, request smuggling (conflicting Content-Length and
// Transfer-Encoding, obs-fold), a missing Host. Each gets the status nginx would give, none
// of the malformed ones reaches the app, and other clients are served meanwhile.
#include "integration/gateway_fixture.h"

namespace kiln::testing {
namespace {

class GatewayBadInputTest : public GatewaySuite {
 protected:
  static void SetUpTestSuite() {
    StartSuite(
        "[server]\n"
        "max_header_bytes = 8192\n"
        "header_timeout_ms = 2000\n"
        "read_timeout_ms = 2000\n"
        // One I/O thread: a client holding it would stall everyone.
        "threads = 1\n"
        "[apps]\nhealth_timeout_seconds = 10\n",
        {"up"});
  }
  static void TearDownTestSuite() { StopSuite(); }

  void TearDown() override {
    // Whatever came before, the app is still served.
    if (server_ && server_->running() && ready_) {
      ExpectServed();
    }
    GatewaySuite::TearDown();
  }

  static void ExpectServed() {
    auto r = Fetch("up", "GET", "/healthz");
    ASSERT_TRUE(r.has_value()) << "the gateway stopped answering";
    EXPECT_EQ(r->status, 200) << *r;
    EXPECT_EQ(r->body, "upstream ok\n");
  }

  // Sends `request` but its last two bytes, has another client served meanwhile, sends the
  // rest and expects `status`, the connection closed after it, and nothing at the app.
  void ExpectRefused(const std::string& request, int status) {
    const int64_t before = AppRequests("up");
    HttpConn bad(port());
    ASSERT_TRUE(bad.Send(std::string_view(request).substr(0, request.size() - 2)));
    ExpectServed();
    // The server may have refused the request already and stopped reading: a failed send
    // is fine, the answer is what counts.
    bad.Send(std::string_view(request).substr(request.size() - 2));
    auto r = bad.ReadResponse(5s);
    ASSERT_TRUE(r.has_value()) << "no response to:\n" << request.substr(0, 600);
    EXPECT_EQ(r->status, status) << *r << "\nfor:\n" << request.substr(0, 600);
    EXPECT_FALSE(r->Header("x-request-id").empty()) << *r;
    // After a framing error the rest of the stream cannot be trusted.
    bad.ReadUntilClose(3s);
    EXPECT_TRUE(bad.closed()) << "the connection stayed open after a " << r->status;
    // `before` was read, then one /healthz was served: nothing else reached the app.
    EXPECT_EQ(AppRequests("up"), before + 1) << "the malformed request reached the app";
  }

  static std::string Head(const std::string& target, const std::vector<std::string>& headers,
                          const std::string& method = "GET") {
    std::string out = method + " " + target + " HTTP/1.1\r\nHost: " + Host("up") + "\r\n";
    for (const auto& h : headers) {
      out += h + "\r\n";
    }
    return out + "\r\n";
  }
};

// A head sent one byte a second never completes: the connection is closed (with 408) once
// header_timeout_ms (2000) has passed, and other clients are served all along.
TEST_F(GatewayBadInputTest, SlowlorisHeadIsCutOffWhileOthersAreServed) {
  const int64_t before = AppRequests("up");
  HttpConn slow(port());
  ASSERT_TRUE(slow.Send("GET /healthz HTTP/1.1\r\nHost: " + Host("up") + "\r\n"));
  auto start = SteadyClock::now();
  std::atomic<bool> stop{false};
  std::thread trickle([&] {
    const std::string line = "X-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    for (size_t i = 0; !stop && i < line.size(); ++i) {
      if (!slow.Send(line.substr(i, 1))) {
        return;
      }
      for (int t = 0; t < 10 && !stop; ++t) {
        std::this_thread::sleep_for(100ms);
      }
    }
  });
  std::this_thread::sleep_for(1000ms);  // mid-way through the slow head
  ExpectServed();
  std::string got = slow.ReadUntilClose(8s);
  const int64_t took = MsSince(start);
  stop = true;
  slow.Shutdown();
  trickle.join();
  EXPECT_TRUE(slow.closed()) << "the slow connection was still open after 8 s";
  EXPECT_GE(took, 1500) << "cut off before header_timeout_ms";
  EXPECT_LE(took, 5000) << "header_timeout_ms is 2000";
  if (!got.empty()) {
    auto r = ParseRawResponse(got);
    ASSERT_TRUE(r.has_value()) << got;
    EXPECT_EQ(r->status, 408) << got;
  }
  EXPECT_EQ(AppRequests("up"), before + 1) << "the unfinished request reached the app";
}

// A body that stops coming is cut off after read_timeout_ms (2000): 408, or the connection
// closed, and other clients are served meanwhile.
TEST_F(GatewayBadInputTest, StalledBodyIsCutOffWhileOthersAreServed) {
  HttpConn slow(port());
  ASSERT_TRUE(slow.Send(Head("/sink", {"Content-Length: 100", "Content-Type: text/plain"}, "POST") +
                        "only ten.."));
  auto start = SteadyClock::now();
  std::this_thread::sleep_for(1000ms);  // mid-way through the stall
  ExpectServed();
  std::string got = slow.ReadUntilClose(10s);
  const int64_t took = MsSince(start);
  EXPECT_TRUE(slow.closed()) << "the stalled upload was still open after 10 s; got: " << got;
  EXPECT_GE(took, 1500) << "cut off before read_timeout_ms";
  EXPECT_LE(took, 6000) << "read_timeout_ms is 2000";
  if (!got.empty()) {
    auto r = ParseRawResponse(got);
    ASSERT_TRUE(r.has_value()) << got;
    EXPECT_EQ(r->status, 408) << got;
  }
}

TEST_F(GatewayBadInputTest, OversizedHeadIs431) {
  ExpectRefused(Head("/headers", {"X-Big: " + std::string(16 * 1024, 'b')}), 431);
  // Many headers that are each small but together over max_header_bytes (8192).
  std::vector<std::string> many;
  for (int i = 0; i < 40; ++i) {
    many.push_back("X-Part-" + std::to_string(i) + ": " + std::string(300, 'p'));
  }
  ExpectRefused(Head("/headers", many), 431);
  // Under the limit is forwarded.
  auto ok = Fetch("up", "GET", "/headers", {"X-Big: " + std::string(4 * 1024, 'b')});
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->status, 200) << *ok;
}

TEST_F(GatewayBadInputTest, MoreThanAHundredHeaderFieldsIs431) {
  std::vector<std::string> fields;
  for (int i = 0; i < 101; ++i) {
    fields.push_back("X-F" + std::to_string(i) + ": v");
  }
  ExpectRefused(Head("/headers", fields), 431);
  // 90 fields (plus Host) are fine.
  fields.resize(90);
  auto ok = Fetch("up", "GET", "/headers", fields);
  ASSERT_TRUE(ok.has_value());
  EXPECT_EQ(ok->status, 200) << *ok;
  EXPECT_EQ(ok->Str("/headers/x-f89"), "v") << *ok;
}

// Request smuggling: a proxy and an app that disagree on where a body ends.
TEST_F(GatewayBadInputTest, ContentLengthWithChunkedIs400) {
  ExpectRefused(
      Head("/sink", {"Content-Length: 5", "Transfer-Encoding: chunked"}, "POST") + "0\r\n\r\n",
      400);
  ExpectRefused(
      Head("/sink", {"Transfer-Encoding: chunked", "Content-Length: 5"}, "POST") + "0\r\n\r\n",
      400);
}

TEST_F(GatewayBadInputTest, ConflictingContentLengthsAre400) {
  ExpectRefused(Head("/sink", {"Content-Length: 5", "Content-Length: 6"}, "POST") + "hello!", 400);
  ExpectRefused(Head("/sink", {"Content-Length: 5, 6"}, "POST") + "hello!", 400);
}

TEST_F(GatewayBadInputTest, TransferEncodingMustEndInChunked) {
  ExpectRefused(
      Head("/sink", {"Transfer-Encoding: chunked, gzip"}, "POST") + "5\r\nhello\r\n0\r\n\r\n", 400);
  // Chunked last is a framing the app reads the same way: forwarded.
  HttpConn conn(port());
  auto r = conn.Exchange(Head("/sink", {"Transfer-Encoding: gzip, chunked"}, "POST") +
                         "5\r\nhello\r\n0\r\n\r\n");
  ASSERT_TRUE(r.has_value());
  EXPECT_EQ(r->status, 200) << *r;
  EXPECT_EQ(r->Int("/bytes"), 5) << *r;
}

TEST_F(GatewayBadInputTest, ObsFoldIs400) {
  ExpectRefused(Head("/headers", {"X-Folded: first", " second"}), 400);
  ExpectRefused(Head("/headers", {"X-Folded: first", "\tsecond"}), 400);
}

TEST_F(GatewayBadInputTest, MalformedChunkSizeIs400) {
  for (const std::string& chunk : {std::string("zz\r\nhello\r\n0\r\n\r\n"),
                                   std::string("fffffffffffffffff\r\nhello\r\n0\r\n\r\n")}) {
    HttpConn conn(port());
    auto r = conn.Exchange(Head("/sink", {"Transfer-Encoding: chunked"}, "POST") + chunk);
    ASSERT_TRUE(r.has_value()) << chunk;
    EXPECT_EQ(r->status, 400) << *r;
    conn.ReadUntilClose(3s);
    EXPECT_TRUE(conn.closed());
  }
}

TEST_F(GatewayBadInputTest, HostIsRequiredAndUnique) {
  // HTTP/1.1 without Host (RFC 9112 §3.2).
  ExpectRefused("GET /healthz HTTP/1.1\r\nAccept: */*\r\n\r\n", 400);
  // Two Hosts: which one routes would be anybody's guess.
  ExpectRefused("GET /healthz HTTP/1.1\r\nHost: " + Host("up") + "\r\nHost: nope.localhost\r\n\r\n",
                400);
}

TEST_F(GatewayBadInputTest, UnknownHostIs404WithARequestId) {
  for (const std::string& host :
       {std::string("nope.localhost"), "nope.localhost.:" + std::to_string(port())}) {
    HttpConn conn(port());
    auto r = conn.Exchange(RawRequest("GET", "/", host));
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->status, 404) << *r;
    EXPECT_EQ(r->ErrorCode(), "APP_NOT_FOUND") << *r;
    EXPECT_FALSE(r->Header("x-request-id").empty());
  }
}

}  // namespace
}  // namespace kiln::testing
