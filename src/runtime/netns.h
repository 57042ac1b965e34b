#pragma once
// Module-private: network namespaces of instances, made by the host before the container
// starts, so that runc joins a namespace that already has loopback up and the gateway can
// open sockets inside it later (setns on the bound file).

#include <sys/types.h>

#include <string>

#include "core/status.h"

namespace kiln::runtime {

// Creates a network namespace with only `lo` (up) and bind-mounts it onto `path` (created
// empty). Runs in a short-lived child process: unshare affects only the calling thread's task,
// and the server must stay in its own namespace.
Status CreateNetns(const std::string& path);
// Unmounts and deletes `path`. A path that is not mounted or missing is fine.
Status DestroyNetns(const std::string& path);

// Outbound connectivity for a namespace: slirp4netns, a user-mode TCP/IP stack that NATs the
// namespace's traffic through the host's sockets (no bridge, no iptables). Host loopback is
// not reachable from inside. Returns its pid once it has configured tap0. DNS inside is
// 10.0.2.3. Errors: Unavailable EGRESS_UNAVAILABLE when slirp4netns is missing.
Result<pid_t> StartEgress(const std::string& netns_path, const std::string& log_file);
// Stops a slirp4netns started by StartEgress, if `pid` still is one.
void StopEgress(pid_t pid);

}  // namespace kiln::runtime
