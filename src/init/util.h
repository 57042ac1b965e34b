#pragma once
// Small helpers shared by kiln-init's files: clocks, owned descriptors, number formatting and
// errno text. kiln-init links no stdio or iostream, so formatting is done here by hand.

#include <unistd.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace kiln::init {

int64_t MonotonicMs();
int64_t MonotonicUs();
int64_t UnixMs();

// Owns one descriptor and closes it when destroyed.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd&& other) noexcept : fd_(other.Release()) {}
  UniqueFd& operator=(UniqueFd&& other) noexcept {
    Reset(other.Release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  ~UniqueFd() { Reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int Release() {
    int fd = fd_;
    fd_ = -1;
    return fd;
  }
  void Reset(int fd = -1) {
    if (fd_ >= 0) {
      ::close(fd_);
    }
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

void AppendInt(std::string& out, int64_t value);
std::string IntToString(int64_t value);
// Parses a whole decimal string (optional leading '-'); false on anything else or overflow.
bool ParseInt(std::string_view text, int64_t* out);

// The English description of an errno value ("No such file or directory"), untranslated so
// no locale machinery is linked into the static binary.
std::string_view ErrnoText(int err);

// Resident set size of this process in KiB, from /proc/self/statm; -1 if unreadable.
int64_t ReadRssKb();

// Called when kiln-init has been idle a while: unmaps the pages of its own code and
// read-only data (they stay in the page cache and fault back in on the next request), drops
// the pages of a scratch buffer (its contents are lost), and returns free heap to the kernel.
// The code of a static binary is most of its resident set, and little of it runs while idle.
void ReleaseIdleMemory(void* scratch, size_t scratch_size);

// Reads a whole small file (at most `limit` bytes); false if it cannot be opened or read.
bool ReadSmallFile(const char* path, size_t limit, std::string* out);

// Writes "kiln-init: <message>\n" to stderr: kiln-init's own diagnostics, which runc keeps
// with the container's output.
void LogError(std::string_view message);

// Writes all of `data` to a blocking descriptor, retrying on EINTR; false on error.
bool WriteAll(int fd, std::string_view data);

}  // namespace kiln::init
