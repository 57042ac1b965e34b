#pragma once
// Cryptographic primitives over OpenSSL 3. All functions are thread-safe.

#include <array>
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "core/status.h"

namespace kiln::crypto {

// Cryptographically secure random bytes (RAND_bytes). Aborts if the CSPRNG fails, as
// there is no safe way to continue without randomness.
std::string RandomBytes(size_t n);

std::array<uint8_t, 32> Sha256(std::string_view data);
std::string Sha256Hex(std::string_view data);
std::string HmacSha256(std::string_view key, std::string_view data);  // 32 raw bytes

// Compares in time independent of where the inputs differ (for MACs and hashes).
bool ConstantTimeEquals(std::string_view a, std::string_view b);

std::string HexEncode(std::string_view bytes);
// URL-safe base64 without padding (RFC 4648 §5), as used in keys, JWTs and cursors.
std::string Base64UrlEncode(std::string_view bytes);
Result<std::string> Base64UrlDecode(std::string_view text);
// Standard base64 with padding (RFC 4648 §4), for file contents in JSON. Decode accepts it
// with or without padding and refuses anything else.
std::string Base64Encode(std::string_view bytes);
Result<std::string> Base64Decode(std::string_view text);

// AES-256-GCM under a 32-byte master key kept in a file of mode 0600 (DESIGN.md §5).
// Sealed values are "v1." + base64url(nonce[12] || ciphertext || tag[16]); the associated
// data binds a ciphertext to its place (e.g. "env:app_x:KEY") so values cannot be swapped.
// Immutable after Open, so safe to share between threads.
class SecretBox {
 public:
  // Reads the key at `path`, creating it (0600, fsynced) when the file does not exist.
  // Refuses a key file readable by group or others.
  static Result<SecretBox> OpenOrCreate(const std::filesystem::path& path);
  static SecretBox FromKey(std::string key32);  // for tests

  std::string Seal(std::string_view plaintext, std::string_view aad = {}) const;
  Result<std::string> Open(std::string_view sealed, std::string_view aad = {}) const;
  // A subkey for one purpose (HMAC(master, "kiln:" + label)), e.g. the JWT signing key.
  std::string DeriveKey(std::string_view label) const;

 private:
  explicit SecretBox(std::string key) : key_(std::move(key)) {}
  std::string key_;
};

// Writes `data` to `path` atomically (temp file, fsync, rename, fsync dir) with `mode`.
Status WriteFileAtomic(const std::filesystem::path& path, std::string_view data, unsigned mode);

}  // namespace kiln::crypto
