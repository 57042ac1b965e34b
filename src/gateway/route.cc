// MatchHost: the Host header to a route kind. Pure string work, fuzzed by route_fuzz.cc.

#include <charconv>
#include <string>
#include <string_view>

#include "gateway/gateway.h"

namespace kiln::gateway {
namespace {

char Lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

// A DNS label: 1-63 of [a-z0-9-], not starting or ending with '-'. `text` is lower-case.
bool IsLabel(std::string_view text) {
  if (text.empty() || text.size() > 63 || text.front() == '-' || text.back() == '-') {
    return false;
  }
  for (char c : text) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-')) {
      return false;
    }
  }
  return true;
}

// A host name of labels separated by dots, at most 253 characters.
bool IsHostName(std::string_view text) {
  if (text.empty() || text.size() > 253) {
    return false;
  }
  while (true) {
    size_t dot = text.find('.');
    if (!IsLabel(text.substr(0, dot))) {
      return false;
    }
    if (dot == std::string_view::npos) {
      return true;
    }
    text.remove_prefix(dot + 1);
  }
}

bool AllDigitsAndDots(std::string_view text) {
  return text.find_first_not_of("0123456789.") == std::string_view::npos;
}

// "3000-sbx_k2…" or "3000-k2…" (the DNS-clean spelling) -> port and "sbx_k2…".
bool SandboxLabel(std::string_view label, HostMatch& out) {
  size_t dash = label.find('-');
  if (dash == std::string_view::npos || dash == 0 || dash > 5) {
    return false;
  }
  unsigned port = 0;
  auto [end, ec] = std::from_chars(label.data(), label.data() + dash, port);
  if (ec != std::errc() || end != label.data() + dash || port == 0 || port > 65535) {
    return false;
  }
  std::string_view id = label.substr(dash + 1);
  if (id.starts_with("sbx_")) {
    id.remove_prefix(4);
  }
  constexpr std::string_view kAlphabet = "0123456789abcdefghjkmnpqrstvwxyz";
  if (id.size() != 20 || id.find_first_not_of(kAlphabet) != std::string_view::npos) {
    return false;
  }
  out.kind = HostMatch::Kind::kSandbox;
  out.port = static_cast<uint16_t>(port);
  out.label = "sbx_" + std::string(id);
  return true;
}

}  // namespace

HostMatch MatchHost(std::string_view host_header, std::string_view base_domain) {
  HostMatch match;
  std::string_view host = host_header;
  if (host.empty() || host.front() == '[') {
    return match;  // absent, or an IPv6 literal: the API's
  }
  size_t colon = host.find(':');
  if (colon != std::string_view::npos) {
    std::string_view port = host.substr(colon + 1);
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string_view::npos) {
      return match;
    }
    host = host.substr(0, colon);
  }
  if (!host.empty() && host.back() == '.') {
    host.remove_suffix(1);
  }
  if (host.empty() || host.size() > 253) {
    return match;
  }
  match.host.resize(host.size());
  for (size_t i = 0; i < host.size(); ++i) {
    match.host[i] = Lower(host[i]);
  }
  std::string_view base = base_domain;
  if (!base.empty() && base.back() == '.') {
    base.remove_suffix(1);
  }
  std::string_view name = match.host;
  bool under_base = name.size() > base.size() + 1 && name[name.size() - base.size() - 1] == '.';
  if (under_base) {
    for (size_t i = 0; i < base.size(); ++i) {
      if (name[name.size() - base.size() + i] != Lower(base[i])) {
        under_base = false;
        break;
      }
    }
  }
  if (under_base) {
    std::string_view label = name.substr(0, name.size() - base.size() - 1);
    if (label.find('.') != std::string_view::npos) {
      return match;  // a.b.{base}: nothing of ours
    }
    if (SandboxLabel(label, match)) {
      return match;
    }
    if (IsLabel(label)) {
      match.kind = HostMatch::Kind::kApp;
      match.label = std::string(label);
    }
    return match;
  }
  // Another name: a custom domain if it looks like one. The base domain itself, IP
  // addresses and localhost are the API's.
  bool is_base = name.size() == base.size();
  for (size_t i = 0; is_base && i < base.size(); ++i) {
    is_base = name[i] == Lower(base[i]);
  }
  if (is_base || name == "localhost" || AllDigitsAndDots(name) || !IsHostName(name) ||
      name.find('.') == std::string_view::npos) {
    return match;
  }
  match.kind = HostMatch::Kind::kCustom;
  return match;
}

}  // namespace kiln::gateway
