#include <archive.h>
#include <archive_entry.h>
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>
#include <clocale>

#include <filesystem>
#include <fstream>
#include <map>

#include "cli/internal.h"

namespace kiln::cli {
namespace {

namespace fs = std::filesystem;

TEST(IgnoreRules, NameWithoutSlashMatchesAtAnyDepth) {
  IgnoreRules rules;
  rules.Add("", "*.log\n");
  EXPECT_TRUE(rules.Ignored("debug.log", false));
  EXPECT_TRUE(rules.Ignored("a/b/debug.log", false));
  EXPECT_TRUE(rules.Ignored("logs.log", true));
  EXPECT_FALSE(rules.Ignored("debug.logx", false));
  EXPECT_FALSE(rules.Ignored("debug.log/x", false));  // under it: the walk never asks
}

TEST(IgnoreRules, CommentsBlankLinesAndEscapes) {
  IgnoreRules rules;
  rules.Add("", "# a comment\n\n   \n\\#hash\n\\!bang\nspace\\ \r\n");
  EXPECT_FALSE(rules.Ignored("# a comment", false));
  EXPECT_TRUE(rules.Ignored("#hash", false));
  EXPECT_TRUE(rules.Ignored("!bang", false));
  EXPECT_TRUE(rules.Ignored("space ", false));
  EXPECT_FALSE(rules.Ignored("space", false));
}

TEST(IgnoreRules, NegationLastMatchWins) {
  IgnoreRules rules;
  rules.Add("", "*.log\n!keep.log\n");
  EXPECT_TRUE(rules.Ignored("a.log", false));
  EXPECT_FALSE(rules.Ignored("keep.log", false));
  EXPECT_FALSE(rules.Ignored("sub/keep.log", false));

  IgnoreRules reordered;
  reordered.Add("", "!keep.log\n*.log\n");
  EXPECT_TRUE(reordered.Ignored("keep.log", false));
}

TEST(IgnoreRules, LeadingOrMiddleSlashAnchors) {
  IgnoreRules rules;
  rules.Add("", "/build\ndoc/*.txt\n");
  EXPECT_TRUE(rules.Ignored("build", true));
  EXPECT_TRUE(rules.Ignored("build", false));
  EXPECT_FALSE(rules.Ignored("src/build", true));
  EXPECT_TRUE(rules.Ignored("doc/a.txt", false));
  EXPECT_FALSE(rules.Ignored("doc/x/a.txt", false));  // `*` does not cross a '/'
  EXPECT_FALSE(rules.Ignored("src/doc/a.txt", false));
}

TEST(IgnoreRules, TrailingSlashMatchesDirectoriesOnly) {
  IgnoreRules rules;
  rules.Add("", "out/\n/dist/\n");
  EXPECT_TRUE(rules.Ignored("out", true));
  EXPECT_TRUE(rules.Ignored("src/out", true));
  EXPECT_FALSE(rules.Ignored("out", false));
  EXPECT_TRUE(rules.Ignored("dist", true));
  EXPECT_FALSE(rules.Ignored("web/dist", true));
}

TEST(IgnoreRules, DoubleStar) {
  IgnoreRules rules;
  rules.Add("", "**/cache\na/**/b\nlogs/**\n");
  EXPECT_TRUE(rules.Ignored("cache", true));
  EXPECT_TRUE(rules.Ignored("x/y/cache", false));
  EXPECT_TRUE(rules.Ignored("a/b", false));
  EXPECT_TRUE(rules.Ignored("a/x/b", false));
  EXPECT_TRUE(rules.Ignored("a/x/y/b", true));
  EXPECT_FALSE(rules.Ignored("z/a/x/b", false));
  EXPECT_TRUE(rules.Ignored("logs/today", false));
  EXPECT_TRUE(rules.Ignored("logs/2026/today", false));
  EXPECT_FALSE(rules.Ignored("logs", false));  // what is inside, not logs itself
}

TEST(IgnoreRules, WildcardsAndClasses) {
  IgnoreRules rules;
  rules.Add("", "file?.txt\n[abc].md\n.env*\n");
  EXPECT_TRUE(rules.Ignored("file1.txt", false));
  EXPECT_FALSE(rules.Ignored("file10.txt", false));
  EXPECT_TRUE(rules.Ignored("b.md", false));
  EXPECT_FALSE(rules.Ignored("d.md", false));
  EXPECT_TRUE(rules.Ignored(".env", false));  // `*` matches a leading dot, as in git
  EXPECT_TRUE(rules.Ignored("api/.env.local", false));
}

TEST(IgnoreRules, NestedFileAppliesBelowItsDirectory) {
  IgnoreRules rules;
  rules.Add("", "*.txt\n");
  rules.Add("sub", "*.tmp\n/only\n!keep.txt\n");
  EXPECT_TRUE(rules.Ignored("sub/x.tmp", false));
  EXPECT_TRUE(rules.Ignored("sub/deeper/x.tmp", false));
  EXPECT_FALSE(rules.Ignored("x.tmp", false));
  EXPECT_FALSE(rules.Ignored("other/x.tmp", false));
  EXPECT_FALSE(rules.Ignored("subway/x.tmp", false));
  EXPECT_TRUE(rules.Ignored("sub/only", false));  // anchored to sub/
  EXPECT_FALSE(rules.Ignored("sub/a/only", false));
  EXPECT_FALSE(rules.Ignored("only", false));
  EXPECT_FALSE(rules.Ignored("sub/keep.txt", false));  // the deeper file wins
  EXPECT_TRUE(rules.Ignored("keep.txt", false));
  EXPECT_TRUE(rules.Ignored("sub/other.txt", false));
}

TEST(AppNameFromDir, SanitizesToALabel) {
  EXPECT_EQ(AppNameFromDir("/tmp/My App_2"), "my-app-2");
  EXPECT_EQ(AppNameFromDir("/tmp/hello/"), "hello");
  EXPECT_EQ(AppNameFromDir("/tmp/2048"), "app-2048");
  EXPECT_EQ(AppNameFromDir("/tmp/--Web--"), "web");
  EXPECT_EQ(AppNameFromDir("/tmp/___"), "app");
  EXPECT_EQ(AppNameFromDir("/tmp/" + std::string(60, 'a')).size(), 40u);
}

class PackTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/kiln-pack-test-XXXXXX";
    ASSERT_NE(::mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    dir_ = root_ / "app";
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(root_); }

