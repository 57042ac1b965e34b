// Deferred and streamed responses (Response::Defer, http::Stream), over real sockets.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "http/http.h"
#include "http/internal.h"

namespace kiln::http {
namespace {

using std::chrono::milliseconds;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;
using Clock = std::chrono::steady_clock;

// Generous bounds for conditions that should hold within milliseconds.
constexpr milliseconds kPatience{5000};

// Streams the handler deferred, in order, for the test thread to produce.
class StreamBox {
 public:
  void Put(std::shared_ptr<Stream> stream) {
    std::lock_guard<std::mutex> lock(mu_);
    streams_.push_back(std::move(stream));
    cv_.notify_all();
  }
  std::shared_ptr<Stream> Take() {
    std::unique_lock<std::mutex> lock(mu_);
    if (!cv_.wait_for(lock, kPatience, [this] { return !streams_.empty(); })) {
      return nullptr;
    }
    auto stream = std::move(streams_.front());
    streams_.pop_front();
    return stream;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Stream>> streams_;
};

void Envelope(const Status& status, Response& response) {
  response.status = status.code() == Code::kInternal ? 500 : 400;
  response.Set("content-type", "application/json");
  response.body = "{\"error\":{\"code\":\"" + status.error_code() + "\"}}";
}

// Waits for `condition`, polling; false when it did not hold within kPatience.
template <typename Condition>
bool Eventually(Condition condition) {
  auto deadline = Clock::now() + kPatience;
  while (!condition()) {
    if (Clock::now() > deadline) {
      return false;
    }
    std::this_thread::sleep_for(milliseconds(5));
  }
  return true;
}

// A chunked body, parsed as it arrives.
struct ChunkedBody {
  std::vector<std::string> chunks;
  bool done = false;       // the last chunk and the final CRLF arrived
  bool malformed = false;  // a framing error

  std::string Joined() const {
    std::string all;
    for (const auto& chunk : chunks) {
      all += chunk;
    }
    return all;
  }

  // Consumes whole chunks from the front of `pending`.
  void Feed(std::string& pending) {
    while (!done && !malformed) {
      size_t eol = pending.find("\r\n");
      if (eol == std::string::npos) {
        return;
      }
      std::string line = pending.substr(0, eol);
      if (line.empty() || line.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos) {
        malformed = true;
        return;
      }
      size_t size = std::stoul(line, nullptr, 16);
      if (pending.size() < eol + 2 + size + 2) {
        return;
      }
      if (pending.compare(eol + 2 + size, 2, "\r\n") != 0) {
        malformed = true;
        return;
      }
      if (size == 0) {
        done = true;
      } else {
        chunks.push_back(pending.substr(eol + 2, size));
      }
      pending.erase(0, eol + 2 + size + 2);
    }
  }
};

class StreamTest : public ::testing::Test {
 protected:
  // Routes: /deferred and /events hand their stream to `box_`; /drop defers and lets go at
  // once; /inline answers a 3 MiB stream from inside the handler; anything else is plain.
  void Start(ServerOptions options = {}) {
    options.host = "127.0.0.1";
    options.port = 0;
    auto handler = [this](const Request& request, Response& response) {
      if (request.path == "/deferred" || request.path == "/events") {
        box_.Put(response.Defer());
      } else if (request.path == "/drop") {
        response.Defer();
      } else if (request.path == "/inline") {
        auto stream = response.Defer();
        stream->Begin(200, {{"content-type", "application/octet-stream"}});
        for (int i = 0; i < 48; ++i) {
          stream->Write(std::string(64 << 10, static_cast<char>('a' + i % 26)));
        }
        stream->End();
      } else {
        response.Set("content-type", "text/plain");
        response.body = "plain " + request.path;
      }
    };
    auto server = Server::Start(options, handler, Envelope);
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
  }

  void TearDown() override {
    for (auto& producer : producers_) {
      producer.join();
    }
  }

  int Connect(int receive_buffer = 0) const {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (receive_buffer > 0) {
      ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof(receive_buffer));
    }
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

  static bool ReadSome(int fd, std::string& out, Clock::time_point deadline) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      return false;
    }
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) {
      return false;
    }
    char chunk[16384];
    ssize_t n = ::recv(fd, chunk, sizeof(chunk), 0);
    if (n <= 0) {
      return false;
    }
    out.append(chunk, static_cast<size_t>(n));
    return true;
  }

