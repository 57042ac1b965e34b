#include <algorithm>
#include <cmath>

#include "auth/auth.h"

namespace kiln::auth {

RateLimiter::RateLimiter(double rate, int burst, const Clock& clock)
    : rate_(rate), burst_(burst), clock_(clock) {}

int RateLimiter::SecondsFor(double tokens) const {
  // Clamped before the cast: a tiny rate would otherwise overflow int (undefined behaviour).
  constexpr double kDay = 86400;
  return static_cast<int>(std::min(std::ceil(tokens / rate_), kDay));
}

RateLimiter::Decision RateLimiter::Take(const std::string& key_id) {
  int64_t now = clock_.NowMs();
  std::lock_guard lock(mu_);
  auto [it, inserted] = buckets_.try_emplace(key_id, Bucket{static_cast<double>(burst_), now});
  Bucket& b = it->second;
  if (!inserted) {
    double elapsed_s = static_cast<double>(std::max<int64_t>(0, now - b.updated_ms)) / 1000.0;
    b.tokens = std::min<double>(burst_, b.tokens + elapsed_s * rate_);
    b.updated_ms = now;
  }
  Decision d;
  d.limit = burst_;
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    d.allowed = true;
  } else {
    d.allowed = false;
    d.retry_after_s = std::max(SecondsFor(1.0 - b.tokens), 1);
  }
  d.remaining = static_cast<int>(std::floor(b.tokens));
  d.reset_s = SecondsFor(burst_ - b.tokens);
  return d;
}

}  // namespace kiln::auth
