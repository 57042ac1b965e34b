// The heads the proxy writes: the request head as the app sees it, and the response head as
// the client sees it. Pure functions of the parsed heads and what the proxy decided.

#include <charconv>
#include <string>
#include <string_view>

#include "gateway/internal.h"
#include "http/http.h"

namespace kiln::gateway::internal {

void AppendNumber(std::string& out, uint64_t n) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof(digits), n);
  (void)ec;  // 24 digits hold any uint64_t
  out.append(digits, end);
}

std::string AppHead(const bhttp::request_header<>& req, const AppHeadInput& in) {
  std::string_view connection = req[bhttp::field::connection];
  std::string head;
  head.reserve(1024);
  head += req.method_string();
  head += ' ';
  head += req.target();
  head += " HTTP/1.1\r\n";
  std::string forwarded_for;
  std::string_view host_header;
  for (const auto& field : req) {
    std::string_view name = field.name_string();
    std::string_view value = field.value();
    switch (field.name()) {
      case bhttp::field::content_length:
      case bhttp::field::expect:
        continue;
      case bhttp::field::host:
        host_header = value;
        break;
      case bhttp::field::authorization:
        if (in.access.strip_authorization) {
          continue;
        }
        break;
      case bhttp::field::cookie: {
        std::string kept = StripKilnCookies(value);
        if (!kept.empty()) {
          head += "Cookie: ";
          head += kept;
          head += "\r\n";
        }
        continue;
      }
      default:
        if (EqualsIgnoreCase(name, "x-forwarded-for")) {
          forwarded_for += forwarded_for.empty() ? "" : ", ";
          forwarded_for += value;
          continue;
        }
        if (IsHopByHop(name) || StartsWithIgnoreCase(name, "x-kiln-") ||
            EqualsIgnoreCase(name, "x-forwarded-host") ||
            EqualsIgnoreCase(name, "x-forwarded-proto") ||
            (!connection.empty() && ListHas(connection, name))) {
          continue;
        }
    }
    head += name;
    head += ": ";
    head += value;
    head += "\r\n";
  }
  // Appended piece by piece: a temporary string per header is a malloc per request each.
  head += "X-Forwarded-For: ";
  if (!forwarded_for.empty()) {
    head += forwarded_for;
    head += ", ";
  }
  head += in.client_ip;
  head += "\r\nX-Forwarded-Host: ";
  head += host_header;
  head += in.tls ? "\r\nX-Forwarded-Proto: https\r\n" : "\r\nX-Forwarded-Proto: http\r\n";
  head += "X-Kiln-Request-Id: ";
  head += in.request_id;
  head += "\r\n";
  if (!in.access.user_id.empty()) {
    head += "X-Kiln-User-Id: ";
    head += in.access.user_id;
    head += "\r\nX-Kiln-Workspace: ";
    head += in.access.workspace;
    head += "\r\nX-Kiln-Auth: ";
    head += in.access.auth_token;
    head += "\r\n";
  }
  if (in.upgrade) {
    head += "Connection: Upgrade\r\nUpgrade: ";
    head += req[bhttp::field::upgrade];
    head += "\r\n";
  }
  if (in.chunked) {
    head += "Transfer-Encoding: chunked\r\n";
  } else if (in.content_length) {
    head += "Content-Length: ";
    AppendNumber(head, *in.content_length);
    head += "\r\n";
  }
  head += "\r\n";
  return head;
}

std::string ClientHead(const bhttp::response_header<>& res, const ClientHeadInput& in) {
  std::string out;
  out.reserve(512);
  out += "HTTP/1.1 ";
  AppendNumber(out, static_cast<uint64_t>(in.status));
  out += ' ';
  out += res.reason().empty() ? http::StatusReason(in.status) : std::string_view(res.reason());
  out += "\r\n";
  std::string_view res_connection = res[bhttp::field::connection];
  bool has_date = false;
  for (const auto& field : res) {
    std::string_view name = field.name_string();
    switch (field.name()) {
      case bhttp::field::content_length:
        if (in.head_request || !in.body) {
          break;  // HEAD and 304 carry the length the body would have
        }
        continue;
      case bhttp::field::upgrade:
        if (in.switching) {
          break;
        }
        continue;
      case bhttp::field::date:
        has_date = true;
        break;
      default:
        if (IsHopByHop(name) || EqualsIgnoreCase(name, "x-request-id") ||
            (!res_connection.empty() && ListHas(res_connection, name))) {
          continue;
        }
    }
    out += name;
    out += ": ";
    out += field.value();
    out += "\r\n";
  }
  if (!has_date) {
    out += in.date;
  }
  out += "X-Request-Id: ";
  out += in.request_id;
  out += "\r\n";
  if (in.switching) {
    out += "Connection: Upgrade\r\n";
  } else if (in.length && in.body) {
    out += "Content-Length: ";
    AppendNumber(out, *in.length);
    out += "\r\n";
  } else if (in.chunked) {
    out += "Transfer-Encoding: chunked\r\n";
  }
  if (!in.keep_alive && !in.switching) {
    out += "Connection: close\r\n";
  }
  out += "\r\n";
  return out;
}

}  // namespace kiln::gateway::internal
