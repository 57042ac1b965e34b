#pragma once
// daemon: wires the modules into `kiln server` (DESIGN.md §2). Nothing else lives here.

#include <string>

#include "core/core.h"

namespace kiln::daemon {

// Opens the data directory, runs migrations, bootstraps the first workspace, serves until
// SIGTERM or SIGINT, then shuts down gracefully. Returns the process exit code.
int Run(const Config& config);

// `kiln cleanup`: kills and removes every instance (sandboxes, app instances, the warm pool)
// under `data_dir`, with their mounts, cgroups and network namespaces. Refused while a server
// uses the directory. For uninstalling, and for tests that start servers. Exit code.
int Cleanup(const std::string& data_dir);

}  // namespace kiln::daemon
