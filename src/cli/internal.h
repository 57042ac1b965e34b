#pragma once
// Module-private pieces of the CLI: the API client, profile storage and output helpers.

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/core.h"
#include "core/json.h"
#include "http/http.h"

namespace CLI {
class App;
}

namespace kiln::cli {

// The command groups beyond cli.cc (sandbox_cli.cc, app_cli.cc). `json_flag` and `code`
// belong to Main and outlive parsing; the commands read --json and set the exit code through
// them.
void AddSandboxCommands(CLI::App& app, const bool& json_flag, int& code);
void AddTemplateCommands(CLI::App& app, const bool& json_flag, int& code);
// apps, deploy, logs, exec, env, rollback, open, deployments, in that order for `kiln --help`;
// deploy, rollback and deployments come from deploy_cli.cc.
void AddAppCommands(CLI::App& app, const bool& json_flag, int& code);
// deploy_cli.cc: `kiln deploy`, `kiln rollback` and `kiln deployments …`, each added where
// AddAppCommands lists it.
void AddDeployCommand(CLI::App& app, const bool& json_flag, int& code);
void AddRollbackCommand(CLI::App& app, const bool& json_flag, int& code);
void AddDeploymentsCommands(CLI::App& app, const bool& json_flag, int& code);
// domain_cli.cc: `kiln domains list|set` and `kiln tls ca`.
void AddDomainCommands(CLI::App& app, const bool& json_flag, int& code);
// mcp_cli.cc: `kiln mcp` (the stdio bridge to /mcp) and `kiln mcp config`.
void AddMcpCommands(CLI::App& app, const bool& json_flag, int& code);

enum ExitCode { kOk = 0, kApiError = 1, kUsage = 2, kUnreachable = 3 };

struct Profile {
  std::string url;
  std::string api_key;
};
std::string ProfilePath();  // $XDG_CONFIG_HOME/kiln/config.toml or ~/.config/kiln/config.toml
// The saved profile with KILN_URL / KILN_API_KEY applied over it.
Profile LoadProfile();
Status SaveProfile(const Profile& profile);

// One API call with everything a command may need beyond JSON in, JSON out.
struct ApiCall {
  std::string method = "GET";
  std::string path;  // "/v1/sandboxes?limit=50"
  std::string body;
  std::string content_type = "application/json";
  std::string accept = "application/json";
  std::chrono::milliseconds timeout{30'000};
  // Server-Sent Events: each event's name and JSON data as it arrives; false stops reading.
  std::function<bool(const std::string& event, const json::value& data)> on_event;
};
// Sends `call` with the profile's key; an error status (>= 400) becomes a Status carrying the
// server's code, message and hint.
Result<http::ClientResponse> Send(const Profile& profile, const ApiCall& call);

// Calls the API and unwraps the envelope: `data` on success (or the whole list envelope
// when `list` is set), else a Status carrying the server's code, message and hint.
Result<json::value> CallApi(const Profile& profile, const std::string& method,
                            const std::string& path, const json::value* body = nullptr,
                            int* http_status = nullptr);

struct Output {
  bool json = false;
  bool color = false;  // stdout is a terminal and NO_COLOR is not set
};
Output DetectOutput(bool json_flag);
// Prints rows under a header, columns padded to width.
void PrintTable(const Output& out, const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows);
void PrintJson(const json::value& value);
// The usual shape of a command: on error, report it; with --json, print the data; else hand
// it to `print`. Answers the exit code.
int Run(const Output& out, const Result<json::value>& result,
        const std::function<void(const json::value&)>& print);
// Prints "error: message" and "hint: hint" to stderr; returns the exit code to use.
int ReportError(const Output& out, const Status& status);
std::string Bold(const Output& out, const std::string& text);
std::string Str(const json::value& v);  // strings unquoted, null as "-", others as JSON
std::string HumanBytes(int64_t bytes);  // "512 B", "1.5 KiB", "12.0 MiB"

// "K=V" pairs from repeated flags (`flag` names them in the message) into a JSON object; an
// item without '=' is InvalidArgument USAGE.
Result<json::object> Pairs(const std::vector<std::string>& items, const char* flag);

// POSTs a command to `target` + "/exec" ("/v1/sandboxes/sbx_…" or "/v1/apps/NAME") and
// streams its output to ours (with --json: prints the result instead). `words`: one word is a
// shell line, several an argv. Answers the command's exit code, or ours when the call failed.
int ExecCommand(const Output& out, const std::string& target, const std::vector<std::string>& words,
                const std::string& cwd, const std::vector<std::string>& env_pairs,
                int64_t timeout_ms);

// ---- shared by app_cli.cc and deploy_cli.cc ----

// Long enough for any build, and for `kiln logs -f` to run until it is interrupted.
inline constexpr std::chrono::milliseconds kFollowTimeout = std::chrono::hours(30 * 24);

// Field reads that tolerate a missing key or a non-object (null), so a field the server
// leaves out prints as "-" instead of failing the command.
const json::value& At(const json::value& v, std::string_view key);
std::string S(const json::value& v, std::string_view key);  // Str(At(v, key))
double Num(const json::value& v);                           // 0 when not a number
// 1 as "1", 0.5 as "0.5" (Str would print a double 1.0 as "1E0"); not a number as Str.
std::string NumStr(const json::value& v);
// "2026-11-24T04:31:04.123Z" as "2026-11-24 04:31:04" for tables.
std::string ShortTime(std::string t);
// The rows of a list answer (the list envelope) or of a bare array.
const json::array& Items(const json::value& v);
// An event's data, unwrapped should the server put it in the {"data": …} envelope.
const json::value& Unwrap(const json::value& v);
// The code, message and hint of a Server-Sent `error` event as a Status.
Status StreamError(const json::value& event);
// Prints `prefix` and `line` without its line ending, then flushes, so lines show as they come.
void PrintLogLine(const std::string& prefix, std::string line);
// Reports InvalidArgument USAGE with `message` and `hint`; answers kUsage.
int UsageError(const Output& out, const std::string& message, const std::string& hint);
std::string AppPath(const std::string& app);  // "/v1/apps/NAME", NAME percent-encoded

// A deployment's build log (deploy_cli.cc): printed step by step, or with `follow`, followed
// until the deployment ends; then answers 0 only when it went live.
int DeploymentLogs(const Output& out, const std::string& id, bool follow);

// ---- pack.cc: the source archive of `kiln deploy DIR` ----

// The rules of a tree's ignore files, with git's meaning: blank lines and `#` comments are
// skipped, `!` re-includes, a trailing `/` matches directories only, a pattern with a `/`
// before its end is anchored to the ignore file's directory (else it matches a name at any
// depth below it), `*` and `?` stay within one path segment, `**` spans directories. Rules
// added later win over earlier ones, so add a directory's files before its children's, and
// .gitignore before .kilnignore. Not thread-safe to Add while reading.
class IgnoreRules {
 public:
  // The rules of one ignore file in directory `base` ("" for the root, else "a/b").
  void Add(const std::string& base, std::string_view text);
  // Whether `path` ("a/b/c", relative to the root) is left out by a rule. Like git, a path
  // under an ignored directory is not asked about: the walk does not go there.
  bool Ignored(std::string_view path, bool is_dir) const;

