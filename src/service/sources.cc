#include "service/sources.h"

#include <archive.h>
#include <archive_entry.h>
#include <curl/curl.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <sstream>
#include <tuple>
#include <utility>

#include "core/json.h"
#include "core/process.h"

namespace kiln::service {
namespace {

namespace fs = std::filesystem;

// ---------------------------------------------------------------------------------------------
// Small helpers

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

std::string HumanBytes(int64_t n) {
  constexpr int64_t kKiB = 1024, kMiB = kKiB * 1024, kGiB = kMiB * 1024;
  if (n >= kGiB && n % kGiB == 0) {
    return std::to_string(n / kGiB) + " GiB";
  }
  if (n >= kMiB && n % kMiB == 0) {
    return std::to_string(n / kMiB) + " MiB";
  }
  if (n >= kKiB && n % kKiB == 0) {
    return std::to_string(n / kKiB) + " KiB";
  }
  return std::to_string(n) + " bytes";
}

// A name from an upload, quoted for a message: valid UTF-8 (messages end up in JSON) and short.
std::string Quoted(std::string_view name) {
  constexpr size_t kMax = 200;
  std::string shown = ValidUtf8(name.substr(0, kMax));
  if (name.size() > kMax) {
    shown += "…";
  }
  return "\"" + shown + "\"";
}

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && std::isspace(static_cast<unsigned char>(s[b]))) {
    ++b;
  }
  while (e > b && std::isspace(static_cast<unsigned char>(s[e - 1]))) {
    --e;
  }
  return std::string(s.substr(b, e - b));
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

SourceLog OrNoLog(const SourceLog& log) {
  return log ? log : [](std::string_view) {};
}

bool IsRegularFile(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(fs::symlink_status(p, ec));
}

// Splits a relative path into its names, dropping empty and "." components. False when the
// path is absolute or has a ".." component.
bool SplitRelative(std::string_view path, std::vector<std::string>* parts) {
  parts->clear();
  if (!path.empty() && path.front() == '/') {
    return false;
  }
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = std::min(path.find('/', i), path.size());
    std::string_view c = path.substr(i, j - i);
    if (c == "..") {
      return false;
    }
    if (!c.empty() && c != ".") {
      parts->emplace_back(c);
    }
    i = j + 1;
  }
  return true;
}

// Whether a symlink whose parent directory is `depth` real directories below the root, with
// `target`, resolves inside the root. Only leading ".." are allowed: they climb real
// directories, and everything after them descends. A ".." after a name could climb out of a
// directory reached through another symlink ("a -> ." then "b -> a/.."), so it is refused.
bool LinkStaysInside(size_t depth, std::string_view target) {
  if (target.empty() || target.front() == '/') {
    return false;
  }
  size_t ups = 0;
  bool named = false;
  size_t i = 0;
  while (i <= target.size()) {
    size_t j = std::min(target.find('/', i), target.size());
    std::string_view c = target.substr(i, j - i);
    if (c == "..") {
      if (named) {
        return false;
      }
      ++ups;
    } else if (!c.empty() && c != ".") {
      named = true;
    }
    i = j + 1;
  }
  return ups <= depth;
}

// ---------------------------------------------------------------------------------------------
// ExtractArchive

constexpr char kArchiveHint[] =
    "upload a .tar.gz of your app's folder, e.g. tar czf app.tgz -C DIR .";
constexpr char kTooBigHint[] =
    "leave dependencies and build outputs (node_modules, .venv, dist) out of the archive: the "
    "build installs them";

Status ArchiveInvalid(std::string message) {
  return Status::InvalidArgument("ARCHIVE_INVALID", std::move(message), kArchiveHint);
}

Status ArchiveUnsafe(std::string_view name, std::string_view why) {
  return Status::InvalidArgument(
      "ARCHIVE_UNSAFE", "archive entry " + Quoted(name) + " " + std::string(why),
      "an archive may only hold files, directories and relative links that stay inside it");
}

Status ArchiveTooLarge(int64_t max_bytes) {
  return Status(Code::kPayloadTooLarge, "ARCHIVE_TOO_LARGE",
                "the archive unpacks to more than " + HumanBytes(max_bytes), kTooBigHint);
}

// errno from creating an entry: names the kernel refuses are the archive's fault, the rest
// (disk full, permissions) the host's.
Status EntryError(std::string_view call, std::string_view name, int err) {
  if (err == ENAMETOOLONG || err == EINVAL || err == EILSEQ) {
    return ArchiveInvalid("archive entry " + Quoted(name) + ": " + std::strerror(err));
  }
  return Status::FromErrno(std::string(call) + "(" + Quoted(name) + ")", err);
}

// Writes the entries of one archive under the directory `root_`. Every path is walked one
// name at a time with O_NOFOLLOW, so nothing is ever written through a symlink, whatever
// order the entries come in.
class Extractor {
 public:
  Extractor(int root, const ExtractLimits& limits) : root_(root), limits_(limits) {}

  Status Run(archive* a) {
    archive_entry* entry = nullptr;
    while (true) {
      int r = archive_read_next_header(a, &entry);
      if (r == ARCHIVE_EOF) {
        return Status::Ok();
      }
      if (r < ARCHIVE_WARN) {
        return ArchiveInvalid(std::string("the archive is damaged: ") + ErrorString(a));
      }
      if (++entries_ > limits_.max_entries) {
        return Status::InvalidArgument(
            "ARCHIVE_TOO_MANY_ENTRIES",
            "the archive has more than " + std::to_string(limits_.max_entries) + " entries",
            kTooBigHint);
      }
      KILN_RETURN_IF_ERROR(Entry(a, entry));
    }
  }

  // When every entry sat under one top-level directory (and the archive did not name its
  // root as "./"), that directory; else empty.
  std::string SingleTop() const {
    return single_top_ && !saw_root_ && !top_.empty() ? top_ : std::string();
  }
  bool has_files() const { return has_files_; }

  // Symlinks that stay inside the archive may climb out of its top-level directory; checked
  // again before that directory becomes the root.
  Status CheckLinksBelowTop() const {
    for (const auto& [depth, name, target] : links_) {
      if (depth == 0 || !LinkStaysInside(depth - 1, target)) {
        return ArchiveUnsafe(name, "is a link leading out of the archive's top directory");
      }
    }
    return Status::Ok();
  }

 private:
  static const char* ErrorString(archive* a) {
    const char* e = archive_error_string(a);
    return e != nullptr ? e : "unknown error";
  }

