#include "core/clock.h"

#include <gtest/gtest.h>

namespace kiln {
namespace {

TEST(ClockTest, FormatTime) {
  EXPECT_EQ(FormatTime(0), "1970-01-01T00:00:00.000Z");
  EXPECT_EQ(FormatTime(1'700'000'000'123), "2023-11-14T22:13:20.123Z");
  EXPECT_EQ(FormatTime(951'782'400'007), "2000-02-29T00:00:00.007Z");
  EXPECT_EQ(FormatTime(-1), "1969-12-31T23:59:59.999Z");
}

TEST(ClockTest, SystemClockIsNearNow) {
  int64_t now = SystemClock::Instance().NowMs();
  EXPECT_GT(now, 1'700'000'000'000);  // after Nov 2023
  EXPECT_EQ(&SystemClock::Instance(), &SystemClock::Instance());
  EXPECT_EQ(SystemClock::Instance().NowSeconds(), SystemClock::Instance().NowMs() / 1000);
}

TEST(ClockTest, FakeClockMovesOnlyWhenTold) {
  FakeClock clock(1000);
  EXPECT_EQ(clock.NowMs(), 1000);
  clock.AdvanceMs(2500);
  EXPECT_EQ(clock.NowMs(), 3500);
  EXPECT_EQ(clock.NowSeconds(), 3);
}

}  // namespace
}  // namespace kiln