  // The status line and headers, through the blank line; what follows stays in `pending`.
  static std::string ReadHead(int fd, std::string& pending) {
    auto deadline = Clock::now() + kPatience;
    while (pending.find("\r\n\r\n") == std::string::npos) {
      if (!ReadSome(fd, pending, deadline)) {
        return "";
      }
    }
    size_t end = pending.find("\r\n\r\n") + 4;
    std::string head = pending.substr(0, end);
    pending.erase(0, end);
    return head;
  }

  // A whole response with a Content-Length body.
  static std::string ReadWhole(int fd, std::string& pending) {
    std::string head = ReadHead(fd, pending);
    size_t length = 0;
    if (size_t at = head.find("Content-Length: "); at != std::string::npos) {
      length = std::stoul(head.substr(at + 16));
    }
    auto deadline = Clock::now() + kPatience;
    while (pending.size() < length && ReadSome(fd, pending, deadline)) {
    }
    std::string body = pending.substr(0, length);
    pending.erase(0, std::min(length, pending.size()));
    return head + body;
  }

  // Reads until `body` has `chunks` chunks or is done.
  static void ReadChunks(int fd, std::string& pending, ChunkedBody& body, size_t chunks) {
    auto deadline = Clock::now() + kPatience;
    body.Feed(pending);
    while (!body.done && !body.malformed && body.chunks.size() < chunks &&
           ReadSome(fd, pending, deadline)) {
      body.Feed(pending);
    }
  }

  static bool ReadToEof(int fd, std::string& out) {
    auto deadline = Clock::now() + kPatience;
    while (ReadSome(fd, out, deadline)) {
    }
    return Clock::now() < deadline;
  }

  static bool NothingToRead(int fd) {
    pollfd p{fd, POLLIN, 0};
    return ::poll(&p, 1, 0) == 0;
  }

  std::unique_ptr<Server> server_;
  StreamBox box_;
  std::vector<std::thread> producers_;
};

