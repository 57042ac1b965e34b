#include "core/config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace kiln {
namespace {

namespace fs = std::filesystem;

// Writes `text` to a temporary kiln.toml and removes it afterwards.
class TomlFile {
 public:
  explicit TomlFile(std::string_view text) {
    std::string tmpl = (fs::temp_directory_path() / "kiln_config_test.XXXXXX").string();
    dir_ = ::mkdtemp(tmpl.data());
    path_ = (dir_ / "kiln.toml").string();
    std::ofstream(path_) << text;
  }
  ~TomlFile() {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  fs::path dir_;
  std::string path_;
};

Status LoadError(std::string_view text) {
  TomlFile file(text);
  auto config = LoadConfig(file.path(), {});
  return config.ok() ? Status::Ok() : config.status();
}

TEST(ConfigTest, DefaultsAreValid) {
  Config config;
  EXPECT_TRUE(ValidateConfig(config).ok()) << ValidateConfig(config).ToString();
  auto loaded = LoadConfig(std::nullopt, {});
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  EXPECT_EQ(loaded->server.listen, "127.0.0.1:8080");
  EXPECT_EQ(loaded->limits.rate_burst, 100);
}

TEST(ConfigTest, BodyLimitAboveFourGiBIsRejected) {
  Status s = LoadError("[server]\nbody_limit_bytes = 4294967297\n");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("server.body_limit_bytes"), std::string::npos) << s.ToString();
  EXPECT_NE(s.hint().find("4 GiB"), std::string::npos) << s.ToString();
}

TEST(ConfigTest, FileValuesAreApplied) {
  TomlFile file(R"(
[server]
listen = "0.0.0.0:9000"
data_dir = "/var/lib/kiln"
threads = 4
body_limit_bytes = 4294967296
max_header_bytes = 32768
header_timeout_ms = 5000
read_timeout_ms = 6000
idle_timeout_ms = 7000
shutdown_grace_ms = 0

[limits]
rate_per_second = 2.5
rate_burst = 10

[auth]
jwt_default_ttl_seconds = 60
jwt_max_ttl_seconds = 600

[log]
level = "debug"
format = "text"
access_log = true
)");
  auto config = LoadConfig(file.path(), {});
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->server.listen, "0.0.0.0:9000");
  EXPECT_EQ(config->server.data_dir, "/var/lib/kiln");
  EXPECT_EQ(config->server.threads, 4);
  EXPECT_EQ(config->server.body_limit_bytes, int64_t{4} << 30);
  EXPECT_EQ(config->server.max_header_bytes, 32768);
  EXPECT_EQ(config->server.header_timeout_ms, 5000);
  EXPECT_EQ(config->server.read_timeout_ms, 6000);
  EXPECT_EQ(config->server.idle_timeout_ms, 7000);
  EXPECT_EQ(config->server.shutdown_grace_ms, 0);
  EXPECT_DOUBLE_EQ(config->limits.rate_per_second, 2.5);
  EXPECT_EQ(config->limits.rate_burst, 10);
  EXPECT_EQ(config->auth.jwt_default_ttl_seconds, 60);
  EXPECT_EQ(config->auth.jwt_max_ttl_seconds, 600);
  EXPECT_EQ(config->log.level, "debug");
  EXPECT_EQ(config->log.format, "text");
  EXPECT_TRUE(config->log.access_log);
}

TEST(ConfigTest, IntegerRateIsAccepted) {
  TomlFile file("[limits]\nrate_per_second = 7\n");
  auto config = LoadConfig(file.path(), {});
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_DOUBLE_EQ(config->limits.rate_per_second, 7.0);
}

TEST(ConfigTest, OverridesWinOverFile) {
  TomlFile file("[server]\nlisten = \"0.0.0.0:9000\"\ndata_dir = \"/from/file\"\n");
  ConfigOverrides flags;
  flags.listen = "127.0.0.1:0";
  flags.data_dir = "/from/flag";
  auto config = LoadConfig(file.path(), flags);
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  EXPECT_EQ(config->server.listen, "127.0.0.1:0");
  EXPECT_EQ(config->server.data_dir, "/from/flag");
}

TEST(ConfigTest, OverridesAreValidated) {
  ConfigOverrides flags;
  flags.listen = "nonsense";
  auto config = LoadConfig(std::nullopt, flags);
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("server.listen"), std::string::npos);
}

TEST(ConfigTest, UnknownKeyIsRejectedByName) {
  Status s = LoadError("[server]\nlisen = \"0.0.0.0:1\"\n");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_EQ(s.error_code(), "CONFIG_INVALID");
  EXPECT_NE(s.message().find("unknown key server.lisen"), std::string::npos) << s.ToString();
  EXPECT_NE(s.hint().find("listen"), std::string::npos) << s.ToString();
}

