// Apps end to end on real instances: deploy from an upload, a URL, git and a starter; fetch
// through the gateway; redeploy under load with no failed request; failed deploys keep the old
// release; rollback; /data survives; secrets stay hidden; files sent inline in the request.
#include <atomic>
#include <thread>

#include "core/crypto.h"
#include "integration/app_fixture.h"

namespace kiln::testing {
namespace {

using namespace std::chrono_literals;

TEST_F(AppTest, EachExampleDeploysFromAnUploadAndAnswersThroughTheGateway) {
  struct Case {
    std::string example, runtime, expect;
  };
  for (const Case& c : {Case{"static", "static", "<html"}, Case{"node", "node", ""},
                        Case{"python", "python", ""}, Case{"hello", "node", "Hello"}}) {
    SCOPED_TRACE(c.example);
    std::string app = "ex-" + c.example;
    CreateApp(app);
    Reply dep = DeployDir(app, ExamplesDir() / c.example);
    ASSERT_EQ(dep.Str("/data/status"), "live") << dep;
    Reply info = Call("GET", "/v1/apps/" + app, admin_);
    EXPECT_EQ(info.Str("/data/status"), "running");
    EXPECT_EQ(info.Str("/data/release/runtime"), c.runtime) << info;
    EXPECT_EQ(info.Str("/data/url"),
              "http://" + app + ".localhost:" + std::to_string(server().port()) + "/");
    std::string body = Body(app);
    EXPECT_FALSE(body.empty());
    if (!c.expect.empty()) {
      EXPECT_NE(body.find(c.expect), std::string::npos) << body;
    }
    for (const auto& step : dep.Array("/data/steps")) {
      std::string status(step.as_object().at("status").as_string());
      EXPECT_TRUE(status == "ok" || status == "skipped") << json::serialize(step);
    }
  }
  // An unknown app host is the gateway's 404, not the API's.
  auto missing = Fetch("no-such-app");
  ASSERT_TRUE(missing.ok());
  EXPECT_EQ(missing->status, 404);
  EXPECT_EQ(missing->ErrorCode(), "APP_NOT_FOUND");
}

TEST_F(AppTest, DeploysFromAStarterAUrlAndAGitRepository) {
  CreateApp("web");
  Reply starter = DeployJson("web", R"({"source": {"template": "static"}})");
  ASSERT_EQ(starter.Str("/data/status"), "live") << starter;
  EXPECT_NE(Body("web").find("<html"), std::string::npos);

  // URL: a tarball served by a local HTTP server.
  fs::path served = Scratch("served");
  std::ofstream(served / "app.tgz", std::ios::binary) << TarGz(ExamplesDir() / "python");
  int port = 0;
  {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
    ::close(fd);
  }
  pid_t http = ::fork();
  if (http == 0) {
    ::chdir(served.c_str());
    int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(null, 2);
    ::execlp("python3", "python3", "-m", "http.server", std::to_string(port).c_str(), "--bind",
             "127.0.0.1", nullptr);
    ::_exit(127);
  }
  std::this_thread::sleep_for(500ms);
  Reply by_url = DeployJson(
      "web", R"({"source": {"url": "http://127.0.0.1:)" + std::to_string(port) + R"(/app.tgz"}})");
  Reply missing_url = DeployJson(
      "web", R"({"source": {"url": "http://127.0.0.1:)" + std::to_string(port) + R"(/nope.tgz"}})");
  ::kill(http, SIGTERM);
  ::waitpid(http, nullptr, 0);
  ASSERT_EQ(by_url.Str("/data/status"), "live") << by_url;
  EXPECT_EQ(Call("GET", "/v1/apps/web", admin_).Str("/data/release/runtime"), "python");
  EXPECT_EQ(missing_url.Str("/data/status"), "failed");
  EXPECT_EQ(missing_url.Str("/data/error/code"), "SOURCE_FETCH_FAILED") << missing_url;
  EXPECT_EQ(missing_url.Str("/data/error/step"), "source");

  // Git: a local repository with a tag.
  fs::path repo = Scratch("repo");
  fs::copy(ExamplesDir() / "node", repo, fs::copy_options::recursive);
  std::string git = "cd " + repo.string() +
                    " && git init -q -b main && git add -A && git -c user.email=t@t -c "
                    "user.name=t commit -qm one && git tag v1";
  ASSERT_EQ(std::system(git.c_str()), 0);
  Reply by_git = DeployJson(
      "web", R"({"source": {"git": {"repo": ")" + repo.string() + R"(", "ref": "v1"}}})");
  ASSERT_EQ(by_git.Str("/data/status"), "live") << by_git;
  EXPECT_EQ(Call("GET", "/v1/apps/web", admin_).Str("/data/release/runtime"), "node");
  Reply bad_ref = DeployJson(
      "web", R"({"source": {"git": {"repo": ")" + repo.string() + R"(", "ref": "v9"}}})");
  EXPECT_EQ(bad_ref.Str("/data/error/code"), "GIT_REF_NOT_FOUND") << bad_ref;
  Reply bad_repo = DeployJson("web", R"({"source": {"git": {"repo": "/nonexistent/repo.git"}}})");
  EXPECT_EQ(bad_repo.Str("/data/error/code"), "GIT_REPO_NOT_FOUND") << bad_repo;
  // Through all of it the git release kept serving.
  EXPECT_FALSE(Body("web").empty());
}

TEST_F(AppTest, RedeployUnderLoadFailsNoRequest) {
  CreateApp("steady");
  ASSERT_EQ(DeployDir("steady", ExamplesDir() / "node").Str("/data/status"), "live");
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, failed{0};
  std::string first_failure;
  std::mutex mu;
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) {
    clients.emplace_back([&] {
      while (!stop) {
        auto r = Fetch("steady");
        if (r.ok() && r->status == 200) {
          ++ok;
        } else {
          ++failed;
          std::lock_guard lock(mu);
          if (first_failure.empty()) {
            first_failure = r.ok() ? r->body : r.status().ToString();
          }
        }
      }
    });
  }
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(DeployDir("steady", ExamplesDir() / "node").Str("/data/status"), "live");
  }
  std::this_thread::sleep_for(300ms);
  stop = true;
  for (auto& t : clients) {
    t.join();
  }
  EXPECT_GT(ok.load(), 50);
  EXPECT_EQ(failed.load(), 0) << first_failure;
  // Old instances were drained and removed: one instance serves.
  int apps = 0;
  for (const auto& e : fs::directory_iterator(server().dir() / "instances")) {
    apps += ReadFile(e.path() / "instance.json").find("app:") != std::string::npos;
  }
  EXPECT_EQ(apps, 1);
}

// An agent without a filesystem sends the app's files in the request (utf8 and base64).
TEST_F(AppTest, DeploysFilesSentInlineAndRefusesBadOnesBeforeStoringAnything) {
  CreateApp("inline");
  const std::string png("\x89PNG\r\n\x1a\n\0\0\xff\xfe", 12);
  auto file = [](std::string path, std::string content, std::string encoding = "",
                 bool executable = false) {
    json::object f{{"path", path}, {"content", content}};
    if (!encoding.empty()) {
      f["encoding"] = encoding;
    }
    if (executable) {
      f["executable"] = true;
    }
    return f;
  };
  // The start script must keep its executable bit to run.
  const std::string run_sh =
      "#!/bin/sh\necho started by run.sh\nexec python3 -m http.server \"$PORT\" --bind 127.0.0.1\n";
  json::object body{{"files", json::array{file("index.html", "<h1>sent inline</h1>", "utf8"),
                                          file("img/logo.png", crypto::Base64Encode(png), "base64"),
                                          file("run.sh", run_sh, "", true)}},
                    {"start", "./run.sh"}};
  Reply dep = DeployJson("inline", json::serialize(body));
  ASSERT_EQ(dep.Str("/data/status"), "live") << dep;
  EXPECT_EQ(dep.Str("/data/source/type"), "files");
  EXPECT_EQ(dep.Int("/data/source/count"), 3);
  EXPECT_EQ(
      dep.Int("/data/source/bytes"),
      static_cast<int64_t>(std::string("<h1>sent inline</h1>").size() + png.size() + run_sh.size()))
      << dep;
  EXPECT_EQ(Call("GET", "/v1/apps/inline", admin_).Str("/data/release/runtime"), "static");
  EXPECT_EQ(Body("inline"), "<h1>sent inline</h1>");
  EXPECT_EQ(Body("inline", "/img/logo.png"), png);
  Reply log = Call("GET", "/v1/deployments/" + dep.Str("/data/id") + "/logs", admin_);
  EXPECT_NE(log.body.find("unpacking 3 inline files"), std::string::npos) << log;
  EXPECT_TRUE(!fs::exists(server().dir() / "builds") || fs::is_empty(server().dir() / "builds"));

  // Bad input is refused at once, before anything is stored or deployed.
  auto deploy = [&](const json::object& b) {
    return Call("POST", "/v1/apps/inline/deployments", admin_, json::serialize(b));
  };
  Reply dotdot =
      deploy({{"files", json::array{file("index.html", "x"), file("../../etc/cron.d/evil", "x")}}});
  EXPECT_EQ(dotdot.status, 400) << dotdot;
  EXPECT_EQ(dotdot.ErrorCode(), "FILES_PATH_INVALID");
  EXPECT_NE(dotdot.Str("/error/message").find("files[1]"), std::string::npos) << dotdot;
  EXPECT_NE(dotdot.Str("/error/message").find("../../etc/cron.d/evil"), std::string::npos);
  EXPECT_FALSE(dotdot.Str("/error/hint").empty());
  Reply absolute = deploy({{"files", json::array{file("/etc/passwd", "x")}}});
  EXPECT_EQ(absolute.ErrorCode(), "FILES_PATH_INVALID") << absolute;
  Reply dup = deploy({{"files", json::array{file("a.html", "1"), file("a.html", "2")}}});
  EXPECT_EQ(dup.status, 400);
  EXPECT_EQ(dup.ErrorCode(), "FILES_DUPLICATE_PATH") << dup;
  Reply bad64 = deploy({{"files", json::array{file("logo.png", "not base64 at all!", "base64")}}});
  EXPECT_EQ(bad64.status, 400);
  EXPECT_EQ(bad64.ErrorCode(), "FILES_ENCODING_INVALID") << bad64;
  Reply both = deploy({{"files", json::array{file("index.html", "x")}},
                       {"source", json::object{{"template", "static"}}}});
  EXPECT_EQ(both.status, 400);
  EXPECT_EQ(both.ErrorCode(), "SOURCE_CONFLICT") << both;
  EXPECT_FALSE(both.Str("/error/hint").empty());
  Reply none = deploy({{"files", json::array{}}});
  EXPECT_EQ(none.status, 400);
  EXPECT_EQ(none.ErrorCode(), "VALIDATION_FAILED") << none;
  Reply encoding = deploy({{"files", json::array{file("a", "x", "latin1")}}});
  EXPECT_EQ(encoding.ErrorCode(), "VALIDATION_FAILED") << encoding;

  Reply list = Call("GET", "/v1/apps/inline/deployments", admin_);
  EXPECT_EQ(list.Array("/data").size(), 1u) << list;
  EXPECT_TRUE(!fs::exists(server().dir() / "builds") || fs::is_empty(server().dir() / "builds"));
  EXPECT_FALSE(fs::exists(server().dir() / "etc"));
  EXPECT_EQ(Body("inline"), "<h1>sent inline</h1>");
}

TEST_F(AppTest, FailedDeploysKeepTheLiveReleaseAndSayWhy) {
  CreateApp("keep");
  ASSERT_EQ(DeployDir("keep", ExamplesDir() / "static").Str("/data/status"), "live");
  std::string live = Body("keep");

  // Crashes on start.
  Reply crash = DeployDir("keep", ExamplesDir() / "static",
                          R"({"start": "echo booting; echo oops >&2; exit 3"})");
  EXPECT_EQ(crash.Str("/data/status"), "failed");
  EXPECT_EQ(crash.Str("/data/error/step"), "start");
  EXPECT_EQ(crash.Str("/data/error/code"), "APP_CRASHED") << crash;
  EXPECT_NE(crash.Str("/data/error/message").find("oops"), std::string::npos) << crash;
  // Never opens its port.
  Reply silent = DeployDir("keep", ExamplesDir() / "static", R"({"start": "sleep 600"})");
  EXPECT_EQ(silent.Str("/data/error/code"), "HEALTH_CHECK_TIMEOUT") << silent;
  // A health check path that fails.
  Reply unhealthy =
      DeployDir("keep", ExamplesDir() / "static", R"({"healthCheckPath": "/no-such-page"})");
  EXPECT_EQ(unhealthy.Str("/data/error/code"), "HEALTH_CHECK_FAILED") << unhealthy;
  // A build that fails.
  Reply build = DeployDir("keep", ExamplesDir() / "static", R"({"build": "exit 7"})");
  EXPECT_EQ(build.Str("/data/error/step"), "build");
  EXPECT_EQ(build.Str("/data/error/code"), "BUILD_FAILED") << build;

  EXPECT_EQ(Body("keep"), live);
  Reply info = Call("GET", "/v1/apps/keep", admin_);
  EXPECT_EQ(info.Str("/data/status"), "running");
  // Nothing half-made stays: no build directories, one app instance.
  EXPECT_TRUE(!fs::exists(server().dir() / "builds") || fs::is_empty(server().dir() / "builds"));
}

TEST_F(AppTest, RollbackServesTheEarlierReleaseWithoutRebuilding) {
  CreateApp("back");
  Reply one = DeployDir("back", ExamplesDir() / "static");
  ASSERT_EQ(one.Str("/data/status"), "live");
  std::string v1 = Body("back");
  Reply two = DeployDir("back", ExamplesDir() / "python");
  ASSERT_EQ(two.Str("/data/status"), "live");
  ASSERT_NE(Body("back"), v1);
  EXPECT_EQ(Call("GET", "/v1/deployments/" + one.Str("/data/id"), admin_).Str("/data/status"),
            "superseded");

  Reply back = Call("POST", "/v1/apps/back/rollback", admin_, "{}");
  ASSERT_EQ(back.status, 200) << back;
  EXPECT_EQ(back.Str("/data/kind"), "rollback");
  EXPECT_EQ(back.Str("/data/status"), "live");
  EXPECT_EQ(back.Str("/data/release"), one.Str("/data/release"));
  EXPECT_EQ(Body("back"), v1);
  // And forward again, to a named deployment.
  Reply forward = Call("POST", "/v1/apps/back/rollback", admin_,
                       R"({"deploymentId": ")" + two.Str("/data/id") + "\"}");
  ASSERT_EQ(forward.status, 200) << forward;
  EXPECT_NE(Body("back"), v1);
}

TEST_F(AppTest, DataVolumeKeepsASqliteRowAcrossRedeployAndRollback) {
  CreateApp("db", R"("dataQuotaMb": 64)");
  ASSERT_EQ(DeployDir("db", ExamplesDir() / "python").Str("/data/status"), "live");
  Reply w = Exec("db",
                 "python3 -c \"import sqlite3; c=sqlite3.connect('/data/app.db'); "
                 "c.execute('create table t(v)'); c.execute(\\\"insert into t values('kept')\\\"); "
                 "c.commit()\"");
  ASSERT_EQ(w.Int("/data/exitCode"), 0) << w;
  auto read = [&] {
    Reply r =
        Exec("db",
             "python3 -c \"import sqlite3; "
             "print(sqlite3.connect('/data/app.db').execute('select v from t').fetchone()[0])\"");
    return r.Str("/data/stdout");
  };
  ASSERT_EQ(DeployDir("db", ExamplesDir() / "static").Str("/data/status"), "live");
  EXPECT_EQ(read(), "kept\n");
  ASSERT_EQ(Call("POST", "/v1/apps/db/rollback", admin_, "{}").status, 200);
  EXPECT_EQ(read(), "kept\n");
  ASSERT_EQ(Call("POST", "/v1/apps/db/restart", admin_).status, 200);
  EXPECT_EQ(read(), "kept\n");
  Reply info = Call("GET", "/v1/apps/db", admin_);
  EXPECT_GT(info.Int("/data/data/usedBytes"), 0);
  EXPECT_GT(info.Int("/data/data/quotaBytes"), 0);
  EXPECT_LE(info.Int("/data/data/quotaBytes"), 64 << 20);
  // The quota is real: writing past it fails.
  Reply fill = Exec("db", "head -c 100M /dev/zero > /data/big");
  EXPECT_NE(fill.Int("/data/exitCode"), 0) << fill;
}

TEST_F(AppTest, SecretEnvNeverShowsInAnswersOrLogs) {
  CreateApp("sec");
  const std::string secret = "hunter2-s3cr3t-value";
  Reply set = Call(
      "PUT", "/v1/apps/sec/env", admin_,
      R"({"vars": {"API_TOKEN": ")" + secret + R"(", "GREETING": "hi"}, "secret": ["API_TOKEN"]})");
  ASSERT_EQ(set.status, 200) << set;
  EXPECT_EQ(set.body.find(secret), std::string::npos);
  EXPECT_NE(set.Str("/data/note").find("next deploy"), std::string::npos);
  Reply bad = Call("PUT", "/v1/apps/sec/env", admin_, R"({"vars": {"A-B": "x"}})");
  EXPECT_EQ(bad.status, 400);
  EXPECT_EQ(bad.ErrorCode(), "ENV_KEY_INVALID");

  Reply dep = DeployDir(
      "sec", ExamplesDir() / "static",
      R"({"build": "echo token=$API_TOKEN", "start": "echo runtime=$API_TOKEN greeting=$GREETING; exec python3 -m http.server $PORT --bind 127.0.0.1"})");
  // The build env only has build variables: API_TOKEN is runtime-only.
  ASSERT_EQ(dep.Str("/data/status"), "live") << dep;
  Reply env = Call("GET", "/v1/apps/sec/env", admin_);
  EXPECT_EQ(env.body.find(secret), std::string::npos);
  Reply logs;
  for (int i = 0; i < 50; ++i) {
    logs = Call("GET", "/v1/apps/sec/logs", admin_);
    if (logs.body.find("runtime=") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_NE(logs.body.find("runtime=********"), std::string::npos) << logs;
  EXPECT_NE(logs.body.find("greeting=hi"), std::string::npos) << logs;
  EXPECT_EQ(logs.body.find(secret), std::string::npos);
  // Marked as a build variable, it reaches the build, masked in the deployment log.
  ASSERT_EQ(Call("PUT", "/v1/apps/sec/env", admin_,
                 R"({"vars": {"API_TOKEN": ")" + secret +
                     R"("}, "secret": ["API_TOKEN"], "build": ["API_TOKEN"]})")
                .status,
            200);
  Reply dep2 = DeployDir("sec", ExamplesDir() / "static", R"({"build": "echo token=$API_TOKEN"})");
  Reply dlog = Call("GET", "/v1/deployments/" + dep2.Str("/data/id") + "/logs", admin_);
  EXPECT_NE(dlog.body.find("token=********"), std::string::npos) << dlog;
  EXPECT_EQ(dlog.body.find(secret), std::string::npos);
  EXPECT_EQ(ReadFile(server().dir() / "kiln.db").find(secret), std::string::npos);
  EXPECT_EQ(ReadFile(server().dir() / "server.log").find(secret), std::string::npos);
}

