#include "init/files.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

#include "init/protocol.h"

namespace kiln::init {

namespace {

// Deeper trees are still removed, but a directory this deep means something odd (a loop
// made by bind mounts); refusing keeps the recursion and the open descriptors bounded.
constexpr int kMaxRemoveDepth = 256;

FileError Error(std::string_view code, std::string message) {
  return FileError{code, std::move(message)};
}

// Turns errno into a protocol error in one place; `shown` is the client's path.
FileError FromErrno(int err, const std::string& shown, std::string_view what) {
  switch (err) {
    case ENOENT:
      return Error(proto::kFileNotFound,
                   "no such file or directory: " + shown + " (list its parent to see what exists)");
    case ENOTDIR:
      return Error(proto::kNotADirectory,
                   "a component of " + shown + " is not a directory: check the path");
    case EISDIR:
      return Error(proto::kIsADirectory, shown + " is a directory: list it instead");
    case EROFS:
      return Error(proto::kReadOnly,
                   shown +
                       " is on a read-only file system: write under a writable directory "
                       "such as /tmp or the app's directory");
    case EACCES:
    case EPERM:
      return Error(proto::kPermissionDenied, std::string(what) + " " + shown +
                                                 ": permission denied (check the file's owner "
                                                 "and mode)");
    case ENOTEMPTY:
      return Error(proto::kDirectoryNotEmpty,
                   shown + " is not empty: remove it with recursive set, or empty it first");
    case ENOSPC:
    case EDQUOT:
      return Error(proto::kNoSpace, "no space left to " + std::string(what) + " " + shown +
                                        ": delete files or raise the instance's disk limit");
    case ENAMETOOLONG:
      return Error(proto::kPathInvalid, "a name in " + shown + " is too long: use shorter names");
    case ELOOP:
      return Error(proto::kPathInvalid, shown +
                                            " goes through too many symbolic links or a /proc "
                                            "magic link: use the real path");
    case EXDEV:
      return Error(proto::kPathInvalid, shown + " leads outside the instance's file system");
    default: {
      std::string message(what);
      message += " " + shown + ": ";
      message += ErrnoText(err);
      return Error(proto::kInternal, std::move(message));
    }
  }
}

// Checks a client path and normalizes it: `relative` is it without the leading slash, "."
// and empty components dropped ("." for the root); `shown` is "/" + relative.
FileError CheckPath(std::string_view path, std::string* relative, std::string* shown) {
  if (path.empty()) {
    return Error(proto::kPathInvalid, "the path is empty: give an absolute path such as /app");
  }
  if (path.find('\0') != std::string_view::npos) {
    return Error(proto::kPathInvalid, "the path contains a NUL byte: remove it");
  }
  if (path.size() >= PATH_MAX) {
    return Error(proto::kPathInvalid, "the path is longer than 4095 bytes: use a shorter path");
  }
  std::string display(path);
  if (path[0] != '/') {
    return Error(proto::kPathInvalid,
                 "path " + display + " is relative: give an absolute path such as /" + display);
  }
  relative->clear();
  size_t start = 0;
  while (start <= path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string_view::npos) {
      end = path.size();
    }
    std::string_view part = path.substr(start, end - start);
    if (part == "..") {
      return Error(proto::kPathInvalid,
                   "path " + display + " contains '..': give the absolute path without it");
    }
    if (!part.empty() && part != ".") {
      if (!relative->empty()) {
        relative->push_back('/');
      }
      relative->append(part);
    }
    start = end + 1;
  }
  *shown = "/" + *relative;
  if (relative->empty()) {
    *relative = ".";
  }
  return {};
}

int64_t EntryType(mode_t mode) {
  if (S_ISREG(mode)) {
    return proto::kEntryFile;
  }
  if (S_ISDIR(mode)) {
    return proto::kEntryDir;
  }
  if (S_ISLNK(mode)) {
    return proto::kEntrySymlink;
  }
  return proto::kEntryOther;
}

// Fills `info` from a stat of `name` in `dir_fd` (the link itself for symlinks).
void FillInfo(int dir_fd, const char* name, const struct stat& st, EntryInfo* info) {
  info->type = EntryType(st.st_mode);
  info->size = st.st_size;
  info->mode = st.st_mode & 07777;
  info->mtime_ms = int64_t{st.st_mtim.tv_sec} * 1000 + st.st_mtim.tv_nsec / 1'000'000;
  info->link_target.clear();
  if (S_ISLNK(st.st_mode)) {
    char target[PATH_MAX];
    ssize_t n = readlinkat(dir_fd, name, target, sizeof target);
    if (n > 0) {
      info->link_target.assign(target, static_cast<size_t>(n));
    }
  }
}

// Names in a directory, without "." and "..", sorted; false on a read error.
bool ReadNames(int dir_fd, std::vector<std::string>* names) {
  // getdents64 on a duplicate keeps dir_fd's offset untouched and links no opendir code.
  UniqueFd fd(openat(dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd.valid()) {
    return false;
  }
  std::string buffer(8192, '\0');
  while (true) {
    ssize_t n = getdents64(fd.get(), buffer.data(), buffer.size());
    if (n < 0) {
      return false;
    }
    if (n == 0) {
      break;
    }
    for (ssize_t offset = 0; offset < n;) {
      auto* entry = reinterpret_cast<dirent64*>(buffer.data() + offset);
      std::string_view name(entry->d_name);
      if (name != "." && name != "..") {
        names->emplace_back(name);
      }
      offset += entry->d_reclen;
    }
  }
  std::sort(names->begin(), names->end());
  return true;
}

FileError RemoveTree(int parent_fd, const std::string& name, const std::string& shown, int depth) {
  if (depth > kMaxRemoveDepth) {
    return Error(proto::kInternal, shown + " is nested too deeply to remove");
  }
  // O_NOFOLLOW: a symlink planted inside the tree is removed, never entered.
  UniqueFd dir(openat(parent_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (!dir.valid()) {
    return FromErrno(errno, shown, "remove");
  }
  std::vector<std::string> names;
  if (!ReadNames(dir.get(), &names)) {
    return FromErrno(errno, shown, "list");
  }
  for (const std::string& child : names) {
    std::string child_shown = shown + "/" + child;
    struct stat st {};
    if (fstatat(dir.get(), child.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) {
        continue;
      }
      return FromErrno(errno, child_shown, "remove");
    }
    if (S_ISDIR(st.st_mode)) {
      FileError error = RemoveTree(dir.get(), child, child_shown, depth + 1);
      if (!error.ok()) {
        return error;
      }
    } else if (unlinkat(dir.get(), child.c_str(), 0) != 0 && errno != ENOENT) {
      return FromErrno(errno, child_shown, "remove");
    }
  }
  if (unlinkat(parent_fd, name.c_str(), AT_REMOVEDIR) != 0 && errno != ENOENT) {
    return FromErrno(errno, shown, "remove");
  }
  return {};
}

std::string_view BaseName(const std::string& shown) {
  size_t slash = shown.rfind('/');
  std::string_view name = std::string_view(shown).substr(slash + 1);
  return name.empty() ? std::string_view("/") : name;
}

}  // namespace

// --- PendingWrite ---

PendingWrite::~PendingWrite() { Abort(); }

void PendingWrite::Abort() {
  if (!temp_name_.empty() && dir_.valid()) {
    unlinkat(dir_.get(), temp_name_.c_str(), 0);
  }
  temp_name_.clear();
  file_.Reset();
}

FileError PendingWrite::Append(std::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(file_.get(), data.data(), data.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      FileError error = FromErrno(errno, path_, "write");
      Abort();
      return error;
    }
    data.remove_prefix(static_cast<size_t>(n));
    written_ += n;
  }
  return {};
}

FileError PendingWrite::Commit() {
  // fchmod, not the open mode: the umask must not change what the client asked for.
  if (fchmod(file_.get(), mode_) != 0) {
    FileError error = FromErrno(errno, path_, "write");
    Abort();
    return error;
  }
  // close() can report a failed write-back (quota, network file systems).
  int fd = file_.Release();
  if (close(fd) != 0 && errno != EINTR) {
    FileError error = FromErrno(errno, path_, "write");
    Abort();
    return error;
  }
  if (renameat(dir_.get(), temp_name_.c_str(), dir_.get(), name_.c_str()) != 0) {
    FileError error = FromErrno(errno, path_, "write");
    Abort();
    return error;
  }
  temp_name_.clear();
  return {};
}

// --- FileSystem ---

int FileSystem::Resolve(const std::string& relative, int flags) {
  open_how how{};
  how.flags = static_cast<uint64_t>(flags | O_CLOEXEC);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  while (true) {
    long fd = syscall(SYS_openat2, root_.get(), relative.c_str(), &how, sizeof how);
    // EAGAIN: a concurrent rename raced the lookup; the kernel asks for a retry.
    if (fd < 0 && (errno == EAGAIN || errno == EINTR)) {
      continue;
    }
    return static_cast<int>(fd);
  }
}

FileError FileSystem::OpenParent(const std::string& relative, const std::string& shown,
                                 UniqueFd* dir, std::string* name) {
  size_t slash = relative.rfind('/');
  std::string parent = slash == std::string::npos ? "." : relative.substr(0, slash);
  *name = slash == std::string::npos ? relative : relative.substr(slash + 1);
  dir->Reset(Resolve(parent, O_PATH | O_DIRECTORY));
  if (!dir->valid()) {
    return FromErrno(errno, shown, "open");
  }
  return {};
}

FileError FileSystem::MakeDirs(const std::string& relative, const std::string& shown,
                               UniqueFd* dir) {
  dir->Reset(Resolve(".", O_PATH | O_DIRECTORY));
  if (!dir->valid()) {
    return FromErrno(errno, "/", "open");
  }
  if (relative == ".") {
    return {};
  }
  // One component at a time, each resolved from the root again, so a symlinked component
  // stays confined exactly as in a single openat2() of the whole path.
  size_t start = 0;
  while (start < relative.size()) {
    size_t end = relative.find('/', start);
    if (end == std::string::npos) {
      end = relative.size();
    }
    std::string prefix = relative.substr(0, end);
    std::string component = relative.substr(start, end - start);
    UniqueFd next(Resolve(prefix, O_PATH | O_DIRECTORY));
    if (!next.valid() && errno == ENOENT) {
      // mkdirat never follows a final symlink: a dangling link is EEXIST, then ENOENT below.
      if (mkdirat(dir->get(), component.c_str(), 0755) != 0 && errno != EEXIST) {
        return FromErrno(errno, "/" + prefix, "create directory");
      }
      next.Reset(Resolve(prefix, O_PATH | O_DIRECTORY));
    }
    if (!next.valid()) {
      int err = errno;
      if (err == ENOTDIR) {
        return Error(proto::kNotADirectory,
                     "/" + prefix +
                         " exists and is not a directory: remove it or pick another "
                         "path than " +
                         shown);
      }
      return FromErrno(err, "/" + prefix, "open");
    }
    *dir = std::move(next);
    start = end + 1;
  }
  return {};
}

FileError FileSystem::Stat(std::string_view path, EntryInfo* info) {
  std::string relative;
  std::string shown;
  FileError error = CheckPath(path, &relative, &shown);
  if (!error.ok()) {
    return error;
  }
  UniqueFd dir;
  std::string name;
  if (relative == ".") {
    dir.Reset(Resolve(".", O_PATH | O_DIRECTORY));
    name = ".";
  } else {
    error = OpenParent(relative, shown, &dir, &name);
    if (!error.ok()) {
      return error;
    }
  }
  if (!dir.valid()) {
    return FromErrno(errno, shown, "stat");
  }
  struct stat st {};
  if (fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return FromErrno(errno, shown, "stat");
  }
  info->name = BaseName(shown);
  info->path = shown;
  FillInfo(dir.get(), name.c_str(), st, info);
  return {};
}

FileError FileSystem::List(std::string_view path, int depth, int max_entries,
                           std::vector<EntryInfo>* out, bool* truncated) {
  std::string relative;
  std::string shown;
  FileError error = CheckPath(path, &relative, &shown);
  if (!error.ok()) {
    return error;
  }
  UniqueFd dir(Resolve(relative, O_RDONLY | O_DIRECTORY));
  if (!dir.valid()) {
    if (errno == ENOTDIR) {
      return Error(proto::kNotADirectory, shown + " is not a directory: stat or read it instead");
    }
    return FromErrno(errno, shown, "list");
  }
  *truncated = false;
  Walk(dir.get(), shown == "/" ? "" : shown, depth, max_entries, out, truncated);
  return {};
}

void FileSystem::Walk(int dir_fd, const std::string& prefix, int levels_left, int max_entries,
                      std::vector<EntryInfo>* out, bool* truncated) {
  std::vector<std::string> names;
  if (!ReadNames(dir_fd, &names)) {
    return;  // an unreadable subdirectory is listed, just without children
  }
  for (const std::string& name : names) {
    if (static_cast<int>(out->size()) >= max_entries) {
      *truncated = true;
      return;
    }
    struct stat st {};
    if (fstatat(dir_fd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      continue;  // removed while we were listing
    }
    EntryInfo& info = out->emplace_back();
    info.name = name;
    info.path = prefix + "/" + name;
    FillInfo(dir_fd, name.c_str(), st, &info);
    if (S_ISDIR(st.st_mode) && levels_left > 1) {
      UniqueFd child(openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (child.valid()) {
        std::string child_prefix = info.path;  // `info` may move when `out` grows
        Walk(child.get(), child_prefix, levels_left - 1, max_entries, out, truncated);
      }
    }
  }
}

FileError FileSystem::OpenForRead(std::string_view path, int64_t max_bytes, UniqueFd* fd,
                                  EntryInfo* info) {
  std::string relative;
  std::string shown;
  FileError error = CheckPath(path, &relative, &shown);
  if (!error.ok()) {
    return error;
  }
  // O_NONBLOCK so a FIFO cannot stall the single-threaded loop; it is refused below anyway.
  fd->Reset(Resolve(relative, O_RDONLY | O_NONBLOCK | O_NOCTTY));
  if (!fd->valid()) {
    return FromErrno(errno, shown, "read");
  }
  struct stat st {};
  if (fstat(fd->get(), &st) != 0) {
    return FromErrno(errno, shown, "read");
  }
  if (S_ISDIR(st.st_mode)) {
    return Error(proto::kIsADirectory, shown + " is a directory: list it instead");
  }
  if (!S_ISREG(st.st_mode)) {
    return Error(proto::kNotAFile, shown + " is not a regular file (a device, socket or FIFO)");
  }
  if (st.st_size > max_bytes) {
    return Error(proto::kFileTooLarge,
                 shown + " is " + IntToString(st.st_size) + " bytes, more than the limit of " +
                     IntToString(max_bytes) + ": raise max_bytes or read it with exec");
  }
  info->name = BaseName(shown);
  info->path = shown;
  FillInfo(fd->get(), "", st, info);
  return {};
}

FileError FileSystem::BeginWrite(std::string_view path, uint32_t mode, PendingWrite* write) {
  std::string relative;
  std::string shown;
  FileError error = CheckPath(path, &relative, &shown);
  if (!error.ok()) {
    return error;
  }
  if (relative == ".") {
    return Error(proto::kIsADirectory, "/ is a directory: give a file path such as /app/file");
  }
  size_t slash = relative.rfind('/');
  std::string parent = slash == std::string::npos ? "." : relative.substr(0, slash);
  write->name_ = slash == std::string::npos ? relative : relative.substr(slash + 1);
  error = MakeDirs(parent, shown, &write->dir_);
  if (!error.ok()) {
    return error;
  }
  struct stat st {};
  if (fstatat(write->dir_.get(), write->name_.c_str(), &st, AT_SYMLINK_NOFOLLOW) == 0 &&
      S_ISDIR(st.st_mode)) {
    return Error(proto::kIsADirectory, shown +
                                           " is a directory: remove it first or write to a "
                                           "file inside it");
  }
  // The temporary name is hidden and unique per kiln-init process and write; O_EXCL and
  // O_NOFOLLOW refuse anything already planted under that name.
  static uint64_t counter = 0;
  std::string temp = "." + write->name_.substr(0, 180) + ".kiln-" + IntToString(getpid()) + "-" +
                     IntToString(static_cast<int64_t>(++counter));
  write->file_.Reset(openat(write->dir_.get(), temp.c_str(),
                            O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (!write->file_.valid()) {
    return FromErrno(errno, shown, "write");
  }
  write->temp_name_ = std::move(temp);
  write->path_ = shown;
  write->mode_ = mode & 07777;
  return {};
}

FileError FileSystem::Remove(std::string_view path, bool recursive) {
  std::string relative;
  std::string shown;
  FileError error = CheckPath(path, &relative, &shown);
  if (!error.ok()) {
    return error;
  }
  if (relative == ".") {
    return Error(proto::kPathInvalid, "refusing to remove /: name a file or directory inside it");
  }
  UniqueFd dir;
  std::string name;
  error = OpenParent(relative, shown, &dir, &name);
  if (!error.ok()) {
    return error;
  }
  struct stat st {};
  if (fstatat(dir.get(), name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
    return FromErrno(errno, shown, "remove");
  }
  if (!S_ISDIR(st.st_mode)) {
    if (unlinkat(dir.get(), name.c_str(), 0) != 0) {
      return FromErrno(errno, shown, "remove");
    }
    return {};
  }
  if (recursive) {
    return RemoveTree(dir.get(), name, shown, 0);
  }
  if (unlinkat(dir.get(), name.c_str(), AT_REMOVEDIR) != 0) {
    // rmdir reports a non-empty directory as ENOTEMPTY or, on some file systems, EEXIST.
    return FromErrno(errno == EEXIST ? ENOTEMPTY : errno, shown, "remove");
  }
  return {};
}

FileError FileSystem::MakeDir(std::string_view path) {
  std::string relative;
  std::string shown;
  FileError error = CheckPath(path, &relative, &shown);
  if (!error.ok()) {
    return error;
  }
  UniqueFd dir;
  return MakeDirs(relative, shown, &dir);
}

}  // namespace kiln::init
