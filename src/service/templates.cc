#include "service/templates.h"

#include "service/operations.h"

#include <filesystem>
#include <fstream>

#include "core/ids.h"
#include "core/log.h"

namespace kiln::service {
namespace {

namespace fs = std::filesystem;

// Appends lines to a build log file, flushing each so followers see it at once.
class BuildLog {
 public:
  explicit BuildLog(const std::string& path) : out_(path, std::ios::app) {}
  void operator()(std::string_view line) {
    std::lock_guard lock(mu_);
    out_ << line << '\n';
    out_.flush();
  }

 private:
  std::mutex mu_;
  std::ofstream out_;
};

constexpr std::string_view kBaseDescription =
    "The host's /usr (node, python3, git, …) read-only under a private root; starts in "
    "milliseconds, warm-pooled.";
constexpr std::string_view kDebianDescription =
    "A minimal Debian made with debootstrap (apt works inside with network \"egress\"); "
    "built on first use, which takes a few minutes.";

}  // namespace

TemplateBuilder::TemplateBuilder(const Deps& deps) : deps_(deps) {}

TemplateBuilder::~TemplateBuilder() = default;

std::string TemplateBuilder::LogFile(const std::string& key) const {
  fs::path dir = fs::path(deps_.config.server.data_dir) / "templates" / "logs";
  std::error_code ec;
  fs::create_directories(dir, ec);
  return (dir / (key + ".log")).string();
}

void TemplateBuilder::Start() {
  auto all = deps_.store.ListAllTemplates();
  if (!all.ok()) {
    log::Warn("cannot list templates", {{"error", all.status().ToString()}});
    return;
  }
  for (store::Template t : *all) {
    if (t.status != "building") {
      continue;
    }
    // The build's instance died with the server; the runtime removes it on its next use.
    t.status = "failed";
    t.error = "the build was interrupted by a server restart";
    if (deps_.runtime != nullptr) {
      deps_.runtime->Remove("build-" + t.id);
    }
    (void)deps_.store.UpdateTemplate(t);
  }
}

void TemplateBuilder::Stop() {
  // The pool's destructor waits for the builds running now.
  std::unique_ptr<WorkerPool> builds;
  {
    std::lock_guard lock(mu_);
    builds = std::move(builds_);
  }
  builds.reset();
}

void TemplateBuilder::StartDebianBuild() {
  // Called with mu_ held.
  if (debian_building_ || deps_.runtime == nullptr || !builds_) {
    return;
  }
  debian_building_ = true;
  debian_error_.clear();
  std::string path = LogFile("debian");
  std::ofstream(path, std::ios::trunc).close();
  builds_->Submit([this, path] {
    BuildLog log(path);
    Status s = deps_.runtime->BuildDebian([&log](std::string_view line) { log(line); });
    std::lock_guard lock(mu_);
    debian_building_ = false;
    if (!s.ok()) {
      debian_error_ = s.message();
      log("build failed: " + s.message());
    }
  });
}

Result<std::string> TemplateBuilder::Resolve(const std::string& workspace_id,
                                             const std::string& name) {
  if (name == "base") {
    return std::string("base");
  }
  if (name == "debian") {
    if (deps_.runtime != nullptr && deps_.runtime->HasTemplate("debian")) {
      return std::string("debian");
    }
    std::lock_guard lock(mu_);
    StartDebianBuild();
    return Status::Conflict("TEMPLATE_BUILDING",
                            "template debian is being built (first use; a few minutes)",
                            "retry when GET /v1/templates/debian says ready; follow the build "
                            "with GET /v1/templates/debian/logs?follow=1");
  }
  KILN_ASSIGN_OR_RETURN(store::Template t, deps_.store.GetTemplate(workspace_id, name));
  if (t.status == "building") {
    return Status::Conflict(
        "TEMPLATE_BUILDING", "template \"" + name + "\" is still being built",
        "retry when it is ready; follow GET /v1/templates/" + name + "/logs?follow=1");
  }
  if (t.status != "ready") {
    return Status::Conflict("TEMPLATE_FAILED",
                            "template \"" + name + "\" failed to build: " + t.error,
                            "fix its steps and create it again (delete it first)");
  }
  return t.id;
}

Result<json::object> TemplateBuilder::Create(const auth::Principal& principal,
                                             const std::string& name, const std::string& from,
                                             const std::vector<std::string>& steps,
                                             const std::vector<std::string>& env,
                                             int64_t pool_size) {
  if (name == "base" || name == "debian") {
    return Status::Conflict("TEMPLATE_EXISTS", "\"" + name + "\" is a built-in template",
                            "pick another name");
  }
  // The parent must exist (debian may still be building: the build waits for it).
  std::string parent_dir;
  if (from == "base" || from == "debian") {
    parent_dir = from;
  } else {
    KILN_ASSIGN_OR_RETURN(store::Template parent,
                          deps_.store.GetTemplate(principal.workspace.id, from));
    if (parent.status != "ready") {
      return Status::Conflict("TEMPLATE_NOT_READY",
                              "template \"" + from + "\" is not ready (" + parent.status + ")",
                              "build on a template whose status is ready");
    }
    parent_dir = parent.id;
  }
  store::Template t;
  t.id = NewId("tpl");
  t.workspace_id = principal.workspace.id;
  t.name = name;
  t.parent = from;
  json::array steps_json;
  for (const auto& s : steps) {
    steps_json.push_back(json::object{{"run", s}});
  }
  t.steps = json::serialize(steps_json);
  json::object env_json;
  for (const auto& e : env) {
    size_t eq = e.find('=');
    env_json[e.substr(0, eq)] = e.substr(eq + 1);
  }
  t.env_sealed = env.empty() ? "" : deps_.box.Seal(json::serialize(env_json), "template:" + t.id);
  t.status = "building";
  t.pool_size = pool_size;
  t.created_ms = deps_.clock.NowMs();
  t.created_by = principal.key_id;
  KILN_RETURN_IF_ERROR(deps_.store.InsertTemplate(
      t, MakeEvent(deps_, t.workspace_id, "template.created", principal.key_id, t.id,
                   {{"name", name}, {"from", from}})));

  std::string path = LogFile(t.id);
  std::ofstream(path, std::ios::trunc).close();
  std::lock_guard lock(mu_);
  if (!builds_) {
    return Status::Unavailable("SHUTTING_DOWN", "the server is stopping", "retry in a moment");
  }
  builds_->Submit([this, t, parent_dir, steps, env, path]() mutable {
    BuildLog log(path);
    auto sink = [&log](std::string_view line) { log(line); };
    Status s;
    if (parent_dir == "debian" && !deps_.runtime->HasTemplate("debian")) {
      log("building template debian first");
      s = deps_.runtime->BuildDebian(sink);
    }
    if (s.ok()) {
      s = deps_.runtime->BuildTemplate(t.id, parent_dir, steps, env, sink);
    }
    t.status = s.ok() ? "ready" : "failed";
    t.error = s.ok() ? "" : s.message();
    t.built_ms = deps_.clock.NowMs();
    Status saved = deps_.store.UpdateTemplate(t);
    if (!saved.ok()) {
      log::Warn("cannot record a template build",
                {{"template", t.id}, {"error", saved.ToString()}});
    }
  });
  return CustomJson(t);
}

json::object TemplateBuilder::BuiltinJson(const std::string& name) {
  bool built = deps_.runtime != nullptr && deps_.runtime->HasTemplate(name);
  std::string status = built ? "ready" : "not_built";
  std::string error;
  if (name == "debian" && !built) {
    std::lock_guard lock(mu_);
    if (debian_building_) {
      status = "building";
    } else if (!debian_error_.empty()) {
      status = "failed";
      error = debian_error_;
    }
  }
  json::object o{
      {"name", name},      {"description", name == "base" ? kBaseDescription : kDebianDescription},
      {"base", nullptr},   {"builtin", true},
      {"status", status},  {"size", nullptr},
      {"builtAt", nullptr}};
  if (!error.empty()) {
    o["error"] = error;
  }
  if (built) {
    for (const runtime::TemplateInfo& info : deps_.runtime->Templates()) {
      if (info.name == name) {
        o["size"] = info.size_bytes;
        o["builtAt"] = FormatTime(info.built_ms);
      }
    }
  }
  return o;
}

json::object TemplateBuilder::CustomJson(const store::Template& t) {
  json::array steps;
  if (auto parsed = ParseJson(t.steps); parsed.ok() && parsed->is_array()) {
    steps = std::move(parsed->as_array());
  }
  json::object o{
      {"name", t.name},
      {"description", nullptr},
      {"base", t.parent},
      {"builtin", false},
      {"status", t.status},
      {"steps", std::move(steps)},
      {"poolSize", t.pool_size},
      {"size", nullptr},
      {"createdAt", FormatTime(t.created_ms)},
      {"builtAt", t.built_ms == 0 ? json::value(nullptr) : json::value(FormatTime(t.built_ms))}};
  if (!t.error.empty()) {
    o["error"] = t.error;
  }
  if (t.status == "ready" && deps_.runtime != nullptr) {
    for (const runtime::TemplateInfo& info : deps_.runtime->Templates()) {
      if (info.name == t.id) {
        o["size"] = info.size_bytes;
      }
    }
  }
  return o;
}

json::array TemplateBuilder::List(const std::string& workspace_id) {
  json::array out{BuiltinJson("base"), BuiltinJson("debian")};
  auto custom = deps_.store.ListTemplates(workspace_id);
  if (custom.ok()) {
    for (const auto& t : *custom) {
      out.push_back(CustomJson(t));
    }
  }
  return out;
}

Result<json::object> TemplateBuilder::Get(const std::string& workspace_id,
                                          const std::string& name) {
  if (name == "base" || name == "debian") {
    return BuiltinJson(name);
  }
  KILN_ASSIGN_OR_RETURN(store::Template t, deps_.store.GetTemplate(workspace_id, name));
  return CustomJson(t);
}

Status TemplateBuilder::Delete(const auth::Principal& principal, const std::string& name) {
  if (name == "base" || name == "debian") {
    return Status::Conflict("TEMPLATE_BUILTIN", "\"" + name + "\" is a built-in template",
                            "built-in templates cannot be deleted");
  }
  KILN_ASSIGN_OR_RETURN(store::Template t, deps_.store.GetTemplate(principal.workspace.id, name));
  if (t.status == "building") {
    return Status::Conflict("TEMPLATE_BUILDING", "template \"" + name + "\" is still being built",
                            "delete it once the build has ended");
  }
  auto custom = deps_.store.ListTemplates(principal.workspace.id);
  if (custom.ok()) {
    for (const auto& other : *custom) {
      if (other.parent == name) {
        return Status::Conflict("TEMPLATE_IN_USE",
                                "template \"" + other.name + "\" is built on \"" + name + "\"",
                                "delete \"" + other.name + "\" first");
      }
    }
  }
  auto live = deps_.store.ListLiveSandboxes();
  if (live.ok()) {
    for (const auto& s : *live) {
      if (s.workspace_id == principal.workspace.id && s.template_name == name) {
        return Status::Conflict("TEMPLATE_IN_USE",
                                "sandbox " + s.id + " uses template \"" + name + "\"",
                                "kill the sandboxes that use it first");
      }
    }
  }
  if (t.status == "ready" && deps_.runtime != nullptr) {
    if (before_remove_) {
      before_remove_(t.id);
    }
    KILN_RETURN_IF_ERROR(deps_.runtime->RemoveTemplate(t.id));
  }
  KILN_RETURN_IF_ERROR(
      deps_.store.DeleteTemplate(principal.workspace.id, name,
                                 MakeEvent(deps_, principal.workspace.id, "template.deleted",
                                           principal.key_id, t.id, {{"name", name}})));
  std::error_code ec;
  fs::remove(LogFile(t.id), ec);
  return Status::Ok();
}

Result<std::string> TemplateBuilder::LogPath(const std::string& workspace_id,
                                             const std::string& name, bool* building) {
  if (name == "base") {
    return Status::NotFound("NO_BUILD_LOG", "template base is not built, so it has no build log",
                            "base is made at start-up from the host's /usr");
  }
  if (name == "debian") {
    std::lock_guard lock(mu_);
    *building = debian_building_;
    std::string path = LogFile("debian");
    if (!fs::exists(path)) {
      return Status::NotFound("NO_BUILD_LOG", "template debian has not been built yet",
                              "create a sandbox from it to start its build");
    }
    return path;
  }
  KILN_ASSIGN_OR_RETURN(store::Template t, deps_.store.GetTemplate(workspace_id, name));
  *building = t.status == "building";
  return LogFile(t.id);
}

}  // namespace kiln::service
