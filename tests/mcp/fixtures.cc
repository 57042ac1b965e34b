// The tools the MCP conformance suite's server scenarios call: placeholder.
#include "mcp/mcp.h"

namespace kiln::mcp::testing {

std::vector<ExtraTool> ConformanceTools() { return {}; }

}  // namespace kiln::mcp::testing
