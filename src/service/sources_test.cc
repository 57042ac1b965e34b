#include "service/sources.h"

#include <archive.h>
#include <archive_entry.h>
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "core/process.h"

namespace kiln::service {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// The starters beside the sources: src/service/sources_test.cc -> examples/.
const fs::path kExamples =
    fs::path(__FILE__).parent_path().parent_path().parent_path() / "examples";

class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/kiln-sources-test.XXXXXX";
    path_ = ::mkdtemp(tmpl);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string operator/(std::string_view name) const { return path_ + "/" + std::string(name); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

void WriteFile(const fs::path& path, std::string_view content) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

mode_t Mode(const fs::path& path) {
  struct stat st {};
  EXPECT_EQ(::lstat(path.c_str(), &st), 0) << path;
  return st.st_mode & 07777;
}

// Builds tar archives entry by entry with libarchive's writer, which (unlike tar) writes any
// name it is given: "../x", "/abs", devices.
class TarWriter {
 public:
  explicit TarWriter(const std::string& path, bool gzip = true) : a_(archive_write_new()) {
    if (gzip) {
      archive_write_add_filter_gzip(a_);
    }
    archive_write_set_format_pax_restricted(a_);
    EXPECT_EQ(archive_write_open_filename(a_, path.c_str()), ARCHIVE_OK);
  }
  ~TarWriter() { Close(); }

  TarWriter& File(const std::string& name, std::string_view content, mode_t mode = 0644) {
    Header(name, AE_IFREG, mode, static_cast<int64_t>(content.size()), nullptr, nullptr);
    archive_write_data(a_, content.data(), content.size());
    return *this;
  }
  TarWriter& Zeros(const std::string& name, int64_t size) {
    Header(name, AE_IFREG, 0644, size, nullptr, nullptr);
    std::string chunk(64 * 1024, '\0');
    for (int64_t left = size; left > 0;) {
      size_t n = static_cast<size_t>(std::min<int64_t>(left, static_cast<int64_t>(chunk.size())));
      archive_write_data(a_, chunk.data(), n);
      left -= static_cast<int64_t>(n);
    }
    return *this;
  }
  TarWriter& Dir(const std::string& name, mode_t mode = 0755) {
    Header(name, AE_IFDIR, mode, 0, nullptr, nullptr);
    return *this;
  }
  TarWriter& Symlink(const std::string& name, const std::string& target) {
    Header(name, AE_IFLNK, 0777, 0, target.c_str(), nullptr);
    return *this;
  }
  TarWriter& Hardlink(const std::string& name, const std::string& target) {
    Header(name, AE_IFREG, 0644, 0, nullptr, target.c_str());
    return *this;
  }
  TarWriter& Special(const std::string& name, mode_t type) {
    Header(name, type, 0644, 0, nullptr, nullptr);
    return *this;
  }
  void Close() {
    if (a_ != nullptr) {
      archive_write_close(a_);
      archive_write_free(a_);
      a_ = nullptr;
    }
  }

 private:
  void Header(const std::string& name, mode_t type, mode_t mode, int64_t size, const char* symlink,
              const char* hardlink) {
    archive_entry* e = archive_entry_new();
    archive_entry_set_pathname(e, name.c_str());
    archive_entry_set_filetype(e, type);
    archive_entry_set_perm(e, mode);
    archive_entry_set_size(e, size);
    if (symlink != nullptr) {
      archive_entry_set_symlink(e, symlink);
    }
    if (hardlink != nullptr) {
      archive_entry_set_hardlink(e, hardlink);
    }
    if (type == AE_IFCHR) {
      archive_entry_set_rdev(e, makedev(1, 3));
    }
    EXPECT_EQ(archive_write_header(a_, e), ARCHIVE_OK) << archive_error_string(a_);
    archive_entry_free(e);
  }

  archive* a_;
};

// ---------------------------------------------------------------------------------------------
// ExtractArchive

class ExtractArchiveTest : public ::testing::Test {
 protected:
  TempDir tmp_;
  std::string archive_ = tmp_ / "app.tgz";
  std::string dest_ = tmp_ / "dest";

  // Extracts archive_ into dest_ and expects it refused as unsafe, naming `entry`, with
  // dest_ removed again.
  void ExpectUnsafe(const std::string& entry) {
    Status s = ExtractArchive(archive_, dest_, {});
    EXPECT_EQ(s.error_code(), "ARCHIVE_UNSAFE") << s.ToString();
    EXPECT_TRUE(s.Is(Code::kInvalidArgument));
    EXPECT_NE(s.message().find("\"" + entry + "\""), std::string::npos) << s.message();
    EXPECT_FALSE(fs::exists(fs::symlink_status(dest_)));
  }
};

TEST_F(ExtractArchiveTest, KeepsFilesDirectoriesLinksAndModes) {
  TarWriter(archive_)
      .File("server.js", "console.log(1)", 04755)  // setuid: dropped
      .Dir("lib", 0750)
      .File("lib/a.js", "module.exports = 1")
      .Symlink("lib/link", "../server.js")
      .Hardlink("lib/hard.js", "lib/a.js")
      .File("deep/er/x.txt", "no directory entries before it", 0600)
      .File("dup.txt", "one")
      .File("dup.txt", "two")
      .Dir("sticky", 01777)
      .Close();
  ASSERT_TRUE(ExtractArchive(archive_, dest_, {}).ok());
  fs::path d = dest_;
  EXPECT_EQ(ReadFile(d / "server.js"), "console.log(1)");
  EXPECT_EQ(Mode(d / "server.js"), 0755u);
  EXPECT_EQ(Mode(d / "lib"), 0750u);
  EXPECT_EQ(fs::read_symlink(d / "lib/link"), "../server.js");
  EXPECT_EQ(ReadFile(d / "lib/link"), "console.log(1)");
  EXPECT_EQ(ReadFile(d / "lib/hard.js"), "module.exports = 1");
  EXPECT_EQ(fs::hard_link_count(d / "lib/a.js"), 2u);
  EXPECT_EQ(ReadFile(d / "deep/er/x.txt"), "no directory entries before it");
  EXPECT_EQ(Mode(d / "deep/er/x.txt"), 0600u);
  EXPECT_EQ(Mode(d / "deep"), 0755u);
  EXPECT_EQ(ReadFile(d / "dup.txt"), "two");
  EXPECT_EQ(Mode(d / "sticky"), 0777u);
  EXPECT_EQ(DirectorySize(dest_), 14 + 18 + 18 + 30 + 3);  // the hard link counts twice
}

TEST_F(ExtractArchiveTest, ASingleTopLevelDirectoryBecomesTheRoot) {
  // As GitHub serves tarballs: everything under "repo-main/".
  TarWriter(archive_)
      .Dir("repo-main")
      .File("repo-main/package.json", "{}")
      .File("repo-main/src/index.js", "x")
      .Symlink("repo-main/main.js", "src/index.js")
      .Close();
  ASSERT_TRUE(ExtractArchive(archive_, dest_, {}).ok());
  EXPECT_EQ(ReadFile(fs::path(dest_) / "package.json"), "{}");
  EXPECT_EQ(ReadFile(fs::path(dest_) / "main.js"), "x");
  EXPECT_FALSE(fs::exists(fs::path(dest_) / "repo-main"));
  EXPECT_FALSE(fs::exists(dest_ + ".kiln-top"));
}

TEST_F(ExtractArchiveTest, RealTarOutputWithAndWithoutTheDotRoot) {
  // `tar czf app.tgz -C DIR .` names the root "./": a lone folder in it stays a folder.
  WriteFile(tmp_ / "site/public/index.html", "<h1>hi</h1>");
  auto r = RunProcess({"tar", "czf", archive_, "-C", tmp_ / "site", "."}, 30s);
  ASSERT_TRUE(r.ok() && r->exit_code == 0) << (r.ok() ? r->output : r.status().ToString());
  ASSERT_TRUE(ExtractArchive(archive_, dest_, {}).ok());
  EXPECT_EQ(ReadFile(fs::path(dest_) / "public/index.html"), "<h1>hi</h1>");

  // `tar czf app.tgz -C PARENT site`: the folder itself is the app.
  std::string dest2 = tmp_ / "dest2";
  r = RunProcess({"tar", "czf", archive_, "-C", tmp_.path(), "site"}, 30s);
  ASSERT_TRUE(r.ok() && r->exit_code == 0);
  ASSERT_TRUE(ExtractArchive(archive_, dest2, {}).ok());
  EXPECT_EQ(ReadFile(fs::path(dest2) / "public/index.html"), "<h1>hi</h1>");
}

TEST_F(ExtractArchiveTest, PlainTarIsAccepted) {
  TarWriter(archive_, /*gzip=*/false).File("a.txt", "plain").Close();
  ASSERT_TRUE(ExtractArchive(archive_, dest_, {}).ok());
  EXPECT_EQ(ReadFile(fs::path(dest_) / "a.txt"), "plain");
}

TEST_F(ExtractArchiveTest, RefusesDotDotAndAbsolutePaths) {
  for (const std::string name : {"../evil.txt", "a/../../evil.txt", "/tmp/evil.txt", "a/.."}) {
    SCOPED_TRACE(name);
    TarWriter(archive_).File("ok.txt", "fine").File(name, "evil").Close();
    ExpectUnsafe(name);
    EXPECT_FALSE(fs::exists(tmp_ / "evil.txt"));
  }
}

TEST_F(ExtractArchiveTest, RefusesLinksLeadingOut) {
  WriteFile(tmp_ / "secret", "do not read");
  const std::vector<std::pair<std::string, std::string>> links = {
      {"abs", "/etc/passwd"},
      {"up", "../secret"},
      {"sub/up", "../../secret"},
      {"empty", ""},
  };
  for (const auto& [name, target] : links) {
    SCOPED_TRACE(name);
    TarWriter(archive_).Dir("sub").Symlink(name, target).Close();
    ExpectUnsafe(name);
  }
  // Each link stays inside, but "b" resolves through "a" (the root) to the root's parent.
  TarWriter(archive_).Symlink("a", ".").Symlink("b", "a/..").Close();
  ExpectUnsafe("b");
  // Inside the single top-level directory, "top/up" reaches the archive's root: once "top"
  // becomes the root, that is outside.
  TarWriter(archive_).Dir("top").File("top/f", "x").Symlink("top/up", "../secret").Close();
  ExpectUnsafe("top/up");
  // The same link is fine when the archive has two top-level entries.
  TarWriter(archive_).Dir("top").Symlink("top/up", "../other").File("other", "x").Close();
  EXPECT_TRUE(ExtractArchive(archive_, dest_, {}).ok());
}

TEST_F(ExtractArchiveTest, NeverWritesThroughASymlink) {
  // A link that stays inside, then a file "through" it: refused rather than followed.
  fs::create_directory(tmp_ / "outside");
  TarWriter(archive_).Dir("sub").Symlink("l", "sub").File("l/evil.txt", "x").Close();
  ExpectUnsafe("l/evil.txt");
  // A file entry replacing a link replaces the link, not what it points at.
  TarWriter(archive_)
      .File("target.txt", "keep")
      .Symlink("l", "target.txt")
      .File("l", "new")
      .Close();
  ASSERT_TRUE(ExtractArchive(archive_, dest_, {}).ok());
  EXPECT_EQ(ReadFile(fs::path(dest_) / "target.txt"), "keep");
  EXPECT_EQ(ReadFile(fs::path(dest_) / "l"), "new");
  EXPECT_FALSE(fs::is_symlink(fs::path(dest_) / "l"));
}

TEST_F(ExtractArchiveTest, RefusesHardLinksLeadingOutAndSpecialFiles) {
  for (const std::string target : {"/etc/passwd", "../secret", "not-in-archive"}) {
    SCOPED_TRACE(target);
    TarWriter(archive_).File("ok", "x").Hardlink("h", target).Close();
    ExpectUnsafe("h");
  }
  TarWriter(archive_).Dir("d").Hardlink("h", "d").Close();  // a hard link to a directory
  ExpectUnsafe("h");
  TarWriter(archive_).File("ok", "x").Special("fifo", AE_IFIFO).Close();
  ExpectUnsafe("fifo");
  TarWriter(archive_).File("ok", "x").Special("null", AE_IFCHR).Close();
  ExpectUnsafe("null");
}

TEST_F(ExtractArchiveTest, StopsABombEarly) {
  // 256 MiB of zeros compress to about 256 KiB; the cap is 1 MiB.
  TarWriter(archive_).File("small", "x").Zeros("zeros", int64_t{256} << 20).Close();
  EXPECT_LT(fs::file_size(archive_), 1u << 20);
  ExtractLimits limits;
  limits.max_bytes = 1 << 20;
  auto start = std::chrono::steady_clock::now();
  Status s = ExtractArchive(archive_, dest_, limits);
  EXPECT_EQ(s.error_code(), "ARCHIVE_TOO_LARGE") << s.ToString();
  EXPECT_TRUE(s.Is(Code::kPayloadTooLarge));
  EXPECT_NE(s.message().find("1 MiB"), std::string::npos) << s.message();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);  // the header was enough
  EXPECT_FALSE(fs::exists(dest_));

  // Many files under the cap each, over it together.
  TarWriter w(archive_);
  for (int i = 0; i < 20; ++i) {
    w.Zeros("f" + std::to_string(i), 200 * 1024);
  }
  w.Close();
  s = ExtractArchive(archive_, dest_, limits);
  EXPECT_EQ(s.error_code(), "ARCHIVE_TOO_LARGE") << s.ToString();
  EXPECT_FALSE(fs::exists(dest_));
}

// A ustar header declaring `size` bytes, written by hand: libarchive's writer would pad the
// entry to its declared size, 2 GiB of zeros.
std::string UstarHeader(const std::string& name, int64_t size) {
  std::string h(512, '\0');
  std::memcpy(h.data(), name.data(), name.size());
  std::snprintf(&h[100], 8, "%07o", 0644);
  std::snprintf(&h[108], 8, "%07o", 0);
  std::snprintf(&h[116], 8, "%07o", 0);
  std::snprintf(&h[124], 12, "%011llo", static_cast<unsigned long long>(size));
  std::snprintf(&h[136], 12, "%011o", 0);
  std::memset(&h[148], ' ', 8);
  h[156] = '0';
  std::memcpy(&h[257], "ustar", 6);
  std::memcpy(&h[263], "00", 2);
  unsigned sum = 0;
  for (unsigned char c : h) {
    sum += c;
  }
  std::snprintf(&h[148], 8, "%06o", sum);
  h[155] = ' ';
  return h;
}

TEST_F(ExtractArchiveTest, RefusesAFileDeclaredLargerThanTheCapBeforeReadingIt) {
  // 2 GiB declared, 4 KiB present: refused from the header alone (not "damaged").
  WriteFile(archive_, UstarHeader("huge.bin", int64_t{2} << 30) + std::string(4096, 'x'));
  Status s = ExtractArchive(archive_, dest_, {});  // default cap: 1 GiB
  EXPECT_EQ(s.error_code(), "ARCHIVE_TOO_LARGE") << s.ToString();
  EXPECT_FALSE(fs::exists(dest_));
}

TEST_F(ExtractArchiveTest, CapsTheNumberOfEntries) {
  TarWriter w(archive_);
  for (int i = 0; i < 20; ++i) {
    w.File("f" + std::to_string(i), "x");
  }
  w.Close();
  ExtractLimits limits;
  limits.max_entries = 10;
  Status s = ExtractArchive(archive_, dest_, limits);
  EXPECT_EQ(s.error_code(), "ARCHIVE_TOO_MANY_ENTRIES") << s.ToString();
  EXPECT_FALSE(fs::exists(dest_));
  limits.max_entries = 20;
  EXPECT_TRUE(ExtractArchive(archive_, dest_, limits).ok());
}

TEST_F(ExtractArchiveTest, RejectsWhatIsNotATarArchive) {
  auto expect_invalid = [&](const std::string& what) {
    SCOPED_TRACE(what);
    Status s = ExtractArchive(archive_, dest_, {});
    EXPECT_EQ(s.error_code(), "ARCHIVE_INVALID") << s.ToString();
    EXPECT_NE(s.hint().find("tar czf app.tgz -C DIR ."), std::string::npos) << s.hint();
    EXPECT_FALSE(fs::exists(dest_));
  };
  WriteFile(archive_, "just some text, long enough to not be anything else at all........");
  expect_invalid("text");
  WriteFile(archive_, "");
  expect_invalid("nothing");
  WriteFile(archive_, std::string("PK\x03\x04", 4) + std::string(600, '\0'));
  expect_invalid("zip");
  auto r = RunProcess({"sh", "-c", "seq 1 100000 | gzip > " + archive_}, 30s);
  ASSERT_TRUE(r.ok() && r->exit_code == 0);
  expect_invalid("gzip of text");

  // A tarball cut in half.
  std::string random(256 * 1024, '\0');
  std::mt19937 rng(7);
  for (char& c : random) {
    c = static_cast<char>(rng());
  }
  TarWriter(archive_).File("random.bin", random).Close();
  std::string whole = ReadFile(archive_);
  WriteFile(archive_, whole.substr(0, whole.size() / 2));
  expect_invalid("truncated");
}

TEST_F(ExtractArchiveTest, AnArchiveWithoutFilesIsEmpty) {
  TarWriter(archive_).Dir("a").Dir("a/b").Close();
  Status s = ExtractArchive(archive_, dest_, {});
  EXPECT_EQ(s.error_code(), "SOURCE_EMPTY") << s.ToString();
  EXPECT_FALSE(fs::exists(dest_));
}

TEST_F(ExtractArchiveTest, LeavesAnExistingDestinationAlone) {
  WriteFile(fs::path(dest_) / "mine.txt", "keep");
  TarWriter(archive_).File("a.txt", "x").Close();
  EXPECT_FALSE(ExtractArchive(archive_, dest_, {}).ok());
  EXPECT_EQ(ReadFile(fs::path(dest_) / "mine.txt"), "keep");
}

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

// ---------------------------------------------------------------------------------------------
// Starters

TEST(StarterTest, ListsAndCopiesTheShippedExamples) {
  EXPECT_EQ(ListStarters(kExamples.string()),
            (std::vector<std::string>{"hello", "node", "python", "static"}));
  TempDir tmp;
  ASSERT_TRUE(CopyStarter(kExamples.string(), "hello", tmp / "app").ok());
  EXPECT_EQ(ReadFile(tmp / "app/server.js"), ReadFile(kExamples / "hello/server.js"));
  EXPECT_TRUE(fs::exists(tmp / "app/package.json"));
  EXPECT_EQ(ListStarters(tmp / "no-such-dir"), std::vector<std::string>{});
}

TEST(StarterTest, UnknownNames) {
  TempDir tmp;
  for (const std::string name : {"nope", "../hello", "Hello", "", "hello/"}) {
    SCOPED_TRACE(name);
    Status s = CopyStarter(kExamples.string(), name, tmp / "app");
    EXPECT_EQ(s.error_code(), "TEMPLATE_NOT_FOUND") << s.ToString();
    EXPECT_TRUE(s.Is(Code::kNotFound));
    EXPECT_NE(s.hint().find("hello, node, python, static"), std::string::npos) << s.hint();
    EXPECT_FALSE(fs::exists(tmp / "app"));
  }
}

TEST(StarterTest, CopiesLinksThatStayInsideOnly) {
  TempDir tmp;
  fs::path demo = tmp / "examples/demo";
  WriteFile(demo / "f.txt", "f");
  WriteFile(demo / "sub/g.txt", "g");
  fs::permissions(demo / "f.txt", fs::perms(0755));
  fs::create_symlink("f.txt", demo / "inside");
  fs::create_symlink("../f.txt", demo / "sub/up");
  fs::create_symlink("/etc/passwd", demo / "abs");
  fs::create_symlink("../outside", demo / "out");
  ASSERT_TRUE(CopyStarter(tmp / "examples", "demo", tmp / "app").ok());
  fs::path app = tmp / "app";
  EXPECT_EQ(ReadFile(app / "sub/g.txt"), "g");
  EXPECT_EQ(Mode(app / "f.txt"), 0755u);
  EXPECT_EQ(fs::read_symlink(app / "inside"), "f.txt");
  EXPECT_EQ(ReadFile(app / "sub/up"), "f");
  EXPECT_FALSE(fs::exists(fs::symlink_status(app / "abs")));
  EXPECT_FALSE(fs::exists(fs::symlink_status(app / "out")));
}

// ---------------------------------------------------------------------------------------------
// DetectPlan and RuntimeEnv

TEST(PlanTest, DetectsTheShippedExamples) {
  auto hello = DetectPlan((kExamples / "hello").string(), {});
  ASSERT_TRUE(hello.ok()) << hello.status().ToString();
  EXPECT_EQ(hello->runtime, "node");
  EXPECT_EQ(hello->install, "");  // no dependencies
  EXPECT_EQ(hello->start, "npm start");
  EXPECT_EQ(hello->origin["start"], "package.json scripts.start");

  auto node = DetectPlan((kExamples / "node").string(), {});
  ASSERT_TRUE(node.ok());
  EXPECT_EQ(node->runtime, "node");
  EXPECT_EQ(node->start, "npm start");

  auto stat = DetectPlan((kExamples / "static").string(), {});
  ASSERT_TRUE(stat.ok());
  EXPECT_EQ(stat->runtime, "static");
  EXPECT_EQ(stat->start, "python3 -m http.server $PORT --bind 127.0.0.1");

  auto python = DetectPlan((kExamples / "python").string(), {});
  ASSERT_TRUE(python.ok()) << python.status().ToString();
  EXPECT_EQ(python->runtime, "python");
  EXPECT_EQ(python->install, "");  // standard library only
  EXPECT_EQ(python->start, "python3 app.py");
  EXPECT_FALSE(fs::exists(kExamples / "python/requirements.txt"));
}

class DetectPlanTest : public ::testing::Test {
 protected:
  Result<BuildPlan> Detect(const std::map<std::string, std::string>& files,
                           const PlanOverrides& overrides = {}) {
    std::string dir = tmp_ / ("app" + std::to_string(++n_));
    fs::create_directories(dir);
    for (const auto& [name, content] : files) {
      WriteFile(fs::path(dir) / name, content);
    }
    return DetectPlan(dir, overrides);
  }

