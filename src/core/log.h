#pragma once
// Structured logs: one JSON object per line on stderr ({"ts","level","msg",...fields}), or
// "ts LEVEL msg key=value" text for people at a terminal. Thread-safe; a line is written
// with one write(2) so lines from different threads never interleave.

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <variant>

namespace kiln::log {

enum class Level { kDebug, kInfo, kWarn, kError };
enum class Format { kJson, kText };

struct Field {
  Field(std::string_view k, std::string_view v) : key(k), value(v) {}
  Field(std::string_view k, const std::string& v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, const char* v) : key(k), value(std::string_view(v)) {}
  Field(std::string_view k, int64_t v) : key(k), value(v) {}
  Field(std::string_view k, int v) : key(k), value(static_cast<int64_t>(v)) {}
  Field(std::string_view k, unsigned v) : key(k), value(static_cast<int64_t>(v)) {}
  Field(std::string_view k, uint64_t v) : key(k), value(static_cast<int64_t>(v)) {}
  Field(std::string_view k, double v) : key(k), value(v) {}
  Field(std::string_view k, bool v) : key(k), value(v) {}
  std::string_view key;
  std::variant<std::string_view, int64_t, double, bool> value;
};
using Fields = std::initializer_list<Field>;

void Configure(Level level, Format format);
bool ParseLevel(std::string_view text, Level* level);
bool Enabled(Level level);

void Write(Level level, std::string_view msg, Fields fields);
inline void Debug(std::string_view msg, Fields fields = {}) { Write(Level::kDebug, msg, fields); }
inline void Info(std::string_view msg, Fields fields = {}) { Write(Level::kInfo, msg, fields); }
inline void Warn(std::string_view msg, Fields fields = {}) { Write(Level::kWarn, msg, fields); }
inline void Error(std::string_view msg, Fields fields = {}) { Write(Level::kError, msg, fields); }

}  // namespace kiln::log
