#include <doctest/doctest.h>

#include <unistd.h>

#include <fstream>
#include <string>

#include "common/state_dir.h"
#include "tests/support/temp_dir.h"

using namespace relay;
using relay::test::TempDir;

TEST_CASE("state dir: counters survive a reopen; a damaged file is refused, not reset") {
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

TEST_CASE("state dir: one process at a time; the lock goes with its holder") {
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
