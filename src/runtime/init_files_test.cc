// kiln-init through InitClient: file operations, confined to the root.

#include "runtime/init_test_util.h"

namespace kiln::runtime {
namespace {

using namespace init_test;  // NOLINT: test helpers
namespace fs = std::filesystem;
namespace proto = init::proto;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

std::string BinaryBlob(size_t size) {
  std::string data(size, '\0');
  uint32_t x = 12345;
  for (char& c : data) {
    x = x * 1103515245 + 12345;
    c = static_cast<char>(x >> 24);
  }
  return data;
}

TEST(InitFilesTest, WriteReadRoundTripOfBinaryData) {
  InitProcess init;
  InitClient client = init.client();
  std::string data = BinaryBlob(5 << 20);
  ASSERT_NE(data.find('\0'), std::string::npos);
  Status written = client.WriteFile("/data/deep/blob.bin", data, 0600);
  ASSERT_TRUE(written.ok()) << written.ToString();
  fs::path on_disk = fs::path(init.root()) / "data/deep/blob.bin";
  EXPECT_EQ(ReadAll(on_disk), data);
  EXPECT_EQ(fs::status(on_disk).permissions() & fs::perms::all,
            fs::perms::owner_read | fs::perms::owner_write);
  EXPECT_EQ(fs::status(on_disk.parent_path()).permissions() & fs::perms::all,
            static_cast<fs::perms>(0755));
  // No temporary file is left beside it.
  EXPECT_EQ(std::distance(fs::directory_iterator(on_disk.parent_path()), {}), 1);

  FileEntry info;
  Result<std::string> read = client.ReadFile("/data/deep/blob.bin", 10 << 20, &info);
  ASSERT_TRUE(read.ok()) << read.status().ToString();
  EXPECT_TRUE(*read == data);
  EXPECT_EQ(info.size, 5 << 20);
  EXPECT_EQ(info.mode, 0600u);
  EXPECT_EQ(info.name, "blob.bin");
  EXPECT_EQ(info.path, "/data/deep/blob.bin");

  // Overwrite, empty file, default mode.
  ASSERT_TRUE(client.WriteFile("/data/deep/blob.bin", "").ok());
  read = client.ReadFile("/data/deep/blob.bin", 10);
  ASSERT_TRUE(read.ok());
  EXPECT_EQ(*read, "");
  EXPECT_EQ(fs::status(on_disk).permissions() & fs::perms::all, static_cast<fs::perms>(0644));
}

TEST(InitFilesTest, ErrorsOfReadAndWrite) {
  InitProcess init;
  InitClient client = init.client();
  ASSERT_TRUE(client.WriteFile("/big.txt", std::string(2000, 'b')).ok());
  Result<std::string> read = client.ReadFile("/big.txt", 1000);
  EXPECT_EQ(read.status().code(), Code::kPayloadTooLarge);
  EXPECT_EQ(read.status().error_code(), "FILE_TOO_LARGE");

  read = client.ReadFile("/missing.txt", 1000);
  EXPECT_EQ(read.status().code(), Code::kNotFound);
  EXPECT_EQ(read.status().error_code(), "FILE_NOT_FOUND");

  ASSERT_TRUE(client.MakeDir("/dir").ok());
  read = client.ReadFile("/dir", 1000);
  EXPECT_EQ(read.status().error_code(), "IS_A_DIRECTORY");
  Status status = client.WriteFile("/dir", "x");
  EXPECT_EQ(status.error_code(), "IS_A_DIRECTORY");
  EXPECT_EQ(status.code(), Code::kInvalidArgument);
  status = client.WriteFile("/big.txt/child", "x");
  EXPECT_EQ(status.error_code(), "NOT_A_DIRECTORY");

  // Refused up front, while the client is still sending: the answer is not lost.
  status = client.WriteFile("/dir", std::string(3 << 20, 'x'));
  EXPECT_EQ(status.error_code(), "IS_A_DIRECTORY");

  ASSERT_EQ(mkfifo((init.root() + "/fifo").c_str(), 0600), 0);
  read = client.ReadFile("/fifo", 1000);
  EXPECT_EQ(read.status().error_code(), "NOT_A_FILE");
}

TEST(InitFilesTest, MakeDirCreatesParents) {
  InitProcess init;
  InitClient client = init.client();
  ASSERT_TRUE(client.MakeDir("/a/b/c").ok());
  EXPECT_TRUE(fs::is_directory(fs::path(init.root()) / "a/b/c"));
  EXPECT_TRUE(client.MakeDir("/a/b/c").ok());  // already there is fine
  ASSERT_TRUE(client.WriteFile("/a/file", "x").ok());
  Status status = client.MakeDir("/a/file/sub");
  EXPECT_EQ(status.error_code(), "NOT_A_DIRECTORY");
  EXPECT_EQ(client.MakeDir("/a/file").error_code(), "NOT_A_DIRECTORY");
}

TEST(InitFilesTest, ListAndStat) {
  InitProcess init;
  fs::path root = init.root();
  fs::create_directories(root / "l/sub/inner");
  WriteAll(root / "l/f.txt", "hello");
  WriteAll(root / "l/sub/g.txt", "abc");
  fs::create_symlink("f.txt", root / "l/link");
  fs::create_symlink("sub", root / "l/dirlink");
  InitClient client = init.client();

  Result<std::vector<FileEntry>> list = client.List("/l", 1);
  ASSERT_TRUE(list.ok()) << list.status().ToString();
  std::vector<std::string> paths;
  for (const FileEntry& e : *list) {
    paths.push_back(e.path);
  }
  EXPECT_EQ(paths, (std::vector<std::string>{"/l/dirlink", "/l/f.txt", "/l/link", "/l/sub"}));
  EXPECT_EQ((*list)[0].type, FileEntry::Type::kSymlink);
  EXPECT_EQ((*list)[0].link_target, "sub");
  EXPECT_EQ((*list)[1].type, FileEntry::Type::kFile);
  EXPECT_EQ((*list)[1].size, 5);
  EXPECT_EQ((*list)[1].name, "f.txt");
  EXPECT_EQ((*list)[2].link_target, "f.txt");
  EXPECT_EQ((*list)[3].type, FileEntry::Type::kDir);

  list = client.List("/l", 2);
  ASSERT_TRUE(list.ok());
  paths.clear();
  for (const FileEntry& e : *list) {
    paths.push_back(e.path);
  }
  // The symlinked directory is listed, not entered.
  EXPECT_EQ(paths, (std::vector<std::string>{"/l/dirlink", "/l/f.txt", "/l/link", "/l/sub",
                                             "/l/sub/g.txt", "/l/sub/inner"}));

  list = client.List("/l", 2, 3);
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 3u);
  list = client.List("/", 1);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].path, "/l");
  EXPECT_EQ(client.List("/l/f.txt", 1).status().error_code(), "NOT_A_DIRECTORY");
  EXPECT_EQ(client.List("/nope", 1).status().error_code(), "FILE_NOT_FOUND");

  auto before_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  ASSERT_TRUE(client.WriteFile("/l/new.txt", "12345678", 0640).ok());
  Result<FileEntry> stat = client.Stat("/l/new.txt");
  ASSERT_TRUE(stat.ok());
  EXPECT_EQ(stat->type, FileEntry::Type::kFile);
  EXPECT_EQ(stat->size, 8);
  EXPECT_EQ(stat->mode, 0640u);
  EXPECT_GE(stat->mtime_ms, before_ms - 2000);
  stat = client.Stat("/l/link");
  ASSERT_TRUE(stat.ok());
  EXPECT_EQ(stat->type, FileEntry::Type::kSymlink);
  EXPECT_EQ(stat->link_target, "f.txt");
  stat = client.Stat("/l/sub/");
  ASSERT_TRUE(stat.ok());
  EXPECT_EQ(stat->type, FileEntry::Type::kDir);
  EXPECT_EQ(stat->path, "/l/sub");
  stat = client.Stat("/");
  ASSERT_TRUE(stat.ok());
  EXPECT_EQ(stat->type, FileEntry::Type::kDir);
  EXPECT_EQ(client.Stat("/l/none").status().code(), Code::kNotFound);
}

