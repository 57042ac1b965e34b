// The HTTPS listener: TLS handshakes with a certificate chosen by SNI, then a byte pump
// between the client's TLS stream and a socketpair whose other end the HTTP server serves
// (http::Server::Adopt), so an HTTPS request is handled exactly like a plain one.
//
// Threads and ownership: each I/O thread runs its own io_context; a connection lives on one
// of them for its whole life, so its SSL object, sockets and buffers are touched by that
// thread only. Asio is used as a reactor only (async_wait for readiness): OpenSSL reads and
// writes the non-blocking client socket itself, which keeps full duplex simple (one SSL
// object, two directions, no engine queues) and lets close_notify be sent at the right time.
//
// Limits: handshake_timeout for the handshake; write_stall_timeout for output the client
// does not take; max_connections at once. Everything else (request timeouts, idle
// keep-alive, body limits) is the HTTP server's, which closes its end of the pair and so
// ends the connection here.
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <condition_variable>
#include <future>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include "core/log.h"
#include "http/http.h"
#include "tls/internal.h"

namespace kiln::tls {
namespace {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using unix_stream = asio::local::stream_protocol;
using Clock = std::chrono::steady_clock;

// Time given to a client to answer our close_notify before the socket is closed anyway.
constexpr std::chrono::seconds kLingerTime{2};
constexpr size_t kBufferSize = 16 * 1024;  // one TLS record

class ListenerImpl;

// One client connection. Owned by the shared_ptrs its pending waits hold.
class Conn : public std::enable_shared_from_this<Conn> {
 public:
  Conn(ListenerImpl* owner, asio::io_context& ioc, tcp::socket socket, std::string remote);
  ~Conn();
  void Start();

 private:
  enum class Phase { kHandshake, kPump, kClosing, kDone };
  enum Dir { kRead, kWrite };

  void Step();
  void Handshake();
  void Pump();
  void Linger();
  void Close();
  void WaitClient(Dir dir);
  void WaitPlain(Dir dir);
  void ArmTimer(Clock::time_point when);
  void OnTimer();

  ListenerImpl* owner_;
  asio::io_context& ioc_;
  tcp::socket client_;
  unix_stream::socket plain_;  // our end of the socketpair
  asio::steady_timer timer_;
  std::string remote_;
  SSL* ssl_ = nullptr;
  Phase phase_ = Phase::kHandshake;

  // Decrypted bytes from the client on their way to the HTTP server, and the server's
  // bytes on their way to the client.
  std::unique_ptr<char[]> up_, down_;
  size_t up_off_ = 0, up_len_ = 0, down_off_ = 0, down_len_ = 0;
  bool client_eof_ = false;  // close_notify (or a plain FIN) from the client
  bool plain_eof_ = false;   // the HTTP server closed its end
  bool plain_shut_ = false;  // we passed the client's EOF on
  bool close_notify_sent_ = false;

  bool waiting_[2][2] = {};  // [client, plain][read, write]
  bool timer_armed_ = false;
  Clock::time_point last_output_ = Clock::now();
};

class ListenerImpl final : public Listener {
 public:
  ListenerImpl(const ListenerOptions& options,
               std::function<std::shared_ptr<const ServedCert>(std::string_view)> select,
               http::Server& server)
      : options_(options), select_(std::move(select)), server_(server) {}
  ~ListenerImpl() override;

  Status Init();
  uint16_t port() const override { return port_; }
  void StopAccepting() override;
  int64_t Connections() const override { return active_.load(); }

  SSL_CTX* ctx() const { return ctx_.get(); }
  const ListenerOptions& options() const { return options_; }
  http::Server& server() { return server_; }
  void Ended() {
    if (active_.fetch_sub(1) == 1) {
      std::lock_guard lock(mu_);
      idle_.notify_all();
    }
  }

 private:
  struct Worker {
    asio::io_context ioc{1};
    asio::executor_work_guard<asio::io_context::executor_type> guard{ioc.get_executor()};
    std::thread thread;
  };

  Status MakeContext();
  void Accept();
  static int CertCallback(SSL* ssl, void* arg);

