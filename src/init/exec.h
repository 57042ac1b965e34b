#pragma once
// Starting processes: user lookup, environment merging, fork and exec, and how an exit is
// described. What runs in the parent (kiln-init) is prepared before fork(); the child only
// makes system calls, so nothing it does depends on the parent's heap state.

#include <sys/types.h>

#include <string>
#include <string_view>
#include <vector>

#include "init/util.h"

namespace kiln::init {

// Used when neither the request nor the configured environment sets PATH.
inline constexpr std::string_view kDefaultPath =
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

// Who a child runs as.
struct Credentials {
  bool change = false;  // false: stay kiln-init's own user
  uid_t uid = 0;
  gid_t gid = 0;
  std::vector<gid_t> groups;  // supplementary groups, `gid` included
  std::string home;           // from /etc/passwd; empty when unknown
};

// Parses "root", a name from /etc/passwd, "uid" or "uid:gid" ("" = no change). /etc/passwd
// and /etc/group are read by hand: a static binary has no NSS. False with `error` set to a
// shell-like message when the user does not exist.
bool ResolveUser(std::string_view spec, Credentials* out, std::string* error);

// `base` with `overrides` ("K=V") applied, later entries winning; PATH is added when absent.
std::vector<std::string> MergeEnv(const std::vector<std::string>& base,
                                  const std::vector<std::string>& overrides);

// Value of `name` in an environment, or empty.
std::string_view EnvValue(const std::vector<std::string>& env, std::string_view name);

struct SpawnSpec {
  std::vector<std::string> argv;
  std::vector<std::string> env;  // the complete environment
  std::string cwd;               // empty: stay in kiln-init's directory
  Credentials credentials;
  // When set, the child writes this to its stderr and exits 127 instead of exec'ing (a bad
  // user): the caller sees it like any failed command.
  std::string setup_error;
  bool pipe_stdin = false;     // else /dev/null
  bool capture_output = true;  // stdout/stderr pipes; else kiln-init's own
};

struct Child {
  pid_t pid = -1;
  UniqueFd stdin_fd;   // write end, non-blocking; only with pipe_stdin
  UniqueFd stdout_fd;  // read ends, non-blocking; only with capture_output
  UniqueFd stderr_fd;
};

// Forks a child in its own session (so its process group can be signalled as a whole) and
// execs argv[0], searched in the PATH of spec.env. Exec failures are reported by the child
// itself: "kiln: foo: command not found" on stderr, exit 127 (126 when not executable).
// Returns 0, or the errno of pipe2() or fork() when no child could be made.
int Spawn(const SpawnSpec& spec, Child* child);

// Exit code convention: a normal exit is its status; death by signal N is 128 + N.
int ExitCode(int wait_status);
int ExitSignal(int wait_status);  // 0 unless killed by a signal
// "exit code 3" or "killed by signal 9 (SIGKILL)".
std::string DescribeWaitStatus(int wait_status);

}  // namespace kiln::init
