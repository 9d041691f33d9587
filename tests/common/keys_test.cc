#include "common/keys.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include "common/config_error.h"
#include "tests/support/temp_dir.h"

using namespace relay;
using relay::test::TempDir;
namespace fs = std::filesystem;

namespace {

std::string message_of(auto&& fn) {
  try {
    fn();
  } catch (const std::exception& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("a generated key ring survives its file format") {
  TempDir dir;
  const KeyRing ring = generate_key_ring();
  const auto file = dir / "mesh.keys";
  write_secret_file(file, key_ring_to_toml(ring));
  struct stat st {};
  REQUIRE(::stat(file.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  const KeyRing loaded = load_key_ring(file);
  CHECK(loaded.current == 1);
  REQUIRE(loaded.find(1) != nullptr);
  CHECK(*loaded.find(1) == *ring.find(1));
  CHECK(loaded.find(2) == nullptr);
}

TEST_CASE("write_secret_file never overwrites") {
  TempDir dir;
  const auto file = dir.write("exists", "old", fs::perms(0600));
  CHECK(message_of([&] { write_secret_file(file, "new"); }).find("refusing to overwrite") !=
        std::string::npos);
}

TEST_CASE("key ring errors name the file and the key") {
  TempDir dir;
  const std::string good = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
  auto error_of = [&](std::string_view text) {
    return message_of([&] { load_key_ring(dir.write("ring", text, fs::perms(0600))); });
  };
  CHECK(error_of("current = 1\n[[key]]\nid = 1\nsecret = \"" + good + "\"\n") == "");
  CHECK(error_of("current = 2\n[[key]]\nid = 1\nsecret = \"" + good + "\"\n")
            .find("ring:1: current: key id 2 is not in the ring") != std::string::npos);
  CHECK(error_of("current = 1\n[[key]]\nid = 1\nsecret = \"AAEC\"\n")
            .find("ring:4: key[1].secret: expected 32 bytes") != std::string::npos);
  CHECK(error_of("current = 1\ncolour = 3\n[[key]]\nid = 1\nsecret = \"" + good + "\"\n")
            .find("ring:2: colour: unknown key") != std::string::npos);
  CHECK(error_of("current = 1\n[[key]]\nid = 1\nsecret = \"" + good +
                 "\"\n[[key]]\nid = 1\nsecret = \"" + good + "\"\n")
            .find("key[2].id: duplicate key id 1") != std::string::npos);
  CHECK(error_of("current = [").find("ring:1: not valid TOML") != std::string::npos);
}

TEST_CASE("a secret file readable by group or others is refused") {
  TempDir dir;
  const auto key = crypto::SigningKey::generate();
  for (auto mode : {0640, 0604, 0644, 0610}) {
    CAPTURE(mode);
    const auto file = dir.write("id.key", key.to_pem(), fs::perms(mode));
    const std::string error = message_of([&] { load_identity_key(file); });
    CHECK(error.find(file.string()) != std::string::npos);
    CHECK(error.find("chmod 600") != std::string::npos);
  }
  const auto file = dir.write("id.key", key.to_pem(), fs::perms(0600));
  CHECK(load_identity_key(file).public_key() == key.public_key());
  CHECK(load_identity_key(dir.write("ro.key", key.to_pem(), fs::perms(0400))).public_key() ==
        key.public_key());
}

TEST_CASE("public key lines round trip and reject near misses") {
  const auto key = crypto::SigningKey::generate().public_key();
  const std::string line = format_public_key(key);
  CHECK(line.starts_with("ed25519:"));
  CHECK(parse_public_key(line) == key);
  CHECK_FALSE(parse_public_key(line.substr(8)));
  CHECK_FALSE(parse_public_key("ed25519:" + line.substr(12)));
  CHECK_FALSE(parse_public_key("x25519:" + line.substr(8)));
}