  const ListenerOptions options_;
  const std::function<std::shared_ptr<const ServedCert>(std::string_view)> select_;
  http::Server& server_;
  SslCtxPtr ctx_;
  // Declared before the workers: connections destroyed with their io_context count down.
  std::atomic<int64_t> active_{0};
  std::mutex mu_;
  std::condition_variable idle_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::unique_ptr<tcp::acceptor> acceptor_;  // used on workers_[0]'s thread only
  std::atomic<bool> accepting_{true};
  size_t next_ = 0;  // acceptor thread only
  uint16_t port_ = 0;
};

// ---- Conn ----

Conn::Conn(ListenerImpl* owner, asio::io_context& ioc, tcp::socket socket, std::string remote)
    : owner_(owner),
      ioc_(ioc),
      client_(std::move(socket)),
      plain_(ioc),
      timer_(ioc),
      remote_(std::move(remote)) {}

Conn::~Conn() {
  if (ssl_ != nullptr) {
    SSL_free(ssl_);
  }
  owner_->Ended();
}

void Conn::Start() {
  boost::system::error_code ec;
  client_.non_blocking(true, ec);
  client_.set_option(tcp::no_delay(true), ec);
  ssl_ = SSL_new(owner_->ctx());
  if (ssl_ == nullptr || SSL_set_fd(ssl_, client_.native_handle()) != 1) {
    log::Error("cannot start a TLS connection", {{"error", OpenSslError("SSL_new").ToString()}});
    Close();
    return;
  }
  SSL_set_accept_state(ssl_);
  ArmTimer(Clock::now() + owner_->options().handshake_timeout);
  Step();
}

void Conn::Step() {
  if (phase_ == Phase::kHandshake) {
    Handshake();
  }
  if (phase_ == Phase::kPump) {
    Pump();
  }
  if (phase_ == Phase::kClosing) {
    Linger();
  }
}

void Conn::Handshake() {
  ERR_clear_error();
  int r = SSL_do_handshake(ssl_);
  if (r != 1) {
    int err = SSL_get_error(ssl_, r);
    if (err == SSL_ERROR_WANT_READ) {
      WaitClient(kRead);
    } else if (err == SSL_ERROR_WANT_WRITE) {
      WaitClient(kWrite);
    } else {
      // Scanners, clients that do not trust the certificate, plain HTTP sent to the TLS port:
      // common enough that a line each would flood the log.
      log::Debug("TLS handshake failed",
                 {{"remote", remote_}, {"error", OpenSslError("handshake").message()}});
      ERR_clear_error();
      Close();
    }
    return;
  }
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, fds) != 0) {
    log::Error("cannot hand a TLS connection over",
               {{"error", Status::FromErrno("socketpair", errno).ToString()}});
    Close();
    return;
  }
  boost::system::error_code ec;
  plain_.assign(unix_stream(), fds[0], ec);
  if (ec) {
    ::close(fds[0]);
    ::close(fds[1]);
    Close();
    return;
  }
  owner_->server().Adopt(fds[1], remote_, true);
  up_ = std::make_unique<char[]>(kBufferSize);
  down_ = std::make_unique<char[]>(kBufferSize);
  phase_ = Phase::kPump;
  timer_.cancel();
  timer_armed_ = false;
}

