#include "core/crypto.h"

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

namespace kiln::crypto {
namespace {

namespace fs = std::filesystem;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "kiln_crypto_test.XXXXXX").string();
    path_ = ::mkdtemp(tmpl.data());
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

unsigned ModeOf(const fs::path& p) {
  struct stat st {};
  EXPECT_EQ(::stat(p.c_str(), &st), 0);
  return st.st_mode & 0777;
}

TEST(CryptoTest, Sha256KnownAnswer) {
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Sha256Hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  auto raw = Sha256("abc");
  EXPECT_EQ(raw[0], 0xba);
  EXPECT_EQ(raw[31], 0xad);
}

TEST(CryptoTest, HmacSha256Rfc4231Case2) {
  EXPECT_EQ(HexEncode(HmacSha256("Jefe", "what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

TEST(CryptoTest, RandomBytesHaveLengthAndDiffer) {
  EXPECT_EQ(RandomBytes(0).size(), 0u);
  std::string a = RandomBytes(32);
  std::string b = RandomBytes(32);
  EXPECT_EQ(a.size(), 32u);
  EXPECT_NE(a, b);
}

TEST(CryptoTest, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals("", ""));
  EXPECT_TRUE(ConstantTimeEquals("abc", "abc"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abd"));
  EXPECT_FALSE(ConstantTimeEquals("abc", "abcd"));
}

TEST(CryptoTest, HexEncodeIsLowercase) {
  EXPECT_EQ(HexEncode(std::string("\x00\xff\x1a", 3)), "00ff1a");
}

TEST(CryptoTest, Base64UrlKnownVectors) {
  // RFC 4648 §10 vectors, unpadded.
  EXPECT_EQ(Base64UrlEncode(""), "");
  EXPECT_EQ(Base64UrlEncode("f"), "Zg");
  EXPECT_EQ(Base64UrlEncode("fo"), "Zm8");
  EXPECT_EQ(Base64UrlEncode("foo"), "Zm9v");
  EXPECT_EQ(Base64UrlEncode("foobar"), "Zm9vYmFy");
  // The URL-safe alphabet: 0xfb 0xff encodes with '-' and '_' rather than '+' and '/'.
  EXPECT_EQ(Base64UrlEncode("\xfb\xff"), "-_8");
}

TEST(CryptoTest, Base64UrlRoundTripsAllBytesAndLengths) {
  std::string all;
  for (int i = 0; i < 256; ++i) {
    all.push_back(static_cast<char>(i));
  }
  for (size_t len = 0; len <= all.size(); ++len) {
    std::string in = all.substr(all.size() - len);
    auto out = Base64UrlDecode(Base64UrlEncode(in));
    ASSERT_TRUE(out.ok()) << len << ": " << out.status().ToString();
    EXPECT_EQ(*out, in);
  }
}

TEST(CryptoTest, Base64UrlRejectsBadInput) {
  for (std::string_view bad : {"Zg==", "Zm9v+", "Zm/v", "Z", "Zm9vY", "Zm 9v", "Zh"}) {
    auto out = Base64UrlDecode(bad);
    ASSERT_FALSE(out.ok()) << bad;
    EXPECT_EQ(out.status().code(), Code::kInvalidArgument);
    EXPECT_EQ(out.status().error_code(), "INVALID_BASE64");
  }
}

TEST(SecretBoxTest, SealOpenRoundTrip) {
  SecretBox box = SecretBox::FromKey(RandomBytes(32));
  std::string sealed = box.Seal("hunter2", "env:app_x:PASSWORD");
  EXPECT_TRUE(sealed.starts_with("v1."));
  EXPECT_EQ(sealed.find("hunter2"), std::string::npos);
  auto opened = box.Open(sealed, "env:app_x:PASSWORD");
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(*opened, "hunter2");

  auto empty = box.Open(box.Seal(""));
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(*empty, "");
  // A fresh nonce each time: sealing twice gives different text.
  EXPECT_NE(box.Seal("x"), box.Seal("x"));
}

TEST(SecretBoxTest, TamperedCiphertextFails) {
  SecretBox box = SecretBox::FromKey(RandomBytes(32));
  std::string sealed = box.Seal("some secret value");
  auto blob = Base64UrlDecode(std::string_view(sealed).substr(3));
  ASSERT_TRUE(blob.ok());
  for (size_t i : {size_t{0}, size_t{12}, blob->size() - 1}) {
    std::string tampered = *blob;
    tampered[i] ^= 0x01;
    auto opened = box.Open("v1." + Base64UrlEncode(tampered));
    ASSERT_FALSE(opened.ok()) << "byte " << i;
    EXPECT_EQ(opened.status().error_code(), "SECRET_DECRYPT_FAILED");
    EXPECT_EQ(opened.status().code(), Code::kInternal);
  }
}

TEST(SecretBoxTest, WrongAadWrongKeyAndMalformedFail) {
  SecretBox box = SecretBox::FromKey(RandomBytes(32));
  std::string sealed = box.Seal("v", "env:app_x:A");
  EXPECT_FALSE(box.Open(sealed, "env:app_x:B").ok());
  EXPECT_FALSE(box.Open(sealed).ok());
  EXPECT_FALSE(SecretBox::FromKey(RandomBytes(32)).Open(sealed, "env:app_x:A").ok());
  EXPECT_FALSE(box.Open("v2." + sealed.substr(3), "env:app_x:A").ok());
  EXPECT_FALSE(box.Open("v1.AAAA", "env:app_x:A").ok());
  EXPECT_FALSE(box.Open("v1.!!!", "env:app_x:A").ok());
}

TEST(SecretBoxTest, DeriveKeyIsHmacOfLabel) {
  std::string key = RandomBytes(32);
  SecretBox box = SecretBox::FromKey(key);
  EXPECT_EQ(box.DeriveKey("jwt"), HmacSha256(key, "kiln:jwt"));
  EXPECT_NE(box.DeriveKey("jwt"), box.DeriveKey("cursor"));
}

TEST(SecretBoxTest, OpenOrCreateMakesPrivateKeyAndReopens) {
  TempDir dir;
  fs::path key = dir.path() / "keys" / "master.key";
  auto box = SecretBox::OpenOrCreate(key);
  ASSERT_TRUE(box.ok()) << box.status().ToString();
  EXPECT_EQ(fs::file_size(key), 32u);
  EXPECT_EQ(ModeOf(key), 0600u);
  std::string sealed = box->Seal("persisted", "aad");

  auto again = SecretBox::OpenOrCreate(key);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  auto opened = again->Open(sealed, "aad");
  ASSERT_TRUE(opened.ok()) << opened.status().ToString();
  EXPECT_EQ(*opened, "persisted");
  // No temporary files left behind.
  EXPECT_EQ(std::distance(fs::directory_iterator(key.parent_path()), fs::directory_iterator()), 1);
}

TEST(SecretBoxTest, RefusesKeyReadableByOthers) {
  TempDir dir;
  fs::path key = dir.path() / "master.key";
  ASSERT_TRUE(WriteFileAtomic(key, RandomBytes(32), 0644).ok());
  EXPECT_EQ(ModeOf(key), 0644u);
  auto box = SecretBox::OpenOrCreate(key);
  ASSERT_FALSE(box.ok());
  EXPECT_NE(box.status().hint().find("chmod 600 " + key.string()), std::string::npos)
      << box.status().ToString();
}

TEST(SecretBoxTest, RefusesKeyOfWrongLength) {
  TempDir dir;
  fs::path key = dir.path() / "master.key";
  ASSERT_TRUE(WriteFileAtomic(key, RandomBytes(31), 0600).ok());
  auto box = SecretBox::OpenOrCreate(key);
  ASSERT_FALSE(box.ok());
  EXPECT_EQ(box.status().code(), Code::kInternal);
  EXPECT_NE(box.status().message().find(key.string()), std::string::npos);
  EXPECT_NE(box.status().message().find("32 bytes"), std::string::npos);
}

TEST(WriteFileAtomicTest, ReplacesContentsWithMode) {
  TempDir dir;
  fs::path file = dir.path() / "f";
  ASSERT_TRUE(WriteFileAtomic(file, "one", 0640).ok());
  ASSERT_TRUE(WriteFileAtomic(file, "two!", 0600).ok());
  std::ifstream in(file);
  std::string contents((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(contents, "two!");
  EXPECT_EQ(ModeOf(file), 0600u);
}

TEST(WriteFileAtomicTest, ReportsMissingDirectory) {
  TempDir dir;
  Status s = WriteFileAtomic(dir.path() / "no" / "such" / "f", "x", 0600);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("No such file or directory"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("open("), std::string::npos);
}

TEST(CryptoTest, StandardBase64RoundTripsBinary) {
  std::string bytes;
  for (int i = 0; i < 256; ++i) {
    bytes.push_back(static_cast<char>(i));
  }
  std::string text = Base64Encode(bytes);
  EXPECT_EQ(text.size() % 4, 0u);
  EXPECT_EQ(*Base64Decode(text), bytes);
  EXPECT_EQ(Base64Encode("hi?"), "aGk/");
  EXPECT_EQ(*Base64Decode("aGk/"), "hi?");
  EXPECT_EQ(*Base64Decode("aGk"), "hi");    // unpadded
  EXPECT_EQ(*Base64Decode("aGk="), "hi");   // padded
  EXPECT_FALSE(Base64Decode("aGk_").ok());  // URL alphabet is not standard base64
  EXPECT_FALSE(Base64Decode("a b").ok());
  EXPECT_EQ(*Base64Decode(""), "");
}

}  // namespace
}  // namespace kiln::crypto
