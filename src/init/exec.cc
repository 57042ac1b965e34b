#include "init/exec.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>

namespace kiln::init {

namespace {

// The fields of one /etc/passwd line.
struct PasswdEntry {
  std::string name;
  uid_t uid = 0;
  gid_t gid = 0;
  std::string home;
};

std::vector<std::string_view> Split(std::string_view text, char separator) {
  std::vector<std::string_view> parts;
  size_t start = 0;
  while (true) {
    size_t end = text.find(separator, start);
    if (end == std::string_view::npos) {
      parts.push_back(text.substr(start));
      return parts;
    }
    parts.push_back(text.substr(start, end - start));
    start = end + 1;
  }
}

bool ParseId(std::string_view text, uint32_t* out) {
  int64_t value = 0;
  if (!ParseInt(text, &value) || value < 0 || value >= 0xffffffffLL) {
    return false;
  }
  *out = static_cast<uint32_t>(value);
  return true;
}

// Finds a user in /etc/passwd by name (when `name` is set) or by uid.
bool FindPasswd(const std::string& passwd, std::string_view name, uid_t uid, PasswdEntry* out) {
  for (std::string_view line : Split(passwd, '\n')) {
    std::vector<std::string_view> f = Split(line, ':');
    uint32_t entry_uid = 0;
    uint32_t entry_gid = 0;
    if (f.size() < 7 || !ParseId(f[2], &entry_uid) || !ParseId(f[3], &entry_gid)) {
      continue;
    }
    if (name.empty() ? entry_uid == uid : f[0] == name) {
      out->name = f[0];
      out->uid = entry_uid;
      out->gid = entry_gid;
      out->home = f[5];
      return true;
    }
  }
  return false;
}

// Supplementary groups of `user` from /etc/group, `gid` first.
std::vector<gid_t> FindGroups(std::string_view user, gid_t gid) {
  std::vector<gid_t> groups{gid};
  std::string text;
  if (user.empty() || !ReadSmallFile("/etc/group", 4 << 20, &text)) {
    return groups;
  }
  for (std::string_view line : Split(text, '\n')) {
    std::vector<std::string_view> f = Split(line, ':');
    uint32_t group_gid = 0;
    if (f.size() < 4 || !ParseId(f[2], &group_gid) || group_gid == gid) {
      continue;
    }
    for (std::string_view member : Split(f[3], ',')) {
      if (member == user) {
        groups.push_back(group_gid);
        break;
      }
    }
  }
  return groups;
}

// Builds a message in a fixed buffer: the child must not allocate.
class ChildMessage {
 public:
  ChildMessage& Add(std::string_view text) {
    size_t n = text.size() < sizeof(buffer_) - length_ ? text.size() : sizeof(buffer_) - length_;
    memcpy(buffer_ + length_, text.data(), n);
    length_ += n;
    return *this;
  }
  // No allocation: the child runs on kiln-init's memory (vfork) until it execs.
  ChildMessage& AddInt(long value) {
    char digits[24];
    int n = 0;
    unsigned long v = value < 0 ? 0UL - static_cast<unsigned long>(value) : value;
    do {
      digits[n++] = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v != 0 && n < 23);
    if (value < 0) {
      digits[n++] = '-';
    }
    while (n > 0) {
      char c = digits[--n];
      Add(std::string_view(&c, 1));
    }
    return *this;
  }
  [[noreturn]] void ExitWith(int code) {
    Add("\n");
    WriteAll(STDERR_FILENO, std::string_view(buffer_, length_));
    _exit(code);
  }

