#pragma once
// Threads for work that blocks (a command running in a sandbox, a file copied through
// kiln-init, a template build), so that it never holds an I/O thread. Threads are started on
// demand up to a maximum and leave after a minute without work, so an idle server keeps none
// and a burst of long commands gets a thread each. Thread-safe.

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>

namespace kiln {

class WorkerPool {
 public:
  explicit WorkerPool(size_t max_threads);
  // Waits for queued and running work to finish, then joins every thread.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Runs `work` on a pool thread: an idle one, a new one while fewer than the maximum exist,
  // else after the work queued before it. False once the pool is shutting down.
  bool Submit(std::function<void()> work);
  size_t threads() const;
  size_t idle() const;  // threads waiting for work

 private:
  void Loop();
  const size_t max_threads_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable done_cv_;
  std::deque<std::function<void()>> queue_;
  size_t threads_ = 0;
  size_t idle_ = 0;
  bool stopping_ = false;
};

}  // namespace kiln
