// Header helpers of the proxy: hop-by-hop names, Connection lists, Kiln's cookies, the
// client address and the share-URL token in the query.

#include <string>
#include <string_view>

#include "gateway/internal.h"
#include "http/http.h"

namespace kiln::gateway::internal {
namespace {

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

std::string_view Trim(std::string_view text) {
  while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
    text.remove_prefix(1);
  }
  while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
    text.remove_suffix(1);
  }
  return text;
}

constexpr std::string_view kTokenParam = "kiln_token";

}  // namespace

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) {
    return false;
  }
  for (size_t i = 0; i < a.size(); ++i) {
    if (Lower(a[i]) != Lower(b[i])) {
      return false;
    }
  }
  return true;
}

bool StartsWithIgnoreCase(std::string_view text, std::string_view prefix) {
  return text.size() >= prefix.size() && EqualsIgnoreCase(text.substr(0, prefix.size()), prefix);
}

bool IsHopByHop(std::string_view name) {
  return EqualsIgnoreCase(name, "connection") || EqualsIgnoreCase(name, "keep-alive") ||
         StartsWithIgnoreCase(name, "proxy-") || EqualsIgnoreCase(name, "te") ||
         EqualsIgnoreCase(name, "trailer") || EqualsIgnoreCase(name, "transfer-encoding") ||
         EqualsIgnoreCase(name, "upgrade");
}

bool ListHas(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    size_t comma = list.find(',');
    if (EqualsIgnoreCase(Trim(list.substr(0, comma)), token)) {
      return true;
    }
    if (comma == std::string_view::npos) {
      break;
    }
    list.remove_prefix(comma + 1);
  }
  return false;
}

std::string StripKilnCookies(std::string_view cookie) {
  std::string out;
  while (!cookie.empty()) {
    size_t semi = cookie.find(';');
    std::string_view pair = Trim(cookie.substr(0, semi));
    if (!pair.empty() && !StartsWithIgnoreCase(pair, service::kKilnCookiePrefix)) {
      if (!out.empty()) {
        out += "; ";
      }
      out += pair;
    }
    if (semi == std::string_view::npos) {
      break;
    }
    cookie.remove_prefix(semi + 1);
  }
  return out;
}

std::string_view ClientIp(std::string_view remote) {
  if (!remote.empty() && remote.front() == '[') {
    size_t close = remote.find(']');
    return close == std::string_view::npos ? remote : remote.substr(1, close - 1);
  }
  size_t colon = remote.rfind(':');
  return colon == std::string_view::npos ? remote : remote.substr(0, colon);
}

std::string QueryToken(std::string_view target) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) {
    return {};
  }
  std::string_view query = target.substr(q + 1);
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    if (pair.starts_with(kTokenParam) &&
        (pair.size() == kTokenParam.size() || pair[kTokenParam.size()] == '=')) {
      std::string_view value =
          pair.size() > kTokenParam.size() ? pair.substr(kTokenParam.size() + 1) : "";
      auto decoded = http::PercentDecode(value);
      return decoded.ok() ? *decoded : std::string();
    }
    if (amp == std::string_view::npos) {
      break;
    }
    query.remove_prefix(amp + 1);
  }
  return {};
}

std::string WithoutToken(std::string_view target) {
  size_t q = target.find('?');
  if (q == std::string_view::npos) {
    return target.empty() ? "/" : std::string(target);
  }
  std::string out(target.substr(0, q));
  std::string_view query = target.substr(q + 1);
  std::string kept;
  while (!query.empty()) {
    size_t amp = query.find('&');
    std::string_view pair = query.substr(0, amp);
    bool token = pair.starts_with(kTokenParam) &&
                 (pair.size() == kTokenParam.size() || pair[kTokenParam.size()] == '=');
    if (!token && !pair.empty()) {
      kept += kept.empty() ? "" : "&";
      kept += pair;
    }
    if (amp == std::string_view::npos) {
      break;
    }
    query.remove_prefix(amp + 1);
  }
  if (!kept.empty()) {
    out += "?" + kept;
  }
  return out.empty() ? "/" : out;
}

}  // namespace kiln::gateway::internal
