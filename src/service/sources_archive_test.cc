#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/process.h"
#include "service/sources.h"
#include "service/sources_test_util.h"

namespace kiln::service {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using testing::Mode;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

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

}  // namespace
}  // namespace kiln::service
