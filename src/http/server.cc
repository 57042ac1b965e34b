// The HTTP/1.1 listener: binding, accepting, the deadline sweep and shutdown. How a connection
// runs is in connection.cc; the design notes are at the top of server_impl.h.

#include "http/server_impl.h"

namespace kiln::http {
namespace internal {

Status ServerImpl::Listen() {
  std::string where = options_.host + ":" + std::to_string(options_.port);
  auto fail = [&](const boost::system::error_code& ec) {
    return Status::Unavailable("LISTEN_FAILED", "cannot listen on " + where + ": " + ec.message(),
                               "pick another --listen address or stop the process using that "
                               "port");
  };
  boost::system::error_code ec;
  tcp::endpoint endpoint;
  asio::ip::address address = asio::ip::make_address(options_.host, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, options_.port);
  } else {
    // A host name such as "localhost": resolve it once, at start-up.
    asio::ip::basic_resolver<tcp, Executor> resolver(workers_[0]->ioc);
    auto results = resolver.resolve(options_.host, std::to_string(options_.port), ec);
    if (ec || results.empty()) {
      return fail(ec ? ec : asio::error::host_not_found);
    }
    endpoint = results.begin()->endpoint();
  }
  protocol_ = endpoint.protocol();
  int fd = ::socket(protocol_.family(), SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    return fail(boost::system::error_code(errno, boost::system::system_category()));
  }
  acceptor_.emplace(workers_[0]->ioc);
  acceptor_->assign(protocol_, fd, ec);
  if (ec) {
    ::close(fd);
    return fail(ec);
  }
  acceptor_->set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) {
    acceptor_->bind(endpoint, ec);
  }
  if (!ec) {
    acceptor_->listen(1024, ec);
  }
  if (ec) {
    return fail(ec);
  }
  port_ = acceptor_->local_endpoint(ec).port();
  if (ec) {
    return fail(ec);
  }
  return Status::Ok();
}

void ServerImpl::Run() {
  running_ = true;
  asio::co_spawn(workers_[0]->ioc, Accept(), asio::detached);
  for (auto& worker : workers_) {
    asio::co_spawn(worker->ioc, Sweep(worker.get()), asio::detached);
  }
  for (auto& worker : workers_) {
    Worker* w = worker.get();
    w->thread = std::thread([w] { w->ioc.run(); });
  }
}