  void Write(const std::string& rel, const std::string& content) {
    fs::path p = dir_ / rel;
    fs::create_directories(p.parent_path());
    std::ofstream(p, std::ios::binary) << content;
  }

  struct Entry {
    mode_t type = 0;
    mode_t perm = 0;
    std::string content;
    std::string link;
  };
  // The archive's entries by path, read back with libarchive.
  static std::map<std::string, Entry> Read(const std::string& archive) {
    std::map<std::string, Entry> out;
    struct archive* a = archive_read_new();
    archive_read_support_filter_all(a);
    archive_read_support_format_all(a);
    EXPECT_EQ(archive_read_open_memory(a, archive.data(), archive.size()), ARCHIVE_OK);
    struct archive_entry* e = nullptr;
    while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
      Entry entry;
      entry.type = archive_entry_filetype(e);
      entry.perm = archive_entry_perm(e);
      if (entry.type == AE_IFLNK) {
        entry.link = archive_entry_symlink(e);
      }
      char buf[4096];
      la_ssize_t n;
      while ((n = archive_read_data(a, buf, sizeof(buf))) > 0) {
        entry.content.append(buf, static_cast<size_t>(n));
      }
      std::string path = archive_entry_pathname(e);
      while (!path.empty() && path.back() == '/') {
        path.pop_back();
      }
      out[path] = entry;
    }
    archive_read_free(a);
    return out;
  }

  fs::path root_, dir_;
};