  TempDir tmp_;
  int n_ = 0;
};

TEST_F(DetectPlanTest, Node) {
  auto p = Detect({{"package.json", R"({"dependencies": {"express": "^4"}})"}, {"index.js", ""}});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->install, "npm install --omit=dev");
  EXPECT_EQ(p->origin["install"], "package.json dependencies");
  EXPECT_EQ(p->build, "");
  EXPECT_EQ(p->start, "node index.js");
  EXPECT_EQ(p->origin["start"], "index.js");

  p = Detect({{"package.json", R"({"dependencies": {"a": "1"}, "scripts": {"start": "x"}})"},
              {"package-lock.json", "{}"}});
  EXPECT_EQ(p->install, "npm ci --omit=dev");
  EXPECT_EQ(p->start, "npm start");

  // A build needs the devDependencies.
  p = Detect({{"package.json",
               R"({"devDependencies": {"vite": "5"}, "scripts": {"build": "vite build",
                   "start": "node dist/server.js"}})"}});
  EXPECT_EQ(p->install, "npm install");
  EXPECT_EQ(p->build, "npm run build");
  EXPECT_EQ(p->origin["build"], "package.json scripts.build");

  p = Detect({{"package.json", R"({"main": "src/my app.js"})"}});
  EXPECT_EQ(p->start, "node 'src/my app.js'");
  EXPECT_EQ(p->origin["start"], "package.json main");

