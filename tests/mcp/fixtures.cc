// The tools the MCP conformance suite's server scenarios call (@modelcontextprotocol/
// conformance): each scenario names a tool, the arguments it sends and what it checks in the
// answer, and these answer exactly that. Compiled only into `kiln-mcp-fixtures`.
#include <chrono>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "mcp/mcp.h"

namespace kiln::mcp::testing {
namespace {

using namespace std::chrono_literals;

// A 1x1 red pixel PNG (8-bit RGB) and a WAV of 8 silent samples (8 kHz, 8-bit mono PCM).
constexpr std::string_view kPngBase64 =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAIAAACQd1PeAAAADElEQVR4nGP4z8AAAAMBAQDJ/pLvAAAAAElFTkSuQmCC";
constexpr std::string_view kWavBase64 =
    "UklGRiwAAABXQVZFZm10IBAAAAABAAEAQB8AAEAfAAABAAgAZGF0YQgAAACAgICAgICAgA==";

constexpr const char* kNoArguments = R"js({"type": "object", "properties": {}})js";

json::object Parse(std::string_view text) { return json::parse(text).as_object(); }

json::object Text(std::string text) {
  return json::object{{"type", "text"}, {"text", std::move(text)}};
}

json::object Image() {
  return json::object{{"type", "image"}, {"data", kPngBase64}, {"mimeType", "image/png"}};
}

json::object Resource(std::string_view uri, std::string_view mime_type, std::string_view text) {
  return json::object{
      {"type", "resource"},
      {"resource", json::object{{"uri", uri}, {"mimeType", mime_type}, {"text", text}}}};
}

json::object ToolResult(json::array content, bool is_error = false) {
  json::object out{{"content", std::move(content)}};
  if (is_error) {
    out["isError"] = true;
  }
  return out;
}

// A client that cannot be asked (no stream, an error, no answer in time) makes the tool fail.
json::object AskFailed(std::string_view method, const Status& status) {
  return ToolResult({Text(std::string(method) + " failed: " + status.ToString())}, true);
}

// Tools that sleep, notify or ask the client run on a worker and answer on an SSE stream.
ExtraTool Tool(std::string_view name, std::string_view description, const char* input_schema,
               bool blocking, decltype(ExtraTool::call) call) {
  ExtraTool tool;
  tool.definition =
      json::object{{"name", name},
                   {"description", std::string("Conformance fixture: ") + std::string(description)},
                   {"inputSchema", Parse(input_schema)}};
  tool.blocking = blocking;
  tool.streaming = blocking;
  tool.call = std::move(call);
  return tool;
}

json::object SimpleText(ToolContext&, const json::object&) {
  return ToolResult({Text("This is a simple text response for testing.")});
}

json::object ImageContent(ToolContext&, const json::object&) { return ToolResult({Image()}); }

json::object AudioContent(ToolContext&, const json::object&) {
  return ToolResult(
      {json::object{{"type", "audio"}, {"data", kWavBase64}, {"mimeType", "audio/wav"}}});
}

json::object EmbeddedResource(ToolContext&, const json::object&) {
  return ToolResult({Resource("test://embedded-resource", "text/plain",
                              "This is an embedded resource content.")});
}

json::object MultipleContentTypes(ToolContext&, const json::object&) {
  return ToolResult({Text("Multiple content types test:"), Image(),
                     Resource("test://mixed-content-resource", "application/json",
                              R"({"test":"data","value":123})")});
}

json::object WithLogging(ToolContext& ctx, const json::object&) {
  ctx.Log("info", "Tool execution started");
  std::this_thread::sleep_for(50ms);
  ctx.Log("info", "Tool processing data");
  std::this_thread::sleep_for(50ms);
  ctx.Log("info", "Tool execution completed");
  return ToolResult({Text("Tool with logging executed successfully")});
}

json::object WithProgress(ToolContext& ctx, const json::object&) {
  const json::value& token = ctx.progress_token();
  for (int64_t progress : {0, 50, 100}) {
    if (progress > 0) {
      std::this_thread::sleep_for(50ms);
    }
    if (!token.is_null()) {
      ctx.Notify("notifications/progress",
                 json::object{{"progressToken", token}, {"progress", progress}, {"total", 100}});
    }
  }
  return ToolResult({Text("Tool with progress executed successfully")});
}

json::object ErrorHandling(ToolContext&, const json::object&) {
  return ToolResult({Text("This tool intentionally returns an error for testing")}, true);
}

json::object Sampling(ToolContext& ctx, const json::object& args) {
  json::object message{{"role", "user"}, {"content", Text(GetString(args, "prompt"))}};
  auto answer = ctx.Ask("sampling/createMessage",
                        json::object{{"messages", json::array{message}}, {"maxTokens", 100}});
  if (!answer.ok()) {
    return AskFailed("sampling/createMessage", answer.status());
  }
  // The answer's content is one block ({type: "text", text}) or, since 2025-11-25, a list.
  std::string text;
  if (const json::object* result = answer->if_object()) {
    if (const json::value* content = result->if_contains("content")) {
      const json::value& block =
          content->is_array() && !content->as_array().empty() ? content->as_array()[0] : *content;
      text = block.is_object() ? GetString(block.as_object(), "text") : ToJson(block);
    }
  }
  return ToolResult({Text("LLM response: " + text)});
}

// Asks elicitation/create and answers "<prefix>action=..., content={...}".
json::object Elicit(ToolContext& ctx, std::string message, const char* requested_schema,
                    std::string_view prefix) {
  auto answer = ctx.Ask(
      "elicitation/create",
      json::object{{"message", std::move(message)}, {"requestedSchema", Parse(requested_schema)}});
  if (!answer.ok()) {
    return AskFailed("elicitation/create", answer.status());
  }
  std::string action, content = "{}";
  if (const json::object* result = answer->if_object()) {
    action = GetString(*result, "action");
    if (const json::value* c = result->if_contains("content")) {
      content = ToJson(*c);
    }
  }
  return ToolResult({Text(std::string(prefix) + "action=" + action + ", content=" + content)});
}

json::object Elicitation(ToolContext& ctx, const json::object& args) {
  return Elicit(ctx, GetString(args, "message"), R"js({"type": "object", "properties": {
      "username": {"type": "string", "description": "User's response"},
      "email": {"type": "string", "description": "User's email address"}},
      "required": ["username", "email"]})js",
                "User response: ");
}

