// One connection of the HTTP/1.1 listener: reading requests with their deadlines, calling
// the handler, writing responses, and delivering deferred and streamed ones.

#include "http/server_impl.h"

// GCC 12 wrongly reports Asio's coroutine frame allocator (operator new/delete of
// awaitable_frame_base) as mismatched once the coroutines have external linkage (GCC bug
// 105853 and kin); the pair is Asio's own and matches.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace kiln::http::internal {

bool ServerImpl::FillRequest(Parser& parser, Request& request) {
  auto& message = parser.get();
  request.method.assign(message.method_string());
  std::string_view target = message.target();
  request.target.assign(target);

  // Origin-form ("/path?q") as browsers send, or absolute-form as proxies send.
  auto url = (!target.empty() && target.front() == '/') ? boost::urls::parse_origin_form(target)
                                                        : boost::urls::parse_absolute_uri(target);
  if (!url) {
    return false;
  }
  std::string_view path = url->encoded_path();
  if (path.empty()) {
    path = "/";
  }
  if (!internal::DecodeInto(path, /*plus_as_space=*/false, request.path)) {
    return false;
  }
  if (!internal::ParseQuery(
          url->has_query() ? std::string_view(url->encoded_query()) : std::string_view(),
          request.query)) {
    return false;
  }

  size_t count = 0;
  for (const auto& field : message) {
    if (count == request.headers.size()) {
      request.headers.emplace_back();
    }
    auto& [name, value] = request.headers[count++];
    std::string_view raw = field.name_string();
    name.resize(raw.size());
    std::transform(raw.begin(), raw.end(), name.begin(), internal::ToLower);
    value.assign(field.value());
  }
  request.headers.resize(count);
  request.body = std::move(message.body());
  return true;
}

void ServerImpl::FillError(const Status& status, int http_status, Response& response) {
  response.status = 200;
  response.headers.clear();
  response.body.clear();
  if (on_error_) {
    on_error_(status, response);
  } else {
    response.Set("content-type", "text/plain; charset=utf-8");
    response.body = status.ToString() + "\n";
  }
  // The API layer maps codes to statuses; 431 has no code of its own, and a responder that
  // left a success status must not turn a refused request into one.
  if (http_status == 431 || response.status < 400) {
    response.status = http_status;
  }
  response.close = true;
}

void ServerImpl::CallHandler(Worker* worker, const Request& request, Response& response) {
  response.status = 200;
  response.headers.clear();
  response.body.clear();
  response.close = false;
  worker->in_flight.fetch_add(1, std::memory_order_relaxed);
  try {
    handler_(request, response);
  } catch (const std::exception& e) {
    // Handlers report errors as values; an exception here is a bug, but it must not take
    // the connection's thread down with it.
    log::Error("http handler threw", {{"error", e.what()}, {"path", request.path}});
    HandlerFailed(response);
  } catch (...) {
    log::Error("http handler threw", {{"path", request.path}});
    HandlerFailed(response);
  }
  if (!internal::ResponseAccess::Deferred(response)) [[likely]] {
    worker->in_flight.fetch_sub(1, std::memory_order_relaxed);
  }
}

void ServerImpl::HandlerFailed(Response& response) {
  if (internal::ResponseAccess::Deferred(response)) {
    // The 500 answers the request; a producer the handler started must stop.
    internal::ResponseAccess::TakeStream(response)->Detach();
  }
  FillError(Status::Internal("the request handler failed"), 500, response);
}

asio::awaitable<void> ServerImpl::Linger(Session* session, Socket* socket) {
  boost::system::error_code ec;
  socket->shutdown(tcp::socket::shutdown_send, ec);
  if (ec) {
    co_return;
  }
  session->ExpiresAfter(kLingerTime);
  std::array<char, 4096> scratch;
  size_t total = 0;
  while (total < kLingerBytes) {
    auto [read_ec, n] = co_await socket->async_read_some(asio::buffer(scratch), kAsTuple);
    if (read_ec) {
      break;
    }
    total += n;
  }
}

