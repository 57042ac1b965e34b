// The listener with a real HTTP server behind it and an OpenSSL client in front.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>

#include "http/http.h"
#include "tls/internal.h"

namespace kiln::tls {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

int Connect(uint16_t port) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  timeval tv{5, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

// A blocking TLS client that trusts `root_pem` and checks the name it asks for.
class Client {
 public:
  Client(uint16_t port, const std::string& root_pem, const std::string& sni, bool verify = true) {
    ctx_ = SSL_CTX_new(TLS_client_method());
    X509_STORE* store = SSL_CTX_get_cert_store(ctx_);
    auto roots = ParseCertsPem(root_pem);
    for (auto& c : *roots) {
      X509_STORE_add_cert(store, c.get());
    }
    SSL_CTX_set_verify(ctx_, verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, nullptr);
    fd_ = Connect(port);
    ssl_ = SSL_new(ctx_);
    SSL_set_fd(ssl_, fd_);
    if (!sni.empty()) {
      SSL_set_tlsext_host_name(ssl_, sni.c_str());
      SSL_set1_host(ssl_, sni.c_str());
    }
    static const unsigned char kAlpn[] = {2, 'h', '2', 8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    SSL_set_alpn_protos(ssl_, kAlpn, sizeof kAlpn);
    connected_ = SSL_connect(ssl_) == 1;
    if (!connected_) {
      error_ = OpenSslError("connect").message();
    }
  }
  ~Client() {
    SSL_free(ssl_);
    SSL_CTX_free(ctx_);
    ::close(fd_);
  }

  bool connected() const { return connected_; }
  const std::string& error() const { return error_; }
  std::vector<std::string> PeerNames() {
    std::vector<std::string> out;
    X509* peer = SSL_get1_peer_certificate(ssl_);
    auto* names =
        static_cast<GENERAL_NAMES*>(X509_get_ext_d2i(peer, NID_subject_alt_name, nullptr, nullptr));
    for (int i = 0; names != nullptr && i < sk_GENERAL_NAME_num(names); ++i) {
      GENERAL_NAME* n = sk_GENERAL_NAME_value(names, i);
      out.emplace_back(reinterpret_cast<const char*>(ASN1_STRING_get0_data(n->d.dNSName)));
    }
    GENERAL_NAMES_free(names);
    X509_free(peer);
    return out;
  }
  std::string Alpn() {
    const unsigned char* p = nullptr;
    unsigned len = 0;
    SSL_get0_alpn_selected(ssl_, &p, &len);
    return std::string(reinterpret_cast<const char*>(p), len);
  }
  bool Write(std::string_view data) {
    return SSL_write(ssl_, data.data(), static_cast<int>(data.size())) ==
           static_cast<int>(data.size());
  }
  // Reads until the server closes (close_notify) or `limit` bytes arrived.
  std::string ReadAll(size_t limit = 1 << 30, bool* clean = nullptr) {
    std::string out;
    char buf[16384];
    while (out.size() < limit) {
      int n = SSL_read(ssl_, buf, sizeof buf);
      if (n <= 0) {
        if (clean != nullptr) {
          *clean = SSL_get_error(ssl_, n) == SSL_ERROR_ZERO_RETURN;
        }
        break;
      }
      out.append(buf, static_cast<size_t>(n));
    }
    ERR_clear_error();
    return out;
  }
  void CloseNotify() { SSL_shutdown(ssl_); }

 private:
  SSL_CTX* ctx_ = nullptr;
  SSL* ssl_ = nullptr;
  int fd_ = -1;
  bool connected_ = false;
  std::string error_;
};

class ListenerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (fs::temp_directory_path() / "kiln_listener_test.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    dir_ = tmpl;
    auto ca = LocalCa::OpenOrCreate((dir_ / "tls").string(), "", clock_.NowMs());
    ASSERT_TRUE(ca.ok());
    ca_ = std::move(*ca);
    certs_ = std::make_unique<Certificates>(
        *ca_, "localhost", [](std::string_view host) { return host == "shop.example.com"; },
        clock_);
    http::ServerOptions so;
    so.threads = 1;
    so.shutdown_grace = 1s;
    auto server = http::Server::Start(
        so,
        [](const http::Request& req, http::Response& res) {
          if (req.path == "/big") {
            res.body.assign(5 << 20, 'x');  // several TLS records and socket buffers
            return;
          }
          res.body = std::string(req.tls ? "tls" : "plain") + " " +
                     std::string(req.Header("host")) + " " + req.remote + " " +
                     std::to_string(req.body.size());
        },
        [](const Status& s, http::Response& res) {
          res.status = 400;
          res.body = s.message();
        });
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(*server);
  }
  void TearDown() override {
    if (server_) {
      server_->Shutdown();
    }
    listener_.reset();
    server_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  void StartListener(ListenerOptions lo = {}) {
    lo.host = "127.0.0.1";
    Certificates* certs = certs_.get();
    auto listener = Listener::Start(
        lo, [certs](std::string_view sni) { return certs->ForHost(sni); }, *server_);
    ASSERT_TRUE(listener.ok()) << listener.status().ToString();
    listener_ = std::move(*listener);
  }

  fs::path dir_;
  // The clients check validity against the real time.
  FakeClock clock_{SystemClock::Instance().NowMs()};
  std::unique_ptr<LocalCa> ca_;
  std::unique_ptr<Certificates> certs_;
  std::unique_ptr<http::Server> server_;
  std::unique_ptr<Listener> listener_;
};

TEST_F(ListenerTest, ServesRequestsOverTlsWithTheCertificateForTheSni) {
  StartListener();
  Client c(listener_->port(), ca_->root_pem(), "hello.localhost");
  ASSERT_TRUE(c.connected()) << c.error();
  EXPECT_EQ(c.PeerNames(), std::vector<std::string>{"hello.localhost"});
  EXPECT_EQ(c.Alpn(), "http/1.1");
  ASSERT_TRUE(c.Write("POST /x HTTP/1.1\r\nHost: hello.localhost\r\nContent-Length: 3\r\n\r\nabc"));
  ASSERT_TRUE(c.Write("GET / HTTP/1.1\r\nHost: hello.localhost\r\nConnection: close\r\n\r\n"));
  bool clean = false;
  std::string out = c.ReadAll(1 << 20, &clean);
  // Both answers, marked as TLS, with the client's real address; then close_notify.
  EXPECT_NE(out.find("tls hello.localhost 127.0.0.1:"), std::string::npos) << out;
  EXPECT_NE(out.find(" 3"), std::string::npos) << out;
  EXPECT_EQ(out.find("HTTP/1.1 200"), 0u) << out;
  EXPECT_NE(out.find("HTTP/1.1 200", 10), std::string::npos) << out;
  EXPECT_TRUE(clean) << "the server closes with close_notify";

  Client shop(listener_->port(), ca_->root_pem(), "shop.example.com");
  ASSERT_TRUE(shop.connected()) << shop.error();
  EXPECT_EQ(shop.PeerNames(), std::vector<std::string>{"shop.example.com"});
  Client unknown(listener_->port(), ca_->root_pem(), "elsewhere.example.org", false);
  ASSERT_TRUE(unknown.connected()) << unknown.error();
  EXPECT_EQ(unknown.PeerNames(), std::vector<std::string>{"localhost"});
}

TEST_F(ListenerTest, VerificationFailsWithoutTheRootOrForAnotherName) {
  StartListener();
  {
    Client good(listener_->port(), ca_->root_pem(), "hello.localhost");
    EXPECT_TRUE(good.connected()) << good.error();
  }
  {
    std::string tmpl = (dir_ / "other.XXXXXX").string();
    ASSERT_NE(::mkdtemp(tmpl.data()), nullptr);
    auto other = LocalCa::OpenOrCreate(tmpl, "", clock_.NowMs());
    ASSERT_TRUE(other.ok());
    Client untrusted(listener_->port(), (*other)->root_pem(), "hello.localhost");
    EXPECT_FALSE(untrusted.connected());
    EXPECT_NE(untrusted.error().find("certificate verify failed"), std::string::npos)
        << untrusted.error();
  }
  {
    // An unknown name gets the base domain's certificate: a name mismatch for the client.
    Client mismatch(listener_->port(), ca_->root_pem(), "elsewhere.example.org");
    EXPECT_FALSE(mismatch.connected());
  }
}

TEST_F(ListenerTest, LargeResponsesArriveWhole) {
  StartListener();
  Client c(listener_->port(), ca_->root_pem(), "hello.localhost");
  ASSERT_TRUE(c.connected()) << c.error();
  ASSERT_TRUE(c.Write("GET /big HTTP/1.1\r\nHost: hello.localhost\r\nConnection: close\r\n\r\n"));
  std::string out = c.ReadAll();
  size_t head = out.find("\r\n\r\n");
  ASSERT_NE(head, std::string::npos);
  EXPECT_EQ(out.size() - head - 4, size_t{5} << 20);
}

TEST_F(ListenerTest, SilentClientsAreClosedAfterTheHandshakeTimeout) {
  ListenerOptions lo;
  lo.handshake_timeout = 200ms;
  StartListener(lo);
  int fd = Connect(listener_->port());
  auto start = std::chrono::steady_clock::now();
  pollfd p{fd, POLLIN, 0};
  ASSERT_EQ(::poll(&p, 1, 5000), 1);
  char buf[16];
  EXPECT_LE(::recv(fd, buf, sizeof buf, 0), 0);  // closed, nothing sent
  auto took = std::chrono::steady_clock::now() - start;
  EXPECT_GE(took, 150ms);
  EXPECT_LT(took, 3s);
  ::close(fd);
  // Plain HTTP on the TLS port fails the handshake and is closed.
  int plain = Connect(listener_->port());
  std::string req = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(plain, req.data(), req.size(), MSG_NOSIGNAL), static_cast<ssize_t>(req.size()));
  pollfd q{plain, POLLIN, 0};
  ASSERT_EQ(::poll(&q, 1, 5000), 1);
  ::close(plain);
}

TEST_F(ListenerTest, ConnectionsBeyondTheLimitAreClosed) {
  ListenerOptions lo;
  lo.max_connections = 1;
  StartListener(lo);
  Client first(listener_->port(), ca_->root_pem(), "hello.localhost");
  ASSERT_TRUE(first.connected()) << first.error();
  Client second(listener_->port(), ca_->root_pem(), "hello.localhost");
  EXPECT_FALSE(second.connected());
  EXPECT_EQ(listener_->Connections(), 1);
}

TEST_F(ListenerTest, StopAcceptingRefusesNewConnectionsAndKeepsOpenOnes) {
  StartListener();
  Client open(listener_->port(), ca_->root_pem(), "hello.localhost");
  ASSERT_TRUE(open.connected()) << open.error();
  uint16_t port = listener_->port();
  listener_->StopAccepting();
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_NE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::close(fd);
  ASSERT_TRUE(open.Write("GET / HTTP/1.1\r\nHost: a.localhost\r\nConnection: close\r\n\r\n"));
  EXPECT_NE(open.ReadAll().find("tls a.localhost"), std::string::npos);
}

}  // namespace
}  // namespace kiln::tls
