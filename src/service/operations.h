#pragma once
// Module-private: the groups of operations, and the pieces their definitions share.

#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "service/service.h"

namespace kiln::service {

class SandboxManager;

void AddTenancyOperations(const Deps& deps, std::vector<Operation>& out);
void AddSandboxOperations(const Deps& deps, SandboxManager& sandboxes, std::vector<Operation>& out);
void AddTemplateOperations(const Deps& deps, SandboxManager& sandboxes,
                           std::vector<Operation>& out);

// What exec and file operations work on: a sandbox, or an app's running instance.
struct ExecTarget {
  std::string resource;  // "sandboxes": operation names and paths
  std::string noun;      // "sandbox"
  std::string a_noun;    // "a sandbox", for summaries
  std::string param;     // the path parameter and input field naming it: "id"
  std::string id_prop;   // its JSON Schema property text ("id": {...})
  std::string home;      // default cwd, and what relative paths start from: "/root"
  // The kiln-init client; `instance` (when not null) receives the instance id.
  std::function<Result<runtime::InitClient>(const std::string& workspace_id, const std::string& ref,
                                            std::string* instance)>
      client;
  // Limit events of an instance, to tell an OOM kill from another SIGKILL.
  std::function<std::optional<runtime::InstanceStats>(const std::string& instance)> limit_events;
};
void AddExecOperations(const Deps& deps, const ExecTarget& target, std::vector<Operation>& out);

class AppManager;
void AddAppOperations(const Deps& deps, AppManager& apps, std::vector<Operation>& out);
void AddDeployOperations(const Deps& deps, AppManager& apps, std::vector<Operation>& out);
void AddEnvOperations(const Deps& deps, AppManager& apps, std::vector<Operation>& out);

// The `app` path parameter of every app operation: an id or a name.
constexpr std::string_view kAppProp =
    R"js("app": {"type": "string", "minLength": 1, "maxLength": 100, "description": "the app's name or id (app_…)"})js";
// The input schema of an operation on one app: `app` plus the properties in `extra` (each
// ending with a comma), with `app` and `more_required` required.
std::string AppOnlyWith(const std::string& extra,
                        const std::vector<std::string>& more_required = {});
// Input checks with their own error codes (APP_NAME_INVALID, PORT_INVALID, ENV_KEY_INVALID).
Status CheckAppName(const std::string& name);
Status CheckPort(int64_t port);
Status CheckEnvKey(const std::string& key);
// "2026-11-24T10:00:00Z" (fractions and offsets allowed) as Unix milliseconds.
std::optional<int64_t> ParseTimeMs(std::string_view text);

// Parses a schema literal from an operation definition; a typo there is a bug, so it aborts.
json::object Schema(std::string_view text);

// Pagination input shared by every list: `limit` (1..200, default 50) and `cursor`.
constexpr std::string_view kPageProps =
    R"("limit": {"type": "integer", "minimum": 1, "maximum": 200, "description": "page size, default 50"},
       "cursor": {"type": "string", "maxLength": 64, "description": "next_cursor of the previous page"})";

Result<store::PageRequest> PageFrom(const json::object& in);

// Lists are fetched one row past the page to learn whether more follow.
template <typename Row, typename ToJson>
json::value PageJson(std::vector<Row> rows, int limit, ToJson to_json) {
  bool has_more = static_cast<int>(rows.size()) > limit;
  if (has_more) {
    rows.resize(limit);
  }
  json::array items;
  for (const auto& r : rows) {
    items.emplace_back(to_json(r));
  }
  json::value next = has_more ? json::value(EncodeCursor(rows.back().seq)) : json::value(nullptr);
  return json::object{{"items", std::move(items)}, {"has_more", has_more}, {"next_cursor", next}};
}

Status ConfirmRequired(const std::string& what, const std::string& id);

json::value TimeOrNull(int64_t ms);

// An activity event (GET /v1/events) of workspace `ws`, now: `actor` is the key that acted
// ("" for the server itself), `subject` the id it is about; `data` never holds secrets.
store::Event MakeEvent(const Deps& d, const std::string& ws, std::string type,
                       const std::string& actor, const std::string& subject,
                       json::object data = {});

}  // namespace kiln::service
