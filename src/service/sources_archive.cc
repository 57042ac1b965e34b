// ExtractArchive (sources.h): unpacks an uploaded or downloaded tar.gz with libarchive.

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "service/sources.h"
#include "service/sources_internal.h"

namespace kiln::service {
namespace {

namespace fs = std::filesystem;

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

constexpr char kArchiveHint[] =
    "upload a .tar.gz of your app's folder, e.g. tar czf app.tgz -C DIR .";

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

}  // namespace kiln::service
