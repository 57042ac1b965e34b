// The dashboard's file serving on a real directory: content types and cache headers, the
// single-page-app fallback, conditional requests, and the path checks that keep a client
// inside the directory (traversal, symlinks, FIFOs, directories). Served end to end by the
// real server in tests/integration/dashboard_test.cc.

#include "web/web.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

#include "web/files.h"

namespace kiln::web {
namespace {

namespace fs = std::filesystem;

void WriteFile(const fs::path& path, const std::string& text) {
  fs::create_directories(path.parent_path());
  std::ofstream(path, std::ios::binary) << text;
}

std::string Header(const http::Response& res, std::string_view name) {
  for (const auto& [n, v] : res.headers) {
    std::string lower = n;
    for (char& c : lower) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    if (lower == name) {
      return v;
    }
  }
  return {};
}

constexpr const char* kIndex = "<!doctype html><title>Kiln</title><div id=app></div>";
constexpr const char* kScript = "console.log('kiln dashboard')";
constexpr const char* kSecret = "the secret outside the dashboard";

// A built dashboard in a temporary directory, next to a file it must never serve.
class DashboardTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = fs::temp_directory_path() /
            ("kiln-web-test-" + std::to_string(getpid()) + "-" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(base_);
    dir_ = base_ / "web";
    WriteFile(dir_ / "index.html", kIndex);
    WriteFile(dir_ / "assets" / "app-1a2b.js", kScript);
    WriteFile(dir_ / "assets" / "app-1a2b.css", "body{color:red}");
    WriteFile(dir_ / "favicon.svg", "<svg/>");
    WriteFile(dir_ / "notes.txt", "hello");
    WriteFile(dir_ / "data.bin", "\x01\x02");
    WriteFile(dir_ / ".env", "SECRET=1");
    WriteFile(base_ / "outside" / "secret.txt", kSecret);
    fs::create_symlink(base_ / "outside" / "secret.txt", dir_ / "assets" / "link-out.txt");
    fs::create_symlink("../../outside/secret.txt", dir_ / "assets" / "rel-out.txt");
    fs::create_symlink(base_ / "outside", dir_ / "assets" / "dir-out");
    fs::create_directories(dir_ / "docs.d");
    ASSERT_EQ(mkfifo((dir_ / "pipe.txt").c_str(), 0644), 0);
  }
  void TearDown() override { fs::remove_all(base_); }

  http::Response Get(const std::string& path, std::string method = "GET",
                     http::Headers headers = {}) {
    Dashboard dashboard(dir_.string());
    http::Request req;
    req.method = std::move(method);
    req.path = path;
    req.target = path;
    req.headers = std::move(headers);
    http::Response res;
    dashboard.Handle(req, res);
    return res;
  }

  // Every answer, an error page too, carries the security headers.
  static void ExpectSecurityHeaders(const http::Response& res) {
    EXPECT_EQ(Header(res, "content-security-policy"),
              "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
              "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'");
    EXPECT_EQ(Header(res, "x-content-type-options"), "nosniff");
    EXPECT_EQ(Header(res, "referrer-policy"), "no-referrer");
    EXPECT_EQ(Header(res, "x-frame-options"), "DENY");
  }

