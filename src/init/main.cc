// kiln-init: PID 1 inside every Kiln instance (DESIGN.md §3). It reaps zombies, runs the
// instance's main process with its output in size-capped logs, and serves exec and file
// operations to the host over a unix socket (protocol.h).
//
//   kiln-init --socket PATH [--log-dir DIR] [--log-max-bytes N] [--cwd DIR] [-- MAIN ARGV...]
//
// Built static, with libc and the C++ standard library only, no exceptions and no RTTI: it
// is bind-mounted into instances whose root file systems may have no libraries at all.

#include <fcntl.h>
#include <linux/close_range.h>
#include <malloc.h>
#include <sys/stat.h>
#include <unistd.h>

#include <string>
#include <string_view>

#include "init/server.h"
#include "init/util.h"

namespace {

using kiln::init::LogError;
using kiln::init::Options;

constexpr std::string_view kUsage =
    "usage: kiln-init --socket PATH [--log-dir DIR] [--log-max-bytes N] [--cwd DIR] "
    "[-- MAIN ARGV...]";

bool ParseOptions(int argc, char** argv, Options* options) {
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    if (arg == "--") {
      for (++i; i < argc; ++i) {
        options->main_argv.emplace_back(argv[i]);
      }
      break;
    }
    if (i + 1 >= argc) {
      LogError(std::string(arg) + " needs a value; " + std::string(kUsage));
      return false;
    }
    std::string_view value = argv[++i];
    if (arg == "--socket") {
      options->socket_path = value;
    } else if (arg == "--log-dir") {
      options->log_dir = value;
    } else if (arg == "--log-max-bytes") {
      if (!kiln::init::ParseInt(value, &options->log_max_bytes) || options->log_max_bytes <= 0) {
        LogError("--log-max-bytes must be a positive number of bytes");
        return false;
      }
    } else if (arg == "--cwd") {
      options->cwd = value;
    } else if (arg == "--root") {
      options->root = value;
    } else {
      LogError("unknown option " + std::string(arg) + "; " + std::string(kUsage));
      return false;
    }
  }
  if (options->socket_path.empty()) {
    LogError(std::string(kUsage));
    return false;
  }
  return true;
}

// Descriptors 0-2 must be taken: otherwise the first pipe could land on them and a child's
// dup2 onto its stdio would clobber it.
void EnsureStdio() {
  for (int fd = 0; fd < 3; ++fd) {
    if (fcntl(fd, F_GETFD) < 0) {
      int null = open("/dev/null", O_RDWR);  // deliberately inheritable: it is stdio
      if (null >= 0 && null != fd) {
        dup2(null, fd);
        close(null);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  // A fixed mmap threshold (which also stops glibc from raising it) returns every large
  // buffer (a 1 MiB frame, a long listing) to the kernel when freed: idle RSS stays small.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
  mallopt(M_TRIM_THRESHOLD, 128 * 1024);
  EnsureStdio();
  // Whatever descriptors the launcher leaked to us stay ours: no command inherits them.
  close_range(3, ~0U, CLOSE_RANGE_CLOEXEC);
  Options options;
  if (!ParseOptions(argc, argv, &options)) {
    return 2;
  }
  struct stat st {};
  if (stat(options.cwd.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    options.cwd = "/";  // the documented fallback when the default /root is missing
  }
  umask(022);
  kiln::init::Server server(std::move(options));
  return server.Run();
}
