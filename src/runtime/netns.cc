#include "runtime/netns.h"

#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include "core/process.h"

namespace kiln::runtime {
namespace {

// In the child, after unshare: only system calls, nothing that may take a lock another
// thread of the parent held when it forked. Returns an errno-ish step code for the parent.
[[noreturn]] void MakeNamespaceInChild(const char* path) {
  if (::unshare(CLONE_NEWNET) != 0) {
    ::_exit(10);
  }
  int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) {
    ::_exit(11);
  }
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  if (::ioctl(sock, SIOCGIFFLAGS, &ifr) != 0) {
    ::_exit(12);
  }
  ifr.ifr_flags = static_cast<short>(ifr.ifr_flags | IFF_UP | IFF_RUNNING);
  if (::ioctl(sock, SIOCSIFFLAGS, &ifr) != 0) {
    ::_exit(13);
  }
  if (::mount("/proc/self/ns/net", path, nullptr, MS_BIND, nullptr) != 0) {
    ::_exit(14);
  }
  ::_exit(0);
}

std::string_view StepName(int code) {
  switch (code) {
    case 10:
      return "unshare(CLONE_NEWNET)";
    case 11:
      return "socket";
    case 12:
    case 13:
      return "bringing up lo";
    case 14:
      return "bind-mounting the namespace";
  }
  return "creating the namespace";
}

bool IsSlirp(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string comm;
  std::getline(in, comm);
  return comm == "slirp4netns";
}

}  // namespace

Status CreateNetns(const std::string& path) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    return Status::FromErrno("create(\"" + path + "\")", errno);
  }
  ::close(fd);
  pid_t pid = ::fork();
  if (pid < 0) {
    return Status::FromErrno("fork", errno);
  }
  if (pid == 0) {
    MakeNamespaceInChild(path.c_str());
  }
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    ::unlink(path.c_str());
    int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    return Status::Unavailable(
        "NETNS_FAILED",
        "cannot create a network namespace: " + std::string(StepName(code)) + " failed",
        "Kiln must run as root on a kernel with network namespaces");
  }
  return Status::Ok();
}

Status DestroyNetns(const std::string& path) {
  if (::umount2(path.c_str(), MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) {
    return Status::FromErrno("umount(\"" + path + "\")", errno);
  }
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return Status::FromErrno("unlink(\"" + path + "\")", errno);
  }
  return Status::Ok();
}

Result<pid_t> StartEgress(const std::string& netns_path, const std::string& log_file) {
  std::string program = FindProgram("slirp4netns");
  if (program.empty()) {
    return Status::Unavailable("EGRESS_UNAVAILABLE",
                               "network \"egress\" needs slirp4netns, which is not installed",
                               "apt-get install slirp4netns, or use network \"none\"");
  }
  int ready[2];
  if (::pipe2(ready, O_CLOEXEC) != 0) {
    return Status::FromErrno("pipe2", errno);
  }
  int log = ::open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  if (log >= 0) {
    posix_spawn_file_actions_adddup2(&actions, log, STDOUT_FILENO);
    posix_spawn_file_actions_adddup2(&actions, log, STDERR_FILENO);
  }
  posix_spawn_file_actions_adddup2(&actions, ready[1], 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, all;
  sigemptyset(&none);
  sigfillset(&all);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &all);
  // Its own session: a Ctrl-C at the server's terminal must not take egress down.
  posix_spawnattr_setflags(&attr,
                           POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSID);
  std::vector<std::string> args = {
      program,        "--configure",       "--mtu=65520", "--disable-host-loopback",
      "--ready-fd=3", "--netns-type=path", netns_path,    "tap0"};
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  char* envp[] = {nullptr};
  pid_t pid = 0;
  int err = ::posix_spawn(&pid, program.c_str(), &actions, &attr, argv.data(), envp);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  ::close(ready[1]);
  if (log >= 0) {
    ::close(log);
  }
  if (err != 0) {
    ::close(ready[0]);
    return Status::Unavailable("EGRESS_UNAVAILABLE",
                               "cannot run slirp4netns: " + std::string(std::strerror(err)),
                               "check the slirp4netns installation");
  }
  // It writes "1" to the ready fd once tap0 is configured.
  pollfd pfd{ready[0], POLLIN, 0};
  char byte = 0;
  bool ok = ::poll(&pfd, 1, 5000) == 1 && ::read(ready[0], &byte, 1) == 1;
  ::close(ready[0]);
  if (!ok) {
    ::kill(pid, SIGKILL);
    ::waitpid(pid, nullptr, 0);
    return Status::Unavailable("EGRESS_UNAVAILABLE", "slirp4netns did not come up within 5 s",
                               "see " + log_file + "; /dev/net/tun must exist");
  }
  return pid;
}

void StopEgress(pid_t pid) {
  if (pid <= 0 || !IsSlirp(pid)) {
    return;
  }
  ::kill(pid, SIGTERM);
  // Our child when started by this process; reaped here so no zombie is left. After a server
  // restart it is not our child and waitpid fails at once.
  for (int i = 0; i < 100 && IsSlirp(pid); ++i) {
    if (::waitpid(pid, nullptr, WNOHANG) == pid) {
      return;
    }
    ::usleep(10'000);
  }
  ::kill(pid, SIGKILL);
  ::waitpid(pid, nullptr, WNOHANG);
}

}  // namespace kiln::runtime
