#include "runtime/templates.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/clock.h"
#include "core/crypto.h"
#include "core/json.h"
#include "core/process.h"
#include "runtime/mounts.h"

namespace kiln::runtime {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// Host /etc entries a userland needs to work: the dynamic linker's cache, name service
// switch, TLS roots, alternatives (many /usr/bin names are symlinks through it), time zone,
// shell start-up files. Nothing with host secrets or host users (passwd and group are
// generated instead).
constexpr const char* kEtcFromHost[] = {"ld.so.cache",
                                        "ld.so.conf",
                                        "ld.so.conf.d",
                                        "nsswitch.conf",
                                        "alternatives",
                                        "ssl",
                                        "ca-certificates.conf",
                                        "localtime",
                                        "timezone",
                                        "mime.types",
                                        "protocols",
                                        "services",
                                        "bash.bashrc",
                                        "profile",
                                        "profile.d",
                                        "environment",
                                        "inputrc",
                                        "debian_version",
                                        "os-release",
                                        "shells",
                                        "login.defs",
                                        "gai.conf",
                                        "host.conf",
                                        "networks",
                                        "gitconfig",
                                        "python3",
                                        "perl",
                                        "magic",
                                        "magic.mime",
                                        "xdg",
                                        "skel",
                                        "manpath.config"};

// Host directories that are either symlinks into /usr (merged /usr, Debian 12) or real
// directories to bind.
constexpr const char* kSystemDirs[] = {"/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32"};

constexpr std::string_view kPasswd =
    "root:x:0:0:root:/root:/bin/bash\n"
    "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin\n"
    "user:x:1000:1000:user:/home/user:/bin/bash\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n";
constexpr std::string_view kGroup =
    "root:x:0:\ndaemon:x:1:\ntty:x:5:\nusers:x:100:\nuser:x:1000:\nnogroup:x:65534:\n";

Status WriteText(const fs::path& path, std::string_view text, fs::perms perms) {
  std::ofstream out(path, std::ios::trunc);
  out << text;
  out.close();
  if (!out) {
    return Status::FromErrno("write(\"" + path.string() + "\")", errno);
  }
  std::error_code ec;
  fs::permissions(path, perms, ec);
  return Status::Ok();
}

Status MakeDirs(const fs::path& root,
                std::initializer_list<std::pair<const char*, fs::perms>> dirs) {
  for (const auto& [name, perms] : dirs) {
    std::error_code ec;
    fs::create_directories(root / name, ec);
    if (ec) {
      return Status::Internal("mkdir " + (root / name).string() + ": " + ec.message());
    }
    fs::permissions(root / name, perms, ec);
  }
  return Status::Ok();
}

int64_t TreeSize(const fs::path& dir) {
  int64_t total = 0;
  std::error_code ec;
  for (auto it =
           fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied, ec);
       !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) == 0 && S_ISREG(st.st_mode)) {
      total += st.st_blocks * 512;
    }
  }
  return total;
}

}  // namespace

