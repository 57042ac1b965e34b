#pragma once
// Module-private: template root filesystems on disk, <data_dir>/templates/NAME/ holding
// `rootfs/` (the template's own layer) and `template.json` ({name, parent, hostBinds,
// builtMs}). A template's root filesystem is its layer over its parent's, down to `base`
// (host /usr bound read-only) or `debian` (a debootstrap tree). Layers never change once
// written: a template is made in NAME.tmp and renamed into place.

#include <string>
#include <vector>

#include "core/status.h"
#include "runtime/runtime.h"

namespace kiln::runtime {

struct TemplateLayout {
  std::vector<std::string> layers;      // overlay lowerdirs, top first
  std::vector<std::string> host_binds;  // host directories bound read-only at the same path
};

// True for names a template directory may have: [a-z0-9][a-z0-9_-]{0,63}.
bool ValidTemplateName(const std::string& name);

class TemplateStore {
 public:
  explicit TemplateStore(std::string dir) : dir_(std::move(dir)) {}

  // Creates `base` when missing: a skeleton root (/etc with generated passwd and group and a
  // few files copied from the host, /root, /tmp, mount points) whose /usr (and /bin, /lib…
  // where they are not symlinks into /usr) come from the host, read-only.
  Status EnsureBase();
  // Builds `debian` with debootstrap (--variant=minbase) from `mirror`; output lines go to
  // `log`. Idempotent.
  Status BuildDebian(const std::string& mirror, const std::string& suite, const LogSink& log);
  // Makes `upper` (an instance's overlay upper directory, moved, not copied) the layer of a
  // new template `name` on `parent`.
  Status Commit(const std::string& name, const std::string& parent, const std::string& upper);
  Status Remove(const std::string& name);

  bool Has(const std::string& name) const;
  Result<TemplateLayout> Layout(const std::string& name) const;
  std::vector<TemplateInfo> List() const;
  // Templates whose parent is `name`.
  std::vector<std::string> Children(const std::string& name) const;

 private:
  struct Meta {
    std::string name;
    std::string parent;
    std::vector<std::string> host_binds;
    int64_t built_ms = 0;
    int64_t size_bytes = 0;  // of its own layer, measured once when it is made
  };
  Result<Meta> ReadMeta(const std::string& name) const;
  Status WriteMeta(const std::string& dir, const Meta& meta) const;
  std::string dir_;
};

}  // namespace kiln::runtime
