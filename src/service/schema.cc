#include <charconv>
#include <map>
#include <mutex>
#include <regex>

#include "service/service.h"

namespace kiln::service {
namespace {

std::string_view KindOf(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null:
      return "null";
    case json::kind::bool_:
      return "boolean";
    case json::kind::int64:
    case json::kind::uint64:
      return "integer";
    case json::kind::double_:
      return "number";
    case json::kind::string:
      return "string";
    case json::kind::array:
      return "array";
    case json::kind::object:
      return "object";
  }
  return "unknown";
}

bool IsType(const json::value& v, std::string_view type) {
  if (type == "integer") {
    if (v.is_int64() || v.is_uint64()) {
      return true;
    }
    return v.is_double() &&
           v.as_double() == static_cast<double>(static_cast<int64_t>(v.as_double()));
  }
  if (type == "number") {
    return v.is_number();
  }
  return KindOf(v) == type;
}

double AsNumber(const json::value& v) {
  if (v.is_int64()) {
    return static_cast<double>(v.as_int64());
  }
  if (v.is_uint64()) {
    return static_cast<double>(v.as_uint64());
  }
  return v.as_double();
}

// Patterns come from our own operation definitions; compiled once each.
const std::regex& CompiledPattern(const std::string& pattern) {
  static std::mutex mu;
  static std::map<std::string, std::regex> cache;
  std::lock_guard lock(mu);
  auto it = cache.find(pattern);
  if (it == cache.end()) {
    it = cache.emplace(pattern, std::regex(pattern, std::regex::ECMAScript)).first;
  }
  return it->second;
}

std::string Child(std::string_view where, std::string_view key) {
  return where.empty() ? std::string(key) : std::string(where) + "." + std::string(key);
}

Status Fail(std::string_view where, std::string message, std::string hint = {}) {
  if (where.empty()) {
    where = "request";
  }
  if (hint.empty()) {
    hint = "fix the field and retry; every request schema is in GET /v1/openapi.json";
  }
  return Status::InvalidArgument("VALIDATION_FAILED", std::string(where) + ": " + message,
                                 std::move(hint));
}

std::string Join(const json::object& props) {
  std::string out;
  for (const auto& p : props) {
    if (!out.empty()) {
      out += ", ";
    }
    out += p.key();
  }
  return out;
}

}  // namespace

