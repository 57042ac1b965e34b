// An ACME client (RFC 8555) for one kind of order: one DNS name, HTTP-01, served by Kiln's
// own gateway. Blocking; runs on the certificate thread. Every request has a connect and a
// total deadline and a size limit on what it reads; nonces are kept from every reply and a
// badNonce is retried with the fresh one the error carries; Retry-After is honoured while
// polling.
#include <curl/curl.h>

#include <algorithm>
#include <mutex>

#include "core/crypto.h"
#include "core/json.h"
#include "core/log.h"
#include "tls/internal.h"

namespace kiln::tls {
namespace {

constexpr size_t kMaxReply = 1 << 20;  // certificate chains and JSON objects are a few KiB
constexpr int kNonceRetries = 5;

struct Reply {
  long status = 0;
  std::string body;
  std::string location;
  std::string nonce;
  std::string retry_after;
  bool too_large = false;
};

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Reply*>(user);
  if (r->body.size() + size * n > kMaxReply) {
    r->too_large = true;
    return 0;  // aborts the transfer
  }
  r->body.append(data, size * n);
  return size * n;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* r = static_cast<Reply*>(user);
  std::string_view line(data, size * n);
  size_t colon = line.find(':');
  if (colon != std::string_view::npos) {
    std::string name;
    for (char c : line.substr(0, colon)) {
      name.push_back(static_cast<char>(std::tolower(static_cast<unsigned char>(c))));
    }
    std::string_view value = line.substr(colon + 1);
    while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) {
      value.remove_prefix(1);
    }
    while (!value.empty() &&
           (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) {
      value.remove_suffix(1);
    }
    if (name == "location") {
      r->location = value;
    } else if (name == "replay-nonce") {
      r->nonce = value;
    } else if (name == "retry-after") {
      r->retry_after = value;
    }
  }
  return size * n;
}

// A problem document (RFC 7807) or whatever the body says, shortened.
std::string Problem(const Reply& r, std::string* type = nullptr) {
  auto parsed = ParseJson(r.body);
  if (parsed.ok() && parsed->is_object()) {
    std::string t = GetString(parsed->as_object(), "type");
    if (type != nullptr) {
      *type = t;
    }
    std::string detail = GetString(parsed->as_object(), "detail");
    return detail + (t.empty() ? "" : " (" + t + ")");
  }
  return "HTTP " + std::to_string(r.status) + " " + ValidUtf8(r.body.substr(0, 200));
}

Status AcmeError(const std::string& step, const std::string& detail) {
  return Status::Unavailable("ACME_FAILED", "ACME " + step + ": " + detail,
                             "check gateway.acme_directory and that the domain's DNS points at "
                             "this server (the CA fetches /.well-known/acme-challenge/ over HTTP)");
}

Result<json::object> JsonObject(const Reply& r, const std::string& step) {
  auto parsed = ParseJson(r.body);
  if (!parsed.ok() || !parsed->is_object()) {
    return AcmeError(step, "the server's answer is not a JSON object");
  }
  return std::move(parsed->as_object());
}

// Aborts a transfer in flight once the server is stopping.
int OnProgress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* o = static_cast<const AcmeOptions*>(user);
  return o->wait(std::chrono::milliseconds(0)) ? 0 : 1;
}

bool IsToken(std::string_view token) {
  return !token.empty() && token.size() <= 256 &&
         token.find_first_not_of(
             "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") ==
             std::string_view::npos;
}

// Withdraws a published HTTP-01 answer however the order ends.
class ChallengeGuard {
 public:
  ChallengeGuard(const AcmeOptions& o, std::string token, const std::string& key_authorization)
      : o_(o), token_(std::move(token)) {
    o_.challenge(token_, key_authorization);
  }
  ~ChallengeGuard() { o_.challenge(token_, ""); }
  ChallengeGuard(const ChallengeGuard&) = delete;
  ChallengeGuard& operator=(const ChallengeGuard&) = delete;

 private:
  const AcmeOptions& o_;
  std::string token_;
};

}  // namespace

