// Nothing acknowledged is lost (STYLE.md "Tests": fault injection wherever data must not be
// lost): a clean restart keeps all state and the key files; kill -9 in the middle of writes
// loses no acknowledged key and leaves a sound database; SIGTERM lets a request in flight
// finish before the process exits 0.
#include <atomic>
#include <cstdio>
#include <mutex>
#include <set>

#include "integration/server_fixture.h"

namespace kiln::testing {
namespace {

// Runs `sqlite3 DB 'PRAGMA integrity_check'` and answers its output.
std::string IntegrityCheck(const fs::path& db) {
  std::string cmd = "sqlite3 '" + db.string() + "' 'PRAGMA integrity_check' 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) {
    return "popen failed";
  }
  std::string out;
  char buf[512];
  while (size_t n = std::fread(buf, 1, sizeof buf, p)) {
    out.append(buf, n);
  }
  int rc = ::pclose(p);
  if (rc != 0) {
    out += " (exit " + std::to_string(rc) + ")";
  }
  return Trim(out);
}

int Count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t pos = text.find(what); pos != std::string::npos; pos = text.find(what, pos + 1)) {
    ++n;
  }
  return n;
}

class DurabilityTest : public ServerTest {
 protected:
  // Four writers on one admin key must not be throttled.
  std::string Config() override {
    // A long grace period, so that "exits promptly" below cannot be the grace running out.
    return "[limits]\nrate_per_second = 1000000\nrate_burst = 1000000\n"
           "[server]\nshutdown_grace_ms = 30000\n";
  }
};

TEST_F(DurabilityTest, RestartKeepsEverything) {
  json::object k1 = MintKey("k1", R"(["read"])");
  json::object k2 = MintKey("k2", R"(["read","write","exec"])");
  json::object gone = MintKey("gone", R"(["read"])");
  ASSERT_EQ(Call("DELETE", "/v1/keys/" + S(gone, "id") + "?confirm=gone", admin_).status, 200);
  Reply ws = Call("POST", "/v1/workspaces", admin_, R"({"slug":"acme"})");
  ASSERT_EQ(ws.status, 201) << ws;
  std::string acme_admin = ws.Str("/data/key/secret");
  json::object acme_key = MintKey("acme-ci", R"(["read"])", acme_admin);
  Reply token = Call("POST", "/v1/auth/token", S(k2, "secret"), "{}");
  ASSERT_EQ(token.status, 200) << token;
  std::string jwt = token.Str("/data/token");

  auto snapshot = [&] {
    std::string out;
    for (const auto& k : ListAll("/v1/keys", admin_)) {
      out += S(k, "id") + ":" + S(k, "status") + " ";
    }
    out += "| ";
    for (const auto& k : ListAll("/v1/keys", acme_admin)) {
      out += S(k, "id") + " ";
    }
    out += "| ";
    for (const auto& w : ListAll("/v1/workspaces", admin_)) {
      out += S(w, "id") + S(w, "slug") + " ";
    }
    out += "| ";
    for (const auto& e : ListAll("/v1/events", admin_)) {
      out += S(e, "id") + " ";
    }
    return out;
  };
  std::string before = snapshot();
  std::string admin_file = ReadFile(server().dir() / "admin.key");
  std::string master_file = ReadFile(server().dir() / "master.key");

  EXPECT_EQ(server().Stop(), 0) << "SIGTERM must exit 0";
  EXPECT_FALSE(fs::exists(server().dir() / "kiln.addr")) << "kiln.addr outlived the server";
  ASSERT_TRUE(server().Start());

  EXPECT_EQ(snapshot(), before);
  EXPECT_EQ(ReadFile(server().dir() / "admin.key"), admin_file);
  EXPECT_EQ(ReadFile(server().dir() / "master.key"), master_file);
  EXPECT_EQ(FileMode(server().dir() / "admin.key"), 0600);
  EXPECT_EQ(FileMode(server().dir() / "master.key"), 0600);
  EXPECT_EQ(FileMode(server().dir()), 0700);
  EXPECT_EQ(Count(ReadFile(server().dir() / "server.log"), "Created workspace"), 1)
      << "the restart bootstrapped again";

  Reply me1 = Call("GET", "/v1/me", S(k1, "secret"));
  EXPECT_EQ(me1.status, 200) << me1;
  EXPECT_EQ(me1.Str("/data/key/id"), S(k1, "id"));
  EXPECT_EQ(Call("GET", "/v1/me", admin_).status, 200);
  Reply acme_me = Call("GET", "/v1/me", S(acme_key, "secret"));
  EXPECT_EQ(acme_me.status, 200) << acme_me;
  EXPECT_EQ(acme_me.Str("/data/workspace/slug"), "acme");
  Reply revoked = Call("GET", "/v1/me", S(gone, "secret"));
  EXPECT_EQ(revoked.status, 401) << revoked;
  EXPECT_EQ(revoked.ErrorCode(), "KEY_REVOKED") << revoked;
  // Tokens are signed with a key derived from master.key, which persists.
  Reply jwt_me = Call("GET", "/v1/me", jwt);
  EXPECT_EQ(jwt_me.status, 200) << jwt_me;
  EXPECT_EQ(jwt_me.Str("/data/auth"), "jwt");

  // A second clean cycle changes nothing either.
  ASSERT_TRUE(server().Restart());
  EXPECT_EQ(snapshot(), before);
}

