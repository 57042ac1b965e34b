// The isolation suite: what code inside a sandbox must not be able to do or see, each checked
// by trying it from inside a real sandbox, and the limits that contain a sandbox gone wild
// without touching the server or other sandboxes.
#include <fstream>

#include "integration/sandbox_fixture.h"

namespace kiln::testing {
namespace {

using namespace std::chrono_literals;

class SandboxIsolationTest : public SandboxTest {};

// A Python one-liner that prints "blocked ERRNO" or "ALLOWED".
std::string Attempt(const std::string& python_call) {
  return "python3 -c 'import os, socket, ctypes, errno\ntry:\n    " + python_call +
         "\n    print(\"ALLOWED\")\nexcept OSError as e:\n    print(\"blocked\", e.errno)'";
}

TEST_F(SandboxIsolationTest, ProcessesFilesystemAndPrivileges) {
  std::string id = Create();
  // ps shows only the sandbox's own processes: kiln-init as PID 1 and the command itself.
  std::string ps = Run(id, "ps -e -o pid=,comm= | grep -v ' ps$'");
  EXPECT_NE(ps.find("1 init"), std::string::npos) << ps;
  EXPECT_EQ(ps.find("kiln server"), std::string::npos) << ps;
  EXPECT_LE(std::count(ps.begin(), ps.end(), '\n'), 3) << ps;
  EXPECT_EQ(Run(id, "echo $$ > /dev/null; cat /proc/1/cmdline | tr '\\0' ' '").find("/.kiln/init"),
            0u);

  // /usr (the host's, shared by every sandbox) is read-only.
  Reply usr = Exec(id, "touch /usr/bin/kiln-was-here");
  EXPECT_NE(usr.Int("/data/exitCode"), 0) << usr;
  EXPECT_NE(usr.Str("/data/stderr").find("Read-only file system"), std::string::npos) << usr;
  EXPECT_FALSE(fs::exists("/usr/bin/kiln-was-here"));
  // The rest of the root is the sandbox's own copy-on-write layer: writable, and private.
  Run(id, "echo mine > /etc/motd-test && echo x > /root/x");
  EXPECT_FALSE(fs::exists("/etc/motd-test"));

  // Host files outside the template are not there at all.
  std::string marker = (server().dir() / "host-secret").string();
  std::ofstream(marker) << "secret";
  EXPECT_NE(Exec(id, "cat " + marker).Int("/data/exitCode"), 0);
  EXPECT_NE(Exec(id, "cat /etc/shadow").Int("/data/exitCode"), 0);
  EXPECT_EQ(Run(id, "cut -d: -f1 /etc/passwd | sort | tr '\\n' ' '"), "daemon nobody root user ");
  // Nor through /proc: the host's root is not reachable from PID 1's view.
  EXPECT_NE(Exec(id, "ls /proc/1/root" + marker).Int("/data/exitCode"), 0);

  // Mounting, new namespaces, raw sockets and kernel modules all fail.
  Reply mount = Exec(id, "mount -t tmpfs none /mnt");
  EXPECT_NE(mount.Int("/data/exitCode"), 0) << mount;
  for (const char* flag : {"-U", "-n", "-m", "-p -f"}) {
    Reply unshare = Exec(id, std::string("unshare ") + flag + " true");
    EXPECT_NE(unshare.Int("/data/exitCode"), 0) << "unshare " << flag << " worked: " << unshare;
  }
  EXPECT_EQ(Run(id, Attempt("socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)")),
            "blocked 1\n");
  EXPECT_EQ(Run(id, Attempt("socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)")), "blocked 1\n");
  // init_module(2) with an empty image: EPERM, not a parse error of the image.
  std::string module =
      Run(id,
          "python3 -c 'import ctypes; libc = ctypes.CDLL(None, use_errno=True); "
          "r = libc.syscall(175, ctypes.c_char_p(b\"\"), 0, ctypes.c_char_p(b\"\")); "
          "print(r, ctypes.get_errno())'");
  EXPECT_EQ(module, "-1 1\n");
  // No new privileges: setuid binaries do not raise them.
  EXPECT_EQ(Run(id, "grep NoNewPrivs /proc/self/status | tr -d '\\t '"), "NoNewPrivs:1\n");
}

TEST_F(SandboxIsolationTest, NoNetworkWithNetworkNone) {
  std::string id = Create();
  // Only loopback exists, and it works (a server inside can talk to itself).
  EXPECT_EQ(Run(id, "ls /sys/class/net"), "lo\n");
  std::string loop =
      Run(id,
          "python3 -c 'import socket\ns = socket.socket(); s.bind((\"127.0.0.1\", 0)); "
          "s.listen(); c = socket.create_connection(s.getsockname()); print(\"loopback ok\")'");
  EXPECT_EQ(loop, "loopback ok\n");
  // Nothing else: no route to the internet or to the host.
  EXPECT_EQ(Run(id, Attempt("socket.create_connection((\"1.1.1.1\", 80), timeout=2)")),
            "blocked 101\n");  // ENETUNREACH
  // The Kiln server listens on the host's 127.0.0.1; the sandbox's 127.0.0.1 is its own.
  EXPECT_EQ(Run(id, Attempt("socket.create_connection((\"127.0.0.1\", " +
                            std::to_string(server().port()) + "), timeout=2)")),
            "blocked 111\n");  // ECONNREFUSED
}

TEST_F(SandboxIsolationTest, MemoryLimitKillsInsideTheSandboxOnly) {
  std::string victim = Create(R"({"memoryMb": 64})");
  std::string bystander = Create();
  Reply oom = Exec(victim, "python3 -c 'b = bytearray(300 * 1024 * 1024); print(len(b))'");
  ASSERT_EQ(oom.status, 200) << oom;
  EXPECT_EQ(oom.Int("/data/exitCode"), 137) << oom;  // SIGKILL
  EXPECT_EQ(oom.Str("/data/killedBy"), "oom") << oom;
  // The sandbox itself lives on, and says what happened.
  EXPECT_EQ(Run(victim, "echo alive"), "alive\n");
  Reply info = Get(victim);
  EXPECT_GE(info.Int("/data/limitEvents/oomKills"), 1) << info;
  // Nobody else noticed.
  EXPECT_EQ(Run(bystander, "echo fine"), "fine\n");
  EXPECT_EQ(Get(bystander).Int("/data/limitEvents/oomKills"), 0);
  EXPECT_EQ(server().Request("GET", "/healthz").status, 200);
}

TEST_F(SandboxIsolationTest, PidsLimitHoldsAgainstAForkBomb) {
  std::string bomb = Create();
  std::string bystander = Create();
  // A classic fork bomb, bounded by the exec timeout.
  Reply r = Exec(bomb, "f() { f | f & }; f; sleep 2", R"("timeoutMs": 4000)");
  ASSERT_EQ(r.status, 200) << r;
  EXPECT_TRUE(r.Bool("/data/pidsLimitHit")) << r;
  Reply info = Get(bomb);
  EXPECT_GE(info.Int("/data/limitEvents/pidsLimitHits"), 1) << info;
  EXPECT_LE(info.Int("/data/usage/processes"), 1024) << info;
  // The server and the other sandbox answer as usual, and killing the bomb clears it.
  EXPECT_EQ(Run(bystander, "echo fine"), "fine\n");
  EXPECT_EQ(server().Request("GET", "/healthz").status, 200);
  Reply killed = Call("DELETE", "/v1/sandboxes/" + bomb, admin_);
  EXPECT_EQ(killed.status, 200) << killed;
  EXPECT_TRUE(Traces(bomb).empty()) << ::testing::PrintToString(Traces(bomb));
}

TEST_F(SandboxIsolationTest, PlantedSymlinksNeverLeadTheHostOutside) {
  std::string id = Create();
  std::string outside = (server().dir() / "outside.txt").string();
  std::ofstream(outside) << "host file";
  // Links planted inside the sandbox pointing at host paths, absolute and relative.
  Run(id, "ln -s " + outside +
              " /root/abs && ln -s ../../../../../../.. /root/up && "
              "ln -s /etc/passwd /root/passwd");
  for (const std::string& path : std::vector<std::string>{"/root/abs", "/root/up" + outside}) {
    Reply put = Call("PUT", "/v1/sandboxes/" + id + "/files?path=" + path, admin_, "overwritten");
    Reply get = Call("GET", "/v1/sandboxes/" + id + "/files?path=" + path, admin_);
    EXPECT_NE(get.body, "host file") << path << " read the host file";
    (void)put;
  }
  std::ifstream in(outside);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "host file") << "the host file outside the sandbox was written";
  // /root/passwd resolves inside the sandbox: to the sandbox's own /etc/passwd.
  Reply passwd = Call("GET", "/v1/sandboxes/" + id + "/files?path=/root/passwd", admin_);
  EXPECT_EQ(passwd.body.find("root:x:0:0"), 0u) << passwd;
  // `..` is refused before anything is touched.
  Reply dots = Call("GET", "/v1/sandboxes/" + id + "/files?path=/root/../../etc/passwd", admin_);
  EXPECT_EQ(dots.status, 400) << dots;
  EXPECT_EQ(dots.ErrorCode(), "PATH_INVALID");
}

}  // namespace
}  // namespace kiln::testing