json::object ElicitationDefaults(ToolContext& ctx, const json::object&) {
  return Elicit(ctx, "Please review and update the form fields with defaults",
                R"js({"type": "object", "properties": {
      "name": {"type": "string", "description": "User name", "default": "John Doe"},
      "age": {"type": "integer", "description": "User age", "default": 30},
      "score": {"type": "number", "description": "User score", "default": 95.5},
      "status": {"type": "string", "description": "User status",
                 "enum": ["active", "inactive", "pending"], "default": "active"},
      "verified": {"type": "boolean", "description": "Verification status", "default": true}}})js",
                "Elicitation completed: ");
}

json::object ElicitationEnums(ToolContext& ctx, const json::object&) {
  return Elicit(ctx, "Please select options from the enum fields",
                R"js({"type": "object", "properties": {
      "untitledSingle": {"type": "string", "description": "Untitled single-select",
                         "enum": ["option1", "option2", "option3"]},
      "titledSingle": {"type": "string", "description": "Titled single-select", "oneOf": [
          {"const": "value1", "title": "First Option"},
          {"const": "value2", "title": "Second Option"},
          {"const": "value3", "title": "Third Option"}]},
      "legacyEnum": {"type": "string", "description": "Legacy titled enum (deprecated)",
                     "enum": ["opt1", "opt2", "opt3"],
                     "enumNames": ["Option One", "Option Two", "Option Three"]},
      "untitledMulti": {"type": "array", "description": "Untitled multi-select",
                        "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
      "titledMulti": {"type": "array", "description": "Titled multi-select", "items": {"anyOf": [
          {"const": "value1", "title": "First Choice"},
          {"const": "value2", "title": "Second Choice"},
          {"const": "value3", "title": "Third Choice"}]}}}})js",
                "Elicitation completed: ");
}

