#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "core/process.h"
#include "service/sources.h"
#include "service/sources_test_util.h"

namespace kiln::service {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

// ---------------------------------------------------------------------------------------------
// GitCheckout

class GitCheckoutTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    root_ = new TempDir;
    repo_ = *root_ / "repo";
    ProcessOptions options;
    options.env = {"PATH=" + std::string(std::getenv("PATH")),
                   "HOME=" + root_->path(),
                   "GIT_CONFIG_NOSYSTEM=1",
                   "GIT_AUTHOR_NAME=Kiln Test",
                   "GIT_AUTHOR_EMAIL=t@kiln",
                   "GIT_COMMITTER_NAME=Kiln Test",
                   "GIT_COMMITTER_EMAIL=t@kiln"};
    options.cwd = repo_;
    auto git = [&options](std::vector<std::string> args) {
      args.insert(args.begin(), "git");
      auto r = RunProcess(args, 30s, options);
      EXPECT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->output : r.status().ToString());
      return r.ok() ? r->output : std::string();
    };
    fs::create_directories(repo_);
    git({"init", "-q", "-b", "main"});
    WriteFile(fs::path(repo_) / "README", "v1");
    git({"add", "-A"});
    git({"commit", "-q", "-m", "one"});
    git({"tag", "v1"});
    first_ = git({"rev-parse", "HEAD"});
    first_.pop_back();
    WriteFile(fs::path(repo_) / "README", "v2");
    git({"commit", "-q", "-am", "two"});
    second_ = git({"rev-parse", "HEAD"});
    second_.pop_back();
    git({"checkout", "-q", "-b", "feature"});
    WriteFile(fs::path(repo_) / "feature.txt", "f");
    git({"add", "-A"});
    git({"commit", "-q", "-m", "three"});
    git({"checkout", "-q", "main"});
  }
  static void TearDownTestSuite() { delete root_; }

  Status Checkout(const std::string& repo, const std::string& ref, std::string* commit) {
    return GitCheckout(repo, ref, dest_, 60000, commit,
                       [this](std::string_view line) { log_.emplace_back(line); });
  }

  static TempDir* root_;
  static std::string repo_, first_, second_;
  TempDir tmp_;
  std::string dest_ = tmp_ / "checkout";
  std::vector<std::string> log_;
};

TempDir* GitCheckoutTest::root_ = nullptr;
std::string GitCheckoutTest::repo_, GitCheckoutTest::first_, GitCheckoutTest::second_;

TEST_F(GitCheckoutTest, DefaultBranchWithoutGitDirectory) {
  std::string commit;
  Status s = Checkout(repo_, "", &commit);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(commit, second_);
  EXPECT_EQ(ReadFile(fs::path(dest_) / "README"), "v2");
  EXPECT_FALSE(fs::exists(fs::path(dest_) / "feature.txt"));
  EXPECT_FALSE(fs::exists(fs::path(dest_) / ".git"));
  ASSERT_FALSE(log_.empty());
  EXPECT_EQ(log_.front(), "cloning " + repo_);
  EXPECT_EQ(log_.back(), "checked out " + second_);
}

TEST_F(GitCheckoutTest, BranchTagAndCommits) {
  std::string commit;
  ASSERT_TRUE(Checkout(repo_, "feature", &commit).ok());
  EXPECT_EQ(ReadFile(fs::path(dest_) / "feature.txt"), "f");
  fs::remove_all(dest_);

  Status s = Checkout(repo_, "v1", &commit);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(commit, first_);
  EXPECT_EQ(ReadFile(fs::path(dest_) / "README"), "v1");
  fs::remove_all(dest_);

  // A full commit id, over file:// (a shallow fetch of that commit).
  auto whole_history = [this] {
    return std::any_of(log_.begin(), log_.end(), [](const std::string& line) {
      return line.find("whole history") != std::string::npos;
    });
  };
  s = Checkout("file://" + repo_, first_, &commit);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_FALSE(whole_history());
  EXPECT_EQ(commit, first_);
  EXPECT_EQ(ReadFile(fs::path(dest_) / "README"), "v1");
  EXPECT_FALSE(fs::exists(fs::path(dest_) / ".git"));
  fs::remove_all(dest_);

  // An abbreviated one: the whole history is cloned to find it.
  s = Checkout(repo_, first_.substr(0, 8), &commit);
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_TRUE(whole_history());
  EXPECT_EQ(commit, first_);
  EXPECT_EQ(ReadFile(fs::path(dest_) / "README"), "v1");
  EXPECT_FALSE(fs::exists(fs::path(dest_) / ".git"));
}

