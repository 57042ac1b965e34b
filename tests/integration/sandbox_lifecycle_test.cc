// Sandboxes through the REST API on real runc: create → exec → files → pause → resume →
// extend → expire → kill, exec as JSON and as SSE, the warm pool, quotas, and workspaces.
#include <regex>

#include "integration/sandbox_fixture.h"

namespace kiln::testing {
namespace {

using namespace std::chrono_literals;

class SandboxLifecycleTest : public SandboxTest {};

TEST_F(SandboxLifecycleTest, CreateExecFilesPauseResumeExtendExpire) {
  Reply created = Call("POST", "/v1/sandboxes", admin_,
                       R"({"timeout": 3, "metadata": {"owner": "ci"}, "env": {"GREETING": "hello"},
                           "memoryMb": 256, "cpus": 0.5})");
  ASSERT_EQ(created.status, 201) << created;
  std::string id = created.Str("/data/id");
  EXPECT_TRUE(id.starts_with("sbx_")) << created;
  EXPECT_EQ(created.Str("/data/status"), "running");
  EXPECT_EQ(created.Str("/data/metadata/owner"), "ci");
  EXPECT_EQ(created.Int("/data/resources/memoryMb"), 256);

  // The environment given at create is every command's; the hostname is the id.
  EXPECT_EQ(Run(id, "echo $GREETING; hostname"), "hello\n" + id + "\n");
  // The limits asked for are the cgroup's.
  EXPECT_EQ(Run(id,
                "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || "
                "cat /sys/fs/cgroup/memory.max"),
            std::to_string(256 << 20) + "\n");

  // Files: write (parents made), read back byte for byte, list.
  std::string bytes("bin\0ary\xff\n", 9);
  Reply put = Call("PUT", "/v1/sandboxes/" + id + "/files?path=/root/work/data.bin", admin_, bytes);
  ASSERT_EQ(put.status, 200) << put;
  Reply got = Call("GET", "/v1/sandboxes/" + id + "/files?path=/root/work/data.bin", admin_);
  ASSERT_EQ(got.status, 200) << got;
  EXPECT_EQ(got.body, bytes);
  EXPECT_EQ(got.Header("content-type"), "application/octet-stream");
  EXPECT_EQ(Run(id, "wc -c < /root/work/data.bin"), "9\n");  // what the sandbox sees
  Reply list = Call("GET", "/v1/sandboxes/" + id + "/files/list?path=/root/work", admin_);
  ASSERT_EQ(list.status, 200) << list;
  ASSERT_EQ(list.Array("/data/entries").size(), 1u) << list;
  EXPECT_EQ(list.Str("/data/entries/0/name"), "data.bin");
  EXPECT_EQ(list.Int("/data/entries/0/size"), 9);
  Reply removed = Call("DELETE", "/v1/sandboxes/" + id + "/files?path=/root/work/data.bin", admin_);
  EXPECT_EQ(removed.status, 200) << removed;
  EXPECT_EQ(Call("GET", "/v1/sandboxes/" + id + "/files?path=/root/work/data.bin", admin_).status,
            404);

  // Pause freezes: exec is refused with 409, and a process's clock does not advance work.
  Run(id,
      "nohup sh -c 'while true; do date +%s%N >> /tmp/ticks; sleep 0.05; done' "
      ">/dev/null 2>&1 &");
  Reply paused = Call("POST", "/v1/sandboxes/" + id + "/pause", admin_);
  ASSERT_EQ(paused.status, 200) << paused;
  EXPECT_EQ(paused.Str("/data/status"), "paused");
  Reply refused = Exec(id, "true");
  EXPECT_EQ(refused.status, 409) << refused;
  EXPECT_EQ(refused.ErrorCode(), "SANDBOX_PAUSED");
  std::string frozen_file = (server().dir() / "instances" / id / "upper/tmp/ticks").string();
  auto size_at = [&] { return fs::exists(frozen_file) ? fs::file_size(frozen_file) : 0; };
  auto before = size_at();
  std::this_thread::sleep_for(400ms);
  EXPECT_EQ(size_at(), before) << "a paused sandbox kept running";
  Reply resumed = Call("POST", "/v1/sandboxes/" + id + "/resume", admin_);
  ASSERT_EQ(resumed.status, 200) << resumed;
  EXPECT_EQ(Run(id, "echo back"), "back\n");

