// The pacer against a one-link model: a bottleneck of a given rate with a
// queue, a propagation delay each way, the receiver's FeedbackTally.
#include "relay/mesh/pacer.h"

#include <doctest/doctest.h>

#include <map>
#include <random>

using namespace relay::mesh;
using namespace std::chrono_literals;

namespace {

struct Link {
  Rate rate;
  Duration delay;  // each way
  double loss = 0;
  std::size_t queue_bytes = 64 * 1024;
};

struct Run {
  Rate final_rate;
  double goodput = 0;       // bytes through the bottleneck / its capacity
  Duration worst_queue{};   // in the last half
  std::uint64_t drops = 0;  // at the full queue
};

/// Sends 1200-byte datagrams whenever the pacer allows (or only `offered`
/// bytes a second, if set) for `length`, stepping 1 ms.
Run drive(Pacer& pacer, const Link& link, Duration length, double offered = 0) {
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<> coin(0, 1);
  FeedbackTally tally;
  Time now{};
  Time busy{};                                  // bottleneck busy until
  std::multimap<Time, std::uint64_t> arriving;  // at the receiver: counter
  std::multimap<Time, v1::Feedback> feedback;   // at the sender
  std::uint64_t counter = 0;
  double budget = 0;
  std::uint64_t through = 0;
  Run run;
  const Time end = now + length;
  for (; now < end; now += 1ms) {
    while (!arriving.empty() && arriving.begin()->first <= now) {
      tally.on_arrival(arriving.begin()->first, arriving.begin()->second, 1200);
      arriving.erase(arriving.begin());
    }
    if (tally.due() <= now) feedback.emplace(now + link.delay, tally.take(now));
    while (!feedback.empty() && feedback.begin()->first <= now) {
      pacer.on_feedback(now, feedback.begin()->second);
      feedback.erase(feedback.begin());
    }
    budget += offered / 1000;
    while (pacer.ready(now) && (offered == 0 || budget >= 1200)) {
      budget -= 1200;
      pacer.on_sent(now, ++counter, 1200,
                    offered == 0 ? Pacer::Kind::paced : Pacer::Kind::paced_last);
      if (coin(rng) < link.loss) continue;
      const Time start = std::max(busy, now);
      if (link.rate.bytes_in(start - now) + 1200 > static_cast<double>(link.queue_bytes)) {
        ++run.drops;
        continue;
      }
      if (now > end - length / 2) run.worst_queue = std::max(run.worst_queue, start - now);
      busy = start + link.rate.time_for(1200);
      through += 1200;
      arriving.emplace(busy + link.delay, counter);
    }
  }
  run.final_rate = pacer.rate();
  run.goodput = static_cast<double>(through) / link.rate.bytes_in(length);
  return run;
}

}  // namespace

TEST_CASE("the pacer finds a link's rate and keeps its queue short") {
  for (double kbit : {256.0, 1000.0, 10'000.0}) {
    for (Duration rtt : {20ms, 100ms, 300ms}) {
      CAPTURE(kbit);
      CAPTURE(std::chrono::duration_cast<std::chrono::milliseconds>(rtt).count());
      Pacer pacer;
      const Link link{Rate::from_kbit_per_second(kbit), rtt / 2};
      const Run run = drive(pacer, link, 60s);
      CHECK(run.goodput > 0.85);
      // A few datagrams at most wait at the bottleneck once it has settled.
      CHECK(run.worst_queue < std::max<Duration>(150ms, link.rate.time_for(10 * 1200)));
      CHECK(pacer.delivery_rate().bytes_per_second() > 0.9 * link.rate.bytes_per_second());
    }
  }
}

TEST_CASE("random loss is not read as a full link") {
  Pacer pacer;
  const Link link{Rate::from_kbit_per_second(10'000), 50ms, 0.3};
  const Run run = drive(pacer, link, 60s);
  // 30% is lost before the bottleneck: it can pass at most 70% of what is sent.
  CHECK(run.goodput > 0.5);
}

TEST_CASE("a sender that offers little does not build a rate it never used") {
  Pacer pacer;
  const Link link{Rate::from_kbit_per_second(10'000), 25ms};
  drive(pacer, link, 30s, 10'000);  // 80 kbit/s offered
  CHECK(pacer.rate().bytes_per_second() < 200'000);
}

TEST_CASE("no feedback: the window closes, the timeout halves the rate and reopens it") {
  Pacer pacer;
  Time now{};
  std::uint64_t counter = 0;
  v1::Feedback first;  // the peer answered once: pacing is on
  pacer.on_sent(now, ++counter, 1200, Pacer::Kind::paced);
  first.set_largest(counter);
  first.set_received(1);
  first.set_bytes(1200);
  pacer.on_feedback(now + 50ms, first);
  now += 50ms;
  // Half a second of sending with no feedback: tokens would allow 25 KB.
  for (int i = 0; i < 50; ++i) {
    while (pacer.ready(now)) pacer.on_sent(now, ++counter, 1200, Pacer::Kind::paced);
    now += 10ms;
  }
  CHECK(pacer.in_flight() < 20'000);  // the window closed
  const Rate before = pacer.rate();
  CHECK_FALSE(pacer.ready(now));
  CHECK(pacer.next_ready(now) <= now + 1s);
  CHECK(pacer.ready(now + 1s));
  CHECK(pacer.in_flight() == 0);
  CHECK(pacer.rate().bytes_per_second() <= before.bytes_per_second() / 2 + 1);
}

TEST_CASE("a peer that sends no feedback at all is probed ever more slowly, then found afresh") {
  // A cut path: every timeout halves the rate, past the floor that holds
  // while feedback flows, down to one datagram every 8 s. (All builds that
  // can open a session send feedback: there is no unpaced peer any more.)
  PacerTuning tuning;
  Pacer pacer(tuning);
  Time now{};
  std::uint64_t counter = 0;
  int sent = 0;
  for (int i = 0; i < 60'000; ++i) {  // 60 s in steps of 1 ms
    while (pacer.ready(now)) {
      pacer.on_sent(now, ++counter, 1200, Pacer::Kind::paced);
      ++sent;
    }
    now += 1ms;
  }
  CHECK(pacer.paced());
  CHECK(pacer.rate() == tuning.silent_rate);
  MESSAGE(sent, " datagrams in 60 s into a cut path");
  CHECK(sent < 400);
  // Feedback again: the rate is back at the floor at once, and grows.
  v1::Feedback f;
  f.set_largest(counter);
  f.set_received(1);
  f.set_bytes(1200);
  pacer.on_feedback(now, f);
  CHECK(pacer.rate() >= tuning.min_rate);
}

TEST_CASE("feedback is owed after a few datagrams or a short delay") {
  FeedbackTally tally;
  Time now{};
  CHECK(tally.due() == Time::max());
  tally.on_arrival(now, 5, 1000);
  CHECK(tally.due() == now + FeedbackTally::kDelay);
  for (std::uint64_t c = 6; c < 5 + FeedbackTally::kEvery; ++c)
    tally.on_arrival(now + 1ms, c, 1000);
  CHECK(tally.due() == now);
  const v1::Feedback f = tally.take(now + 3ms);
  CHECK(f.largest() == 4 + FeedbackTally::kEvery);
  CHECK(f.received() == static_cast<std::uint64_t>(FeedbackTally::kEvery));
  CHECK(f.bytes() == 1000u * FeedbackTally::kEvery);
  CHECK(f.delay_us() == 2000);
  CHECK(tally.due() == Time::max());
}