  Status Entry(archive* a, archive_entry* entry) {
    const char* raw = archive_entry_pathname(entry);
    if (raw == nullptr) {
      return ArchiveInvalid("an archive entry has no readable name");
    }
    std::string name = raw;
    std::vector<std::string> parts;
    if (!name.empty() && name.front() == '/') {
      return ArchiveUnsafe(name, "has an absolute path");
    }
    if (!SplitRelative(name, &parts)) {
      return ArchiveUnsafe(name, "has a \"..\" component");
    }
    mode_t type = archive_entry_filetype(entry);
    const char* hardlink = archive_entry_hardlink(entry);
    if (parts.empty()) {
      // "./": the archive's root, which is `root_` itself.
      saw_root_ = true;
      if (hardlink != nullptr || type != AE_IFDIR) {
        return ArchiveUnsafe(name, "replaces the archive's root");
      }
      return Status::Ok();
    }
    NoteTop(parts, hardlink == nullptr && type == AE_IFDIR);

    if (hardlink != nullptr) {
      return Hardlink(name, parts, hardlink);
    }
    switch (type) {
      case AE_IFDIR:
        return Directory(name, parts, archive_entry_perm(entry));
      case AE_IFREG:
        return File(a, entry, name, parts);
      case AE_IFLNK:
        return Symlink(name, parts, archive_entry_symlink(entry));
      default:
        return ArchiveUnsafe(name, "is a device, fifo or socket");
    }
  }

  void NoteTop(const std::vector<std::string>& parts, bool is_dir) {
    if (top_.empty() && single_top_) {
      top_ = parts[0];
    } else if (parts[0] != top_) {
      single_top_ = false;
    }
    if (parts.size() == 1 && !is_dir) {
      single_top_ = false;
    }
  }