  // Extend, then let it expire: the reaper kills it on time and removes everything.
  Reply extended = Call("POST", "/v1/sandboxes/" + id + "/timeout", admin_, R"({"timeout": 2})");
  ASSERT_EQ(extended.status, 200) << extended;
  Reply status;
  for (int i = 0; i < 100; ++i) {
    status = Get(id);
    if (status.Str("/data/status") == "expired") {
      break;
    }
    std::this_thread::sleep_for(100ms);
  }
  EXPECT_EQ(status.Str("/data/status"), "expired") << status;
  EXPECT_EQ(status.Str("/data/endReason"), "expired");
  EXPECT_TRUE(Traces(id).empty()) << ::testing::PrintToString(Traces(id));
  Reply late = Exec(id, "true");
  EXPECT_EQ(late.status, 409) << late;
  EXPECT_EQ(late.ErrorCode(), "SANDBOX_NOT_RUNNING");
}

TEST_F(SandboxLifecycleTest, ExecResultsAndStreaming) {
  std::string id = Create();
  Reply r = Exec(id, "echo out; echo err >&2; exit 7");
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_EQ(r.Int("/data/exitCode"), 7);
  EXPECT_EQ(r.Str("/data/stdout"), "out\n");
  EXPECT_EQ(r.Str("/data/stderr"), "err\n");
  EXPECT_FALSE(r.Bool("/data/timedOut"));

  // A missing program is an exit code, not an error.
  Reply missing = Exec(id, "no-such-program --flag");
  ASSERT_EQ(missing.status, 200) << missing;
  EXPECT_EQ(missing.Int("/data/exitCode"), 127);
  Reply argv =
      Call("POST", "/v1/sandboxes/" + id + "/exec", admin_, R"({"argv": ["/definitely/missing"]})");
  EXPECT_EQ(argv.Int("/data/exitCode"), 127) << argv;

  // argv runs without a shell; stdin, cwd and env are passed.
  Reply direct = Call("POST", "/v1/sandboxes/" + id + "/exec", admin_,
                      R"({"argv": ["sh", "-c", "cat; pwd; echo $X"], "stdin": "in\n",
                          "cwd": "/tmp", "env": {"X": "42"}})");
  EXPECT_EQ(direct.Str("/data/stdout"), "in\n/tmp\n42\n") << direct;

  // Timeouts kill and say so; output caps truncate and say so.
  Reply slow = Exec(id, "sleep 30", R"("timeoutMs": 300)");
  EXPECT_TRUE(slow.Bool("/data/timedOut")) << slow;
  Reply big = Exec(id, "head -c 100000 /dev/zero | tr '\\0' a", R"("maxBytes": 1000)");
  EXPECT_EQ(big.Str("/data/stdout").size(), 1000u) << big.body.size();
  EXPECT_TRUE(big.Bool("/data/truncated"));

  // As Server-Sent Events: output chunks in order, then the result as `exit`.
  Reply sse =
      server().Request("POST", "/v1/sandboxes/" + id + "/exec",
                       R"({"command": "echo one; sleep 0.3; echo two >&2; exit 3"})",
                       {{"authorization", "Bearer " + admin_}, {"accept", "text/event-stream"}});
  ASSERT_EQ(sse.status, 200) << sse;
  EXPECT_TRUE(sse.Header("content-type").starts_with("text/event-stream")) << sse;
  EXPECT_NE(sse.body.find("event: start\ndata: {\"pid\":"), std::string::npos) << sse.body;
  size_t one = sse.body.find("event: stdout\ndata: {\"data\":\"one\\n\"}");
  size_t two = sse.body.find("event: stderr\ndata: {\"data\":\"two\\n\"}");
  size_t exit = sse.body.find("event: exit\ndata: {\"exitCode\":3");
  EXPECT_NE(one, std::string::npos) << sse.body;
  EXPECT_LT(one, two) << sse.body;
  EXPECT_LT(two, exit) << sse.body;

  // Errors before any output are plain HTTP errors, also when a stream was asked for.
  Reply gone =
      server().Request("POST", "/v1/sandboxes/sbx_nope/exec", R"({"command": "true"})",
                       {{"authorization", "Bearer " + admin_}, {"accept", "text/event-stream"}});
  EXPECT_EQ(gone.status, 404) << gone;
  EXPECT_EQ(gone.ErrorCode(), "SANDBOX_NOT_FOUND");
}