  p = Detect({{"package.json", R"({"name": "lib"})"}});
  EXPECT_EQ(p.status().error_code(), "START_UNKNOWN");
  EXPECT_NE(p.status().hint().find("scripts.start"), std::string::npos);

  p = Detect({{"package.json", "{not json"}});
  EXPECT_EQ(p.status().error_code(), "PACKAGE_JSON_INVALID");
}

TEST_F(DetectPlanTest, PythonGoStaticAndProcfile) {
  auto p = Detect({{"requirements.txt", "flask\n"}, {"main.py", ""}});
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->runtime, "python");
  EXPECT_EQ(p->install, "pip install --target .kiln/python -r requirements.txt");
  EXPECT_EQ(p->start, "python3 main.py");

  p = Detect({{"pyproject.toml", ""}, {"server.py", ""}});
  EXPECT_EQ(p->install, "pip install --target .kiln/python .");
  EXPECT_EQ(p->start, "python3 server.py");

  p = Detect({{"go.mod", "module x\n"}, {"main.go", ""}});
  EXPECT_EQ(p->runtime, "go");
  EXPECT_EQ(p->build, "go build -o .kiln/app .");
  EXPECT_EQ(p->start, ".kiln/app");

  // index.html wins over a stray app.py.
  p = Detect({{"index.html", ""}, {"app.py", ""}});
  EXPECT_EQ(p->runtime, "static");

  p = Detect({{"Procfile", "# comment\nworker: python3 w.py\nweb:   gunicorn app:app  \n"},
              {"requirements.txt", "gunicorn\n"}});
  ASSERT_TRUE(p.ok()) << p.status().ToString();
  EXPECT_EQ(p->runtime, "procfile");
  EXPECT_EQ(p->start, "gunicorn app:app");
  EXPECT_EQ(p->origin["start"], "Procfile web");
  EXPECT_EQ(p->install, "pip install --target .kiln/python -r requirements.txt");
  auto env = RuntimeEnv(*p);
  EXPECT_NE(std::find(env.begin(), env.end(), "PYTHONPATH=/app/.kiln/python"), env.end());

  // A Procfile without a web line does not say how to start.
  p = Detect({{"Procfile", "worker: x\n"}});
  EXPECT_EQ(p.status().error_code(), "START_UNKNOWN");
}

