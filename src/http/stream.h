#pragma once
// Deferred and streamed responses (http::Stream): the state shared between a producer, on any
// thread, and the connection that writes the response, on its I/O thread. Internal to the http
// module.
//
// Hand-off: the producer queues work under the state's mutex. The connection takes it with
// Take(); when there is nothing to take, Take arms a wake-up, and the next producer call posts
// one job to the connection's executor that cancels the connection's wake timer (an Asio timer
// used as an event, which the connection awaits). So a waiting connection costs no thread and
// no polling, and a producer posts at most once per time the connection ran dry.
//
// Lifetime: producer and connection each hold a shared_ptr. The producer posts only while a
// wake-up is armed, and Detach() disarms it for good under the mutex, so once the connection
// has detached (when its response is complete, when its coroutine is destroyed, or from
// Server::Shutdown after the I/O threads have stopped) no producer call touches the
// io_context or the connection again.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "http/http.h"

namespace kiln::http::internal {

using Executor = boost::asio::io_context::executor_type;
using WakeTimer = boost::asio::basic_waitable_timer<
    std::chrono::steady_clock, boost::asio::wait_traits<std::chrono::steady_clock>, Executor>;

// Write blocks its caller while more than this many bytes are queued and unsent.
constexpr size_t kStreamQueueLimit = 1 << 20;

// What Response::Defer needs from the connection; lives in the connection's coroutine frame.
class Connection {
 public:
  explicit Connection(Executor executor) : executor_(executor) {}
  Executor executor() const { return executor_; }

 private:
  Executor executor_;
};

// What the connection takes from the stream in one go. Reused across takes, so the chunk
// vector's capacity goes back and forth between the two sides instead of being reallocated.
struct StreamWork {
  std::optional<Response> finish;  // Finish was called
  bool begin = false;              // Begin was called: status and headers below
  int status = 0;
  Headers headers;
  std::vector<std::string> chunks;  // Write calls since the last take, in order
  bool end = false;                 // End, or the producer let go after Begin
  bool abandoned = false;           // the producer let go without Finish or Begin
  bool closed = false;              // closed by shutdown

  void Clear();
};

class StreamState final : public Stream, public std::enable_shared_from_this<StreamState> {
 public:
  // Without an executor the stream is not tied to a connection and starts closed.
  explicit StreamState(std::optional<Executor> executor);

  // Producer side: any thread.
  void Finish(Response response) override;
  bool Begin(int status, Headers headers) override;
  bool Write(std::string_view data) override;
  void End() override;
  bool Closed() const override;
  // The producer's last reference went away.
  void Abandon();

  // Connection side: its I/O thread.
  // Where a posted wake-up lands: the timer the connection awaits (null: none).
  void SetWake(WakeTimer* wake) { wake_ = wake; }
  // Moves the queued work into `work` (cleared by the caller). False when there was none; a
  // wake-up is then armed for the next producer call.
  bool Take(StreamWork& work);
  // `bytes` of chunks have left the queue (written, or dropped by a failed write).
  void Sent(size_t bytes);
  // The producer must stop: the client is gone, a write failed, or the body is complete.
  void Close();
  // Shutdown closes streams that have begun; a deferred response keeps its grace period.
  // True when it closed this one.
  bool CloseIfBegun();
  // Final: no wake-up is posted after this. Also called from Server::Shutdown once the I/O
  // threads have stopped.
  void Detach();

 private:
  void ArmedWakeLocked();
  void RunWake();  // posted to the connection's executor

  mutable std::mutex mu_;
  std::condition_variable drained_;  // unsent_ fell to the limit, or the stream closed
  const std::optional<Executor> executor_;
  // Guarded by mu_.
  bool waiting_ = false;  // the connection ran dry and awaits a wake-up
  bool closed_ = false;
  bool finished_ = false;
  bool begun_ = false;
  bool begin_taken_ = false;
  bool ended_ = false;
  bool abandoned_ = false;
  std::optional<Response> finish_;
  int status_ = 0;
  Headers headers_;
  std::vector<std::string> chunks_;
  size_t unsent_ = 0;  // bytes queued or being written
  // Connection thread only.
  WakeTimer* wake_ = nullptr;
};

// The server's access to Response's private members.
struct ResponseAccess {
  static void Link(Response& response, Connection* connection) {
    response.link_.connection_ = connection;
  }
  static bool Deferred(const Response& response) { return response.stream_ != nullptr; }
  // The stream a handler deferred to; leaves the Response without it, so that a producer
  // that already let go is seen as gone.
  static std::shared_ptr<StreamState> TakeStream(Response& response);
  // A Response handed to Finish must not keep its own stream alive.
  static void Unlink(Response& response) {
    response.link_.connection_ = nullptr;
    response.stream_.reset();
  }
  static Connection* ConnectionOf(const Response& response) { return response.link_.connection_; }
};

}  // namespace kiln::http::internal
