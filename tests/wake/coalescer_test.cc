// Coalescing wake-ups into passes (relay/wake/coalescer.h), with real threads.
#include "relay/wake/coalescer.h"

#include <doctest/doctest.h>

#include <atomic>
#include <latch>
#include <thread>

using namespace relay;
using namespace std::chrono_literals;
using Mark = wake::Coalescer::Mark;

namespace {

std::chrono::milliseconds since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start);
}

}  // namespace

TEST_CASE("a hundred wake-ups during a pass make one more pass, not a hundred") {
  wake::Coalescer wakeups;
  std::atomic<int> passes{0};
  std::latch in_first(1);
  std::latch release(1);
  std::thread worker([&] {
    Mark seen = 0;
    while (wakeups.wait(seen)) {
      if (++passes == 1) {
        in_first.count_down();
        release.wait();
      }
    }
  });
  wakeups.wake();
  in_first.wait();
  for (int i = 0; i < 100; ++i) wakeups.wake();
  release.count_down();
  std::this_thread::sleep_for(300ms);
  CHECK(passes == 2);
  wakeups.wake();
  std::this_thread::sleep_for(100ms);
  CHECK(passes == 3);
  wakeups.stop();
  worker.join();
}

TEST_CASE("a wake-up before the wait is not lost, and without one a wait ends only when due") {
  wake::Coalescer wakeups;
  Mark seen = 0;
  wakeups.wake();
  CHECK(wakeups.woken_since(seen));
  auto start = std::chrono::steady_clock::now();
  REQUIRE(wakeups.wait(seen));
  CHECK(since(start) < 50ms);
  CHECK(seen == wakeups.mark());
  CHECK_FALSE(wakeups.woken_since(seen));
  start = std::chrono::steady_clock::now();
  REQUIRE(wakeups.wait(seen, 150ms));  // a retry falls due
  CHECK(since(start) >= 150ms);
}

TEST_CASE("a pass marks what it covers: a wake-up after the mark asks for another") {
  wake::Coalescer wakeups;
  wakeups.wake();
  const Mark seen = wakeups.mark();
  CHECK_FALSE(wakeups.woken_since(seen));
  wakeups.wake();
  CHECK(wakeups.woken_since(seen));
}

TEST_CASE("a backoff sleep lasts whatever wakes, and keeps the wake-ups for after") {
  wake::Coalescer wakeups;
  Mark seen = wakeups.mark();
  std::thread waker([&] {
    std::this_thread::sleep_for(20ms);
    wakeups.wake();
  });
  const auto start = std::chrono::steady_clock::now();
  CHECK(wakeups.sleep(200ms));
  CHECK(since(start) >= 200ms);
  waker.join();
  CHECK(wakeups.woken_since(seen));
  CHECK(wakeups.wait(seen));
}

TEST_CASE("stop ends a wait and a sleep at once, and every wait after") {
  wake::Coalescer wakeups;
  std::atomic<bool> waited{true};
  std::atomic<bool> slept{true};
  std::thread waiter([&] {
    Mark seen = 0;
    waited = wakeups.wait(seen);
  });
  std::thread sleeper([&] { slept = wakeups.sleep(10s); });
  std::this_thread::sleep_for(50ms);
  const auto start = std::chrono::steady_clock::now();
  wakeups.stop();
  waiter.join();
  sleeper.join();
  CHECK(since(start) < 1s);
  CHECK_FALSE(waited);
  CHECK_FALSE(slept);
  CHECK(wakeups.stopped());
  Mark seen = 0;
  wakeups.wake();
  CHECK_FALSE(wakeups.wait(seen));
}
