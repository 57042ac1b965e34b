#include "service/sources.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "service/sources_test_util.h"

namespace kiln::service {
namespace {

namespace fs = std::filesystem;
using testing::Mode;
using testing::ReadFile;
using testing::TempDir;
using testing::WriteFile;

// The starters beside the sources: src/service/sources_test.cc -> examples/.
const fs::path kExamples =
    fs::path(__FILE__).parent_path().parent_path().parent_path() / "examples";

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
