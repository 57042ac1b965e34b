#pragma once
// Running helper programs (runc, debootstrap, git) from a multithreaded server.
//
// Children start with an empty signal mask and default dispositions (the daemon blocks
// SIGINT/SIGTERM in every thread and ignores SIGPIPE; both would otherwise be inherited),
// with stdin from /dev/null unless input is given, and with only the descriptors set up here
// (everything else in Kiln is opened O_CLOEXEC). Thread-safe.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace kiln {

struct ProcessOptions {
  std::string cwd;               // empty: the server's working directory
  std::vector<std::string> env;  // "K=V"; empty: inherit the server's environment
  std::string stdin_data;        // fed to stdin, then closed
  // stdout and stderr are captured together, up to this many bytes (the rest is dropped).
  size_t max_output = 1 << 20;
  // Called with each chunk of output as it arrives (build logs), in addition to capture.
  std::function<void(std::string_view)> on_output;
  // The child gets its own process group, and a timeout kills the whole group.
  bool new_process_group = true;
  // When set, the child's stdout/stderr go to this file (appended) instead of being captured;
  // for programs that leave a long-lived descendant holding the descriptors (runc run -d).
  std::string output_file;
};

struct ProcessResult {
  int exit_code = 0;  // 128+N when killed by signal N
  bool timed_out = false;
  std::string output;  // stdout and stderr interleaved as they came
  // The last line of output, for error messages ("runc: container not found").
  std::string LastLine() const;
};

// Runs `argv` (argv[0] looked up in PATH) to completion or until `timeout`, then kills it.
// Errors: Unavailable PROGRAM_NOT_FOUND when argv[0] cannot be executed (with a hint naming
// the Debian package when one is given), Internal for pipe/fork failures. A non-zero exit is
// not an error here: callers judge exit_code.
Result<ProcessResult> RunProcess(const std::vector<std::string>& argv,
                                 std::chrono::milliseconds timeout,
                                 const ProcessOptions& options = {},
                                 std::string_view package_hint = {});

// The full path of `name` found in PATH, or empty.
std::string FindProgram(std::string_view name);

}  // namespace kiln
