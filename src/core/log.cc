#include "core/log.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>

#include "core/clock.h"

namespace kiln::log {
namespace {

std::atomic<Level> g_level{Level::kInfo};
std::atomic<Format> g_format{Format::kJson};

std::string_view LevelName(Level level) {
  switch (level) {
    case Level::kDebug:
      return "debug";
    case Level::kInfo:
      return "info";
    case Level::kWarn:
      return "warn";
    case Level::kError:
      return "error";
  }
  return "info";
}

// Upper case and padded to five columns so that messages line up at a terminal.
std::string_view LevelLabel(Level level) {
  switch (level) {
    case Level::kDebug:
      return "DEBUG";
    case Level::kInfo:
      return "INFO ";
    case Level::kWarn:
      return "WARN ";
    case Level::kError:
      return "ERROR";
  }
  return "INFO ";
}

void AppendHexEscape(std::string& out, unsigned char c) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "\\u%04x", c);
  out += buf;
}

// Escapes for a JSON string body. Text lines escape only control characters (quotes = false)
// so that one record always stays on one line.
void AppendEscaped(std::string& out, std::string_view s, bool quotes = true) {
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (!quotes && (c == '"' || c == '\\')) {
      out.push_back(ch);
      continue;
    }
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20 || c == 0x7f) {
          AppendHexEscape(out, c);
        } else {
          out.push_back(ch);
        }
    }
  }
}

void AppendJsonString(std::string& out, std::string_view s) {
  out.push_back('"');
  AppendEscaped(out, s);
  out.push_back('"');
}

void AppendDouble(std::string& out, double v) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  out.append(buf, ec == std::errc() ? end : buf);
}

void AppendJsonValue(std::string& out, const Field& field) {
  if (auto* s = std::get_if<std::string_view>(&field.value)) {
    AppendJsonString(out, *s);
  } else if (auto* i = std::get_if<int64_t>(&field.value)) {
    out += std::to_string(*i);
  } else if (auto* d = std::get_if<double>(&field.value)) {
    // JSON has no NaN or infinity; a string keeps the line parseable.
    if (std::isfinite(*d)) {
      AppendDouble(out, *d);
    } else {
      AppendJsonString(out, std::isnan(*d) ? "NaN" : (*d > 0 ? "Infinity" : "-Infinity"));
    }
  } else if (auto* b = std::get_if<bool>(&field.value)) {
    out += *b ? "true" : "false";
  }
}

bool NeedsQuotes(std::string_view s) {
  if (s.empty()) {
    return true;
  }
  for (char ch : s) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= ' ' || c == '"' || c == '=' || c == '\\' || c == 0x7f) {
      return true;
    }
  }
  return false;
}

void AppendTextValue(std::string& out, const Field& field) {
  if (auto* s = std::get_if<std::string_view>(&field.value)) {
    if (NeedsQuotes(*s)) {
      AppendJsonString(out, *s);
    } else {
      out += *s;
    }
  } else if (auto* i = std::get_if<int64_t>(&field.value)) {
    out += std::to_string(*i);
  } else if (auto* d = std::get_if<double>(&field.value)) {
    AppendDouble(out, *d);
  } else if (auto* b = std::get_if<bool>(&field.value)) {
    out += *b ? "true" : "false";
  }
}

void Emit(std::string_view line) {
  // One write(2) per line keeps lines from concurrent threads whole; the loop only matters
  // for a partial write, which stderr on a pipe or a file does not do for short lines.
  while (!line.empty()) {
    ssize_t n = ::write(STDERR_FILENO, line.data(), line.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return;  // nowhere left to report a failure to log
    }
    line.remove_prefix(static_cast<size_t>(n));
  }
}

}  // namespace

void Configure(Level level, Format format) {
  g_level.store(level, std::memory_order_relaxed);
  g_format.store(format, std::memory_order_relaxed);
}

bool ParseLevel(std::string_view text, Level* level) {
  for (Level l : {Level::kDebug, Level::kInfo, Level::kWarn, Level::kError}) {
    if (text == LevelName(l)) {
      *level = l;
      return true;
    }
  }
  return false;
}

bool Enabled(Level level) {
  return static_cast<int>(level) >= static_cast<int>(g_level.load(std::memory_order_relaxed));
}

void Write(Level level, std::string_view msg, Fields fields) {
  if (!Enabled(level)) {
    return;
  }
  std::string ts = FormatTime(SystemClock::Instance().NowMs());
  std::string line;
  line.reserve(64 + msg.size() + fields.size() * 24);
  if (g_format.load(std::memory_order_relaxed) == Format::kJson) {
    line += "{\"ts\":\"";
    line += ts;
    line += "\",\"level\":\"";
    line += LevelName(level);
    line += "\",\"msg\":";
    AppendJsonString(line, msg);
    for (const Field& field : fields) {
      line.push_back(',');
      AppendJsonString(line, field.key);
      line.push_back(':');
      AppendJsonValue(line, field);
    }
    line += "}\n";
  } else {
    line += ts;
    line.push_back(' ');
    line += LevelLabel(level);
    line.push_back(' ');
    AppendEscaped(line, msg, /*quotes=*/false);
    for (const Field& field : fields) {
      line.push_back(' ');
      line += field.key;
      line.push_back('=');
      AppendTextValue(line, field);
    }
    line.push_back('\n');
  }
  Emit(line);
}

}  // namespace kiln::log
