#include "core/log.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <cstdio>
#include <string>

namespace kiln::log {
namespace {

// Runs `fn` with stderr redirected into a temporary file and returns what it wrote.
template <typename Fn>
std::string CaptureStderr(Fn fn) {
  char path[] = "/tmp/kiln_log_test.XXXXXX";
  int fd = ::mkstemp(path);
  EXPECT_GE(fd, 0);
  ::unlink(path);
  int saved = ::dup(STDERR_FILENO);
  ::dup2(fd, STDERR_FILENO);
  fn();
  ::dup2(saved, STDERR_FILENO);
  ::close(saved);
  std::string out;
  char buf[4096];
  ssize_t n;
  ::lseek(fd, 0, SEEK_SET);
  while ((n = ::read(fd, buf, sizeof buf)) > 0) {
    out.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  return out;
}

class LogTest : public ::testing::Test {
 protected:
  void TearDown() override { Configure(Level::kInfo, Format::kJson); }
};

TEST_F(LogTest, JsonLineEscapesAndParses) {
  Configure(Level::kInfo, Format::kJson);
  std::string out = CaptureStderr([] {
    Info("said \"hi\"\nthen left\\", {{"user", "bob \"b\""},
                                      {"count", 3},
                                      {"ratio", 0.5},
                                      {"ok", true},
                                      {"ctl", std::string_view("\x01", 1)}});
  });
  ASSERT_FALSE(out.empty());
  EXPECT_EQ(out.back(), '\n');
  EXPECT_EQ(out.find('\n'), out.size() - 1) << "one record is one line: " << out;
  EXPECT_NE(out.find(R"("msg":"said \"hi\"\nthen left\\")"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("ctl":"\u0001")"), std::string::npos) << out;
  EXPECT_TRUE(out.starts_with("{\"ts\":\"")) << out;

  boost::system::error_code ec;
  boost::json::value v = boost::json::parse(out, ec);
  ASSERT_FALSE(ec) << ec.message() << ": " << out;
  const auto& obj = v.as_object();
  EXPECT_EQ(obj.at("level").as_string(), "info");
  EXPECT_EQ(obj.at("msg").as_string(), "said \"hi\"\nthen left\\");
  EXPECT_EQ(obj.at("user").as_string(), "bob \"b\"");
  EXPECT_EQ(obj.at("count").as_int64(), 3);
  EXPECT_EQ(obj.at("ratio").as_double(), 0.5);
  EXPECT_EQ(obj.at("ok").as_bool(), true);
  EXPECT_EQ(obj.at("ts").as_string().size(), std::string("1970-01-01T00:00:00.000Z").size());
}

TEST_F(LogTest, LevelFilters) {
  Configure(Level::kWarn, Format::kJson);
  EXPECT_FALSE(Enabled(Level::kInfo));
  EXPECT_TRUE(Enabled(Level::kError));
  std::string out = CaptureStderr([] {
    Info("hidden");
    Debug("hidden too");
    Warn("shown");
  });
  EXPECT_EQ(out.find("hidden"), std::string::npos) << out;
  EXPECT_NE(out.find(R"("level":"warn","msg":"shown")"), std::string::npos) << out;
}

TEST_F(LogTest, TextFormat) {
  Configure(Level::kDebug, Format::kText);
  std::string out = CaptureStderr([] {
    Info("started", {{"listen", "127.0.0.1:8080"}, {"note", "two words"}, {"n", 5}});
  });
  EXPECT_NE(out.find(" INFO  started listen=127.0.0.1:8080 note=\"two words\" n=5\n"),
            std::string::npos)
      << out;
  EXPECT_EQ(out[4], '-') << out;  // starts with the timestamp
}

TEST_F(LogTest, ParseLevel) {
  Level level = Level::kInfo;
  EXPECT_TRUE(ParseLevel("debug", &level));
  EXPECT_EQ(level, Level::kDebug);
  EXPECT_TRUE(ParseLevel("error", &level));
  EXPECT_EQ(level, Level::kError);
  EXPECT_TRUE(ParseLevel("warn", &level));
  EXPECT_EQ(level, Level::kWarn);
  EXPECT_FALSE(ParseLevel("verbose", &level));
  EXPECT_FALSE(ParseLevel("INFO", &level));
  EXPECT_EQ(level, Level::kWarn);
}

}  // namespace
}  // namespace kiln::log