struct AcmeClient::Impl {
  explicit Impl(AcmeOptions options) : o(std::move(options)) {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    curl = curl_easy_init();
  }
  ~Impl() {
    if (curl != nullptr) {
      curl_easy_cleanup(curl);
    }
  }

  // One exchange; errors name `step` and the URL.
  Result<Reply> Transfer(const std::string& method, const std::string& url, const std::string& body,
                         const char* accept, const std::string& step);
  Status Directory();
  Status Account();
  // A JWS-signed POST (`payload` empty: POST-as-GET), retried on badNonce.
  Result<Reply> Post(const std::string& url, const std::string& payload, const std::string& step,
                     const char* accept = nullptr, bool with_jwk = false);
  Result<json::object> PostForObject(const std::string& url, const std::string& payload,
                                     const std::string& step);
  // Polls `url` while its status is one of `busy`; answers the object once it is not.
  Result<json::object> Poll(const std::string& url, std::initializer_list<std::string_view> busy,
                            const std::string& step);
  Status Authorize(const std::string& authz_url);

  AcmeOptions o;
  CURL* curl = nullptr;
  PkeyPtr account_key;
  std::string new_nonce, new_account, new_order;
  std::string kid;
  std::string nonce;
  std::string retry_after;  // of the last reply
};

Result<Reply> AcmeClient::Impl::Transfer(const std::string& method, const std::string& url,
                                         const std::string& body, const char* accept,
                                         const std::string& step) {
  if (curl == nullptr) {
    return Status::Internal("curl_easy_init failed");
  }
  curl_easy_reset(curl);  // keeps the connection cache
  Reply reply;
  curl_slist* headers = nullptr;
  if (method == "POST") {
    headers = curl_slist_append(headers, "Content-Type: application/jose+json");
  }
  if (accept != nullptr) {
    headers = curl_slist_append(headers, (std::string("Accept: ") + accept).c_str());
  }
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "https");
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, 10'000L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, 30'000L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "kiln-acme/1");
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, &reply);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, &reply);
  curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, &OnProgress);
  curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &o);
  if (!o.ca_file.empty()) {
    curl_easy_setopt(curl, CURLOPT_CAINFO, o.ca_file.c_str());
  }
  if (method == "HEAD") {
    curl_easy_setopt(curl, CURLOPT_NOBODY, 1L);
  } else if (method == "POST") {
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE, static_cast<long>(body.size()));
  }
  CURLcode rc = curl_easy_perform(curl);
  curl_slist_free_all(headers);
  if (reply.too_large) {
    return AcmeError(step, "the answer of " + url + " is larger than 1 MiB");
  }
  if (rc != CURLE_OK) {
    return AcmeError(step, std::string(curl_easy_strerror(rc)) + " (" + method + " " + url + ")");
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &reply.status);
  if (!reply.nonce.empty()) {
    nonce = reply.nonce;
  }
  retry_after = reply.retry_after;
  return reply;
}

Status AcmeClient::Impl::Directory() {
  if (!new_order.empty()) {
    return Status::Ok();
  }
  KILN_ASSIGN_OR_RETURN(Reply r, Transfer("GET", o.directory, "", nullptr, "directory"));
  if (r.status != 200) {
    return AcmeError("directory " + o.directory, Problem(r));
  }
  KILN_ASSIGN_OR_RETURN(json::object dir, JsonObject(r, "directory"));
  new_nonce = GetString(dir, "newNonce");
  new_account = GetString(dir, "newAccount");
  new_order = GetString(dir, "newOrder");
  if (new_nonce.empty() || new_account.empty() || new_order.empty()) {
    new_order.clear();
    return AcmeError("directory " + o.directory, "newNonce, newAccount or newOrder is missing");
  }
  return Status::Ok();
}

