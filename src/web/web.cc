#include "web/web.h"

#include <fcntl.h>
#include <unistd.h>

#include <array>
#include <utility>

#include "web/files.h"

namespace kiln::web {
namespace {

using internal::OpenFile;

constexpr std::string_view kCsp =
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

// Vite names what it builds into assets/ after a hash of the content: such a file never
// changes, only its name does.
constexpr std::string_view kImmutable = "public, max-age=31536000, immutable";

constexpr std::array<std::pair<std::string_view, std::string_view>, 17> kTypes{{
    {"html", "text/html; charset=utf-8"},
    {"js", "text/javascript; charset=utf-8"},
    {"mjs", "text/javascript; charset=utf-8"},
    {"css", "text/css; charset=utf-8"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"webp", "image/webp"},
    {"gif", "image/gif"},
    {"ico", "image/x-icon"},
    {"json", "application/json"},
    {"webmanifest", "application/manifest+json"},
    {"woff2", "font/woff2"},
    {"woff", "font/woff"},
    {"wasm", "application/wasm"},
    {"map", "application/json"},
    {"txt", "text/plain; charset=utf-8"},
}};

// The extension of the last segment ("js" for "assets/app-1a2b.js"), empty when it has none.
std::string_view Extension(std::string_view relative) {
  size_t slash = relative.rfind('/');
  std::string_view name = slash == std::string_view::npos ? relative : relative.substr(slash + 1);
  size_t dot = name.rfind('.');
  return dot == std::string_view::npos ? std::string_view() : name.substr(dot + 1);
}

std::string_view ContentType(std::string_view ext) {
  for (const auto& [e, type] : kTypes) {
    if (e == ext) {
      return type;
    }
  }
  return "application/octet-stream";
}

// Whether If-None-Match (a list of entity tags, or "*") names `etag`. Comparison is weak
// (RFC 9110 §13.1.2): W/"x" matches "x".
bool Matches(std::string_view if_none_match, std::string_view etag) {
  while (!if_none_match.empty()) {
    size_t comma = if_none_match.find(',');
    std::string_view tag = if_none_match.substr(0, comma);
    if_none_match =
        comma == std::string_view::npos ? std::string_view() : if_none_match.substr(comma + 1);
    while (!tag.empty() && (tag.front() == ' ' || tag.front() == '\t')) {
      tag.remove_prefix(1);
    }
    while (!tag.empty() && (tag.back() == ' ' || tag.back() == '\t')) {
      tag.remove_suffix(1);
    }
    if (tag.starts_with("W/")) {
      tag.remove_prefix(2);
    }
    if (tag == "*" || tag == etag) {
      return true;
    }
  }
  return false;
}

// A page of the server's own (an error, the not-built notice): no inline style or script,
// which the Content-Security-Policy would refuse anyway.
// `text` is HTML, written by us: no client input goes into it.
void Page(http::Response& res, int status, std::string_view title, std::string_view text) {
  res.status = status;
  res.body = "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>";
  res.body += title;
  res.body += " - Kiln</title></head>\n<body><h1>";
  res.body += title;
  res.body += "</h1><p>";
  res.body += text;
  res.body += "</p></body></html>\n";
  res.Set("Content-Type", "text/html; charset=utf-8");
  res.Set("Cache-Control", "no-store");
}

}  // namespace

struct Dashboard::Impl {
  std::string dir;