TEST_F(DurabilityTest, KillNineLosesNoAcknowledgedKey) {
  struct Acked {
    std::string id, secret;
  };
  std::mutex mu;
  std::vector<Acked> acked;
  std::atomic<bool> stop{false};
  std::atomic<int> errors_before_kill{0};
  std::atomic<bool> killed{false};
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&, t] {
      for (int i = 0; !stop.load(); ++i) {
        std::string body = R"({"name":"crash-)" + std::to_string(t) + "-" + std::to_string(i) +
                           R"(","scopes":["read"]})";
        auto r = server().TryRequest("POST", "/v1/keys", body, Auth(admin_), 5s);
        if (r.ok() && r->status == 201) {
          std::lock_guard lock(mu);
          acked.push_back({r->Str("/data/id"), r->Str("/data/secret")});
        } else {
          if (!killed.load()) {
            ++errors_before_kill;
          }
          std::this_thread::sleep_for(1ms);
        }
      }
    });
  }
  std::this_thread::sleep_for(1500ms);
  killed = true;
  server().Kill9();
  std::this_thread::sleep_for(100ms);  // let writers see the dead server
  stop = true;
  for (auto& w : writers) {
    w.join();
  }
  EXPECT_EQ(errors_before_kill.load(), 0) << "writes failed while the server was up";
  ASSERT_GE(acked.size(), 10u) << "too few writes to say anything";
  std::printf("[   INFO   ] %zu keys acknowledged before kill -9\n", acked.size());

  // The database as the crash left it is sound (SQLite recovers the WAL on open).
  EXPECT_EQ(IntegrityCheck(server().dir() / "kiln.db"), "ok");

  ASSERT_TRUE(server().Start());
  std::set<std::string> listed;
  for (const auto& k : ListAll("/v1/keys", admin_)) {
    listed.insert(S(k, "id"));
  }
  size_t missing = 0;
  for (const auto& a : acked) {
    if (!listed.contains(a.id)) {
      ++missing;
      ADD_FAILURE() << "acknowledged key " << a.id << " is gone after kill -9";
      if (missing > 10) {
        break;
      }
    }
  }
  EXPECT_EQ(missing, 0u) << "of " << acked.size() << " acknowledged keys";
  for (const auto& a : acked) {
    Reply me = Call("GET", "/v1/me", a.secret);
    ASSERT_EQ(me.status, 200) << a.id << ": " << me;
    ASSERT_EQ(me.Str("/data/key/id"), a.id);
  }
  // The server still writes after recovery.
  EXPECT_EQ(Call("POST", "/v1/keys", admin_, R"({"name":"after-crash"})").status, 201);

  EXPECT_EQ(server().Stop(), 0);
  EXPECT_EQ(IntegrityCheck(server().dir() / "kiln.db"), "ok");
}

TEST_F(DurabilityTest, SigtermFinishesTheRequestInFlight) {
  const std::string body = R"({"name":"in-flight","scopes":["read"]})";
  RawClient client(server().port());
  ASSERT_TRUE(client.connected());
  std::string head =
      "POST /v1/keys HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + admin_ +
      "\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
      "\r\n\r\n";
  size_t half = body.size() / 2;
  ASSERT_TRUE(client.Send(head + body.substr(0, half)));
  std::this_thread::sleep_for(200ms);  // the server has the head and is reading the body

  server().Terminate();
  std::this_thread::sleep_for(300ms);  // the shutdown has begun
  EXPECT_TRUE(server().running());
  ASSERT_TRUE(client.Send(body.substr(half)));

  std::string raw = client.Read(10s, nullptr, /*stop_at_response=*/true);
  auto reply = ParseRawResponse(raw);
  ASSERT_TRUE(reply.has_value()) << "no complete response: \"" << raw << "\"";
  EXPECT_TRUE(RawClient::Complete(raw)) << raw;
  EXPECT_EQ(reply->status, 201) << raw;
  EXPECT_TRUE(reply->Str("/data/secret").starts_with("kiln_sk_")) << raw;
  EXPECT_EQ(Lower(reply->Header("connection")), "close") << raw;
  std::string id = reply->Str("/data/id");

  int code = server().WaitExit(15s);
  EXPECT_EQ(code, 0) << "exit code after SIGTERM";
  if (code == ServerProcess::kStillRunning) {
    server().Kill9();
  }

  // The key it answered for was committed.
  ASSERT_TRUE(server().Start());
  Reply got = Call("GET", "/v1/keys/" + id, admin_);
  EXPECT_EQ(got.status, 200) << got;
  EXPECT_EQ(got.Str("/data/name"), "in-flight");
}

TEST_F(DurabilityTest, SigtermWithIdleConnectionsExitsPromptly) {
  // Idle keep-alive connections do not hold the shutdown for the grace period.
  RawClient idle(server().port());
  ASSERT_TRUE(idle.connected());
  ASSERT_TRUE(idle.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::string raw = idle.Read(5s, nullptr, true);
  ASSERT_TRUE(RawClient::Complete(raw)) << raw;
  auto start = std::chrono::steady_clock::now();
  EXPECT_EQ(server().Stop(), 0);
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s) << "idle connections held the shutdown";
  bool closed = false;
  idle.Read(2s, &closed);
  EXPECT_TRUE(closed);
}

}  // namespace
}  // namespace kiln::testing
