#include "core/crypto.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <system_error>

namespace kiln::crypto {
namespace {

constexpr size_t kKeySize = 32;
constexpr size_t kNonceSize = 12;
constexpr size_t kTagSize = 16;
constexpr std::string_view kSealPrefix = "v1.";

// OpenSSL treats a null pointer differently from an empty buffer in a few places (a null
// HMAC key means "reuse the previous key"), so empty inputs always get a real address.
const unsigned char* Bytes(std::string_view s) {
  static const unsigned char kEmpty = 0;
  return s.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(s.data());
}

// A failure inside OpenSSL on valid arguments means the library or the process is broken
// (allocation failure); there is no meaningful way to continue.
[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "kiln: fatal: %s failed\n", what);
  std::abort();
}

constexpr char kBase64UrlAlphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

int Base64UrlValue(char c) {
  if (c >= 'A' && c <= 'Z') {
    return c - 'A';
  }
  if (c >= 'a' && c <= 'z') {
    return c - 'a' + 26;
  }
  if (c >= '0' && c <= '9') {
    return c - '0' + 52;
  }
  if (c == '-') {
    return 62;
  }
  if (c == '_') {
    return 63;
  }
  return -1;
}

Status DecryptFailed(std::string message) {
  return Status(Code::kInternal, "SECRET_DECRYPT_FAILED", std::move(message),
                "the value was sealed under a different master key or was modified; "
                "restore the original key file");
}

Status WriteAll(int fd, std::string_view data, const std::string& what) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      return Status::FromErrno("write(\"" + what + "\")", errno);
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return Status::Ok();
}

Status FsyncDirectory(const std::filesystem::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) {
    return Status::FromErrno("open(\"" + dir.string() + "\")", errno);
  }
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) {
    return Status::FromErrno("fsync(\"" + dir.string() + "\")", err);
  }
  return Status::Ok();
}

}  // namespace

std::string RandomBytes(size_t n) {
  std::string out(n, '\0');
  if (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    Die("RAND_bytes");
  }
  return out;
}

std::array<uint8_t, 32> Sha256(std::string_view data) {
  std::array<uint8_t, 32> out{};
  unsigned int len = 0;
  if (EVP_Digest(Bytes(data), data.size(), out.data(), &len, EVP_sha256(), nullptr) != 1 ||
      len != out.size()) {
    Die("EVP_Digest(SHA-256)");
  }
  return out;
}

std::string Sha256Hex(std::string_view data) {
  auto digest = Sha256(data);
  return HexEncode(std::string_view(reinterpret_cast<const char*>(digest.data()), digest.size()));
}

std::string HmacSha256(std::string_view key, std::string_view data) {
  std::string out(32, '\0');
  unsigned int len = 0;
  if (HMAC(EVP_sha256(), Bytes(key), static_cast<int>(key.size()), Bytes(data), data.size(),
           reinterpret_cast<unsigned char*>(out.data()), &len) == nullptr ||
      len != out.size()) {
    Die("HMAC(SHA-256)");
  }
  return out;
}

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // The length is not secret (MACs and hashes have a fixed size); only the contents are.
  if (a.size() != b.size()) {
    return false;
  }
  if (a.empty()) {
    return true;
  }
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::string HexEncode(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 0xf]);
  }
  return out;
}

std::string Base64UrlEncode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() * 4 + 2) / 3);
  size_t i = 0;
  auto byte = [&](size_t k) { return static_cast<uint32_t>(static_cast<unsigned char>(bytes[k])); };
  for (; i + 3 <= bytes.size(); i += 3) {
    uint32_t v = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    out.push_back(kBase64UrlAlphabet[(v >> 18) & 63]);
    out.push_back(kBase64UrlAlphabet[(v >> 12) & 63]);
    out.push_back(kBase64UrlAlphabet[(v >> 6) & 63]);
    out.push_back(kBase64UrlAlphabet[v & 63]);
  }
  size_t rest = bytes.size() - i;
  if (rest == 1) {
    uint32_t v = byte(i) << 16;
    out.push_back(kBase64UrlAlphabet[(v >> 18) & 63]);
    out.push_back(kBase64UrlAlphabet[(v >> 12) & 63]);
  } else if (rest == 2) {
    uint32_t v = byte(i) << 16 | byte(i + 1) << 8;
    out.push_back(kBase64UrlAlphabet[(v >> 18) & 63]);
    out.push_back(kBase64UrlAlphabet[(v >> 12) & 63]);
    out.push_back(kBase64UrlAlphabet[(v >> 6) & 63]);
  }
  return out;
}