TEST_F(GitCheckoutTest, GitArchiveTarballsUnpackLikeGitHubs) {
  // `git archive` is how GitHub makes its tarballs: a pax global header, then "repo-main/...".
  std::string archive = tmp_ / "repo.tgz";
  auto r = RunProcess({"git", "-C", repo_, "archive", "--format=tar.gz", "--prefix=repo-main/",
                       "-o", archive, "HEAD"},
                      30s);
  ASSERT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->output : r.status().ToString());
  Status s = ExtractArchive(archive, dest_, {});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ReadFile(fs::path(dest_) / "README"), "v2");
  EXPECT_FALSE(fs::exists(fs::path(dest_) / "repo-main"));
}

TEST_F(GitCheckoutTest, MissingRefs) {
  std::string commit;
  for (const std::string ref :
       {"no-such-branch", "deadbeef", "0123456789abcdef0123456789abcdef01234567"}) {
    SCOPED_TRACE(ref);
    Status s = Checkout(repo_, ref, &commit);
    EXPECT_EQ(s.error_code(), "GIT_REF_NOT_FOUND") << s.ToString();
    EXPECT_TRUE(s.Is(Code::kNotFound));
    EXPECT_NE(s.message().find(ref), std::string::npos) << s.message();
    EXPECT_FALSE(fs::exists(dest_));
  }
}

TEST_F(GitCheckoutTest, MissingRepositories) {
  std::string commit;
  fs::create_directories(tmp_ / "not-a-repo");
  for (const std::string& repo :
       std::vector<std::string>{tmp_ / "nope", tmp_ / "not-a-repo", "file://" + tmp_ / "nope"}) {
    SCOPED_TRACE(repo);
    Status s = Checkout(repo, "", &commit);
    EXPECT_EQ(s.error_code(), "GIT_REPO_NOT_FOUND") << s.ToString();
    EXPECT_TRUE(s.Is(Code::kNotFound));
    EXPECT_FALSE(fs::exists(dest_));
  }
}

TEST_F(GitCheckoutTest, RefusesOptionsAndRemoteHelpers) {
  std::string commit;
  std::string pwned = tmp_ / "pwned";
  for (const std::string& repo : std::vector<std::string>{"--upload-pack=touch " + pwned, "-u",
                                                          "ext::sh -c touch% " + pwned, ""}) {
    SCOPED_TRACE(repo);
    Status s = Checkout(repo, "", &commit);
    EXPECT_EQ(s.error_code(), "SOURCE_URL_INVALID") << s.ToString();
  }
  Status s = Checkout(repo_, "--upload-pack=touch " + pwned, &commit);
  EXPECT_EQ(s.error_code(), "GIT_REF_NOT_FOUND") << s.ToString();
  EXPECT_FALSE(fs::exists(pwned));
  EXPECT_FALSE(fs::exists(dest_));
}

TEST_F(GitCheckoutTest, CredentialsStayOutOfTheLog) {
  std::string commit;
  // Nothing listens on port 9: the clone fails fast.
  Status s = Checkout("http://user:s3cret@127.0.0.1:9/x.git", "", &commit);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.message().find("s3cret"), std::string::npos) << s.message();
  for (const std::string& line : log_) {
    EXPECT_EQ(line.find("s3cret"), std::string::npos) << line;
  }
}

// ---------------------------------------------------------------------------------------------
// FetchUrl

