#include "common/keys.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "common/config_error.h"
#include "common/toml_section.h"

namespace relay {
namespace {

constexpr std::string_view kPublicKeyPrefix = "ed25519:";

[[noreturn]] void fail(const std::filesystem::path& file, std::string key, std::string message) {
  throw ConfigError({{file.string(), 0, std::move(key), std::move(message)}});
}

std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) fail(file, "", "cannot read the file: " + std::string(std::strerror(errno)));
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

}  // namespace

const crypto::Key* KeyRing::find(std::uint32_t id) const {
  auto it = keys.find(id);
  return it == keys.end() ? nullptr : &it->second;
}

KeyRing generate_key_ring() {
  KeyRing ring;
  ring.current = 1;
  crypto::random_bytes(ring.keys[1]);
  return ring;
}

std::string key_ring_to_toml(const KeyRing& ring) {
  std::string text =
      "# relaymesh mesh key ring: SECRET. Copy it to every node with mode 0600.\n"
      "# Rotation: add a [[key]] with a new id on every node, then change `current`\n"
      "# everywhere, then remove the old [[key]] once no node sends with it.\n"
      "current = " +
      std::to_string(ring.current) + "\n";
  for (const auto& [id, key] : ring.keys) {
    text += "\n[[key]]\nid = " + std::to_string(id) + "\nsecret = \"" + crypto::base64_encode(key) +
            "\"\n";
  }
  return text;
}

KeyRing load_key_ring(const std::filesystem::path& file) {
  check_secret_file_mode(file);
  std::vector<ConfigIssue> issues;
  auto doc = parse_toml_file(file, issues);
  if (!doc) throw ConfigError(std::move(issues));
  TomlSection top(*doc, file.string(), "", issues, {"current", "key"});
  KeyRing ring;
  auto current = top.integer("current", true, 1, UINT32_MAX);
  const toml::array* keys = top.tables("key");
  if (keys == nullptr && issues.empty()) top.error("key", "missing; expected at least one [[key]]");
  for (std::size_t i = 0; keys != nullptr && i < keys->size(); ++i) {
    TomlSection entry(*keys->get(i)->as_table(), file.string(),
                      "key[" + std::to_string(i + 1) + "]", issues, {"id", "secret"});
    auto id = entry.integer("id", true, 1, UINT32_MAX);
    auto secret = entry.string("secret", true);
    if (!id || !secret) continue;
    auto raw = crypto::base64_decode(*secret);
    if (!raw || raw->size() != crypto::kKeySize) {
      entry.error("secret",
                  "expected 32 bytes in base64 (44 characters), as relayctl keygen --mesh writes");
      continue;
    }
    auto [slot, added] = ring.keys.try_emplace(static_cast<std::uint32_t>(*id));
    if (!added) entry.error("id", "duplicate key id " + std::to_string(*id));
    std::copy(raw->begin(), raw->end(), slot->second.begin());
  }
  if (current && issues.empty()) {
    ring.current = static_cast<std::uint32_t>(*current);
    if (ring.find(ring.current) == nullptr) {
      top.error("current", "key id " + std::to_string(ring.current) + " is not in the ring");
    }
  }
  if (!issues.empty()) throw ConfigError(std::move(issues));
  return ring;
}

crypto::SigningKey load_identity_key(const std::filesystem::path& file) {
  check_secret_file_mode(file);
  auto key = crypto::SigningKey::from_pem(read_file(file));
  if (!key) fail(file, "", "not an Ed25519 private key in PEM; create one with relayctl keygen");
  return *key;
}

std::string format_public_key(const crypto::PublicKeyBytes& key) {
  return std::string(kPublicKeyPrefix) + crypto::base64_encode(key);
}

std::optional<crypto::PublicKeyBytes> parse_public_key(std::string_view text) {
  if (!text.starts_with(kPublicKeyPrefix)) return std::nullopt;
  auto raw = crypto::base64_decode(text.substr(kPublicKeyPrefix.size()));
  if (!raw || raw->size() != crypto::kPublicKeySize) return std::nullopt;
  crypto::PublicKeyBytes key;
  std::copy(raw->begin(), raw->end(), key.begin());
  return key;
}

void check_secret_file_mode(const std::filesystem::path& file) {
  struct stat st {};
  if (::stat(file.c_str(), &st) != 0) {
    fail(file, "", "cannot open the key file: " + std::string(std::strerror(errno)));
  }
  if ((st.st_mode & 077) != 0) {
    char mode[8];
    std::snprintf(mode, sizeof mode, "%04o", st.st_mode & 07777);
    fail(file, "",
         std::string("secret key file has mode ") + mode +
             "; group and others must have no access (run: chmod 600 " + file.string() + ")");
  }
}

void write_secret_file(const std::filesystem::path& file, std::string_view content) {
  const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    throw std::runtime_error(file.string() + ": cannot create: " + std::strerror(errno) +
                             (errno == EEXIST ? " (refusing to overwrite a key file)" : ""));
  }
  std::size_t done = 0;
  while (done < content.size()) {
    const ssize_t n = ::write(fd, content.data() + done, content.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const std::string why = std::strerror(errno);
      ::close(fd);
      ::unlink(file.c_str());
      throw std::runtime_error(file.string() + ": cannot write: " + why);
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    throw std::runtime_error(file.string() + ": cannot write: " + std::strerror(errno));
  }
}

}  // namespace relay
