#include <charconv>
#include <cstddef>
#include <cstdint>
#include <ctime>
#include <string>
#include <string_view>

#include "http/http.h"
#include "http/internal.h"

namespace kiln::http {

namespace {

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (internal::ToLower(a[i]) != internal::ToLower(b[i])) {
      return false;
    }
  }
  return true;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') {
    return c - '0';
  }
  if (c >= 'a' && c <= 'f') {
    return c - 'a' + 10;
  }
  if (c >= 'A' && c <= 'F') {
    return c - 'A' + 10;
  }
  return -1;
}

bool HasLineBreak(std::string_view text) {
  return text.find_first_of("\r\n") != std::string_view::npos;
}

void AppendNumber(std::string& out, uint64_t n) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), n);
  out.append(digits, end);
}

std::string_view FindHeader(const Headers& headers, std::string_view name) {
  for (const auto& [key, value] : headers) {
    if (EqualsIgnoreCase(key, name)) {
      return value;
    }
  }
  return {};
}

}  // namespace

namespace internal {

bool DecodeInto(std::string_view text, bool plus_as_space, std::string& out) {
  out.clear();
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size()) {
        return false;
      }
      int hi = HexValue(text[i + 1]);
      int lo = HexValue(text[i + 2]);
      if (hi < 0 || lo < 0) {
        return false;
      }
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else if (c == '+' && plus_as_space) {
      out.push_back(' ');
    } else {
      out.push_back(c);
    }
  }
  return true;
}

bool EqualsLower(std::string_view text, std::string_view lower) {
  if (text.size() != lower.size()) {
    return false;
  }
  for (size_t i = 0; i < text.size(); ++i) {
    if (ToLower(text[i]) != lower[i]) {
      return false;
    }
  }
  return true;
}

bool ParseQuery(std::string_view query, std::vector<std::pair<std::string, std::string>>& out) {
  size_t count = 0;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view item = query.substr(0, amp);
    query = amp == std::string_view::npos ? std::string_view() : query.substr(amp + 1);
    if (item.empty()) {
      continue;
    }
    size_t eq = item.find('=');
    std::string_view key = item.substr(0, eq);
    std::string_view value =
        eq == std::string_view::npos ? std::string_view() : item.substr(eq + 1);
    if (count == out.size()) {
      out.emplace_back();
    }
    auto& [k, v] = out[count++];
    if (!internal::DecodeInto(key, true, k) || !DecodeInto(value, true, v)) {
      out.resize(count);
      return false;
    }
  }
  out.resize(count);
  return true;
}

void FormatDateLine(int64_t unix_seconds, std::string& out) {
  std::time_t t = static_cast<std::time_t>(unix_seconds);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char text[64];
  size_t n = std::strftime(text, sizeof(text), "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
  out.assign(text, n);
}

namespace {

int SentStatus(int status) { return status < 100 || status > 999 ? 500 : status; }

// The status line, the Date line and the handler's headers, less those that would change the
// framing, which belongs to the server, or split the response.
void AppendStatusAndHeaders(int status, const Headers& headers, std::string_view date_line,
                            std::string& out) {
  out.clear();
  out += "HTTP/1.1 ";
  AppendNumber(out, static_cast<uint64_t>(status));
  out += ' ';
  out += StatusReason(status);
  out += "\r\n";
  out += date_line;
  for (const auto& [name, value] : headers) {
    if (EqualsLower(name, "content-length") || EqualsLower(name, "connection") ||
        EqualsLower(name, "transfer-encoding") || name.empty() || HasLineBreak(name) ||
        HasLineBreak(value)) {
      continue;
    }
    out += name;
    out += ": ";
    out += value;
    out += "\r\n";
  }
}

void AppendConnectionAndEnd(bool keep_alive, bool http10, std::string& out) {
  if (!keep_alive) {
    out += "Connection: close\r\n";
  } else if (http10) {
    out += "Connection: keep-alive\r\n";
  }
  out += "\r\n";
}

}  // namespace

void SerializeHead(const Response& response, bool keep_alive, bool http10,
                   std::string_view date_line, std::string& out) {
  int status = SentStatus(response.status);
  AppendStatusAndHeaders(status, response.headers, date_line, out);
  if (StatusAllowsBody(status)) {
    out += "Content-Length: ";
    AppendNumber(out, response.body.size());
    out += "\r\n";
  }
  AppendConnectionAndEnd(keep_alive, http10, out);
}

void SerializeStreamHead(int status, const Headers& headers, bool keep_alive, bool http10,
                         std::string_view date_line, std::string& out) {
  status = SentStatus(status);
  AppendStatusAndHeaders(status, headers, date_line, out);
  // HTTP/1.0 has no chunked coding: the body ends where the connection does.
  if (StatusAllowsBody(status) && !http10) {
    out += "Transfer-Encoding: chunked\r\n";
  }
  AppendConnectionAndEnd(keep_alive, http10, out);
}

}  // namespace internal

std::string_view Request::Header(std::string_view name) const { return FindHeader(headers, name); }

std::optional<std::string> Request::Query(std::string_view name) const {
  for (const auto& [key, value] : query) {
    if (key == name) {
      return value;
    }
  }
  return std::nullopt;
}

void Response::Set(std::string name, std::string value) {
  for (auto& [key, old] : headers) {
    if (EqualsIgnoreCase(key, name)) {
      old = std::move(value);
      return;
    }
  }
  headers.emplace_back(std::move(name), std::move(value));
}

std::string_view ClientResponse::Header(std::string_view name) const {
  return FindHeader(headers, name);
}

Result<std::string> PercentDecode(std::string_view text) {
  std::string out;
  if (!internal::DecodeInto(text, /*plus_as_space=*/false, out)) {
    return Status::InvalidArgument("INVALID_ENCODING",
                                   "bad percent-escape in \"" + std::string(text) + "\"",
                                   "encode '%' as %25 and use two hex digits after each '%'");
  }
  return out;
}

std::string PercentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    auto u = static_cast<unsigned char>(c);
    bool unreserved = (u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || (u >= '0' && u <= '9') ||
                      u == '-' || u == '.' || u == '_' || u == '~';
    if (unreserved) {
      out.push_back(c);
    } else {
      out.push_back('%');
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xF]);
    }
  }
  return out;
}

std::string_view StatusReason(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 101:
      return "Switching Protocols";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 206:
      return "Partial Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 303:
      return "See Other";
    case 304:
      return "Not Modified";
    case 307:
      return "Temporary Redirect";
    case 308:
      return "Permanent Redirect";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 406:
      return "Not Acceptable";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 410:
      return "Gone";
    case 411:
      return "Length Required";
    case 412:
      return "Precondition Failed";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 417:
      return "Expectation Failed";
    case 422:
      return "Unprocessable Content";
    case 426:
      return "Upgrade Required";
    case 428:
      return "Precondition Required";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
  }
  if (status >= 100 && status < 200) {
    return "Informational";
  }
  if (status >= 200 && status < 300) {
    return "Success";
  }
  if (status >= 300 && status < 400) {
    return "Redirection";
  }
  if (status >= 400 && status < 500) {
    return "Client Error";
  }
  return "Server Error";
}

}  // namespace kiln::http
