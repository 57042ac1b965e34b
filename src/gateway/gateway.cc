// The Gateway: the takeover the server calls for every request head, and per-app traffic.
// Serving a request is in proxy.cc.

#include "gateway/gateway.h"

#include <cmath>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>

#include <boost/beast/http/field.hpp>

#include "gateway/internal.h"

namespace kiln::gateway {
namespace internal {

Shared::Shared(Deps d) : deps(std::move(d)), wakers(static_cast<size_t>(deps.threads)) {
  if (deps.metrics != nullptr) {
    deps.metrics->Describe("kiln_gateway_requests_total", "counter",
                           "requests the gateway answered, by app and status class");
    deps.metrics->Describe("kiln_gateway_request_duration_seconds", "histogram",
                           "time from the request head to the end of the response, by app");
    deps.metrics->Describe("kiln_gateway_body_bytes_total", "counter",
                           "request (in) and response (out) body bytes, by app");
  }
}

AppCounters& Shared::CountersFor(const service::AppRoute& route) {
  // Threads outlive no gateway but may serve a later one (tests start several): the cache
  // remembers whose counters it holds.
  thread_local const Shared* owner = nullptr;
  thread_local std::unordered_map<std::string, AppCounters*> cache;
  if (owner != this) {
    cache.clear();
    owner = this;
  }
  auto hit = cache.find(route.app_id);
  if (hit != cache.end()) {
    return *hit->second;
  }
  std::lock_guard lock(traffic_mu);
  auto& slot = traffic[route.app_id];
  if (!slot) {
    slot = std::make_unique<AppCounters>();
    std::string kind = route.sandbox ? "sandbox" : "app";
    // The label is the host label: the app's name, or "{port}-{sandbox}".
    std::string labels = kind + "=\"" + route.name + "\"";
    if (deps.metrics != nullptr) {
      slot->latency = &deps.metrics->Histogram("kiln_gateway_request_duration_seconds", labels);
      for (int i = 0; i < 5; ++i) {
        slot->metric_class[i] = &deps.metrics->Counter(
            "kiln_gateway_requests_total", labels + ",code=\"" + std::to_string(i + 1) + "xx\"");
      }
      slot->metric_in =
          &deps.metrics->Counter("kiln_gateway_body_bytes_total", labels + ",direction=\"in\"");
      slot->metric_out =
          &deps.metrics->Counter("kiln_gateway_body_bytes_total", labels + ",direction=\"out\"");
    } else {
      slot->own_latency = std::make_unique<HistogramSeries>();
      slot->latency = slot->own_latency.get();
    }
  }
  cache.emplace(route.app_id, slot.get());
  return *slot;
}

}  // namespace internal

namespace {

namespace bhttp = boost::beast::http;

class Takeover final : public http::Takeover {
 public:
  explicit Takeover(std::shared_ptr<internal::Shared> shared) : shared_(std::move(shared)) {}

  bool Claims(const http::HeadParser& parser) override {
    auto host = parser.get()[bhttp::field::host];
    if (host.empty()) {
      return false;
    }
    HostMatch& match = claimed_;
    match = MatchHost(host, shared_->deps.base_domain);
    if (match.kind == HostMatch::Kind::kCustom) {
      // Only domains attached to a running app, and ACME challenges for any domain (a
      // certificate may be ordered before its app first runs); other names are the API's (a
      // reverse proxy in front of Kiln may use any name).
      bool challenge = parser.get().target().starts_with("/.well-known/acme-challenge/");
      if (!challenge && (!shared_->deps.find_domain || !shared_->deps.find_domain(match.host))) {
        return false;
      }
    }
    return match.kind != HostMatch::Kind::kNone;
  }

  boost::asio::awaitable<bool> Serve(http::Exchange& exchange) override {
    // The server calls Serve right after a Claims that said yes, on the same thread and
    // with nothing in between: the match is taken over instead of worked out again.
    HostMatch match = std::move(claimed_);
    co_return co_await internal::Serve(*shared_, exchange, std::move(match));
  }

 private:
  std::shared_ptr<internal::Shared> shared_;
  // The last match Claims made on this thread (one Takeover serves every I/O thread).
  static thread_local HostMatch claimed_;
};

thread_local HostMatch Takeover::claimed_;

}  // namespace

struct Gateway::Impl {
  std::shared_ptr<internal::Shared> shared;
  std::shared_ptr<Takeover> takeover;
};

Gateway::Gateway(Deps deps) : impl_(std::make_shared<Impl>()) {
  impl_->shared = std::make_shared<internal::Shared>(std::move(deps));
  impl_->takeover = std::make_shared<Takeover>(impl_->shared);
}

Gateway::~Gateway() = default;

std::shared_ptr<http::Takeover> Gateway::takeover() const { return impl_->takeover; }

std::optional<service::Traffic> Gateway::TrafficOf(const std::string& id) const {
  auto& shared = *impl_->shared;
  std::lock_guard lock(shared.traffic_mu);
  auto it = shared.traffic.find(id);
  if (it == shared.traffic.end()) {
    return std::nullopt;
  }
  const internal::AppCounters& c = *it->second;
  service::Traffic t;
  t.requests = c.requests.load(std::memory_order_relaxed);
  for (size_t i = 0; i < t.by_class.size(); ++i) {
    t.by_class[i] = c.by_class[i].load(std::memory_order_relaxed);
  }
  t.bytes_in = c.bytes_in.load(std::memory_order_relaxed);
  t.bytes_out = c.bytes_out.load(std::memory_order_relaxed);
  t.latency = c.latency->Buckets();
  t.latency_count = c.latency->Count();
  return t;
}

}  // namespace kiln::gateway