TEST_F(DetectPlanTest, NothingDetectedAndOverrides) {
  auto p = Detect({{"README.md", "hi"}});
  EXPECT_EQ(p.status().error_code(), "START_UNKNOWN");
  EXPECT_TRUE(p.status().Is(Code::kInvalidArgument));
  EXPECT_NE(p.status().hint().find("Procfile"), std::string::npos);
  EXPECT_NE(p.status().hint().find("start"), std::string::npos);

  PlanOverrides o;
  o.start = "./run.sh";
  o.port = 9000;
  p = Detect({{"run.sh", "#!/bin/sh\n"}}, o);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->runtime, "custom");
  EXPECT_EQ(p->start, "./run.sh");
  EXPECT_EQ(p->port, 9000);
  EXPECT_EQ(p->origin["start"], "override");

  // "" means none for install, build and preStart; an empty start keeps the detected one.
  o = {};
  o.install = "";
  o.build = "make";
  o.pre_start = "node migrate.js";
  o.start = "";
  p = Detect({{"package.json", R"({"dependencies": {"a": "1"}, "scripts": {"start": "s"}})"}}, o);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->install, "");
  EXPECT_EQ(p->origin.count("install"), 0u);
  EXPECT_EQ(p->build, "make");
  EXPECT_EQ(p->origin["build"], "override");
  EXPECT_EQ(p->pre_start, "node migrate.js");
  EXPECT_EQ(p->start, "npm start");
  EXPECT_EQ(p->port, 0);

  TempDir empty;
  EXPECT_EQ(DetectPlan(empty.path(), {}).status().error_code(), "SOURCE_EMPTY");
}

