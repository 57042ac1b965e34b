#pragma once
// Module-private pieces of the CLI: the API client, profile storage and output helpers.

#include <chrono>
#include <functional>
#include <string>
#include <vector>

#include "core/core.h"
#include "core/json.h"
#include "http/http.h"

namespace CLI {
class App;
}

namespace kiln::cli {

// The command groups beyond cli.cc (sandbox_cli.cc). `json_flag` and `code` belong to Main
// and outlive parsing; the commands read --json and set the exit code through them.
void AddSandboxCommands(CLI::App& app, const bool& json_flag, int& code);
void AddTemplateCommands(CLI::App& app, const bool& json_flag, int& code);

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

}  // namespace kiln::cli
