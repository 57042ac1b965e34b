#pragma once
// Module-private: the overlay root of an instance, and finding mounts left behind.

#include <string>
#include <vector>

#include "core/status.h"

namespace kiln::runtime {

// Mounts an overlay at `target`: `lowers` read-only (first on top), changes go to `upper`.
Status MountOverlay(const std::vector<std::string>& lowers, const std::string& upper,
                    const std::string& work, const std::string& target);
// Unmounts `target`; when it is busy, detaches it (MNT_DETACH) so it goes once unused. Not
// mounted (EINVAL) or missing (ENOENT) is fine.
Status Unmount(const std::string& target);
// Mount points at or under `prefix` (from /proc/self/mountinfo), deepest first: the order to
// unmount them in.
std::vector<std::string> MountsUnder(const std::string& prefix);
// Removes `path` and everything under it without crossing into mounts (a bind mount left
// under it is skipped, never emptied). Missing is fine.
Status RemoveTree(const std::string& path);

}  // namespace kiln::runtime