// GCC 12 reports a false -Wmismatched-new-delete on this coroutine's frame (allocated and
// freed by Asio's own operator new and delete, which match).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
asio::awaitable<bool> ServerImpl::Deliver(Worker* worker, Session* session, Socket* socket,
                                          beast::flat_buffer* buffer,
                                          std::shared_ptr<internal::StreamState> stream,
                                          Exchange exchange, Response* response,
                                          std::string* head) {
  Timer wake(worker->ioc);
  wake.expires_at(SteadyTime::max());
  stream->SetWake(&wake);
  session->stream = stream.get();
  session->wake = &wake;
  // Also runs when the io_context destroys this coroutine suspended.
  struct Detach {
    Session* session;
    internal::StreamState* stream;
    ~Detach() {
      session->stream = nullptr;
      session->wake = nullptr;
      stream->Detach();
    }
  } detach{session, stream.get()};

  // Bytes the client sends meanwhile are its next request (pipelining): they stay in the
  // buffer, and watching stops there so that the buffer cannot grow without bound.
  bool watch = buffer->size() == 0;
  bool begun = false;
  bool body = false;  // the begun response has a body
  bool chunked = false;
  bool keep_alive = exchange.keep_alive;
  internal::StreamWork work;
  std::string sizes;  // the chunk-size lines of one write
  std::vector<asio::const_buffer> buffers;

  while (true) {
    if (!socket->is_open()) {
      co_return false;  // cut at the end of the shutdown grace period
    }
    work.Clear();
    if (!stream->Take(work)) {
      session->deadline = SteadyTime::max();
      session->timed_out = false;
      if (!watch) {
        co_await wake.async_wait(kAsTuple);
        continue;
      }
      auto [order, wait_ec, read_ec, n] =
          co_await asio::experimental::make_parallel_group(
              wake.async_wait(asio::deferred),
              socket->async_read_some(buffer->prepare(kReadChunk), asio::deferred))
              .async_wait(asio::experimental::wait_for_one(), asio::use_awaitable);
      (void)order;
      (void)wait_ec;
      if (n > 0) {
        buffer->commit(n);
        watch = false;
      } else if (read_ec && read_ec != asio::error::operation_aborted) {
        stream->Close();  // the client hung up (or reset): nobody is left to answer
        co_return false;
      }
      continue;
    }

    if (work.finish || work.abandoned) {
      Response* whole = response;
      if (work.finish) {
        whole = &*work.finish;
      } else {
        FillError(Status::Internal("the request handler did not complete its response"), 500,
                  *response);
      }
      bool keep = keep_alive && !whole->close && !shutting_down_.load();
      internal::SerializeHead(*whole, keep, exchange.http10, worker->DateLine(), *head);
      std::array<asio::const_buffer, 2> parts{asio::buffer(*head), asio::buffer(whole->body)};
      if (exchange.head_only || !internal::StatusAllowsBody(whole->status)) {
        parts[1] = asio::const_buffer();
      }
      session->ExpiresAfter(options_.read_timeout);
      auto [write_ec, written] = co_await asio::async_write(*socket, parts, kAsTuple);
      (void)written;
      co_return !write_ec && keep;
    }

    buffers.clear();
    if (work.begin) {
      begun = true;
      body = !exchange.head_only && internal::StatusAllowsBody(work.status);
      chunked = body && !exchange.http10;
      // An HTTP/1.0 body ends where the connection does.
      keep_alive = keep_alive && !(body && exchange.http10) && !shutting_down_.load();
      internal::SerializeStreamHead(work.status, work.headers, keep_alive, exchange.http10,
                                    worker->DateLine(), *head);
      buffers.push_back(asio::buffer(*head));
    }
    if (!begun) {
      continue;  // nothing the connection acts on before Begin
    }
    // Shutdown ends a begun stream after what is queued now.
    bool stop = work.closed || shutting_down_.load(std::memory_order_relaxed);
    size_t chunk_bytes = 0;
    for (const std::string& chunk : work.chunks) {
      chunk_bytes += chunk.size();
    }
    if (body) {
      // Sized up front: the buffers point into it.
      sizes.resize(work.chunks.size() * kChunkSizeLineMax);
      for (size_t i = 0; i < work.chunks.size(); ++i) {
        const std::string& chunk = work.chunks[i];
        if (chunked) {
          char* line = sizes.data() + i * kChunkSizeLineMax;
          char* end = std::to_chars(line, line + 16, chunk.size(), 16).ptr;
          *end++ = '\r';
          *end++ = '\n';
          buffers.push_back(asio::buffer(line, static_cast<size_t>(end - line)));
        }
        buffers.push_back(asio::buffer(chunk));
        if (chunked) {
          buffers.push_back(asio::buffer(kCrlf));
        }
      }
      if (chunked && (work.end || stop)) {
        buffers.push_back(asio::buffer(kLastChunk));
      }
    }
    if (!buffers.empty()) {
      session->ExpiresAfter(options_.read_timeout);
      auto [write_ec, written] = co_await asio::async_write(*socket, buffers, kAsTuple);
      (void)written;
      stream->Sent(chunk_bytes);
      if (write_ec) {
        stream->Close();  // gone, or timed out: the producer must stop
        co_return false;
      }
    } else {
      stream->Sent(chunk_bytes);
    }
    if (!body) {
      stream->Close();  // HEAD, 1xx, 204, 304: complete with the head
      co_return keep_alive;
    }
    if (work.end) {
      co_return keep_alive;
    }
    if (stop) {
      stream->Close();
      co_return false;
    }
  }
}
#pragma GCC diagnostic pop