// Asio's async_accept uses accept(2), which leaves a window where a fork+exec elsewhere in
// the process (the runtime starts runc) inherits the connection; accept4 with SOCK_CLOEXEC
// closes it. Readiness still comes from the reactor.
asio::awaitable<void> ServerImpl::Accept() {
  Timer backoff(workers_[0]->ioc);
  while (acceptor_->is_open()) {
    auto [wait_ec] = co_await acceptor_->async_wait(tcp::acceptor::wait_read, kAsTuple);
    if (wait_ec || !acceptor_->is_open()) {
      break;
    }
    // Take everything that is queued, then wait again.
    while (true) {
      int fd =
          ::accept4(acceptor_->native_handle(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (fd < 0) {
        int err = errno;
        if (err == EINTR || err == ECONNABORTED) {
          continue;
        }
        if (err != EAGAIN && err != EWOULDBLOCK) {
          // Out of descriptors or memory: back off instead of spinning.
          log::Warn("accept failed", {{"error", Status::FromErrno("accept4", err).message()}});
          backoff.expires_after(std::chrono::milliseconds(50));
          co_await backoff.async_wait(kAsTuple);
        }
        break;
      }
      Worker* worker = workers_[next_worker_.fetch_add(1) % workers_.size()].get();
      Socket socket(worker->ioc);
      boost::system::error_code ec;
      socket.assign(protocol_, fd, ec);
      if (ec) {
        ::close(fd);
        continue;
      }
      asio::co_spawn(worker->ioc, RunSession(worker, std::move(socket), {}, false), asio::detached);
    }
  }
}

asio::awaitable<void> ServerImpl::Sweep(Worker* worker) {
  Timer timer(worker->ioc);
  while (true) {
    timer.expires_after(sweep_interval_);
    auto [ec] = co_await timer.async_wait(kAsTuple);
    if (ec) {
      co_return;
    }
    SteadyTime now = CoarseNow();
    for (Session* s = worker->sessions; s != nullptr; s = s->next) {
      if (!s->timed_out && s->deadline <= now) {
        s->timed_out = true;
        s->deadline = SteadyTime::max();
        boost::system::error_code ignored;
        s->socket->cancel(ignored);
      }
    }
  }
}

void ServerImpl::Adopt(int fd, std::string remote, bool tls) {
  if (shutting_down_.load()) {
    ::close(fd);
    return;
  }
  Worker* worker = workers_[next_worker_.fetch_add(1) % workers_.size()].get();
  // The socket is made on the worker's own thread: a connection is touched by one thread only.
  asio::post(worker->ioc, [this, worker, fd, remote = std::move(remote), tls]() mutable {
    Socket socket(worker->ioc);
    boost::system::error_code ec;
    socket.assign(protocol_, fd, ec);
    if (ec) {
      ::close(fd);
      return;
    }
    socket.non_blocking(true, ec);
    asio::co_spawn(worker->ioc, RunSession(worker, std::move(socket), std::move(remote), tls),
                   asio::detached);
  });
}

void ServerImpl::SessionEnded() {
  if (sessions_.fetch_sub(1) == 1 && shutting_down_.load()) {
    std::lock_guard<std::mutex> lock(mu_);
    sessions_cv_.notify_all();
  }
}

void ServerImpl::Shutdown() {
  std::unique_lock<std::mutex> lock(mu_);
  if (done_) {
    return;
  }
  done_ = true;
  shutting_down_.store(true);
  if (!running_) {
    return;
  }

  // Stop accepting, and wake the connections that wait for a request so they close.
  asio::post(workers_[0]->ioc, [this] {
    boost::system::error_code ignored;
    acceptor_->close(ignored);
  });
  for (auto& worker : workers_) {
    Worker* w = worker.get();
    asio::post(w->ioc, [w] {
      for (Session* s = w->sessions; s != nullptr; s = s->next) {
        if (s->idle || s->tunnel) {
          boost::system::error_code ignored;
          s->socket->cancel(ignored);
        } else if (s->stream != nullptr && s->stream->CloseIfBegun()) {
          s->wake->cancel();
        }
      }
    });
  }

  auto deadline = std::chrono::steady_clock::now() + options_.shutdown_grace;
  if (!sessions_cv_.wait_until(lock, deadline, [this] { return sessions_.load() == 0; })) {
    // Past the grace period: cut what is left. A handler still running keeps its thread
    // until it returns; its response then fails to write.
    log::Warn("http shutdown grace period over; closing busy connections",
              {{"connections", sessions_.load()}, {"in_flight", InFlight()}});
    for (auto& worker : workers_) {
      Worker* w = worker.get();
      asio::post(w->ioc, [w] {
        for (Session* s = w->sessions; s != nullptr; s = s->next) {
          boost::system::error_code ignored;
          s->socket->close(ignored);
          if (s->wake != nullptr) {
            s->wake->cancel();  // a connection awaiting its producer does not use the socket
          }
        }
      });
    }
    sessions_cv_.wait_for(lock, std::chrono::seconds(1), [this] { return sessions_.load() == 0; });
  }
  lock.unlock();

  for (auto& worker : workers_) {
    worker->ioc.stop();
  }
  for (auto& worker : workers_) {
    if (worker->thread.joinable()) {
      worker->thread.join();
    }
  }
  // Connections cut while delivering a deferred response are still suspended; detaching their
  // streams now, while nothing runs, means no producer posts to an io_context that is being
  // destroyed (the destructor runs the coroutines' clean-up on this thread, concurrently
  // with producers).
  for (auto& worker : workers_) {
    for (Session* s = worker->sessions; s != nullptr; s = s->next) {
      if (s->stream != nullptr) {
        s->stream->Detach();
      }
    }
  }
  // The threads are gone, so the acceptor can be touched from here; closing it again covers
  // a stop that came before the posted close ran.
  boost::system::error_code ignored;
  acceptor_->close(ignored);
}

}  // namespace internal

Result<std::unique_ptr<Server>> Server::Start(const ServerOptions& options, Handler handler,
                                              ErrorResponder on_error) {
  if (!handler) {
    return Status::InvalidArgument("NO_HANDLER", "http::Server::Start needs a handler");
  }
  auto server =
      std::make_unique<internal::ServerImpl>(options, std::move(handler), std::move(on_error));
  KILN_RETURN_IF_ERROR(server->Listen());
  server->Run();
  return std::unique_ptr<Server>(std::move(server));
}

}  // namespace kiln::http
