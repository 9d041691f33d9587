#include "relay/mesh/seq_set.h"

#include <doctest/doctest.h>

#include <random>

using relay::mesh::SeqRange;
using relay::mesh::SeqSet;
namespace v1 = relaymesh::v1;

namespace {

v1::OriginSummary summary_of(const SeqSet& s, std::size_t holes = 16) {
  v1::OriginSummary out;
  s.summarize(out, holes);
  return out;
}

}  // namespace

TEST_CASE("a seq set keeps a watermark and the seqs above it") {
  SeqSet s;
  CHECK(s.add(1));
  CHECK(s.add(3));
  CHECK_FALSE(s.add(3));
  CHECK_FALSE(s.add(0));
  CHECK(s.watermark() == 1);
  CHECK(s.highest() == 3);
  CHECK(s.holes(10) == std::vector<SeqRange>{{2, 2}});
  CHECK(s.add(2));
  CHECK(s.watermark() == 3);
  CHECK(s.above_ranges() == 0);
  CHECK(s.contains(2));
  CHECK_FALSE(s.contains(4));
}

TEST_CASE("summaries never claim more than is held") {
  SeqSet s;
  for (std::uint64_t seq : {1, 2, 4, 6, 8, 10}) s.add(seq);
  const auto full = summary_of(s);
  CHECK(full.watermark() == 2);
  CHECK(full.highest() == 10);
  CHECK(full.holes_size() == 4);
  const auto cut = summary_of(s, 2);  // holes 3, 5 listed; 7 and 9 not
  CHECK(cut.highest() == 6);
  for (std::uint64_t seq = 0; seq <= 12; ++seq) {
    CAPTURE(seq);
    if (relay::mesh::summary_contains(cut, seq)) CHECK(s.contains(seq));
    CHECK(relay::mesh::summary_contains(full, seq) == s.contains(seq));
  }
}

TEST_CASE("what one side lacks is what the other holds, in both directions") {
  std::mt19937_64 rng(7);
  for (int round = 0; round < 200; ++round) {
    SeqSet a;
    SeqSet b;
    for (int i = 0; i < 60; ++i) {
      a.add(1 + rng() % 80);
      b.add(1 + rng() % 80);
    }
    const auto sa = summary_of(a, 1000);
    const auto sb = summary_of(b, 1000);
    std::set<std::uint64_t> expect_give;  // in a, not in b
    for (std::uint64_t seq = 1; seq <= 80; ++seq) {
      if (a.contains(seq) && !b.contains(seq)) expect_give.insert(seq);
    }
    const auto give = a.missing_from(sb, 1000);
    CHECK(std::set<std::uint64_t>(give.begin(), give.end()) == expect_give);
    std::set<std::uint64_t> lacked;  // b's ranges of what a holds
    for (const auto& r : b.lacking(sa, 1000)) {
      for (auto seq = r.first; seq <= r.last; ++seq) lacked.insert(seq);
    }
    CHECK(lacked == expect_give);
  }
}