TEST_F(PackTest, RoundTripLeavesOutGitIgnoredAndOutsideLinks) {
  Write("server.js", "console.log('hi')\n");
  Write("bin/run", "#!/bin/sh\necho run\n");
  fs::permissions(dir_ / "bin/run", fs::perms(0755));
  Write(".git/config", "[core]\n");
  Write(".gitignore", "*.log\nbuild/\n");
  Write(".kilnignore", "secret.txt\n!important.log\n");
  Write("debug.log", "noise");
  Write("important.log", "kept by .kilnignore");
  Write("build/out.js", "generated");
  Write("secret.txt", "s3cret");
  Write("lib/.gitignore", "local.json\n");
  Write("lib/index.js", "module.exports = 1;\n");
  Write("lib/local.json", "{}");
  Write("lib/.git", "gitdir: ../.git/modules/lib\n");  // a submodule's .git file
  fs::create_directories(dir_ / "empty");
  fs::create_symlink("server.js", dir_ / "link-in");
  fs::create_symlink("../../outside", dir_ / "lib/link-up");
  fs::create_symlink("/etc/passwd", dir_ / "link-abs");

  auto pack = PackDirectory(dir_.string());
  ASSERT_TRUE(pack.ok()) << pack.status().ToString();
  auto entries = Read(pack->archive);

  std::vector<std::string> names;
  for (const auto& [name, e] : entries) {
    names.push_back(name);
  }
  EXPECT_EQ(names, (std::vector<std::string>{".", ".gitignore", ".kilnignore", "bin", "bin/run",
                                             "empty", "important.log", "lib", "lib/.gitignore",
                                             "lib/index.js", "link-in", "server.js"}));
  EXPECT_EQ(entries["."].type, static_cast<mode_t>(AE_IFDIR));
  EXPECT_EQ(entries["server.js"].content, "console.log('hi')\n");
  EXPECT_EQ(entries["server.js"].type, static_cast<mode_t>(AE_IFREG));
  EXPECT_EQ(entries["bin/run"].perm, 0755u);
  EXPECT_EQ(entries["bin/run"].content, "#!/bin/sh\necho run\n");
  EXPECT_EQ(entries["lib"].type, static_cast<mode_t>(AE_IFDIR));
  EXPECT_EQ(entries["empty"].type, static_cast<mode_t>(AE_IFDIR));
  EXPECT_EQ(entries["link-in"].type, static_cast<mode_t>(AE_IFLNK));
  EXPECT_EQ(entries["link-in"].link, "server.js");

  EXPECT_EQ(pack->files, 7);  // .gitignore, .kilnignore, bin/run, important.log, lib/2, server.js
  ASSERT_EQ(pack->warnings.size(), 2u);
  std::string warnings = pack->warnings[0] + "\n" + pack->warnings[1];
  EXPECT_NE(warnings.find("lib/link-up"), std::string::npos) << warnings;
  EXPECT_NE(warnings.find("link-abs"), std::string::npos) << warnings;
}

TEST_F(PackTest, NamesThatAreNotAsciiInTheCLocale) {
  std::setlocale(LC_ALL, "C");  // as in scripts and CI: no UTF-8 locale to translate with
  Write("caf\xc3\xa9/\xc3\xbc.txt", "umlaut");
  auto pack = PackDirectory(dir_.string());
  ASSERT_TRUE(pack.ok()) << pack.status().ToString();
  auto entries = Read(pack->archive);
  EXPECT_EQ(entries["caf\xc3\xa9/\xc3\xbc.txt"].content, "umlaut");
}

TEST_F(PackTest, SameFilesSameArchiveOrder) {
  Write("b.txt", "b");
  Write("a.txt", "a");
  Write("c/d.txt", "d");
  auto pack = PackDirectory(dir_.string());
  ASSERT_TRUE(pack.ok());
  struct archive* a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_all(a);
  ASSERT_EQ(archive_read_open_memory(a, pack->archive.data(), pack->archive.size()), ARCHIVE_OK);
  std::vector<std::string> order;
  struct archive_entry* e = nullptr;
  while (archive_read_next_header(a, &e) == ARCHIVE_OK) {
    order.emplace_back(archive_entry_pathname(e));
  }
  EXPECT_EQ(archive_filter_code(a, 0), ARCHIVE_FILTER_GZIP);
  archive_read_free(a);
  // "./" first, so that the server does not unwrap a lone top-level directory.
  EXPECT_EQ(order, (std::vector<std::string>{"./", "a.txt", "b.txt", "c/", "c/d.txt"}));
}

TEST_F(PackTest, RefusesMoreThanTheLimit) {
  Write("big/blob.bin", std::string(4096, 'x'));
  Write("small.txt", "x");
  auto pack = PackDirectory(dir_.string(), PackOptions{.max_bytes = 1024});
  ASSERT_FALSE(pack.ok());
  EXPECT_EQ(pack.status().error_code(), "SOURCE_TOO_LARGE");
  EXPECT_NE(pack.status().hint().find("big 4.0 KiB"), std::string::npos) << pack.status().hint();

  Write(".kilnignore", "big/\n");
  EXPECT_TRUE(PackDirectory(dir_.string(), PackOptions{.max_bytes = 1024}).ok());
}

TEST_F(PackTest, EmptyOrMissingDirectoryIsAnError) {
  Write(".kilnignore", "*\n");
  auto empty = PackDirectory(dir_.string());
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().error_code(), "SOURCE_EMPTY");

  auto missing = PackDirectory((root_ / "nope").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().error_code(), "SOURCE_NOT_FOUND");
}

}  // namespace
}  // namespace kiln::cli