TEST_F(AppTest, BadInputGetsItsOwnCode) {
  EXPECT_EQ(Call("POST", "/v1/apps", admin_, R"({"name": "Bad_Name"})").ErrorCode(),
            "APP_NAME_INVALID");
  EXPECT_EQ(Call("POST", "/v1/apps", admin_, R"({"name": "low", "port": 80})").ErrorCode(),
            "PORT_INVALID");
  CreateApp("dup");
  Reply again = Call("POST", "/v1/apps", admin_, R"({"name": "dup"})");
  EXPECT_EQ(again.status, 409);
  EXPECT_EQ(again.ErrorCode(), "APP_EXISTS");
  Reply wrong = Call("DELETE", "/v1/apps/dup?confirm=dupe", admin_);
  EXPECT_EQ(wrong.status, 409);
  EXPECT_EQ(wrong.ErrorCode(), "CONFIRMATION_REQUIRED");

  // An archive with a .. entry: the deployment fails at `source`, nothing is written outside.
  fs::path evil = Scratch("evil");
  fs::create_directories(evil / "a");
  std::ofstream(evil / "a" / "x") << "x";
  auto tar = RunProcess(
      {"tar", "czf", "-", "-C", (evil / "a").string(), "--transform", "s,^,../../,", "x"}, 10s);
  ASSERT_TRUE(tar.ok());
  Reply up = Upload("dup", tar->output);
  ASSERT_EQ(up.status, 202) << up;
  Reply unsafe = Wait(up.Str("/data/id"));
  EXPECT_EQ(unsafe.Str("/data/error/code"), "ARCHIVE_UNSAFE") << unsafe;
  Reply junk = Wait(Upload("dup", "not a tarball at all").Str("/data/id"));
  EXPECT_EQ(junk.Str("/data/error/code"), "ARCHIVE_INVALID") << junk;

  // Two deployments at once.
  Reply slow = Upload("dup", TarGz(ExamplesDir() / "static"), R"({"build": "sleep 30"})");
  ASSERT_EQ(slow.status, 202);
  Reply second = Upload("dup", TarGz(ExamplesDir() / "static"));
  EXPECT_EQ(second.status, 409);
  EXPECT_EQ(second.ErrorCode(), "DEPLOY_IN_PROGRESS");
  EXPECT_NE(second.Str("/error/message").find(slow.Str("/data/id")), std::string::npos);
  // Cancel it: it ends as cancelled, quickly.
  auto t0 = std::chrono::steady_clock::now();
  Reply cancelled = Call("POST", "/v1/deployments/" + slow.Str("/data/id") + "/cancel", admin_);
  EXPECT_EQ(cancelled.status, 200) << cancelled;
  EXPECT_EQ(cancelled.Str("/data/status"), "cancelled") << cancelled;
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 20s);
  EXPECT_EQ(Call("POST", "/v1/deployments/" + slow.Str("/data/id") + "/cancel", admin_).ErrorCode(),
            "DEPLOYMENT_FINISHED");
  EXPECT_EQ(Call("DELETE", "/v1/apps/dup?confirm=dup", admin_).status, 200);
  EXPECT_EQ(Call("GET", "/v1/apps/dup", admin_).status, 404);
}

