#include "runtime/mounts.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

namespace kiln::runtime {
namespace {

// mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& field) {
  std::string out;
  for (size_t i = 0; i < field.size(); ++i) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      int value = 0;
      bool octal = true;
      for (size_t k = 1; k <= 3; ++k) {
        char c = field[i + k];
        octal = octal && c >= '0' && c <= '7';
        value = value * 8 + (c - '0');
      }
      if (octal) {
        out += static_cast<char>(value);
        i += 3;
        continue;
      }
    }
    out += field[i];
  }
  return out;
}

// Removes the entries of directory `fd` (then closed), recursively, staying on device `dev`.
Status RemoveEntries(int fd, dev_t dev, const std::string& where) {
  DIR* dir = ::fdopendir(fd);
  if (dir == nullptr) {
    ::close(fd);
    return Status::FromErrno("opendir(\"" + where + "\")", errno);
  }
  Status result;
  while (dirent* entry = ::readdir(dir)) {
    std::string_view name = entry->d_name;
    if (name == "." || name == "..") {
      continue;
    }
    struct stat st {};
    if (::fstatat(fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      continue;
    }
    std::string path = where + "/" + std::string(name);
    if (S_ISDIR(st.st_mode)) {
      if (st.st_dev != dev) {
        result =
            Status::Conflict("MOUNT_LEFT", "not removing " + path + ": something is mounted there");
        continue;
      }
      int child = ::openat(fd, entry->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (child < 0) {
        result = Status::FromErrno("open(\"" + path + "\")", errno);
        continue;
      }
      Status s = RemoveEntries(child, dev, path);
      if (!s.ok()) {
        result = s;
      }
      if (::unlinkat(fd, entry->d_name, AT_REMOVEDIR) != 0 && errno != ENOENT) {
        result = Status::FromErrno("rmdir(\"" + path + "\")", errno);
      }
    } else if (::unlinkat(fd, entry->d_name, 0) != 0 && errno != ENOENT) {
      result = Status::FromErrno("unlink(\"" + path + "\")", errno);
    }
  }
  ::closedir(dir);
  return result;
}

}  // namespace

Status MountOverlay(const std::vector<std::string>& lowers, const std::string& upper,
                    const std::string& work, const std::string& target) {
  std::string options = "lowerdir=";
  for (size_t i = 0; i < lowers.size(); ++i) {
    options += (i == 0 ? "" : ":") + lowers[i];
  }
  options += ",upperdir=" + upper + ",workdir=" + work;
  if (options.size() >= 4096) {
    // The kernel takes one page of mount options.
    return Status::InvalidArgument(
        "TEMPLATE_TOO_DEEP",
        "the template has too many layers to mount (" + std::to_string(lowers.size()) + ")",
        "build the template from a shallower parent");
  }
  if (::mount("overlay", target.c_str(), "overlay", MS_NODEV, options.c_str()) != 0) {
    int err = errno;
    Status s = Status::FromErrno("mount overlay at \"" + target + "\"", err);
    return Status::Unavailable("OVERLAY_FAILED", s.message(),
                               "the data directory must be on a filesystem overlayfs accepts as "
                               "upper layer (ext4, xfs), and the kernel must have overlayfs");
  }
  return Status::Ok();
}

Status Unmount(const std::string& target) {
  if (::umount2(target.c_str(), 0) == 0) {
    return Status::Ok();
  }
  int err = errno;
  if (err == EINVAL || err == ENOENT) {
    return Status::Ok();
  }
  if (err == EBUSY && ::umount2(target.c_str(), MNT_DETACH) == 0) {
    return Status::Ok();
  }
  return Status::FromErrno("umount(\"" + target + "\")", err);
}

std::vector<std::string> MountsUnder(const std::string& prefix) {
  std::vector<std::string> found;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string id, parent, devs, root, point;
    fields >> id >> parent >> devs >> root >> point;
    point = Unescape(point);
    if (point == prefix || point.starts_with(prefix + "/")) {
      found.push_back(point);
    }
  }
  // Deeper paths first, so a mount inside another is unmounted before it.
  std::sort(found.begin(), found.end(),
            [](const std::string& a, const std::string& b) { return a.size() > b.size(); });
  found.erase(std::unique(found.begin(), found.end()), found.end());
  return found;
}

Status RemoveTree(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    return errno == ENOENT ? Status::Ok() : Status::FromErrno("stat(\"" + path + "\")", errno);
  }
  if (!S_ISDIR(st.st_mode)) {
    if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
      return Status::FromErrno("unlink(\"" + path + "\")", errno);
    }
    return Status::Ok();
  }
  int fd = ::open(path.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    return Status::FromErrno("open(\"" + path + "\")", errno);
  }
  KILN_RETURN_IF_ERROR(RemoveEntries(fd, st.st_dev, path));
  if (::rmdir(path.c_str()) != 0 && errno != ENOENT) {
    return Status::FromErrno("rmdir(\"" + path + "\")", errno);
  }
  return Status::Ok();
}

}  // namespace kiln::runtime
