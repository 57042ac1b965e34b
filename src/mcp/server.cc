// Placeholder while the module is written: compiles and links, serves nothing.
#include "mcp/mcp.h"

namespace kiln::mcp {

struct Server::Impl {
  explicit Impl(Deps d) : deps(d) {}
  Deps deps;
};

void SetExtraTools(std::vector<ExtraTool> /*tools*/) {}

std::string ToolName(std::string_view operation_name) {
  std::string out(operation_name);
  for (char& c : out) {
    if (c == '.') {
      c = '_';
    }
  }
  return out;
}

Server::Server(Deps deps) : impl_(std::make_unique<Impl>(deps)) {}
Server::~Server() = default;
void Server::Handle(const http::Request& /*request*/, http::Response& response) {
  response.status = 501;
}
std::vector<json::object> Server::Tools(auth::Scopes /*scopes*/) const { return {}; }
size_t Server::Sessions() const { return 0; }

}  // namespace kiln::mcp
