#include "auth/auth.h"

namespace kiln::auth {
namespace {

struct ScopeName {
  Scope scope;
  std::string_view name;
};
constexpr ScopeName kScopeNames[] = {
    {kRead, "read"}, {kWrite, "write"}, {kExec, "exec"}, {kAdmin, "admin"}};

}  // namespace

Result<Scopes> ParseScopes(const std::vector<std::string>& names) {
  Scopes out = 0;
  for (const auto& name : names) {
    bool known = false;
    for (const auto& s : kScopeNames) {
      if (s.name == name) {
        out |= s.scope;
        known = true;
      }
    }
    if (!known) {
      return Status::InvalidArgument("UNKNOWN_SCOPE", "unknown scope \"" + name + "\"",
                                     "use any of: read, write, exec, admin");
    }
  }
  return out;
}

std::vector<std::string> ScopeNames(Scopes scopes) {
  std::vector<std::string> out;
  for (const auto& s : kScopeNames) {
    if (scopes & s.scope) {
      out.emplace_back(s.name);
    }
  }
  return out;
}

bool HasScopes(Scopes held, Scopes needed) {
  if (held & kAdmin) {
    return true;
  }
  return (held & needed) == needed;
}

GeneratedKey GenerateKey() {
  GeneratedKey key;
  key.secret = std::string(kKeyPrefix) + crypto::Base64UrlEncode(crypto::RandomBytes(32));
  key.hash = HashKey(key.secret);
  key.prefix = key.secret.substr(0, 12);
  return key;
}

std::string HashKey(std::string_view secret) { return crypto::Sha256Hex(secret); }

}  // namespace kiln::auth
