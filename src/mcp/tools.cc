// Tools from the operations of service/: the tools/list entry of each, and a call's
// CallToolResult. Nothing here is written by hand per operation, so MCP cannot drift from REST.
#include <set>

#include "mcp/internal.h"

namespace kiln::mcp {
namespace {

// Input fields that only make sense over REST (a multipart body and its Content-Type): not
// offered to models.
std::set<std::string> RestOnlyFields(const service::Operation& op) {
  std::set<std::string> out;
  if (!op.rest_multipart.empty()) {
    out.insert(op.rest_multipart);
    out.insert(op.rest_multipart + "Type");
  }
  return out;
}

json::object InputSchema(const service::Operation& op) {
  json::object schema = op.input;
  if (schema.empty()) {
    schema = json::object{{"type", "object"}, {"properties", json::object()}};
  }
  if (auto it = schema.find("properties"); it != schema.end() && it->value().is_object()) {
    for (const std::string& name : RestOnlyFields(op)) {
      it->value().as_object().erase(name);
    }
  }
  return schema;
}

bool IsObjectSchema(const json::object& schema) {
  auto it = schema.find("type");
  return it != schema.end() && it->value().is_string() && it->value().as_string() == "object";
}

// structuredContent must be an object: a list answers {items, has_more, next_cursor}, and
// data of another type is wrapped as {result}.
std::optional<json::object> OutputSchema(const service::Operation& op, bool* wraps) {
  *wraps = false;
  if (op.output.empty()) {
    return std::nullopt;
  }
  if (op.paginated) {
    return json::object{
        {"type", "object"},
        {"properties",
         json::object{
             {"items", json::object{{"type", "array"}, {"items", op.output}}},
             {"has_more", json::object{{"type", "boolean"}}},
             {"next_cursor", json::object{{"type", json::array{"string", "null"}},
                                          {"description", "pass as `cursor` for the next page"}}}}},
        {"required", json::array{"items", "has_more"}}};
  }
  if (IsObjectSchema(op.output)) {
    return op.output;
  }
  *wraps = true;
  return json::object{{"type", "object"},
                      {"properties", json::object{{"result", op.output}}},
                      {"required", json::array{"result"}}};
}

// Operations that reach beyond Kiln's own state: a deployment fetches URLs and git
// repositories, a command in an instance may reach the network.
bool OpenWorld(const service::Operation& op) {
  return op.name == "apps.deploy" || op.name.ends_with(".exec");
}

// What MCP calls destructive is wider than what needs `confirm`: anything that removes
// (killing a sandbox, deleting a file or a variable, revoking a token), so clients ask first.
bool Destructive(const service::Operation& op) { return op.destructive || op.method == "DELETE"; }

std::string Description(const service::Operation& op) {
  std::string text = op.description.empty() ? op.summary : op.description;
  if (op.destructive) {
    text += " Destructive: pass `confirm` with the exact name or id of what it removes.";
  }
  if (op.paginated) {
    text += " Paginated: pass `next_cursor` of an answer as `cursor` to get the next page.";
  }
  return text;
}

Tool FromOperation(const service::Operation& op) {
  Tool t;
  t.name = ToolName(op.name);
  t.op = &op;
  t.scopes = op.scopes;
  t.blocking = op.blocking;
  json::object def{{"name", t.name},
                   {"title", op.summary},
                   {"description", Description(op)},
                   {"inputSchema", InputSchema(op)}};
  if (auto out = OutputSchema(op, &t.wraps_result)) {
    def["outputSchema"] = std::move(*out);
  }
  def["annotations"] = json::object{{"title", op.summary},
                                    {"readOnlyHint", op.read_only},
                                    {"destructiveHint", Destructive(op)},
                                    {"idempotentHint", op.idempotent || op.read_only},
                                    {"openWorldHint", OpenWorld(op)}};
  t.definition = std::move(def);
  return t;
}

}  // namespace

std::string ToolName(std::string_view operation_name) {
  std::string out(operation_name);
  for (char& c : out) {
    if (c == '.' || c == '-') {
      c = '_';
    }
  }
  return out;
}

std::vector<Tool> BuildTools(const std::vector<service::Operation>& operations,
                             const std::vector<ExtraTool>& extras) {
  std::vector<Tool> tools;
  for (const service::Operation& op : operations) {
    tools.push_back(FromOperation(op));
  }
  for (const ExtraTool& extra : extras) {
    Tool t;
    t.definition = extra.definition;
    if (auto it = extra.definition.find("name"); it != extra.definition.end()) {
      t.name = std::string(it->value().as_string());
    }
    t.extra = &extra;
    t.blocking = extra.blocking;
    t.streaming = extra.streaming;
    tools.push_back(std::move(t));
  }
  return tools;
}

json::object CallOperation(const service::Service& service, const Tool& tool,
                           const auth::Principal& principal, const std::string& request_id,
                           const json::object& arguments) {
  const service::Operation& op = *tool.op;
  auto failed = [&](const Status& s) {
    return json::object{
        {"isError", true},
        {"content",
         json::array{json::object{
             {"type", "text"}, {"text", json::serialize(service::ErrorEnvelope(s, request_id))}}}}};
  };
  for (const std::string& name : RestOnlyFields(op)) {
    if (arguments.contains(name)) {
      return failed(Status::InvalidArgument("UNKNOWN_FIELD", name + ": REST uploads only",
                                            "leave it out; see the tool's inputSchema"));
    }
  }
  service::Context ctx{principal, request_id, nullptr, false};
  Result<json::value> result = service.Call(op, ctx, arguments);
  if (!result.ok()) {
    return failed(result.status());
  }
  json::value data = std::move(*result);
  if (tool.wraps_result) {
    data = json::object{{"result", std::move(data)}};
  }
  json::object out{
      {"content", json::array{json::object{{"type", "text"}, {"text", json::serialize(data)}}}}};
  if (tool.definition.contains("outputSchema") && data.is_object()) {
    out["structuredContent"] = std::move(data);
  }
  return out;
}

}  // namespace kiln::mcp
