// The source archive `kiln deploy DIR` uploads: DIR's files as a tar.gz built in memory,
// leaving out what the directory's .gitignore and .kilnignore files name.
#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <sstream>

#include "cli/internal.h"

namespace kiln::cli {

namespace fs = std::filesystem;

namespace {

std::vector<std::string> SplitPath(std::string_view path) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= path.size()) {
    size_t slash = path.find('/', start);
    if (slash == std::string_view::npos) {
      slash = path.size();
    }
    if (slash > start) {
      out.emplace_back(path.substr(start, slash - start));
    }
    start = slash + 1;
  }
  return out;
}

// Pattern segments against path segments. A "**" segment stands for any number of
// directories (none included); a trailing "**" for one or more path segments, so "logs/**"
// matches what is inside logs but not logs itself. Inside a segment, fnmatch does `*`, `?`,
// `[...]` and backslash escapes; no segment holds a '/', so `*` never crosses one.
bool MatchSegments(const std::vector<std::string>& pat, size_t pi,
                   const std::vector<std::string>& path, size_t si) {
  while (pi < pat.size()) {
    if (pat[pi] == "**") {
      if (pi + 1 == pat.size()) {
        return si < path.size();
      }
      for (size_t skip = si; skip <= path.size(); ++skip) {
        if (MatchSegments(pat, pi + 1, path, skip)) {
          return true;
        }
      }
      return false;
    }
    if (si >= path.size() || ::fnmatch(pat[pi].c_str(), path[si].c_str(), 0) != 0) {
      return false;
    }
    ++pi;
    ++si;
  }
  return si == path.size();
}

// One thing to put in the archive, found by the walk.
struct PackEntry {
  std::string rel;  // "src/index.js"
  fs::path abs;
  mode_t type = 0;  // S_IFREG, S_IFDIR or S_IFLNK
  mode_t perm = 0;
  int64_t size = 0;
  struct timespec mtime {};
  std::string link_target;
};

class Walker {
 public:
  Walker(fs::path root, Pack* pack) : root_(std::move(root)), pack_(pack) {}

  // Collects `rel_dir` (relative to the root; "" for the root) and what is below it.
  Status Walk(const std::string& rel_dir) {
    fs::path dir = rel_dir.empty() ? root_ : root_ / rel_dir;
    for (const char* name : {".gitignore", ".kilnignore"}) {
      std::ifstream in(dir / name, std::ios::binary);
      if (in) {
        std::ostringstream text;
        text << in.rdbuf();
        rules_.Add(rel_dir, text.str());
      }
    }
    std::error_code ec;
    std::vector<std::string> names;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      names.push_back(it->path().filename().string());
    }
    if (ec) {
      return Status::InvalidArgument("SOURCE_UNREADABLE",
                                     "cannot list " + dir.string() + ": " + ec.message(),
                                     "make it readable, or add it to .kilnignore");
    }
    std::sort(names.begin(), names.end());  // the same archive for the same files
    for (const std::string& name : names) {
      if (name == ".git") {  // the repository (a directory, or a file in a submodule)
        continue;
      }
      PackEntry e;
      e.rel = rel_dir.empty() ? name : rel_dir + "/" + name;
      e.abs = dir / name;
      struct stat st {};
      if (::lstat(e.abs.c_str(), &st) != 0) {
        return Status::FromErrno("lstat(\"" + e.abs.string() + "\")", errno);
      }
      bool is_dir = S_ISDIR(st.st_mode);
      if (rules_.Ignored(e.rel, is_dir)) {
        continue;
      }
      e.type = st.st_mode & S_IFMT;
      e.perm = st.st_mode & 0777;  // no setuid, setgid or sticky bits
      e.mtime = st.st_mtim;
      if (is_dir) {
        entries_.push_back(e);
        KILN_RETURN_IF_ERROR(Walk(e.rel));
      } else if (S_ISREG(st.st_mode)) {
        e.size = st.st_size;
        entries_.push_back(e);
      } else if (S_ISLNK(st.st_mode)) {
        std::error_code link_ec;
        fs::path target = fs::read_symlink(e.abs, link_ec);
        if (link_ec) {
          return Status::FromErrno("readlink(\"" + e.abs.string() + "\")", link_ec.value());
        }
        // The server keeps links that resolve inside the app; one leading out would point at
        // nothing there (or be refused), so it stays behind with a warning.
        fs::path resolved = (fs::path(rel_dir) / target).lexically_normal();
        if (target.is_absolute() || resolved.empty() || *resolved.begin() == "..") {
          pack_->warnings.push_back("skipped " + e.rel + " -> " + target.string() +
                                    ": the link points outside the directory");
          continue;
        }
        e.link_target = target.string();
        entries_.push_back(e);
      } else {
        pack_->warnings.push_back("skipped " + e.rel + ": not a file, directory or link");
      }
    }
    return Status::Ok();
  }

  std::vector<PackEntry>& entries() { return entries_; }

 private:
  fs::path root_;
  Pack* pack_;
  IgnoreRules rules_;
  std::vector<PackEntry> entries_;
};

