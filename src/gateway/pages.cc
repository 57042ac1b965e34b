// The answers the gateway gives itself: 4xx/5xx with the API's JSON error envelope, or a
// small HTML page for a browser, always with the request id.

#include <string>
#include <string_view>

#include "core/json.h"
#include "gateway/internal.h"

namespace kiln::gateway::internal {
namespace {

bool ContainsIgnoreCase(std::string_view text, std::string_view needle) {
  if (needle.size() > text.size()) {
    return false;
  }
  for (size_t i = 0; i + needle.size() <= text.size(); ++i) {
    if (EqualsIgnoreCase(text.substr(i, needle.size()), needle)) {
      return true;
    }
  }
  return false;
}

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace

int HttpStatus(const Status& why) {
  switch (why.code()) {
    case Code::kInvalidArgument:
      return why.error_code() == "HEADERS_TOO_LARGE" ? 431 : 400;
    case Code::kUnauthenticated:
      return 401;
    case Code::kPermissionDenied:
      return 403;
    case Code::kNotFound:
      return 404;
    case Code::kTimeout:
      return 408;
    case Code::kPayloadTooLarge:
      return 413;
    case Code::kUnavailable:
      if (why.error_code() == "UPSTREAM_TIMEOUT") {
        return 504;
      }
      if (why.error_code() == "UPSTREAM_FAILED") {
        return 502;
      }
      return 503;
    default:
      return 500;
  }
}

bool WantsHtml(std::string_view accept) {
  return ContainsIgnoreCase(accept, "text/html") && !ContainsIgnoreCase(accept, "application/json");
}

std::string ErrorResponse(const Status& why, bool html, std::string_view request_id,
                          bool keep_alive, std::string_view date_line,
                          std::string_view extra_headers) {
  int status = HttpStatus(why);
  std::string body;
  std::string_view type;
  if (html) {
    std::string title = std::to_string(status) + " " + std::string(http::StatusReason(status));
    type = "text/html; charset=utf-8";
    body = "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>" + HtmlEscape(title) +
           "</title>\n<style>body{font-family:system-ui,sans-serif;max-width:40em;"
           "margin:4em auto;padding:0 1em;color:#222}code{color:#666}</style></head>\n"
           "<body><h1>" +
           HtmlEscape(title) + "</h1>\n<p>" + HtmlEscape(why.message()) + ".</p>\n";
    if (!why.hint().empty()) {
      body += "<p>" + HtmlEscape(why.hint()) + ".</p>\n";
    }
    body += "<p><code>" + HtmlEscape(why.error_code()) + " &middot; " + HtmlEscape(request_id) +
            "</code></p></body></html>\n";
  } else {
    json::object error{{"code", why.error_code()}, {"message", ValidUtf8(why.message())}};
    if (!why.hint().empty()) {
      error["hint"] = ValidUtf8(why.hint());
    }
    error["requestId"] = std::string(request_id);
    type = "application/json";
    body = ToJson(json::object{{"error", std::move(error)}});
  }
  std::string out =
      "HTTP/1.1 " + std::to_string(status) + " " + std::string(http::StatusReason(status)) + "\r\n";
  out += date_line;
  out += "Content-Type: ";
  out += type;
  out += "\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\nCache-Control: no-store\r\nX-Request-Id: ";
  out += request_id;
  out += "\r\n";
  out += extra_headers;
  if (!keep_alive) {
    out += "Connection: close\r\n";
  }
  out += "\r\n";
  out += body;
  return out;
}

Status NotFound(const HostMatch& match) {
  switch (match.kind) {
    case HostMatch::Kind::kSandbox:
      return Status::NotFound(
          "SANDBOX_PORT_NOT_FOUND",
          "no running sandbox " + match.label + " serves port " + std::to_string(match.port),
          "check the sandbox id and that it is running (GET /v1/sandboxes/" + match.label + ")");
    case HostMatch::Kind::kCustom:
      return Status::NotFound("DOMAIN_NOT_FOUND", "no app has the domain " + match.host,
                              "attach it with PUT /v1/apps/{app}/domains");
    default:
      return Status::NotFound("APP_NOT_FOUND", "no app named " + match.label + " is running",
                              "check the name in the address, or deploy the app with `kiln "
                              "deploy`");
  }
}

Status UpstreamFailed(const service::AppRoute& route, std::string message) {
  return Status::Unavailable(
      "UPSTREAM_FAILED", std::move(message),
      "check that the app listens on 127.0.0.1:" + std::to_string(route.port) +
          (route.sandbox ? "" : " (the PORT variable)") + " and look at its logs");
}

Status UpstreamTimeout(const service::AppRoute& route, std::chrono::milliseconds timeout,
                       std::string_view what) {
  return Status::Unavailable(
      "UPSTREAM_TIMEOUT",
      "the app did not " + std::string(what) + " within " + std::to_string(timeout.count()) + " ms",
      "the app on port " + std::to_string(route.port) +
          " may be overloaded or stuck; look at its logs");
}

}  // namespace kiln::gateway::internal