TEST(RuntimeEnvTest, PerRuntime) {
  BuildPlan plan;
  plan.runtime = "python";
  auto env = RuntimeEnv(plan);
  EXPECT_NE(std::find(env.begin(), env.end(), "PYTHONPATH=/app/.kiln/python"), env.end());
  plan.runtime = "node";
  EXPECT_EQ(RuntimeEnv(plan), std::vector<std::string>{"NODE_ENV=production"});
  plan.runtime = "static";
  EXPECT_TRUE(RuntimeEnv(plan).empty());
  plan.runtime = "go";
  EXPECT_TRUE(RuntimeEnv(plan).empty());
}

// ---------------------------------------------------------------------------------------------
// ParseMultipart

const std::string kBinary("\x00\x01\r\n--XY\r\n-\xff", 11);

std::string GoodBody() {
  return "preamble to ignore\r\n"
         "--XyZ\r\n"
         "Content-Disposition: form-data; name=\"config\"\r\n"
         "\r\n"
         "{\"a\":1}\r\n"
         "--XyZ  \r\n"
         "content-disposition: form-data; name=\"file\"; filename=\"app \\\"1\\\".tgz\"\r\n"
         "Content-Type: application/gzip\r\n"
         "\r\n" +
         kBinary +
         "\r\n--XyZ--\r\n"
         "epilogue";
}