TEST(ConfigTest, UnknownSectionIsRejected) {
  Status s = LoadError("[sever]\nlisten = \"0.0.0.0:1\"\n");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("sever"), std::string::npos) << s.ToString();
}

TEST(ConfigTest, WrongTypeIsRejected) {
  Status s = LoadError("[server]\nthreads = \"four\"\n");
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.error_code(), "CONFIG_INVALID");
  EXPECT_NE(s.message().find("server.threads"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("integer"), std::string::npos) << s.ToString();

  s = LoadError("[log]\naccess_log = \"yes\"\n");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("log.access_log"), std::string::npos) << s.ToString();

  s = LoadError("[server]\nthreads = 2.5\n");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("server.threads"), std::string::npos) << s.ToString();
}

TEST(ConfigTest, OutOfRangeValuesAreRejectedWithRange) {
  Status s = LoadError("[server]\nthreads = 300\n");
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("server.threads = 300"), std::string::npos) << s.ToString();
  EXPECT_NE(s.hint().find("between 0 and 256"), std::string::npos) << s.ToString();

  // Larger than an int: rejected, not wrapped around into range.
  s = LoadError("[server]\nheader_timeout_ms = 4294968296\n");
  ASSERT_FALSE(s.ok());

  EXPECT_FALSE(LoadError("[server]\nread_timeout_ms = 99\n").ok());
  EXPECT_FALSE(LoadError("[server]\nshutdown_grace_ms = 600001\n").ok());
  EXPECT_FALSE(LoadError("[server]\nmax_header_bytes = 1023\n").ok());
  EXPECT_FALSE(LoadError("[limits]\nrate_per_second = 0\n").ok());
  EXPECT_FALSE(LoadError("[limits]\nrate_per_second = nan\n").ok());
  EXPECT_FALSE(LoadError("[limits]\nrate_burst = 0\n").ok());
  EXPECT_FALSE(LoadError("[auth]\njwt_max_ttl_seconds = 2592001\n").ok());
  EXPECT_FALSE(
      LoadError("[auth]\njwt_default_ttl_seconds = 7200\njwt_max_ttl_seconds = 3600\n").ok());
  EXPECT_FALSE(LoadError("[log]\nlevel = \"verbose\"\n").ok());
  EXPECT_FALSE(LoadError("[log]\nformat = \"xml\"\n").ok());
  EXPECT_FALSE(LoadError("[server]\ndata_dir = \"\"\n").ok());
}

TEST(ConfigTest, BadListenIsRejected) {
  for (std::string_view listen : {"8080", ":8080", "host:", "host:65536", "host:80x", "::1:80",
                                  "[::1]", "[::1:80", "[]:80"}) {
    TomlFile file("[server]\nlisten = \"" + std::string(listen) + "\"\n");
    auto config = LoadConfig(file.path(), {});
    ASSERT_FALSE(config.ok()) << listen;
    EXPECT_EQ(config.status().error_code(), "CONFIG_INVALID");
    EXPECT_NE(config.status().message().find("server.listen"), std::string::npos)
        << config.status().ToString();
  }
}

TEST(ConfigTest, SplitHostPort) {
  std::string host;
  uint16_t port = 1;
  ASSERT_TRUE(SplitHostPort("127.0.0.1:8080", &host, &port).ok());
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 8080);
  ASSERT_TRUE(SplitHostPort("[::1]:0", &host, &port).ok());
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 0);
  ASSERT_TRUE(SplitHostPort("localhost:65535", &host, &port).ok());
  EXPECT_EQ(port, 65535);
  EXPECT_FALSE(SplitHostPort("localhost:-1", &host, &port).ok());
}

TEST(ConfigTest, ParseErrorMentionsLine) {
  TomlFile file("[server]\nthreads = 4\nlisten = \n");
  auto config = LoadConfig(file.path(), {});
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().error_code(), "CONFIG_INVALID");
  EXPECT_NE(config.status().message().find(file.path() + ":3:"), std::string::npos)
      << config.status().ToString();
}

TEST(ConfigTest, MissingFileNamesPath) {
  auto config = LoadConfig(std::string("/nonexistent/kiln.toml"), {});
  ASSERT_FALSE(config.ok());
  EXPECT_NE(config.status().message().find("/nonexistent/kiln.toml"), std::string::npos)
      << config.status().ToString();
}

}  // namespace
}  // namespace kiln