void Conn::Pump() {
  const int plain_fd = plain_.native_handle();
  bool progress = true;
  bool want[2][2] = {};  // [client, plain][read, write]
  while (progress) {
    progress = false;
    want[0][0] = want[0][1] = want[1][0] = want[1][1] = false;
    // Client → server.
    if (!client_eof_ && up_len_ == 0) {
      ERR_clear_error();
      int n = SSL_read(ssl_, up_.get(), static_cast<int>(kBufferSize));
      if (n > 0) {
        up_off_ = 0;
        up_len_ = static_cast<size_t>(n);
        progress = true;
      } else {
        int err = SSL_get_error(ssl_, n);
        if (err == SSL_ERROR_WANT_READ) {
          want[0][kRead] = true;
        } else if (err == SSL_ERROR_WANT_WRITE) {
          want[0][kWrite] = true;
        } else if (err == SSL_ERROR_ZERO_RETURN) {
          client_eof_ = true;  // close_notify, or a FIN (SSL_OP_IGNORE_UNEXPECTED_EOF)
          progress = true;
        } else {
          ERR_clear_error();
          Close();  // a broken TLS stream cannot carry the answer either
          return;
        }
      }
    }
    if (up_len_ > 0) {
      ssize_t w = ::send(plain_fd, up_.get() + up_off_, up_len_, MSG_NOSIGNAL);
      if (w > 0) {
        up_off_ += static_cast<size_t>(w);
        up_len_ -= static_cast<size_t>(w);
        progress = true;
      } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
        want[1][kWrite] = true;
      } else {
        Close();  // the server is gone
        return;
      }
    }
    if (client_eof_ && up_len_ == 0 && !plain_shut_) {
      // The server sees the end of the requests and may still finish its answer.
      ::shutdown(plain_fd, SHUT_WR);
      plain_shut_ = true;
    }
    // Server → client.
    if (!plain_eof_ && down_len_ == 0) {
      ssize_t r = ::recv(plain_fd, down_.get(), kBufferSize, 0);
      if (r > 0) {
        down_off_ = 0;
        down_len_ = static_cast<size_t>(r);
        progress = true;
      } else if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
        want[1][kRead] = true;
      } else {
        plain_eof_ = true;
        progress = true;
      }
    }
    if (down_len_ > 0) {
      ERR_clear_error();
      int n = SSL_write(ssl_, down_.get() + down_off_, static_cast<int>(down_len_));
      if (n > 0) {
        down_off_ += static_cast<size_t>(n);
        down_len_ -= static_cast<size_t>(n);
        last_output_ = Clock::now();
        progress = true;
      } else {
        int err = SSL_get_error(ssl_, n);
        if (err == SSL_ERROR_WANT_WRITE) {
          want[0][kWrite] = true;
        } else if (err == SSL_ERROR_WANT_READ) {
          want[0][kRead] = true;
        } else {
          ERR_clear_error();
          Close();  // the client is gone: closing our end tells the server
          return;
        }
      }
    }
    if (plain_eof_ && down_len_ == 0) {
      phase_ = Phase::kClosing;
      return;
    }
  }
  if (want[0][kRead]) {
    WaitClient(kRead);
  }
  if (want[0][kWrite]) {
    WaitClient(kWrite);
    if (!timer_armed_) {
      ArmTimer(Clock::now() + owner_->options().write_stall_timeout);
    }
  }
  if (want[1][kRead]) {
    WaitPlain(kRead);
  }
  if (want[1][kWrite]) {
    WaitPlain(kWrite);
  }
}

// The server is done: close_notify, then wait briefly for the client to close, so that
// closing with unread input does not reset the connection under the answer just sent.
void Conn::Linger() {
  if (!close_notify_sent_) {
    ERR_clear_error();
    int r = SSL_shutdown(ssl_);
    if (r < 0) {
      int err = SSL_get_error(ssl_, r);
      if (err == SSL_ERROR_WANT_WRITE) {
        WaitClient(kWrite);
        return;
      }
      ERR_clear_error();
      Close();
      return;
    }
    close_notify_sent_ = true;
    boost::system::error_code ec;
    client_.shutdown(tcp::socket::shutdown_send, ec);
    plain_.close(ec);
    timer_.cancel();
    ArmTimer(Clock::now() + kLingerTime);
  }
  char scratch[4096];
  for (;;) {
    ssize_t r = ::recv(client_.native_handle(), scratch, sizeof scratch, 0);
    if (r > 0) {
      continue;
    }
    if (r < 0 && (errno == EAGAIN || errno == EINTR)) {
      WaitClient(kRead);
      return;
    }
    Close();
    return;
  }
}

void Conn::Close() {
  if (phase_ == Phase::kDone) {
    return;
  }
  phase_ = Phase::kDone;
  boost::system::error_code ec;
  timer_.cancel();
  client_.close(ec);
  plain_.close(ec);
}