TEST(InitFilesTest, Remove) {
  InitProcess init;
  fs::path root = init.root();
  fs::create_directories(root / "r/full/deeper");
  WriteAll(root / "r/file", "x");
  WriteAll(root / "r/full/deeper/f", "y");
  fs::create_directory(root / "r/empty");
  fs::create_symlink(root / "r/full", root / "r/link");
  InitClient client = init.client();

  ASSERT_TRUE(client.Remove("/r/file", false).ok());
  EXPECT_FALSE(fs::exists(root / "r/file"));
  ASSERT_TRUE(client.Remove("/r/empty", false).ok());
  EXPECT_FALSE(fs::exists(root / "r/empty"));
  Status status = client.Remove("/r/full", false);
  EXPECT_EQ(status.code(), Code::kConflict);
  EXPECT_EQ(status.error_code(), "DIRECTORY_NOT_EMPTY");
  // The link goes, what it points to stays.
  ASSERT_TRUE(client.Remove("/r/link", true).ok());
  EXPECT_FALSE(fs::is_symlink(root / "r/link"));
  EXPECT_TRUE(fs::exists(root / "r/full/deeper/f"));
  ASSERT_TRUE(client.Remove("/r/full", true).ok());
  EXPECT_FALSE(fs::exists(root / "r/full"));
  EXPECT_EQ(client.Remove("/r/full", true).code(), Code::kNotFound);
  EXPECT_EQ(client.Remove("/", true).error_code(), "PATH_INVALID");
  EXPECT_TRUE(fs::exists(root));
}

