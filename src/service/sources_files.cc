// PrepareInlineFiles and WriteFilesArchive (sources.h): files sent inline in a deployment
// request become a plain tar archive that ExtractArchive unpacks like any upload, so inline
// files get the same safety checks as archives, and one more line of defence before them.

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/crypto.h"
#include "service/sources.h"
#include "service/sources_internal.h"

namespace kiln::service {
namespace {

constexpr char kPathHint[] =
    "give each file a relative path with / between names, such as \"server.js\" or "
    "\"public/index.html\": no leading /, no . or .. and no empty names";

std::string Which(size_t index, std::string_view path) {
  return "files[" + std::to_string(index) + "] " + Quoted(path);
}

Status PathInvalid(size_t index, std::string_view path, std::string_view why) {
  return Status::InvalidArgument("FILES_PATH_INVALID", Which(index, path) + " " + std::string(why),
                                 kPathHint);
}

// Why `path` is not a safe relative path, or "" when it is.
std::string PathProblem(std::string_view path) {
  if (path.empty()) {
    return "is empty";
  }
  if (path.size() > kMaxInlinePathBytes) {
    return "is longer than " + std::to_string(kMaxInlinePathBytes) + " bytes";
  }
  if (path.front() == '/') {
    return "is absolute";
  }
  for (unsigned char c : path) {
    if (c == '\0' || c < 0x20 || c == 0x7f) {
      return "has a control character";
    }
    if (c == '\\') {
      return "has a backslash (use / between names)";
    }
  }
  size_t i = 0;
  while (i <= path.size()) {
    size_t j = std::min(path.find('/', i), path.size());
    std::string_view name = path.substr(i, j - i);
    if (name.empty()) {
      return "has an empty name (a / at the end, or //)";
    }
    if (name == "." || name == "..") {
      return "has a \"" + std::string(name) + "\" component";
    }
    i = j + 1;
  }
  return "";
}

Result<std::string> DecodeBase64(size_t index, std::string_view path, std::string_view text) {
  // Encoders wrap lines (base64(1) at 76 columns); the breaks carry nothing.
  std::string compact;
  compact.reserve(text.size());
  for (char c : text) {
    if (c != '\n' && c != '\r' && c != ' ' && c != '\t') {
      compact.push_back(c);
    }
  }
  auto bytes = crypto::Base64Decode(compact);
  if (!bytes.ok()) {
    return Status::InvalidArgument(
        "FILES_ENCODING_INVALID", Which(index, path) + ": " + bytes.status().message(),
        "send standard base64 (A-Z a-z 0-9 + /, = padding) with encoding \"base64\", or the "
        "text itself with encoding \"utf8\"");
  }
  return bytes;
}

struct ArchiveFree {
  void operator()(archive* a) const { archive_write_free(a); }
};

}  // namespace

Result<int64_t> PrepareInlineFiles(std::vector<InlineFile>& files, int64_t max_bytes) {
  if (files.empty()) {
    return Status::InvalidArgument("SOURCE_EMPTY", "files is empty",
                                   "send at least one file, e.g. {\"path\": \"index.html\", "
                                   "\"content\": \"<h1>hi</h1>\"}");
  }
  if (files.size() > kMaxInlineFiles) {
    return Status::InvalidArgument(
        "FILES_TOO_MANY",
        std::to_string(files.size()) + " files; at most " + std::to_string(kMaxInlineFiles) +
            " can be sent inline",
        "send the app as a .tar.gz upload, or from source.url or source.git");
  }
  std::unordered_map<std::string_view, size_t> seen;
  for (size_t i = 0; i < files.size(); ++i) {
    const std::string& path = files[i].path;
    if (std::string why = PathProblem(path); !why.empty()) {
      return PathInvalid(i, path, why);
    }
    auto [it, added] = seen.emplace(path, i);
    if (!added) {
      return Status::InvalidArgument(
          "FILES_DUPLICATE_PATH",
          Which(i, path) + " is also files[" + std::to_string(it->second) + "]",
          "send each path once");
    }
  }
  // A file cannot also be the directory of another: "a" and "a/b".
  for (size_t i = 0; i < files.size(); ++i) {
    std::string_view path = files[i].path;
    for (size_t slash = path.find('/'); slash != std::string_view::npos;
         slash = path.find('/', slash + 1)) {
      if (auto it = seen.find(path.substr(0, slash)); it != seen.end()) {
        return PathInvalid(i, path,
                           "puts a file inside files[" + std::to_string(it->second) + "] " +
                               Quoted(path.substr(0, slash)) + ", which is a file");
      }
    }
  }
  int64_t total = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    InlineFile& f = files[i];
    if (f.base64) {
      KILN_ASSIGN_OR_RETURN(f.content, DecodeBase64(i, f.path, f.content));
      f.base64 = false;
    }
    total += static_cast<int64_t>(f.content.size());
    if (total > max_bytes) {
      return Status(Code::kPayloadTooLarge, "ARCHIVE_TOO_LARGE",
                    "the files hold more than " + HumanBytes(max_bytes), kTooBigHint);
    }
  }
  return total;
}

