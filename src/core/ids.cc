#include "core/ids.h"

#include <cstdint>
#include <cstring>

#include "core/crypto.h"

namespace kiln {
namespace {

// Crockford-style lowercase base32: no i, l, o, u, so ids survive being read aloud or typed.
constexpr char kAlphabet[] = "0123456789abcdefghjkmnpqrstvwxyz";
constexpr size_t kIdChars = 20;

// prefix + '_' + 20 characters from the first 100 bits of `random` (at least 13 bytes).
std::string Encode(std::string_view prefix, const unsigned char* random) {
  std::string id;
  id.reserve(prefix.size() + 1 + kIdChars);
  id += prefix;
  id += '_';
  uint32_t acc = 0;
  int bits = 0;
  size_t next = 0;
  while (id.size() < prefix.size() + 1 + kIdChars) {
    if (bits < 5) {
      acc = (acc << 8) | random[next++];
      bits += 8;
    }
    bits -= 5;
    id += kAlphabet[(acc >> bits) & 31];
  }
  return id;
}

// xoshiro256** (Blackman and Vigna): fast, 256 bits of state, no short cycles.
class Xoshiro256 {
 public:
  Xoshiro256() {
    std::string seed = crypto::RandomBytes(sizeof(s_));
    std::memcpy(s_, seed.data(), sizeof(s_));
  }
  uint64_t Next() {
    uint64_t result = Rotl(s_[1] * 5, 7) * 9;
    uint64_t t = s_[1] << 17;
    s_[2] ^= s_[0];
    s_[3] ^= s_[1];
    s_[1] ^= s_[2];
    s_[0] ^= s_[3];
    s_[2] ^= t;
    s_[3] = Rotl(s_[3], 45);
    return result;
  }

 private:
  static uint64_t Rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }
  uint64_t s_[4];
};

}  // namespace

std::string NewId(std::string_view prefix) {
  // 13 random bytes hold 104 bits; 20 characters use the first 100 of them.
  std::string random = crypto::RandomBytes(13);
  return Encode(prefix, reinterpret_cast<const unsigned char*>(random.data()));
}

std::string NewRequestId() {
  thread_local Xoshiro256 generator;
  uint64_t words[2] = {generator.Next(), generator.Next()};
  unsigned char random[16];
  std::memcpy(random, words, sizeof(random));
  return Encode("req", random);
}

bool LooksLikeId(std::string_view id, std::string_view prefix) {
  if (id.size() <= prefix.size() + 1 || !id.starts_with(prefix) || id[prefix.size()] != '_') {
    return false;
  }
  std::string_view rest = id.substr(prefix.size() + 1);
  if (rest.size() > 64) {
    return false;
  }
  for (char c : rest) {
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) {
      return false;
    }
  }
  return true;
}

}  // namespace kiln
