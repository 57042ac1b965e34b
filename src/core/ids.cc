#include "core/ids.h"

#include "core/crypto.h"

namespace kiln {
namespace {

// Crockford-style lowercase base32: no i, l, o, u, so ids survive being read aloud or typed.
constexpr char kAlphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
constexpr size_t kIdChars = 20;

}  // namespace

std::string NewId(std::string_view prefix) {
  // 13 random bytes hold 104 bits; 20 characters use the first 100 of them.
  std::string random = crypto::RandomBytes(13);
  std::string id;
  id.reserve(prefix.size() + 1 + kIdChars);
  id += prefix;
  id += '_';
  uint32_t acc = 0;
  int bits = 0;
  size_t next = 0;
  while (id.size() < prefix.size() + 1 + kIdChars) {
    if (bits < 5) {
      acc = (acc << 8) | static_cast<unsigned char>(random[next++]);
      bits += 8;
    }
    bits -= 5;
    id += kAlphabet[(acc >> bits) & 31];
  }
  return id;
}

bool LooksLikeId(std::string_view id, std::string_view prefix) {
  if (id.size() <= prefix.size() + 1 || !id.starts_with(prefix) || id[prefix.size()] != '_') {
    return false;
  }
  std::string_view rest = id.substr(prefix.size() + 1);
  if (rest.size() > 64) return false;
  for (char c : rest) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}

}  // namespace kiln
