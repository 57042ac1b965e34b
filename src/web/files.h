#pragma once
// Module-private: the dashboard's file access. A client's path is checked as text first
// (RelativePath), then opened below the directory only (OpenBelow): with openat2() and
// RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS, so a symlink is resolved as if the directory were
// `/` and cannot lead out of it; where the kernel has no openat2() (before Linux 5.6), one
// component at a time with O_NOFOLLOW, so every symlink is refused.
//
// Thread-safety: free functions and a move-only file handle; no shared state.

#include <sys/stat.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "core/core.h"

namespace kiln::web::internal {

// Files larger than this are not served (the dashboard's are far smaller).
constexpr int64_t kMaxFileBytes = 32LL << 20;

// The path below the directory for request path `path` (percent-decoded, starting with '/'):
// "/assets/app.js" -> "assets/app.js", "/" -> "". Empty segments are dropped. False for a
// path that must not reach the file system: no leading '/', a NUL, a backslash, a segment
// starting with '.' ("..", ".", hidden files), or longer than 1024 bytes.
bool RelativePath(std::string_view path, std::string* relative);

// A regular file opened for reading, with its stat taken when it was opened.
class OpenFile {
 public:
  OpenFile() = default;
  OpenFile(int fd, const struct stat& st) : fd_(fd), stat_(st) {}
  OpenFile(OpenFile&& other) noexcept;
  OpenFile& operator=(OpenFile&& other) noexcept;
  OpenFile(const OpenFile&) = delete;
  OpenFile& operator=(const OpenFile&) = delete;
  ~OpenFile();

  int64_t size() const { return stat_.st_size; }
  // A strong validator from size and modification time: "\"<size>-<mtime ns>\"" in hex.
  std::string ETag() const;
  // The whole file; Internal when a read fails or it grew past kMaxFileBytes meanwhile.
  Result<std::string> Read() const;

 private:
  int fd_ = -1;
  struct stat stat_ {};
};

// How OpenBelow walks the path; kAuto uses openat2 and falls back where the kernel lacks it.
enum class Resolver { kAuto, kOpenat2, kNoFollow };

// Opens `relative` (from RelativePath; "" is not a file) below directory `root_fd`.
// NotFound NOT_A_FILE when it does not exist, leads out of the directory, passes a refused
// symlink, or is not a regular file (a directory, a FIFO, a device); PayloadTooLarge
// FILE_TOO_LARGE above kMaxFileBytes; Internal for other errors (EIO, EMFILE).
Result<OpenFile> OpenBelow(int root_fd, const std::string& relative,
                           Resolver resolver = Resolver::kAuto);

}  // namespace kiln::web::internal
