#pragma once
// tls: HTTPS for app hosts and custom domains (DESIGN.md §6).
//
// Https runs a second listener (gateway.tls_port) whose connections are decrypted and handed
// to the one HTTP server as plain streams (http::Server::Adopt), so routing, limits and the
// gateway are the same for both. The certificate of each connection is chosen by the name
// the client asked for (SNI):
//   - an ACME certificate when the host is a custom domain that has one (RFC 8555, HTTP-01
//     answered by the gateway on the HTTP listener; renewed before expiry);
//   - otherwise a certificate issued on the spot by Kiln's local CA for the base domain, any
//     {label}.{base_domain} (apps, {port}-{sandbox} ports) and custom domains. Its root is
//     created once in <data_dir>/tls and clients trust it explicitly (GET /v1/tls/ca);
//   - for no SNI or a name the server does not serve: the base domain's certificate (the
//     client then reports a name mismatch, as it would with nginx's default server).
//
// Files under <data_dir>/tls: ca.key (0600) and ca.crt; acme/account.key (0600) and
// acme/<domain>/{key.pem (0600), cert.pem}.
//
// Thread-safety: Https's methods may be called from any thread. Hooks are called from the
// listener's threads (is_custom_domain, on a certificate-cache miss only) and from the
// certificate thread (the others); they must not call back into Https.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace kiln::http {
class Server;
}

namespace kiln::tls {

// The certificate state of one custom domain, as the service records it.
struct DomainCertificate {
  std::string domain;
  std::string source;  // local | acme
  std::string status;  // pending | issued | failed
  std::string error;   // why the last attempt failed ("" when it did not)
  int64_t expires_ms = 0;
};

// What Https needs from the rest of Kiln (the daemon wires these to the Service).
struct Hooks {
  // Whether `host` (lower-case, no trailing dot) is a custom domain of an app.
  std::function<bool(std::string_view host)> is_custom_domain;
  // Every custom domain with its recorded certificate state.
  std::function<Result<std::vector<DomainCertificate>>()> list_domains;
  // Records a domain's certificate state (errors are logged: the domain may just be gone).
  std::function<Status(const DomainCertificate&)> record;
  // Publishes an ACME HTTP-01 answer (`key_authorization` empty: withdraws it).
  std::function<void(const std::string& token, const std::string& key_authorization)> challenge;
};

struct Options {
  std::string data_dir;          // certificates live in <data_dir>/tls
  std::string host;              // listen address (the HTTP listener's)
  uint16_t port = 8443;          // 0 = any free port (tests), see Https::port()
  std::string base_domain;       // apps answer at {name}.{base_domain}
  std::string ca_name;           // "" = "Kiln local CA <hostname>"
  std::string acme_directory;    // "" = local CA only
  std::string acme_email;        // account contact, optional
  std::string acme_ca_file;      // PEM bundle to trust for the ACME server ("" = system's)
  int acme_renew_days = 30;      // renew ACME certificates this long before they expire
  int threads = 2;               // I/O threads of the listener
  int max_connections = 10'000;  // more are closed at once
  std::chrono::milliseconds handshake_timeout{10'000};
};

class Https {
 public:
  // Opens (or creates) the local CA, loads ACME certificates from disk, binds the listener
  // and starts serving; then checks every custom domain's certificate in the background
  // (issuing, renewing) and again once a day. Errors: the CA files are unreadable or do
  // not match (TLS_CA_INVALID), the port is in use (ADDRESS_IN_USE).
  static Result<std::unique_ptr<Https>> Start(Options options, Hooks hooks, http::Server& server,
                                              const Clock& clock);
  // Stops accepting, gives open connections a moment to finish (the HTTP server has closed
  // its side by then), and stops the threads.
  ~Https();

  uint16_t port() const;
  // The local CA's root certificate (PEM).
  const std::string& root_pem() const;
  // Certificates for domains just attached to an app: a local-CA one is issued and recorded
  // before this returns; ACME orders are queued for the certificate thread.
  void Issue(const std::vector<std::string>& domains);
  // Closes the listening socket; connections already open go on.
  void StopAccepting();
  // HTTPS connections open now (for /metrics).
  int64_t Connections() const;

  struct Impl;

 private:
  explicit Https(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kiln::tls