TEST_F(SandboxLifecycleTest, SignalReachesARunningCommand) {
  std::string id = Create();
  Reply result;
  std::thread running([&] {
    result =
        Exec(id, "trap 'echo got-term; exit 9' TERM; while true; do sleep 0.05; done # mark-77",
             R"("timeoutMs": 20000)");
  });
  // Its pid, as the sandbox sees it (the pid kiln-init knows it by).
  std::string pid;
  for (int i = 0; i < 100 && pid.empty(); ++i) {
    // "mark-7[7]" matches the command's line but not this pgrep's own shell.
    pid = Exec(id, "pgrep -o -f 'mark-7[7]' || true").Str("/data/stdout");
    std::this_thread::sleep_for(50ms);
  }
  ASSERT_FALSE(pid.empty());
  pid.pop_back();
  Reply sent = Call("POST", "/v1/sandboxes/" + id + "/signal", admin_,
                    R"({"pid": )" + pid + R"(, "signal": "TERM"})");
  EXPECT_EQ(sent.status, 200) << sent;
  running.join();
  EXPECT_EQ(result.Int("/data/exitCode"), 9) << result;
  EXPECT_EQ(result.Str("/data/stdout"), "got-term\n") << result;
  // Only commands started through exec can be signalled.
  Reply init = Call("POST", "/v1/sandboxes/" + id + "/signal", admin_, R"({"pid": 1})");
  EXPECT_EQ(init.status, 400) << init;  // below the minimum: never kiln-init itself
  Reply stranger = Call("POST", "/v1/sandboxes/" + id + "/signal", admin_, R"({"pid": 99999})");
  EXPECT_EQ(stranger.status, 404) << stranger;
  EXPECT_EQ(stranger.ErrorCode(), "PROCESS_NOT_FOUND");
}

TEST_F(SandboxLifecycleTest, KillRemovesEverythingAndListsFilter) {
  std::string a = Create(R"({"metadata": {"team": "red"}})");
  std::string b = Create(R"({"metadata": {"team": "blue"}})");
  EXPECT_FALSE(Traces(a).empty()) << "a running sandbox should have a mount and a cgroup";

  Reply red = Call("GET", "/v1/sandboxes?metadata.team=red", admin_);
  ASSERT_EQ(red.status, 200) << red;
  ASSERT_EQ(red.Array("/data").size(), 1u) << red;
  EXPECT_EQ(red.Str("/data/0/id"), a);

  Reply killed = Call("DELETE", "/v1/sandboxes/" + a, admin_);
  ASSERT_EQ(killed.status, 200) << killed;
  EXPECT_EQ(killed.Str("/data/status"), "killed");
  EXPECT_TRUE(Traces(a).empty()) << ::testing::PrintToString(Traces(a));
  // Killing again changes nothing; the record stays.
  EXPECT_EQ(Call("DELETE", "/v1/sandboxes/" + a, admin_).status, 200);
  EXPECT_EQ(Get(a).Str("/data/status"), "killed");

  Reply live = Call("GET", "/v1/sandboxes", admin_);
  ASSERT_EQ(live.Array("/data").size(), 1u) << live;
  EXPECT_EQ(live.Str("/data/0/id"), b);
  Reply ended = Call("GET", "/v1/sandboxes?status=killed", admin_);
  ASSERT_EQ(ended.Array("/data").size(), 1u) << ended;
  EXPECT_EQ(ended.Str("/data/0/id"), a);
}

TEST_F(SandboxLifecycleTest, AnotherWorkspaceCannotSeeOrTouchASandbox) {
  std::string id = Create();
  Reply ws = Call("POST", "/v1/workspaces", admin_, R"({"slug": "other"})");
  ASSERT_EQ(ws.status, 201) << ws;
  std::string other = ws.Str("/data/key/secret");
  const std::string base = "/v1/sandboxes/" + id;
  for (auto [method, path, body] : std::vector<std::tuple<std::string, std::string, std::string>>{
           {"GET", base, ""},
           {"POST", base + "/exec", R"({"command": "true"})"},
           {"GET", base + "/files?path=/etc/hostname", ""},
           {"PUT", base + "/files?path=/tmp/x", "x"},
           {"GET", base + "/files/list?path=/", ""},
           {"POST", base + "/pause", ""},
           {"POST", base + "/timeout", R"({"timeout": 10})"},
           {"DELETE", base, ""}}) {
    Reply r = Call(method, path, other, body);
    EXPECT_EQ(r.status, 404) << method << " " << path << ": " << r;
    EXPECT_EQ(r.ErrorCode(), "SANDBOX_NOT_FOUND") << r;
  }
  EXPECT_TRUE(Call("GET", "/v1/sandboxes", other).Array("/data").empty());
  // Untouched for its owner.
  EXPECT_EQ(Run(id, "echo still"), "still\n");
}