void Conn::WaitClient(Dir dir) {
  if (waiting_[0][dir] || phase_ == Phase::kDone) {
    return;
  }
  waiting_[0][dir] = true;
  client_.async_wait(dir == kRead ? tcp::socket::wait_read : tcp::socket::wait_write,
                     [self = shared_from_this(), dir](const boost::system::error_code& ec) {
                       self->waiting_[0][dir] = false;
                       if (ec || self->phase_ == Phase::kDone) {
                         return;
                       }
                       self->Step();
                     });
}

void Conn::WaitPlain(Dir dir) {
  if (waiting_[1][dir] || phase_ == Phase::kDone) {
    return;
  }
  waiting_[1][dir] = true;
  plain_.async_wait(dir == kRead ? unix_stream::socket::wait_read : unix_stream::socket::wait_write,
                    [self = shared_from_this(), dir](const boost::system::error_code& ec) {
                      self->waiting_[1][dir] = false;
                      if (ec || self->phase_ == Phase::kDone) {
                        return;
                      }
                      self->Step();
                    });
}

void Conn::ArmTimer(Clock::time_point when) {
  timer_armed_ = true;
  timer_.expires_at(when);
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec) {
      return;  // cancelled: a later ArmTimer owns the flag now
    }
    self->timer_armed_ = false;
    self->OnTimer();
  });
}

void Conn::OnTimer() {
  switch (phase_) {
    case Phase::kHandshake:
      log::Debug("TLS handshake timed out", {{"remote", remote_}});
      Close();
      return;
    case Phase::kPump:
      if (down_len_ == 0) {
        return;  // the output went out; the next stall arms the timer again
      }
      if (Clock::now() - last_output_ >= owner_->options().write_stall_timeout) {
        Close();
      } else {
        ArmTimer(last_output_ + owner_->options().write_stall_timeout);
      }
      return;
    case Phase::kClosing:
    case Phase::kDone:
      Close();
      return;
  }
}

// ---- ListenerImpl ----

int ListenerImpl::CertCallback(SSL* ssl, void* arg) {
  auto* self = static_cast<ListenerImpl*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  std::shared_ptr<const ServedCert> cert = self->select_(name == nullptr ? "" : name);
  if (!cert) {
    return 0;  // the handshake fails with an internal_error alert
  }
  return SSL_use_cert_and_key(ssl, cert->leaf.get(), cert->key.get(), cert->chain, 1) == 1 ? 1 : 0;
}

// The HTTP server speaks HTTP/1.1 only: say so, so that clients offering h2 do not guess.
int SelectAlpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in,
               unsigned int inlen, void*) {
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char* selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kHttp11, sizeof kHttp11, in, inlen) ==
      OPENSSL_NPN_NEGOTIATED) {
    *out = selected;
    return SSL_TLSEXT_ERR_OK;
  }
  return SSL_TLSEXT_ERR_NOACK;
}

Status ListenerImpl::MakeContext() {
  ctx_.reset(SSL_CTX_new(TLS_server_method()));
  if (!ctx_) {
    return OpenSslError("SSL_CTX_new");
  }
  SSL_CTX* ctx = ctx_.get();
  SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                               SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_NO_COMPRESSION);
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER |
                            SSL_MODE_RELEASE_BUFFERS);
  // TLS 1.2: forward-secret AEAD suites only (the certificates are ECDSA). TLS 1.3's
  // defaults are all fine.
  if (SSL_CTX_set_cipher_list(ctx, "ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL") != 1) {
    return OpenSslError("SSL_CTX_set_cipher_list");
  }
  static const unsigned char kContext[] = "kiln";
  SSL_CTX_set_session_id_context(ctx, kContext, sizeof kContext - 1);
  SSL_CTX_set_cert_cb(ctx, &ListenerImpl::CertCallback, this);
  SSL_CTX_set_alpn_select_cb(ctx, &SelectAlpn, nullptr);
  return Status::Ok();
}

