#include "core/json.h"

#include <cmath>
#include <limits>

namespace kiln {

Result<json::value> ParseJson(std::string_view text) {
  json::stream_parser parser;
  boost::system::error_code ec;
  // write() reports how far it got, which is the offset of the fault on error.
  size_t consumed = parser.write(text.data(), text.size(), ec);
  if (!ec) {
    parser.finish(ec);
  }
  if (ec) {
    return Status::InvalidArgument(
        "INVALID_JSON",
        "request body is not valid JSON: " + ec.message() + " at byte " + std::to_string(consumed),
        "send a JSON object, e.g. {\"name\": \"ci\"}");
  }
  return parser.release();
}

std::string ToJson(const json::value& value) { return json::serialize(value); }

json::value Number(double value) {
  if (std::isfinite(value) && value == std::trunc(value) && std::fabs(value) < 9e15) {
    return json::value(static_cast<int64_t>(value));
  }
  return json::value(value);
}

std::string ValidUtf8(std::string_view text) {
  static constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
  std::string out;
  out.reserve(text.size());
  size_t i = 0;
  while (i < text.size()) {
    auto byte = [&](size_t k) { return static_cast<unsigned char>(text[k]); };
    unsigned char c = byte(i);
    size_t len = 0;
    uint32_t min = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      out += static_cast<char>(c);
      ++i;
      continue;
    } else if ((c & 0xE0) == 0xC0) {
      len = 2, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, min = 0x10000, cp = c & 0x07;
    }
    bool valid = len != 0 && i + len <= text.size();
    for (size_t k = 1; valid && k < len; ++k) {
      valid = (byte(i + k) & 0xC0) == 0x80;
      cp = (cp << 6) | (byte(i + k) & 0x3F);
    }
    // Overlong forms, UTF-16 surrogates and values past U+10FFFF are not UTF-8 either.
    valid = valid && cp >= min && cp <= 0x10FFFF && !(cp >= 0xD800 && cp <= 0xDFFF);
    if (valid) {
      out.append(text.substr(i, len));
      i += len;
    } else {
      out += kReplacement;
      ++i;
    }
  }
  return out;
}

std::string GetString(const json::object& obj, std::string_view key, std::string_view dflt) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->value().is_string()) {
    return std::string(dflt);
  }
  const json::string& s = it->value().get_string();
  return std::string(s.data(), s.size());
}

int64_t GetInt(const json::object& obj, std::string_view key, int64_t dflt) {
  auto it = obj.find(key);
  if (it == obj.end()) {
    return dflt;
  }
  const json::value& v = it->value();
  if (v.is_int64()) {
    return v.get_int64();
  }
  if (v.is_uint64()) {
    uint64_t u = v.get_uint64();
    return u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max()) ? static_cast<int64_t>(u)
                                                                           : dflt;
  }
  if (v.is_double()) {
    double d = v.get_double();
    // 2^63 is exactly representable, so `< 2^63` excludes everything that would overflow.
    constexpr double kLimit = 9223372036854775808.0;
    if (std::isfinite(d) && d == std::trunc(d) && d >= -kLimit && d < kLimit) {
      return static_cast<int64_t>(d);
    }
  }
  return dflt;
}

bool GetBool(const json::object& obj, std::string_view key, bool dflt) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->value().is_bool()) {
    return dflt;
  }
  return it->value().get_bool();
}

std::optional<std::string> FindString(const json::object& obj, std::string_view key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->value().is_string()) {
    return std::nullopt;
  }
  const json::string& s = it->value().get_string();
  return std::string(s.data(), s.size());
}

}  // namespace kiln