// A tiny HTTP/1.1 server on 127.0.0.1 (port 0) with canned answers, one thread per connection.
class TestHttpServer {
 public:
  explicit TestHttpServer(std::string payload) : payload_(std::move(payload)) {
    listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(::bind(listener_, reinterpret_cast<sockaddr*>(&addr), len), 0);
    EXPECT_EQ(::listen(listener_, 16), 0);
    EXPECT_EQ(::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~TestHttpServer() { Stop(); }

  // Stops accepting and waits for every connection to end.
  void Stop() {
    if (stopped_.exchange(true)) {
      return;
    }
    ::shutdown(listener_, SHUT_RDWR);  // wakes accept()
    accept_thread_.join();
    for (auto& t : connections_) {
      t.join();
    }
    ::close(listener_);
  }
  std::string Url(std::string_view path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + std::string(path);
  }
  int64_t endless_sent() const { return endless_sent_; }

 private:
  void AcceptLoop() {
    while (true) {
      int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR) {
          continue;
        }
        return;
      }
      connections_.emplace_back([this, fd] {
        Serve(fd);
        ::close(fd);
      });
    }
  }

  static bool Send(int fd, std::string_view data) {
    while (!data.empty()) {
      ssize_t n = ::send(fd, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) {
        return false;
      }
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  static std::string Redirect(std::string_view location) {
    return "HTTP/1.1 302 Found\r\nLocation: " + std::string(location) +
           "\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
  }

  void Serve(int fd) {
    std::string request;
    char buf[4096];
    while (request.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
      if (n <= 0) {
        return;
      }
      request.append(buf, static_cast<size_t>(n));
    }
    size_t start = request.find(' ') + 1;
    std::string path = request.substr(start, request.find(' ', start) - start);
    path = path.substr(0, path.find('?'));
    if (path == "/app.tgz") {
      Send(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(payload_.size()) +
                   "\r\nConnection: close\r\n\r\n" + payload_);
    } else if (path == "/redirect") {
      Send(fd, Redirect("/app.tgz"));
    } else if (path == "/loop") {
      Send(fd, Redirect("/loop"));
    } else if (path == "/ftp") {
      Send(fd, Redirect("ftp://127.0.0.1/app.tgz"));
    } else if (path == "/endless") {
      // No Content-Length: the client can only tell the size by counting.
      Send(fd, "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n");
      std::string chunk(64 * 1024, '\0');
      while (endless_sent_ < (int64_t{1} << 30) && Send(fd, chunk)) {
        endless_sent_ += static_cast<int64_t>(chunk.size());
      }
    } else if (path == "/slow") {
      // Never answers; waits for the client to give up.
      while (!stopped_) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) > 0 && ::recv(fd, buf, sizeof(buf), 0) <= 0) {
          return;
        }
      }
    } else {
      Send(fd, "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    }
  }

  std::string payload_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stopped_{false};
  std::atomic<int64_t> endless_sent_{0};
  std::thread accept_thread_;
  std::vector<std::thread> connections_;  // touched by the accept thread, then by Stop()
};

class FetchUrlTest : public ::testing::Test {
 protected:
  Status Fetch(const std::string& url, int64_t max_bytes = 1 << 20, int64_t timeout_ms = 10000) {
    return FetchUrl(url, file_, max_bytes, timeout_ms,
                    [this](std::string_view line) { log_.emplace_back(line); });
  }

  TempDir tmp_;
  std::string file_ = tmp_ / "download.tgz";
  std::vector<std::string> log_;
};

TEST_F(FetchUrlTest, DownloadsAndFollowsRedirects) {
  TestHttpServer server("the tarball bytes");
  Status s = Fetch(server.Url("/app.tgz"));
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ReadFile(file_), "the tarball bytes");
  ASSERT_EQ(log_.size(), 2u);
  EXPECT_EQ(log_[0], "fetching " + server.Url("/app.tgz"));
  EXPECT_EQ(log_[1], "fetched 17 bytes (HTTP 200)");

