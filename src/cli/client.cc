// The CLI's side of the API: where the URL and key come from, and one call with its envelope.
#include <sys/stat.h>

#include <toml++/toml.h>
#include <cstdlib>
#include <filesystem>
#include <sstream>

#include "cli/internal.h"
#include "http/http.h"

namespace kiln::cli {

std::string ProfilePath() {
  const char* xdg = std::getenv("XDG_CONFIG_HOME");
  std::string base;
  if (xdg != nullptr && *xdg != '\0') {
    base = xdg;
  } else {
    const char* home = std::getenv("HOME");
    base = std::string(home != nullptr ? home : ".") + "/.config";
  }
  return base + "/kiln/config.toml";
}

Profile LoadProfile() {
  Profile p;
  std::string path = ProfilePath();
  if (std::filesystem::exists(path)) {
#if TOML_EXCEPTIONS
    try {
      toml::table t = toml::parse_file(path);
      p.url = t["url"].value_or(std::string());
      p.api_key = t["api_key"].value_or(std::string());
    } catch (const toml::parse_error&) {
      // A damaged profile acts as no profile; `kiln login` rewrites it.
    }
#else
    toml::parse_result r = toml::parse_file(path);
    if (r) {
      p.url = r.table()["url"].value_or(std::string());
      p.api_key = r.table()["api_key"].value_or(std::string());
    }
#endif
  }
  if (const char* url = std::getenv("KILN_URL"); url != nullptr && *url != '\0') {
    p.url = url;
  }
  if (const char* key = std::getenv("KILN_API_KEY"); key != nullptr && *key != '\0') {
    p.api_key = key;
  }
  if (p.url.empty()) {
    p.url = "http://127.0.0.1:8080";
  }
  while (!p.url.empty() && p.url.back() == '/') {
    p.url.pop_back();
  }
  return p;
}

Status SaveProfile(const Profile& profile) {
  std::filesystem::path path = ProfilePath();
  std::error_code ec;
  std::filesystem::create_directories(path.parent_path(), ec);
  if (ec) {
    return Status::FromErrno("mkdir(\"" + path.parent_path().string() + "\")", ec.value());
  }
  ::chmod(path.parent_path().c_str(), 0700);
  toml::table t{{"url", profile.url}, {"api_key", profile.api_key}};
  std::ostringstream text;
  text << "# written by `kiln login`; holds an API key, keep it private\n" << t << "\n";
  return crypto::WriteFileAtomic(path, text.str(), 0600);
}

namespace {

// The server's error envelope as a Status (the CLI prints its code, message and hint).
Status ErrorFrom(const http::ClientResponse& res, const std::string& url) {
  auto parsed = ParseJson(res.body);
  std::string code = "HTTP_" + std::to_string(res.status), message, hint;
  if (parsed.ok() && parsed->is_object()) {
    if (auto e = parsed->as_object().find("error");
        e != parsed->as_object().end() && e->value().is_object()) {
      const json::object& err = e->value().as_object();
      code = GetString(err, "code", code);
      message = GetString(err, "message");
      hint = GetString(err, "hint");
    }
  } else {
    message = "the server at " + url + " answered HTTP " + std::to_string(res.status) +
              " without a Kiln JSON body";
    hint = "check that KILN_URL points at a kiln server";
  }
  return Status(res.status == 401 ? Code::kUnauthenticated : Code::kInvalidArgument, code,
                message.empty() ? "HTTP " + std::to_string(res.status) : message, hint);
}

}  // namespace

Result<http::ClientResponse> Send(const Profile& profile, const ApiCall& call) {
  if (profile.api_key.empty()) {
    return Status(Code::kUnauthenticated, "NOT_LOGGED_IN", "no API key configured",
                  "run `kiln login` or set KILN_API_KEY");
  }
  http::ClientRequest req;
  req.method = call.method;
  req.url = profile.url + call.path;
  req.timeout = call.timeout;
  req.headers.emplace_back("authorization", "Bearer " + profile.api_key);
  req.headers.emplace_back("accept", call.accept);
  if (!call.body.empty() || call.method == "PUT" || call.method == "POST") {
    req.body = call.body;
    req.headers.emplace_back("content-type", call.content_type);
  }
  std::string pending;  // SSE text not yet split into events
  bool stopped = false;
  if (call.on_event) {
    req.on_body = [&](std::string_view piece) {
      pending.append(piece);
      size_t end;
      while ((end = pending.find("\n\n")) != std::string::npos) {
        std::string block = pending.substr(0, end);
        pending.erase(0, end + 2);
        std::string event = "message", data;
        size_t pos = 0;
        while (pos < block.size()) {
          size_t nl = block.find('\n', pos);
          std::string line =
              block.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
          pos = nl == std::string::npos ? block.size() : nl + 1;
          if (line.starts_with("event: ")) {
            event = line.substr(7);
          } else if (line.starts_with("data: ")) {
            data += line.substr(6);
          }
        }
        auto parsed = ParseJson(data);
        if (parsed.ok() && !call.on_event(event, *parsed)) {
          stopped = true;
          return false;
        }
      }
      return true;
    };
  }
  KILN_ASSIGN_OR_RETURN(http::ClientResponse res, http::Fetch(req));
  if (res.status >= 400) {
    return ErrorFrom(res, profile.url);
  }
  (void)stopped;
  return res;
}

Result<json::value> CallApi(const Profile& profile, const std::string& method,
                            const std::string& path, const json::value* body, int* http_status) {
  ApiCall call;
  call.method = method;
  call.path = path;
  if (body != nullptr) {
    call.body = json::serialize(*body);
  }
  auto res = Send(profile, call);
  if (!res.ok()) {
    return res.status();
  }
  if (http_status != nullptr) {
    *http_status = res->status;
  }
  auto parsed = ParseJson(res->body);
  if (!parsed.ok() || !parsed->is_object()) {
    return Status::Unavailable("BAD_RESPONSE",
                               "the server at " + profile.url + " answered HTTP " +
                                   std::to_string(res->status) + " without a Kiln JSON body",
                               "check that KILN_URL points at a kiln server");
  }
  json::object& o = parsed->as_object();
  if (o.contains("has_more")) {
    return std::move(*parsed);
  }
  if (auto d = o.find("data"); d != o.end()) {
    return std::move(d->value());
  }
  return std::move(*parsed);
}

std::string AppPath(const std::string& app) { return "/v1/apps/" + http::PercentEncode(app); }

Status StreamError(const json::value& event) {
  const json::value& e = At(event, "error");
  return Status::InvalidArgument(S(e, "code"), S(e, "message"),
                                 e.is_object() ? GetString(e.as_object(), "hint") : "");
}

}  // namespace kiln::cli
