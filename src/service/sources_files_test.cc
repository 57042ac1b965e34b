#include <gtest/gtest.h>

#include <filesystem>
#include <string>
#include <vector>

#include "core/crypto.h"
#include "service/sources.h"
#include "service/sources_test_util.h"

namespace kiln::service {
namespace {

namespace fs = std::filesystem;
using testing::Mode;
using testing::ReadFile;
using testing::TempDir;

InlineFile Text(std::string path, std::string content, bool executable = false) {
  return InlineFile{std::move(path), std::move(content), false, executable};
}

InlineFile Base64(std::string path, std::string_view bytes) {
  return InlineFile{std::move(path), crypto::Base64Encode(bytes), true, false};
}

constexpr int64_t kMax = 1 << 20;

TEST(PrepareInlineFilesTest, DecodesBase64AndCountsTheBytes) {
  std::string binary("\x89PNG\r\n\x1a\n\0\0\xff", 11);
  std::vector<InlineFile> files = {Text("index.html", "<h1>hi</h1>"), Base64("logo.png", binary)};
  auto total = PrepareInlineFiles(files, kMax);
  ASSERT_TRUE(total.ok()) << total.status().ToString();
  EXPECT_EQ(*total, 11 + 11);
  EXPECT_EQ(files[0].content, "<h1>hi</h1>");
  EXPECT_EQ(files[1].content, binary);
  EXPECT_FALSE(files[1].base64);
}

TEST(PrepareInlineFilesTest, Base64MayBeWrappedAndUnpadded) {
  std::string bytes(200, 'x');
  std::string wrapped = crypto::Base64Encode(bytes);
  wrapped.insert(76, "\n");
  wrapped.insert(153, "\r\n");
  std::vector<InlineFile> files = {InlineFile{"a.bin", wrapped, true, false},
                                   InlineFile{"b.bin", "aGk", true, false}};
  auto total = PrepareInlineFiles(files, kMax);
  ASSERT_TRUE(total.ok()) << total.status().ToString();
  EXPECT_EQ(files[0].content, bytes);
  EXPECT_EQ(files[1].content, "hi");
}

TEST(PrepareInlineFilesTest, RefusesUnsafePathsNamingThem) {
  std::string nul("a\0b", 3);
  for (const std::string& bad :
       {std::string(""), std::string("/etc/passwd"), std::string("../x"), std::string("a/../../x"),
        std::string(".."), std::string("a/.."), std::string("a//b"), std::string("a/"),
        std::string("./a"), std::string("a/./b"), std::string("."), std::string("a\\b"),
        std::string("..\\x"), std::string("a\nb"), std::string("a\x7f"), nul,
        std::string(kMaxInlinePathBytes + 1, 'a')}) {
    SCOPED_TRACE(bad);
    std::vector<InlineFile> files = {Text("ok.txt", "1"), Text(bad, "2")};
    auto r = PrepareInlineFiles(files, kMax);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(r.status().error_code(), "FILES_PATH_INVALID");
    EXPECT_NE(r.status().message().find("files[1]"), std::string::npos) << r.status().ToString();
    EXPECT_FALSE(r.status().hint().empty());
  }
  // The longest allowed path, names with spaces, dots and non-ASCII letters are fine.
  std::vector<InlineFile> ok = {Text(std::string(kMaxInlinePathBytes, 'a'), ""),
                                Text("my dir/.env.example", ""), Text("café/ü..txt", ""),
                                Text("...", "")};
  EXPECT_TRUE(PrepareInlineFiles(ok, kMax).ok());
}

TEST(PrepareInlineFilesTest, RefusesDuplicatesAndAFileThatIsADirectory) {
  std::vector<InlineFile> dup = {Text("a.js", "1"), Text("b.js", "2"), Text("a.js", "3")};
  auto r = PrepareInlineFiles(dup, kMax);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().error_code(), "FILES_DUPLICATE_PATH");
  EXPECT_NE(r.status().message().find("files[2] \"a.js\" is also files[0]"), std::string::npos)
      << r.status().ToString();

  for (auto files : {std::vector<InlineFile>{Text("lib", "1"), Text("lib/x.js", "2")},
                     std::vector<InlineFile>{Text("lib/a/b.js", "2"), Text("lib/a", "1")}}) {
    auto c = PrepareInlineFiles(files, kMax);
    ASSERT_FALSE(c.ok());
    EXPECT_EQ(c.status().error_code(), "FILES_PATH_INVALID") << c.status().ToString();
    EXPECT_NE(c.status().message().find("which is a file"), std::string::npos);
  }
}

TEST(PrepareInlineFilesTest, RefusesBadBase64) {
  for (std::string bad : {"not base64!", "a", "aGk=aGk=", "aGk-"}) {
    SCOPED_TRACE(bad);
    std::vector<InlineFile> files = {Text("a.txt", "x"), InlineFile{"img.png", bad, true, false}};
    auto r = PrepareInlineFiles(files, kMax);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().error_code(), "FILES_ENCODING_INVALID");
    EXPECT_NE(r.status().message().find("files[1] \"img.png\""), std::string::npos)
        << r.status().ToString();
  }
}