  // The file itself, or index.html for an in-app route.
  void Serve(const http::Request& req, http::Response& res) const;
};

Dashboard::Dashboard(std::string dir) : impl_(std::make_unique<Impl>()) {
  impl_->dir = std::move(dir);
  // Said once here rather than to clients: the page does not reveal the server's paths.
  if (access((impl_->dir + "/index.html").c_str(), R_OK) != 0) {
    log::Warn("the dashboard is not built: run `make`",
              {{"dir", impl_->dir}, {"missing", "index.html"}});
  }
}

Dashboard::~Dashboard() = default;

bool Dashboard::Claims(const http::Request& req) const {
  if (req.method != "GET" && req.method != "HEAD") {
    return false;
  }
  // The page's own routes (web/src/main.ts), its assets, and files at its top (index.html,
  // favicon.svg). Anything else stays the API's, so an unknown path on any Host, a custom
  // domain detached from its app say, is still a JSON 404 rather than the sign-in page.
  std::string_view p = req.path;
  if (p == "/") {
    return true;
  }
  std::string_view first = p.substr(
      1, p.find('/', 1) == std::string_view::npos ? std::string_view::npos : p.find('/', 1) - 1);
  for (std::string_view route : {"apps", "sandboxes", "templates", "keys", "activity", "assets"}) {
    if (first == route) {
      return true;
    }
  }
  return first.size() + 1 == p.size() && first.find('.') != std::string_view::npos &&
         first != "." && first != "..";
}

void Dashboard::Handle(const http::Request& req, http::Response& res) const {
  impl_->Serve(req, res);
  // On every answer, error pages included: the dashboard's pages run only its own scripts
  // and styles, and no other site may frame them.
  res.Set("Content-Security-Policy", std::string(kCsp));
  res.Set("X-Content-Type-Options", "nosniff");
  res.Set("Referrer-Policy", "no-referrer");
  res.Set("X-Frame-Options", "DENY");
}

void Dashboard::Impl::Serve(const http::Request& req, http::Response& res) const {
  std::string relative;
  if (!internal::RelativePath(req.path, &relative)) {
    Page(res, 400, "Bad path", "This path cannot name a file of the dashboard.");
    return;
  }
  // Opened per request, so a rebuild that replaces the directory is served at once.
  struct Root {
    int fd;
    ~Root() {
      if (fd >= 0) {
        close(fd);
      }
    }
  } root{open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC)};
  if (root.fd < 0 && errno != ENOENT && errno != ENOTDIR) {
    log::Warn("cannot open the dashboard directory",
              {{"dir", dir}, {"error", Status::FromErrno("open", errno).message()}});
  }
  auto open_below = [&](const std::string& rel) -> Result<OpenFile> {
    if (root.fd < 0) {
      return Status::NotFound("NOT_A_FILE", "no dashboard directory");
    }
    return internal::OpenBelow(root.fd, rel);
  };

  // A trailing slash names a directory, never a file: an in-app route whatever its name.
  std::string_view ext = req.path.ends_with('/') ? std::string_view() : Extension(relative);
  bool asset = relative.starts_with("assets/");
  Result<OpenFile> file = open_below(relative);
  if (!file.ok() && file.status().Is(Code::kNotFound) && ext.empty()) {
    // "/" or an in-app route (/apps/shop): the page's own router takes it from there.
    file = open_below("index.html");
    ext = "html";
    asset = false;
    if (!file.ok() && file.status().Is(Code::kNotFound)) {
      Page(res, 503, "Dashboard not built",
           "The dashboard's files are missing on this server. Run <code>make</code> to build "
           "them (or point server.dashboard_dir at them) and reload. The API answers under /v1/ "
           "meanwhile.");
      return;
    }
  }
  if (!file.ok()) {
    if (file.status().Is(Code::kNotFound)) {
      Page(res, 404, "Not found", "No such file in the dashboard.");
      return;
    }
    log::Error("dashboard file not served",
               {{"path", req.path}, {"error", file.status().ToString()}});
    Page(res, 500, "Server error", "This file of the dashboard could not be read.");
    return;
  }

  std::string etag = file->ETag();
  res.Set("Content-Type", std::string(ContentType(ext)));
  // index.html names the current hashed assets: it must be revalidated on every load.
  res.Set("Cache-Control", std::string(asset ? kImmutable : "no-cache"));
  res.Set("ETag", etag);
  if (Matches(req.Header("if-none-match"), etag)) {
    res.status = 304;
    return;
  }
  // Read for HEAD too: the answer's Content-Length is the body's size.
  Result<std::string> body = file->Read();
  if (!body.ok()) {
    log::Error("dashboard file not served",
               {{"path", req.path}, {"error", body.status().ToString()}});
    res.headers.clear();
    Page(res, 500, "Server error", "This file of the dashboard could not be read.");
    return;
  }
  res.status = 200;
  res.body = std::move(*body);
}

}  // namespace kiln::web