Result<std::string> Base64UrlDecode(std::string_view text) {
  // A lone trailing character carries only 6 bits, less than one byte: no encoder emits it.
  if (text.size() % 4 == 1) {
    return Status::InvalidArgument(
        "INVALID_BASE64",
        "base64url text of length " + std::to_string(text.size()) + " cannot be decoded",
        "send the value exactly as it was issued, without padding");
  }
  std::string out;
  out.reserve(text.size() * 3 / 4);
  uint32_t acc = 0;
  int bits = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    int v = Base64UrlValue(text[i]);
    if (v < 0) {
      return Status::InvalidArgument(
          "INVALID_BASE64", "invalid base64url character at offset " + std::to_string(i),
          "use the URL-safe alphabet A-Z a-z 0-9 - _ without '=' padding");
    }
    acc = (acc << 6) | static_cast<uint32_t>(v);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  // Leftover bits must be zero; otherwise two different texts would decode to the same bytes,
  // which would let a token be altered without changing what it means.
  if (bits > 0 && (acc & ((1u << bits) - 1)) != 0) {
    return Status::InvalidArgument("INVALID_BASE64", "base64url text has non-zero padding bits",
                                   "send the value exactly as it was issued");
  }
  return out;
}

std::string Base64Encode(std::string_view bytes) {
  std::string out(4 * ((bytes.size() + 2) / 3), '\0');
  int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                          reinterpret_cast<const unsigned char*>(bytes.data()),
                          static_cast<int>(bytes.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

Result<std::string> Base64Decode(std::string_view text) {
  // The standard alphabet is the URL-safe one with + and / for - and _; padding is optional.
  while (!text.empty() && text.back() == '=') {
    text.remove_suffix(1);
  }
  std::string url(text);
  for (char& c : url) {
    if (c == '+') {
      c = '-';
    } else if (c == '/') {
      c = '_';
    } else if (c == '-' || c == '_') {
      return Status::InvalidArgument("INVALID_BASE64",
                                     "invalid base64 character '" + std::string(1, c) + "'",
                                     "use standard base64 (A-Z a-z 0-9 + /)");
    }
  }
  auto decoded = Base64UrlDecode(url);
  if (!decoded.ok()) {
    return Status::InvalidArgument("INVALID_BASE64", "content is not valid base64",
                                   "use standard base64 (A-Z a-z 0-9 + /, = padding)");
  }
  return decoded;
}

SecretBox SecretBox::FromKey(std::string key32) {
  if (key32.size() != kKeySize) {
    Die("SecretBox::FromKey with a key that is not 32 bytes");
  }
  return SecretBox(std::move(key32));
}

Result<SecretBox> SecretBox::OpenOrCreate(const std::filesystem::path& path) {
  const std::string name = path.string();
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno != ENOENT) {
    return Status::FromErrno("open(\"" + name + "\")", errno);
  }
  if (fd < 0) {
    std::error_code ec;
    std::filesystem::path dir = path.parent_path();
    if (!dir.empty()) {
      std::filesystem::create_directories(dir, ec);
      if (ec) {
        return Status::Internal("mkdir(\"" + dir.string() + "\"): " + ec.message(),
                                "check that the data directory is writable");
      }
    }
    std::string key = RandomBytes(kKeySize);
    KILN_RETURN_IF_ERROR(WriteFileAtomic(path, key, 0600));
    return SecretBox(std::move(key));
  }

  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    return Status::FromErrno("fstat(\"" + name + "\")", err);
  }
  if ((st.st_mode & 077) != 0) {
    ::close(fd);
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", static_cast<unsigned>(st.st_mode & 07777));
    return Status::Internal(
        "master key " + name + " has mode " + mode + " and is readable by other users",
        "run `chmod 600 " + name + "` and start again");
  }
  if (st.st_size != static_cast<off_t>(kKeySize)) {
    ::close(fd);
    return Status::Internal("master key " + name + " is " + std::to_string(st.st_size) +
                                " bytes; a master key is exactly 32 bytes",
                            "restore the key file from a backup; if no secrets were ever stored, "
                            "remove it and a new one will be created");
  }
  std::string key(kKeySize, '\0');
  size_t got = 0;
  while (got < key.size()) {
    ssize_t n = ::read(fd, key.data() + got, key.size() - got);
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      int err = n < 0 ? errno : EIO;
      ::close(fd);
      return Status::FromErrno("read(\"" + name + "\")", err);
    }
    got += static_cast<size_t>(n);
  }
  ::close(fd);
  return SecretBox(std::move(key));
}

