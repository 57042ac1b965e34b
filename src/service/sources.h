#pragma once
// Module-private: where a deployment's code comes from, and how it is built and started
// (DESIGN.md §4). Sources are materialized into a fresh directory on the host: an uploaded
// tar.gz, files sent inline in the request (written as a tar), the URL of a tar.gz, a git
// repository at a ref, or a starter from examples/. Nothing here runs user code; the build
// itself runs in an instance (service/deployer).
//
// Every function is blocking and thread-safe. Errors carry their own codes so a failed
// deployment can say exactly what was wrong with its source:
//   ARCHIVE_INVALID (not a gzip'd tar), ARCHIVE_UNSAFE (an entry with `..`, an absolute path,
//   a link leading out, a device node), ARCHIVE_TOO_MANY_ENTRIES           InvalidArgument
//   ARCHIVE_TOO_LARGE (more than max_bytes unpacked or downloaded)         PayloadTooLarge
//   SOURCE_URL_INVALID (not http/https; a git repository that is an option
//   or a remote helper such as ext::)                                      InvalidArgument
//   SOURCE_FETCH_FAILED (connect, HTTP status, timeout)                    Unprocessable
//   GIT_REPO_NOT_FOUND, GIT_REF_NOT_FOUND                                  NotFound
//   GIT_FAILED (anything else git said, or a timeout)                      Unprocessable
//   TEMPLATE_NOT_FOUND (no such starter in examples/)                      NotFound
//   SOURCE_EMPTY (nothing to deploy), PACKAGE_JSON_INVALID, START_UNKNOWN  InvalidArgument
// Messages quote names from the source (entries, refs) as valid UTF-8; URLs are shown without
// credentials or query string.

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
// exist). Regular files, directories, hard links to files of the archive and relative symlinks
// whose target stays inside `dest` are kept; a symlink target may only climb with leading
// `..` ("../lib/x", not "a/../.."), so no chain of links can lead out. Nothing is ever
// written through a symlink: an entry whose parent is a symlink is ARCHIVE_UNSAFE. Modes are
// kept without setuid/setgid/sticky (directories keep rwx for the owner); owners are not.
// Sizes and entry counts are checked while reading, from each header before its data, so a
// bomb is stopped before it is unpacked. When every entry sits under one top-level directory
// (GitHub tarballs: "repo-main/…"), that directory's contents become `dest`, unless the
// archive names its root ("./", as `tar czf app.tgz -C DIR .` does). An archive without files
// is SOURCE_EMPTY. On any error `dest` is removed again.
Status ExtractArchive(const std::string& archive_path, const std::string& dest,
                      const ExtractLimits& limits);

// Downloads `url` (http or https, at most 5 redirects to http or https, at most `max_bytes`,
// `timeout_ms` in all) into the file `dest_file`, which is removed again on error. An HTTP
// status >= 400 is SOURCE_FETCH_FAILED naming it; a body over `max_bytes` is
// ARCHIVE_TOO_LARGE, stopped as soon as it is known (Content-Length or count).
Status FetchUrl(const std::string& url, const std::string& dest_file, int64_t max_bytes,
                int64_t timeout_ms, const SourceLog& log);

// Clones `repo` (a local path, which must exist, or an http(s)/ssh/git/file URL) at `ref`
// (branch, tag or commit; empty: the default branch) into `dest` (created), without its .git
// directory. `commit` receives the commit id checked out. Branches, tags and full commit ids
// are fetched shallow; an abbreviated commit id needs the whole history. Runs git with a clean
// environment (no system or user config, HOME a fresh temporary directory), no prompts
// (GIT_TERMINAL_PROMPT=0, ssh in batch mode), only those transports, and `timeout_ms` for all
// its steps. On error `dest` is removed again.
Status GitCheckout(const std::string& repo, const std::string& ref, const std::string& dest,
                   int64_t timeout_ms, std::string* commit, const SourceLog& log);

// Copies starter `name` from `examples_dir` (a directory per starter) into `dest` (created):
// regular files with their modes, directories, and symlinks that stay inside the starter
// (others are skipped). Names are [a-z0-9-]+; any other name, or one with no directory, is
// TEMPLATE_NOT_FOUND with a hint listing the starters.
Status CopyStarter(const std::string& examples_dir, const std::string& name,
                   const std::string& dest);
// Starters shipped in `examples_dir`, sorted.
std::vector<std::string> ListStarters(const std::string& examples_dir);