bool ValidTemplateName(const std::string& name) {
  if (name.empty() || name.size() > 64) {
    return false;
  }
  for (size_t i = 0; i < name.size(); ++i) {
    char c = name[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || (i > 0 && (c == '_' || c == '-'));
    if (!ok) {
      return false;
    }
  }
  return true;
}

Status TemplateStore::EnsureBase() {
  if (Has("base")) {
    return Status::Ok();
  }
  fs::path tmp = fs::path(dir_) / "base.tmp";
  KILN_RETURN_IF_ERROR(RemoveTree(tmp.string()));
  fs::path root = tmp / "rootfs";
  constexpr auto k755 = fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec |
                        fs::perms::others_read | fs::perms::others_exec;
  constexpr auto k1777 = fs::perms::all | fs::perms::sticky_bit;
  KILN_RETURN_IF_ERROR(MakeDirs(root, {{"usr", k755},
                                       {"etc", k755},
                                       {"root", fs::perms::owner_all},
                                       {"home/user", k755},
                                       {"tmp", k1777},
                                       {"var/tmp", k1777},
                                       {"var/lib", k755},
                                       {"var/cache", k755},
                                       {"var/log", k755},
                                       {"run", k755},
                                       {"opt", k755},
                                       {"srv", k755},
                                       {"mnt", k755},
                                       {"media", k755},
                                       {"proc", k755},
                                       {"sys", k755},
                                       {"dev", k755}}));
  if (::chown((root / "home/user").c_str(), 1000, 1000) != 0) {
    return Status::FromErrno("chown(home/user)", errno);
  }
  Meta meta;
  meta.name = "base";
  meta.host_binds.push_back("/usr");
  for (const char* dir : kSystemDirs) {
    std::error_code ec;
    auto status = fs::symlink_status(dir, ec);
    if (ec || !fs::exists(status)) {
      continue;
    }
    if (fs::is_symlink(status)) {
      fs::create_symlink(fs::read_symlink(dir, ec), root / (dir + 1), ec);
    } else if (fs::is_directory(status)) {
      fs::create_directories(root / (dir + 1), ec);
      meta.host_binds.push_back(dir);
    }
    if (ec) {
      return Status::Internal(std::string("preparing ") + dir + ": " + ec.message());
    }
  }
  for (const char* name : kEtcFromHost) {
    fs::path from = fs::path("/etc") / name;
    std::error_code ec;
    if (!fs::exists(fs::symlink_status(from, ec))) {
      continue;
    }
    fs::copy(from, root / "etc" / name,
             fs::copy_options::recursive | fs::copy_options::copy_symlinks, ec);
    if (ec) {
      return Status::Internal("copying " + from.string() + ": " + ec.message());
    }
  }
  constexpr auto k644 = fs::perms::owner_read | fs::perms::owner_write | fs::perms::group_read |
                        fs::perms::others_read;
  KILN_RETURN_IF_ERROR(WriteText(root / "etc/passwd", kPasswd, k644));
  KILN_RETURN_IF_ERROR(WriteText(root / "etc/group", kGroup, k644));
  // Mount targets of the per-instance files, so runc need not create them.
  for (const char* name : {"etc/hosts", "etc/hostname", "etc/resolv.conf"}) {
    KILN_RETURN_IF_ERROR(WriteText(root / name, "", k644));
  }
  meta.built_ms = SystemClock::Instance().NowMs();
  meta.size_bytes = TreeSize(root);
  KILN_RETURN_IF_ERROR(WriteMeta(tmp.string(), meta));
  std::error_code ec;
  fs::rename(tmp, fs::path(dir_) / "base", ec);
  if (ec) {
    return Status::Internal("installing template base: " + ec.message());
  }
  return Status::Ok();
}

Status TemplateStore::BuildDebian(const std::string& mirror, const std::string& suite,
                                  const LogSink& log) {
  if (Has("debian")) {
    return Status::Ok();
  }
  fs::path tmp = fs::path(dir_) / "debian.tmp";
  KILN_RETURN_IF_ERROR(RemoveTree(tmp.string()));
  std::error_code ec;
  fs::create_directories(tmp, ec);
  if (log) {
    log("debootstrap --variant=minbase " + suite + " from " + mirror + " (a few minutes, once)");
  }
  ProcessOptions options;
  std::string pending;
  options.on_output = [&](std::string_view chunk) {
    pending.append(chunk);
    size_t nl;
    while ((nl = pending.find('\n')) != std::string::npos) {
      if (log && nl > 0) {
        log(pending.substr(0, nl));
      }
      pending.erase(0, nl + 1);
    }
  };
  options.max_output = 64 << 10;
  auto run = RunProcess({"debootstrap", "--variant=minbase", "--include=ca-certificates", suite,
                         (tmp / "rootfs").string(), mirror},
                        60min, options, "debootstrap");
  if (!run.ok()) {
    return run.status();
  }
  if (run->exit_code != 0) {
    RemoveTree(tmp.string());
    return Status::Unavailable(
        "TEMPLATE_BUILD_FAILED",
        "debootstrap failed (exit " + std::to_string(run->exit_code) + "): " + run->LastLine(),
        "check that " + mirror + " is reachable; the log has details");
  }
  // Downloaded packages are not part of the template.
  fs::remove_all(tmp / "rootfs/var/cache/apt/archives", ec);
  fs::create_directories(tmp / "rootfs/var/cache/apt/archives/partial", ec);
  Meta meta;
  meta.name = "debian";
  meta.built_ms = SystemClock::Instance().NowMs();
  meta.size_bytes = TreeSize(tmp / "rootfs");
  KILN_RETURN_IF_ERROR(WriteMeta(tmp.string(), meta));
  fs::rename(tmp, fs::path(dir_) / "debian", ec);
  if (ec) {
    return Status::Internal("installing template debian: " + ec.message());
  }
  if (log) {
    log("template debian is ready");
  }
  return Status::Ok();
}

Status TemplateStore::Commit(const std::string& name, const std::string& parent,
                             const std::string& upper) {
  fs::path tmp = fs::path(dir_) / (name + ".tmp");
  KILN_RETURN_IF_ERROR(RemoveTree(tmp.string()));
  std::error_code ec;
  fs::create_directories(tmp, ec);
  fs::rename(upper, tmp / "rootfs", ec);
  if (ec) {
    return Status::Internal("moving the build's layer: " + ec.message());
  }
  Meta meta;
  meta.name = name;
  meta.parent = parent;
  meta.built_ms = SystemClock::Instance().NowMs();
  meta.size_bytes = TreeSize(tmp / "rootfs");
  KILN_RETURN_IF_ERROR(WriteMeta(tmp.string(), meta));
  fs::rename(tmp, fs::path(dir_) / name, ec);
  if (ec) {
    return Status::Internal("installing template " + name + ": " + ec.message());
  }
  return Status::Ok();
}

Status TemplateStore::Remove(const std::string& name) {
  // Renamed away first, so a half-removed template is never taken for a whole one.
  fs::path dir = fs::path(dir_) / name;
  fs::path doomed = fs::path(dir_) / (name + ".removing");
  std::error_code ec;
  fs::rename(dir, doomed, ec);
  if (ec && ec != std::errc::no_such_file_or_directory) {
    return Status::Internal("removing template " + name + ": " + ec.message());
  }
  return RemoveTree(doomed.string());
}

bool TemplateStore::Has(const std::string& name) const {
  return ValidTemplateName(name) &&
         ::access((fs::path(dir_) / name / "template.json").c_str(), F_OK) == 0;
}

Result<TemplateStore::Meta> TemplateStore::ReadMeta(const std::string& name) const {
  if (!Has(name)) {
    return Status::NotFound("TEMPLATE_NOT_FOUND", "no template \"" + name + "\"",
                            "list templates with GET /v1/templates");
  }
  std::ifstream in(fs::path(dir_) / name / "template.json");
  std::stringstream text;
  text << in.rdbuf();
  auto parsed = ParseJson(text.str());
  if (!parsed.ok() || !parsed->is_object()) {
    return Status::Internal("template " + name + " has an unreadable template.json");
  }
  const json::object& o = parsed->as_object();
  Meta meta;
  meta.name = name;
  meta.parent = GetString(o, "parent");
  meta.built_ms = GetInt(o, "builtMs");
  meta.size_bytes = GetInt(o, "sizeBytes");
  if (auto it = o.find("hostBinds"); it != o.end() && it->value().is_array()) {
    for (const auto& b : it->value().as_array()) {
      if (b.is_string()) {
        meta.host_binds.emplace_back(b.as_string());
      }
    }
  }
  return meta;
}

Status TemplateStore::WriteMeta(const std::string& dir, const Meta& meta) const {
  json::array binds;
  for (const auto& b : meta.host_binds) {
    binds.emplace_back(b);
  }
  json::object o{{"name", meta.name},
                 {"parent", meta.parent},
                 {"hostBinds", std::move(binds)},
                 {"builtMs", meta.built_ms},
                 {"sizeBytes", meta.size_bytes}};
  return crypto::WriteFileAtomic(fs::path(dir) / "template.json", json::serialize(o), 0644);
}

Result<TemplateLayout> TemplateStore::Layout(const std::string& name) const {
  TemplateLayout layout;
  std::string current = name;
  for (int depth = 0; !current.empty(); ++depth) {
    if (depth > 32) {
      return Status::Internal("template " + name + " has a parent loop");
    }
    KILN_ASSIGN_OR_RETURN(Meta meta, ReadMeta(current));
    layout.layers.push_back((fs::path(dir_) / current / "rootfs").string());
    layout.host_binds.insert(layout.host_binds.end(), meta.host_binds.begin(),
                             meta.host_binds.end());
    current = meta.parent;
  }
  return layout;
}

std::vector<TemplateInfo> TemplateStore::List() const {
  std::vector<TemplateInfo> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir_, ec)) {
    std::string name = entry.path().filename().string();
    auto meta = ReadMeta(name);
    if (!meta.ok()) {
      continue;
    }
    TemplateInfo info;
    info.name = name;
    info.parent = meta->parent;
    info.built_ms = meta->built_ms;
    info.size_bytes = meta->size_bytes;
    out.push_back(std::move(info));
  }
  return out;
}

std::vector<std::string> TemplateStore::Children(const std::string& name) const {
  std::vector<std::string> out;
  for (const TemplateInfo& t : List()) {
    if (t.parent == name) {
      out.push_back(t.name);
    }
  }
  return out;
}

}  // namespace kiln::runtime