 private:
  struct Rule {
    std::vector<std::string> base;      // the ignore file's directory, split
    std::vector<std::string> segments;  // the pattern, split at '/'; "**" first if unanchored
    bool negate = false;
    bool dir_only = false;
  };
  std::vector<Rule> rules_;
};

struct PackOptions {
  int64_t max_bytes = int64_t{100} << 20;  // most bytes of regular files packed
};
struct Pack {
  std::string archive;                // tar.gz, entries relative to the directory
  int64_t files = 0;                  // regular files in it
  int64_t bytes = 0;                  // their size before compression
  std::vector<std::string> warnings;  // what was left out besides ignored paths, and why
};
// Packs `dir`: "./" for the directory itself, then its regular files, directories and links
// that stay inside it, with permission bits (no setuid/setgid/sticky) and modification
// times, in name order. Always leaves out
// .git, and whatever each directory's .gitignore and then .kilnignore name for the paths
// below it. Links pointing outside `dir` and special files are left out with a warning.
// Errors (InvalidArgument): SOURCE_NOT_FOUND (not a directory), SOURCE_EMPTY (no file
// left), SOURCE_TOO_LARGE (more than max_bytes; the hint names the largest top-level
// entries), SOURCE_UNREADABLE (a file or directory that cannot be read).
Result<Pack> PackDirectory(const std::string& dir, const PackOptions& options = {});
// An app name from a directory's base name: lower case, runs of other characters as one
// '-', at most 40 characters, starting with a letter ("My App_2" -> "my-app-2"; "2048" ->
// "app-2048"); "app" when nothing is left.
std::string AppNameFromDir(const std::string& dir);

}  // namespace kiln::cli
