// `kiln mcp` (stdio bridge to the server's /mcp) and `kiln mcp config`: placeholder.
#include "cli/internal.h"

namespace kiln::cli {

void AddMcpCommands(CLI::App& /*app*/, const bool& /*json_flag*/, int& /*code*/) {}

}  // namespace kiln::cli
