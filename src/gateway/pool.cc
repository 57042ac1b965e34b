// Kept-alive connections to apps, one pool per I/O thread. A connection lives on one
// io_context and each I/O thread runs exactly one, so a thread-local pool needs no lock and
// hands out only sockets of the calling thread's io_context.

#include <sys/socket.h>

#include <chrono>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "gateway/internal.h"

namespace kiln::gateway::internal {
namespace {

using Clock = std::chrono::steady_clock;
// Apps commonly close idle keep-alive connections after 5 s (Node's default); reusing one
// older than that would mostly find it closed.
constexpr auto kIdleTime = std::chrono::seconds(4);
constexpr auto kPruneEvery = std::chrono::seconds(10);
constexpr auto kNoPeekTime = std::chrono::milliseconds(500);

struct Pool {
  std::unordered_map<std::string, std::vector<std::unique_ptr<Upstream>>> idle;
  Clock::time_point pruned = Clock::now();

  // Drops connections idle for too long, so the pool of an instance that is gone empties.
  void Prune(Clock::time_point now) {
    pruned = now;
    for (auto it = idle.begin(); it != idle.end();) {
      auto& list = it->second;
      std::erase_if(list, [&](const auto& u) { return now - u->idle_since > kIdleTime; });
      it = list.empty() ? idle.erase(it) : std::next(it);
    }
  }
};

thread_local Pool pool;

// The app may have closed the connection while it sat in the pool (a FIN waits to be read):
// a peek tells without blocking. Anything readable at all means it is not reusable.
bool StillOpen(Upstream& upstream) {
  char byte;
  ssize_t n = ::recv(upstream.socket.native_handle(), &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace

std::unique_ptr<Upstream> PoolGet(const std::string& key, bool must_be_open) {
  auto it = pool.idle.find(key);
  if (it == pool.idle.end()) {
    return nullptr;
  }
  auto now = Clock::now();
  auto& list = it->second;
  while (!list.empty()) {
    std::unique_ptr<Upstream> upstream = std::move(list.back());
    list.pop_back();
    auto idle = now - upstream->idle_since;
    // A connection used a moment ago is taken without a peek (a syscall per request): the
    // rare one the app closed meanwhile fails before any answer, and the caller retries a
    // request without a body. A request with a body, which cannot be retried, checks.
    bool fresh = idle < kNoPeekTime && !must_be_open;
    if (idle <= kIdleTime && (fresh || StillOpen(*upstream))) {
      upstream->reused = true;
      return upstream;
    }
  }
  return nullptr;
}

void PoolPut(std::unique_ptr<Upstream> upstream, int limit) {
  auto now = Clock::now();
  if (now - pool.pruned > kPruneEvery) {
    pool.Prune(now);
  }
  auto& list = pool.idle[upstream->key];
  if (static_cast<int>(list.size()) >= limit) {
    return;  // closes it
  }
  upstream->idle_since = now;
  list.push_back(std::move(upstream));
}

}  // namespace kiln::gateway::internal