  fs::remove(file_);
  ASSERT_TRUE(Fetch(server.Url("/redirect")).ok());
  EXPECT_EQ(ReadFile(file_), "the tarball bytes");
}

TEST_F(FetchUrlTest, HttpErrorsAndRedirectLoops) {
  TestHttpServer server("x");
  Status s = Fetch(server.Url("/missing"));
  EXPECT_EQ(s.error_code(), "SOURCE_FETCH_FAILED") << s.ToString();
  EXPECT_NE(s.message().find("HTTP 404"), std::string::npos) << s.message();
  EXPECT_FALSE(fs::exists(file_));

  s = Fetch(server.Url("/loop"));
  EXPECT_EQ(s.error_code(), "SOURCE_FETCH_FAILED") << s.ToString();
  EXPECT_NE(s.message().find("redirects"), std::string::npos) << s.message();

  s = Fetch(server.Url("/ftp"));
  EXPECT_EQ(s.error_code(), "SOURCE_URL_INVALID") << s.ToString();
  EXPECT_FALSE(fs::exists(file_));
}

TEST_F(FetchUrlTest, StopsAtTheSizeCap) {
  TestHttpServer server(std::string(2 << 20, 'z'));
  Status s = Fetch(server.Url("/app.tgz"));  // Content-Length says 2 MiB: refused up front
  EXPECT_EQ(s.error_code(), "ARCHIVE_TOO_LARGE") << s.ToString();
  EXPECT_TRUE(s.Is(Code::kPayloadTooLarge));
  EXPECT_FALSE(fs::exists(file_));

  s = Fetch(server.Url("/endless"));  // no length: stopped while counting
  EXPECT_EQ(s.error_code(), "ARCHIVE_TOO_LARGE") << s.ToString();
  EXPECT_FALSE(fs::exists(file_));
  server.Stop();
  // The server would send 1 GiB; the client hung up after 1 MiB (plus socket buffers).
  EXPECT_LT(server.endless_sent(), int64_t{100} << 20);
}

TEST_F(FetchUrlTest, TimesOut) {
  TestHttpServer server("x");
  auto start = std::chrono::steady_clock::now();
  Status s = Fetch(server.Url("/slow"), 1 << 20, 300);
  EXPECT_EQ(s.error_code(), "SOURCE_FETCH_FAILED") << s.ToString();
  EXPECT_NE(s.message().find("timed out"), std::string::npos) << s.message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
}

TEST_F(FetchUrlTest, RefusesOtherSchemesAndGarbage) {
  for (const std::string url :
       {"ftp://127.0.0.1/app.tgz", "file:///etc/passwd", "not a url", "", "gopher://x/"}) {
    SCOPED_TRACE(url);
    Status s = Fetch(url);
    EXPECT_EQ(s.error_code(), "SOURCE_URL_INVALID") << s.ToString();
    EXPECT_TRUE(s.Is(Code::kInvalidArgument));
  }
  EXPECT_FALSE(fs::exists(file_));
}

TEST_F(FetchUrlTest, ConnectionRefused) {
  // A port that was free a moment ago.
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&addr), len), 0);
  ASSERT_EQ(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len), 0);
  ::close(fd);
  Status s = Fetch("http://127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) + "/app.tgz");
  EXPECT_EQ(s.error_code(), "SOURCE_FETCH_FAILED") << s.ToString();
}

TEST_F(FetchUrlTest, CredentialsAndQueryStayOutOfTheLog) {
  TestHttpServer server("abc");
  std::string url = server.Url("/app.tgz?token=t0ken");
  url.insert(std::string("http://").size(), "user:s3cret@");
  ASSERT_TRUE(Fetch(url).ok());
  for (const std::string& line : log_) {
    EXPECT_EQ(line.find("s3cret"), std::string::npos) << line;
    EXPECT_EQ(line.find("t0ken"), std::string::npos) << line;
  }
}

}  // namespace
}  // namespace kiln::service
