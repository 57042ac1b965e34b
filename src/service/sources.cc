#include "service/sources.h"

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <sstream>
#include <utility>

#include "core/json.h"
#include "service/sources_internal.h"

namespace kiln::service {

// ---------------------------------------------------------------------------------------------
// Helpers shared with sources_archive.cc and sources_git.cc (sources_internal.h)

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

bool IsHex(std::string_view s, size_t min_len, size_t max_len) {
  return s.size() >= min_len && s.size() <= max_len &&
         std::all_of(s.begin(), s.end(), [](unsigned char c) { return std::isxdigit(c); });
}

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

namespace {

namespace fs = std::filesystem;

bool IsRegularFile(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(fs::symlink_status(p, ec));
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
