#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <string>

#include "common/crypto.h"
#include "common/state_dir.h"
#include "tests/support/temp_dir.h"

using namespace relay;
using relay::test::TempDir;

TEST_CASE("state dir: counters survive a reopen, a damaged file is refused, not reset") {
  TempDir temp;
  const auto dir = temp.path() / "state" / "hq";
  {
    StateDir state(dir);
    CHECK_FALSE(state.read_counter("seq").has_value());
    state.write_counter("seq", 41);
    state.write_counter("seq", 42);
  }
  StateDir again(dir);
  CHECK(again.read_counter("seq") == 42u);
  CHECK((std::filesystem::status(dir).permissions() & std::filesystem::perms::others_all) ==
        std::filesystem::perms::none);

  std::ofstream(dir / "seq") << "43 00000000\n";  // a value with a wrong checksum
  CHECK_THROWS_WITH_AS(again.read_counter("seq"), doctest::Contains("not a relaymesh counter"),
                       std::runtime_error);
  std::ofstream(dir / "seq") << "4";  // torn
  CHECK_THROWS(again.read_counter("seq"));
}

TEST_CASE("state dir: one process at a time, the lock goes with its holder") {
  TempDir temp;
  const auto dir = temp.path() / "state";
  {
    StateDir first(dir);
    first.lock();
    // flock locks belong to the open file: a second open is refused even in
    // this process, as a second relayd would be.
    StateDir second(dir);
    const std::string holder = "in use by another relayd (pid " + std::to_string(::getpid()) + ")";
    CHECK_THROWS_WITH_AS(second.lock(), doctest::Contains(holder.c_str()), std::runtime_error);
  }
  StateDir after(dir);
  CHECK_NOTHROW(after.lock());
}

TEST_CASE("state dir: a folder that cannot be created is named") {
  TempDir temp;
  std::ofstream(temp.path() / "file") << "x";
  CHECK_THROWS_WITH_AS(StateDir(temp.path() / "file" / "sub"),
                       doctest::Contains("[node] state_dir"), std::runtime_error);
}

namespace {

std::string read_file(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// A counter file of the first format ("value checksum\n", replaced by rename).
void write_first_format(const std::filesystem::path& file, std::string_view value) {
  const auto digest = crypto::sha256({crypto::as_bytes(value)});
  static constexpr char hex[] = "0123456789abcdef";
  std::string text(value);
  text += ' ';
  for (int i = 0; i < 4; ++i) {
    text += hex[digest[static_cast<std::size_t>(i)] >> 4];
    text += hex[digest[static_cast<std::size_t>(i)] & 15];
  }
  std::ofstream(file, std::ios::binary) << text << '\n';
}

}  // namespace

TEST_CASE("state dir: counters are rewritten in place, in the older of two slots") {
  TempDir temp;
  StateDir state(temp.path() / "state");
  const auto file = temp.path() / "state" / "seq";
  state.write_counter("seq", 7);
  struct stat first {};
  REQUIRE(::stat(file.c_str(), &first) == 0);
  for (std::uint64_t v = 8; v < 20; ++v) state.write_counter("seq", v);
  struct stat later {};
  REQUIRE(::stat(file.c_str(), &later) == 0);
  // The same inode and size: no rename, no new blocks, so a full disk
  // cannot stop a seq from being numbered.
  CHECK(later.st_ino == first.st_ino);
  CHECK(later.st_size == 128);
  CHECK(later.st_blocks == first.st_blocks);
  CHECK(state.read_counter("seq") == 19u);
  CHECK(state.bump_counter("seq") == 20u);

  // A write torn by a power cut garbles the slot it was writing: the
  // other slot, the value before, stands.
  std::string text = read_file(file);
  const bool newest_first = text.find("v=00000000000000000020") < 64;
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(newest_first ? 10 : 74);
    f << "XXXX";
  }
  CHECK(state.read_counter("seq") == 19u);
  state.write_counter("seq", 21);  // goes over the torn slot
  CHECK(state.read_counter("seq") == 21u);
  // Both slots garbled: refused, never read as zero.
  std::ofstream(file, std::ios::binary) << std::string(127, 'x') << '\n';
  CHECK_THROWS_WITH_AS(state.read_counter("seq"), doctest::Contains("not a relaymesh counter"),
                       std::runtime_error);
}

TEST_CASE("state dir: a counter of the first format is read, then converted in place") {
  TempDir temp;
  StateDir state(temp.path() / "state");
  const auto file = temp.path() / "state" / "seq";
  write_first_format(file, "12345");
  CHECK(state.read_counter("seq") == 12345u);
  struct stat before {};
  REQUIRE(::stat(file.c_str(), &before) == 0);
  state.write_counter("seq", 12346);
  struct stat after {};
  REQUIRE(::stat(file.c_str(), &after) == 0);
  CHECK(after.st_ino == before.st_ino);
  CHECK(after.st_size == 128);
  CHECK(read_file(file).starts_with("12345 "));  // the old text stays until slot 0 is written
  CHECK(state.read_counter("seq") == 12346u);
  state.write_counter("seq", 12347);
  CHECK(read_file(file).starts_with("g=00000000000000000002 v=00000000000000012347 s="));
  CHECK(StateDir(temp.path() / "state").read_counter("seq") == 12347u);

  // The conversion torn (its slot garbled): the first-format value stands.
  write_first_format(file, "500");
  state.write_counter("seq", 501);
  {
    std::fstream f(file, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(64 + 30);
    f << "XXXX";
  }
  CHECK(state.read_counter("seq") == 500u);
}
