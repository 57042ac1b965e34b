#include "core/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <thread>

namespace kiln {
namespace {

using namespace std::chrono_literals;

TEST(WorkerPoolTest, BlockingWorkRunsInParallelUpToTheMaximum) {
  std::atomic<int> running{0};
  std::atomic<int> peak{0};
  std::atomic<int> done{0};
  {
    WorkerPool pool(4);
    for (int i = 0; i < 8; ++i) {
      ASSERT_TRUE(pool.Submit([&] {
        int now = ++running;
        int seen = peak.load();
        while (now > seen && !peak.compare_exchange_weak(seen, now)) {
        }
        std::this_thread::sleep_for(50ms);
        --running;
        ++done;
      }));
    }
    EXPECT_LE(pool.threads(), 4u);
  }  // the destructor waits for all of it
  EXPECT_EQ(done.load(), 8);
  EXPECT_EQ(peak.load(), 4) << "four sleepers at once, never more";
}

TEST(WorkerPoolTest, AnIdleThreadIsReused) {
  WorkerPool pool(8);
  std::atomic<int> done{0};
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(pool.Submit([&] { ++done; }));
    // Done, and back waiting for work: only then is it the idle thread the next one gets.
    while (done.load() != i + 1 || pool.idle() != 1) {
      std::this_thread::yield();
    }
  }
  EXPECT_EQ(pool.threads(), 1u);
}

TEST(WorkerPoolTest, AThrowingTaskDoesNotKillThePool) {
  WorkerPool pool(1);
  std::atomic<bool> after{false};
  ASSERT_TRUE(pool.Submit([] { throw std::runtime_error("bug"); }));
  ASSERT_TRUE(pool.Submit([&] { after = true; }));
  while (!after.load()) {
    std::this_thread::yield();
  }
  SUCCEED();
}

}  // namespace
}  // namespace kiln
