#include "web/files.h"

#include <fcntl.h>
#include <linux/openat2.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>

namespace kiln::web::internal {
namespace {

constexpr size_t kMaxPathBytes = 1024;

// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer (it is refused
// after fstat); O_NOCTTY: a terminal device must not become ours.
constexpr int kReadFlags = O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;

// Set once openat2() answered ENOSYS: the kernel will not grow it while we run.
std::atomic<bool> no_openat2{false};

Status NotAFile(const std::string& relative) {
  return Status::NotFound("NOT_A_FILE", "/" + relative + " is not a file of the dashboard");
}

// Errors that mean "nothing servable there" rather than a fault of the machine.
bool IsMissing(int err) {
  return err == ENOENT || err == ENOTDIR || err == ELOOP || err == EXDEV || err == EACCES ||
         err == ENAMETOOLONG || err == EISDIR;
}

int Openat2(int root_fd, const std::string& relative) {
  open_how how{};
  how.flags = static_cast<uint64_t>(kReadFlags);
  how.resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
  while (true) {
    long fd = syscall(SYS_openat2, root_fd, relative.c_str(), &how, sizeof how);
    // EAGAIN: a concurrent rename raced the lookup; the kernel asks for a retry.
    if (fd < 0 && (errno == EAGAIN || errno == EINTR)) {
      continue;
    }
    return static_cast<int>(fd);
  }
}

// Each directory with O_NOFOLLOW | O_DIRECTORY (a symlink there is ENOTDIR), the file with
// O_NOFOLLOW (ELOOP): no symlink is followed at all. RelativePath has ruled out "..".
int OpenNoFollow(int root_fd, const std::string& relative) {
  int dir = dup(root_fd);
  if (dir < 0) {
    return -1;
  }
  size_t start = 0;
  while (true) {
    size_t slash = relative.find('/', start);
    std::string name = relative.substr(start, slash == std::string::npos ? slash : slash - start);
    int flags = slash == std::string::npos ? kReadFlags | O_NOFOLLOW
                                           : O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
    int next = openat(dir, name.c_str(), flags);
    int err = errno;
    close(dir);
    if (next < 0 || slash == std::string::npos) {
      errno = err;
      return next;
    }
    dir = next;
    start = slash + 1;
  }
}

}  // namespace

bool RelativePath(std::string_view path, std::string* relative) {
  relative->clear();
  if (path.empty() || path.front() != '/' || path.size() > kMaxPathBytes ||
      path.find('\0') != std::string_view::npos || path.find('\\') != std::string_view::npos) {
    return false;
  }
  size_t start = 1;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) {
      slash = path.size();
    }
    std::string_view segment = path.substr(start, slash - start);
    if (!segment.empty()) {
      // "..", "." and hidden files alike: nothing the dashboard serves starts with a dot.
      if (segment.front() == '.') {
        return false;
      }
      if (!relative->empty()) {
        *relative += '/';
      }
      *relative += segment;
    }
    start = slash + 1;
  }
  return true;
}

OpenFile::OpenFile(OpenFile&& other) noexcept : fd_(other.fd_), stat_(other.stat_) {
  other.fd_ = -1;
}

OpenFile& OpenFile::operator=(OpenFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) {
      close(fd_);
    }
    fd_ = other.fd_;
    stat_ = other.stat_;
    other.fd_ = -1;
  }
  return *this;
}

OpenFile::~OpenFile() {
  if (fd_ >= 0) {
    close(fd_);
  }
}

std::string OpenFile::ETag() const {
  int64_t mtime_ns = int64_t{stat_.st_mtim.tv_sec} * 1'000'000'000 + stat_.st_mtim.tv_nsec;
  char buf[64];
  std::snprintf(buf, sizeof buf, "\"%llx-%llx\"", static_cast<unsigned long long>(stat_.st_size),
                static_cast<unsigned long long>(mtime_ns));
  return buf;
}

Result<std::string> OpenFile::Read() const {
  std::string out;
  // One byte more than fstat said, so the common case ends with one read and one EOF.
  out.resize(static_cast<size_t>(stat_.st_size) + 1);
  size_t done = 0;
  while (true) {
    if (done == out.size()) {
      // The file may have grown since fstat: read on until the end, within the cap.
      if (out.size() > static_cast<size_t>(kMaxFileBytes)) {
        return Status::Internal("a dashboard file grew past " +
                                std::to_string(kMaxFileBytes >> 20) + " MiB while being read");
      }
      out.resize(std::min(out.size() + 64 * 1024, static_cast<size_t>(kMaxFileBytes) + 1));
    }
    ssize_t n = pread(fd_, out.data() + done, out.size() - done, static_cast<off_t>(done));
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return Status::FromErrno("read(dashboard file)", errno);
    }
    if (n == 0) {
      break;
    }
    done += static_cast<size_t>(n);
  }
  out.resize(done);
  return out;
}

Result<OpenFile> OpenBelow(int root_fd, const std::string& relative, Resolver resolver) {
  if (relative.empty()) {
    return NotAFile(relative);
  }
  if (resolver == Resolver::kAuto) {
    resolver =
        no_openat2.load(std::memory_order_relaxed) ? Resolver::kNoFollow : Resolver::kOpenat2;
  }
  int fd =
      resolver == Resolver::kOpenat2 ? Openat2(root_fd, relative) : OpenNoFollow(root_fd, relative);
  if (fd < 0 && errno == ENOSYS && resolver == Resolver::kOpenat2) {
    no_openat2.store(true, std::memory_order_relaxed);
    log::Warn("openat2() is unavailable: dashboard files are opened without following symlinks");
    fd = OpenNoFollow(root_fd, relative);
  }
  if (fd < 0) {
    int err = errno;
    if (IsMissing(err)) {
      return NotAFile(relative);
    }
    return Status::FromErrno("open(dashboard /" + relative + ")", err);
  }
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    int err = errno;
    close(fd);
    return Status::FromErrno("fstat(dashboard /" + relative + ")", err);
  }
  OpenFile file(fd, st);
  if (!S_ISREG(st.st_mode)) {
    return NotAFile(relative);
  }
  if (st.st_size > kMaxFileBytes) {
    return Status(
        Code::kPayloadTooLarge, "FILE_TOO_LARGE",
        "/" + relative + " is larger than " + std::to_string(kMaxFileBytes >> 20) + " MiB",
        "the dashboard serves its own built files only: rebuild it with `make`");
  }
  return file;
}

}  // namespace kiln::web::internal