 private:
  char buffer_[1024];
  size_t length_ = 0;
};

// Everything the child needs, built before fork().
struct Prepared {
  std::vector<char*> argv;
  std::vector<char*> envp;
  std::vector<std::string> candidates;  // paths to try for argv[0], in order
  std::vector<char*> sh_argv;           // for ENOEXEC: /bin/sh CANDIDATE ARGS...
  bool has_slash = false;
};

Prepared Prepare(const SpawnSpec& spec) {
  Prepared p;
  for (const std::string& arg : spec.argv) {
    p.argv.push_back(const_cast<char*>(arg.c_str()));
  }
  p.argv.push_back(nullptr);
  for (const std::string& entry : spec.env) {
    p.envp.push_back(const_cast<char*>(entry.c_str()));
  }
  p.envp.push_back(nullptr);
  const std::string& file = spec.argv[0];
  p.has_slash = file.find('/') != std::string::npos;
  if (p.has_slash) {
    p.candidates.push_back(file);
  } else if (!file.empty()) {
    std::string_view path = EnvValue(spec.env, "PATH");
    if (path.empty()) {
      path = kDefaultPath.substr(5);
    }
    for (std::string_view dir : Split(path, ':')) {
      // An empty PATH element means the current directory, as in every shell.
      p.candidates.push_back((dir.empty() ? std::string(".") : std::string(dir)) + "/" + file);
    }
  }
  static char sh[] = "/bin/sh";
  p.sh_argv.push_back(sh);
  p.sh_argv.push_back(nullptr);  // the candidate, filled in by the child
  for (size_t i = 1; i < spec.argv.size(); ++i) {
    p.sh_argv.push_back(const_cast<char*>(spec.argv[i].c_str()));
  }
  p.sh_argv.push_back(nullptr);
  return p;
}

void ResetSignals() {
  struct sigaction action {};
  action.sa_handler = SIG_DFL;
  for (int sig = 1; sig < NSIG; ++sig) {
    sigaction(sig, &action, nullptr);  // fails harmlessly for SIGKILL, SIGSTOP
  }
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
}

// Runs in the child after fork(); never returns.
[[noreturn]] void RunChild(const SpawnSpec& spec, Prepared& p, int stdin_fd, int stdout_fd,
                           int stderr_fd) {
  // kiln-init blocks and ignores signals for its own loop; a command must start clean.
  ResetSignals();
  setsid();
  // kiln-init itself may be protected from the OOM killer (-1000); its children are not.
  int oom = open("/proc/self/oom_score_adj", O_WRONLY | O_CLOEXEC);
  if (oom >= 0) {
    (void)!write(oom, "0", 1);
    close(oom);
  }
  if (stdin_fd < 0) {
    stdin_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  // dup2 clears O_CLOEXEC on the copies; the originals still close at exec.
  if (stdin_fd >= 0) {
    dup2(stdin_fd, STDIN_FILENO);
  }
  if (stdout_fd >= 0) {
    dup2(stdout_fd, STDOUT_FILENO);
  }
  if (stderr_fd >= 0) {
    dup2(stderr_fd, STDERR_FILENO);
  }
  if (!spec.setup_error.empty()) {
    ChildMessage().Add(spec.setup_error).ExitWith(127);
  }
  const Credentials& c = spec.credentials;
  if (c.change && !(c.uid == getuid() && c.gid == getgid() && geteuid() != 0)) {
    if (geteuid() == 0 && setgroups(c.groups.size(), c.groups.data()) != 0) {
      ChildMessage().Add("kiln: setgroups: ").Add(ErrnoText(errno)).ExitWith(126);
    }
    if (setgid(c.gid) != 0 || setuid(c.uid) != 0) {
      ChildMessage()
          .Add("kiln: cannot switch to uid ")
          .AddInt(c.uid)
          .Add(": ")
          .Add(ErrnoText(errno))
          .ExitWith(126);
    }
  }
  if (!spec.cwd.empty() && chdir(spec.cwd.c_str()) != 0) {
    int err = errno;
    ChildMessage()
        .Add("kiln: cd: ")
        .Add(spec.cwd)
        .Add(": ")
        .Add(ErrnoText(err))
        .ExitWith(err == EACCES ? 126 : 127);
  }
  int last_error = ENOENT;
  bool saw_eacces = false;
  for (std::string& candidate : p.candidates) {
    execve(candidate.c_str(), p.argv.data(), p.envp.data());
    int err = errno;
    if (err == ENOEXEC) {
      // A script without "#!": run it with the shell, as execvp() and shells do.
      p.sh_argv[1] = candidate.data();
      execve(p.sh_argv[0], p.sh_argv.data(), p.envp.data());
    }
    if (err == EACCES) {
      saw_eacces = true;
    } else if (err != ENOENT && err != ENOTDIR && err != ESTALE && err != ENODEV &&
               err != ETIMEDOUT) {
      last_error = err;
      break;
    }
  }
  const std::string& file = spec.argv[0];
  if (saw_eacces && last_error == ENOENT) {
    last_error = EACCES;
  }
  if (last_error == ENOENT && !p.has_slash) {
    ChildMessage().Add("kiln: ").Add(file).Add(": command not found").ExitWith(127);
  }
  ChildMessage()
      .Add("kiln: ")
      .Add(file)
      .Add(": ")
      .Add(ErrnoText(last_error))
      .ExitWith(last_error == ENOENT ? 127 : 126);
}

bool MakePipe(UniqueFd* read_end, UniqueFd* write_end) {
  int fds[2];
  // Both ends close on exec; the child's copies are dup2()'d onto 0/1/2.
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return false;
  }
  read_end->Reset(fds[0]);
  write_end->Reset(fds[1]);
  return true;
}

void SetNonBlocking(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

}  // namespace

bool ResolveUser(std::string_view spec, Credentials* out, std::string* error) {
  *out = Credentials{};
  if (spec.empty()) {
    return true;
  }
  out->change = true;
  std::string passwd;
  ReadSmallFile("/etc/passwd", 4 << 20, &passwd);  // missing is fine for numeric ids
  PasswdEntry entry;
  std::string_view uid_text = spec.substr(0, spec.find(':'));
  uint32_t uid = 0;
  if (ParseId(uid_text, &uid)) {
    bool known = FindPasswd(passwd, "", uid, &entry);
    out->uid = uid;
    out->gid = known ? entry.gid : uid;
    out->home = known ? entry.home : "";
    if (uid_text.size() < spec.size()) {
      uint32_t gid = 0;
      if (!ParseId(spec.substr(uid_text.size() + 1), &gid)) {
        *error = "kiln: " + std::string(spec) + ": invalid user (use a name, uid or uid:gid)";
        return false;
      }
      out->gid = gid;
      out->groups = {gid};
      return true;
    }
    out->groups = FindGroups(known ? std::string_view(entry.name) : "", out->gid);
    return true;
  }
  if (!FindPasswd(passwd, spec, 0, &entry)) {
    if (spec != "root") {
      *error = "kiln: " + std::string(spec) +
               ": no such user (add it to /etc/passwd in the instance or give a numeric uid)";
      return false;
    }
    entry = PasswdEntry{"root", 0, 0, "/root"};
  }
  out->uid = entry.uid;
  out->gid = entry.gid;
  out->home = entry.home;
  out->groups = FindGroups(entry.name, entry.gid);
  return true;
}

std::string_view EnvValue(const std::vector<std::string>& env, std::string_view name) {
  for (const std::string& entry : env) {
    if (entry.size() > name.size() && entry.compare(0, name.size(), name) == 0 &&
        entry[name.size()] == '=') {
      return std::string_view(entry).substr(name.size() + 1);
    }
  }
  return {};
}

std::vector<std::string> MergeEnv(const std::vector<std::string>& base,
                                  const std::vector<std::string>& overrides) {
  std::vector<std::string> env = base;
  for (const std::string& entry : overrides) {
    size_t eq = entry.find('=');
    // "K" without '=' unsets K.
    std::string_view key = std::string_view(entry).substr(0, eq);
    bool replaced = false;
    for (size_t i = 0; i < env.size(); ++i) {
      if (env[i].size() > key.size() && env[i].compare(0, key.size(), key) == 0 &&
          env[i][key.size()] == '=') {
        if (eq == std::string::npos) {
          env.erase(env.begin() + static_cast<std::ptrdiff_t>(i));
        } else {
          env[i] = entry;
        }
        replaced = true;
        break;
      }
    }
    if (!replaced && eq != std::string::npos) {
      env.push_back(entry);
    }
  }
  bool has_path = false;
  for (const std::string& entry : env) {
    has_path = has_path || entry.compare(0, 5, "PATH=") == 0;
  }
  if (!has_path) {
    env.emplace_back(kDefaultPath);
  }
  return env;
}

int Spawn(const SpawnSpec& spec, Child* child) {
  UniqueFd stdin_read, stdin_write, stdout_read, stdout_write, stderr_read, stderr_write;
  if ((spec.pipe_stdin && !MakePipe(&stdin_read, &stdin_write)) ||
      (spec.capture_output &&
       (!MakePipe(&stdout_read, &stdout_write) || !MakePipe(&stderr_read, &stderr_write)))) {
    return errno;
  }
  Prepared prepared = Prepare(spec);
  // vfork: the child borrows kiln-init's memory until it execs, so starting a command costs no
  // page-table copy. Safe here because the child (RunChild) only makes system calls on data
  // prepared above, never returns, and kiln-init is single-threaded.
  pid_t pid = vfork();
  if (pid < 0) {
    return errno;
  }
  if (pid == 0) {
    RunChild(spec, prepared, stdin_read.get(), stdout_write.get(), stderr_write.get());
  }
  child->pid = pid;
  if (spec.pipe_stdin) {
    SetNonBlocking(stdin_write.get());
    child->stdin_fd = std::move(stdin_write);
  }
  if (spec.capture_output) {
    SetNonBlocking(stdout_read.get());
    SetNonBlocking(stderr_read.get());
    child->stdout_fd = std::move(stdout_read);
    child->stderr_fd = std::move(stderr_read);
  }
  return 0;
}

int ExitCode(int wait_status) {
  if (WIFSIGNALED(wait_status)) {
    return 128 + WTERMSIG(wait_status);
  }
  return WEXITSTATUS(wait_status);
}

int ExitSignal(int wait_status) { return WIFSIGNALED(wait_status) ? WTERMSIG(wait_status) : 0; }

std::string DescribeWaitStatus(int wait_status) {
  std::string text;
  if (WIFSIGNALED(wait_status)) {
    int sig = WTERMSIG(wait_status);
    text = "killed by signal ";
    AppendInt(text, sig);
    const char* name = sigabbrev_np(sig);
    if (name != nullptr) {
      text += " (SIG";
      text += name;
      text += ")";
    }
    return text;
  }
  text = "exit code ";
  AppendInt(text, WEXITSTATUS(wait_status));
  return text;
}

}  // namespace kiln::init
