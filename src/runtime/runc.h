#pragma once
// Module-private: the OCI runtime binary (runc or crun) that creates and deletes containers.
// Only the slow, rare steps go through it (run, delete, update); exec, files, pause and resume
// do not.

#include <string>
#include <vector>

#include "core/status.h"
#include "runtime/runtime.h"

namespace kiln::runtime {

class OciEngine {
 public:
  // Picks the engine: `preference` ("runc", "crun") when given, else crun on a pure cgroup v2
  // host where it is installed (faster), else runc. crun 1.x refuses hybrid cgroup hosts.
  // Errors: Unavailable RUNTIME_UNAVAILABLE naming the package to install.
  static Result<OciEngine> Detect(const std::string& preference, int cgroup_version,
                                  const std::string& state_root);

  const std::string& name() const { return name_; }
  const std::string& version() const { return version_; }

  // `runc run --detach`: creates and starts the container of `bundle`, writes its init pid to
  // `pid_file`; the container's stdout/stderr (and the engine's own errors) go to `log_file`.
  Status Run(const std::string& id, const std::string& bundle, const std::string& pid_file,
             const std::string& log_file) const;
  // Kills what is left and deletes the container. A container that does not exist is fine.
  Status Delete(const std::string& id) const;
  Status Update(const std::string& id, const Resources& resources, bool limit_swap) const;
  // Ids of the containers in the engine's state directory.
  std::vector<std::string> List() const;

 private:
  std::vector<std::string> Command(std::initializer_list<std::string> args) const;
  std::string name_;
  std::string path_;
  std::string version_;
  std::string state_root_;
};

}  // namespace kiln::runtime
