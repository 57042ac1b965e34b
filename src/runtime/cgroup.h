#pragma once
// Module-private: the cgroups of an instance. runc creates and removes them; Kiln reads them
// for stats and limit events, and writes the freezer directly (pause and resume are two file
// writes, not two runc processes).

#include <map>
#include <string>

#include "core/status.h"
#include "runtime/runtime.h"

namespace kiln::runtime {

struct CgroupHost {
  int version = 1;  // 2 only when /sys/fs/cgroup is the unified hierarchy
  // v1: controller name -> its hierarchy's mount point ("memory" -> /sys/fs/cgroup/memory).
  std::map<std::string, std::string> v1_mounts;
  std::string v2_root;           // v2: /sys/fs/cgroup
  bool swap_accounting = false;  // memory.swap limits can be set
};
Result<CgroupHost> DetectCgroups();

// The cgroup directories of one instance, from its init process's /proc/PID/cgroup.
class InstanceCgroup {
 public:
  InstanceCgroup() = default;
  static Result<InstanceCgroup> ForPid(const CgroupHost& host, int pid);
  // The directories under which runc puts instance `relative` ("/kiln/sbx_…").
  static InstanceCgroup ForPath(const CgroupHost& host, const std::string& relative);

  Status Freeze() const;
  Status Thaw() const;
  bool Frozen() const;
  Result<InstanceStats> Stats() const;
  // Only the limit events of Stats (oom_kills, pids_limit_hits).
  InstanceStats LimitEvents() const;
  // Removes the directories if runc left them (they must be empty of processes).
  void RemoveLeftovers() const;
  bool empty() const { return dirs_.empty(); }

 private:
  int version_ = 1;
  std::map<std::string, std::string> dirs_;  // controller ("memory", or "" for v2) -> dir
  std::string Dir(const std::string& controller) const;
};

}  // namespace kiln::runtime