  // Opens the directory made of the first `n` names of `parts`, creating missing ones (0755)
  // when `create`.
  Result<Fd> OpenDir(std::string_view name, const std::vector<std::string>& parts, size_t n,
                     bool create) {
    Fd dir(::fcntl(root_, F_DUPFD_CLOEXEC, 0));
    if (dir.get() < 0) {
      return Status::FromErrno("fcntl(F_DUPFD_CLOEXEC)", errno);
    }
    for (size_t i = 0; i < n; ++i) {
      const char* part = parts[i].c_str();
      int fd = ::openat(dir.get(), part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
      if (fd < 0 && errno == ENOENT && create) {
        if (::mkdirat(dir.get(), part, 0700) != 0 && errno != EEXIST) {
          return EntryError("mkdir", name, errno);
        }
        fd = ::openat(dir.get(), part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd >= 0 && ::fchmod(fd, 0755) != 0) {
          int err = errno;
          ::close(fd);
          return EntryError("chmod", name, err);
        }
      }
      if (fd < 0) {
        int err = errno;
        struct stat st {};
        if (::fstatat(dir.get(), part, &st, AT_SYMLINK_NOFOLLOW) == 0) {
          if (S_ISLNK(st.st_mode)) {
            return ArchiveUnsafe(name, "goes through a symlink");
          }
          if (!S_ISDIR(st.st_mode)) {
            return ArchiveInvalid("archive entry " + Quoted(name) + " goes through a file");
          }
        }
        if (err == ENOENT) {
          return ArchiveUnsafe(name, "refers to a file that is not in the archive");
        }
        return EntryError("open", name, err);
      }
      dir = Fd(fd);
    }
    return dir;
  }

  // Frees `leaf` in `dir` for a new entry: a later entry replaces an earlier file or link (as
  // tar does), never a directory.
  Status Replace(int dir, const std::string& leaf, std::string_view name) {
    if (::unlinkat(dir, leaf.c_str(), 0) != 0 && errno != ENOENT) {
      if (errno == EISDIR) {
        return ArchiveInvalid("archive entry " + Quoted(name) + " replaces a directory");
      }
      return EntryError("unlink", name, errno);
    }
    return Status::Ok();
  }

  Status Directory(std::string_view name, const std::vector<std::string>& parts, mode_t perm) {
    KILN_ASSIGN_OR_RETURN(Fd dir, OpenDir(name, parts, parts.size(), true));
    // The owner keeps rwx so that later entries can be written and the tree removed.
    if (::fchmod(dir.get(), (perm & 0777) | 0700) != 0) {
      return EntryError("chmod", name, errno);
    }
    return Status::Ok();
  }

  Status File(archive* a, archive_entry* entry, std::string_view name,
              const std::vector<std::string>& parts) {
    int64_t size = archive_entry_size_is_set(entry) ? archive_entry_size(entry) : 0;
    // The declared size stops a bomb before a byte of it is unpacked; the count of bytes
    // written below stops one whose header lies.
    declared_bytes_ += std::max<int64_t>(size, 0);
    if (declared_bytes_ > limits_.max_bytes) {
      return ArchiveTooLarge(limits_.max_bytes);
    }
    KILN_ASSIGN_OR_RETURN(Fd dir, OpenDir(name, parts, parts.size() - 1, true));
    const std::string& leaf = parts.back();
    constexpr int kFlags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC;
    Fd file(::openat(dir.get(), leaf.c_str(), kFlags, 0600));
    if (file.get() < 0 && errno == EEXIST) {
      KILN_RETURN_IF_ERROR(Replace(dir.get(), leaf, name));
      file = Fd(::openat(dir.get(), leaf.c_str(), kFlags, 0600));
    }
    if (file.get() < 0) {
      return EntryError("open", name, errno);
    }
    int64_t end = 0;
    while (true) {
      const void* buf = nullptr;
      size_t len = 0;
      la_int64_t offset = 0;
      int r = archive_read_data_block(a, &buf, &len, &offset);
      if (r == ARCHIVE_EOF) {
        break;
      }
      if (r < ARCHIVE_WARN) {
        return ArchiveInvalid(std::string("the archive is damaged: ") + ErrorString(a));
      }
      written_bytes_ += static_cast<int64_t>(len);
      if (written_bytes_ > limits_.max_bytes) {
        return ArchiveTooLarge(limits_.max_bytes);
      }
      const char* p = static_cast<const char*>(buf);
      while (len > 0) {
        ssize_t n = ::pwrite(file.get(), p, len, offset);
        if (n < 0) {
          if (errno == EINTR) {
            continue;
          }
          return EntryError("write", name, errno);
        }
        p += n;
        len -= static_cast<size_t>(n);
        offset += n;
      }
      end = std::max<int64_t>(end, offset);
    }
    // A sparse file may end in a hole.
    if (size > end && ::ftruncate(file.get(), size) != 0) {
      return EntryError("ftruncate", name, errno);
    }
    if (::fchmod(file.get(), archive_entry_perm(entry) & 0777) != 0) {
      return EntryError("chmod", name, errno);
    }
    has_files_ = true;
    return Status::Ok();
  }

  Status Symlink(std::string_view name, const std::vector<std::string>& parts, const char* target) {
    if (target == nullptr || !LinkStaysInside(parts.size() - 1, target)) {
      return ArchiveUnsafe(name, "is a link leading out of the archive");
    }
    links_.emplace_back(parts.size() - 1, std::string(name), std::string(target));
    KILN_ASSIGN_OR_RETURN(Fd dir, OpenDir(name, parts, parts.size() - 1, true));
    const std::string& leaf = parts.back();
    int r = ::symlinkat(target, dir.get(), leaf.c_str());
    if (r != 0 && errno == EEXIST) {
      KILN_RETURN_IF_ERROR(Replace(dir.get(), leaf, name));
      r = ::symlinkat(target, dir.get(), leaf.c_str());
    }
    if (r != 0) {
      return EntryError("symlink", name, errno);
    }
    has_files_ = true;
    return Status::Ok();
  }

  Status Hardlink(std::string_view name, const std::vector<std::string>& parts,
                  std::string_view target) {
    std::vector<std::string> target_parts;
    if (target.empty() || !SplitRelative(target, &target_parts) || target_parts.empty()) {
      return ArchiveUnsafe(name, "is a hard link leading out of the archive");
    }
    KILN_ASSIGN_OR_RETURN(Fd from, OpenDir(name, target_parts, target_parts.size() - 1, false));
    struct stat st {};
    if (::fstatat(from.get(), target_parts.back().c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) {
      return ArchiveUnsafe(name, "is a hard link to a file that is not in the archive");
    }
    if (!S_ISREG(st.st_mode)) {
      return ArchiveUnsafe(name, "is a hard link to something other than a file");
    }
    KILN_ASSIGN_OR_RETURN(Fd dir, OpenDir(name, parts, parts.size() - 1, true));
    const std::string& leaf = parts.back();
    // Without AT_SYMLINK_FOLLOW, linkat never follows the target.
    int r = ::linkat(from.get(), target_parts.back().c_str(), dir.get(), leaf.c_str(), 0);
    if (r != 0 && errno == EEXIST) {
      KILN_RETURN_IF_ERROR(Replace(dir.get(), leaf, name));
      r = ::linkat(from.get(), target_parts.back().c_str(), dir.get(), leaf.c_str(), 0);
    }
    if (r != 0) {
      return EntryError("link", name, errno);
    }
    has_files_ = true;
    return Status::Ok();
  }

  int root_;
  ExtractLimits limits_;
  int64_t entries_ = 0;
  int64_t declared_bytes_ = 0;
  int64_t written_bytes_ = 0;
  bool has_files_ = false;
  std::string top_;
  bool single_top_ = true;
  bool saw_root_ = false;
  std::vector<std::tuple<size_t, std::string, std::string>> links_;  // depth, name, target
};

// Makes the single top-level directory `top` of `dest` the new `dest`.
Status Hoist(const std::string& dest, const std::string& top) {
  std::string moved = dest + ".kiln-top";
  if (::rename((fs::path(dest) / top).c_str(), moved.c_str()) != 0) {
    return Status::FromErrno("rename(\"" + moved + "\")", errno);
  }
  if (::rmdir(dest.c_str()) != 0 || ::rename(moved.c_str(), dest.c_str()) != 0) {
    Status s = Status::FromErrno("rename(\"" + dest + "\")", errno);
    std::error_code ec;
    fs::remove_all(moved, ec);
    return s;
  }
  return Status::Ok();
}

Status ExtractInto(const std::string& archive_path, const std::string& dest,
                   const ExtractLimits& limits) {
  Fd root(::open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (root.get() < 0) {
    return Status::FromErrno("open(\"" + dest + "\")", errno);
  }
  std::unique_ptr<archive, decltype(&archive_read_free)> a(archive_read_new(), &archive_read_free);
  if (!a) {
    return Status::Internal("archive_read_new: out of memory");
  }
  // gzip is read by zlib in process; no other filter, which could run an external program.
  archive_read_support_filter_gzip(a.get());
  archive_read_support_format_tar(a.get());
  if (archive_read_open_filename(a.get(), archive_path.c_str(), 64 * 1024) != ARCHIVE_OK) {
    const char* e = archive_error_string(a.get());
    std::string why = e != nullptr ? e : "unreadable";
    if (why.find("Failed to open") != std::string::npos) {
      return Status::Internal("open(\"" + archive_path + "\"): " + why);
    }
    return ArchiveInvalid("the upload is not a tar or tar.gz archive (" + why + ")");
  }
  Extractor extractor(root.get(), limits);
  KILN_RETURN_IF_ERROR(extractor.Run(a.get()));
  if (!extractor.has_files()) {
    return Status::InvalidArgument("SOURCE_EMPTY", "the archive holds no files", kArchiveHint);
  }
  std::string top = extractor.SingleTop();
  if (top.empty()) {
    return Status::Ok();
  }
  struct stat st {};
  if (::fstatat(root.get(), top.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode)) {
    return Status::Ok();
  }
  KILN_RETURN_IF_ERROR(extractor.CheckLinksBelowTop());
  root.Reset();
  return Hoist(dest, top);
}

// ---------------------------------------------------------------------------------------------
// FetchUrl

void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Download {
  int fd = -1;
  int64_t written = 0;
  int64_t max_bytes = 0;
  bool too_large = false;
  int write_errno = 0;
};

size_t WriteBody(char* data, size_t size, size_t count, void* user) {
  auto* d = static_cast<Download*>(user);
  size_t len = size * count;
  if (d->written + static_cast<int64_t>(len) > d->max_bytes) {
    d->too_large = true;
    return 0;  // aborts the transfer
  }
  size_t done = 0;
  while (done < len) {
    ssize_t n = ::write(d->fd, data + done, len - done);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      d->write_errno = errno;
      return 0;
    }
    done += static_cast<size_t>(n);
  }
  d->written += static_cast<int64_t>(len);
  return len;
}

// scheme://host[:port]/path of a URL, without credentials or query (which may hold tokens),
// for logs and messages.
std::string ShownUrl(CURLU* u) {
  std::string out;
  char* part = nullptr;
  if (curl_url_get(u, CURLUPART_SCHEME, &part, 0) == CURLUE_OK) {
    out = std::string(part) + "://";
    curl_free(part);
  }
  if (curl_url_get(u, CURLUPART_HOST, &part, 0) == CURLUE_OK) {
    out += part;
    curl_free(part);
  }
  if (curl_url_get(u, CURLUPART_PORT, &part, 0) == CURLUE_OK) {
    out += std::string(":") + part;
    curl_free(part);
  }
  if (curl_url_get(u, CURLUPART_PATH, &part, 0) == CURLUE_OK) {
    out += part;
    curl_free(part);
  }
  return ValidUtf8(out);
}

Status UrlInvalid(std::string message) {
  return Status::InvalidArgument("SOURCE_URL_INVALID", std::move(message),
                                 "give an http:// or https:// URL of a .tar.gz");
}

Status FetchFailed(std::string message, std::string hint = {}) {
  return Status::Unprocessable("SOURCE_FETCH_FAILED", std::move(message), std::move(hint));
}

Status Fetch(const std::string& url, const std::string& dest_file, int64_t max_bytes,
             int64_t timeout_ms, const SourceLog& log) {
  std::unique_ptr<CURLU, decltype(&curl_url_cleanup)> u(curl_url(), &curl_url_cleanup);
  if (!u || curl_url_set(u.get(), CURLUPART_URL, url.c_str(), 0) != CURLUE_OK) {
    return UrlInvalid("\"" + ValidUtf8(url) + "\" is not a URL");
  }
  char* scheme_raw = nullptr;
  curl_url_get(u.get(), CURLUPART_SCHEME, &scheme_raw, 0);
  std::string scheme = scheme_raw != nullptr ? Lower(scheme_raw) : "";
  curl_free(scheme_raw);
  if (scheme != "http" && scheme != "https") {
    return UrlInvalid("a source URL must be http or https, not \"" + ValidUtf8(scheme) + "\"");
  }
  std::string shown = ShownUrl(u.get());

  InitCurlOnce();
  std::unique_ptr<CURL, decltype(&curl_easy_cleanup)> curl(curl_easy_init(), &curl_easy_cleanup);
  if (!curl) {
    return Status::Internal("curl_easy_init failed");
  }
  Fd file(::open(dest_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600));
  if (file.get() < 0) {
    return Status::FromErrno("open(\"" + dest_file + "\")", errno);
  }
  Download d;
  d.fd = file.get();
  d.max_bytes = max_bytes;
  char error[CURL_ERROR_SIZE] = {};
  CURL* c = curl.get();
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(std::max<int64_t>(timeout_ms, 1)));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);  // no SIGALRM in a multithreaded server
  curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
  curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(max_bytes));
  curl_easy_setopt(c, CURLOPT_USERAGENT, "kiln");
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, &WriteBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &d);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);

  log("fetching " + shown);
  CURLcode rc = curl_easy_perform(c);
  long http_status = 0;
  curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &http_status);
  std::string detail = error[0] != '\0' ? error : curl_easy_strerror(rc);
  switch (rc) {
    case CURLE_OK:
      break;
    case CURLE_WRITE_ERROR:
    case CURLE_FILESIZE_EXCEEDED:
      if (d.write_errno != 0) {
        return Status::FromErrno("write(\"" + dest_file + "\")", d.write_errno);
      }
      return Status(Code::kPayloadTooLarge, "ARCHIVE_TOO_LARGE",
                    shown + " is larger than " + HumanBytes(max_bytes), kTooBigHint);
    case CURLE_HTTP_RETURNED_ERROR:
      return FetchFailed("GET " + shown + ": HTTP " + std::to_string(http_status),
                         "check that the URL can be downloaded without credentials");
    case CURLE_OPERATION_TIMEDOUT:
      return FetchFailed("GET " + shown + ": timed out after " + std::to_string(timeout_ms) + " ms",
                         "check that the server is reachable from this machine");
    case CURLE_TOO_MANY_REDIRECTS:
      return FetchFailed("GET " + shown + ": more than 5 redirects");
    case CURLE_UNSUPPORTED_PROTOCOL:
      return UrlInvalid("GET " + shown + " redirected to a URL that is not http or https");
    default:
      return FetchFailed("GET " + shown + ": " + ValidUtf8(detail),
                         "check the URL and that the server is reachable from this machine");
  }
  log("fetched " + std::to_string(d.written) + " bytes (HTTP " + std::to_string(http_status) + ")");
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// GitCheckout

