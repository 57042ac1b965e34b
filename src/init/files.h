#pragma once
// File operations for clients of kiln-init, confined to one root directory.
//
// Every path comes from the host and is checked before anything is touched: it must be
// absolute, without NUL and without `..` components. It is then resolved with openat2()
// and RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS against an O_PATH descriptor of the root, so
// a symlink inside the root (to /etc/passwd, to ../../x, through /proc/self/root) resolves
// inside the root or not at all. Write and remove work on the parent directory's descriptor
// with *at() calls that never follow the last component.

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "init/util.h"

namespace kiln::init {

// The outcome of a file operation: ok, or a protocol error code (proto::kFileNotFound, ...)
// with a message that says what went wrong and what to do.
struct FileError {
  std::string_view code;  // empty when ok
  std::string message;
  bool ok() const { return code.empty(); }
};

struct EntryInfo {
  std::string name;  // last component ("/" for the root)
  std::string path;  // absolute, normalized, as the client sees it
  int64_t type = 0;  // proto::kEntryFile, kEntryDir, kEntrySymlink, kEntryOther
  int64_t size = 0;
  uint32_t mode = 0;  // permission bits (07777)
  int64_t mtime_ms = 0;
  std::string link_target;  // symlinks only, verbatim
};

// A WRITE in progress: data goes to a temporary file beside the target, and Commit()
// renames it over the target, so readers see the old file or the new one, never half.
// Destroying an uncommitted write removes the temporary file.
class PendingWrite {
 public:
  PendingWrite() = default;
  PendingWrite(const PendingWrite&) = delete;
  PendingWrite& operator=(const PendingWrite&) = delete;
  ~PendingWrite();

  FileError Append(std::string_view data);
  FileError Commit();
  int64_t written() const { return written_; }

 private:
  friend class FileSystem;
  void Abort();

  UniqueFd dir_;
  UniqueFd file_;
  std::string temp_name_;
  std::string name_;
  std::string path_;
  uint32_t mode_ = 0644;
  int64_t written_ = 0;
};

// Not thread-safe; kiln-init is single-threaded. Calls block on the disk, which is local.
class FileSystem {
 public:
  // `root` is an O_PATH descriptor of the directory all paths are confined to.
  explicit FileSystem(UniqueFd root) : root_(std::move(root)) {}

  FileError Stat(std::string_view path, EntryInfo* info);
  // Walks `path` depth-first (1 = its children only), entries of a directory sorted by name;
  // symlinks are listed, never followed. Stops after `max_entries` and sets *truncated.
  FileError List(std::string_view path, int depth, int max_entries, std::vector<EntryInfo>* out,
                 bool* truncated);
  // Opens a regular file for reading; FILE_TOO_LARGE when it is larger than max_bytes.
  FileError OpenForRead(std::string_view path, int64_t max_bytes, UniqueFd* fd, EntryInfo* info);
  // Creates missing parent directories (0755) and a temporary file for `path`.
  FileError BeginWrite(std::string_view path, uint32_t mode, PendingWrite* write);
  FileError Remove(std::string_view path, bool recursive);
  // Creates `path` and its missing parents; an existing directory is fine.
  FileError MakeDir(std::string_view path);

 private:
  int Resolve(const std::string& relative, int flags);
  FileError MakeDirs(const std::string& relative, const std::string& shown, UniqueFd* dir);
  FileError OpenParent(const std::string& relative, const std::string& shown, UniqueFd* dir,
                       std::string* name);
  void Walk(int dir_fd, const std::string& prefix, int levels_left, int max_entries,
            std::vector<EntryInfo>* out, bool* truncated);

  UniqueFd root_;
};

}  // namespace kiln::init
