#include "init/util.h"

#include <fcntl.h>
#include <link.h>
#include <malloc.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include <cerrno>

namespace kiln::init {

namespace {

int64_t ClockNs(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

}  // namespace

int64_t MonotonicMs() { return ClockNs(CLOCK_MONOTONIC) / 1'000'000; }
int64_t MonotonicUs() { return ClockNs(CLOCK_MONOTONIC) / 1'000; }
int64_t UnixMs() { return ClockNs(CLOCK_REALTIME) / 1'000'000; }

void AppendInt(std::string& out, int64_t value) {
  char digits[24];
  int n = 0;
  // Work in unsigned so INT64_MIN does not overflow when negated.
  uint64_t u = value < 0 ? 0 - static_cast<uint64_t>(value) : static_cast<uint64_t>(value);
  do {
    digits[n++] = static_cast<char>('0' + u % 10);
    u /= 10;
  } while (u != 0);
  if (value < 0) {
    out.push_back('-');
  }
  while (n > 0) {
    out.push_back(digits[--n]);
  }
}

std::string IntToString(int64_t value) {
  std::string out;
  AppendInt(out, value);
  return out;
}

bool ParseInt(std::string_view text, int64_t* out) {
  bool negative = !text.empty() && text[0] == '-';
  if (negative) {
    text.remove_prefix(1);
  }
  if (text.empty() || text.size() > 18) {
    return false;
  }
  int64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') {
      return false;
    }
    value = value * 10 + (c - '0');
  }
  *out = negative ? -value : value;
  return true;
}

std::string_view ErrnoText(int err) {
  const char* text = strerrordesc_np(err);
  return text != nullptr ? std::string_view(text) : std::string_view("Unknown error");
}

int64_t ReadRssKb() {
  std::string statm;
  if (!ReadSmallFile("/proc/self/statm", 256, &statm)) {
    return -1;
  }
  // "size resident shared ...", counted in pages.
  size_t space = statm.find(' ');
  if (space == std::string::npos) {
    return -1;
  }
  size_t end = statm.find(' ', space + 1);
  int64_t pages = 0;
  if (!ParseInt(std::string_view(statm).substr(space + 1, end - space - 1), &pages)) {
    return -1;
  }
  return pages * (sysconf(_SC_PAGESIZE) / 1024);
}

void ReleaseIdleMemory(void* scratch, size_t scratch_size) {
  malloc_trim(0);
  auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  auto scratch_begin = (reinterpret_cast<uintptr_t>(scratch) + page - 1) & ~(page - 1);
  auto scratch_end = (reinterpret_cast<uintptr_t>(scratch) + scratch_size) & ~(page - 1);
  if (scratch_end > scratch_begin) {
    madvise(reinterpret_cast<void*>(scratch_begin), scratch_end - scratch_begin, MADV_DONTNEED);
  }
  // Every read-only LOAD segment of our own executable (code, rodata, headers). Written
  // segments, RELRO included, hold relocated data and are never touched.
  dl_iterate_phdr(
      [](dl_phdr_info* info, size_t, void*) -> int {
        auto page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
        for (int i = 0; i < info->dlpi_phnum; ++i) {
          const ElfW(Phdr)& ph = info->dlpi_phdr[i];
          if (ph.p_type != PT_LOAD || (ph.p_flags & PF_W) != 0) {
            continue;
          }
          uintptr_t start = info->dlpi_addr + ph.p_vaddr;
          uintptr_t begin = (start + page - 1) & ~(page - 1);
          uintptr_t end = (start + ph.p_memsz) & ~(page - 1);
          if (end > begin) {
            // Private file pages that were never written: this only drops the mapping.
            madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
          }
        }
        return 1;  // the executable comes first; nothing else is ours to drop
      },
      nullptr);
}

bool ReadSmallFile(const char* path, size_t limit, std::string* out) {
  UniqueFd fd(open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY));
  if (!fd.valid()) {
    return false;
  }
  out->clear();
  char buffer[4096];
  while (out->size() < limit) {
    ssize_t n = read(fd.get(), buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      return false;
    }
    if (n == 0) {
      break;
    }
    out->append(buffer, static_cast<size_t>(n));
  }
  return true;
}

void LogError(std::string_view message) {
  std::string line = "kiln-init: ";
  line.append(message);
  line.push_back('\n');
  WriteAll(STDERR_FILENO, line);
}

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

}  // namespace kiln::init
