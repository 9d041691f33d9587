// The retry policy: capped backoff with jitter, dead letters, duress alarms.
#include "relay/runner/retry.h"

#include <doctest/doctest.h>

using namespace relay::runner;
using namespace std::chrono_literals;

TEST_CASE("backoff doubles from initial and stops at the cap, jittered within the upper half") {
  RetryPolicy p;
  p.initial = 100ms;
  p.max = 1000ms;
  std::mt19937_64 rng(7);
  const std::chrono::milliseconds steps[] = {100ms, 200ms, 400ms, 800ms, 1000ms, 1000ms, 1000ms};
  for (int attempts = 1; attempts <= 7; ++attempts) {
    const auto step = steps[attempts - 1];
    for (int i = 0; i < 200; ++i) {
      const auto d = backoff(p, attempts, rng);
      CHECK(d >= step / 2);
      CHECK(d <= step);
    }
  }
  // Far past any cap: no overflow, still the cap.
  CHECK(backoff(p, 1'000'000, rng) <= 1000ms);
  CHECK(backoff(p, 1'000'000, rng) >= 500ms);
}

TEST_CASE("the same seed gives the same delays, another seed other delays") {
  RetryPolicy p;
  std::mt19937_64 a(1), b(1), c(2);
  std::vector<std::chrono::milliseconds> da, db, dc;
  for (int i = 1; i <= 10; ++i) {
    da.push_back(backoff(p, i, a));
    db.push_back(backoff(p, i, b));
    dc.push_back(backoff(p, i, c));
  }
  CHECK(da == db);
  CHECK(da != dc);
}

TEST_CASE("a row that keeps failing is dead-lettered at max_attempts, not before") {
  RetryPolicy p;
  p.max_attempts = 3;
  std::mt19937_64 rng(1);
  for (int priority : {1, 2, 3}) {
    CHECK(decide(p, 1, priority, rng).action == RetryDecision::Action::retry);
    CHECK(decide(p, 2, priority, rng).action == RetryDecision::Action::retry);
    const auto last = decide(p, 3, priority, rng);
    CHECK(last.action == RetryDecision::Action::dead_letter);
    CHECK_FALSE(last.alarm);
  }
}

TEST_CASE("a duress is never dead-lettered: it is retried at the cap and alarms") {
  RetryPolicy p;
  p.max_attempts = 3;
  p.duress_alarm_after = 2;
  p.max = 5s;
  std::mt19937_64 rng(1);
  CHECK_FALSE(decide(p, 1, kDuressPriority, rng).alarm);
  for (int attempts = 2; attempts < 10'000; attempts += 997) {
    const auto d = decide(p, attempts, kDuressPriority, rng);
    CHECK(d.action == RetryDecision::Action::retry);
    CHECK(d.alarm);
    CHECK(d.delay <= 5s);
    CHECK(d.delay > 0ms);
  }
}

TEST_CASE("a claim's lease covers every handler of the batch timing out, plus grace") {
  CHECK(lease_for(1, 30s) == 40s);
  CHECK(lease_for(4, 30s) == 130s);
  CHECK(lease_for(0, 1s) == 11s);
}

TEST_CASE("a row leased too often without a result is given up, a duress never") {
  RetryPolicy p;
  p.max_attempts = 3;
  CHECK_FALSE(exhausted(p, 3, 2));
  CHECK(exhausted(p, 4, 2));
  CHECK_FALSE(exhausted(p, 1'000, kDuressPriority));
}