bool IsHex(std::string_view s, size_t min_len, size_t max_len) {
  return s.size() >= min_len && s.size() <= max_len &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isxdigit(c); });
}

// A URL with its credentials ("https://user:token@host/...") taken out, for logs.
std::string RedactUrl(const std::string& repo) {
  size_t scheme = repo.find("://");
  if (scheme == std::string::npos) {
    return repo;
  }
  size_t host = scheme + 3;
  size_t at = repo.find('@', host);
  size_t slash = repo.find('/', host);
  if (at == std::string::npos || (slash != std::string::npos && at > slash)) {
    return repo;
  }
  return repo.substr(0, host) + repo.substr(at + 1);
}

class GitRunner {
 public:
  GitRunner(std::string home, int64_t timeout_ms)
      : home_(std::move(home)),
        timeout_ms_(timeout_ms),
        deadline_(std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms)) {
    const char* path = std::getenv("PATH");
    env_ = {"PATH=" + std::string(path != nullptr ? path : "/usr/local/bin:/usr/bin:/bin"),
            "HOME=" + home_,
            "GIT_TERMINAL_PROMPT=0",
            "GIT_CONFIG_NOSYSTEM=1",
            "GIT_CONFIG_GLOBAL=/dev/null",
            "GIT_ASKPASS=/bin/false",
            "SSH_ASKPASS=/bin/false",
            "GIT_SSH_COMMAND=ssh -o BatchMode=yes -o StrictHostKeyChecking=accept-new",
            "LC_ALL=C"};  // messages in English, which GitError reads
    for (const char* name : {"http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY",
                             "NO_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR"}) {
      if (const char* v = std::getenv(name)) {
        env_.push_back(std::string(name) + "=" + v);
      }
    }
  }

  Result<ProcessResult> Run(const std::vector<std::string>& args) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline_ - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      ProcessResult r;
      r.timed_out = true;
      r.exit_code = -1;
      return r;
    }
    // Only the transports a deployment may name; ext:: and other remote helpers run
    // arbitrary commands.
    std::vector<std::string> argv = {"git",
                                     "-c",
                                     "protocol.allow=never",
                                     "-c",
                                     "protocol.http.allow=always",
                                     "-c",
                                     "protocol.https.allow=always",
                                     "-c",
                                     "protocol.ssh.allow=always",
                                     "-c",
                                     "protocol.git.allow=always",
                                     "-c",
                                     "protocol.file.allow=always",
                                     "-c",
                                     "advice.detachedHead=false"};
    argv.insert(argv.end(), args.begin(), args.end());
    ProcessOptions options;
    options.env = env_;
    options.max_output = 64 * 1024;
    return RunProcess(argv, left, options, "git");
  }

  int64_t timeout_ms() const { return timeout_ms_; }

 private:
  std::string home_;
  int64_t timeout_ms_;
  std::chrono::steady_clock::time_point deadline_;
  std::vector<std::string> env_;
};