TEST(PrepareInlineFilesTest, LimitsTotalSizeAndCount) {
  std::vector<InlineFile> exact = {Text("a", std::string(600, 'a')),
                                   Base64("b", std::string(400, 'b'))};
  auto ok = PrepareInlineFiles(exact, 1000);
  ASSERT_TRUE(ok.ok()) << ok.status().ToString();
  EXPECT_EQ(*ok, 1000);

  std::vector<InlineFile> over = {Text("a", std::string(600, 'a')),
                                  Base64("b", std::string(401, 'b'))};
  auto big = PrepareInlineFiles(over, 1000);
  ASSERT_FALSE(big.ok());
  EXPECT_EQ(big.status().code(), Code::kPayloadTooLarge);
  EXPECT_EQ(big.status().error_code(), "ARCHIVE_TOO_LARGE");

  std::vector<InlineFile> none;
  EXPECT_EQ(PrepareInlineFiles(none, kMax).status().error_code(), "SOURCE_EMPTY");

  std::vector<InlineFile> many;
  for (size_t i = 0; i <= kMaxInlineFiles; ++i) {
    many.push_back(Text("f" + std::to_string(i), ""));
  }
  EXPECT_EQ(PrepareInlineFiles(many, kMax).status().error_code(), "FILES_TOO_MANY");
  many.pop_back();
  EXPECT_TRUE(PrepareInlineFiles(many, kMax).ok());
}

TEST(WriteFilesArchiveTest, RoundTripsThroughExtractArchive) {
  TempDir tmp;
  std::string binary("\0\x01\x02\xff\xfe", 5);
  std::string long_name = "deep/" + std::string(150, 'd') + "/" + std::string(90, 'f') + ".txt";
  std::vector<InlineFile> files = {Text("server.js", "require('http')", false),
                                   Text("bin/run.sh", "#!/bin/sh\necho hi\n", true),
                                   Base64("public/img/logo.png", binary),
                                   Text("public/empty.txt", ""),
                                   Text("café/ü.txt", "unicode"),
                                   Text(long_name, "long")};
  ASSERT_TRUE(PrepareInlineFiles(files, kMax).ok());
  std::string tar = tmp / "files.tar";
  auto size = WriteFilesArchive(files, tar);
  ASSERT_TRUE(size.ok()) << size.status().ToString();
  EXPECT_EQ(*size, static_cast<int64_t>(fs::file_size(tar)));
  EXPECT_EQ(Mode(tar), 0600u);
  // Plain tar, not gzip: "ustar" at offset 257 of the first header.
  EXPECT_EQ(ReadFile(tar).substr(257, 5), "ustar");

  std::string app = tmp / "app";
  Status s = ExtractArchive(tar, app, ExtractLimits{});
  ASSERT_TRUE(s.ok()) << s.ToString();
  EXPECT_EQ(ReadFile(app + "/server.js"), "require('http')");
  EXPECT_EQ(Mode(app + "/server.js"), 0644u);
  EXPECT_EQ(ReadFile(app + "/bin/run.sh"), "#!/bin/sh\necho hi\n");
  EXPECT_EQ(Mode(app + "/bin/run.sh"), 0755u);
  EXPECT_EQ(ReadFile(app + "/public/img/logo.png"), binary);
  EXPECT_TRUE(fs::is_regular_file(app + "/public/empty.txt"));
  EXPECT_EQ(fs::file_size(app + "/public/empty.txt"), 0u);
  EXPECT_EQ(ReadFile(app + "/café/ü.txt"), "unicode");
  EXPECT_EQ(ReadFile(app + "/" + long_name), "long");
  EXPECT_EQ(Mode(app + "/public"), 0755u);
}

TEST(WriteFilesArchiveTest, KeepsASingleTopDirectoryAsGiven) {
  // An upload whose entries all sit under one directory is unpacked from inside it; files
  // sent inline keep the paths they were given.
  TempDir tmp;
  std::vector<InlineFile> files = {Text("site/index.html", "<p>x</p>"), Text("site/a.css", "")};
  ASSERT_TRUE(PrepareInlineFiles(files, kMax).ok());
  ASSERT_TRUE(WriteFilesArchive(files, tmp / "f.tar").ok());
  ASSERT_TRUE(ExtractArchive(tmp / "f.tar", tmp / "app", ExtractLimits{}).ok());
  EXPECT_EQ(ReadFile(tmp / "app/site/index.html"), "<p>x</p>");
  EXPECT_FALSE(fs::exists(tmp / "app/index.html"));
}

TEST(WriteFilesArchiveTest, ExtractLimitsStillApply) {
  TempDir tmp;
  std::vector<InlineFile> files = {Text("a", std::string(2000, 'a')), Text("b", "b")};
  ASSERT_TRUE(PrepareInlineFiles(files, kMax).ok());
  ASSERT_TRUE(WriteFilesArchive(files, tmp / "f.tar").ok());
  ExtractLimits limits;
  limits.max_bytes = 1000;
  Status s = ExtractArchive(tmp / "f.tar", tmp / "app", limits);
  EXPECT_EQ(s.error_code(), "ARCHIVE_TOO_LARGE") << s.ToString();
  EXPECT_FALSE(fs::exists(tmp / "app"));
}

TEST(WriteFilesArchiveTest, NeverOverwritesAndRemovesWhatItCouldNotFinish) {
  TempDir tmp;
  std::vector<InlineFile> files = {Text("a", "1")};
  testing::WriteFile(tmp / "taken.tar", "keep");
  auto taken = WriteFilesArchive(files, tmp / "taken.tar");
  EXPECT_FALSE(taken.ok());
  EXPECT_EQ(ReadFile(tmp / "taken.tar"), "keep");

  auto no_dir = WriteFilesArchive(files, tmp / "missing/dir/f.tar");
  EXPECT_FALSE(no_dir.ok());
  EXPECT_NE(no_dir.status().message().find("missing/dir/f.tar"), std::string::npos);

  // Nor through a symlink planted at the name.
  testing::WriteFile(tmp / "target", "keep");
  fs::create_symlink(tmp / "target", tmp / "link.tar");
  EXPECT_FALSE(WriteFilesArchive(files, tmp / "link.tar").ok());
  EXPECT_EQ(ReadFile(tmp / "target"), "keep");
}

}  // namespace
}  // namespace kiln::service