json::object JsonSchema202012(ToolContext&, const json::object& args) {
  return ToolResult({Text("json_schema_2020_12_tool received: " + ToJson(args))});
}

// Closes the POST stream before answering: the client resumes with GET and Last-Event-ID
// and must get the result there.
json::object Reconnection(ToolContext& ctx, const json::object&) {
  ctx.CloseStream();
  std::this_thread::sleep_for(200ms);
  return ToolResult({Text("Reconnection test completed")});
}

}  // namespace

std::vector<ExtraTool> ConformanceTools() {
  std::vector<ExtraTool> tools;
  tools.push_back(
      Tool("test_simple_text", "returns one text block", kNoArguments, false, SimpleText));
  tools.push_back(
      Tool("test_image_content", "returns a 1x1 PNG image", kNoArguments, false, ImageContent));
  tools.push_back(
      Tool("test_audio_content", "returns a tiny WAV clip", kNoArguments, false, AudioContent));
  tools.push_back(Tool("test_embedded_resource", "returns an embedded text resource", kNoArguments,
                       false, EmbeddedResource));
  tools.push_back(Tool("test_multiple_content_types", "returns text, image and resource blocks",
                       kNoArguments, false, MultipleContentTypes));
  tools.push_back(Tool("test_tool_with_logging", "sends 3 info log messages 50 ms apart",
                       kNoArguments, true, WithLogging));
  tools.push_back(Tool("test_tool_with_progress", "reports progress 0, 50, 100 of 100",
                       kNoArguments, true, WithProgress));
  tools.push_back(Tool("test_error_handling", "always answers isError: true", kNoArguments, false,
                       ErrorHandling));
  tools.push_back(Tool("test_sampling", "asks the client for an LLM completion of `prompt`",
                       R"js({"type": "object", "properties": {"prompt": {"type": "string",
                           "description": "The prompt to send to the LLM"}},
                           "required": ["prompt"]})js",
                       true, Sampling));
  tools.push_back(Tool("test_elicitation", "asks the user for a username and email",
                       R"js({"type": "object", "properties": {"message": {"type": "string",
                           "description": "The message to show the user"}},
                           "required": ["message"]})js",
                       true, Elicitation));
  tools.push_back(Tool("test_elicitation_sep1034_defaults",
                       "elicits a form whose fields have defaults (SEP-1034)", kNoArguments, true,
                       ElicitationDefaults));
  tools.push_back(Tool("test_elicitation_sep1330_enums",
                       "elicits a form with the five enum variants (SEP-1330)", kNoArguments, true,
                       ElicitationEnums));
  tools.push_back(Tool("json_schema_2020_12_tool",
                       "Tool with JSON Schema 2020-12 features ($schema, $defs, "
                       "additionalProperties)",
                       R"js({"$schema": "https://json-schema.org/draft/2020-12/schema",
                           "type": "object",
                           "$defs": {"address": {"type": "object", "properties": {
                               "street": {"type": "string"}, "city": {"type": "string"}}}},
                           "properties": {"name": {"type": "string"},
                                          "address": {"$ref": "#/$defs/address"}},
                           "additionalProperties": false})js",
                       false, JsonSchema202012));
  tools.push_back(Tool("test_reconnection",
                       "closes its SSE stream mid-call and answers on the resumed stream",
                       kNoArguments, true, Reconnection));
  return tools;
}

}  // namespace kiln::mcp::testing