la_ssize_t AppendToString(struct archive*, void* client_data, const void* buffer, size_t length) {
  static_cast<std::string*>(client_data)->append(static_cast<const char*>(buffer), length);
  return static_cast<la_ssize_t>(length);
}

Status ArchiveError(struct archive* a, const std::string& what) {
  const char* message = archive_error_string(a);
  return Status::Internal("cannot pack " + what + ": " +
                          (message != nullptr ? message : "libarchive failed"));
}

// Copies a regular file's first `size` bytes into the archive's current entry (libarchive
// pads with zeros should the file have shrunk since the walk).
Status CopyFile(struct archive* a, const PackEntry& e) {
  int fd = ::open(e.abs.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    Status s = Status::FromErrno("open(\"" + e.abs.string() + "\")", err);
    return Status::InvalidArgument("SOURCE_UNREADABLE", s.message(),
                                   "make it readable, or add " + e.rel + " to .kilnignore");
  }
  char buf[64 * 1024];
  int64_t left = e.size;
  Status status = Status::Ok();
  while (left > 0) {
    ssize_t n = ::read(fd, buf, static_cast<size_t>(std::min<int64_t>(left, sizeof(buf))));
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      status = Status::FromErrno("read(\"" + e.abs.string() + "\")", errno);
      break;
    }
    if (n == 0) {
      break;
    }
    if (archive_write_data(a, buf, static_cast<size_t>(n)) < 0) {
      status = ArchiveError(a, e.rel);
      break;
    }
    left -= n;
  }
  ::close(fd);
  return status;
}

}  // namespace

void IgnoreRules::Add(const std::string& base, std::string_view text) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    std::string line(
        text.substr(pos, nl == std::string_view::npos ? std::string_view::npos : nl - pos));
    pos = nl == std::string_view::npos ? text.size() : nl + 1;
    if (!line.empty() && line.back() == '\r') {
      line.pop_back();
    }
    // Trailing spaces go unless escaped with a backslash.
    while (!line.empty() && line.back() == ' ' &&
           !(line.size() >= 2 && line[line.size() - 2] == '\\')) {
      line.pop_back();
    }
    if (line.empty() || line[0] == '#') {
      continue;
    }
    Rule rule;
    rule.base = SplitPath(base);
    if (line[0] == '!') {
      rule.negate = true;
      line.erase(0, 1);
    } else if (line[0] == '\\' && line.size() > 1 && (line[1] == '#' || line[1] == '!')) {
      line.erase(0, 1);
    }
    if (!line.empty() && line.back() == '/') {
      rule.dir_only = true;
      while (!line.empty() && line.back() == '/') {
        line.pop_back();
      }
    }
    if (line.empty()) {
      continue;
    }
    // A pattern with a slash before its end is relative to the ignore file's directory; one
    // without matches a name at any depth below it.
    bool anchored = line.find('/') != std::string::npos;
    rule.segments = SplitPath(line);
    if (rule.segments.empty()) {
      continue;
    }
    if (!anchored) {
      rule.segments.insert(rule.segments.begin(), "**");
    }
    rules_.push_back(std::move(rule));
  }
}

bool IgnoreRules::Ignored(std::string_view path, bool is_dir) const {
  bool ignored = false;
  std::vector<std::string> full = SplitPath(path);
  for (const Rule& rule : rules_) {
    if (rule.dir_only && !is_dir) {
      continue;
    }
    const std::vector<std::string>& base = rule.base;
    if (full.size() <= base.size() || !std::equal(base.begin(), base.end(), full.begin())) {
      continue;  // the rule's file sits in another directory, or deeper
    }
    std::vector<std::string> below(full.begin() + static_cast<ptrdiff_t>(base.size()), full.end());
    if (MatchSegments(rule.segments, 0, below, 0)) {
      ignored = !rule.negate;
    }
  }
  return ignored;
}