// A file of an app sent inline in a deployment request (apps.deploy `files`), for clients
// without a filesystem to pack: an AI agent over MCP or REST.
struct InlineFile {
  std::string path;         // relative to the app's root, '/'-separated: "src/app.js"
  std::string content;      // as sent: the text itself, or base64 of the bytes when `base64`
  bool base64 = false;      // content is standard base64 (padding optional, line breaks ignored)
  bool executable = false;  // mode 0755 instead of 0644
};
inline constexpr size_t kMaxInlineFiles = 1000;
inline constexpr size_t kMaxInlinePathBytes = 255;

// Checks inline files before anything touches disk, and decodes their contents in place
// (afterwards every `content` holds the file's bytes and `base64` is false). Answers the total
// number of bytes. Errors (messages name the file as files[INDEX] "PATH"):
//   FILES_PATH_INVALID: empty, absolute ("/x"), longer than kMaxInlinePathBytes, an empty,
//     "." or ".." segment ("a//b", "a/", "./a", "../a"), a NUL, backslash or control
//     character, or a path that is also the directory of another ("a" and "a/b")  InvalidArgument
//   FILES_DUPLICATE_PATH: the same path twice                                      InvalidArgument
//   FILES_ENCODING_INVALID: content that is not base64                             InvalidArgument
//   FILES_TOO_MANY: more than kMaxInlineFiles files; SOURCE_EMPTY: none            InvalidArgument
//   ARCHIVE_TOO_LARGE: more than `max_bytes` decoded in all                        PayloadTooLarge
// Pure and thread-safe.
Result<int64_t> PrepareInlineFiles(std::vector<InlineFile>& files, int64_t max_bytes);

// Writes prepared inline files (PrepareInlineFiles) as an uncompressed tar archive to the new
// file `dest` (created 0600; must not exist), for ExtractArchive to unpack like an upload:
// the archive's root "./" first, so the paths are kept as given, then each file with mode
// 0644 or 0755 (directories are made by the extractor). Answers the archive's size. On error
// `dest` is removed again (DISK_FULL for ENOSPC/EDQUOT, Internal otherwise).
Result<int64_t> WriteFilesArchive(const std::vector<InlineFile>& files, const std::string& dest);

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
//   app.py or main.py, without index.html
//                                -> python with nothing to install (standard library only);
//                                   start = "python3 <app.py|main.py>"
//   index.html (and nothing above) -> static; start serves the directory on $PORT
//                                   ("python3 -m http.server $PORT --bind 127.0.0.1")
// With a Procfile, the install and build of the language found beside it still run. When
// package.json has scripts.build, install includes the devDependencies ("npm install", or
// "npm ci" with a lock file), which builds usually need. origin["runtime"] names the file the
// runtime was detected from. Files are read only when they are regular files (no symlinks).
// Then applies `overrides`: "" for install, build or pre_start means none; an empty start is
// ignored. Errors (InvalidArgument): SOURCE_EMPTY (an empty directory), PACKAGE_JSON_INVALID,
// START_UNKNOWN (no start command detected and no start override), with a hint naming the
// files it looked for and the `start` override.
Result<BuildPlan> DetectPlan(const std::string& dir, const PlanOverrides& overrides);

// Environment for the app's process, whose code is at /app in its instance: python (or an
// install into .kiln/python) gets PYTHONPATH=/app/.kiln/python and PYTHONUNBUFFERED=1; node
// (or a Procfile app with a package.json) NODE_ENV=production. "K=V" entries to add before the
// app's own env.
std::vector<std::string> RuntimeEnv(const BuildPlan& plan);

// A multipart/form-data body split into its parts (RFC 7578). `content_type` is the request's
// Content-Type header (its boundary parameter, quoted or not, is used). Lines end in CRLF; a
// preamble and an epilogue are ignored; every part needs a Content-Disposition: form-data with
// a name. At most 1000 parts, 16 KiB of headers each. Errors: InvalidArgument
// MULTIPART_INVALID with what was wrong.
struct FormPart {
  std::string name;
  std::string filename;      // "" when the part is not a file; as sent: never use it as a path
  std::string content_type;  // "" when not given
  std::string_view data;     // points into the body passed in
};
Result<std::vector<FormPart>> ParseMultipart(std::string_view content_type, std::string_view body);

// Total size of the regular files under `dir` (no symlinks followed).
int64_t DirectorySize(const std::string& dir);

}  // namespace kiln::service