TEST_F(AppTest, ServerRestartKeepsAppsServingAndFailsInterruptedDeploys) {
  CreateApp("stay");
  ASSERT_EQ(DeployDir("stay", ExamplesDir() / "node").Str("/data/status"), "live");
  // The node example counts visits in /data: the count goes on across restarts.
  const std::string before = "Hello from Kiln!";
  ASSERT_NE(Body("stay").find("visited 1 time."), std::string::npos);
  ASSERT_EQ(server().Stop(), 0);
  ASSERT_TRUE(server().Start());
  EXPECT_NE(Body("stay").find("visited 2 times"), std::string::npos);

  // A crash in the middle of a build: the next start fails the deployment, never stuck.
  Reply slow = Upload("stay", TarGz(ExamplesDir() / "node"), R"({"build": "sleep 60"})");
  ASSERT_EQ(slow.status, 202);
  for (int i = 0; i < 100; ++i) {
    if (Call("GET", "/v1/deployments/" + slow.Str("/data/id"), admin_)
            .body.find("\"build\",\"status\":\"running\"") != std::string::npos) {
      break;
    }
    std::this_thread::sleep_for(50ms);
  }
  std::this_thread::sleep_for(500ms);
  server().Kill9();
  ASSERT_TRUE(server().Start());
  Reply after = Call("GET", "/v1/deployments/" + slow.Str("/data/id"), admin_);
  EXPECT_EQ(after.Str("/data/status"), "failed") << after;
  EXPECT_EQ(after.Str("/data/error/code"), "SERVER_RESTARTED") << after;
  EXPECT_NE(Body("stay").find(before), std::string::npos);
  // And a new deployment can start.
  EXPECT_EQ(DeployDir("stay", ExamplesDir() / "node").Str("/data/status"), "live");
}

