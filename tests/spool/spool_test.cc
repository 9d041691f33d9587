#include "relay/spool/spool.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <string>

#include "tests/support/temp_dir.h"

using relay::spool::Spool;
using relay::test::TempDir;

namespace {

std::string alarm(int i) {
  return "duress " + std::to_string(i) + std::string(300, 'x');
}

/// Overwrites `bytes` at `offset` of the file, as a crash mid-write leaves it.
void scribble(const std::filesystem::path& file, off_t offset, const std::string& bytes) {
  const int fd = ::open(file.c_str(), O_WRONLY);
  REQUIRE(fd >= 0);
  REQUIRE(::pwrite(fd, bytes.data(), bytes.size(), offset) == static_cast<ssize_t>(bytes.size()));
  ::close(fd);
}

}  // namespace

TEST_CASE("spool: records survive a reopen until released, in append order") {
  TempDir dir;
  const auto file = dir / "spool";
  {
    Spool spool(file, 8);
    CHECK(spool.capacity() == 8);
    for (int i = 1; i <= 3; ++i) CHECK(spool.append(alarm(i)) == static_cast<std::uint64_t>(i));
    spool.release(2);
    spool.release(2);  // idempotent
  }
  CHECK(std::filesystem::file_size(file) == 8 * Spool::kSlotSize);  // preallocated
  Spool reopened(file, 8);
  REQUIRE(reopened.depth() == 2);
  CHECK(reopened.records().at(1) == alarm(1));
  CHECK(reopened.records().at(3) == alarm(3));
  CHECK(reopened.torn_at_open() == 0);
  CHECK(reopened.append(alarm(4)) == 4u);  // numbers keep rising
}

TEST_CASE("spool: a full spool refuses, and has room again after a release") {
  TempDir dir;
  Spool spool(dir / "spool", 4);
  for (int i = 1; i <= 4; ++i) REQUIRE(spool.append(alarm(i)));
  CHECK_FALSE(spool.append(alarm(5)).has_value());
  CHECK(spool.depth() == 4);
  spool.release(1);
  CHECK(spool.append(alarm(5)) == 5u);
  CHECK_THROWS_WITH_AS(spool.append(std::string(Spool::kMaxPayload + 1, 'x')),
                       doctest::Contains("does not fit"), std::runtime_error);
}

TEST_CASE("spool: a torn last record is dropped, the records before it kept") {
  TempDir dir;
  const auto file = dir / "spool";
  {
    Spool spool(file, 8);
    for (int i = 1; i <= 3; ++i) spool.append(alarm(i));
  }
  // The third append was cut short: part of its payload never reached the disk.
  scribble(file, 2 * Spool::kSlotSize + Spool::kHeaderSize + 100, std::string(64, '\0'));
  Spool reopened(file, 8);
  CHECK(reopened.torn_at_open() == 1);
  REQUIRE(reopened.depth() == 2);
  CHECK(reopened.records().contains(1));
  CHECK(reopened.records().contains(2));
  CHECK_FALSE(reopened.records().contains(3));
  // Its slot is free again, and numbering does not reuse what was seen.
  CHECK(reopened.append(alarm(9)) == 3u);
}

TEST_CASE("spool: a header torn before its magic landed is an empty slot") {
  TempDir dir;
  const auto file = dir / "spool";
  { Spool spool(file, 4); }
  scribble(file, Spool::kSlotSize + 10, "partial header bytes");
  Spool reopened(file, 4);
  CHECK(reopened.depth() == 0);
  CHECK(reopened.torn_at_open() == 1);
  for (int i = 1; i <= 4; ++i) CHECK(reopened.append(alarm(i)));  // every slot usable
}

TEST_CASE("spool: a spool that cannot be created is named") {
  TempDir dir;
  CHECK_THROWS_WITH_AS(Spool(dir / "missing" / "spool"), doctest::Contains("missing/spool"),
                       std::runtime_error);
}