Result<Reply> AcmeClient::Impl::Post(const std::string& url, const std::string& payload,
                                     const std::string& step, const char* accept, bool with_jwk) {
  for (int attempt = 0;; ++attempt) {
    if (nonce.empty()) {
      KILN_ASSIGN_OR_RETURN(Reply n, Transfer("HEAD", new_nonce, "", nullptr, "newNonce"));
      if (nonce.empty()) {
        return AcmeError("newNonce",
                         "no Replay-Nonce in the answer (HTTP " + std::to_string(n.status) + ")");
      }
    }
    json::object header{{"alg", "ES256"}, {"nonce", nonce}, {"url", url}};
    if (with_jwk) {
      header["jwk"] = *ParseJson(JwkJson(account_key.get()));
    } else {
      header["kid"] = kid;
    }
    nonce.clear();  // each nonce is good for one request
    KILN_ASSIGN_OR_RETURN(std::string jws,
                          Jws(account_key.get(), json::serialize(header), payload));
    KILN_ASSIGN_OR_RETURN(Reply r, Transfer("POST", url, jws, accept, step));
    if (r.status < 400) {
      return r;
    }
    std::string type;
    std::string detail = Problem(r, &type);
    if (type == "urn:ietf:params:acme:error:badNonce" && attempt < kNonceRetries) {
      continue;  // the error carried a fresh nonce (or the next HEAD gets one)
    }
    return AcmeError(step, detail);
  }
}

Result<json::object> AcmeClient::Impl::PostForObject(const std::string& url,
                                                     const std::string& payload,
                                                     const std::string& step) {
  KILN_ASSIGN_OR_RETURN(Reply r, Post(url, payload, step));
  return JsonObject(r, step);
}

Status AcmeClient::Impl::Account() {
  KILN_RETURN_IF_ERROR(Directory());
  if (!account_key) {
    KILN_ASSIGN_OR_RETURN(account_key, LoadOrCreateKey(o.account_key_path));
  }
  if (!kid.empty()) {
    return Status::Ok();
  }
  // newAccount with a key that has an account answers that account (200) instead of
  // making another, so nothing but the key needs to be kept.
  json::object payload{{"termsOfServiceAgreed", true}};
  if (!o.email.empty()) {
    payload["contact"] = json::array{json::string("mailto:" + o.email)};
  }
  KILN_ASSIGN_OR_RETURN(Reply r,
                        Post(new_account, json::serialize(payload), "newAccount", nullptr, true));
  if (r.location.empty()) {
    return AcmeError("newAccount", "no Location (account URL) in the answer");
  }
  kid = r.location;
  log::Info("ACME account ready", {{"account", kid}});
  return Status::Ok();
}

Result<json::object> AcmeClient::Impl::Poll(const std::string& url,
                                            std::initializer_list<std::string_view> busy,
                                            const std::string& step) {
  auto deadline = std::chrono::steady_clock::now() + o.order_timeout;
  std::chrono::milliseconds delay(250);
  for (;;) {
    KILN_ASSIGN_OR_RETURN(json::object obj, PostForObject(url, "", step));
    std::string status = GetString(obj, "status");
    if (std::find(busy.begin(), busy.end(), status) == busy.end()) {
      return obj;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return AcmeError(
          step, "still " + status + " after " + std::to_string(o.order_timeout.count()) + " s");
    }
    std::chrono::milliseconds wait = delay;
    if (int seconds = std::atoi(retry_after.c_str()); seconds > 0) {
      wait = std::chrono::seconds(std::min(seconds, 60));
    }
    delay = std::min(delay * 2, std::chrono::milliseconds(5000));
    if (!o.wait(wait)) {
      return Status::Unavailable("SHUTTING_DOWN", "the server is stopping");
    }
  }
}

