#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>

#include "cli/internal.h"

namespace kiln::cli {

Output DetectOutput(bool json_flag) {
  Output out;
  out.json = json_flag;
  const char* no_color = std::getenv("NO_COLOR");
  out.color = ::isatty(STDOUT_FILENO) && (no_color == nullptr || *no_color == '\0');
  return out;
}

std::string Bold(const Output& out, const std::string& text) {
  return out.color ? "\033[1m" + text + "\033[0m" : text;
}

std::string Str(const json::value& v) {
  if (v.is_string()) {
    return std::string(v.as_string());
  }
  if (v.is_null()) {
    return "-";
  }
  if (v.is_array()) {
    std::string s;
    for (const auto& e : v.as_array()) {
      s += (s.empty() ? "" : ",") + Str(e);
    }
    return s;
  }
  return json::serialize(v);
}

std::string HumanBytes(int64_t bytes) {
  char buf[32];
  if (bytes < 1024) {
    std::snprintf(buf, sizeof(buf), "%lld B", static_cast<long long>(bytes));
  } else if (bytes < (int64_t{1} << 20)) {
    std::snprintf(buf, sizeof(buf), "%.1f KiB", static_cast<double>(bytes) / 1024);
  } else if (bytes < (int64_t{1} << 30)) {
    std::snprintf(buf, sizeof(buf), "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f GiB", static_cast<double>(bytes) / (1 << 30));
  }
  return buf;
}

void PrintTable(const Output& out, const std::vector<std::string>& header,
                const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> width(header.size());
  for (size_t i = 0; i < header.size(); ++i) {
    width[i] = header[i].size();
  }
  for (const auto& row : rows) {
    for (size_t i = 0; i < row.size() && i < width.size(); ++i) {
      width[i] = std::max(width[i], row[i].size());
    }
  }
  auto line = [&](const std::vector<std::string>& cells, bool bold) {
    std::string s;
    for (size_t i = 0; i < cells.size(); ++i) {
      std::string cell = cells[i];
      if (i + 1 < cells.size()) {
        cell.resize(width[i] + 2, ' ');
      }
      s += cell;
    }
    while (!s.empty() && s.back() == ' ') {
      s.pop_back();
    }
    std::printf("%s\n", bold ? Bold(out, s).c_str() : s.c_str());
  };
  line(header, true);
  for (const auto& row : rows) {
    line(row, false);
  }
  if (rows.empty()) {
    std::printf("(none)\n");
  }
}

void PrintJson(const json::value& value) { std::printf("%s\n", json::serialize(value).c_str()); }

int ReportError(const Output& out, const Status& status) {
  int code = status.Is(Code::kUnavailable) || status.error_code() == "NOT_LOGGED_IN" ? kUnreachable
                                                                                     : kApiError;
  if (out.json) {
    // Scripts get the same envelope the API uses, on stderr; stdout stays for results.
    json::object error{{"code", status.error_code()}, {"message", status.message()}};
    if (!status.hint().empty()) {
      error["hint"] = status.hint();
    }
    std::fprintf(stderr, "%s\n", json::serialize(json::object{{"error", error}}).c_str());
    return code;
  }
  bool color = out.color && ::isatty(STDERR_FILENO);
  std::string label = color ? "\033[31merror:\033[0m " : "error: ";
  std::fprintf(stderr, "%s%s", label.c_str(), status.message().c_str());
  if (!status.error_code().empty()) {
    std::fprintf(stderr, " (%s)", status.error_code().c_str());
  }
  std::fprintf(stderr, "\n");
  if (!status.hint().empty()) {
    std::fprintf(stderr, "hint: %s\n", status.hint().c_str());
  }
  return code;
}

int Run(const Output& out, const Result<json::value>& result,
        const std::function<void(const json::value&)>& print) {
  if (!result.ok()) {
    return ReportError(out, result.status());
  }
  if (out.json) {
    PrintJson(*result);
  } else {
    print(*result);
  }
  return kOk;
}

const json::value& At(const json::value& v, std::string_view key) {
  static const json::value kNull;
  if (!v.is_object()) {
    return kNull;
  }
  auto it = v.as_object().find(key);
  return it == v.as_object().end() ? kNull : it->value();
}
std::string S(const json::value& v, std::string_view key) { return Str(At(v, key)); }

double Num(const json::value& v) {
  if (v.is_int64()) {
    return static_cast<double>(v.get_int64());
  }
  if (v.is_uint64()) {
    return static_cast<double>(v.get_uint64());
  }
  return v.is_double() ? v.get_double() : 0;
}

std::string NumStr(const json::value& v) {
  if (!v.is_number()) {
    return Str(v);
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", Num(v));
  return buf;
}

std::string ShortTime(std::string t) {
  if (t.size() >= 19 && t[10] == 'T') {
    t[10] = ' ';
    t.resize(19);
  }
  return t;
}

const json::array& Items(const json::value& v) {
  static const json::array kEmpty;
  if (v.is_array()) {
    return v.as_array();
  }
  const json::value& d = At(v, "data");
  return d.is_array() ? d.as_array() : kEmpty;
}

const json::value& Unwrap(const json::value& v) {
  const json::value& d = At(v, "data");
  return d.is_object() && !v.as_object().contains("id") ? d : v;
}

void PrintLogLine(const std::string& prefix, std::string line) {
  while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) {
    line.pop_back();
  }
  std::printf("%s%s\n", prefix.c_str(), line.c_str());
  std::fflush(stdout);
}

int UsageError(const Output& out, const std::string& message, const std::string& hint) {
  ReportError(out, Status::InvalidArgument("USAGE", message, hint));
  return kUsage;
}

}  // namespace kiln::cli