TEST_F(AppTest, LifecycleStopStartSleepWakeAndResize) {
  CreateApp("life");
  ASSERT_EQ(DeployDir("life", ExamplesDir() / "node").Str("/data/status"), "live");
  ASSERT_EQ(Call("POST", "/v1/apps/life/stop", admin_).Str("/data/status"), "stopped");
  // A stopped app is not woken by a request: 503, saying how to start it.
  auto stopped = Fetch("life");
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(stopped->status, 503);
  EXPECT_NE(stopped->body.find("APP_UNAVAILABLE"), std::string::npos) << stopped->body;
  ASSERT_EQ(Call("POST", "/v1/apps/life/start", admin_).Str("/data/status"), "running");
  EXPECT_FALSE(Body("life").empty());
  ASSERT_EQ(Call("POST", "/v1/apps/life/sleep", admin_).Str("/data/status"), "sleeping");
  // A request wakes it.
  EXPECT_FALSE(Body("life").empty());
  EXPECT_EQ(Call("GET", "/v1/apps/life", admin_).Str("/data/status"), "running");
  Reply resized = Call("PATCH", "/v1/apps/life/resources", admin_, R"({"memoryMb": 300})");
  ASSERT_EQ(resized.status, 200) << resized;
  EXPECT_EQ(resized.Int("/data/stats/memoryLimitBytes"), 300LL << 20) << resized;
  Reply patched =
      Call("PATCH", "/v1/apps/life", admin_, R"({"sleepAfterMinutes": 5, "name": "x"})");
  EXPECT_EQ(Strings(patched.Array("/data/applied")), std::vector<std::string>{"sleepAfterMinutes"});
  EXPECT_EQ(Strings(patched.Array("/data/ignored")), std::vector<std::string>{"name"});
  // Exec and files on the running instance.
  EXPECT_EQ(Exec("life", "cat /app/package.json >/dev/null && echo ok").Str("/data/stdout"),
            "ok\n");
  EXPECT_EQ(Call("PUT", "/v1/apps/life/files?path=/data/note.txt", admin_, "hello",
                 {{"content-type", "application/octet-stream"}})
                .status,
            200);
  EXPECT_EQ(Call("GET", "/v1/apps/life/files?path=/data/note.txt", admin_).body, "hello");
}

}  // namespace
}  // namespace kiln::testing