TEST_CASE("lookups are bounded by their limits") {
  SeqSet big;
  for (std::uint64_t seq = 1; seq <= 100'000; ++seq) big.add(seq);
  const SeqSet empty;
  CHECK(big.missing_from(summary_of(empty), 64).size() == 64);
  const auto ranges = empty.lacking(summary_of(big), 8);
  REQUIRE(ranges.size() == 1);
  CHECK(ranges[0] == SeqRange{1, 100'000});
}

TEST_CASE("ranges add like their seqs one by one") {
  SeqSet s;
  s.add(5);
  s.add(9);
  s.add_range(1, 3);
  CHECK(s.watermark() == 3);
  s.add_range(4, 6);
  CHECK(s.watermark() == 6);
  s.add_range(11, 12);
  CHECK(s.watermark() == 6);
  CHECK(s.contains(12));
  CHECK_FALSE(s.contains(10));
  s.add_range(7, 10);
  CHECK(s.watermark() == 12);
  CHECK(s.above_ranges() == 0);
  s.add_range(1, 1'000'000'000);
  CHECK(s.watermark() == 1'000'000'000);
}

TEST_CASE("collect answers a wide, hollow range at the cost of what it holds") {
  SeqSet s;
  s.add_range(1, 10);
  s.add(1'000'000'000);
  std::vector<std::uint64_t> out;
  s.collect(5, UINT64_MAX, 100, out);
  CHECK(out == std::vector<std::uint64_t>{5, 6, 7, 8, 9, 10, 1'000'000'000});
  out.clear();
  s.collect(0, UINT64_MAX, 3, out);
  CHECK(out == std::vector<std::uint64_t>{1, 2, 3});
}

TEST_CASE("settled seqs count as held but are never offered, served or asked for") {
  SeqSet origin;  // pruned through 100, holds 101..150, skipped 151..10^12 after a rewind
  origin.add_range(1, 150);
  origin.settle_through(100);
  origin.settle_range(151, 1'000'000'000'000);
  origin.add(1'000'000'000'001);
  CHECK(origin.watermark() == 1'000'000'000'001);
  CHECK_FALSE(origin.servable(100));
  CHECK(origin.servable(101));
  CHECK_FALSE(origin.servable(500));
  CHECK(origin.servable(1'000'000'000'001));
  const auto summary = summary_of(origin);
  CHECK(summary.settled_through() == 100);
  REQUIRE(summary.settled_size() == 1);

  // A node that joins late lacks only what the origin can serve.
  const SeqSet newcomer;
  const auto wanted = newcomer.lacking(summary, 8);
  CHECK(wanted == std::vector<SeqRange>{{101, 150}, {1'000'000'000'001, 1'000'000'000'001}});
  // And the origin offers it nothing it cannot load.
  const auto offered = origin.missing_from(summary_of(newcomer), 1000);
  CHECK(offered.size() == 51);
  CHECK(offered.front() == 101);
  CHECK(offered.back() == 1'000'000'000'001);
  std::vector<std::uint64_t> served;
  origin.collect(1, UINT64_MAX, 1000, served);
  CHECK(served == offered);
  CHECK(relay::mesh::summary_serves(summary, 101));
  CHECK_FALSE(relay::mesh::summary_serves(summary, 50));
  CHECK_FALSE(relay::mesh::summary_serves(summary, 151));
  // Void: not held, so that a node that has such an event after all
  // (the origin's earlier life sent it) pushes it.
  CHECK_FALSE(relay::mesh::summary_contains(summary, 151));

  // Settling what the newcomer lacks moves its watermark past it at once.
  SeqSet settled = newcomer;
  settled.settle_through(100);
  CHECK(settled.watermark() == 100);
  CHECK(settled.lacking(summary, 8).front() == SeqRange{101, 150});
}

TEST_CASE("a range set merges, counts what is new, and erases a prefix") {
  relay::mesh::RangeSet r;
  CHECK(r.add(10, 20) == 11);
  CHECK(r.add(30, 40) == 11);
  CHECK(r.add(15, 35) == 9);  // 21..29
  CHECK(r.size() == 1);
  CHECK(r.add(41, 41) == 1);  // adjacent: merged
  CHECK(r.size() == 1);
  CHECK(r.add(1, UINT64_MAX) == UINT64_MAX - 32);
  r.erase_through(100);
  CHECK(r.front() == SeqRange{101, UINT64_MAX});
  CHECK_FALSE(r.contains(100));
  CHECK(r.contains(UINT64_MAX));
}

TEST_CASE("years of jumps never crowd an origin's newest events out of its summary") {
  // 20 lives of an origin, each numbered in a block of its own after a jump
  // that its origin settled: 20 void ranges, all below what is held now.
  SeqSet s;
  std::uint64_t seq = 0;
  for (int life = 0; life < 20; ++life) {
    const std::uint64_t block = seq + 1000;
    s.settle_range(seq + 1, block - 1);
    for (std::uint64_t i = 0; i < 10; ++i) s.add(block + i);
    seq = block + 9;
  }
  REQUIRE(s.void_ranges().size() == 20);
  const auto summary = summary_of(s);
  CHECK(summary.highest() == seq);  // the newest are claimed
  CHECK(summary.holes_size() == 4);  // only the most recent void ranges are wanted
  CHECK_FALSE(relay::mesh::summary_contains(summary, seq - 10));  // the last jump's gap
  CHECK(relay::mesh::summary_contains(summary, 500));             // an old one counts as held
  CHECK(s.held_watermark() == 0);
  CHECK(s.held(seq));
  CHECK_FALSE(s.held(500));
}
