#pragma once
// The clock seam: production code reads time only through a Clock so tests can move it.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace kiln {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch (UTC).
  virtual int64_t NowMs() const = 0;
  int64_t NowSeconds() const { return NowMs() / 1000; }
};

class SystemClock final : public Clock {
 public:
  int64_t NowMs() const override;
  static SystemClock& Instance();
};

// A clock that only moves when told to. Thread-safe.
class FakeClock final : public Clock {
 public:
  explicit FakeClock(int64_t start_ms = 1'700'000'000'000) : now_ms_(start_ms) {}
  int64_t NowMs() const override { return now_ms_.load(); }
  void AdvanceMs(int64_t ms) { now_ms_ += ms; }
  void SetMs(int64_t ms) { now_ms_ = ms; }

 private:
  std::atomic<int64_t> now_ms_;
};

// RFC 3339 UTC with milliseconds: "2026-11-22T21:36:26.123Z".
std::string FormatTime(int64_t unix_ms);

}  // namespace kiln