TEST(MultipartTest, SplitsParts) {
  std::string body = GoodBody();
  for (const char* type : {"multipart/form-data; boundary=XyZ",
                           "Multipart/Form-Data; charset=utf-8; BOUNDARY=\"XyZ\""}) {
    SCOPED_TRACE(type);
    auto parts = ParseMultipart(type, body);
    ASSERT_TRUE(parts.ok()) << parts.status().ToString();
    ASSERT_EQ(parts->size(), 2u);
    EXPECT_EQ((*parts)[0].name, "config");
    EXPECT_EQ((*parts)[0].filename, "");
    EXPECT_EQ((*parts)[0].content_type, "");
    EXPECT_EQ((*parts)[0].data, "{\"a\":1}");
    EXPECT_EQ((*parts)[1].name, "file");
    EXPECT_EQ((*parts)[1].filename, "app \"1\".tgz");
    EXPECT_EQ((*parts)[1].content_type, "application/gzip");
    EXPECT_EQ((*parts)[1].data, kBinary);
    EXPECT_GE((*parts)[1].data.data(), body.data());  // a view into the body
    EXPECT_LE((*parts)[1].data.data() + (*parts)[1].data.size(), body.data() + body.size());
  }
}

TEST(MultipartTest, EdgeCasesThatAreValid) {
  auto none = ParseMultipart("multipart/form-data; boundary=b", "--b--");
  ASSERT_TRUE(none.ok());
  EXPECT_TRUE(none->empty());

  auto ext = ParseMultipart("multipart/form-data; boundary=b",
                            "--b\r\nContent-Disposition: form-data; name=f; "
                            "filename*=UTF-8''na%C3%AFve.txt\r\n\r\n\r\n--b--");
  ASSERT_TRUE(ext.ok()) << ext.status().ToString();
  EXPECT_EQ((*ext)[0].name, "f");
  EXPECT_EQ((*ext)[0].filename, "na\xc3\xafve.txt");
  EXPECT_EQ((*ext)[0].data, "");
}

