#include "relay/wire/replay_window.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <numeric>
#include <random>
#include <vector>

using relay::wire::ReplayWindow;
using V = ReplayWindow::Verdict;

TEST_CASE("each counter is accepted once") {
  ReplayWindow w;
  CHECK(w.check_and_mark(1) == V::fresh);
  CHECK(w.check_and_mark(1) == V::duplicate);
  CHECK(w.check_and_mark(2) == V::fresh);
  CHECK(w.check_and_mark(1) == V::duplicate);
}

TEST_CASE("reordering inside the window is accepted once each") {
  std::vector<std::uint64_t> counters(3000);
  std::iota(counters.begin(), counters.end(), 1);
  std::mt19937_64 rng(42);
  // Shuffle within blocks of 2000: every counter arrives at most 2000 late.
  for (std::size_t at = 0; at < counters.size(); at += 2000) {
    std::shuffle(counters.begin() + at, counters.begin() + std::min(at + 2000, counters.size()),
                 rng);
  }
  ReplayWindow w;
  for (auto c : counters) CHECK(w.check_and_mark(c) == V::fresh);
  for (auto c : counters) {
    if (c + ReplayWindow::kSize > 3000) CHECK(w.check_and_mark(c) == V::duplicate);
  }
}

TEST_CASE("a counter older than the window is refused") {
  ReplayWindow w;
  CHECK(w.check_and_mark(10) == V::fresh);
  CHECK(w.check_and_mark(10 + ReplayWindow::kSize) == V::fresh);
  CHECK(w.check_and_mark(10) == V::too_old);
  CHECK(w.check_and_mark(11) == V::fresh);  // just inside, never seen
  CHECK(w.check_and_mark(11) == V::duplicate);
}

TEST_CASE("a jump forward forgets the bits it passes over") {
  ReplayWindow w;
  CHECK(w.check_and_mark(5) == V::fresh);
  // 5 + kSize maps to the same bit as 5; it must be fresh and 5 now too old.
  CHECK(w.check_and_mark(5 + 3 * ReplayWindow::kSize) == V::fresh);
  CHECK(w.check_and_mark(5 + 2 * ReplayWindow::kSize + 100) == V::fresh);
  CHECK(w.check_and_mark(5 + 2 * ReplayWindow::kSize + 100) == V::duplicate);
  CHECK(w.check_and_mark(5) == V::too_old);
}