Status Validate(const json::object& schema, const json::value& value, std::string_view where) {
  if (auto it = schema.find("type"); it != schema.end() && it->value().is_string()) {
    std::string_view type = it->value().as_string();
    if (!IsType(value, type)) {
      return Fail(
          where,
          "must be " +
              std::string(type == "integer" || type == "array" || type == "object" ? "an " : "a ") +
              std::string(type) + " (got " + std::string(KindOf(value)) + ")");
    }
  }
  if (auto it = schema.find("enum"); it != schema.end() && it->value().is_array()) {
    bool found = false;
    std::string allowed;
    for (const auto& e : it->value().as_array()) {
      found = found || e == value;
      if (!allowed.empty()) {
        allowed += ", ";
      }
      allowed += json::serialize(e);
    }
    if (!found) {
      return Fail(where, "must be one of " + allowed);
    }
  }
  if (value.is_string()) {
    const auto& s = value.as_string();
    // Lengths count characters, not bytes (UTF-8 continuation bytes are skipped).
    int64_t length = 0;
    for (unsigned char c : s) {
      length += (c & 0xC0) != 0x80;
    }
    if (auto it = schema.find("minLength");
        it != schema.end() && length < it->value().to_number<int64_t>()) {
      return Fail(where, length == 0
                             ? "must not be empty"
                             : "must be at least " + json::serialize(it->value()) + " characters");
    }
    if (auto it = schema.find("maxLength");
        it != schema.end() && length > it->value().to_number<int64_t>()) {
      return Fail(where, "must be at most " + json::serialize(it->value()) + " characters");
    }
    if (auto it = schema.find("pattern"); it != schema.end() && it->value().is_string()) {
      std::string pattern(it->value().as_string());
      if (!std::regex_search(s.begin(), s.end(), CompiledPattern(pattern))) {
        std::string hint;
        if (auto d = schema.find("description"); d != schema.end() && d->value().is_string()) {
          hint = std::string(d->value().as_string());
        }
        return Fail(where, "does not match " + pattern, hint);
      }
    }
  }
  if (value.is_number()) {
    double n = AsNumber(value);
    if (auto it = schema.find("minimum"); it != schema.end() && n < AsNumber(it->value())) {
      return Fail(where, "must be at least " + json::serialize(it->value()));
    }
    if (auto it = schema.find("maximum"); it != schema.end() && n > AsNumber(it->value())) {
      return Fail(where, "must be at most " + json::serialize(it->value()));
    }
  }
  if (value.is_array()) {
    const auto& a = value.as_array();
    if (auto it = schema.find("minItems");
        it != schema.end() && static_cast<int64_t>(a.size()) < it->value().to_number<int64_t>()) {
      return Fail(where, "must have at least " + json::serialize(it->value()) + " items");
    }
    if (auto it = schema.find("maxItems");
        it != schema.end() && static_cast<int64_t>(a.size()) > it->value().to_number<int64_t>()) {
      return Fail(where, "must have at most " + json::serialize(it->value()) + " items");
    }
    if (auto it = schema.find("uniqueItems"); it != schema.end() && it->value() == true) {
      for (size_t i = 0; i < a.size(); ++i) {
        for (size_t j = i + 1; j < a.size(); ++j) {
          if (a[i] == a[j]) {
            return Fail(where, "has a duplicate item " + json::serialize(a[i]));
          }
        }
      }
    }
    if (auto it = schema.find("items"); it != schema.end() && it->value().is_object()) {
      for (size_t i = 0; i < a.size(); ++i) {
        KILN_RETURN_IF_ERROR(Validate(it->value().as_object(), a[i],
                                      std::string(where) + "[" + std::to_string(i) + "]"));
      }
    }
  }
  if (value.is_object()) {
    const auto& o = value.as_object();
    static const json::object kEmpty;
    const json::object* props = &kEmpty;
    if (auto it = schema.find("properties"); it != schema.end() && it->value().is_object()) {
      props = &it->value().as_object();
    }
    if (auto it = schema.find("required"); it != schema.end() && it->value().is_array()) {
      for (const auto& r : it->value().as_array()) {
        if (r.is_string() && !o.contains(r.as_string())) {
          return Fail(Child(where, r.as_string()), "is required");
        }
      }
    }
    bool closed = false;
    const json::object* extra = nullptr;  // schema of fields not in `properties`
    if (auto it = schema.find("additionalProperties"); it != schema.end()) {
      closed = it->value() == false;
      if (it->value().is_object()) {
        extra = &it->value().as_object();
      }
    }
    if (auto it = schema.find("maxProperties");
        it != schema.end() && static_cast<int64_t>(o.size()) > it->value().to_number<int64_t>()) {
      return Fail(where, "must have at most " + json::serialize(it->value()) + " fields");
    }
    const json::object* names = nullptr;  // schema every field name must match
    if (auto it = schema.find("propertyNames"); it != schema.end() && it->value().is_object()) {
      names = &it->value().as_object();
    }
    for (const auto& field : o) {
      std::string name = Child(where, field.key());
      if (names != nullptr) {
        KILN_RETURN_IF_ERROR(Validate(*names, json::value(field.key()), name + " (name)"));
      }
      auto p = props->find(field.key());
      if (p == props->end()) {
        if (closed) {
          return Status::InvalidArgument(
              "UNKNOWN_FIELD", name + ": unknown field",
              props->empty() ? "this request takes no fields" : "known fields: " + Join(*props));
        }
        if (extra != nullptr) {
          KILN_RETURN_IF_ERROR(Validate(*extra, field.value(), name));
        }
        continue;
      }
      if (p->value().is_object()) {
        KILN_RETURN_IF_ERROR(Validate(p->value().as_object(), field.value(), name));
      }
    }
  }
  return Status::Ok();
}

std::string EncodeCursor(int64_t seq) { return crypto::Base64UrlEncode("s" + std::to_string(seq)); }

Result<int64_t> DecodeCursor(std::string_view cursor) {
  auto bad =
      Status::InvalidArgument("INVALID_CURSOR", "the cursor is not one this server issued",
                              "pass next_cursor from the previous page unchanged, or omit it");
  auto text = crypto::Base64UrlDecode(cursor);
  if (!text.ok() || text->size() < 2 || (*text)[0] != 's' || (*text)[1] < '0' || (*text)[1] > '9') {
    return bad;
  }
  // from_chars refuses signs, stray characters and values past INT64_MAX (no wrap-around).
  int64_t seq = 0;
  const char* end = text->data() + text->size();
  auto [stop, ec] = std::from_chars(text->data() + 1, end, seq);
  if (ec != std::errc() || stop != end) {
    return bad;
  }
  return seq;
}

}  // namespace kiln::service
