#pragma once
// Module-private: the groups of operations, and the pieces their definitions share.

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