TEST(InitFilesTest, PathsAreValidated) {
  InitProcess init;
  InitClient client = init.client();
  for (const std::string& path :
       {std::string("relative/file"), std::string(""), std::string("/a/../../etc/passwd"),
        std::string("/.."), std::string("/a/\0b", 5), "/" + std::string(5000, 'x')}) {
    Result<std::string> read = client.ReadFile(path, 100);
    EXPECT_EQ(read.status().error_code(), "PATH_INVALID") << path;
    EXPECT_EQ(read.status().code(), Code::kInvalidArgument) << path;
    EXPECT_EQ(client.WriteFile(path, "x").error_code(), "PATH_INVALID") << path;
  }
  EXPECT_EQ(client.Stat("relative").status().error_code(), "PATH_INVALID");
  EXPECT_EQ(client.List("../x", 1).status().error_code(), "PATH_INVALID");
  EXPECT_EQ(client.MakeDir("/x/../y").error_code(), "PATH_INVALID");
  EXPECT_EQ(client.Remove("x", false).error_code(), "PATH_INVALID");
}

TEST(InitFilesTest, SymlinksCannotLeaveTheRoot) {
  InitProcess init;
  fs::path root = init.root();
  fs::path secret = init.outside() / "secret.txt";
  WriteAll(secret, "outside secret");
  std::string passwd = ReadAll("/etc/passwd");
  ASSERT_FALSE(passwd.empty());
  fs::create_symlink("/etc/passwd", root / "abs");
  fs::create_symlink(secret, root / "abs_secret");            // absolute host path
  fs::create_symlink("../outside/secret.txt", root / "rel");  // climbs out of the root
  fs::create_symlink("../outside", root / "reldir");
  fs::create_symlink(init.outside(), root / "absdir");
  fs::create_symlink("/proc/self/root/etc/passwd", root / "magic");
  InitClient client = init.client();

  for (const char* path :
       {"/abs", "/abs_secret", "/rel", "/reldir/secret.txt", "/absdir/secret.txt", "/magic"}) {
    Result<std::string> read = client.ReadFile(path, 1 << 20);
    EXPECT_FALSE(read.ok()) << path << " read: " << *read;
    if (read.ok()) {
      EXPECT_NE(*read, passwd);
      EXPECT_NE(*read, "outside secret");
    }
    EXPECT_FALSE(client.List(path, 1).ok()) << path;
  }
  // Writes through the links stay in the root: the link itself may be replaced, nothing
  // outside is created or changed.
  client.WriteFile("/abs_secret", "pwned");
  client.WriteFile("/rel", "pwned");
  client.WriteFile("/reldir/secret.txt", "pwned");
  client.WriteFile("/absdir/new.txt", "pwned");
  client.WriteFile("/reldir/sub/new.txt", "pwned");
  client.MakeDir("/absdir/made");
  client.Remove("/reldir/secret.txt", false);
  client.Remove("/absdir", true);
  EXPECT_EQ(ReadAll(secret), "outside secret");
  EXPECT_EQ(std::distance(fs::directory_iterator(init.outside()), {}), 1);
  EXPECT_EQ(ReadAll("/etc/passwd"), passwd);
  // Removing a link removes only the link.
  EXPECT_FALSE(fs::exists(root / "absdir"));
  EXPECT_TRUE(fs::exists(secret));
}

TEST(InitFilesTest, RealRootReadsProcButRefusesMagicLinks) {
  // The production default, --root /: size-0 /proc files are read to their end, and /proc
  // magic links (which would lead out of a container's root) are refused.
  InitProcess init({"--root", "/"});
  InitClient client = init.client();
  Result<std::string> status = client.ReadFile("/proc/self/status", 1 << 20);
  ASSERT_TRUE(status.ok()) << status.status().ToString();
  EXPECT_NE(status->find("Pid:\t" + std::to_string(init.pid()) + "\n"), std::string::npos);
  EXPECT_EQ(client.ReadFile("/proc/self/status", 10).status().error_code(), "FILE_TOO_LARGE");
  for (const char* magic : {"/proc/self/root/etc/passwd", "/proc/self/exe", "/proc/self/cwd"}) {
    Result<FileEntry> stat = client.Stat(std::string(magic) + "/x");
    EXPECT_EQ(stat.status().error_code(), "PATH_INVALID") << magic;
    Result<std::string> read = client.ReadFile(magic, 1 << 20);
    EXPECT_EQ(read.status().error_code(), "PATH_INVALID") << magic;
  }
}

// --- Main process, reaping, shutdown, limits ---

}  // namespace
}  // namespace kiln::runtime
