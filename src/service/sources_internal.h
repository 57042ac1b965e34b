#pragma once
// Module-private: helpers shared by the files behind sources.h: sources.cc (starters,
// DetectPlan, ParseMultipart), sources_archive.cc (ExtractArchive) and sources_git.cc (FetchUrl,
// GitCheckout). The functions are defined in sources.cc; each is pure and thread-safe.

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>

namespace kiln::service {

// Owns a file descriptor; closes it when destroyed or reset.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() { Reset(); }
  int get() const { return fd_; }
  void Reset() {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

// The hint of ARCHIVE_TOO_LARGE and ARCHIVE_TOO_MANY_ENTRIES, for an upload or a download.
inline constexpr char kTooBigHint[] =
    "leave dependencies and build outputs (node_modules, .venv, dist) out of the archive: the "
    "build installs them";

// "1 GiB", "64 KiB" when `n` is a whole number of them, else "N bytes".
std::string HumanBytes(int64_t n);

// A name from an upload, quoted for a message: valid UTF-8 (messages end up in JSON) and short.
std::string Quoted(std::string_view name);

// `s` without leading and trailing whitespace.
std::string Trim(std::string_view s);

// `s` with ASCII letters lowercased.
std::string Lower(std::string_view s);

// Whether `s` is `min_len` to `max_len` hex digits.
bool IsHex(std::string_view s, size_t min_len, size_t max_len);

// Whether a symlink whose parent directory is `depth` real directories below the root, with
// `target`, resolves inside the root. Only leading ".." are allowed: they climb real
// directories, and everything after them descends. A ".." after a name could climb out of a
// directory reached through another symlink ("a -> ." then "b -> a/.."), so it is refused.
bool LinkStaysInside(size_t depth, std::string_view target);

}  // namespace kiln::service
