#include "core/worker_pool.h"

#include <chrono>
#include <thread>

#include "core/log.h"

namespace kiln {

WorkerPool::WorkerPool(size_t max_threads) : max_threads_(max_threads == 0 ? 1 : max_threads) {}

WorkerPool::~WorkerPool() {
  std::unique_lock lock(mu_);
  stopping_ = true;
  work_cv_.notify_all();
  done_cv_.wait(lock, [this] { return threads_ == 0; });
}

bool WorkerPool::Submit(std::function<void()> work) {
  std::lock_guard lock(mu_);
  if (stopping_) {
    return false;
  }
  queue_.push_back(std::move(work));
  if (idle_ > 0) {
    work_cv_.notify_one();
  }
  if (idle_ < queue_.size() && threads_ < max_threads_) {
    ++threads_;
    // Detached: the destructor waits for threads_ to drop to zero instead of joining, since
    // threads also leave on their own when idle.
    std::thread([this] { Loop(); }).detach();
  }
  return true;
}

size_t WorkerPool::threads() const {
  std::lock_guard lock(mu_);
  return threads_;
}

size_t WorkerPool::idle() const {
  std::lock_guard lock(mu_);
  return idle_;
}

void WorkerPool::Loop() {
  std::unique_lock lock(mu_);
  while (true) {
    ++idle_;
    bool got = work_cv_.wait_for(lock, std::chrono::seconds(60),
                                 [this] { return !queue_.empty() || stopping_; });
    --idle_;
    if (queue_.empty() && (stopping_ || !got)) {
      break;
    }
    std::function<void()> work = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    try {
      work();
    } catch (const std::exception& e) {
      // Work reports errors as values; an exception is a bug, not a reason to lose the thread.
      log::Error("background work threw", {{"error", e.what()}});
    }
    lock.lock();
  }
  --threads_;
  done_cv_.notify_all();
}

}  // namespace kiln
