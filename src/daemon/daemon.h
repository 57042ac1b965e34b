#pragma once
// daemon: wires the modules into `kiln server` (DESIGN.md §2). Nothing else lives here.

#include "core/core.h"

namespace kiln::daemon {

// Opens the data directory, runs migrations, bootstraps the first workspace, serves until
// SIGTERM or SIGINT, then shuts down gracefully. Returns the process exit code.
int Run(const Config& config);

}  // namespace kiln::daemon
