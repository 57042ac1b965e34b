#pragma once
// Module-private: the operations on workspaces, keys, tokens and events.

#include <vector>

#include "service/service.h"

namespace kiln::service {

void AddTenancyOperations(const Deps& deps, std::vector<Operation>& out);

// Parses a schema literal from an operation definition; a typo there is a bug, so it aborts.
json::object Schema(std::string_view text);

}  // namespace kiln::service