std::string SecretBox::Seal(std::string_view plaintext, std::string_view aad) const {
  std::string nonce = RandomBytes(kNonceSize);
  std::string blob = nonce;
  blob.resize(kNonceSize + plaintext.size() + kTagSize);
  auto* ct = reinterpret_cast<unsigned char*>(blob.data()) + kNonceSize;

  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (ctx == nullptr) {
    Die("EVP_CIPHER_CTX_new");
  }
  int len = 0;
  int total = 0;
  bool ok =
      EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, kNonceSize, nullptr) == 1 &&
      EVP_EncryptInit_ex(ctx, nullptr, nullptr, Bytes(key_), Bytes(nonce)) == 1 &&
      (aad.empty() ||
       EVP_EncryptUpdate(ctx, nullptr, &len, Bytes(aad), static_cast<int>(aad.size())) == 1) &&
      EVP_EncryptUpdate(ctx, ct, &len, Bytes(plaintext), static_cast<int>(plaintext.size())) == 1;
  total = len;
  ok = ok && EVP_EncryptFinal_ex(ctx, ct + total, &len) == 1;
  total += len;
  ok = ok && static_cast<size_t>(total) == plaintext.size() &&
       EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, kTagSize, ct + total) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!ok) {
    Die("AES-256-GCM encryption");
  }
  return std::string(kSealPrefix) + Base64UrlEncode(blob);
}

Result<std::string> SecretBox::Open(std::string_view sealed, std::string_view aad) const {
  if (!sealed.starts_with(kSealPrefix)) {
    return DecryptFailed("sealed value does not start with \"v1.\"");
  }
  auto blob = Base64UrlDecode(sealed.substr(kSealPrefix.size()));
  if (!blob.ok()) {
    return DecryptFailed("sealed value is not valid base64url");
  }
  if (blob->size() < kNonceSize + kTagSize) {
    return DecryptFailed("sealed value is too short");
  }

  std::string_view all(*blob);
  std::string_view nonce = all.substr(0, kNonceSize);
  std::string_view ct = all.substr(kNonceSize, all.size() - kNonceSize - kTagSize);
  std::string tag(all.substr(all.size() - kTagSize));
  std::string plaintext(ct.size(), '\0');
  auto* pt = reinterpret_cast<unsigned char*>(plaintext.data());

  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (ctx == nullptr) {
    Die("EVP_CIPHER_CTX_new");
  }
  int len = 0;
  int total = 0;
  bool setup = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
               EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, kNonceSize, nullptr) == 1 &&
               EVP_DecryptInit_ex(ctx, nullptr, nullptr, Bytes(key_), Bytes(nonce)) == 1 &&
               (aad.empty() || EVP_DecryptUpdate(ctx, nullptr, &len, Bytes(aad),
                                                 static_cast<int>(aad.size())) == 1) &&
               EVP_DecryptUpdate(ctx, pt, &len, Bytes(ct), static_cast<int>(ct.size())) == 1 &&
               EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, kTagSize, tag.data()) == 1;
  if (!setup) {
    EVP_CIPHER_CTX_free(ctx);
    Die("AES-256-GCM decryption setup");
  }
  total = len;
  // Final is where GCM checks the tag: failure means a wrong key, wrong aad or modified data.
  bool authentic = EVP_DecryptFinal_ex(ctx, pt + total, &len) == 1;
  EVP_CIPHER_CTX_free(ctx);
  if (!authentic) {
    OPENSSL_cleanse(plaintext.data(), plaintext.size());
    return DecryptFailed("sealed value failed authentication");
  }
  return plaintext;
}

std::string SecretBox::DeriveKey(std::string_view label) const {
  std::string info = "kiln:";
  info += label;
  return HmacSha256(key_, info);
}

Status WriteFileAtomic(const std::filesystem::path& path, std::string_view data, unsigned mode) {
  std::filesystem::path tmp = path;
  tmp += ".tmp." + HexEncode(RandomBytes(6));
  const std::string tmp_name = tmp.string();

  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
  if (fd < 0) {
    return Status::FromErrno("open(\"" + tmp_name + "\")", errno);
  }
  auto fail = [&](Status status) {
    ::close(fd);
    ::unlink(tmp.c_str());
    return status;
  };
  // open() applies the umask; the caller asked for exactly `mode`.
  if (::fchmod(fd, mode) != 0) {
    return fail(Status::FromErrno("fchmod(\"" + tmp_name + "\")", errno));
  }
  Status written = WriteAll(fd, data, tmp_name);
  if (!written.ok()) {
    return fail(written);
  }
  if (::fsync(fd) != 0) {
    return fail(Status::FromErrno("fsync(\"" + tmp_name + "\")", errno));
  }
  if (::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Status::FromErrno("close(\"" + tmp_name + "\")", err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    return Status::FromErrno("rename(\"" + tmp_name + "\", \"" + path.string() + "\")", err);
  }
  // Without syncing the directory the rename itself may be lost in a crash.
  std::filesystem::path dir = path.parent_path();
  return FsyncDirectory(dir.empty() ? std::filesystem::path(".") : dir);
}

}  // namespace kiln::crypto
