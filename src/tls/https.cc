// Https: the local CA, the certificates, the listener and ACME put together, and the
// certificate thread that issues and renews custom domains' certificates.
//
// The certificate thread owns the ACME client. It checks every custom domain at start and
// then daily; domains waiting for an ACME order sit in `due_` with the time they may be tried
// (now for new ones, later after failures: 1 min doubling up to a day).
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "core/crypto.h"
#include "core/log.h"
#include "tls/internal.h"

namespace kiln::tls {
namespace {

namespace fs = std::filesystem;

constexpr int64_t kDayMs = 86'400'000;
constexpr int64_t kFirstRetryMs = 60'000;

std::string ReadAll(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

struct Https::Impl {
  Impl(Options options, Hooks hooks, const Clock& clock)
      : o(std::move(options)), hooks(std::move(hooks)), clock(clock) {}

  std::string AcmeDir() const { return o.data_dir + "/tls/acme"; }
  void LoadAcmeCertificates();
  void Record(const std::string& domain, const std::string& source, const std::string& status,
              int64_t expires_ms, const std::string& error);
  void IssueLocal(const std::string& domain);
  void CheckAll();
  void Order(const std::string& domain);
  void Loop();
  bool Wait(std::chrono::milliseconds ms);

  const Options o;
  const Hooks hooks;
  const Clock& clock;
  std::unique_ptr<LocalCa> ca;
  std::unique_ptr<Certificates> certs;
  std::unique_ptr<Listener> listener;
  std::unique_ptr<AcmeClient> acme;  // null without gateway.acme_directory; thread only

  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;                    // guarded by mu
  bool check = true;                    // guarded by mu; CheckAll is due
  std::map<std::string, int64_t> due;   // guarded by mu; domain → earliest try
  std::map<std::string, int> failures;  // certificate thread only
  std::thread thread;
};

void Https::Impl::LoadAcmeCertificates() {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(AcmeDir(), ec)) {
    if (!entry.is_directory(ec)) {
      continue;
    }
    std::string domain = entry.path().filename().string();
    auto cert =
        MakeServedCert(ReadAll(entry.path() / "cert.pem"), ReadAll(entry.path() / "key.pem"));
    if (!cert.ok()) {
      log::Warn("ignoring an unreadable ACME certificate",
                {{"domain", domain}, {"error", cert.status().ToString()}});
      continue;
    }
    certs->SetAcme(domain, *cert);
  }
}

void Https::Impl::Record(const std::string& domain, const std::string& source,
                         const std::string& status, int64_t expires_ms, const std::string& error) {
  DomainCertificate c{domain, source, status, error, expires_ms};
  if (Status s = hooks.record(c); !s.ok() && !s.Is(Code::kNotFound)) {
    log::Warn("cannot record a certificate", {{"domain", domain}, {"error", s.ToString()}});
  }
}

void Https::Impl::IssueLocal(const std::string& domain) {
  auto cert = certs->Local(domain);
  if (cert.ok()) {
    Record(domain, "local", "issued", (*cert)->not_after_ms, "");
  } else {
    Record(domain, "local", "failed", 0, cert.status().message());
  }
}

void Https::Impl::CheckAll() {
  auto domains = hooks.list_domains();
  if (!domains.ok()) {
    log::Warn("cannot list custom domains for their certificates",
              {{"error", domains.status().ToString()}});
    return;
  }
  const int64_t now = clock.NowMs();
  for (const DomainCertificate& d : *domains) {
    if (!acme) {
      // Local leaves are issued on demand; this keeps the recorded state true.
      const int64_t renew = int64_t{LocalCa::kLeafDays} * kDayMs / 3;
      if (d.source != "local" || d.status != "issued" || d.expires_ms - now <= renew) {
        IssueLocal(d.domain);
      }
      continue;
    }
    auto cert = certs->Acme(d.domain);
    if (cert && cert->not_after_ms - now > int64_t{o.acme_renew_days} * kDayMs) {
      if (d.source != "acme" || d.status != "issued" || d.expires_ms != cert->not_after_ms) {
        Record(d.domain, "acme", "issued", cert->not_after_ms, "");
      }
      continue;
    }
    std::lock_guard lock(mu);
    due.emplace(d.domain, now);  // keeps an earlier entry's backoff
  }
}

void Https::Impl::Order(const std::string& domain) {
  if (!hooks.is_custom_domain(domain)) {
    failures.erase(domain);
    return;  // removed from its app meanwhile
  }
  log::Info("ordering a certificate", {{"domain", domain}, {"acme", o.acme_directory}});
  auto issued = acme->Obtain(domain);
  Status saved = issued.status();
  if (issued.ok()) {
    auto served = MakeServedCert(issued->chain_pem, issued->key_pem);
    fs::path dir = fs::path(AcmeDir()) / domain;
    std::error_code ec;
    fs::create_directories(dir, ec);
    saved = served.status();
    if (saved.ok()) {
      saved = crypto::WriteFileAtomic(dir / "key.pem", issued->key_pem, 0600);
    }
    if (saved.ok()) {
      saved = crypto::WriteFileAtomic(dir / "cert.pem", issued->chain_pem, 0644);
    }
    if (saved.ok()) {
      certs->SetAcme(domain, *served);
      failures.erase(domain);
      Record(domain, "acme", "issued", issued->not_after_ms, "");
      log::Info("certificate issued",
                {{"domain", domain}, {"expires", FormatTime(issued->not_after_ms)}});
      return;
    }
  }
  if (saved.Is(Code::kUnavailable) && saved.error_code() == "SHUTTING_DOWN") {
    return;
  }
  int n = ++failures[domain];
  int64_t delay = std::min(kFirstRetryMs << std::min(n - 1, 20), kDayMs);
  auto current = certs->Acme(domain);  // an older certificate is still served
  Record(domain, "acme", "failed", current ? current->not_after_ms : 0, saved.message());
  log::Warn("certificate order failed",
            {{"domain", domain}, {"error", saved.ToString()}, {"retry_in_seconds", delay / 1000}});
  std::lock_guard lock(mu);
  due[domain] = clock.NowMs() + delay;
}

bool Https::Impl::Wait(std::chrono::milliseconds ms) {
  std::unique_lock lock(mu);
  cv.wait_for(lock, ms, [this] { return stop; });
  return !stop;
}

void Https::Impl::Loop() {
  auto next_check = std::chrono::steady_clock::now();
  std::unique_lock lock(mu);
  while (!stop) {
    if (check || std::chrono::steady_clock::now() >= next_check) {
      check = false;
      next_check = std::chrono::steady_clock::now() + std::chrono::hours(24);
      lock.unlock();
      CheckAll();
      lock.lock();
      continue;
    }
    // The domain due first, if it is due.
    auto first = std::min_element(due.begin(), due.end(),
                                  [](const auto& a, const auto& b) { return a.second < b.second; });
    int64_t now = clock.NowMs();
    if (first != due.end() && first->second <= now && acme) {
      std::string domain = first->first;
      due.erase(first);
      lock.unlock();
      Order(domain);
      lock.lock();
      continue;
    }
    auto until = next_check;
    if (first != due.end() && acme) {
      until = std::min(
          until, std::chrono::steady_clock::now() + std::chrono::milliseconds(first->second - now));
    }
    cv.wait_until(lock, until);
  }
}

Https::Https(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<Https>> Https::Start(Options options, Hooks hooks, http::Server& server,
                                            const Clock& clock) {
  auto impl = std::make_unique<Impl>(std::move(options), std::move(hooks), clock);
  Impl& m = *impl;
  KILN_ASSIGN_OR_RETURN(m.ca,
                        LocalCa::OpenOrCreate(m.o.data_dir + "/tls", m.o.ca_name, clock.NowMs()));
  m.certs = std::make_unique<Certificates>(*m.ca, m.o.base_domain, m.hooks.is_custom_domain, clock);
  m.LoadAcmeCertificates();
  ListenerOptions lo;
  lo.host = m.o.host;
  lo.port = m.o.port;
  lo.threads = m.o.threads;
  lo.max_connections = m.o.max_connections;
  lo.handshake_timeout = m.o.handshake_timeout;
  Certificates* certs = m.certs.get();
  KILN_ASSIGN_OR_RETURN(
      m.listener, Listener::Start(
                      lo, [certs](std::string_view sni) { return certs->ForHost(sni); }, server));
  if (!m.o.acme_directory.empty()) {
    AcmeOptions ao;
    ao.directory = m.o.acme_directory;
    ao.email = m.o.acme_email;
    ao.ca_file = m.o.acme_ca_file;
    ao.account_key_path = m.AcmeDir() + "/account.key";
    ao.challenge = m.hooks.challenge;
    ao.wait = [&m](std::chrono::milliseconds ms) { return m.Wait(ms); };
    m.acme = std::make_unique<AcmeClient>(std::move(ao));
  }
  m.thread = std::thread([&m] { m.Loop(); });
  return std::unique_ptr<Https>(new Https(std::move(impl)));
}

Https::~Https() {
  {
    std::lock_guard lock(impl_->mu);
    impl_->stop = true;
  }
  impl_->cv.notify_all();
  if (impl_->thread.joinable()) {
    impl_->thread.join();
  }
  impl_->listener.reset();
}

uint16_t Https::port() const { return impl_->listener->port(); }

const std::string& Https::root_pem() const { return impl_->ca->root_pem(); }

int64_t Https::Connections() const { return impl_->listener->Connections(); }

void Https::StopAccepting() { impl_->listener->StopAccepting(); }

void Https::Issue(const std::vector<std::string>& domains) {
  Impl& m = *impl_;
  for (const std::string& domain : domains) {
    if (!m.acme) {
      m.IssueLocal(domain);
      continue;
    }
    auto cert = m.certs->Acme(domain);  // attached before, and its certificate kept
    if (cert && cert->not_after_ms - m.clock.NowMs() > int64_t{m.o.acme_renew_days} * kDayMs) {
      m.Record(domain, "acme", "issued", cert->not_after_ms, "");
      continue;
    }
    // Served by the local CA until the order completes (the domain's record says pending).
    m.Record(domain, "acme", "pending", 0, "");
    std::lock_guard lock(m.mu);
    m.due[domain] = m.clock.NowMs();
  }
  if (m.acme) {
    m.cv.notify_all();
  }
}

}  // namespace kiln::tls