Status ListenerImpl::Init() {
  KILN_RETURN_IF_ERROR(MakeContext());
  boost::system::error_code ec;
  auto address = asio::ip::make_address(options_.host, ec);
  if (ec) {
    return Status::InvalidArgument("LISTEN_INVALID", "bad listen address " + options_.host);
  }
  for (int i = 0; i < std::max(1, options_.threads); ++i) {
    workers_.push_back(std::make_unique<Worker>());
  }
  acceptor_ = std::make_unique<tcp::acceptor>(workers_[0]->ioc);
  tcp::endpoint endpoint(address, options_.port);
  acceptor_->open(endpoint.protocol(), ec);
  if (!ec) {
    acceptor_->set_option(tcp::acceptor::reuse_address(true), ec);
    acceptor_->bind(endpoint, ec);
  }
  if (!ec) {
    acceptor_->listen(asio::socket_base::max_listen_connections, ec);
  }
  if (ec) {
    std::string where = options_.host + ":" + std::to_string(options_.port);
    if (ec == asio::error::address_in_use) {
      return Status::Unavailable("ADDRESS_IN_USE", "the HTTPS port " + where + " is in use",
                                 "stop what listens there, or set gateway.tls_port to a free "
                                 "port (0 turns HTTPS off)");
    }
    return Status::Unavailable("LISTEN_FAILED", "cannot listen on " + where + ": " + ec.message());
  }
  port_ = acceptor_->local_endpoint().port();
  for (auto& w : workers_) {
    w->thread = std::thread([w = w.get()] { w->ioc.run(); });
  }
  asio::post(workers_[0]->ioc, [this] { Accept(); });
  return Status::Ok();
}

void ListenerImpl::Accept() {
  if (!accepting_.load()) {
    return;
  }
  Worker& target = *workers_[next_++ % workers_.size()];
  acceptor_->async_accept(target.ioc, [this, &target](const boost::system::error_code& ec,
                                                      tcp::socket socket) {
    if (ec == asio::error::operation_aborted || !accepting_.load()) {
      return;
    }
    if (!ec) {
      if (active_.load() >= options_.max_connections) {
        log::Warn("too many HTTPS connections: closing a new one",
                  {{"limit", options_.max_connections}});
      } else {
        boost::system::error_code rec;
        auto peer = socket.remote_endpoint(rec);
        std::string remote;
        if (!rec) {
          std::string ip = peer.address().to_string();
          remote =
              (peer.address().is_v6() ? "[" + ip + "]" : ip) + ":" + std::to_string(peer.port());
        }
        active_.fetch_add(1);
        auto conn = std::make_shared<Conn>(this, target.ioc, std::move(socket), std::move(remote));
        asio::post(target.ioc, [conn] { conn->Start(); });
      }
    } else if (ec == asio::error::no_descriptors) {
      log::Warn("out of file descriptors: not accepting HTTPS for a moment");
    }
    Accept();
  });
}

void ListenerImpl::StopAccepting() {
  if (!accepting_.exchange(false) || workers_.empty()) {
    return;
  }
  std::promise<void> done;
  asio::post(workers_[0]->ioc, [this, &done] {
    boost::system::error_code ec;
    acceptor_->close(ec);
    done.set_value();
  });
  done.get_future().wait();
}

ListenerImpl::~ListenerImpl() {
  if (!workers_.empty() && workers_[0]->thread.joinable()) {
    StopAccepting();
    // By now the HTTP server has shut down and closed its ends: the pumps finish at once.
    std::unique_lock lock(mu_);
    idle_.wait_for(lock, std::chrono::seconds(3), [this] { return active_.load() == 0; });
  }
  for (auto& w : workers_) {
    w->guard.reset();
    w->ioc.stop();
  }
  for (auto& w : workers_) {
    if (w->thread.joinable()) {
      w->thread.join();
    }
  }
  acceptor_.reset();
  workers_.clear();  // connections still open are destroyed with their io_context
}

}  // namespace

Result<std::unique_ptr<Listener>> Listener::Start(
    const ListenerOptions& options,
    std::function<std::shared_ptr<const ServedCert>(std::string_view)> select,
    http::Server& server) {
  // OpenSSL writes to the client's socket with write(2), not send(MSG_NOSIGNAL): a client
  // that hung up must not kill the process. (The daemon ignores SIGPIPE already.)
  ::signal(SIGPIPE, SIG_IGN);
  auto listener = std::make_unique<ListenerImpl>(options, std::move(select), server);
  KILN_RETURN_IF_ERROR(listener->Init());
  return std::unique_ptr<Listener>(std::move(listener));
}

}  // namespace kiln::tls