TEST(MultipartTest, Malformed) {
  const std::string type = "multipart/form-data; boundary=XyZ";
  const std::string cd = "Content-Disposition: form-data; name=\"a\"\r\n";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"application/json", GoodBody()},
      {"multipart/form-data", GoodBody()},
      {"multipart/form-data; boundary=", GoodBody()},
      {"multipart/form-data; boundary=\"XyZ", GoodBody()},
      {"multipart/form-data; boundary=" + std::string(71, 'b'), GoodBody()},
      {type, "no boundary at all"},
      {type, ""},
      {type, "--XyZ\r\n" + cd + "\r\ndata without the final boundary"},
      {type, "--XyZ\r\n" + cd + "\r\ndata\r\n--XyZ\r\n"},
      {type, "--XyZ\r\n" + cd + "no empty line after the headers"},
      {type, "--XyZ\r\nContent-Type: text/plain\r\n\r\nx\r\n--XyZ--"},
      {type, "--XyZ\r\nContent-Disposition: form-data\r\n\r\nx\r\n--XyZ--"},
      {type, "--XyZ\r\nContent-Disposition: attachment; name=a\r\n\r\nx\r\n--XyZ--"},
      {type, "--XyZ\r\nnot a header\r\n\r\nx\r\n--XyZ--"},
      {type, "--XyZjunk\r\n" + cd + "\r\nx\r\n--XyZ--"},
      {type, "--XyZ\n" + cd + "\nx\n--XyZ--"},  // bare LF
  };
  for (const auto& [content_type, body] : cases) {
    SCOPED_TRACE(content_type + " | " + body);
    auto parts = ParseMultipart(content_type, body);
    EXPECT_FALSE(parts.ok());
    EXPECT_EQ(parts.status().error_code(), "MULTIPART_INVALID");
  }
}

