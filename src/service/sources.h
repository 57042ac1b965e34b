#pragma once
// Module-private: where a deployment's code comes from, and how it is built and started
// (DESIGN.md §4). Sources are materialized into a fresh directory on the host: an uploaded
// tar.gz, the URL of one, a git repository at a ref, or a starter from examples/. Nothing
// here runs user code; the build itself runs in an instance (service/deployer).
//
// Every function is blocking and thread-safe. Errors carry their own codes so a failed
// deployment can say exactly what was wrong with its source:
//   ARCHIVE_INVALID (not a gzip'd tar), ARCHIVE_UNSAFE (an entry with `..`, an absolute path,
//   a link leading out, a device node), ARCHIVE_TOO_LARGE (more than max_bytes unpacked),
//   ARCHIVE_TOO_MANY_ENTRIES                                          InvalidArgument / 413
//   SOURCE_URL_INVALID (not http/https), SOURCE_FETCH_FAILED (connect, HTTP status, timeout)
//   GIT_REPO_NOT_FOUND, GIT_REF_NOT_FOUND, GIT_FAILED (anything else git said)
//   TEMPLATE_NOT_FOUND (no such starter in examples/)
//   SOURCE_EMPTY (nothing to deploy)

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace kiln::service {

struct ExtractLimits {
  int64_t max_bytes = int64_t{1} << 30;  // total unpacked size of regular files
  int64_t max_entries = 100'000;
};

// Progress lines for the deployment log ("fetching https://…", "cloned abc123").
using SourceLog = std::function<void(std::string_view line)>;

// Unpacks a gzip'd (or plain) tar archive held in a file into `dest` (created; must not
// exist). Regular files, directories and symlinks whose target stays inside `dest` are kept;
// modes are kept without setuid/setgid/sticky; owners are not. When every entry sits under
// one top-level directory (GitHub tarballs: "repo-main/…"), that directory's contents become
// `dest`. On any error `dest` is removed again.
Status ExtractArchive(const std::string& archive_path, const std::string& dest,
                      const ExtractLimits& limits);

// Downloads `url` (http or https, redirects followed, at most `max_bytes`, `timeout_ms` in
// all) into the file `dest_file`.
Status FetchUrl(const std::string& url, const std::string& dest_file, int64_t max_bytes,
                int64_t timeout_ms, const SourceLog& log);

// Clones `repo` (a local path or any URL git can clone) at `ref` (branch, tag or commit;
// empty: the default branch) into `dest` (created), without its .git directory. `commit`
// receives the commit id checked out. Runs git with a clean environment, no prompts
// (GIT_TERMINAL_PROMPT=0) and `timeout_ms`.
Status GitCheckout(const std::string& repo, const std::string& ref, const std::string& dest,
                   int64_t timeout_ms, std::string* commit, const SourceLog& log);

// Copies starter `name` from `examples_dir` (a directory per starter) into `dest` (created).
// Names are [a-z0-9-]+.
Status CopyStarter(const std::string& examples_dir, const std::string& name,
                   const std::string& dest);
// Starters shipped in `examples_dir`, sorted.
std::vector<std::string> ListStarters(const std::string& examples_dir);

// How a release is built and started. Detected from the files, then each field the
// deployment sets overrides it.
struct BuildPlan {
  std::string runtime;    // node | python | static | go | procfile | custom
  std::string install;    // shell command run in /app during the build; "" = none
  std::string build;      // shell command run after install; "" = none
  std::string pre_start;  // shell command run before start on every start; "" = none
  std::string start;      // shell command of the app's process (exec'd by /bin/sh -c)
  int64_t port = 0;       // 0: the app's configured port
  // Where the command (install/build/start) came from, for the deployment log:
  // "package.json scripts.start", "Procfile web", "override", ...
  std::map<std::string, std::string> origin;
};

struct PlanOverrides {
  std::optional<std::string> install, build, pre_start, start;
  std::optional<int64_t> port;
};

// Detects the runtime of the code in `dir`:
//   Procfile with a `web:` line  -> procfile; start = that line
//   package.json                 -> node; install = "npm install --omit=dev" only when it
//                                   declares dependencies (npm ci with a lock file); build =
//                                   "npm run build" when scripts.build exists; start =
//                                   "npm start" when scripts.start exists, else
//                                   "node <main|server.js|index.js|app.js>"
//   requirements.txt/pyproject   -> python; install = "pip install --target .kiln/python -r
//                                   requirements.txt" (or "pip install --target .kiln/python
//                                   ."); start = "python3 <app.py|main.py|server.py>"
//   go.mod                       -> go; build = "go build -o .kiln/app ."; start =
//                                   ".kiln/app"
//   index.html (and nothing above) -> static; start serves the directory on $PORT
//                                   ("python3 -m http.server $PORT --bind 127.0.0.1")
// Then applies `overrides`. Errors: InvalidArgument START_UNKNOWN (nothing detected and no
// start override), with a hint naming the files it looked for and the `start` override.
Result<BuildPlan> DetectPlan(const std::string& dir, const PlanOverrides& overrides);

// Environment for the app's process: Python's dependencies installed under .kiln/python are
// found through PYTHONPATH, and so on. "K=V" entries to add before the app's own env.
std::vector<std::string> RuntimeEnv(const BuildPlan& plan);

// A multipart/form-data body split into its parts (RFC 7578). `content_type` is the request's
// Content-Type header (its boundary parameter is used). Errors: InvalidArgument
// MULTIPART_INVALID with what was wrong.
struct FormPart {
  std::string name;
  std::string filename;      // "" when the part is not a file
  std::string content_type;  // "" when not given
  std::string_view data;     // points into the body passed in
};
Result<std::vector<FormPart>> ParseMultipart(std::string_view content_type, std::string_view body);

// Total size of the regular files under `dir` (no symlinks followed).
int64_t DirectorySize(const std::string& dir);

}  // namespace kiln::service