// The size of the request head at the start of `buffer` (through its blank line), or 0 when
// it has not all arrived yet.
static size_t HeadSize(const beast::flat_buffer& buffer) {
  std::string_view data(static_cast<const char*>(buffer.data().data()), buffer.size());
  size_t end = data.find("\r\n\r\n");
  return end == std::string_view::npos ? 0 : end + 4;
}

}  // namespace kiln::http::internal

namespace kiln::http {

void Exchange::Watch(Session& other) const { worker->Link(&other); }
void Exchange::Unwatch(Session& other) const { worker->Unlink(&other); }
std::string_view Exchange::DateLine() const { return worker->DateLine(); }

}  // namespace kiln::http

namespace kiln::http::internal {

asio::awaitable<void> ServerImpl::RunSession(Worker* worker, Socket socket, std::string remote,
                                             bool tls) {
  sessions_.fetch_add(1);
  Session session;
  session.socket = &socket;
  worker->Link(&session);
  struct Cleanup {
    ServerImpl* server;
    Worker* worker;
    Session* session;
    ~Cleanup() {
      worker->Unlink(session);
      server->SessionEnded();
    }
  } cleanup{this, worker, &session};

  boost::system::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  Request request;
  request.remote = remote.empty() ? FormatEndpoint(socket.remote_endpoint(ec)) : std::move(remote);
  request.tls = tls;
  internal::Connection connection(worker->ioc.get_executor());
  Response response;
  internal::ResponseAccess::Link(response, &connection);
  std::string head;
  beast::flat_buffer buffer;
  std::optional<Parser> parser;
  bool first = true;
  bool linger = false;

  while (!shutting_down_.load(std::memory_order_relaxed)) {
    // Wait for the first byte of the next request. A connection that goes quiet here is
    // simply closed: there is no request to answer.
    session.idle = true;
    if (buffer.size() == 0) {
      session.ExpiresAfter(first ? options_.header_timeout : options_.idle_timeout);
      auto [read_ec, n] = co_await socket.async_read_some(buffer.prepare(kReadChunk), kAsTuple);
      if (read_ec) {
        break;
      }
      buffer.commit(n);
    }
    session.idle = false;
    first = false;

    parser.emplace();
    parser->header_limit(static_cast<std::uint32_t>(options_.max_header_bytes));
    // The limit applies once the head is known not to be the gateway's (apps take bodies of
    // any size, streamed); Beast would check a Content-Length against it with the head.
    parser->body_limit(boost::none);

    // Errors from here on are the client's: answer them, then close.
    std::optional<Status> error;
    int error_status = 400;
    auto classify = [&](const boost::system::error_code& read_ec) {
      if (read_ec == asio::error::operation_aborted && session.timed_out) {
        error = Status(Code::kTimeout, "REQUEST_TIMEOUT", "the request did not arrive in time",
                       "send the whole request promptly");
        error_status = 408;
      } else if (read_ec == bhttp::error::body_limit) {
        error = Status(Code::kPayloadTooLarge, "BODY_TOO_LARGE",
                       "the request body is larger than " +
                           std::to_string(options_.body_limit_bytes) + " bytes",
                       "send a smaller body");
        error_status = 413;
      } else if (read_ec == bhttp::error::header_limit) {
        error = Status::InvalidArgument("HEADERS_TOO_LARGE",
                                        "the request headers are larger than " +
                                            std::to_string(options_.max_header_bytes) + " bytes",
                                        "send fewer or shorter headers");
        error_status = 431;
      } else if (read_ec.category() ==
                     bhttp::make_error_code(bhttp::error::bad_target).category() &&
                 read_ec != bhttp::error::end_of_stream &&
                 read_ec != bhttp::error::partial_message) {
        error =
            Status::InvalidArgument("BAD_REQUEST", "malformed HTTP request: " + read_ec.message(),
                                    "send a valid HTTP/1.1 request");
        error_status = 400;
      }
      // Otherwise the peer went away or the server is shutting down: nothing to answer.
    };

    // The whole head is read before it is parsed, so that its size and its line folding are
    // checked on the bytes as sent: Beast joins folded lines, and applies its header limit
    // per call rather than to the whole head.
    boost::system::error_code header_ec;
    size_t head_size = 0;
    session.ExpiresAfter(options_.header_timeout);
    while ((head_size = HeadSize(buffer)) == 0) {
      if (buffer.size() >= static_cast<size_t>(options_.max_header_bytes)) {
        header_ec = bhttp::error::header_limit;
        break;
      }
      auto [read_ec, n] = co_await socket.async_read_some(buffer.prepare(kReadChunk), kAsTuple);
      if (read_ec) {
        header_ec = read_ec;
        break;
      }
      buffer.commit(n);
    }
    if (!header_ec && head_size > static_cast<size_t>(options_.max_header_bytes)) {
      header_ec = bhttp::error::header_limit;
    }
    if (!header_ec) {
      std::string_view head(static_cast<const char*>(buffer.data().data()), head_size);
      if (head.find("\n ") != std::string_view::npos ||
          head.find("\n\t") != std::string_view::npos) {
        error = Status::InvalidArgument(
            "BAD_REQUEST", "a header line starts with a space or tab (obs-fold, RFC 9112 §5.2)",
            "send each header on one line");
      } else {
        ParseBuffered(
            *parser, buffer, [](const Parser& p) { return p.is_header_done(); }, header_ec);
        if (!header_ec && !parser->is_header_done()) {
          header_ec = bhttp::error::bad_version;  // a head that ends yet does not parse whole
        }
      }
    }
    if (header_ec) {
      classify(header_ec);
    } else if (error) {
      // refused before parsing
    } else {
      auto& message = parser->get();
      // Beast refuses most ambiguous framing itself; what it lets through (a Transfer-Encoding
      // that does not end in chunked) would let a proxy and us disagree on where the
      // request ends.
      bool bad_framing = message.count(bhttp::field::transfer_encoding) != 0 &&
                         (!parser->chunked() || message.count(bhttp::field::content_length) != 0);
      const char* problem = nullptr;
      if (bad_framing) {
        problem = "Transfer-Encoding must end in chunked and comes without Content-Length";
      } else if (message.version() < 10 || message.version() > 11) {
        problem = "unsupported HTTP version";
      } else if (message.count(bhttp::field::host) > 1) {
        problem = "more than one Host header";
      } else if (message.version() == 11 && message.count(bhttp::field::host) == 0) {
        problem = "an HTTP/1.1 request needs a Host header";
      }
      if (problem != nullptr) {
        error = Status::InvalidArgument("BAD_REQUEST", problem, "send a valid HTTP/1.1 request");
      } else if (options_.takeover && options_.takeover->Claims(*parser)) {
        // The gateway's: it reads the body (streamed), answers, and says whether the
        // connection goes on.
        session.idle = false;
        worker->in_flight.fetch_add(1, std::memory_order_relaxed);
        http::Exchange exchange{socket,         buffer,         *parser,
                                session,        request.remote, tls,
                                shutting_down_, worker,         options_.read_timeout};
        bool again = co_await options_.takeover->Serve(exchange);
        worker->in_flight.fetch_sub(1, std::memory_order_relaxed);
        session.tunnel = false;
        if (!again || shutting_down_.load(std::memory_order_relaxed)) {
          break;
        }
        continue;
      } else if (parser->content_length() &&
                 *parser->content_length() > static_cast<uint64_t>(options_.body_limit_bytes)) {
        classify(bhttp::error::body_limit);
      } else if (!parser->is_done()) {
        parser->body_limit(static_cast<std::uint64_t>(options_.body_limit_bytes));
        if (message.version() == 11 &&
            internal::EqualsLower(message[bhttp::field::expect], "100-continue")) {
          static constexpr std::string_view kContinue = "HTTP/1.1 100 Continue\r\n\r\n";
          session.ExpiresAfter(options_.read_timeout);
          auto [write_ec, written] =
              co_await asio::async_write(socket, asio::buffer(kContinue), kAsTuple);
          (void)written;
          if (write_ec) {
            break;
          }
        }
        boost::system::error_code body_ec;
        parser->eager(true);
        ParseBuffered(
            *parser, buffer, [](const Parser& p) { return p.is_done(); }, body_ec);
        if (!body_ec && !parser->is_done()) {
          session.ExpiresAfter(options_.read_timeout);
          auto [read_ec, n] = co_await bhttp::async_read(socket, buffer, *parser, kAsTuple);
          (void)n;
          body_ec = read_ec;
        }
        if (body_ec) {
          classify(body_ec);
          if (!error) {
            break;
          }
        }
      }
    }
    if (header_ec && !error) {
      break;
    }

    bool keep_alive = false;
    bool http10 = false;
    bool head_only = false;
    if (error) {
      FillError(*error, error_status, response);
      linger = true;
    } else {
      keep_alive = parser->get().keep_alive();
      http10 = parser->get().version() == 10;
      head_only = parser->get().method() == bhttp::verb::head;
      if (FillRequest(*parser, request)) {
        CallHandler(worker, request, response);
        if (internal::ResponseAccess::Deferred(response)) [[unlikely]] {
          Exchange exchange{keep_alive && !shutting_down_.load(), http10, head_only};
          bool again = co_await Deliver(worker, &session, &socket, &buffer,
                                        internal::ResponseAccess::TakeStream(response), exchange,
                                        &response, &head);
          worker->in_flight.fetch_sub(1, std::memory_order_relaxed);
          if (!again) {
            break;
          }
          continue;
        }
      } else {
        FillError(Status::InvalidArgument("BAD_REQUEST",
                                          "invalid request target \"" + request.target + "\"",
                                          "percent-encode the path and query"),
                  400, response);
        linger = true;
      }
      keep_alive = keep_alive && !response.close && !shutting_down_.load();
    }

    internal::SerializeHead(response, keep_alive, http10, worker->DateLine(), head);
    std::array<asio::const_buffer, 2> buffers{asio::buffer(head), asio::buffer(response.body)};
    if (head_only || !internal::StatusAllowsBody(response.status)) {
      buffers[1] = asio::const_buffer();
    }
    session.ExpiresAfter(options_.read_timeout);
    auto [write_ec, written] = co_await asio::async_write(socket, buffers, kAsTuple);
    (void)written;
    if (write_ec || !keep_alive) {
      break;
    }
  }

  if (linger) {
    co_await Linger(&session, &socket);
  } else {
    socket.shutdown(tcp::socket::shutdown_both, ec);
  }
  socket.close(ec);
}

}  // namespace kiln::http::internal