TEST(MultipartTest, EveryTruncationIsRefused) {
  std::string body = GoodBody();
  size_t complete = body.find("--XyZ--") + 7;
  for (size_t n = 0; n < complete; ++n) {
    auto parts = ParseMultipart("multipart/form-data; boundary=XyZ", body.substr(0, n));
    EXPECT_FALSE(parts.ok()) << n;
  }
}

TEST(MultipartTest, RandomMutationsNeverReadOutsideTheBody) {
  const std::string good = GoodBody();
  std::mt19937 rng(42);
  const std::string alphabet("-\r\n\";=:XyZ a\x00", 13);
  int accepted = 0;
  for (int i = 0; i < 5000; ++i) {
    std::string body = good;
    int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits; ++e) {
      size_t at = rng() % body.size();
      switch (rng() % 3) {
        case 0:
          body[at] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          body.erase(at, 1 + rng() % 8);
          break;
        default:
          body.insert(at, 1, alphabet[rng() % alphabet.size()]);
      }
      if (body.empty()) {
        body = "-";
      }
    }
    auto parts = ParseMultipart("multipart/form-data; boundary=XyZ", body);
    if (!parts.ok()) {
      EXPECT_EQ(parts.status().error_code(), "MULTIPART_INVALID");
      continue;
    }
    ++accepted;
    for (const FormPart& p : *parts) {
      EXPECT_FALSE(p.name.empty());
      EXPECT_GE(p.data.data(), body.data());
      EXPECT_LE(p.data.data() + p.data.size(), body.data() + body.size());
    }
  }
  // Edits in the data or the preamble leave a valid body: both paths were taken.
  EXPECT_GT(accepted, 100);
  EXPECT_LT(accepted, 4900);
}

// ---------------------------------------------------------------------------------------------
// DirectorySize

TEST(DirectorySizeTest, CountsRegularFilesWithoutFollowingLinks) {
  TempDir tmp;
  WriteFile(tmp / "d/a", std::string(100, 'a'));
  WriteFile(tmp / "d/sub/b", std::string(250, 'b'));
  WriteFile(tmp / "big", std::string(10000, 'c'));
  fs::create_symlink(tmp / "big", tmp / "d/link");
  fs::create_directory_symlink(tmp.path(), tmp / "d/sub/loop");
  EXPECT_EQ(DirectorySize(tmp / "d"), 350);
  EXPECT_EQ(DirectorySize(tmp / "missing"), 0);
}

}  // namespace
}  // namespace kiln::service