  fs::path base_;
  fs::path dir_;
};

TEST(DashboardClaimsTest, GetAndHeadOutsideTheApi) {
  Dashboard dashboard("/nonexistent");
  auto claims = [&](std::string method, std::string path) {
    http::Request req;
    req.method = std::move(method);
    req.path = std::move(path);
    return dashboard.Claims(req);
  };
  EXPECT_TRUE(claims("GET", "/"));
  EXPECT_TRUE(claims("HEAD", "/"));
  EXPECT_TRUE(claims("GET", "/apps/shop"));
  EXPECT_TRUE(claims("GET", "/assets/app.js"));
  EXPECT_TRUE(claims("GET", "/favicon.svg"));
  EXPECT_TRUE(claims("GET", "/keys/"));
  // Paths of no route stay the API's (a JSON 404), whatever the Host.
  for (const char* other : {"/v1x", "/headers", "/apps-old", "/x/index.html", "/..", "/api"}) {
    EXPECT_FALSE(claims("GET", other)) << other;
  }
  EXPECT_FALSE(claims("POST", "/"));
  EXPECT_FALSE(claims("DELETE", "/apps/shop"));
  for (const char* api : {"/v1", "/v1/", "/v1/apps", "/v1/nope", "/mcp", "/healthz", "/metrics"}) {
    EXPECT_FALSE(claims("GET", api)) << api;
  }
}

TEST_F(DashboardTest, ServesIndexAndAssetsWithTypesAndCaching) {
  http::Response index = Get("/");
  EXPECT_EQ(index.status, 200);
  EXPECT_EQ(index.body, kIndex);
  EXPECT_EQ(Header(index, "content-type"), "text/html; charset=utf-8");
  EXPECT_EQ(Header(index, "cache-control"), "no-cache");
  ExpectSecurityHeaders(index);

  http::Response js = Get("/assets/app-1a2b.js");
  EXPECT_EQ(js.status, 200);
  EXPECT_EQ(js.body, kScript);
  EXPECT_EQ(Header(js, "content-type"), "text/javascript; charset=utf-8");
  EXPECT_EQ(Header(js, "cache-control"), "public, max-age=31536000, immutable");
  ExpectSecurityHeaders(js);

  EXPECT_EQ(Header(Get("/assets/app-1a2b.css"), "content-type"), "text/css; charset=utf-8");
  http::Response svg = Get("/favicon.svg");
  EXPECT_EQ(Header(svg, "content-type"), "image/svg+xml");
  EXPECT_EQ(Header(svg, "cache-control"), "no-cache");  // outside assets/: not hashed
  EXPECT_EQ(Header(Get("/notes.txt"), "content-type"), "text/plain; charset=utf-8");
  EXPECT_EQ(Header(Get("/data.bin"), "content-type"), "application/octet-stream");
  http::Response direct = Get("/index.html");
  EXPECT_EQ(direct.body, kIndex);
  EXPECT_EQ(Header(direct, "cache-control"), "no-cache");
}

TEST_F(DashboardTest, HeadHasTheHeadersAndTheBodyForItsLength) {
  http::Response head = Get("/assets/app-1a2b.js", "HEAD");
  EXPECT_EQ(head.status, 200);
  // The server sends no body for HEAD but takes Content-Length from it.
  EXPECT_EQ(head.body.size(), std::string(kScript).size());
  EXPECT_EQ(Header(head, "content-type"), "text/javascript; charset=utf-8");
}

TEST_F(DashboardTest, ETagAndIfNoneMatch) {
  http::Response first = Get("/assets/app-1a2b.js");
  std::string etag = Header(first, "etag");
  ASSERT_FALSE(etag.empty());
  EXPECT_EQ(etag.front(), '"');
  EXPECT_EQ(Header(Get("/assets/app-1a2b.js"), "etag"), etag);  // stable

  http::Response again = Get("/assets/app-1a2b.js", "GET", {{"if-none-match", etag}});
  EXPECT_EQ(again.status, 304);
  EXPECT_TRUE(again.body.empty());
  EXPECT_EQ(Header(again, "etag"), etag);
  ExpectSecurityHeaders(again);
  EXPECT_EQ(Get("/assets/app-1a2b.js", "GET", {{"if-none-match", "\"x\", W/" + etag}}).status, 304);
  EXPECT_EQ(Get("/", "GET", {{"if-none-match", "*"}}).status, 304);
  EXPECT_EQ(Get("/assets/app-1a2b.js", "GET", {{"if-none-match", "\"other\""}}).status, 200);

  // A changed file has another tag: the old one no longer matches.
  WriteFile(dir_ / "assets" / "app-1a2b.js", std::string(kScript) + ";");
  http::Response changed = Get("/assets/app-1a2b.js", "GET", {{"if-none-match", etag}});
  EXPECT_EQ(changed.status, 200);
  EXPECT_NE(Header(changed, "etag"), etag);
}

TEST_F(DashboardTest, InAppRoutesAnswerIndex) {
  for (const char* route : {"/apps", "/apps/shop", "/apps/shop/deployments/dep_1", "/sandboxes/",
                            "/assets", "/docs.d/", "/assets/dir-out"}) {
    http::Response res = Get(route);
    EXPECT_EQ(res.status, 200) << route;
    EXPECT_EQ(res.body, kIndex) << route;
    EXPECT_EQ(Header(res, "content-type"), "text/html; charset=utf-8") << route;
    EXPECT_EQ(Header(res, "cache-control"), "no-cache") << route;
  }
}

TEST_F(DashboardTest, MissingAssetIs404Html) {
  for (const char* path : {"/assets/app-ffff.js", "/nope.css", "/docs.d", "/pipe.txt"}) {
    http::Response res = Get(path);
    EXPECT_EQ(res.status, 404) << path;
    EXPECT_EQ(Header(res, "content-type"), "text/html; charset=utf-8") << path;
    EXPECT_NE(res.body, kIndex) << path;
    ExpectSecurityHeaders(res);
  }
}

TEST_F(DashboardTest, NothingOutsideTheDirectory) {
  // req.path is decoded: "/assets/%2e%2e/x" arrives as "/assets/../x".
  for (const char* path :
       {"/../outside/secret.txt", "/assets/../../outside/secret.txt", "/assets/../index.html",
        "/./index.html", "/assets\\..\\index.html", "/.env", "/assets/..", "/.."}) {
    http::Response res = Get(path);
    EXPECT_EQ(res.status, 400) << path;
    EXPECT_EQ(res.body.find(kSecret), std::string::npos) << path;
    ExpectSecurityHeaders(res);
  }
  EXPECT_EQ(Get(std::string("/index.html\0.js", 15)).status, 400);
  EXPECT_EQ(Get("relative").status, 400);
  EXPECT_EQ(Get("/" + std::string(2000, 'a')).status, 400);
  // Symlinks leading out, absolute or relative, to a file or through a directory.
  for (const char* path :
       {"/assets/link-out.txt", "/assets/rel-out.txt", "/assets/dir-out/secret.txt"}) {
    http::Response res = Get(path);
    EXPECT_EQ(res.status, 404) << path;
    EXPECT_EQ(res.body.find(kSecret), std::string::npos) << path;
  }
}

TEST_F(DashboardTest, NotBuiltPage) {
  fs::remove(dir_ / "index.html");
  http::Response res = Get("/");
  EXPECT_EQ(res.status, 503);
  EXPECT_NE(res.body.find("<code>make</code>"), std::string::npos) << res.body;
  EXPECT_EQ(Header(res, "content-type"), "text/html; charset=utf-8");
  ExpectSecurityHeaders(res);
  EXPECT_EQ(Get("/apps/shop").status, 503);
  EXPECT_EQ(Get("/assets/app-1a2b.js").status, 200);  // what is there is still served

  fs::remove_all(dir_);
  EXPECT_EQ(Get("/").status, 503);
  EXPECT_EQ(Get("/assets/app-1a2b.js").status, 404);
  Dashboard none("");
  http::Request req;
  req.method = "GET";
  req.path = "/";
  http::Response empty_dir;
  none.Handle(req, empty_dir);
  EXPECT_EQ(empty_dir.status, 503);
}

// The file layer under both resolvers: openat2 (symlinks resolved inside the directory) and
// the O_NOFOLLOW walk of kernels without it (symlinks refused).
TEST_F(DashboardTest, OpenBelowBothResolvers) {
  int root = open(dir_.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  ASSERT_GE(root, 0);
  fs::create_symlink("app-1a2b.js", dir_ / "assets" / "inside.js");
  for (auto resolver : {internal::Resolver::kOpenat2, internal::Resolver::kNoFollow}) {
    auto js = internal::OpenBelow(root, "assets/app-1a2b.js", resolver);
    ASSERT_TRUE(js.ok()) << js.status().ToString();
    EXPECT_EQ(js->size(), static_cast<int64_t>(std::string(kScript).size()));
    auto body = js->Read();
    ASSERT_TRUE(body.ok());
    EXPECT_EQ(*body, kScript);
    for (const char* refused :
         {"assets/link-out.txt", "assets/rel-out.txt", "assets/dir-out/secret.txt", "pipe.txt",
          "docs.d", "assets", "missing.js", ""}) {
      auto file = internal::OpenBelow(root, refused, resolver);
      EXPECT_TRUE(file.status().Is(Code::kNotFound)) << refused << ": " << file.status().ToString();
    }
  }
  // A symlink inside the directory: followed within it by openat2, refused by the fallback.
  EXPECT_TRUE(internal::OpenBelow(root, "assets/inside.js", internal::Resolver::kOpenat2).ok());
  EXPECT_FALSE(internal::OpenBelow(root, "assets/inside.js", internal::Resolver::kNoFollow).ok());

  // Over the size cap: refused before reading.
  { std::ofstream big(dir_ / "big.js", std::ios::binary); }
  ASSERT_EQ(truncate((dir_ / "big.js").c_str(), internal::kMaxFileBytes + 1), 0);
  EXPECT_TRUE(internal::OpenBelow(root, "big.js").status().Is(Code::kPayloadTooLarge));
  close(root);
}

TEST(RelativePathTest, ChecksEverySegment) {
  std::string rel;
  EXPECT_TRUE(internal::RelativePath("/", &rel));
  EXPECT_EQ(rel, "");
  EXPECT_TRUE(internal::RelativePath("//assets///app.js", &rel));
  EXPECT_EQ(rel, "assets/app.js");
  EXPECT_TRUE(internal::RelativePath("/apps/shop/", &rel));
  EXPECT_EQ(rel, "apps/shop");
  EXPECT_TRUE(internal::RelativePath("/a..b/c.d", &rel));  // dots inside a name are fine
  EXPECT_EQ(rel, "a..b/c.d");
  for (const char* bad : {"", "x", "/..", "/a/../b", "/a/./b", "/.git/config", "/a\\b"}) {
    EXPECT_FALSE(internal::RelativePath(bad, &rel)) << bad;
  }
  EXPECT_FALSE(internal::RelativePath(std::string_view("/a\0b", 4), &rel));
}

}  // namespace
}  // namespace kiln::web