TEST_F(StreamTest, DeferredFinishFromAnotherThreadLeavesTheIOThreadFree) {
  ServerOptions options;
  options.threads = 1;  // the deferred and the other connection share the one thread
  Start(options);
  int fd = Connect();
  ASSERT_GE(fd, 0);
  SendAll(fd, "GET /deferred HTTP/1.1\r\nHost: x\r\n\r\n");
  auto stream = box_.Take();
  ASSERT_NE(stream, nullptr);
  EXPECT_EQ(server_->InFlight(), 1);

  // The handler has returned; the thread serves another connection while the first waits.
  ClientRequest other;
  other.url = "http://127.0.0.1:" + std::to_string(server_->port()) + "/other";
  other.timeout = kPatience;
  auto answered = Fetch(other);
  ASSERT_TRUE(answered.ok()) << answered.status().ToString();
  EXPECT_EQ(answered->body, "plain /other");
  EXPECT_TRUE(NothingToRead(fd)) << "the deferred response went out before Finish";

  producers_.emplace_back([stream] {
    std::this_thread::sleep_for(milliseconds(200));
    Response response;
    response.status = 201;
    response.Set("content-type", "text/plain");
    response.Set("content-length", "999");  // framing belongs to the server
    response.body = "computed later";
    stream->Finish(std::move(response));
  });
  std::string pending;
  std::string first = ReadWhole(fd, pending);
  EXPECT_THAT(first, StartsWith("HTTP/1.1 201 Created\r\n"));
  EXPECT_THAT(first, HasSubstr("Content-Length: 14\r\n"));
  EXPECT_THAT(first, Not(HasSubstr("999")));
  EXPECT_THAT(first, Not(HasSubstr("Connection: close")));
  EXPECT_THAT(first, EndsWith("\r\n\r\ncomputed later"));
  EXPECT_TRUE(stream->Closed());
  EXPECT_TRUE(Eventually([&] { return server_->InFlight() == 0; }));

  // Keep-alive goes on after a deferred response.
  SendAll(fd, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(ReadWhole(fd, pending), EndsWith("plain /next"));
  ::close(fd);
}

TEST_F(StreamTest, ChunksArriveBeforeEndAndKeepAliveContinues) {
  Start();
  int fd = Connect();
  ASSERT_GE(fd, 0);
  SendAll(fd, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
  auto stream = box_.Take();
  ASSERT_NE(stream, nullptr);
  ASSERT_TRUE(stream->Begin(200, {{"content-type", "text/event-stream"},
                                  {"Content-Length", "5"},
                                  {"connection", "close"},
                                  {"transfer-encoding", "gzip"}}));
  ASSERT_TRUE(stream->Write("data: one\n\n"));

  std::string pending;
  std::string head = ReadHead(fd, pending);
  EXPECT_THAT(head, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(head, HasSubstr("content-type: text/event-stream\r\n"));
  EXPECT_THAT(head, HasSubstr("Transfer-Encoding: chunked\r\n"));
  EXPECT_THAT(head, Not(HasSubstr("gzip")));
  EXPECT_THAT(head, Not(HasSubstr("ontent-Length")));
  EXPECT_THAT(head, Not(HasSubstr("onnection")));

  // The first event arrives while the producer still holds the stream open.
  ChunkedBody body;
  ReadChunks(fd, pending, body, 1);
  ASSERT_EQ(body.chunks.size(), 1u);
  EXPECT_EQ(body.chunks[0], "data: one\n\n");
  EXPECT_FALSE(body.done);
  EXPECT_FALSE(stream->Closed());

  std::string big(300000, 'z');
  EXPECT_TRUE(stream->Write("data: two\n\n"));
  EXPECT_TRUE(stream->Write(""));  // nothing, and not the end of the body
  EXPECT_TRUE(stream->Write(big));
  stream->End();
  EXPECT_TRUE(stream->Closed());
  EXPECT_FALSE(stream->Write("late"));
  ReadChunks(fd, pending, body, 1000);
  EXPECT_FALSE(body.malformed);
  EXPECT_TRUE(body.done);
  EXPECT_EQ(body.Joined(), "data: one\n\ndata: two\n\n" + big);
  EXPECT_EQ(pending, "");

  SendAll(fd, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(ReadWhole(fd, pending), EndsWith("plain /next"));
  ::close(fd);
}

TEST_F(StreamTest, HandlerMayStreamBeforeReturningWithoutBlockingItsThread) {
  ServerOptions options;
  options.threads = 1;
  Start(options);
  int fd = Connect();
  ASSERT_GE(fd, 0);
  // 3 MiB queued from the I/O thread itself: Write must not wait for a drain that only this
  // thread can do.
  SendAll(fd, "GET /inline HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string pending;
  EXPECT_THAT(ReadHead(fd, pending), HasSubstr("Transfer-Encoding: chunked"));
  ChunkedBody body;
  ReadChunks(fd, pending, body, 100000);
  EXPECT_TRUE(body.done);
  std::string all = body.Joined();
  ASSERT_EQ(all.size(), 48u * (64 << 10));
  EXPECT_EQ(all.front(), 'a');
  EXPECT_EQ(all.back(), 'a' + 47 % 26);
  ::close(fd);
}

TEST_F(StreamTest, Http10StreamIsUnframedAndEndsWithTheConnection) {
  Start();
  int fd = Connect();
  ASSERT_GE(fd, 0);
  SendAll(fd, "GET /events HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  auto stream = box_.Take();
  ASSERT_NE(stream, nullptr);
  ASSERT_TRUE(stream->Begin(200, {{"content-type", "text/plain"}}));
  EXPECT_TRUE(stream->Write("abc"));
  EXPECT_TRUE(stream->Write("def"));
  stream->End();
  std::string all;
  EXPECT_TRUE(ReadToEof(fd, all));
  EXPECT_THAT(all, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(all, HasSubstr("Connection: close\r\n"));
  EXPECT_THAT(all, Not(HasSubstr("Transfer-Encoding")));
  EXPECT_THAT(all, Not(HasSubstr("Content-Length")));
  EXPECT_THAT(all, EndsWith("\r\n\r\nabcdef"));
  ::close(fd);
}

TEST_F(StreamTest, HeadAndNoContentStreamsHaveNoBody) {
  Start();
  int fd = Connect();
  ASSERT_GE(fd, 0);
  SendAll(fd,
          "HEAD /events HTTP/1.1\r\nHost: x\r\n\r\n"
          "GET /events HTTP/1.1\r\nHost: x\r\n\r\n"
          "GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  auto head_stream = box_.Take();
  ASSERT_NE(head_stream, nullptr);
  ASSERT_TRUE(head_stream->Begin(200, {{"content-type", "text/event-stream"}}));
  // The response is complete with its head: the producer is told to stop.
  EXPECT_TRUE(Eventually([&] { return head_stream->Closed(); }));
  EXPECT_FALSE(head_stream->Write("data: x\n\n"));

  auto no_content = box_.Take();
  ASSERT_NE(no_content, nullptr);
  ASSERT_TRUE(no_content->Begin(204, {}));
  EXPECT_TRUE(Eventually([&] { return no_content->Closed(); }));

  std::string all;
  EXPECT_TRUE(ReadToEof(fd, all));
  // The HEAD response announces the chunked body a GET would get, and sends none.
  EXPECT_THAT(all, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(all, HasSubstr("Transfer-Encoding: chunked\r\n\r\nHTTP/1.1 204 No Content\r\n"));
  size_t no_content_at = all.find("HTTP/1.1 204");
  size_t last_at = all.find("HTTP/1.1 200", no_content_at);
  ASSERT_NE(last_at, std::string::npos);
  std::string no_content_head = all.substr(no_content_at, last_at - no_content_at);
  EXPECT_THAT(no_content_head, EndsWith("\r\n\r\n"));
  EXPECT_THAT(no_content_head, Not(HasSubstr("Transfer-Encoding")));
  EXPECT_THAT(all, EndsWith("plain /last"));
  ::close(fd);
}

TEST_F(StreamTest, ClientHangingUpStopsTheProducer) {
  Start();
  int fd = Connect();
  ASSERT_GE(fd, 0);
  SendAll(fd, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
  auto stream = box_.Take();
  ASSERT_NE(stream, nullptr);
  ASSERT_TRUE(stream->Begin(200, {}));
  ASSERT_TRUE(stream->Write("data: first\n\n"));
  std::string pending;
  ChunkedBody body;
  ReadHead(fd, pending);
  ReadChunks(fd, pending, body, 1);
  ASSERT_EQ(body.chunks.size(), 1u);
  ::close(fd);

  // A producer that writes now and then learns the client is gone.
  auto deadline = Clock::now() + kPatience;
  bool stopped = false;
  while (!stopped && Clock::now() < deadline) {
    stopped = !stream->Write("data: tick\n\n");
    std::this_thread::sleep_for(milliseconds(10));
  }
  EXPECT_TRUE(stopped);
  EXPECT_TRUE(stream->Closed());
}

TEST_F(StreamTest, ClientHangingUpIsNoticedWhileTheProducerIsQuiet) {
  Start();
  int fd = Connect();
  ASSERT_GE(fd, 0);
  SendAll(fd, "GET /deferred HTTP/1.1\r\nHost: x\r\n\r\n");
  auto stream = box_.Take();
  ASSERT_NE(stream, nullptr);
  EXPECT_FALSE(stream->Closed());
  ::close(fd);
  // No write needed: the connection watches the socket while it waits.
  EXPECT_TRUE(Eventually([&] { return stream->Closed(); }));
  EXPECT_TRUE(Eventually([&] { return server_->InFlight() == 0; }));
  EXPECT_FALSE(stream->Begin(200, {}));
  stream->Finish(Response{});  // ignored
}

TEST_F(StreamTest, SlowReaderStallsTheProducerUntilTheWriteDeadline) {
  ServerOptions options;
  options.read_timeout = milliseconds(1000);
  Start(options);
  int fd = Connect(/*receive_buffer=*/32 << 10);
  ASSERT_GE(fd, 0);
  SendAll(fd, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n");  // and never read
  auto stream = box_.Take();
  ASSERT_NE(stream, nullptr);
  ASSERT_TRUE(stream->Begin(200, {}));

  const std::string chunk(64 << 10, 'x');
  size_t accepted = 0;
  auto longest = Clock::duration::zero();
  auto give_up = Clock::now() + std::chrono::seconds(30);
  bool failed = false;
  // The size cap only keeps a broken build from eating the machine's memory.
  while (Clock::now() < give_up && accepted < (size_t{256} << 20)) {
    auto before = Clock::now();
    bool ok = stream->Write(chunk);
    longest = std::max(longest, Clock::now() - before);
    if (!ok) {
      failed = true;
      break;
    }
    accepted += chunk.size();
  }
  EXPECT_TRUE(failed) << "Write never failed; " << accepted << " bytes accepted";
  // The queue filled (1 MiB) before Write held the producer, and did not grow without bound:
  // what was accepted is the queue plus the two sockets' kernel buffers.
  EXPECT_GT(accepted, size_t{1} << 20);
  EXPECT_LT(accepted, size_t{48} << 20);
  EXPECT_GE(longest, milliseconds(200)) << "Write never blocked";
  EXPECT_TRUE(stream->Closed());
  ::close(fd);
}

TEST_F(StreamTest, DroppedStreamIs500) {
  Start();
  int fd = Connect();
  ASSERT_GE(fd, 0);
  std::string pending;
  // Dropped inside the handler.
  SendAll(fd, "GET /drop HTTP/1.1\r\nHost: x\r\n\r\n");
  std::string first = ReadWhole(fd, pending);
  EXPECT_THAT(first, StartsWith("HTTP/1.1 500 "));
  EXPECT_THAT(first, HasSubstr("{\"error\":{\"code\":\"INTERNAL\"}}"));
  ::close(fd);

  // Dropped later by another thread.
  fd = Connect();
  ASSERT_GE(fd, 0);
  pending.clear();
  SendAll(fd, "GET /deferred HTTP/1.1\r\nHost: x\r\n\r\n");
  auto stream = box_.Take();
  ASSERT_NE(stream, nullptr);
  producers_.emplace_back([stream = std::move(stream)]() mutable {
    std::this_thread::sleep_for(milliseconds(100));
    stream.reset();
  });
  std::string second = ReadWhole(fd, pending);
  EXPECT_THAT(second, StartsWith("HTTP/1.1 500 "));
  EXPECT_THAT(second, HasSubstr("INTERNAL"));
  ::close(fd);
}

TEST_F(StreamTest, DroppedBegunStreamEndsItsBody) {
  Start();
  int fd = Connect();
  ASSERT_GE(fd, 0);
  SendAll(fd, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
  auto stream = box_.Take();
  ASSERT_NE(stream, nullptr);
  ASSERT_TRUE(stream->Begin(200, {}));
  ASSERT_TRUE(stream->Write("partial"));
  stream.reset();
  std::string pending;
  EXPECT_THAT(ReadHead(fd, pending), StartsWith("HTTP/1.1 200 OK\r\n"));
  ChunkedBody body;
  ReadChunks(fd, pending, body, 100);
  EXPECT_TRUE(body.done);
  EXPECT_EQ(body.Joined(), "partial");
  SendAll(fd, "GET /next HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THAT(ReadWhole(fd, pending), EndsWith("plain /next"));
  ::close(fd);
}

TEST_F(StreamTest, ShutdownEndsBegunStreamsPromptly) {
  ServerOptions options;
  options.shutdown_grace = milliseconds(20000);
  Start(options);
  int fd = Connect();
  ASSERT_GE(fd, 0);
  SendAll(fd, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
  auto stream = box_.Take();
  ASSERT_NE(stream, nullptr);
  ASSERT_TRUE(stream->Begin(200, {{"content-type", "text/event-stream"}}));
  // Two events, then a quiet follower (no new log lines) that only checks Closed().
  std::atomic<bool> stopped{false};
  producers_.emplace_back([stream, &stopped] {
    stream->Write("data: one\n\n");
    stream->Write("data: two\n\n");
    auto deadline = Clock::now() + std::chrono::seconds(60);
    while (Clock::now() < deadline && !stream->Closed()) {
      std::this_thread::sleep_for(milliseconds(10));
    }
    stopped = !stream->Write("data: late\n\n");
  });
  std::string pending;
  ChunkedBody body;
  EXPECT_THAT(ReadHead(fd, pending), HasSubstr("Transfer-Encoding: chunked"));
  ReadChunks(fd, pending, body, 2);
  ASSERT_GE(body.chunks.size(), 2u);

  // A follow stream has no natural end: shutdown must not wait the grace period for it.
  auto start = Clock::now();
  server_->Shutdown();
  EXPECT_LT(Clock::now() - start, milliseconds(10000));
  EXPECT_TRUE(Eventually([&] { return stopped.load(); }));
  EXPECT_TRUE(stream->Closed());
  // The body was ended cleanly, and the connection closed.
  std::string rest = pending;
  EXPECT_TRUE(ReadToEof(fd, rest));
  body.Feed(rest);
  EXPECT_TRUE(body.done);
  EXPECT_FALSE(body.malformed);
  ::close(fd);
}

TEST_F(StreamTest, ShutdownWaitsForAPendingDeferredResponse) {
  ServerOptions options;
  options.shutdown_grace = milliseconds(20000);
  Start(options);
  int fd = Connect();
  ASSERT_GE(fd, 0);
  SendAll(fd, "GET /deferred HTTP/1.1\r\nHost: x\r\n\r\n");
  auto stream = box_.Take();
  ASSERT_NE(stream, nullptr);
  EXPECT_EQ(server_->InFlight(), 1);
  producers_.emplace_back([stream] {
    std::this_thread::sleep_for(milliseconds(300));
    Response response;
    response.body = "finished during shutdown";
    stream->Finish(std::move(response));
  });
  server_->Shutdown();
  EXPECT_EQ(server_->InFlight(), 0);
  std::string all;
  EXPECT_TRUE(ReadToEof(fd, all));
  EXPECT_THAT(all, StartsWith("HTTP/1.1 200 OK\r\n"));
  EXPECT_THAT(all, HasSubstr("Connection: close\r\n"));
  EXPECT_THAT(all, EndsWith("\r\n\r\nfinished during shutdown"));
  ::close(fd);
}

TEST_F(StreamTest, ProducerOutlivingTheServerIsSafe) {
  ServerOptions options;
  options.shutdown_grace = milliseconds(200);
  Start(options);
  int deferred_fd = Connect();
  int stream_fd = Connect();
  ASSERT_GE(deferred_fd, 0);
  ASSERT_GE(stream_fd, 0);
  SendAll(deferred_fd, "GET /deferred HTTP/1.1\r\nHost: x\r\n\r\n");
  auto deferred = box_.Take();
  ASSERT_NE(deferred, nullptr);
  SendAll(stream_fd, "GET /events HTTP/1.1\r\nHost: x\r\n\r\n");
  auto stream = box_.Take();
  ASSERT_NE(stream, nullptr);
  ASSERT_TRUE(stream->Begin(200, {}));

  // Producers keep calling while the server shuts down (the deferred one past its grace
  // period) and is destroyed.
  std::atomic<bool> stop{false};
  for (auto* s : {&deferred, &stream}) {
    producers_.emplace_back([s = *s, &stop] {
      while (!stop) {
        s->Write("data: x\n\n");
        (void)s->Closed();
        std::this_thread::yield();
      }
    });
  }
  server_.reset();
  stop = true;

  EXPECT_TRUE(deferred->Closed());
  EXPECT_TRUE(stream->Closed());
  EXPECT_FALSE(stream->Write("after"));
  stream->End();
  deferred->Finish(Response{});
  EXPECT_FALSE(deferred->Begin(200, {}));
  std::string all;
  EXPECT_TRUE(ReadToEof(deferred_fd, all));
  EXPECT_EQ(all, "");  // cut: nothing was ever answered
  ::close(deferred_fd);
  ::close(stream_fd);
}

TEST(StreamOutsideAServerTest, DeferOnAPlainResponseIsClosed) {
  Response response;
  auto stream = response.Defer();
  ASSERT_NE(stream, nullptr);
  EXPECT_EQ(response.Defer(), stream);
  EXPECT_TRUE(stream->Closed());
  EXPECT_FALSE(stream->Begin(200, {}));
  EXPECT_FALSE(stream->Write("x"));
  stream->Finish(Response{});
  stream->End();
}

TEST(StreamHeadTest, ChunkedFramingBelongsToTheServer) {
  std::string head;
  internal::SerializeStreamHead(
      200, {{"content-type", "text/event-stream"}, {"Content-Length", "3"}, {"x-a", "1"}},
      /*keep_alive=*/true, /*http10=*/false, "Date: d\r\n", head);
  EXPECT_EQ(head,
            "HTTP/1.1 200 OK\r\nDate: d\r\ncontent-type: text/event-stream\r\nx-a: 1\r\n"
            "Transfer-Encoding: chunked\r\n\r\n");

  internal::SerializeStreamHead(200, {}, /*keep_alive=*/false, /*http10=*/true, "", head);
  EXPECT_EQ(head, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");

  internal::SerializeStreamHead(304, {}, /*keep_alive=*/true, /*http10=*/false, "", head);
  EXPECT_EQ(head, "HTTP/1.1 304 Not Modified\r\n\r\n");
}

}  // namespace
}  // namespace kiln::http