Status RefNotFound(const std::string& ref, const std::string& shown) {
  return Status::NotFound("GIT_REF_NOT_FOUND",
                          "no branch, tag or commit " + Quoted(ref) + " in " + shown,
                          "check the ref; leave it empty for the default branch");
}

// What git said, as one of GIT_REPO_NOT_FOUND, GIT_REF_NOT_FOUND or GIT_FAILED.
Status GitError(const ProcessResult& r, const std::string& repo, const std::string& shown,
                const std::string& ref, int64_t timeout_ms) {
  if (r.timed_out) {
    return Status::Unprocessable(
        "GIT_FAILED", "git timed out after " + std::to_string(timeout_ms) + " ms on " + shown,
        "check that the repository is reachable; for a very large repository deploy a tarball");
  }
  std::string output = r.output;
  if (shown != repo) {
    for (size_t at; (at = output.find(repo)) != std::string::npos;) {
      output.replace(at, repo.size(), shown);
    }
  }
  std::string lower = Lower(output);
  auto has = [&lower](std::string_view s) { return lower.find(s) != std::string::npos; };
  if ((has("remote branch") && has("not found")) || has("couldn't find remote ref") ||
      has("unknown revision") || has("did not match any") || has("reference is not a tree") ||
      has("not our ref") || has("invalid reference")) {
    return RefNotFound(ref, shown);
  }
  if (has("repository not found") || has("does not exist") || has("not a git repository") ||
      has("does not appear to be a git repository") ||
      (has("repository '") && has("' not found"))) {
    return Status::NotFound("GIT_REPO_NOT_FOUND", "git repository " + shown + " not found",
                            "check the URL; a private repository needs credentials in it "
                            "(https://TOKEN@host/owner/repo.git)");
  }
  // The first "fatal:" or "error:" line says the most; else the last line.
  std::string said = r.LastLine();
  std::istringstream lines(output);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("fatal:", 0) == 0 || line.rfind("error:", 0) == 0) {
      said = line;
      break;
    }
  }
  return Status::Unprocessable("GIT_FAILED", "git failed on " + shown + ": " + ValidUtf8(said),
                               "check that the repository can be cloned from this machine");
}

bool Succeeded(const Result<ProcessResult>& r) {
  return r.ok() && !r->timed_out && r->exit_code == 0;
}

Status Checkout(GitRunner& git, const std::string& repo, const std::string& shown,
                const std::string& ref, const std::string& dest, std::string* commit,
                const SourceLog& log) {
  auto fail = [&](const Result<ProcessResult>& r) {
    return r.ok() ? GitError(*r, repo, shown, ref, git.timeout_ms()) : r.status();
  };
  auto clean = [&dest] {
    std::error_code ec;
    fs::remove_all(dest, ec);
  };
  bool done = false;
  if (!IsHex(ref, 40, 64)) {
    // Branches and tags: only the last commit is fetched.
    std::vector<std::string> args = {"clone", "--quiet", "--depth", "1", "--no-tags"};
    if (!ref.empty()) {
      args.push_back("--branch=" + ref);
    }
    args.insert(args.end(), {"--", repo, dest});
    auto r = git.Run(args);
    if (!Succeeded(r)) {
      Status s = fail(r);
      if (s.error_code() != "GIT_REF_NOT_FOUND" || !IsHex(ref, 4, 64)) {
        return s;
      }
      clean();
    } else {
      done = true;
    }
  } else {
    // A full commit id: servers let a shallow fetch name it (GitHub, git >= 2.5 over v2).
    auto r = git.Run({"init", "--quiet", "--", dest});
    if (!Succeeded(r)) {
      return fail(r);
    }
    r = git.Run({"-C", dest, "fetch", "--quiet", "--depth", "1", "--", repo, ref});
    if (Succeeded(r)) {
      r = git.Run({"-C", dest, "checkout", "--quiet", "--detach", "FETCH_HEAD"});
      if (!Succeeded(r)) {
        return fail(r);
      }
      done = true;
    } else {
      Status s = fail(r);
      if (s.error_code() == "GIT_REPO_NOT_FOUND") {
        return s;
      }
      clean();
    }
  }
  if (!done) {
    // An abbreviated commit id, or a server that refused the shallow fetch: everything.
    log("\"" + ref + "\" is not a branch or tag: cloning the whole history to find the commit");
    auto r = git.Run({"clone", "--quiet", "--no-checkout", "--", repo, dest});
    if (!Succeeded(r)) {
      return fail(r);
    }
    r = git.Run({"-C", dest, "rev-parse", "--verify", "--quiet", ref + "^{commit}"});
    if (r.ok() && !r->timed_out && r->exit_code == 1) {
      return RefNotFound(ref, shown);
    }
    if (!Succeeded(r)) {
      return fail(r);
    }
    r = git.Run({"-C", dest, "checkout", "--quiet", "--detach", Trim(r->output)});
    if (!Succeeded(r)) {
      return fail(r);
    }
  }
  auto head = git.Run({"-C", dest, "rev-parse", "HEAD"});
  if (!Succeeded(head)) {
    return fail(head);
  }
  *commit = Trim(head->output);
  std::error_code ec;
  fs::remove_all(fs::path(dest) / ".git", ec);
  if (ec) {
    return Status::Internal("remove " + dest + "/.git: " + ec.message());
  }
  log("checked out " + *commit);
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// Starters

bool ValidStarterName(std::string_view name) {
  return !name.empty() && name.size() <= 64 && std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
  });
}