Result<Pack> PackDirectory(const std::string& dir, const PackOptions& options) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return Status::InvalidArgument("SOURCE_NOT_FOUND", dir + " is not a directory",
                                   "pass the directory of the app: kiln deploy ./myapp");
  }
  Pack pack;
  Walker walker(dir, &pack);
  KILN_RETURN_IF_ERROR(walker.Walk(""));
  std::vector<PackEntry>& entries = walker.entries();

  std::map<std::string, int64_t> by_top;  // bytes under each top-level entry
  for (const PackEntry& e : entries) {
    if (e.type == S_IFREG) {
      ++pack.files;
      pack.bytes += e.size;
      by_top[e.rel.substr(0, e.rel.find('/'))] += e.size;
    }
  }
  if (pack.files == 0) {
    return Status::InvalidArgument(
        "SOURCE_EMPTY", "no files to deploy in " + dir,
        "check the directory, and that .gitignore or .kilnignore do not leave out everything");
  }
  if (pack.bytes > options.max_bytes) {
    std::vector<std::pair<int64_t, std::string>> largest;
    for (const auto& [name, bytes] : by_top) {
      largest.emplace_back(bytes, name);
    }
    std::sort(largest.rbegin(), largest.rend());
    std::string names;
    for (size_t i = 0; i < largest.size() && i < 3; ++i) {
      names += (i > 0 ? ", " : "") + largest[i].second + " " + HumanBytes(largest[i].first);
    }
    return Status::InvalidArgument(
        "SOURCE_TOO_LARGE",
        dir + " holds " + HumanBytes(pack.bytes) + " to upload, more than the limit of " +
            HumanBytes(options.max_bytes),
        "add what the app does not need to a .kilnignore file (largest: " + names + ")");
  }

  std::unique_ptr<struct archive, decltype(&archive_write_free)> a(archive_write_new(),
                                                                   &archive_write_free);
  if (archive_write_add_filter_gzip(a.get()) != ARCHIVE_OK ||
      archive_write_set_format_pax_restricted(a.get()) != ARCHIVE_OK ||
      // Names go as the bytes they are: in the C locale (scripts, CI) libarchive would refuse
      // to translate a name such as "café.txt" otherwise.
      archive_write_set_format_option(a.get(), "pax", "hdrcharset", "BINARY") != ARCHIVE_OK ||
      archive_write_set_bytes_in_last_block(a.get(), 1) != ARCHIVE_OK ||
      archive_write_open(a.get(), &pack.archive, nullptr, AppendToString, nullptr) != ARCHIVE_OK) {
    return ArchiveError(a.get(), dir);
  }
  std::unique_ptr<struct archive_entry, decltype(&archive_entry_free)> entry(archive_entry_new(),
                                                                             &archive_entry_free);
  // The root first, as "./" (as `tar -C DIR .` writes it): the server takes an archive whose
  // entries all sit under one directory for a GitHub-style tarball and unwraps that
  // directory, which must not happen to an app that has only, say, public/.
  struct stat root_st {};
  PackEntry root;
  root.rel = "./";
  root.type = S_IFDIR;
  root.perm = 0755;
  if (::stat(dir.c_str(), &root_st) == 0) {
    root.perm = root_st.st_mode & 0777;
    root.mtime = root_st.st_mtim;
  }
  entries.insert(entries.begin(), root);
  for (const PackEntry& e : entries) {
    archive_entry_clear(entry.get());
    archive_entry_set_pathname(entry.get(), e.rel.c_str());
    archive_entry_set_filetype(entry.get(), e.type);
    archive_entry_set_perm(entry.get(), e.perm);
    archive_entry_set_mtime(entry.get(), e.mtime.tv_sec, e.mtime.tv_nsec);
    if (e.type == S_IFREG) {
      archive_entry_set_size(entry.get(), e.size);
    } else if (e.type == S_IFLNK) {
      archive_entry_set_symlink(entry.get(), e.link_target.c_str());
    }
    if (archive_write_header(a.get(), entry.get()) != ARCHIVE_OK) {
      return ArchiveError(a.get(), e.rel);
    }
    if (e.type == S_IFREG) {
      KILN_RETURN_IF_ERROR(CopyFile(a.get(), e));
    }
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) {
    return ArchiveError(a.get(), dir);
  }
  return pack;
}

std::string AppNameFromDir(const std::string& dir) {
  std::error_code ec;
  fs::path p = fs::weakly_canonical(fs::absolute(dir, ec), ec);
  if (ec) {
    p = fs::path(dir).lexically_normal();
  }
  std::string base = p.filename().string();
  if (base.empty()) {
    base = p.parent_path().filename().string();
  }
  std::string name;
  for (char c : base) {
    if (c >= 'A' && c <= 'Z') {
      c = static_cast<char>(c - 'A' + 'a');
    }
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    if (ok) {
      name += c;
    } else if (!name.empty() && name.back() != '-') {
      name += '-';
    }
  }
  if (!name.empty() && name[0] >= '0' && name[0] <= '9') {
    name = "app-" + name;
  }
  if (name.size() > 40) {
    name.resize(40);
  }
  while (!name.empty() && name.back() == '-') {
    name.pop_back();
  }
  return name.empty() ? "app" : name;
}

}  // namespace kiln::cli
