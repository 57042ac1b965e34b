#pragma once
// JSON helpers over Boost.JSON. Kept apart from core.h so that only modules that speak
// JSON (service, api, cli) pay for the Boost.JSON headers.

#include <boost/json.hpp>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace kiln {

namespace json = boost::json;

// Parses a request body; errors are INVALID_JSON with the position of the fault.
Result<json::value> ParseJson(std::string_view text);
std::string ToJson(const json::value& value);
// A number as people write it: an integer when it is one (Boost.JSON prints the double 1.0 as
// "1E0", which is valid JSON but odd to read).
json::value Number(double value);
// `text` with every invalid UTF-8 sequence replaced by U+FFFD, for strings that quote client
// bytes (Boost.JSON serializes strings byte for byte, which would make invalid JSON text).
std::string ValidUtf8(std::string_view text);

// Typed reads from an object that was already validated against a schema.
std::string GetString(const json::object& obj, std::string_view key, std::string_view dflt = {});
int64_t GetInt(const json::object& obj, std::string_view key, int64_t dflt = 0);
bool GetBool(const json::object& obj, std::string_view key, bool dflt = false);
std::optional<std::string> FindString(const json::object& obj, std::string_view key);

}  // namespace kiln
