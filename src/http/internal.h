#pragma once
// Helpers shared by the http module's .cc files; not part of the public interface.

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "http/http.h"

namespace kiln::http::internal {

inline char ToLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// Percent-decodes `text` into `out` (reusing its capacity); '+' becomes ' ' when
// `plus_as_space` (query strings). False on a bad escape; `out` is then unspecified.
bool DecodeInto(std::string_view text, bool plus_as_space, std::string& out);

// True when `text` equals `lower` (already lower-case) ignoring ASCII case.
bool EqualsLower(std::string_view text, std::string_view lower);

// Splits an encoded query ("a=1&b=x+y") into decoded pairs ('+' as space), reusing the
// capacity of `out`'s strings. False on a bad escape.
bool ParseQuery(std::string_view query, std::vector<std::pair<std::string, std::string>>& out);

// "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n" into `out`.
void FormatDateLine(int64_t unix_seconds, std::string& out);

// The status line and headers of `response`, ending with the blank line. The server owns
// framing: Content-Length and Connection are written here, and the handler's own
// Content-Length, Connection and Transfer-Encoding headers, and any header containing a line
// break, are dropped.
void SerializeHead(const Response& response, bool keep_alive, bool http10,
                   std::string_view date_line, std::string& out);

// The head of a streamed response (Stream::Begin): framing as SerializeHead, but
// Transfer-Encoding: chunked instead of a length; for HTTP/1.0 no framing at all, the body
// ending when the connection closes (the caller then passes keep_alive = false, unless the
// response has no body).
void SerializeStreamHead(int status, const Headers& headers, bool keep_alive, bool http10,
                         std::string_view date_line, std::string& out);

// False for the statuses whose responses never have a body: 1xx, 204 and 304. An invalid
// status is sent as 500, which has one.
inline bool StatusAllowsBody(int status) {
  if (status >= 100 && status < 200) {
    return false;
  }
  return status != 204 && status != 304;
}

}  // namespace kiln::http::internal