// Copies regular files, directories and symlinks that stay inside; nothing else.
Status CopyTree(const fs::path& from, const fs::path& to, size_t depth) {
  std::error_code ec;
  fs::create_directory(to, ec);
  if (ec) {
    return Status::Internal("mkdir " + to.string() + ": " + ec.message());
  }
  fs::permissions(to, fs::status(from, ec).permissions() | fs::perms::owner_all, ec);
  for (fs::directory_iterator it(from, ec), end; !ec && it != end; it.increment(ec)) {
    fs::file_status st = it->symlink_status(ec);
    fs::path target = to / it->path().filename();
    if (fs::is_directory(st)) {
      KILN_RETURN_IF_ERROR(CopyTree(it->path(), target, depth + 1));
    } else if (fs::is_regular_file(st)) {
      fs::copy_file(it->path(), target, ec);
      if (ec) {
        return Status::Internal("copy " + it->path().string() + ": " + ec.message());
      }
    } else if (fs::is_symlink(st)) {
      fs::path link = fs::read_symlink(it->path(), ec);
      if (!ec && LinkStaysInside(depth, link.string())) {
        fs::create_symlink(link, target, ec);
      }
      ec.clear();
    }
  }
  if (ec) {
    return Status::Internal("read " + from.string() + ": " + ec.message());
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// DetectPlan

std::optional<std::string> ReadSmallFile(const fs::path& p) {
  if (!IsRegularFile(p)) {
    return std::nullopt;
  }
  std::ifstream in(p, std::ios::binary);
  std::string text(1 << 20, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  return text;
}

// `word` as one shell word.
std::string ShellQuote(std::string_view word) {
  bool plain = !word.empty() && std::all_of(word.begin(), word.end(), [](unsigned char c) {
    return std::isalnum(c) || std::strchr("._/-+@%:,=", c) != nullptr;
  });
  if (plain) {
    return std::string(word);
  }
  std::string out = "'";
  for (char c : word) {
    out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  }
  return out + "'";
}

std::string ProcfileWeb(const fs::path& dir) {
  auto text = ReadSmallFile(dir / "Procfile");
  if (!text) {
    return {};
  }
  std::istringstream lines(*text);
  for (std::string line; std::getline(lines, line);) {
    size_t colon = line.find(':');
    if (colon != std::string::npos && Trim(line.substr(0, colon)) == "web") {
      return Trim(line.substr(colon + 1));
    }
  }
  return {};
}

bool NonEmptyObject(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it != o.end() && it->value().is_object() && !it->value().as_object().empty();
}

Status DetectNode(const fs::path& dir, BuildPlan* plan) {
  auto text = ReadSmallFile(dir / "package.json");
  auto parsed = ParseJson(text.value_or(""));
  if (!parsed.ok() || !parsed->is_object()) {
    return Status::InvalidArgument(
        "PACKAGE_JSON_INVALID",
        "package.json is not a JSON object" +
            (parsed.ok() ? std::string() : ": " + parsed.status().message()),
        "fix package.json (npm would refuse it too)");
  }
  const json::object& pkg = parsed->as_object();
  json::object scripts;
  if (auto it = pkg.find("scripts"); it != pkg.end() && it->value().is_object()) {
    scripts = it->value().as_object();
  }
  auto script = [&scripts](std::string_view name) {
    auto it = scripts.find(name);
    return it != scripts.end() && it->value().is_string() && !it->value().as_string().empty();
  };
  plan->runtime = "node";
  plan->origin["runtime"] = "package.json";
  bool lock =
      IsRegularFile(dir / "package-lock.json") || IsRegularFile(dir / "npm-shrinkwrap.json");
  bool deps = NonEmptyObject(pkg, "dependencies");
  if (script("build")) {
    // A build usually needs the devDependencies (bundlers, compilers).
    plan->build = "npm run build";
    plan->origin["build"] = "package.json scripts.build";
    if (deps || NonEmptyObject(pkg, "devDependencies")) {
      plan->install = lock ? "npm ci" : "npm install";
    }
  } else if (deps) {
    plan->install = lock ? "npm ci --omit=dev" : "npm install --omit=dev";
  }
  if (!plan->install.empty()) {
    plan->origin["install"] = lock ? "package-lock.json" : "package.json dependencies";
  }
  if (script("start")) {
    plan->start = "npm start";
    plan->origin["start"] = "package.json scripts.start";
    return Status::Ok();
  }
  std::string main = GetString(pkg, "main");
  if (!main.empty()) {
    plan->start = "node " + ShellQuote(main);
    plan->origin["start"] = "package.json main";
    return Status::Ok();
  }
  for (const char* file : {"server.js", "index.js", "app.js"}) {
    if (IsRegularFile(dir / file)) {
      plan->start = std::string("node ") + file;
      plan->origin["start"] = file;
      break;
    }
  }
  return Status::Ok();
}

void DetectPython(const fs::path& dir, BuildPlan* plan, const std::string& manifest) {
  plan->runtime = "python";
  plan->origin["runtime"] = manifest;
  if (manifest == "requirements.txt") {
    plan->install = "pip install --target .kiln/python -r requirements.txt";
    plan->origin["install"] = manifest;
  } else if (manifest == "pyproject.toml") {
    plan->install = "pip install --target .kiln/python .";
    plan->origin["install"] = manifest;
  }
  for (const char* file : {"app.py", "main.py", "server.py"}) {
    if (IsRegularFile(dir / file)) {
      plan->start = std::string("python3 ") + file;
      plan->origin["start"] = file;
      break;
    }
  }
}

// The language of the code, without the Procfile; runtime stays empty when none is found.
Status DetectLanguage(const fs::path& dir, BuildPlan* plan) {
  if (IsRegularFile(dir / "package.json")) {
    return DetectNode(dir, plan);
  }
  if (IsRegularFile(dir / "requirements.txt")) {
    DetectPython(dir, plan, "requirements.txt");
  } else if (IsRegularFile(dir / "pyproject.toml")) {
    DetectPython(dir, plan, "pyproject.toml");
  } else if (IsRegularFile(dir / "go.mod")) {
    plan->runtime = "go";
    plan->origin["runtime"] = "go.mod";
    plan->build = "go build -o .kiln/app .";
    plan->origin["build"] = "go.mod";
    plan->start = ".kiln/app";
    plan->origin["start"] = "go.mod";
  } else if (!IsRegularFile(dir / "index.html") &&
             (IsRegularFile(dir / "app.py") || IsRegularFile(dir / "main.py"))) {
    DetectPython(dir, plan, IsRegularFile(dir / "app.py") ? "app.py" : "main.py");
  } else if (IsRegularFile(dir / "index.html")) {
    plan->runtime = "static";
    plan->origin["runtime"] = "index.html";
    plan->start = "python3 -m http.server $PORT --bind 127.0.0.1";
    plan->origin["start"] = "index.html";
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------------------------
// ParseMultipart

// "value; a=b; c=\"d\"": the value lowercased, parameter names lowercased (the first of each
// kept). False on an unterminated quoted string.
bool ParseHeaderValue(std::string_view text, std::string* value,
                      std::map<std::string, std::string>* params) {
  size_t semi = std::min(text.find(';'), text.size());
  *value = Lower(Trim(text.substr(0, semi)));
  size_t i = semi;
  while (i < text.size()) {
    ++i;  // past ';'
    size_t stop = text.find_first_of("=;", i);
    if (stop == std::string_view::npos) {
      stop = text.size();
    }
    std::string name = Lower(Trim(text.substr(i, stop - i)));
    std::string v;
    i = stop;
    if (i < text.size() && text[i] == '=') {
      ++i;
      while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) {
        ++i;
      }
      if (i < text.size() && text[i] == '"') {
        ++i;
        bool closed = false;
        while (i < text.size()) {
          char c = text[i++];
          if (c == '\\' && i < text.size()) {
            v += text[i++];
          } else if (c == '"') {
            closed = true;
            break;
          } else {
            v += c;
          }
        }
        if (!closed) {
          return false;
        }
        i = std::min(text.find(';', i), text.size());
      } else {
        size_t end = std::min(text.find(';', i), text.size());
        v = Trim(text.substr(i, end - i));
        i = end;
      }
    }
    if (!name.empty()) {
      params->emplace(std::move(name), std::move(v));
    }
  }
  return true;
}

// RFC 5987 ext-value ("UTF-8''na%C3%AFve.txt"); empty when it is not one.
std::string DecodeExtValue(std::string_view v) {
  size_t q = v.find("''");
  if (q == std::string_view::npos || Lower(v.substr(0, q)) != "utf-8") {
    return {};
  }
  std::string out;
  for (size_t i = q + 2; i < v.size(); ++i) {
    if (v[i] == '%' && i + 2 < v.size() && IsHex(v.substr(i + 1, 2), 2, 2)) {
      out += static_cast<char>(std::stoi(std::string(v.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += v[i];
    }
  }
  return out;
}

Status MultipartInvalid(std::string message) {
  return Status::InvalidArgument("MULTIPART_INVALID", std::move(message),
                                 "send multipart/form-data as RFC 7578 describes (curl -F does)");
}

}  // namespace

Status ExtractArchive(const std::string& archive_path, const std::string& dest,
                      const ExtractLimits& limits) {
  std::error_code ec;
  if (fs::exists(fs::symlink_status(dest, ec))) {
    return Status::Internal("extract: " + dest + " already exists");
  }
  if (::mkdir(dest.c_str(), 0700) != 0 || ::chmod(dest.c_str(), 0755) != 0) {
    return Status::FromErrno("mkdir(\"" + dest + "\")", errno);
  }
  Status s = ExtractInto(archive_path, dest, limits);
  if (!s.ok()) {
    fs::remove_all(dest, ec);
  }
  return s;
}

Status FetchUrl(const std::string& url, const std::string& dest_file, int64_t max_bytes,
                int64_t timeout_ms, const SourceLog& log) {
  Status s = Fetch(url, dest_file, max_bytes, timeout_ms, OrNoLog(log));
  if (!s.ok()) {
    ::unlink(dest_file.c_str());
  }
  return s;
}

Status GitCheckout(const std::string& repo, const std::string& ref, const std::string& dest,
                   int64_t timeout_ms, std::string* commit, const SourceLog& log) {
  if (repo.empty() || repo.front() == '-' || repo.find("::") != std::string::npos) {
    return Status::InvalidArgument("SOURCE_URL_INVALID",
                                   "\"" + ValidUtf8(repo) + "\" is not a git repository URL",
                                   "give an https://, ssh://, git@host:path URL or a path");
  }
  if ((!ref.empty() && ref.front() == '-') ||
      std::any_of(ref.begin(), ref.end(), [](unsigned char c) {
        return c <= ' ' || c == 0x7f || c == '~' || c == '^' || c == ':' || c == '\\';
      })) {
    return Status::NotFound("GIT_REF_NOT_FOUND",
                            Quoted(ref) + " is not a branch, tag or commit name",
                            "leave the ref empty for the default branch");
  }
  std::string shown = RedactUrl(repo);
  std::string source = repo;
  // A path (no scheme, no scp-like host:): it must exist; made absolute since some steps
  // run in `dest`.
  bool local = repo.find("://") == std::string::npos &&
               (repo.front() == '/' || repo.front() == '.' || repo.find(':') == std::string::npos);
  if (local) {
    std::error_code ec;
    if (!fs::is_directory(repo, ec)) {
      return Status::NotFound("GIT_REPO_NOT_FOUND", "no git repository at " + Quoted(repo),
                              "give the path of a git repository or a URL");
    }
    source = fs::absolute(repo, ec).string();
  }
  std::error_code ec;
  if (fs::exists(fs::symlink_status(dest, ec))) {
    return Status::Internal("git checkout: " + dest + " already exists");
  }
  char home_template[] = "/tmp/kiln-git-XXXXXX";
  if (::mkdtemp(home_template) == nullptr) {
    return Status::FromErrno("mkdtemp(\"/tmp/kiln-git-XXXXXX\")", errno);
  }
  std::string home = home_template;
  OrNoLog(log)("cloning " + shown + (ref.empty() ? "" : " at " + ref));
  GitRunner git(home, timeout_ms);
  Status s = Checkout(git, source, local ? repo : shown, ref, dest, commit, OrNoLog(log));
  fs::remove_all(home, ec);
  if (!s.ok()) {
    fs::remove_all(dest, ec);
  }
  return s;
}

Status CopyStarter(const std::string& examples_dir, const std::string& name,
                   const std::string& dest) {
  fs::path from = fs::path(examples_dir) / name;
  std::error_code ec;
  if (!ValidStarterName(name) || !fs::is_directory(fs::symlink_status(from, ec))) {
    std::string names;
    for (const std::string& n : ListStarters(examples_dir)) {
      names += (names.empty() ? "" : ", ") + n;
    }
    return Status::NotFound("TEMPLATE_NOT_FOUND", "no starter " + Quoted(name),
                            names.empty() ? "this server has no starters" : "starters: " + names);
  }
  if (fs::exists(fs::symlink_status(dest, ec))) {
    return Status::Internal("copy starter: " + dest + " already exists");
  }
  Status s = CopyTree(from, dest, 0);
  if (!s.ok()) {
    fs::remove_all(dest, ec);
  }
  return s;
}

std::vector<std::string> ListStarters(const std::string& examples_dir) {
  std::vector<std::string> names;
  std::error_code ec;
  for (fs::directory_iterator it(examples_dir, ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (ValidStarterName(name) && fs::is_directory(it->symlink_status(ec))) {
      names.push_back(name);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

Result<BuildPlan> DetectPlan(const std::string& dir, const PlanOverrides& overrides) {
  std::error_code ec;
  if (fs::is_empty(dir, ec) || ec) {
    return Status::InvalidArgument("SOURCE_EMPTY", "the source holds no files",
                                   "deploy a folder with your app's code in it");
  }
  BuildPlan plan;
  KILN_RETURN_IF_ERROR(DetectLanguage(dir, &plan));
  if (std::string web = ProcfileWeb(dir); !web.empty()) {
    // The language's install and build still run; the Procfile says how to start.
    plan.runtime = "procfile";
    plan.start = web;
    plan.origin["start"] = "Procfile web";
  }
  auto apply = [&plan](const std::optional<std::string>& value, std::string* field,
                       const char* key) {
    if (value) {
      *field = *value;
      plan.origin[key] = "override";
    }
  };
  apply(overrides.install, &plan.install, "install");
  apply(overrides.build, &plan.build, "build");
  apply(overrides.pre_start, &plan.pre_start, "preStart");
  if (overrides.start && !overrides.start->empty()) {
    apply(overrides.start, &plan.start, "start");
  }
  if (overrides.port) {
    plan.port = *overrides.port;
    plan.origin["port"] = "override";
  }
  // An empty override means "none": no origin to show for it.
  for (auto [key, value] : {std::pair{"install", &plan.install}, std::pair{"build", &plan.build},
                            std::pair{"preStart", &plan.pre_start}}) {
    if (value->empty()) {
      plan.origin.erase(key);
    }
  }
  if (plan.start.empty()) {
    if (plan.runtime.empty()) {
      return Status::InvalidArgument(
          "START_UNKNOWN", "cannot tell how to start this app",
          "looked for a Procfile with a web: line, package.json, requirements.txt, "
          "pyproject.toml, go.mod, app.py, main.py and index.html; add one, or set the start "
          "command (\"start\": \"./run.sh\")");
    }
    return Status::InvalidArgument(
        "START_UNKNOWN",
        "found " + plan.origin["runtime"] + " (" + plan.runtime + ") but no start command",
        plan.runtime == "node"
            ? "add scripts.start to package.json, or a server.js, or set the start command"
            : "add app.py or main.py, or set the start command (\"start\": \"python3 x.py\")");
  }
  if (plan.runtime.empty()) {
    plan.runtime = "custom";
  }
  return plan;
}

std::vector<std::string> RuntimeEnv(const BuildPlan& plan) {
  std::vector<std::string> env;
  auto from = [&plan](const char* key, std::string_view prefix) {
    auto it = plan.origin.find(key);
    return it != plan.origin.end() && it->second.rfind(prefix, 0) == 0;
  };
  if (plan.runtime == "python" || plan.install.find(".kiln/python") != std::string::npos) {
    env.push_back("PYTHONPATH=/app/.kiln/python");
    env.push_back("PYTHONUNBUFFERED=1");  // log lines as they are printed
  }
  if (plan.runtime == "node" || from("runtime", "package.json")) {
    env.push_back("NODE_ENV=production");
  }
  return env;
}

Result<std::vector<FormPart>> ParseMultipart(std::string_view content_type, std::string_view body) {
  constexpr size_t kMaxParts = 1000;
  constexpr size_t kMaxHeaderBytes = 16 * 1024;
  std::string type;
  std::map<std::string, std::string> params;
  if (!ParseHeaderValue(content_type, &type, &params) || type != "multipart/form-data") {
    return MultipartInvalid("Content-Type is \"" + ValidUtf8(content_type.substr(0, 100)) +
                            "\", not multipart/form-data");
  }
  const std::string& boundary = params["boundary"];
  if (boundary.empty() || boundary.size() > 70) {
    return MultipartInvalid("the Content-Type has no boundary parameter (1 to 70 characters)");
  }
  std::string delimiter = "--" + boundary;
  std::string next = "\r\n" + delimiter;
  size_t pos = 0;
  if (body.substr(0, delimiter.size()) != delimiter) {
    pos = body.find(next);  // after a preamble
    if (pos == std::string_view::npos) {
      return MultipartInvalid("the body has no boundary line \"" + ValidUtf8(delimiter) + "\"");
    }
    pos += 2;
  }
  std::vector<FormPart> parts;
  while (true) {
    pos += delimiter.size();
    if (body.substr(pos, 2) == "--") {
      return parts;  // the close delimiter; an epilogue after it is ignored
    }
    while (pos < body.size() && (body[pos] == ' ' || body[pos] == '\t')) {
      ++pos;
    }
    if (pos >= body.size()) {
      return MultipartInvalid("the body ends without the final boundary \"" + ValidUtf8(delimiter) +
                              "--\"");
    }
    if (body.substr(pos, 2) != "\r\n") {
      return MultipartInvalid("a boundary line is not followed by CRLF");
    }
    pos += 2;
    std::string where = "part " + std::to_string(parts.size() + 1);
    size_t headers_end = body.substr(pos, 2) == "\r\n" ? pos : body.find("\r\n\r\n", pos);
    if (headers_end == std::string_view::npos) {
      return MultipartInvalid(where + ": its headers do not end with an empty line");
    }
    if (headers_end - pos > kMaxHeaderBytes) {
      return MultipartInvalid(where + ": its headers are longer than 16 KiB");
    }
    FormPart part;
    bool disposition = false;
    std::string_view headers = body.substr(pos, headers_end - pos);
    while (!headers.empty()) {
      size_t eol = std::min(headers.find("\r\n"), headers.size());
      std::string_view line = headers.substr(0, eol);
      headers.remove_prefix(std::min(eol + 2, headers.size()));
      size_t colon = line.find(':');
      if (colon == std::string_view::npos || colon == 0) {
        return MultipartInvalid(where + ": malformed header line \"" +
                                ValidUtf8(line.substr(0, 100)) + "\"");
      }
      std::string name = Lower(Trim(line.substr(0, colon)));
      std::string_view value = line.substr(colon + 1);
      if (name == "content-disposition") {
        std::string kind;
        std::map<std::string, std::string> p;
        if (!ParseHeaderValue(value, &kind, &p) || kind != "form-data") {
          return MultipartInvalid(where + ": Content-Disposition is not form-data");
        }
        disposition = true;
        part.name = p["name"];
        part.filename = p["filename"];
        if (part.filename.empty() && p.count("filename*") != 0) {
          part.filename = DecodeExtValue(p["filename*"]);
        }
      } else if (name == "content-type") {
        part.content_type = Trim(value);
      }
    }
    if (!disposition) {
      return MultipartInvalid(where + ": no Content-Disposition header");
    }
    if (part.name.empty()) {
      return MultipartInvalid(where + ": Content-Disposition has no name");
    }
    size_t data_start = headers_end + (headers_end == pos ? 2 : 4);
    size_t data_end = body.find(next, data_start);
    if (data_end == std::string_view::npos) {
      return MultipartInvalid(where + ": the body ends without the final boundary \"" +
                              ValidUtf8(delimiter) + "--\"");
    }
    part.data = body.substr(data_start, data_end - data_start);
    parts.push_back(std::move(part));
    if (parts.size() > kMaxParts) {
      return MultipartInvalid("more than 1000 parts");
    }
    pos = data_end + 2;
  }
}

int64_t DirectorySize(const std::string& dir) {
  int64_t total = 0;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  for (fs::recursive_directory_iterator end; !ec && it != end; it.increment(ec)) {
    std::error_code fec;
    if (fs::is_regular_file(it->symlink_status(fec))) {
      auto size = it->file_size(fec);
      if (!fec) {
        total += static_cast<int64_t>(size);
      }
    }
  }
  return total;
}

}  // namespace kiln::service
