// The OpenAPI 3.1 document, derived from the operation definitions so it cannot drift.
#include <map>
#include <set>

#include "api/api.h"
#include "api/internal.h"
#include "core/json.h"

namespace kiln::api {
namespace {

std::vector<std::string> PathParams(const std::string& path) {
  std::vector<std::string> out;
  size_t pos = 0;
  while ((pos = path.find('{', pos)) != std::string::npos) {
    size_t end = path.find('}', pos);
    out.push_back(path.substr(pos + 1, end - pos - 1));
    pos = end;
  }
  return out;
}

json::object Envelope(const service::Operation& op) {
  if (op.paginated) {
    return {{"type", "object"},
            {"required", json::array{"data", "has_more", "next_cursor"}},
            {"properties",
             json::object{{"data", json::object{{"type", "array"}, {"items", op.output}}},
                          {"has_more", json::object{{"type", "boolean"}}},
                          {"next_cursor", json::object{{"type", json::array{"string", "null"}}}}}}};
  }
  return {{"type", "object"},
          {"required", json::array{"data"}},
          {"properties", json::object{{"data", op.output}}}};
}

json::object Response(std::string description, json::object schema) {
  return {
      {"description", std::move(description)},
      {"content", json::object{{"application/json", json::object{{"schema", std::move(schema)}}}}}};
}

json::object ErrorRef() { return {{"$ref", "#/components/schemas/Error"}}; }

json::object OperationObject(const service::Operation& op) {
  std::string tag = op.name.substr(0, op.name.find('.'));
  std::string operation_id = op.name;
  for (char& c : operation_id) {
    c = c == '.' ? '_' : c;
  }

  json::object props;
  if (auto it = op.input.find("properties"); it != op.input.end() && it->value().is_object()) {
    props = it->value().as_object();
  }
  std::set<std::string> required;
  if (auto it = op.input.find("required"); it != op.input.end() && it->value().is_array()) {
    for (const auto& r : it->value().as_array()) {
      required.insert(std::string(r.as_string()));
    }
  }
  bool body_method = op.method == "POST" || op.method == "PUT" || op.method == "PATCH";
  // A raw body carries one field's bytes; every other field then goes in the query string.
  bool raw_body = body_method && !op.rest_raw_input.empty();
  if (raw_body) {
    props.erase(op.rest_raw_input);
    required.erase(op.rest_raw_input);
  }

  json::array parameters;
  auto add_param = [&](const std::string& name, std::string_view in, bool req) {
    json::object p{{"name", name}, {"in", in}, {"required", req}};
    if (auto it = props.find(name); it != props.end()) {
      p["schema"] = it->value();
    }
    parameters.push_back(std::move(p));
    props.erase(name);
    required.erase(name);
  };
  for (const auto& name : PathParams(op.path)) {
    add_param(name, "path", true);
  }
  if (props.contains("confirm")) {
    add_param("confirm", "query", false);
  }
  if (!body_method || raw_body) {
    std::vector<std::string> names;
    for (const auto& p : props) {
      names.emplace_back(p.key());
    }
    for (const auto& name : names) {
      add_param(name, "query", required.contains(name));
    }
  }
  if (op.method == "POST") {
    parameters.push_back(
        json::object{{"name", "Idempotency-Key"},
                     {"in", "header"},
                     {"required", false},
                     {"description", "replays the first response to the same key for 24 h"},
                     {"schema", json::object{{"type", "string"}, {"maxLength", 255}}}});
  }

  json::object o{{"operationId", operation_id},
                 {"summary", op.summary},
                 {"description", op.description},
                 {"tags", json::array{json::value(tag)}},
                 {"x-kiln-scopes",
                  [&] {
                    json::array a;
                    for (const auto& s : auth::ScopeNames(op.scopes)) {
                      a.emplace_back(s);
                    }
                    return a;
                  }()},
                 {"x-kiln-annotations", json::object{{"readOnly", op.read_only},
                                                     {"destructive", op.destructive},
                                                     {"idempotent", op.idempotent}}}};
  if (!parameters.empty()) {
    o["parameters"] = std::move(parameters);
  }
  if (raw_body) {
    o["requestBody"] = json::object{
        {"required", true},
        {"content", json::object{{"application/octet-stream",
                                  json::object{{"schema", json::object{{"type", "string"},
                                                                       {"format", "binary"}}}}}}}};
  } else if (body_method) {
    if (!op.rest_multipart.empty()) {
      // The raw multipart fields are how REST carries an upload, not JSON fields.
      props.erase(op.rest_multipart);
      props.erase(op.rest_multipart + "Type");
    }
    json::object body_schema = op.input;
    body_schema["properties"] = props;
    json::array req_array;
    for (const auto& r : required) {
      req_array.emplace_back(r);
    }
    if (req_array.empty()) {
      body_schema.erase("required");
    } else {
      body_schema["required"] = std::move(req_array);
    }
    o["requestBody"] = json::object{
        {"required", !required.empty()},
        {"content", json::object{{"application/json", json::object{{"schema", body_schema}}}}}};
    if (!op.rest_multipart.empty()) {
      json::object form{
          {"type", "object"},
          {"required", json::array{"source"}},
          {"properties",
           json::object{{"source", json::object{{"type", "string"},
                                                {"format", "binary"},
                                                {"description", "a .tar.gz of the app's folder"}}},
                        {"config", json::object{{"type", "object"},
                                                {"description",
                                                 "the same settings as the JSON body, "
                                                 "without source"}}}}}};
      o["requestBody"].as_object()["content"].as_object()["multipart/form-data"] =
          json::object{{"schema", std::move(form)}};
    }
  }
  json::object responses;
  json::object success = Response(op.summary, Envelope(op));
  json::object& content = success["content"].as_object();
  if (!op.rest_raw_output.empty()) {
    // The bytes themselves (JSON clients such as MCP get them in the envelope instead).
    content = json::object{
        {"application/octet-stream",
         json::object{{"schema", json::object{{"type", "string"}, {"format", "binary"}}}}}};
  }
  if (op.streaming) {
    content["text/event-stream"] =
        json::object{{"schema", json::object{{"type", "string"}}},
                     {"description",
                      "with Accept: text/event-stream (or ?stream=1): progress events as they "
                      "happen, then `" +
                          op.final_event + "` carrying the data object above"}};
  }
  responses[std::to_string(op.success_status)] = std::move(success);
  responses["default"] = Response("error", ErrorRef());
  o["responses"] = std::move(responses);
  return o;
}

}  // namespace

std::string BuildOpenApi(const std::vector<service::Operation>& operations) {
  std::map<std::string, json::object> paths;
  for (const auto& op : operations) {
    std::string method = op.method;
    for (char& c : method) {
      c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    }
    paths[op.path][method] = OperationObject(op);
  }
  paths["/healthz"]["get"] = json::object{
      {"operationId", "healthz"},
      {"summary", "Liveness"},
      {"security", json::array{}},
      {"responses", json::object{{"200", json::object{{"description", "the server is up"}}}}}};
  paths["/metrics"]["get"] =
      json::object{{"operationId", "metrics"},
                   {"summary", "Prometheus metrics (text format)"},
                   {"security", json::array{}},
                   {"responses", json::object{{"200", json::object{{"description", "metrics"}}}}}};
  paths["/v1/openapi.json"]["get"] = json::object{
      {"operationId", "openapi"},
      {"summary", "This document"},
      {"security", json::array{}},
      {"responses", json::object{{"200", json::object{{"description", "OpenAPI 3.1"}}}}}};
  paths["/v1/auth/session"] = SessionPathItem();

  json::object path_obj;
  for (auto& [path, methods] : paths) {
    path_obj[path] = std::move(methods);
  }

  json::object doc{
      {"openapi", "3.1.0"},
      {"info", json::object{{"title", "Kiln API"},
                            {"version", "1"},
                            {"description",
                             "Self-hosted apps and sandboxes. Every operation is also an MCP "
                             "tool; errors are {\"error\": {code, message, hint, requestId}}."}}},
      {"servers", json::array{json::object{{"url", "/"}}}},
      {"security",
       json::array{json::object{{"bearer", json::array{}}}, json::object{{"apiKey", json::array{}}},
                   json::object{{"session", json::array{}}}}},
      {"paths", std::move(path_obj)},
      {"components",
       json::object{
           {"securitySchemes",
            json::object{
                {"bearer", json::object{{"type", "http"}, {"scheme", "bearer"}}},
                {"apiKey",
                 json::object{{"type", "apiKey"}, {"in", "header"}, {"name", "X-API-Key"}}},
                // The dashboard's, from POST /v1/auth/session; calls that change something
                // also need the header X-Kiln-CSRF: 1.
                {"session",
                 json::object{{"type", "apiKey"}, {"in", "cookie"}, {"name", "kiln_session"}}}}},
           {"schemas",
            json::object{
                {"Error",
                 json::object{
                     {"type", "object"},
                     {"required", json::array{"error"}},
                     {"properties",
                      json::object{
                          {"error",
                           json::object{
                               {"type", "object"},
                               {"required", json::array{"code", "message"}},
                               {"properties",
                                json::object{
                                    {"code", json::object{{"type", "string"}}},
                                    {"message", json::object{{"type", "string"}}},
                                    {"hint", json::object{{"type", "string"}}},
                                    {"requestId", json::object{{"type", "string"}}}}}}}}}}}}}}}};
  return json::serialize(doc);
}

}  // namespace kiln::api