Result<int64_t> WriteFilesArchive(const std::vector<InlineFile>& files, const std::string& dest) {
  Fd fd(::open(dest.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600));
  if (fd.get() < 0) {
    return Status::FromErrno("open(\"" + dest + "\")", errno);
  }
  auto fail = [&](int err, std::string_view what) -> Status {
    ::unlink(dest.c_str());
    if (err == ENOSPC || err == EDQUOT) {
      return Status::Unavailable("DISK_FULL", "cannot save the files: " + std::string(what),
                                 "free disk space in the data directory");
    }
    return Status::Internal("write \"" + dest + "\": " + std::string(what));
  };
  std::unique_ptr<archive, ArchiveFree> a(archive_write_new());
  if (!a) {
    return fail(ENOMEM, "archive_write_new: out of memory");
  }
  auto error = [&]() {
    const char* e = archive_error_string(a.get());
    int err = archive_errno(a.get());
    return fail(err, e != nullptr ? e : std::strerror(err));
  };
  // pax only where ustar cannot hold a name (long or not ASCII); no compression: the bytes
  // go from here to the extractor on the same disk.
  // Names are written as the bytes they are (UTF-8 from JSON) with hdrcharset=BINARY: the
  // server's locale is "C", in which libarchive cannot convert them, and ExtractArchive reads
  // them back as bytes.
  if (archive_write_set_format_pax_restricted(a.get()) != ARCHIVE_OK ||
      archive_write_set_format_option(a.get(), "pax", "hdrcharset", "BINARY") != ARCHIVE_OK ||
      archive_write_add_filter_none(a.get()) != ARCHIVE_OK ||
      archive_write_set_bytes_in_last_block(a.get(), 1) != ARCHIVE_OK ||
      archive_write_open_fd(a.get(), fd.get()) != ARCHIVE_OK) {
    return error();
  }
  std::unique_ptr<archive_entry, decltype(&archive_entry_free)> entry(archive_entry_new(),
                                                                      &archive_entry_free);
  if (!entry) {
    return fail(ENOMEM, "archive_entry_new: out of memory");
  }
  time_t now = ::time(nullptr);
  auto header = [&](const std::string& name, mode_t type, mode_t perm, int64_t size) {
    archive_entry_clear(entry.get());
    archive_entry_set_pathname(entry.get(), name.c_str());
    archive_entry_set_filetype(entry.get(), type);
    archive_entry_set_perm(entry.get(), perm);
    archive_entry_set_size(entry.get(), size);
    archive_entry_set_mtime(entry.get(), now, 0);
    return archive_write_header(a.get(), entry.get()) == ARCHIVE_OK;
  };
  // The root first: without it, files all under one directory would be hoisted out of it.
  if (!header("./", AE_IFDIR, 0755, 0)) {
    return error();
  }
  for (const InlineFile& f : files) {
    if (!header(f.path, AE_IFREG, f.executable ? 0755 : 0644,
                static_cast<int64_t>(f.content.size()))) {
      return error();
    }
    const char* p = f.content.data();
    size_t left = f.content.size();
    while (left > 0) {
      la_ssize_t n = archive_write_data(a.get(), p, left);
      if (n <= 0) {
        return error();
      }
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) {
    return error();
  }
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) {
    return fail(errno, std::strerror(errno));
  }
  return static_cast<int64_t>(st.st_size);
}

}  // namespace kiln::service
