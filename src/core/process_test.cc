#include "core/process.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace kiln {
namespace {

using namespace std::chrono_literals;

TEST(ProcessTest, CapturesOutputAndExitCode) {
  auto r = RunProcess({"sh", "-c", "echo out; echo err >&2; exit 3"}, 10s);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 3);
  EXPECT_FALSE(r->timed_out);
  EXPECT_NE(r->output.find("out\n"), std::string::npos) << r->output;
  EXPECT_NE(r->output.find("err\n"), std::string::npos) << r->output;
  EXPECT_EQ(r->LastLine(), "err");
}

TEST(ProcessTest, FeedsStdinAndUsesCwdAndEnv) {
  ProcessOptions options;
  options.stdin_data = std::string(200000, 'x') + "\n";  // larger than a pipe buffer
  options.cwd = "/tmp";
  options.env = {"GREETING=hi", "PATH=/usr/bin:/bin"};
  auto r = RunProcess({"sh", "-c", "wc -c; pwd; echo $GREETING"}, 10s, options);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->output, "200001\n/tmp\nhi\n");
}

TEST(ProcessTest, TimeoutKillsTheWholeGroup) {
  auto start = std::chrono::steady_clock::now();
  auto r = RunProcess({"sh", "-c", "sleep 30 & sleep 30; echo never"}, 300ms);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_TRUE(r->timed_out);
  EXPECT_EQ(r->exit_code, 128 + SIGKILL);
  EXPECT_EQ(r->output.find("never"), std::string::npos);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
}

TEST(ProcessTest, ADescendantHoldingTheOutputDoesNotHoldTheCaller) {
  // The shell exits at once; its background child keeps stdout open for 30 s.
  auto start = std::chrono::steady_clock::now();
  auto r = RunProcess({"sh", "-c", "echo started; sleep 5 & exit 0"}, 20s);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_FALSE(r->timed_out);
  EXPECT_EQ(r->exit_code, 0);
  EXPECT_EQ(r->output, "started\n");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 15s);
}

TEST(ProcessTest, MissingProgramNamesThePackage) {
  auto r = RunProcess({"kiln-no-such-program"}, 1s, {}, "kiln-tools");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().error_code(), "PROGRAM_NOT_FOUND");
  EXPECT_NE(r.status().hint().find("apt-get install kiln-tools"), std::string::npos);
}

TEST(ProcessTest, ChildrenGetDefaultSignalsAndAnEmptyMask) {
  // The daemon blocks SIGTERM and ignores SIGPIPE; a child must not inherit either.
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &block, &old);
  auto previous = ::signal(SIGPIPE, SIG_IGN);
  auto r = RunProcess({"sh", "-c", "kill -TERM $$; echo survived"}, 10s);
  // With SIGPIPE ignored, `yes` would complain "Broken pipe" instead of dying quietly.
  auto pipe = RunProcess({"sh", "-c", "yes | head -c 1 >/dev/null"}, 10s);
  ::signal(SIGPIPE, previous);
  pthread_sigmask(SIG_SETMASK, &old, nullptr);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->exit_code, 128 + SIGTERM) << r->output;
  EXPECT_EQ(r->output, "");
  ASSERT_TRUE(pipe.ok());
  EXPECT_EQ(pipe->output, "");
}

TEST(ProcessTest, OutputCapAndStreaming) {
  ProcessOptions options;
  options.max_output = 1000;
  std::string streamed;
  options.on_output = [&](std::string_view chunk) { streamed.append(chunk); };
  auto r = RunProcess({"sh", "-c", "head -c 100000 /dev/zero | tr '\\0' a"}, 10s, options);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->output.size(), 1000u);
  EXPECT_EQ(streamed.size(), 100000u);
}

TEST(ProcessTest, OutputFileInsteadOfCapture) {
  char path[] = "/tmp/kiln-process-test-XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::close(fd);
  ProcessOptions options;
  options.output_file = path;
  auto r = RunProcess({"sh", "-c", "echo to-file; sleep 3 &"}, 10s, options);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(r->output, "");
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_EQ(text.str(), "to-file\n");
  std::remove(path);
}

}  // namespace
}  // namespace kiln
