#pragma once
// The hand-over of a request, with its connection, to the gateway (DESIGN.md §6): the server
// parses the request head as for any request, asks the Takeover whether the request is its
// own (by Host), and if so lets it serve the rest of the exchange on the connection's own
// thread: reading the body, talking to the app, writing the answer, or tunnelling a
// WebSocket. Then the server goes on with the next request on the connection, or closes it.
//
// Asio and Beast types: include this only from .cc files (the http module's and the
// gateway's), never from a widely included header.

#include <time.h>

#include <atomic>
#include <chrono>
#include <string>
#include <string_view>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/string_body.hpp>

#include "http/stream.h"

namespace kiln::http {

using Executor = boost::asio::io_context::executor_type;
using Socket = boost::asio::basic_stream_socket<boost::asio::ip::tcp, Executor>;
using HeadParser = boost::beast::http::request_parser<boost::beast::http::string_body>;
using SteadyTime = std::chrono::steady_clock::time_point;

// Deadlines are whole seconds or more, so the coarse clock (a few ms resolution, read from
// the vDSO without touching the TSC) is precise enough, and it is read several times per
// request.
inline SteadyTime CoarseNow() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return SteadyTime(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
}

namespace internal {
struct Worker;
}  // namespace internal

// One socket watched by its worker's deadline sweep (no timer per operation): the owner moves
// the deadline before each operation (a plain store), and once it passes, the sweep cancels
// the socket's pending operations (they end with operation_aborted) and sets timed_out.
// Used on the socket's worker thread only.
struct Session {
  Socket* socket = nullptr;
  SteadyTime deadline = SteadyTime::max();
  bool timed_out = false;  // the sweep cancelled the pending operation
  bool idle = true;        // waiting for the first byte of a request: shutdown closes it
  // Shutdown cancels it at once, like an idle one: a WebSocket tunnel or a streamed response
  // that could last for hours would otherwise hold shutdown for the whole grace period.
  bool tunnel = false;
  // While a deferred response is delivered: its stream and the timer that wakes the
  // connection (both owned by the connection's coroutine).
  internal::StreamState* stream = nullptr;
  internal::WakeTimer* wake = nullptr;
  Session* prev = nullptr;
  Session* next = nullptr;

  void ExpiresAfter(std::chrono::milliseconds timeout) {
    deadline = CoarseNow() + timeout;
    timed_out = false;
  }
  void NoDeadline() {
    deadline = SteadyTime::max();
    timed_out = false;
  }
};

// What the server hands over: the connection, the bytes it read past the request head, and
// the parsed head. Lives for one Serve call.
struct Exchange {
  Socket& client;
  boost::beast::flat_buffer& buffer;  // read past the head: the body's start, or more
  HeadParser& parser;                 // head done, body not read; Serve may move from it
  Session& session;                   // the client socket's deadline
  std::string_view remote;            // "203.0.113.7:5123"
  bool tls = false;
  const std::atomic<bool>& shutting_down;
  internal::Worker* worker = nullptr;
  std::chrono::milliseconds read_timeout;  // the server's, for client reads and writes

  // Puts `session` (for another socket of this thread, such as an upstream) under the
  // worker's sweep and shutdown, until Unwatch. Shutdown treats it as busy (or as a tunnel).
  void Watch(Session& other) const;
  void Unwatch(Session& other) const;
  // "Date: ...\r\n" for the current second.
  std::string_view DateLine() const;
};

class Takeover {
 public:
  virtual ~Takeover() = default;
  // Whether the request whose head `parser` holds is the takeover's (the server has checked
  // its framing: Content-Length and Transfer-Encoding agree, HTTP/1.0 or 1.1, Host present
  // on 1.1). Called on the connection's I/O thread; must not block.
  virtual bool Claims(const HeadParser& parser) = 0;
  // Serves the request to the end. Called right after a Claims that answered true, on the
  // same thread and with no suspension in between (so Claims may hand work over to it). True when
  // the connection can carry another request: the whole request was read and the whole answer
  // written with keep-alive. The server closes the connection otherwise.
  virtual boost::asio::awaitable<bool> Serve(Exchange& exchange) = 0;
};

}  // namespace kiln::http
