#pragma once
// The gateway's parsers of client input, driven by one arbitrary byte string, with the
// properties that must hold whatever the input: used by the libFuzzer target
// (tests/fuzz/gateway_fuzz.cc, built with -DKILN_FUZZ=ON and clang) and by a deterministic
// run of random and mutated inputs in the unit tests (fuzz_test.cc). A broken property
// aborts, which both report.

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "gateway/gateway.h"
#include "gateway/internal.h"

namespace kiln::gateway::fuzz {

inline void Require(bool ok, const char* what, std::string_view input) {
  if (!ok) {
    std::fprintf(stderr, "fuzz property broken: %s (input %zu bytes)\n", what, input.size());
    std::abort();
  }
}

inline bool IsLowerLabelChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

// One input, read three ways: as a Host header, as a request target, as a Cookie header.
inline void CheckOne(std::string_view input) {
  for (std::string_view base :
       {std::string_view("localhost"), std::string_view("apps.example.com")}) {
    HostMatch m = MatchHost(input, base);
    switch (m.kind) {
      case HostMatch::Kind::kApp:
        Require(!m.label.empty() && m.label.size() <= 63, "app label length", input);
        for (char c : m.label) {
          Require(IsLowerLabelChar(c), "app label is a lower-case DNS label", input);
        }
        Require(m.label.front() != '-' && m.label.back() != '-', "label edges", input);
        Require(m.host == m.label + "." + std::string(base), "app host is label.base", input);
        break;
      case HostMatch::Kind::kSandbox:
        Require(m.port != 0, "sandbox port", input);
        Require(m.label.size() == 24 && m.label.starts_with("sbx_"), "sandbox id", input);
        break;
      case HostMatch::Kind::kCustom:
        Require(!m.host.empty() && m.host.size() <= 253, "custom host length", input);
        Require(m.host != base && !m.host.ends_with("." + std::string(base)),
                "a custom domain is never the base domain or under it", input);
        for (char c : m.host) {
          Require(IsLowerLabelChar(c) || c == '.', "custom host characters", input);
        }
        break;
      case HostMatch::Kind::kNone:
        break;
    }
    Require(m.host.find(':') == std::string::npos || m.kind == HostMatch::Kind::kNone,
            "a matched host has no port", input);
  }

  std::string without = internal::WithoutToken(input);
  Require(!without.empty(), "a redirect target is never empty", input);
  size_t q = without.find('?');
  if (q != std::string::npos) {
    std::string_view query = std::string_view(without).substr(q + 1);
    // No parameter named kiln_token survives (it would leak the share token into logs and
    // the app).
    size_t at = 0;
    while (at <= query.size()) {
      size_t amp = query.find('&', at);
      std::string_view pair =
          query.substr(at, amp == std::string_view::npos ? query.npos : amp - at);
      Require(!(pair == "kiln_token" || pair.starts_with("kiln_token=")),
              "kiln_token removed from the target", input);
      if (amp == std::string_view::npos) {
        break;
      }
      at = amp + 1;
    }
  }
  (void)internal::QueryToken(input);

  std::string cookies = internal::StripKilnCookies(input);
  size_t at = 0;
  while (at < cookies.size()) {
    size_t semi = cookies.find("; ", at);
    std::string_view pair =
        std::string_view(cookies).substr(at, semi == std::string::npos ? cookies.npos : semi - at);
    Require(!internal::StartsWithIgnoreCase(pair, "kiln_"), "no Kiln cookie reaches an app", input);
    if (semi == std::string::npos) {
      break;
    }
    at = semi + 2;
  }
  (void)internal::ListHas(input, "upgrade");
  (void)internal::ClientIp(input);
}

}  // namespace kiln::gateway::fuzz
