// `kiln-mcp-fixtures`: the `kiln` binary plus the conformance suite's fixture tools
// (tests/mcp/fixtures.cc), for the MCP conformance run only. The product never has them.
#include "cli/cli.h"
#include "mcp/mcp.h"

namespace kiln::mcp::testing {
std::vector<ExtraTool> ConformanceTools();
}

int main(int argc, char** argv) {
  kiln::mcp::SetExtraTools(kiln::mcp::testing::ConformanceTools());
  return kiln::cli::Main(argc, argv);
}