class SandboxPoolTest : public SandboxTest {
 protected:
  std::string Config() override { return "[sandboxes]\npool_size = 1\n"; }
};

TEST_F(SandboxPoolTest, CreateTakesAWarmInstanceAndThePoolRefills) {
  // The pool fills in the background after start.
  std::string pool_dir = (server().dir() / "instances").string();
  for (int i = 0; i < 100 && (!fs::exists(pool_dir) || fs::is_empty(pool_dir)); ++i) {
    std::this_thread::sleep_for(100ms);
  }
  std::this_thread::sleep_for(300ms);
  Reply first = Call("POST", "/v1/sandboxes", admin_, R"({"env": {"A": "1"}, "memoryMb": 128})");
  ASSERT_EQ(first.status, 201) << first;
  EXPECT_TRUE(first.Bool("/data/pooled")) << first;
  std::string id = first.Str("/data/id");
  // Configured on claim: env and memory as asked, not the pool's defaults.
  EXPECT_EQ(Run(id, "echo $A"), "1\n");
  EXPECT_EQ(Run(id,
                "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || "
                "cat /sys/fs/cgroup/memory.max"),
            std::to_string(128 << 20) + "\n");
  // A pooled sandbox is as fresh as a cold one: nothing from the pool's life shows.
  EXPECT_EQ(Run(id, "ls -A /root | wc -l"), "0\n");

  // The pool refills, so the next create is warm again.
  bool warm = false;
  for (int i = 0; i < 50 && !warm; ++i) {
    std::this_thread::sleep_for(100ms);
    std::error_code ec;
    warm = std::distance(fs::directory_iterator(pool_dir, ec), fs::directory_iterator()) >= 2;
  }
  Reply second = Call("POST", "/v1/sandboxes", admin_, "{}");
  ASSERT_EQ(second.status, 201) << second;
  EXPECT_TRUE(second.Bool("/data/pooled")) << second;
}

class SandboxQuotaTest : public SandboxTest {
 protected:
  std::string Config() override {
    return "[sandboxes]\npool_size = 0\nmax_per_workspace = 2\nmemory_mb_per_workspace = 600\n";
  }
};

TEST_F(SandboxQuotaTest, CountAndMemoryQuotasPerWorkspace) {
  std::string a = Create(R"({"memoryMb": 256})");
  Reply over_memory = Call("POST", "/v1/sandboxes", admin_, R"({"memoryMb": 512})");
  EXPECT_EQ(over_memory.status, 403) << over_memory;
  EXPECT_EQ(over_memory.ErrorCode(), "MEMORY_QUOTA_EXCEEDED");
  std::string b = Create(R"({"memoryMb": 256})");
  Reply over_count = Call("POST", "/v1/sandboxes", admin_, R"({"memoryMb": 64})");
  EXPECT_EQ(over_count.status, 429) << over_count;
  EXPECT_EQ(over_count.ErrorCode(), "SANDBOX_LIMIT_REACHED");
  EXPECT_FALSE(over_count.Str("/error/hint").empty());
  // Another workspace has its own quota.
  Reply ws = Call("POST", "/v1/workspaces", admin_, R"({"slug": "team"})");
  EXPECT_EQ(Call("POST", "/v1/sandboxes", ws.Str("/data/key/secret"), "{}").status, 201);
  // Ending one frees its share.
  ASSERT_EQ(Call("DELETE", "/v1/sandboxes/" + a, admin_).status, 200);
  EXPECT_EQ(Call("POST", "/v1/sandboxes", admin_, R"({"memoryMb": 64})").status, 201);
  (void)b;
}

}  // namespace
}  // namespace kiln::testing