Status AcmeClient::Impl::Authorize(const std::string& authz_url) {
  KILN_ASSIGN_OR_RETURN(json::object authz, PostForObject(authz_url, "", "authorization"));
  std::string status = GetString(authz, "status");
  if (status == "valid") {
    return Status::Ok();  // authorized by an earlier order
  }
  if (status != "pending") {
    return AcmeError("authorization", "it is " + status);
  }
  const json::object* http01 = nullptr;
  if (auto it = authz.find("challenges"); it != authz.end() && it->value().is_array()) {
    for (const auto& c : it->value().as_array()) {
      if (c.is_object() && GetString(c.as_object(), "type") == "http-01") {
        http01 = &c.as_object();
      }
    }
  }
  if (http01 == nullptr) {
    return AcmeError("authorization", "the server offers no http-01 challenge");
  }
  std::string token = GetString(*http01, "token");
  std::string url = GetString(*http01, "url");
  if (!IsToken(token) || url.empty()) {
    return AcmeError("authorization", "the http-01 challenge has no usable token or url");
  }
  ChallengeGuard published(o, token, token + "." + JwkThumbprint(account_key.get()));
  // Respond: the CA now fetches http://DOMAIN/.well-known/acme-challenge/TOKEN.
  KILN_RETURN_IF_ERROR(Post(url, "{}", "challenge").status());
  KILN_ASSIGN_OR_RETURN(authz, Poll(authz_url, {"pending", "processing"}, "authorization"));
  if (GetString(authz, "status") == "valid") {
    return Status::Ok();
  }
  std::string why = "it is " + GetString(authz, "status");
  if (auto it = authz.find("challenges"); it != authz.end() && it->value().is_array()) {
    for (const auto& c : it->value().as_array()) {
      if (c.is_object() && c.as_object().contains("error") &&
          c.as_object().at("error").is_object()) {
        why = GetString(c.as_object().at("error").as_object(), "detail");
      }
    }
  }
  return AcmeError("http-01 challenge", why);
}

AcmeClient::AcmeClient(AcmeOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
AcmeClient::~AcmeClient() = default;

Result<IssuedChain> AcmeClient::Obtain(const std::string& domain) {
  auto issued = ObtainOnce(domain);
  if (!issued.ok()) {
    // The next try starts from the directory: the server may have moved or been reset (a
    // test CA forgets its accounts when it restarts).
    impl_->new_order.clear();
    impl_->kid.clear();
    impl_->nonce.clear();
  }
  return issued;
}

Result<IssuedChain> AcmeClient::ObtainOnce(const std::string& domain) {
  Impl& m = *impl_;
  KILN_RETURN_IF_ERROR(m.Account());
  json::object ids{{"identifiers", json::array{json::object{{"type", "dns"}, {"value", domain}}}}};
  KILN_ASSIGN_OR_RETURN(Reply created, m.Post(m.new_order, json::serialize(ids), "newOrder"));
  KILN_ASSIGN_OR_RETURN(json::object order, JsonObject(created, "newOrder"));
  std::string order_url = created.location;
  std::string finalize = GetString(order, "finalize");
  if (order_url.empty() || finalize.empty()) {
    return AcmeError("newOrder", "no order URL or finalize URL in the answer");
  }
  if (auto it = order.find("authorizations"); it != order.end() && it->value().is_array()) {
    for (const auto& a : it->value().as_array()) {
      if (a.is_string()) {
        KILN_RETURN_IF_ERROR(m.Authorize(std::string(a.as_string())));
      }
    }
  }
  KILN_ASSIGN_OR_RETURN(PkeyPtr key, NewP256Key());
  KILN_ASSIGN_OR_RETURN(std::string csr, CsrDer(key.get(), domain));
  json::object fin{{"csr", crypto::Base64UrlEncode(csr)}};
  KILN_RETURN_IF_ERROR(m.Post(finalize, json::serialize(fin), "finalize").status());
  KILN_ASSIGN_OR_RETURN(order, m.Poll(order_url, {"pending", "ready", "processing"}, "order"));
  if (GetString(order, "status") != "valid") {
    return AcmeError("order", "it is " + GetString(order, "status"));
  }
  std::string cert_url = GetString(order, "certificate");
  if (cert_url.empty()) {
    return AcmeError("order", "a valid order without a certificate URL");
  }
  KILN_ASSIGN_OR_RETURN(Reply cert,
                        m.Post(cert_url, "", "certificate", "application/pem-certificate-chain"));
  IssuedChain out;
  out.chain_pem = std::move(cert.body);
  out.key_pem = KeyPem(key.get());
  auto served = MakeServedCert(out.chain_pem, out.key_pem);
  if (!served.ok()) {
    return AcmeError("certificate", served.status().message());
  }
  out.not_after_ms = (*served)->not_after_ms;
  return out;
}

}  // namespace kiln::tls
